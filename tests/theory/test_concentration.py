"""Tests for theory/concentration.py (Thm. 4.1, reconstructed)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ncgrok.theory.concentration import (
    complexity_ratio,
    heldout_variance_radius,
    spectral_complexity,
    uniform_variance_bound,
)


# ---------------------------------------------------------------------------------------------
# Hand values of the held-out radius 2 sqrt(log(2K/delta) / (2 floor(n/2)))


def test_radius_hand_values():
    # n = 100, K = 10, delta = 0.05: log(400) / 100 under the root, times 2.
    assert heldout_variance_radius(100, num_classes=10, delta=0.05) == pytest.approx(
        2 * math.sqrt(math.log(400) / 100), rel=1e-14
    )
    # odd n uses floor(n/2): n = 9 -> 4 disjoint pairs.
    assert heldout_variance_radius(9, num_classes=2, delta=0.5) == pytest.approx(
        2 * math.sqrt(math.log(8) / 8), rel=1e-14
    )
    # K = 1, delta = 2/e^2: log(2K/delta) = 2, n = 2 -> radius 2 sqrt(2/2) = 2.
    assert heldout_variance_radius(2, num_classes=1, delta=2 / math.e**2) == pytest.approx(2.0, rel=1e-14)


def test_radius_array_of_counts_uses_len_as_k():
    counts = np.array([2, 3, 50, 1, 0])
    radius = heldout_variance_radius(counts, delta=0.1)
    k = 5
    expected = [2 * math.sqrt(math.log(2 * k / 0.1) / (2 * m)) if m else math.inf for m in (1, 1, 25, 0, 0)]
    assert radius.shape == (5,)
    np.testing.assert_allclose(radius, expected, rtol=1e-14)
    assert np.isinf(radius[3]) and np.isinf(radius[4])
    # an explicit matching num_classes changes nothing
    np.testing.assert_allclose(heldout_variance_radius(counts, delta=0.1, num_classes=5), expected, rtol=1e-14)


def test_radius_small_single_count_is_infinite():
    assert heldout_variance_radius(1, num_classes=3, delta=0.1) == math.inf


def test_radius_shrinks_like_inverse_sqrt_n():
    r1 = heldout_variance_radius(100, num_classes=4, delta=0.05)
    r2 = heldout_variance_radius(400, num_classes=4, delta=0.05)
    assert r1 / r2 == pytest.approx(2.0, rel=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=10, delta=0.0, num_classes=2), "delta"),
        (dict(n=10, delta=1.0, num_classes=2), "delta"),
        (dict(n=10, delta=0.1), "num_classes"),
        (dict(n=-1, delta=0.1, num_classes=2), "n must be non-negative"),
        (dict(n=2.5, delta=0.1, num_classes=2), "whole"),
        (dict(n=[10, 10], delta=0.1, num_classes=3), "does not match"),
        (dict(n=10, delta=0.1, num_classes=0), "num_classes"),
    ],
)
def test_radius_rejects_bad_input(kwargs, match):
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=match):
        heldout_variance_radius(n, **kwargs)


# ---------------------------------------------------------------------------------------------
# Coverage of the held-out radius by simulation.


def _unbiased_variance_by_pairs(samples: np.ndarray) -> np.ndarray:
    """Mean over pairs i < j of ||h_i - h_j||^2 / 2, for a batch (draws, n, p).

    Independent of the library: a direct U-statistic, not n/(n-1) times the biased estimator.
    """
    diff = samples[:, :, None, :] - samples[:, None, :, :]
    squared = np.sum(diff**2, axis=-1) / 2.0
    n = samples.shape[1]
    upper = np.triu_indices(n, k=1)
    return squared[:, upper[0], upper[1]].mean(axis=1)


def _sphere(rng, size, dim):
    x = rng.standard_normal(size + (dim,))
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_unbiased_pair_estimator_matches_rescaled_biased_one():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((3, 7, 4))
    biased = np.mean(np.sum((h - h.mean(axis=1, keepdims=True)) ** 2, axis=-1), axis=1)
    np.testing.assert_allclose(_unbiased_variance_by_pairs(h), biased * 7 / 6, rtol=1e-12)


def test_heldout_radius_covers_population_variance():
    """|V^_c - V_c| <= radius for all K classes at once in at least 1 - delta of 2000 draws, and a
    radius 4 times smaller is missed far more often than delta (so the check can fail).

    Three classes with ||h|| <= 1 and known population variance:
      0: h = e_1 with probability 0.8, -e_1 with probability 0.2 (V = 4 * 0.2 * 0.8 = 0.64). The kernel
         ||h - h'||^2 / 2 takes only its extreme values 0 and 2 and, unlike the symmetric +-e_1 case,
         its conditional mean depends on h (a non-degenerate U-statistic, whose error shrinks only like
         1/sqrt(n)): the case where Hoeffding's radius is least loose;
      1: h = mu + r u, u uniform on the unit sphere of R^3, ||mu|| = 0.5, r = 0.5 (V = r^2 = 0.25),
      2: h = r s u, u uniform on the sphere, s uniform in {0, 1} (mean 0, V = r^2 / 2), r = 0.9.
    Coverage: Hoeffding's bound is conservative (no miss at this seed), so requiring a miss fraction
    of at most delta fails only if the radius is too small or the estimator wrong.
    Power: with n = 12 the radius divided by 4 is missed in 0.50 of the draws at this seed (binomial
    standard error about 0.011); the test requires more than 3 delta = 0.3, about 18 standard errors
    below, so it would fail for a radius 4 times too small (the previous version of this test, with a
    symmetric class 0, passed with such a radius).
    """
    rng = np.random.default_rng(20250920)
    draws, n, delta = 2000, 12, 0.1
    classes = []
    # class 0
    signs = np.where(rng.random((draws, n)) < 0.2, -1.0, 1.0)
    h0 = np.zeros((draws, n, 3))
    h0[..., 0] = signs
    classes.append((h0, 4 * 0.2 * 0.8))
    # class 1
    mu = np.array([0.5, 0.0, 0.0])
    h1 = mu + 0.5 * _sphere(rng, (draws, n), 3)
    classes.append((h1, 0.25))
    # class 2
    scale = rng.integers(0, 2, size=(draws, n, 1)).astype(float)
    h2 = 0.9 * scale * _sphere(rng, (draws, n), 3)
    classes.append((h2, 0.81 / 2))

    for h, _ in classes:
        assert np.all(np.linalg.norm(h, axis=-1) <= 1 + 1e-12)

    radius = heldout_variance_radius([n] * len(classes), delta=delta)
    assert radius.shape == (3,)
    gaps = np.stack([np.abs(_unbiased_variance_by_pairs(h) - v) for h, v in classes], axis=1)
    # sanity: the estimator is unbiased (mean gap of signed errors ~ 0 within 5 standard errors)
    for (h, v) in classes:
        estimates = _unbiased_variance_by_pairs(h)
        assert abs(estimates.mean() - v) < 5 * estimates.std() / math.sqrt(draws)

    def miss_rate(r):
        return 1.0 - np.all(gaps <= r, axis=1).mean()

    assert miss_rate(radius) <= delta
    assert miss_rate(radius / 4) > 3 * delta


# ---------------------------------------------------------------------------------------------
# Spectral complexity and the uniform bound shape


def test_spectral_complexity_hand_values():
    w1 = np.diag([3.0, -2.0])
    w2 = np.array([[0.0, 4.0, 0.0]])  # 1 x 3, norm 4
    assert spectral_complexity([w1]) == pytest.approx(3.0, rel=1e-14)
    assert spectral_complexity([w1, w2.T]) == pytest.approx(12.0, rel=1e-14)
    assert spectral_complexity(w1) == pytest.approx(3.0, rel=1e-14)  # single matrix
    # rank-one matrix u v^T has spectral norm ||u|| ||v||
    u, v = np.array([1.0, 2.0, 2.0]), np.array([3.0, 4.0])
    assert spectral_complexity([np.outer(u, v)]) == pytest.approx(15.0, rel=1e-12)


def test_spectral_complexity_bounds_relu_network_output():
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal((8, 5)), rng.standard_normal((6, 8)), rng.standard_normal((4, 6))]
    x = rng.standard_normal((200, 5))
    h = x
    for w in weights:
        h = np.maximum(h @ w.T, 0.0)
    ratio = spectral_complexity(weights) * np.linalg.norm(x, axis=1) - np.linalg.norm(h, axis=1)
    assert np.all(ratio >= -1e-9)


def test_complexity_ratio_hand_value():
    assert complexity_ratio([np.diag([2.0, 1.0]), np.eye(2) * 5], input_bound=3.0, feature_bound=6.0) == (
        pytest.approx(5.0, rel=1e-14)
    )


@pytest.mark.parametrize(
    "weights, kwargs",
    [
        ([], dict(input_bound=1.0, feature_bound=1.0)),
        ([np.ones(3)], dict(input_bound=1.0, feature_bound=1.0)),
        ([np.ones((2, 2))], dict(input_bound=0.0, feature_bound=1.0)),
        ([np.ones((2, 2))], dict(input_bound=1.0, feature_bound=-1.0)),
        ([np.full((2, 2), np.nan)], dict(input_bound=1.0, feature_bound=1.0)),
    ],
)
def test_complexity_ratio_rejects_bad_input(weights, kwargs):
    with pytest.raises(ValueError):
        complexity_ratio(weights, **kwargs)


def test_uniform_variance_bound_hand_values():
    value = uniform_variance_bound(
        rnc1_train=0.1, complexity_ratio=20.0, n=400, num_classes=10, delta=0.01, constant=2.0
    )
    assert value == pytest.approx(0.1 + 2.0 * 20.0 / 20.0 + math.sqrt(math.log(1000) / 400), rel=1e-14)
    values = uniform_variance_bound(
        rnc1_train=0.0, complexity_ratio=1.0, n=[1, 4], num_classes=1, delta=math.exp(-1), constant=1.0
    )
    np.testing.assert_allclose(values, [1.0 + 1.0, 0.5 + 0.5], rtol=1e-14)


@pytest.mark.parametrize(
    "override",
    [dict(rnc1_train=-0.1), dict(n=0), dict(delta=1.5), dict(num_classes=0), dict(constant=-1.0)],
)
def test_uniform_variance_bound_rejects_bad_input(override):
    kwargs = dict(rnc1_train=0.1, complexity_ratio=1.0, n=10, num_classes=2, delta=0.1, constant=1.0)
    kwargs.update(override)
    with pytest.raises(ValueError):
        uniform_variance_bound(**kwargs)
