"""``check``: which data files are present and whether each passes its checks."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from ncgrok.empirical.data.cifar import batch_location, cifar_source, decode_batch, read_batches
from ncgrok.empirical.data.reading import find_idx
from ncgrok.empirical.data.records import DATASETS, DatasetRecord, dataset_record

__all__ = ["FileStatus", "check"]


@dataclass(frozen=True)
class FileStatus:
    """One line of :func:`check`: whether a data file is present and passes its checks."""

    dataset: str
    file: str
    present: bool
    valid: bool
    message: str
    path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _path_in(message: str) -> str | None:
    """The file path that starts one of this package's ValueError messages ('<path>: ...')."""
    head = message.split(": ", 1)[0]
    return head if os.path.isabs(head) or os.path.exists(head) else None


def _check_idx(record: DatasetRecord, data_dir: str | os.PathLike | None, *, verify: bool) -> list[FileStatus]:
    statuses = []
    for file in record.file_names:
        try:
            path, array = find_idx(record, file, data_dir, verify=verify)
        except FileNotFoundError as error:
            statuses.append(FileStatus(record.name, file, False, False, str(error)))
            continue
        except ValueError as error:
            statuses.append(FileStatus(record.name, file, True, False, str(error), _path_in(str(error))))
            continue
        what = "md5 ok" if verify else "structure ok (md5 not checked)"
        statuses.append(FileStatus(record.name, file, True, True, f"{what}, shape {array.shape}", str(path)))
    return statuses


def _check_cifar(record: DatasetRecord, data_dir: str | os.PathLike | None, *, explicit: bool) -> list[FileStatus]:
    archive = record.manual
    try:
        source = cifar_source(record, data_dir)
    except FileNotFoundError as error:
        message = str(error) if explicit else (
            f"not found in the data directory; pass cifar10= / --cifar10 with the path of {archive.archive_name} "
            f"or {archive.folder_name}/ (no registry ships CIFAR-10; download the archive yourself)"
        )
        return [FileStatus(record.name, archive.archive_name, False, False, message)]
    try:
        members = read_batches(record, source, record.file_names)
    except ValueError as error:
        return [FileStatus(record.name, source.name, True, False, str(error), str(source))]
    statuses = []
    for name in record.file_names:
        location = batch_location(source, name)
        if name not in members:
            statuses.append(FileStatus(record.name, name, False, False, f"missing from {source}", None))
            continue
        try:
            images, _ = decode_batch(record, members[name], location)
        except ValueError as error:
            statuses.append(FileStatus(record.name, name, True, False, str(error), location))
            continue
        statuses.append(FileStatus(record.name, name, True, True, f"structure ok, shape {images.shape}", location))
    return statuses


def check(
    *,
    data_dir: str | os.PathLike | None = None,
    cifar10: str | os.PathLike | None = None,
    datasets: Iterable[str] | None = None,
    verify: bool = True,
    checksums: Mapping[str, Mapping[str, str]] | None = None,
) -> list[FileStatus]:
    """Report, per data file, whether it is present and valid. Never raises for a missing or bad file.

    MNIST and Fashion-MNIST are looked up as :func:`read_dataset` does (md5 checked when ``verify``;
    ``checksums`` maps a data set to a file-to-md5 table replacing its record's sums). CIFAR-10 is
    looked up at ``cifar10`` (archive or folder), else in the data directory, and checked for
    structure (shapes, dtypes, labels) by the restricted unpickler.
    """
    chosen = [dataset_record(name) for name in (DATASETS if datasets is None else datasets)]
    statuses: list[FileStatus] = []
    for record in chosen:
        if checksums is not None:
            record = record.with_checksums(checksums.get(record.name, {}))
        if record.file_format == "cifar-pickle":
            statuses += _check_cifar(record, cifar10 if cifar10 is not None else data_dir, explicit=cifar10 is not None)
        else:
            statuses += _check_idx(record, data_dir, verify=verify)
    return statuses
