"""Distributions with known mutual information, to measure the k-NN estimators' bias and spread.

Each :class:`KnownInformation` family draws paired samples and knows its true mutual information in
nats, in closed form (Gaussian determinants, the uniform-noise channel, multivariate Student-t
entropies) or, for label mixtures, by an exact-posterior Monte Carlo average whose standard error is
stated. Invertible maps of one argument (normal CDF, asinh, a signed power, a swiss-roll embedding, a
spiral twist) leave the mutual information unchanged, so they test the estimators on bent, bounded or
heavy-tailed supports with the truth still known. The tight-cluster label families model a collapsed
representation (features concentrated near K points), the regime where the paper measures compression.

``evaluate(n, seed)`` runs both estimators on every family; ``benchmarks/mi_validation.py`` prints the
table the README quotes, and ``tests/empirical/test_information_validation.py`` holds the targets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import digamma, gammaln, ndtr

from ncgrok.empirical.information.knn import ESTIMATORS, label_mutual_information, mutual_information

__all__ = ["KnownInformation", "FAMILIES", "LABEL_FAMILIES", "evaluate", "gaussian_information", "student_t_information"]


@dataclass(frozen=True)
class KnownInformation:
    """A family: ``sample(n, rng) -> (a, b)`` and its true mutual information ``truth`` in nats.
    ``labels`` marks families whose ``b`` is a vector of integer class labels."""

    name: str
    truth: float
    sample: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    labels: bool = False
    note: str = ""


# ---------------------------------------------------------------------------------------------- truths


def gaussian_information(covariance: np.ndarray, d_a: int) -> float:
    """``I(A;B)`` of a jointly Gaussian ``(A, B)``: ``(1/2) log(det S_aa det S_bb / det S)``."""
    _, full = np.linalg.slogdet(covariance)
    _, aa = np.linalg.slogdet(covariance[:d_a, :d_a])
    _, bb = np.linalg.slogdet(covariance[d_a:, d_a:])
    return 0.5 * (aa + bb - full)


def _student_t_entropy(dim: int, dof: float) -> float:
    """Differential entropy of a standard ``dim``-variate Student-t (identity scale) with ``dof`` degrees."""
    half = 0.5 * (dof + dim)
    return (gammaln(0.5 * dof) + 0.5 * dim * math.log(dof * math.pi) - gammaln(half)
            + half * (digamma(half) - digamma(0.5 * dof)))


def student_t_information(d_a: int, d_b: int, dof: float) -> float:
    """``I(A;B)`` for a standard multivariate Student-t split into ``d_a + d_b`` coordinates: the blocks
    are uncorrelated but dependent through the shared scale; marginals are Student-t with the same dof."""
    return _student_t_entropy(d_a, dof) + _student_t_entropy(d_b, dof) - _student_t_entropy(d_a + d_b, dof)


# ---------------------------------------------------------------------------------------------- samplers


def _paired_gaussian(correlations: tuple[float, ...]) -> tuple[Callable, float]:
    """Coordinate pairs (a_i, b_i) with correlation rho_i, independent across i."""
    rho = np.asarray(correlations, dtype=float)

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        a = rng.standard_normal((n, rho.size))
        b = rho * a + np.sqrt(1.0 - rho**2) * rng.standard_normal((n, rho.size))
        return a, b

    return sample, float(-0.5 * np.sum(np.log1p(-rho**2)))


def _dense_gaussian(d_a: int, d_b: int, seed: int = 7) -> tuple[Callable, float]:
    """A fixed dense covariance with every coordinate correlated with every other."""
    factor = np.random.default_rng(seed).standard_normal((d_a + d_b, d_a + d_b))
    covariance = factor @ factor.T / (d_a + d_b) + 0.3 * np.eye(d_a + d_b)
    root = np.linalg.cholesky(covariance)

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        joint = rng.standard_normal((n, d_a + d_b)) @ root.T
        return joint[:, :d_a], joint[:, d_a:]

    return sample, gaussian_information(covariance, d_a)


def _uniform_channel(dim: int, width: float) -> tuple[Callable, float]:
    """A ~ U(0,1)^dim, B = A + U(0, width)^dim, width <= 1: per coordinate h(B) = width/2 and
    h(B|A) = log(width), so I = dim (width/2 - log width)."""

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        a = rng.random((n, dim))
        return a, a + width * rng.random((n, dim))

    return sample, dim * (0.5 * width - math.log(width))


def _student_t(d_a: int, d_b: int, dof: float) -> tuple[Callable, float]:
    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        scale = np.sqrt(rng.chisquare(dof, size=(n, 1)) / dof)
        joint = rng.standard_normal((n, d_a + d_b)) / scale
        return joint[:, :d_a], joint[:, d_a:]

    return sample, student_t_information(d_a, d_b, dof)


def _mapped(base: tuple[Callable, float], a_map: Callable | None = None, b_map: Callable | None = None) -> tuple[Callable, float]:
    """``base`` with invertible maps applied to A and/or B (the mutual information is unchanged)."""
    draw, truth = base

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        a, b = draw(n, rng)
        return (a_map(a) if a_map else a), (b_map(b) if b_map else b)

    return sample, truth


def _swiss_roll(a: np.ndarray) -> np.ndarray:
    """A 1-D variable embedded on a swiss roll in the plane: t = 1.5 pi (1 + 2 Phi(a)), (t cos t, t sin t)."""
    t = 1.5 * math.pi * (1.0 + 2.0 * ndtr(a[:, 0]))
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=1)


def _spiral(a: np.ndarray) -> np.ndarray:
    """Coordinates pushed to the unit square by the normal CDF, then the first two twisted about the
    centre by an angle growing with the radius (a bijection of the plane)."""
    u = ndtr(a) - 0.5
    radius = np.hypot(u[:, 0], u[:, 1])
    angle = 2.0 * math.pi * radius
    cos, sin = np.cos(angle), np.sin(angle)
    twisted = np.stack([cos * u[:, 0] - sin * u[:, 1], sin * u[:, 0] + cos * u[:, 1]], axis=1)
    return np.concatenate([twisted, u[:, 2:]], axis=1)


def _signed_power(a: np.ndarray) -> np.ndarray:
    return np.sign(a) * np.abs(a) ** 1.5


def _label_mixture(num_classes: int, dim: int, spread: float, separation: float, seed: int = 11,
                   truth_samples: int = 400_000) -> tuple[Callable, float, str]:
    """Z | Y=c ~ N(mu_c, spread^2 I) with Y uniform on K classes and class means of pairwise distance
    about ``separation``. True I(Z;Y) = H(Y) - E[-log p(Y|Z)] by Monte Carlo with the exact posterior."""
    means = np.random.default_rng(seed).standard_normal((num_classes, dim))
    means *= separation / np.sqrt(2 * dim)

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, num_classes, n)
        return means[labels] + spread * rng.standard_normal((n, dim)), labels

    z, labels = sample(truth_samples, np.random.default_rng(seed + 1))
    logits = -0.5 * ((z[:, None, :] - means[None, :, :]) ** 2).sum(axis=2) / spread**2
    logits -= logits.max(axis=1, keepdims=True)
    log_posterior = logits[np.arange(z.shape[0]), labels] - np.log(np.exp(logits).sum(axis=1))
    conditional = -log_posterior
    truth = math.log(num_classes) - float(conditional.mean())
    error = float(conditional.std() / math.sqrt(truth_samples))
    return sample, truth, f"truth by Monte Carlo, standard error {error:.1e}"


def _family(name: str, made: tuple, *, labels: bool = False) -> KnownInformation:
    sample, truth, *note = made
    return KnownInformation(name, float(truth), sample, labels, note[0] if note else "closed form")


FAMILIES: tuple[KnownInformation, ...] = (
    _family("gaussian 1+1, rho 0.9", _paired_gaussian((0.9,))),
    _family("gaussian 3+3 sparse (rho 0.9, 0.6, 0)", _paired_gaussian((0.9, 0.6, 0.0))),
    _family("gaussian 3+3 dense", _dense_gaussian(3, 3)),
    _family("uniform channel 1-D, width 0.3", _uniform_channel(1, 0.3)),
    _family("uniform channel 2-D, width 0.5", _uniform_channel(2, 0.5)),
    _family("student-t 2+2, 1 dof", _student_t(2, 2, 1.0)),
    _family("student-t 2+2, 3 dof", _student_t(2, 2, 3.0)),
    _family("student-t 2+2, 1 dof, asinh", _mapped(_student_t(2, 2, 1.0), np.arcsinh, np.arcsinh)),
    _family("sparse 3+3 through normal CDF", _mapped(_paired_gaussian((0.9, 0.6, 0.0)), ndtr, ndtr)),
    _family("sparse 3+3 through signed power 1.5", _mapped(_paired_gaussian((0.9, 0.6, 0.0)), _signed_power, _signed_power)),
    _family("sparse 3+3 through CDF and spiral", _mapped(_paired_gaussian((0.9, 0.6, 0.0)), _spiral)),
    _family("1-D on a swiss roll, rho 0.75", _mapped(_paired_gaussian((0.75,)), _swiss_roll)),
)

LABEL_FAMILIES: tuple[KnownInformation, ...] = (
    _family("10 tight clusters in 4-D (collapsed)", _label_mixture(10, 4, spread=0.02, separation=4.0), labels=True),
    _family("10 overlapping clusters in 4-D", _label_mixture(10, 4, spread=1.0, separation=2.5), labels=True),
    _family("3 overlapping clusters in 2-D", _label_mixture(3, 2, spread=1.0, separation=1.5), labels=True),
)


def evaluate(n: int = 5000, seed: int = 0, *, k: int = 5,
             families: tuple[KnownInformation, ...] = FAMILIES + LABEL_FAMILIES) -> list[dict]:
    """One row per family: ``{"family", "truth", "note", "<estimator>": estimate, ...}`` for both
    estimators on the same ``n`` samples (drawn with ``numpy.random.default_rng(seed)`` per family)."""
    rows = []
    for family in families:
        a, b = family.sample(n, np.random.default_rng(seed))
        estimate = label_mutual_information if family.labels else mutual_information
        row = {"family": family.name, "truth": family.truth, "note": family.note}
        for estimator in ESTIMATORS:
            row[estimator] = estimate(a, b, estimator=estimator, k=k)
        rows.append(row)
    return rows
