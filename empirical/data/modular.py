"""Modular arithmetic, the tasks on which grokking was first reported (Power et al. 2022; Nanda et al. 2023).

The population is finite and enumerable:

* ``addition``: every pair ``(a, b)`` with ``a, b`` in ``0..p-1``, label ``(a + b) mod p``; ``p**2``
  examples, each class holding exactly ``p`` of them;
* ``division``: every pair with ``b != 0``, label ``a / b = a * b^{-1} mod p`` (``p`` prime, so every
  ``b != 0`` has an inverse); ``p (p - 1)`` examples, each class holding exactly ``p - 1`` of them
  (for a fixed ``b``, ``a -> a b^{-1}`` is a bijection of the residues).

A seeded permutation of the pairs puts the first ``round(train_fraction * n)`` of them in the training
set and the rest in the test set, so the test set is the whole population minus the training set,
enumerable and known exactly.

Inputs are the sequence ``a, b, "="`` as one-hot rows over ``p + 1`` tokens (token ``p`` is ``"="``):
an array of shape ``(3, p + 1)`` per example, in float32, which the engine casts to its dtype. A
linear map without bias on a one-hot row is the usual token-embedding lookup.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncgrok.empirical.data.splits import Split
from ncgrok.theory._validation import as_count

__all__ = [
    "MAX_MODULUS",
    "MODULAR_DATASETS",
    "OPERATIONS",
    "ModularSplit",
    "all_pairs",
    "encode_pairs",
    "is_prime",
    "modular_addition_split",
    "modular_division_split",
    "modular_split",
    "pair_labels",
    "population_pairs",
    "population_split",
    "training_pair_count",
]

OPERATIONS = ("addition", "division")
# The data set names a sweep (``--dataset``) gives them, and the operation of each.
MODULAR_DATASETS = {"modular-addition": "addition", "modular-division": "division"}
# The one-hot inputs of all pairs take 12 p^3 bytes in float32 (p = 97: 11 MB; 257: 204 MB): a larger
# modulus would exhaust memory long before training, so it is refused up front.
MAX_MODULUS = 257


@dataclass(frozen=True, eq=False)
class ModularSplit:
    """A training/test split of every pair of one modular operation.

    ``train_pairs``/``test_pairs`` (n, 2) int64 ``(a, b)`` rows; ``*_x`` their one-hot encodings
    (n, 3, p + 1) float32; ``*_y`` the labels (n,) int64 (:func:`pair_labels`).
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
    operation: str = "addition"

    @property
    def num_classes(self) -> int:
        return self.modulus

    @property
    def input_shape(self) -> tuple[int, int]:
        return (3, self.modulus + 1)


def is_prime(n: int) -> bool:
    """Whether the integer ``n`` is prime (trial division; ``n`` is at most a few hundred here)."""
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def _modulus(modulus: int, operation: str = "addition") -> int:
    """Check ``modulus`` (and ``operation``) and return it as an int."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")
    p = as_count("modulus (--modulus)", modulus, minimum=2)
    if p > MAX_MODULUS:
        raise ValueError(f"modulus (--modulus) must be at most {MAX_MODULUS} (the one-hot inputs of all pairs take "
                         f"12 p^3 bytes), got {p}")
    if operation == "division" and not is_prime(p):
        raise ValueError(f"modulus (--modulus) must be prime for modular division (every b != 0 needs an inverse "
                         f"mod p), got {p}; for instance 97 or 113")
    return p


def all_pairs(modulus: int) -> np.ndarray:
    """Every ``(a, b)`` in ``{0..p-1}^2`` as (p**2, 2) int64 rows, ``a`` major."""
    p = _modulus(modulus)
    a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
    return np.stack([a, b], axis=1)


def population_pairs(modulus: int, operation: str = "addition") -> np.ndarray:
    """Every pair of ``operation``'s population in ``a``-major order: all ``p**2`` pairs for addition,
    the ``p (p - 1)`` pairs with ``b != 0`` for division."""
    pairs = all_pairs(_modulus(modulus, operation))
    return pairs if operation == "addition" else pairs[pairs[:, 1] != 0]


def pair_labels(pairs: np.ndarray, modulus: int, operation: str = "addition") -> np.ndarray:
    """Labels (n,) int64 of (n, 2) pairs: ``(a + b) mod p``, or ``a * b^{-1} mod p`` for division."""
    p = _modulus(modulus, operation)
    pairs = np.asarray(pairs, dtype=np.int64)
    if operation == "addition":
        return (pairs.sum(axis=1) % p).astype(np.int64)
    if pairs.size and np.any(pairs[:, 1] == 0):
        raise ValueError("modular division is undefined for b = 0; the population holds only pairs with b != 0")
    inverses = np.array([0] + [pow(b, -1, p) for b in range(1, p)], dtype=np.int64)
    return (pairs[:, 0] * inverses[pairs[:, 1]] % p).astype(np.int64)


def encode_pairs(pairs: np.ndarray, modulus: int) -> np.ndarray:
    """One-hot rows of the token sequence ``a, b, "="`` (token ``p``): (n, 3, p + 1) float32."""
    p = _modulus(modulus)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.size and (pairs.min() < 0 or pairs.max() >= p):
        raise ValueError(f"pairs must be an (n, 2) array of residues in 0..{p - 1}, got shape {pairs.shape}")
    tokens = np.concatenate([pairs.astype(np.int64), np.full((len(pairs), 1), p, dtype=np.int64)], axis=1)
    out = np.zeros((len(pairs), 3, p + 1), dtype=np.float32)
    np.put_along_axis(out, tokens[:, :, None], 1.0, axis=2)
    return out


def training_pair_count(modulus: int, train_fraction: float, operation: str = "addition") -> int:
    """``round(train_fraction * n)`` for the ``n`` pairs of the population; it must leave at least one
    pair in the training set and one in the test set."""
    total = len(population_pairs(modulus, operation))
    fraction = float(train_fraction)
    n_train = int(round(fraction * total)) if np.isfinite(fraction) else -1
    if not 1 <= n_train <= total - 1:
        raise ValueError(
            f"train_fraction (--train-fraction) must leave at least one of the {total} pairs in the training "
            f"set and one in the test set (a number strictly between 0 and 1), got {train_fraction!r}"
        )
    return n_train


def modular_split(operation: str, modulus: int, train_fraction: float, *, seed: int = 0) -> ModularSplit:
    """All pairs of ``operation`` (:data:`OPERATIONS`) mod ``modulus``, split by
    ``numpy.random.default_rng(seed).permutation`` of :func:`population_pairs`.

    The training set is the first :func:`training_pair_count` pairs of the permutation (kept in
    permutation order), the test set the rest.
    """
    p = _modulus(modulus, operation)
    seed = as_count("seed (--seed)", seed, minimum=0)
    n_train = training_pair_count(p, train_fraction, operation)
    population = population_pairs(p, operation)
    pairs = population[np.random.default_rng(seed).permutation(len(population))]
    train, test = pairs[:n_train], pairs[n_train:]
    return ModularSplit(
        modulus=p,
        train_fraction=float(train_fraction),
        seed=seed,
        train_pairs=train,
        test_pairs=test,
        train_x=encode_pairs(train, p),
        train_y=pair_labels(train, p, operation),
        test_x=encode_pairs(test, p),
        test_y=pair_labels(test, p, operation),
        operation=operation,
    )


def modular_addition_split(modulus: int = 97, train_fraction: float = 0.3, *, seed: int = 0) -> ModularSplit:
    """:func:`modular_split` of ``(a + b) mod p``."""
    return modular_split("addition", modulus, train_fraction, seed=seed)


def modular_division_split(modulus: int = 97, train_fraction: float = 0.3, *, seed: int = 0) -> ModularSplit:
    """:func:`modular_split` of ``a / b mod p`` (``b != 0``; ``p`` prime)."""
    return modular_split("division", modulus, train_fraction, seed=seed)


def population_split(split: ModularSplit, name: str) -> Split:
    """``split`` as the :class:`Split` the image data sets give (what a sweep trains and measures on):
    train = the training pairs; test = every unseen pair; held-out = the unseen pairs as well, so the
    held-out columns measure the unseen part of the population; ``heldout_indices`` are the unseen
    pairs' positions in :func:`population_pairs`."""
    p = split.modulus
    columns = p if split.operation == "addition" else p - 1
    a, b = split.test_pairs[:, 0], split.test_pairs[:, 1]
    positions = a * columns + (b if split.operation == "addition" else b - 1)
    return Split(name=name, num_classes=p, train_x=split.train_x, train_y=split.train_y, test_x=split.test_x,
                 test_y=split.test_y, heldout_x=split.test_x, heldout_y=split.test_y,
                 heldout_indices=positions.astype(np.int64))
