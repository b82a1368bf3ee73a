"""Generalization bound from within-class variance (Thm. 3.2 of Sakamoto & Sato, arXiv:2509.20829).

Status: **published**. For any feature map ``g`` and last layer ``(W, b)`` with prediction
``argmax_k <w_k, g(x)> + b_k``, the multi-class error is at most

    sum_c p_c sum_{k != c} (1 + max(m_ck, 0)^2 / V_c)^(-1),

where ``u_ck = (w_c - w_k) / ||w_c - w_k||``, ``m_ck = <mu_c, u_ck> + (b_c - b_k) / (||w_c - w_k|| B_g)``,
``mu_c`` and ``V_c = Tr C_c`` are the class mean and within-class variance of the rescaled features
``g~ = g / B_g``. The argument: class ``c`` is misclassified only if some ``k`` scores at least as high
(union bound over ``k``), and the score gap ``<u_ck, g~> + beta_ck`` has mean ``m_ck`` and variance
``u_ck^T C_c u_ck <= V_c``, so Cantelli's one-sided inequality bounds each pair.

Conventions used throughout this module (they make every term well defined):

* **Units.** ``means``, ``variances`` and ``covariances`` are statistics of the *unscaled* features
  ``g``; the keyword ``scale`` is ``B_g`` and rescales them (means / B_g, variances and covariances
  / B_g^2). With ``scale=1`` (the default) pass statistics of ``g~`` directly. ``bias`` is always the
  last layer's bias in logit units. The bound itself is invariant under ``scale`` (margins and
  standard deviations rescale together); ``scale`` matters for the reported margins.
* **Ties count as errors.** The event bounded is "some ``k != c`` scores at least as high as ``c``",
  which is the error of ``argmax`` under the least favourable tie breaking.
* ``m_ck <= 0`` gives the term 1; ``V_c = 0`` (or ``s_ck = 0``) with ``m_ck > 0`` gives 0.
* ``w_c = w_k`` (exactly equal rows, ``c != k``): the direction is undefined, the margin is reported as
  ``-inf`` and the term is 1.
* The diagonal ``c = k`` is not a competitor: its margin is reported as ``+inf`` and its term as 0, so
  row sums of the term matrix are the per-class inner sums.
* The plain bound can exceed 1 (it is then vacuous, not wrong).

Two tightenings, both valid and both off by default: ``directional=True`` replaces ``V_c`` with
``s_ck^2 = u_ck^T C_c u_ck`` (needs covariances); ``clipped=True`` caps each class's inner sum at 1
(a probability never exceeds 1).

For checking, :func:`gaussian_pairwise_error` gives the exact pairwise error ``Phi(-m_ck / s_ck)``
and :func:`gaussian_error_monte_carlo` the true multi-class error when ``g(X) | Y=c`` is Gaussian.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from ._validation import as_array, as_count, as_priors, as_psd_stack, as_scalar

__all__ = [
    "CantelliBound",
    "MonteCarloError",
    "cantelli_term",
    "pairwise_margins",
    "cantelli_bound",
    "gaussian_pairwise_error",
    "gaussian_error_monte_carlo",
]


@dataclass(frozen=True)
class CantelliBound:
    """The bound of Thm. 3.2 with its parts (returned by ``cantelli_bound(..., return_terms=True)``).

    Attributes:
        bound: ``sum_c priors[c] * class_sums[c]``.
        terms: (K, K) Cantelli terms, ``terms[c, k]`` for true class ``c`` against competitor ``k``;
            the diagonal is 0.
        class_sums: (K,) inner sums ``sum_{k != c} terms[c, k]`` (capped at 1 when ``clipped``).
        margins: (K, K) margins ``m_ck`` in units of ``g~`` (diagonal ``+inf``, ``w_c = w_k`` pairs
            ``-inf``).
        pair_variances: (K, K) variance used for each pair, in units of ``g~``: ``V_c`` (plain) or
            ``s_ck^2`` (directional); the diagonal is 0.
        priors: (K,) class priors used.
        directional: whether ``s_ck^2`` replaced ``V_c``.
        clipped: whether class sums were capped at 1.
    """

    bound: float
    terms: np.ndarray
    class_sums: np.ndarray
    margins: np.ndarray
    pair_variances: np.ndarray
    priors: np.ndarray
    directional: bool
    clipped: bool


@dataclass(frozen=True)
class MonteCarloError:
    """Monte Carlo estimate of the multi-class error (see :func:`gaussian_error_monte_carlo`).

    Attributes:
        estimate: ``sum_c p_c * class_errors[c]``.
        standard_error: its standard error, ``sqrt(sum_c p_c^2 e_c (1 - e_c) / n)`` (stratified
            sampling, ``n`` draws per class).
        class_errors: (K,) estimated ``P[error | Y = c]``.
        class_standard_errors: (K,) binomial standard error of each class estimate.
        samples_per_class: ``n``.
    """

    estimate: float
    standard_error: float
    class_errors: np.ndarray
    class_standard_errors: np.ndarray
    samples_per_class: int


# ----------------------------------------------------------------------------------------------
# Validation helpers specific to this module.


def _means_and_weights(means: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    means = as_array("means", means, ndim=2)
    num_classes, dim = means.shape
    if num_classes < 2:
        raise ValueError(f"means must hold at least 2 classes (one row per class), got {num_classes}")
    if dim < 1:
        raise ValueError("means must have at least one feature column, got shape (K, 0)")
    weights = as_array("weights", weights, shape=(num_classes, dim))
    return means, weights


def _bias(bias: Any, num_classes: int) -> np.ndarray:
    if bias is None:
        return np.zeros(num_classes)
    return as_array("bias", bias, shape=(num_classes,))


def _scale(scale: Any) -> float:
    return as_scalar("scale", scale, positive=True)


def _covariances(covariances: Any, num_classes: int, dim: int) -> np.ndarray:
    covariances = as_psd_stack("covariances", covariances, num_classes=num_classes)
    if covariances.shape[1] != dim:
        raise ValueError(
            f"covariances must have shape ({num_classes}, {dim}, {dim}) to match means, "
            f"got {covariances.shape}"
        )
    return 0.5 * (covariances + np.swapaxes(covariances, 1, 2))


def _directional_variances(covariances: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``s_ck^2 = u_ck^T C_c u_ck`` for every pair, clipped at 0 against rounding."""
    quadratic = np.einsum("ckp,cpq,ckq->ck", directions, covariances, directions)
    return np.maximum(quadratic, 0.0)


# ----------------------------------------------------------------------------------------------
# Public functions.


def cantelli_term(margin: Any, variance: Any) -> np.ndarray | float:
    """Cantelli's one-sided tail bound ``(1 + max(m, 0)^2 / V)^(-1)``, elementwise (Thm. 3.2).

    This is the per-pair term of Thm. 3.2 (**published**): for a random variable with mean ``m`` and
    variance at most ``V``, the probability of being ``<= 0`` is at most this value. It holds for any
    distribution with finite variance.

    Conventions: ``m <= 0`` gives 1 (no information); ``V = 0`` with ``m > 0`` gives 0;
    ``m = +inf`` gives 0 and ``m = -inf`` gives 1 (these are the codes :func:`pairwise_margins` uses
    for the diagonal and for equal weight rows).

    Args:
        margin: margins ``m`` (any shape; ``+-inf`` allowed, NaN rejected).
        variance: variances ``V >= 0`` (finite), broadcast against ``margin``.

    Returns:
        An array of the broadcast shape, or a float when both inputs are scalars.
    """
    margin = as_array("margin", margin, finite=False)
    if margin.size and np.any(np.isnan(margin)):
        raise ValueError("margin contains NaN values; remove or fix them")
    variance = as_array("variance", variance, nonnegative=True)
    try:
        margin, variance = np.broadcast_arrays(margin, variance)
    except ValueError:
        raise ValueError(
            f"margin and variance must broadcast together, got shapes {margin.shape} and {variance.shape}"
        ) from None
    positive = np.maximum(margin, 0.0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        # Work with m / sqrt(V) so that tiny margins and tiny variances never produce 0/0.
        ratio = np.where(variance > 0, positive / np.sqrt(variance), np.inf)
        term = np.where(positive > 0, 1.0 / (1.0 + ratio * ratio), 1.0)
    term = np.asarray(term, dtype=np.float64)
    return float(term) if term.ndim == 0 else term


def pairwise_margins(
    means: Any, weights: Any, *, bias: Any = None, scale: Any = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise margins ``m_ck`` and unit directions ``u_ck`` of Thm. 3.2 (**published**).

    ``u_ck = (w_c - w_k) / ||w_c - w_k||`` and
    ``m_ck = <mu_c / B_g, u_ck> + (b_c - b_k) / (||w_c - w_k|| B_g)``, i.e. the mean of the (rescaled)
    score gap between class ``c`` and competitor ``k`` on inputs of class ``c``, in units of ``g~``.

    Args:
        means: (K, p) class means of the unscaled features ``g`` (K >= 2).
        weights: (K, p) last-layer weight rows ``w_k``.
        bias: optional (K,) last-layer bias.
        scale: ``B_g > 0``; means are divided by it (``scale=1``: means are already of ``g~``).

    Returns:
        ``(margins, directions)`` of shapes (K, K) and (K, K, p). Diagonal: margin ``+inf``, direction
        0 (a class is not its own competitor). Pairs with ``w_c = w_k`` exactly: margin ``-inf``,
        direction 0 (the convention "term 1").
    """
    means, weights = _means_and_weights(means, weights)
    num_classes = means.shape[0]
    bias = _bias(bias, num_classes)
    scale = _scale(scale)

    differences = weights[:, None, :] - weights[None, :, :]  # [c, k] = w_c - w_k
    norms = np.linalg.norm(differences, axis=2)
    degenerate = norms == 0.0
    safe_norms = np.where(degenerate, 1.0, norms)
    directions = differences / safe_norms[:, :, None]
    directions[degenerate] = 0.0

    margins = np.einsum("cp,ckp->ck", means / scale, directions)
    margins = margins + (bias[:, None] - bias[None, :]) / (safe_norms * scale)
    margins[degenerate] = -np.inf
    diagonal = np.arange(num_classes)
    margins[diagonal, diagonal] = np.inf
    return margins, directions


def cantelli_bound(
    means: Any,
    weights: Any,
    *,
    variances: Any = None,
    covariances: Any = None,
    priors: Any = None,
    bias: Any = None,
    scale: Any = 1.0,
    directional: bool = False,
    clipped: bool = False,
    return_terms: bool = False,
) -> float | CantelliBound:
    """Upper bound on the multi-class error from class means and within-class spread (Thm. 3.2).

    Status **published**. Computes ``sum_c p_c sum_{k != c} (1 + max(m_ck, 0)^2 / V_c)^(-1)``, a bound
    on ``P[argmax_k <w_k, g(X)> + b_k != Y]`` (ties counted as errors) that holds for *every*
    distribution of the features: only the class means and the within-class variances enter.
    Assumptions: the statistics are population quantities (with estimates the bound inherits their
    error; see Thm. 4.1) and each class has finite variance.

    Units: ``means``, ``variances`` and ``covariances`` describe the unscaled features ``g``;
    ``scale = B_g`` rescales them to ``g~`` (means / B_g, variances and covariances / B_g^2).
    With ``scale=1`` pass ``g~`` statistics. The value of the bound does not depend on ``scale``.

    Args:
        means: (K, p) class means.
        weights: (K, p) last-layer weight rows.
        variances: (K,) within-class variances ``V_c = Tr C_c``; give this or ``covariances``.
        covariances: (K, p, p) class covariances (symmetric PSD); ``V_c`` is their trace.
        priors: (K,) class priors summing to 1; uniform by default.
        bias: (K,) last-layer bias; zero by default.
        scale: ``B_g > 0``.
        directional: use ``s_ck^2 = u_ck^T C_c u_ck`` instead of ``V_c`` (needs ``covariances``);
            never looser than the plain bound.
        clipped: cap each class's inner sum at 1; never looser than the unclipped bound.
        return_terms: return a :class:`CantelliBound` with per-pair terms and per-class sums instead
            of a float.

    Conventions: see the module docstring (``m_ck <= 0`` -> 1, zero variance with ``m_ck > 0`` -> 0,
    ``w_c = w_k`` -> 1). The unclipped bound may exceed 1.
    """
    means, weights = _means_and_weights(means, weights)
    num_classes, dim = means.shape
    scale = _scale(scale)
    priors = as_priors(priors, num_classes)
    if variances is not None and covariances is not None:
        raise ValueError(
            "give variances or covariances, not both (variances are the traces of the covariances)"
        )
    if variances is None and covariances is None:
        raise ValueError("cantelli_bound needs variances (K,) or covariances (K, p, p)")
    if directional and covariances is None:
        raise ValueError("directional=True needs covariances (K, p, p), not only variances")

    margins, directions = pairwise_margins(means, weights, bias=bias, scale=scale)
    if covariances is not None:
        covariances = _covariances(covariances, num_classes, dim) / scale**2
        class_variances = np.maximum(np.trace(covariances, axis1=1, axis2=2), 0.0)
    else:
        class_variances = as_array("variances", variances, shape=(num_classes,), nonnegative=True) / scale**2

    if directional:
        pair_variances = _directional_variances(covariances, directions)
    else:
        pair_variances = np.repeat(class_variances[:, None], num_classes, axis=1)
    diagonal = np.arange(num_classes)
    pair_variances[diagonal, diagonal] = 0.0

    terms = np.asarray(cantelli_term(margins, pair_variances))
    class_sums = terms.sum(axis=1)
    if clipped:
        class_sums = np.minimum(class_sums, 1.0)
    bound = float(priors @ class_sums)
    if not return_terms:
        return bound
    return CantelliBound(
        bound=bound,
        terms=terms,
        class_sums=class_sums,
        margins=margins,
        pair_variances=pair_variances,
        priors=priors,
        directional=bool(directional),
        clipped=bool(clipped),
    )


def gaussian_pairwise_error(
    means: Any, covariances: Any, weights: Any, *, bias: Any = None, scale: Any = 1.0
) -> np.ndarray:
    """Exact pairwise error ``P[<w_c - w_k, g> + b_c - b_k <= 0 | Y = c]`` for Gaussian classes.

    The check for Thm. 3.2 (**published**): when ``g(X) | Y=c ~ N(mean_c, C_c)`` the score gap is
    Gaussian, so the pairwise error is exactly ``Phi(-m_ck / s_ck)`` with ``s_ck^2 = u_ck^T C_c u_ck``
    (in ``g~`` units; the ratio does not depend on ``scale``). Each entry is at most the matching
    Cantelli term.

    Conventions: ``s_ck = 0`` gives 1 if ``m_ck <= 0`` and 0 otherwise (a tie counts as an error);
    for ``w_c = w_k`` the gap is the constant ``b_c - b_k`` so the error is 1 if ``b_c <= b_k`` and
    0 otherwise (exact, unlike the bound's conservative 1); the diagonal is 0.

    Args:
        means: (K, p) class means of ``g``; covariances: (K, p, p) PSD class covariances of ``g``;
        weights: (K, p); bias: optional (K,); scale: ``B_g > 0`` (see :func:`cantelli_bound`).

    Returns:
        (K, K) array, ``[c, k]`` = error probability of class ``c`` against competitor ``k``.
    """
    means, weights = _means_and_weights(means, weights)
    num_classes, dim = means.shape
    bias_array = _bias(bias, num_classes)
    scale = _scale(scale)
    covariances = _covariances(covariances, num_classes, dim) / scale**2
    margins, directions = pairwise_margins(means, weights, bias=bias_array, scale=scale)
    deviations = np.sqrt(_directional_variances(covariances, directions))

    finite = np.isfinite(margins)
    safe_margins = np.where(finite, margins, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(deviations > 0, -safe_margins / np.where(deviations > 0, deviations, 1.0), 0.0)
    error = np.where(deviations > 0, ndtr(ratio), np.where(safe_margins <= 0, 1.0, 0.0))

    degenerate = np.isneginf(margins)
    constant_gap = bias_array[:, None] - bias_array[None, :]
    error = np.where(degenerate, np.where(constant_gap <= 0, 1.0, 0.0), error)
    diagonal = np.arange(num_classes)
    error[diagonal, diagonal] = 0.0
    return error


def gaussian_error_monte_carlo(
    means: Any,
    covariances: Any,
    weights: Any,
    *,
    bias: Any = None,
    priors: Any = None,
    samples: Any = 100_000,
    seed: Any = 0,
) -> MonteCarloError:
    """Monte Carlo estimate of the true multi-class error for Gaussian class conditionals.

    The check for Thm. 3.2 (**published**): draws ``samples`` features from each class
    ``g | Y=c ~ N(mean_c, C_c)`` (stratified sampling), classifies with
    ``argmax_k <w_k, g> + b_k`` and counts an error when some ``k != c`` scores *at least* as high as
    ``c`` (ties are errors, the event Thm. 3.2 bounds). Returns ``sum_c p_c e_c`` with its standard
    error. The error does not depend on ``B_g``, so there is no ``scale``: pass statistics of ``g``
    in the units the classifier sees.

    Args:
        means: (K, p); covariances: (K, p, p) PSD (singular allowed); weights: (K, p);
        bias: optional (K,); priors: optional (K,), uniform by default.
        samples: number of draws **per class** (>= 1).
        seed: integer seed (>= 0) or ``numpy.random.Generator``; ``None`` draws fresh entropy.
    """
    means, weights = _means_and_weights(means, weights)
    num_classes, dim = means.shape
    bias = _bias(bias, num_classes)
    priors = as_priors(priors, num_classes)
    covariances = _covariances(covariances, num_classes, dim)
    samples = as_count("samples", samples, minimum=1)
    if isinstance(seed, np.random.Generator):
        generator = seed
    else:
        generator = np.random.default_rng(None if seed is None else as_count("seed", seed, minimum=0))

    eigenvalues, eigenvectors = np.linalg.eigh(covariances)
    factors = eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))[:, None, :]  # C_c = F F^T
    chunk = max(1, 2**20 // max(dim, num_classes))
    class_errors = np.empty(num_classes)
    for c in range(num_classes):
        errors = 0
        remaining = samples
        while remaining > 0:
            size = min(chunk, remaining)
            remaining -= size
            features = means[c] + generator.standard_normal((size, dim)) @ factors[c].T
            scores = features @ weights.T + bias
            own = scores[:, c].copy()
            scores[:, c] = -np.inf
            errors += int(np.count_nonzero(scores.max(axis=1) >= own))
        class_errors[c] = errors / samples
    class_standard_errors = np.sqrt(class_errors * (1.0 - class_errors) / samples)
    estimate = float(priors @ class_errors)
    standard_error = float(math.sqrt(float(np.sum((priors * class_standard_errors) ** 2))))
    return MonteCarloError(
        estimate=estimate,
        standard_error=standard_error,
        class_errors=class_errors,
        class_standard_errors=class_standard_errors,
        samples_per_class=samples,
    )
