"""Tests for ``ncgrok.empirical.data.splits``: the paper's split (the first ``train_size`` training
images, the full test split) and the held-out sample, and every size it refuses.

Synthetic MNIST-format files of 60 training and 20 test images (``test_data_fixtures.py``); the
expected inputs are recomputed here from the pixels with the paper's constants.
"""
from __future__ import annotations

from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import numpy as np
import pytest

from ncgrok.empirical import data

_spec = spec_from_file_location("data_fixtures", Path(__file__).with_name("test_data_fixtures.py"))
fx = module_from_spec(_spec)
_spec.loader.exec_module(fx)  # tests run with --import-mode=importlib: load the shared writers by path


def test_paper_split(tmp_path):
    arrays, md5 = fx.synthetic_idx_set(tmp_path / "mnist", n_train=60, n_test=20)
    split = data.paper_split("mnist", train_size=10, heldout_size=15, data_dir=tmp_path, checksums=md5)
    train_images = arrays["train-images-idx3-ubyte"]
    train_labels = arrays["train-labels-idx1-ubyte"]
    assert split.name == "mnist" and split.num_classes == 10 and split.train_size == 10
    assert split.train_x.dtype == np.float32 and split.train_x.shape == (10, 1, 28, 28)
    expected_first = (train_images[:10, None] / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(split.train_x, expected_first, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(split.train_y, train_labels[:10])
    assert split.test_x.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(split.test_y, arrays["t10k-labels-idx1-ubyte"])
    # Held out: 15 distinct unused training images, matching their labels.
    indices = split.heldout_indices
    assert len(indices) == 15 and len(set(indices.tolist())) == 15 and indices.min() >= 10
    np.testing.assert_array_equal(split.heldout_y, train_labels[indices])
    np.testing.assert_allclose(split.heldout_x, (train_images[indices, None] / 255.0 - 0.1307) / 0.3081,
                               rtol=1e-5, atol=1e-5)
    again = data.paper_split("mnist", train_size=10, heldout_size=15, data_dir=tmp_path, checksums=md5)
    np.testing.assert_array_equal(again.heldout_indices, indices)
    other = data.paper_split("mnist", train_size=10, heldout_size=15, data_dir=tmp_path, checksums=md5,
                             heldout_seed=1)
    assert not np.array_equal(other.heldout_indices, indices)
    everything = data.paper_split("mnist", train_size=10, heldout_size=None, data_dir=tmp_path, checksums=md5)
    np.testing.assert_array_equal(everything.heldout_indices, np.arange(10, 60))


def test_paper_split_cifar(tmp_path):
    batches = fx.cifar_batches(per_batch=4)
    folder = fx.write_cifar_folder(tmp_path / "cifar-10-batches-py", batches)
    split = data.paper_split("cifar10", train_size=5, heldout_size=None, data_dir=folder)
    assert split.train_x.shape == (5, 3, 32, 32) and split.heldout_x.shape == (15, 3, 32, 32)
    assert split.test_x.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(split.train_y, batches["data_batch_1"][b"labels"] + batches["data_batch_2"][b"labels"][:1])


# --------------------------------------------------------------------------------------------------
# Sizes the data cannot honour
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, flag, limit", [
    ({"train_size": 0}, "--train-size", ">= 1"),
    ({"train_size": -5}, "--train-size", ">= 1"),
    ({"train_size": 2.5}, "--train-size", "whole number"),
    ({"train_size": float("nan")}, "--train-size", "whole number"),
    ({"train_size": "ten"}, "--train-size", "whole number"),
    ({"train_size": 60}, "--train-size", "at most 59"),        # all 60 images: none left out
    ({"train_size": 10 ** 12}, "--train-size", "at most 59"),  # far above what the data holds
    ({"train_size": 10, "heldout_size": 51}, "--heldout-size", "at most 50"),  # would overlap training
    ({"train_size": 59, "heldout_size": 2}, "--heldout-size", "at most 1"),
    ({"train_size": 10, "heldout_size": -1}, "--heldout-size", ">= 0"),
    ({"train_size": 10, "heldout_size": 1.5}, "--heldout-size", "whole number"),
    ({"heldout_seed": -1, "train_size": 10}, "heldout_seed", ">= 0"),
])
def test_paper_split_refuses_sizes_naming_the_flag_and_limit(tmp_path, kwargs, flag, limit):
    fx.synthetic_idx_set(tmp_path / "mnist", n_train=60)
    with pytest.raises(ValueError) as error:
        data.paper_split("mnist", data_dir=tmp_path, verify=False, **kwargs)
    assert flag in str(error.value) and limit in str(error.value)


def test_overlap_message_says_why(tmp_path):
    fx.synthetic_idx_set(tmp_path / "mnist", n_train=60)
    with pytest.raises(ValueError, match="overlap the training images") as error:
        data.paper_split("mnist", train_size=10, heldout_size=51, data_dir=tmp_path, verify=False)
    assert "got 51" in str(error.value) and "50 training images after the first 10" in str(error.value)


def test_bad_sizes_are_refused_before_any_file_is_read(tmp_path):
    # No data at all: a size of the wrong sign or type must be reported, not the missing files.
    for kwargs in ({"train_size": 0}, {"heldout_size": -3}, {"train_size": "x"}):
        with pytest.raises(ValueError, match="--train-size|--heldout-size"):
            data.paper_split("mnist", data_dir=tmp_path / "empty", **kwargs)
    with pytest.raises(FileNotFoundError):  # the control: valid sizes get as far as the files
        data.paper_split("mnist", data_dir=tmp_path / "empty")


@pytest.mark.parametrize("train_size, heldout_size, expected", [
    (59, 1, 1), (59, None, 1), (10, 50, 50), (10, 0, 0), (1, None, 59),
])
def test_boundary_sizes_are_accepted_and_never_overlap(tmp_path, train_size, heldout_size, expected):
    fx.synthetic_idx_set(tmp_path / "mnist", n_train=60)
    split = data.paper_split("mnist", train_size=train_size, heldout_size=heldout_size, data_dir=tmp_path,
                             verify=False)
    indices = split.heldout_indices.tolist()
    assert split.train_size == train_size and len(indices) == expected == split.heldout_x.shape[0]
    assert len(set(indices)) == expected and all(train_size <= i < 60 for i in indices)


# --------------------------------------------------------------------------------------------------
# test_size: a fixed subset of the test split
# --------------------------------------------------------------------------------------------------


def _subset_by_the_documented_rule(total, size):
    """The rule of ``fixed_test_subset`` written out again: the first ``size`` entries of a permutation
    drawn by numpy's default generator seeded 0, in increasing order."""
    return sorted(np.random.default_rng(0).permutation(total)[:size].tolist())


def test_test_size_keeps_a_fixed_subset_with_its_labels(tmp_path):
    arrays, md5 = fx.synthetic_idx_set(tmp_path / "mnist", n_train=60, n_test=50)
    test_images, test_labels = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    split = data.paper_split("mnist", train_size=10, heldout_size=15, test_size=17, data_dir=tmp_path, checksums=md5)
    expected = _subset_by_the_documented_rule(50, 17)
    assert len(set(expected)) == 17 and expected != list(range(17))  # a draw, not the first 17
    assert split.test_x.shape == (17, 1, 28, 28) and split.test_y.shape == (17,)
    np.testing.assert_array_equal(split.test_y, test_labels[expected])  # labels follow their images
    np.testing.assert_allclose(split.test_x, (test_images[expected, None] / 255.0 - 0.1307) / 0.3081,
                               rtol=1e-5, atol=1e-5)
    whole = data.paper_split("mnist", train_size=10, heldout_size=15, data_dir=tmp_path, checksums=md5)
    np.testing.assert_array_equal(split.test_x, whole.test_x[expected])  # a subset of the test set
    np.testing.assert_array_equal(split.train_x, whole.train_x)  # nothing else changes
    np.testing.assert_array_equal(split.heldout_indices, whole.heldout_indices)
    # the same images on every call and whatever the other seeds (the held-out draw's here)
    for other in (dict(heldout_seed=0), dict(heldout_seed=7, train_size=20)):
        again = data.paper_split("mnist", **{"train_size": 10, "heldout_size": 15, **other}, test_size=17,
                                 data_dir=tmp_path, checksums=md5)
        np.testing.assert_array_equal(again.test_x, split.test_x)
        np.testing.assert_array_equal(again.test_y, split.test_y)


def test_fixed_test_subsets_are_nested_and_the_whole_set_at_full_size():
    small, large = data.fixed_test_subset(10_000, 500), data.fixed_test_subset(10_000, 2000)
    assert small.tolist() == _subset_by_the_documented_rule(10_000, 500)
    assert set(small.tolist()) <= set(large.tolist()) and small.dtype == np.int64
    np.testing.assert_array_equal(data.fixed_test_subset(20, 20), np.arange(20))


@pytest.mark.parametrize("test_size, limit", [
    (0, ">= 1"), (-3, ">= 1"), (2.5, "whole number"), ("ten", "whole number"), (21, "at most 20"), (10 ** 9, "at most 20"),
])
def test_paper_split_refuses_test_sizes_naming_the_flag_and_limit(tmp_path, test_size, limit):
    fx.synthetic_idx_set(tmp_path / "mnist", n_train=60, n_test=20)
    with pytest.raises(ValueError) as error:
        data.paper_split("mnist", train_size=10, heldout_size=5, test_size=test_size, data_dir=tmp_path, verify=False)
    assert "test_size (--test-size)" in str(error.value) and limit in str(error.value)
