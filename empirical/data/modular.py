"""Modular addition, the task on which grokking was first reported (Power et al. 2022; Nanda et al. 2023).

The population is finite: every pair ``(a, b)`` with ``a, b`` in ``0..p-1`` and label ``(a + b) mod p``,
``p**2`` examples, each class holding exactly ``p`` of them. A seeded permutation of the pairs puts the
first ``round(train_fraction * p**2)`` of them in the training set and the rest in the test set, so the
test set is the whole population minus the training set, enumerable and known exactly.

Inputs are the sequence ``a, b, "="`` as one-hot rows over ``p + 1`` tokens (token ``p`` is ``"="``):
an array of shape ``(3, p + 1)`` per example, in float32, which the engine casts to its dtype. A
linear map without bias on a one-hot row is the usual token-embedding lookup.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncgrok.theory._validation import as_count

__all__ = ["ModularSplit", "all_pairs", "encode_pairs", "modular_addition_split"]


@dataclass(frozen=True, eq=False)
class ModularSplit:
    """A training/test split of all ``p**2`` pairs of modular addition.

    ``train_pairs``/``test_pairs`` (n, 2) int64 ``(a, b)`` rows; ``*_x`` their one-hot encodings
    (n, 3, p + 1) float32; ``*_y`` the labels ``(a + b) mod p`` (n,) int64.
    """

    modulus: int
    train_fraction: float
    seed: int
    train_pairs: np.ndarray
    test_pairs: np.ndarray
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def num_classes(self) -> int:
        return self.modulus

    @property
    def input_shape(self) -> tuple[int, int]:
        return (3, self.modulus + 1)


def all_pairs(modulus: int) -> np.ndarray:
    """Every ``(a, b)`` in ``{0..p-1}^2`` as (p**2, 2) int64 rows, ``a`` major."""
    p = as_count("modulus (--modulus)", modulus, minimum=2)
    a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
    return np.stack([a, b], axis=1)


def encode_pairs(pairs: np.ndarray, modulus: int) -> np.ndarray:
    """One-hot rows of the token sequence ``a, b, "="`` (token ``p``): (n, 3, p + 1) float32."""
    p = as_count("modulus (--modulus)", modulus, minimum=2)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.size and (pairs.min() < 0 or pairs.max() >= p):
        raise ValueError(f"pairs must be an (n, 2) array of residues in 0..{p - 1}, got shape {pairs.shape}")
    tokens = np.concatenate([pairs.astype(np.int64), np.full((len(pairs), 1), p, dtype=np.int64)], axis=1)
    out = np.zeros((len(pairs), 3, p + 1), dtype=np.float32)
    np.put_along_axis(out, tokens[:, :, None], 1.0, axis=2)
    return out


def modular_addition_split(modulus: int = 97, train_fraction: float = 0.3, *, seed: int = 0) -> ModularSplit:
    """All pairs of ``(a + b) mod p``, split by ``numpy.random.default_rng(seed).permutation``.

    The training set is the first ``round(train_fraction * p**2)`` pairs of the permutation (kept in
    permutation order), the test set the rest. ``train_fraction`` must leave at least one pair on
    each side.
    """
    p = as_count("modulus (--modulus)", modulus, minimum=2)
    seed = as_count("seed (--seed)", seed, minimum=0)
    fraction = float(train_fraction)
    total = p * p
    n_train = int(round(fraction * total)) if np.isfinite(fraction) else -1
    if not 1 <= n_train <= total - 1:
        raise ValueError(
            f"train_fraction (--train-fraction) must leave at least one of the {total} pairs in the training "
            f"set and one in the test set (a number strictly between 0 and 1), got {train_fraction!r}"
        )
    pairs = all_pairs(p)[np.random.default_rng(seed).permutation(total)]
    train, test = pairs[:n_train], pairs[n_train:]
    return ModularSplit(
        modulus=p,
        train_fraction=fraction,
        seed=seed,
        train_pairs=train,
        test_pairs=test,
        train_x=encode_pairs(train, p),
        train_y=(train.sum(axis=1) % p).astype(np.int64),
        test_x=encode_pairs(test, p),
        test_y=(test.sum(axis=1) % p).astype(np.int64),
    )
