"""Concentration of the within-class variance (Thm. 4.1, **reconstructed**).

Thm. 4.1 of Sakamoto & Sato bounds the gap between the population within-class variance ``V_c`` and
its value on the training set by a term of order ``1/sqrt(n_c)`` that holds uniformly over networks,
through a Rademacher-complexity term proportional to ``Pi(g) B_x / B_g`` (``Pi(g)`` the product of
the layers' spectral norms, ``B_x = sup ||x||``, ``B_g = sup ||g(x)||``). The paper's hypotheses and
constants were not recovered, so this module provides two things, each named for what it is:

1. :func:`heldout_variance_radius` -- a **rigorous** confidence radius for a *fixed* feature map
   (one that did not see the sample, i.e. measured on held-out data). It is our own derivation, not
   the paper's statement: the unbiased within-class variance of the rescaled features
   ``g~ = g / B_g`` (so ``||g~|| <= 1``) is the U-statistic of order 2

       V^_c = (1 / (n_c (n_c - 1))) sum_{i != j} ||h_i - h_j||^2 / 2,

   whose kernel ``||h - h'||^2 / 2`` lies in ``[0, 2]`` and has mean ``V_c``. Hoeffding's inequality
   for U-statistics (the average of ``floor(n_c/2)`` independent kernel evaluations, averaged over
   permutations) gives ``P(|V^_c - V_c| >= t) <= 2 exp(-2 floor(n_c/2) t^2 / 2^2)``; a union bound over
   the ``K`` classes then gives, with probability at least ``1 - delta`` for all classes at once,

       |V^_c - V_c| <= 2 sqrt( log(2K/delta) / (2 floor(n_c/2)) ).

2. The **shape** of the uniform (training-set) bound: :func:`spectral_complexity`,
   :func:`complexity_ratio` (computed exactly for a given network and data) and
   :func:`uniform_variance_bound`, ``RNC1_train + C ratio / sqrt(n) + sqrt(log(K/delta)/n)`` with the
   unknown constant ``C`` an explicit argument. This is not a proven bound for any particular ``C``;
   it lets one see numerically how large the complexity term is during training.

Nothing here does I/O or imports torch.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ncgrok.theory._validation import as_array, as_count, as_scalar, to_numpy

__all__ = [
    "heldout_variance_radius",
    "spectral_complexity",
    "complexity_ratio",
    "uniform_variance_bound",
]


def _counts(name: str, value: Any) -> tuple[np.ndarray, bool]:
    """Per-class sample counts as an int array (and whether the input was a single number)."""
    array = as_array(name, value, ndim=(0, 1), nonnegative=True)
    if array.size and np.any(array != np.floor(array)):
        raise ValueError(f"{name} must hold whole numbers (sample counts), got {array}")
    return array.astype(np.int64), array.ndim == 0


def heldout_variance_radius(n: Any, *, delta: float, num_classes: int | None = None) -> Any:
    """Held-out confidence radius for the per-class within-class variance (Thm. 4.1, reconstructed).

    Returns ``2 sqrt(log(2K/delta) / (2 floor(n_c/2)))`` for each class: with probability at least
    ``1 - delta``, simultaneously for all ``K`` classes, the unbiased within-class variance ``V^_c``
    of the *rescaled* features differs from the population value ``V_c`` (Def. 3.1) by at most this
    radius. This is a rigorous Hoeffding bound for U-statistics derived here (see the module
    docstring); the paper's own constants for Thm. 4.1 were not recovered.

    Assumptions: the features are rescaled so that ``||g~(x)|| <= 1`` for every ``x`` (divide by
    ``B_g = sup ||g||``; with an estimated ``B_g`` the guarantee holds only if no feature exceeds it);
    the ``n_c`` samples of class ``c`` are i.i.d. and **independent of ``g``** (held-out data, never
    the training set the network was fitted on); ``V^_c`` is the *unbiased* estimator
    (``n_c/(n_c-1)`` times the mean squared distance to the class mean).

    Args:
        n: either one count (an int; then ``num_classes`` is required and every class is assumed to
            have ``n`` samples) or an array of ``K`` per-class counts.
        delta: failure probability, ``0 < delta < 1``.
        num_classes: ``K`` for the union bound. Defaults to ``len(n)`` when ``n`` is an array; if
            given together with an array it must equal ``len(n)``.

    Returns:
        A float for a single count, else an array of shape ``(K,)``. A class with ``n_c < 2`` has no
        pair of samples, hence no unbiased variance: its radius is ``inf`` (not an error, so one tiny
        class does not hide the others).
    """
    delta = as_scalar("delta", delta, open_unit=True)
    counts, scalar = _counts("n", n)
    if scalar:
        if num_classes is None:
            raise ValueError(
                "num_classes is required when n is a single count; pass num_classes=K "
                "or an array of per-class counts"
            )
        num_classes = as_count("num_classes", num_classes, minimum=1)
    else:
        if counts.size == 0:
            raise ValueError("n must hold at least one per-class count")
        if num_classes is None:
            num_classes = counts.size
        else:
            num_classes = as_count("num_classes", num_classes, minimum=1)
            if num_classes != counts.size:
                raise ValueError(
                    f"num_classes={num_classes} does not match the {counts.size} per-class counts in n"
                )
    pairs = np.floor_divide(counts, 2).astype(np.float64)
    log_term = math.log(2.0 * num_classes / delta)
    with np.errstate(divide="ignore"):
        radius = np.where(pairs > 0, 2.0 * np.sqrt(log_term / (2.0 * np.maximum(pairs, 1.0))), np.inf)
    return float(radius) if scalar else radius


def _matrices(weights: Any) -> list[np.ndarray]:
    weights = to_numpy(weights)
    if isinstance(weights, np.ndarray) and weights.ndim == 2:
        weights = [weights]
    try:
        items = list(weights)
    except TypeError:
        raise ValueError("weights must be a sequence of 2-D weight matrices") from None
    if not items:
        raise ValueError("weights must hold at least one 2-D weight matrix")
    matrices = []
    for index, item in enumerate(items):
        matrix = as_array(f"weights[{index}]", item, ndim=2)
        if matrix.size == 0:
            raise ValueError(f"weights[{index}] is empty (shape {matrix.shape})")
        matrices.append(matrix)
    return matrices


def spectral_complexity(weights: Sequence[Any]) -> float:
    """Product of the spectral norms of the layers, ``Pi(g) = prod_l ||W_l||_2`` (Thm. 4.1).

    This is the network-dependent factor of the reconstructed Rademacher term of Thm. 4.1
    (**reconstructed**). ``weights`` is a sequence of 2-D matrices (a single 2-D matrix is accepted as
    a one-layer network); reshape convolution kernels yourself if you want a (loose) surrogate.
    For 1-Lipschitz positively homogeneous activations (ReLU) ``||g(x)|| <= Pi(g) ||x||``.
    """
    product = 1.0
    for matrix in _matrices(weights):
        product *= float(np.linalg.norm(matrix, ord=2))
    return product


def complexity_ratio(weights: Sequence[Any], *, input_bound: float, feature_bound: float) -> float:
    """The ratio ``Pi(g) B_x / B_g`` controlling the uniform term of Thm. 4.1 (**reconstructed**).

    Args:
        weights: the layers of ``g`` (see :func:`spectral_complexity`).
        input_bound: ``B_x = sup ||x||`` (on data: the largest input norm), ``> 0``.
        feature_bound: ``B_g = sup ||g(x)||`` (on data: the ``"sup"`` or ``"mean"`` estimator), ``> 0``.

    For a ReLU network without biases the ratio is at least 1; large values mean the
    worst-case complexity term is far from the features' actual scale.
    """
    input_bound = as_scalar("input_bound", input_bound, positive=True)
    feature_bound = as_scalar("feature_bound", feature_bound, positive=True)
    return spectral_complexity(weights) * input_bound / feature_bound


def uniform_variance_bound(
    *,
    rnc1_train: float,
    complexity_ratio: float,
    n: Any,
    num_classes: int,
    delta: float,
    constant: float,
) -> Any:
    """Shape of the uniform (training-set) bound of Thm. 4.1 (**reconstructed**, constant explicit).

    Returns ``rnc1_train + constant * complexity_ratio / sqrt(n) + sqrt(log(num_classes/delta) / n)``.

    The paper states a bound of this shape (population within-class variance at most the training
    value plus a Rademacher term ``O(Pi(g) B_x / (B_g sqrt(n_c)))`` plus a confidence term) but its
    constants were not recovered; ``constant`` is the unknown ``C``, so the result is a *bound shape*
    to compare against measurements, not a guarantee.

    Args:
        rnc1_train: the within-class variance of rescaled features on the training set, ``>= 0``.
        complexity_ratio: ``Pi(g) B_x / B_g`` (see :func:`complexity_ratio`), ``>= 0``.
        n: per-class sample count ``n_c`` (a number or an array, e.g. to plot against ``n``), ``>= 1``.
        num_classes: ``K >= 1``.
        delta: failure probability in ``(0, 1)``.
        constant: the explicit constant ``C >= 0``.
    """
    rnc1_train = as_scalar("rnc1_train", rnc1_train, nonnegative=True)
    ratio = as_scalar("complexity_ratio", complexity_ratio, nonnegative=True)
    num_classes = as_count("num_classes", num_classes, minimum=1)
    delta = as_scalar("delta", delta, open_unit=True)
    constant = as_scalar("constant", constant, nonnegative=True)
    counts = as_array("n", n, ndim=(0, 1))
    if counts.size and np.any(counts < 1):
        raise ValueError(f"n must be >= 1, got minimum {counts.min():.6g}")
    value = rnc1_train + constant * ratio / np.sqrt(counts) + np.sqrt(math.log(num_classes / delta) / counts)
    return float(value) if counts.ndim == 0 else value
