"""The paper's network inputs and data split.

The paper's main experiments (Figs. 2-4) train on the **first 1000** MNIST training images (in file
order, not a random draw) and test on the full test split; inputs are ``pixels / 255`` standardised
per channel, with no augmentation. Two additions of this toolkit, not the paper's: the held-out
sample, a seeded draw of training images *outside* the training set, a second sample of the
population for estimates that must not reuse the training images; and, to save measurement time, an
optional fixed subset of the test split (``test_size``, :func:`fixed_test_subset`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ncgrok.empirical.data.reading import read_dataset
from ncgrok.empirical.data.records import DatasetRecord, dataset_record
from ncgrok.theory._validation import as_count

__all__ = ["TEST_SUBSET_SEED", "Split", "check_split_sizes", "fixed_test_subset", "normalize", "paper_split"]


def normalize(images: np.ndarray, name: str) -> np.ndarray:
    """The paper's network input: ``(pixels / 255 - mean_c) / std_c`` per channel, as float32.

    ``images`` are ``uint8`` pixels with the channel axis third from last (``(N, C, H, W)`` or
    ``(C, H, W)``), as :func:`read_dataset` returns them; ``mean``/``std`` are the data set's record's.
    """
    record = dataset_record(name)
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 pixels in 0..255 (as read_dataset returns them), got dtype {images.dtype}"
        )
    if images.ndim < 3 or images.shape[-3] != len(record.mean):
        raise ValueError(
            f"images must have shape (N, {len(record.mean)}, H, W) for {record.display_name}, got {images.shape}"
        )
    std = np.asarray(record.std, dtype=np.float32).reshape(-1, 1, 1)
    mean = np.asarray(record.mean, dtype=np.float32).reshape(-1, 1, 1)
    # (x / 255 - m) / s  ==  x / (255 s) - m / s, computed in float32 without a float64 temporary.
    out = images.astype(np.float32)
    out /= std * np.float32(255.0)
    out -= mean / std
    return out


@dataclass(frozen=True, eq=False)
class Split:
    """The paper's data split, normalized float32 inputs with int64 labels.

    ``train``: the first ``train_size`` training images in file order (not a random draw);
    ``test``: the whole test split, or the subset :func:`fixed_test_subset` (in file order) when
    :func:`paper_split` is given a ``test_size``; ``heldout``: a random sample (seeded) of the training images that
    are *not* in ``train`` (indices ``>= train_size`` of the training split, listed in
    ``heldout_indices``), a second sample of the population for estimates that must not reuse ``train``.
    """

    name: str
    num_classes: int
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    heldout_x: np.ndarray
    heldout_y: np.ndarray
    heldout_indices: np.ndarray

    @property
    def train_size(self) -> int:
        return int(self.train_y.shape[0])


def check_split_sizes(record: DatasetRecord, train_size: int, heldout_size: int | None, total: int) -> int:
    """Check ``train_size`` and ``heldout_size`` against a training split of ``total`` images and
    return the held-out size (``None`` meaning every unused image).

    The training set is the first ``train_size`` images and the held-out sample is drawn from the
    rest, so ``train_size`` may be at most ``total - 1`` (one image at least stays out of training)
    and ``heldout_size`` at most ``total - train_size``: any more would have to reuse training images.
    Errors name the argument, its command-line flag and the limit.
    """
    if train_size > total - 1:
        raise ValueError(
            f"train_size (--train-size) must be at most {total - 1}: the {record.display_name} training split "
            f"holds {total} images and at least one must stay out of training; got {train_size}"
        )
    unused = total - train_size
    if heldout_size is None:
        return unused
    if heldout_size > unused:
        raise ValueError(
            f"heldout_size (--heldout-size) must be at most {unused}: the held-out sample is drawn from the "
            f"{unused} training images after the first {train_size} (--train-size), and a larger one would "
            f"overlap the training images; got {heldout_size}. Lower it (or --train-size), or pass "
            f"heldout_size=None to use all of them"
        )
    return heldout_size


# The seed of the test subset's permutation: fixed, so the subset depends on its size only.
TEST_SUBSET_SEED = 0


def fixed_test_subset(total: int, size: int) -> np.ndarray:
    """Positions (sorted, int64) of the ``size`` test images measured out of a test split of ``total``:
    the first ``size`` entries of ``numpy.random.default_rng(TEST_SUBSET_SEED).permutation(total)``.

    The rule depends on nothing but ``total`` and ``size`` (no run seed, no held-out seed), so every
    run, logged step and sweep measures the same images, and a smaller subset lies inside a larger
    one. ``size`` must lie in 1..total (the error names ``test_size``/``--test-size``).
    """
    size = as_count("test_size (--test-size)", size, minimum=1)
    if size > total:
        raise ValueError(f"test_size (--test-size) must be at most {total}, the number of test images; got {size}. "
                         f"Lower it, or leave it out to measure on the whole test set")
    order = np.random.default_rng(TEST_SUBSET_SEED).permutation(total)
    return np.sort(order[:size]).astype(np.int64)


# The paper trains on the first 1000 training images; the held-out population sample (our addition,
# for the population within-class variance of Def. 3.1) defaults to 5000 of the unused ones.
PAPER_TRAIN_SIZE = 1000
DEFAULT_HELDOUT_SIZE = 5000


def paper_split(
    name: str,
    *,
    train_size: int = PAPER_TRAIN_SIZE,
    heldout_size: int | None = DEFAULT_HELDOUT_SIZE,
    data_dir: str | os.PathLike | None = None,
    heldout_seed: int = 0,
    test_size: int | None = None,
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> Split:
    """Build the paper's split of data set ``name`` (see :class:`Split`).

    ``train_size`` (default 1000, the paper's) must lie in 1..N-1 for N training images;
    ``heldout_size`` in 0..N - train_size, or ``None`` for all unused training images (see
    :func:`check_split_sizes`). The held-out sample is drawn without replacement with
    ``numpy.random.default_rng(heldout_seed)`` and kept in file order. ``test_size`` (None: the whole
    test split) keeps the test images :func:`fixed_test_subset` picks, labels alongside, in file
    order; it must lie in 1..(number of test images). ``data_dir``, ``verify`` and
    ``checksums`` are passed to :func:`read_dataset`. Sizes of the wrong type or sign are refused
    before any file is read.
    """
    record = dataset_record(name)
    train_size = as_count("train_size (--train-size)", train_size, minimum=1)
    if heldout_size is not None:
        heldout_size = as_count("heldout_size (--heldout-size)", heldout_size, minimum=0)
    seed = as_count("heldout_seed", heldout_seed, minimum=0)
    if test_size is not None:
        test_size = as_count("test_size (--test-size)", test_size, minimum=1)
    images, labels = read_dataset(record.name, data_dir=data_dir, split="train", verify=verify, checksums=checksums)
    heldout_size = check_split_sizes(record, train_size, heldout_size, labels.shape[0])
    rng = np.random.default_rng(seed)
    unused = labels.shape[0] - train_size
    heldout_indices = np.sort(train_size + rng.choice(unused, size=heldout_size, replace=False)).astype(np.int64)
    test_images, test_labels = read_dataset(record.name, data_dir=data_dir, split="test", verify=verify, checksums=checksums)
    if test_size is not None:
        kept = fixed_test_subset(test_labels.shape[0], test_size)
        test_images, test_labels = test_images[kept], test_labels[kept]
    return Split(
        name=record.name,
        num_classes=record.num_classes,
        train_x=normalize(images[:train_size], record.name),
        train_y=labels[:train_size].copy(),
        test_x=normalize(test_images, record.name),
        test_y=test_labels,
        heldout_x=normalize(images[heldout_indices], record.name),
        heldout_y=labels[heldout_indices],
        heldout_indices=heldout_indices,
    )
