"""Loading a data set split as ``(images, labels)``: find the files, read them, check them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ncgrok.empirical.data.cifar import load_cifar
from ncgrok.empirical.data.idx import read_idx_file
from ncgrok.empirical.data.locate import locate_file, not_found
from ncgrok.empirical.data.records import DatasetRecord, dataset_record, identify, split_name

__all__ = ["find_idx", "read_dataset"]


class _ForeignFile(ValueError):
    """A valid file of another data set (MNIST and Fashion-MNIST share file names)."""


def _refetch_fix(record: DatasetRecord) -> str:
    """How to replace a damaged file of ``record``, as a clause that fits after a semicolon."""
    return (f"delete it and {record.fetch_hint} to get a fresh copy, or point --data-dir at a folder "
            f"with an intact copy")


def _check_md5(path: Path, record: DatasetRecord, file: str, digest: str, fix: str) -> None:
    """Raise unless ``digest`` (the md5 of the file's uncompressed content) is the record's sum for
    ``file``; a file recognised as another data set's raises :class:`_ForeignFile`."""
    expected = record.file(file).md5
    if expected is None:
        raise ValueError(f"{path}: no expected md5 for {file} in the checksum table; pass verify=False to skip the check")
    if digest == expected.lower():
        return
    known = identify(digest)
    what = f"it is the {known[0].display_name} {known[1].name} file, " if known else ""
    error_type = _ForeignFile if known is not None and known[0].name != record.name else ValueError
    raise error_type(
        f"{path}: md5 of the uncompressed content is {digest}, expected {expected} for {record.display_name} "
        f"{file}; {what}the file is corrupt or not the right file: {fix}"
    )


def _load_idx_checked(path: Path, record: DatasetRecord, file: str, *, verify: bool) -> np.ndarray:
    """Read one of a data set's IDX files, checking structure and (when ``verify``) its md5."""
    fix = _refetch_fix(record)
    array, digest = read_idx_file(path, fix=fix)
    if verify:
        _check_md5(path, record, file, digest, fix)
    content = record.file(file).content
    if array.ndim != (1 if content == "labels" else 3) or array.dtype != np.uint8:
        shape = "(N,)" if content == "labels" else "(N, H, W)"
        raise ValueError(f"{path}: expected uint8 {content} of shape {shape}, got {array.dtype} {array.shape}; {fix}")
    return array


def find_idx(record: DatasetRecord, file: str, data_dir: str | os.PathLike | None, *, verify: bool) -> tuple[Path, np.ndarray]:
    """Find and read one of a data set's IDX files.

    The first candidate (see :func:`locate.candidate_folders`) wins, except that a file whose md5
    shows it belongs to *another* data set (MNIST and Fashion-MNIST use the same file names, so a flat
    folder of one must not be taken for the other) is passed over. Raises ``FileNotFoundError`` when
    nothing suitable exists and ``ValueError`` when the chosen file is damaged.
    """
    skipped = []
    for path in locate_file(record, file, data_dir):
        try:
            return path, _load_idx_checked(path, record, file, verify=verify)
        except _ForeignFile:
            skipped.append(str(path))
    note = f"; passed over {', '.join(skipped)}: another data set's file" if skipped else ""
    raise not_found(record, file, data_dir, note)


def _load_idx_split(record: DatasetRecord, split: str, data_dir: str | os.PathLike | None, *, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = (file.name for file in record.split_files(split))
    image_path, images = find_idx(record, image_file, data_dir, verify=verify)
    label_path, labels = find_idx(record, label_file, data_dir, verify=verify)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{image_path} holds {images.shape[0]} images but {label_path} holds {labels.shape[0]} labels; "
            f"they are from different downloads: {record.fetch_hint}"
        )
    record.check_labels(labels, str(label_path))
    return images[:, None, :, :], labels.astype(np.int64)


def read_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a data set split as ``(images, labels)``.

    ``images`` is ``uint8`` of shape ``(N, C, H, W)`` -- ``(N, 1, 28, 28)`` for MNIST and
    Fashion-MNIST, ``(N, 3, 32, 32)`` for CIFAR-10 -- and ``labels`` is ``int64`` of shape ``(N,)``,
    both in file order. ``split`` is ``"train"`` (60k / 50k) or ``"test"`` (10k).

    MNIST-like files are searched under :func:`resolve_data_dir` (``<dir>/<name>/``,
    ``<dir>/<name>/raw/``, the torchvision layout ``<dir>/MNIST/raw/``, then ``<dir>/`` itself, and
    for Fashion-MNIST the Debian package's folder when ``data_dir`` is not given), raw or gzipped.
    With ``verify`` each file's uncompressed md5 is checked against the data set's record, or against
    ``checksums`` (file name to md5) when given. For CIFAR-10, ``data_dir`` is the path of
    ``cifar-10-python.tar.gz`` or of ``cifar-10-batches-py/`` (or a folder containing one of them).

    Missing files raise ``FileNotFoundError`` saying how to get them; damaged files (wrong md5,
    truncated, corrupt gzip, a header that lies about the size) a ``ValueError`` naming the file and
    how to replace it.
    """
    record = dataset_record(name, checksums=checksums)
    split = split_name(split)
    if record.file_format == "cifar-pickle":
        return load_cifar(record, data_dir, split)
    return _load_idx_split(record, split, data_dir, verify=verify)
