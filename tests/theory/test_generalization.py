"""Tests of theory.generalization (Thm. 3.2, the Cantelli generalization bound).

Exact answers used: hand-computed Cantelli terms, the Gaussian pairwise error Phi(-m/s) written with
math.erfc, an independent Monte Carlo written inline, and the inequality bound >= truth.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ncgrok.theory.generalization import (
    CantelliBound,
    cantelli_bound,
    cantelli_term,
    gaussian_error_monte_carlo,
    gaussian_pairwise_error,
    pairwise_margins,
)


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


# ---------------------------------------------------------------------------------------------
# cantelli_term: hand values and conventions


@pytest.mark.parametrize(
    "margin, variance, expected",
    [
        (1.0, 1.0, 0.5),
        (2.0, 1.0, 0.2),
        (1.0, 4.0, 0.8),
        (3.0, 0.5, 1.0 / (1.0 + 9.0 / 0.5)),
        (-1.0, 1.0, 1.0),  # m <= 0 -> 1
        (0.0, 1.0, 1.0),
        (0.0, 0.0, 1.0),  # m <= 0 -> 1 even with zero variance
        (-2.0, 0.0, 1.0),
        (1.0, 0.0, 0.0),  # V = 0, m > 0 -> 0
        (1e-9, 0.0, 0.0),
        (math.inf, 1.0, 0.0),
        (-math.inf, 1.0, 1.0),
        (1e200, 1.0, 0.0),  # no overflow trouble
        (2.2e-308, 0.0, 0.0),  # m^2 underflows: still V = 0, m > 0 -> 0 (not 0/0)
        (1e-200, 1e-300, 1.0 / (1.0 + 1e-100)),
    ],
)
def test_cantelli_term_hand_values(margin, variance, expected):
    value = cantelli_term(margin, variance)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-14, abs=1e-300)


def test_cantelli_term_broadcasts():
    margins = np.array([[0.0], [1.0], [2.0]])
    variances = np.array([1.0, 4.0])
    expected = np.array([[1.0, 1.0], [0.5, 0.8], [0.2, 0.5]])
    np.testing.assert_allclose(cantelli_term(margins, variances), expected, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# pairwise_margins and cantelli_bound: hand-computed examples


def test_two_class_one_dimension_by_hand():
    # g~ means 2 and -1; w = (1, -1): u_12 = +1, u_21 = -1; m_12 = 2, m_21 = 1.
    means = [[2.0], [-1.0]]
    weights = [[1.0], [-1.0]]
    margins, directions = pairwise_margins(means, weights)
    assert margins[0, 1] == pytest.approx(2.0)
    assert margins[1, 0] == pytest.approx(1.0)
    assert margins[0, 0] == math.inf and margins[1, 1] == math.inf
    np.testing.assert_allclose(directions[0, 1], [1.0])
    np.testing.assert_allclose(directions[1, 0], [-1.0])
    np.testing.assert_allclose(directions[0, 0], [0.0])
    # V = (1, 4): terms 1/(1 + 4/1) = 0.2 and 1/(1 + 1/4) = 0.8, priors 1/2 -> 0.5
    assert cantelli_bound(means, weights, variances=[1.0, 4.0]) == pytest.approx(0.5, rel=1e-14)
    # priors (0.9, 0.1): 0.9 * 0.2 + 0.1 * 0.8 = 0.26
    assert cantelli_bound(means, weights, variances=[1.0, 4.0], priors=[0.9, 0.1]) == pytest.approx(0.26)


def test_bias_and_scale_by_hand():
    # Unscaled g means 2 and -1, B_g = 2, bias (0.5, 0): ||w_1 - w_2|| = 2.
    # m_12 = 2/2 + 0.5/(2*2) = 1.125; m_21 = <-0.5, -1> - 0.5/(2*2) = 0.375.
    means = [[2.0], [-1.0]]
    weights = [[1.0], [-1.0]]
    bias = [0.5, 0.0]
    margins, _ = pairwise_margins(means, weights, bias=bias, scale=2.0)
    assert margins[0, 1] == pytest.approx(1.125, rel=1e-14)
    assert margins[1, 0] == pytest.approx(0.375, rel=1e-14)
    # Unscaled variances (1, 4) -> g~ variances (0.25, 1).
    expected = 0.5 * (1.0 / (1.0 + 1.125**2 / 0.25)) + 0.5 * (1.0 / (1.0 + 0.375**2 / 1.0))
    bound = cantelli_bound(means, weights, variances=[1.0, 4.0], bias=bias, scale=2.0)
    assert bound == pytest.approx(expected, rel=1e-14)
    # The same statistics already in g~ units with scale 1 give the same bound.
    same = cantelli_bound([[1.0], [-0.5]], weights, variances=[0.25, 1.0], bias=[0.25, 0.0])
    assert same == pytest.approx(expected, rel=1e-14)


def test_three_classes_orthogonal_by_hand():
    # mu_c = 2 e_c, W = I: u_ck = (e_c - e_k)/sqrt 2, m_ck = sqrt 2 for every pair.
    means = 2.0 * np.eye(3)
    weights = np.eye(3)
    margins, _ = pairwise_margins(means, weights)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(margins[off], math.sqrt(2.0), rtol=1e-14)
    # V_c = 1: term 1/(1+2) = 1/3; class sums 2/3; bound 2/3.
    result = cantelli_bound(means, weights, variances=[1.0, 1.0, 1.0], return_terms=True)
    assert isinstance(result, CantelliBound)
    assert result.bound == pytest.approx(2.0 / 3.0, rel=1e-14)
    np.testing.assert_allclose(result.terms[off], 1.0 / 3.0, rtol=1e-14)
    np.testing.assert_allclose(np.diag(result.terms), 0.0)
    np.testing.assert_allclose(result.class_sums, 2.0 / 3.0, rtol=1e-14)
    # V_c = 4: term 1/(1 + 1/2) = 2/3; sums 4/3; clipped sums 1.
    assert cantelli_bound(means, weights, variances=[4.0] * 3) == pytest.approx(4.0 / 3.0, rel=1e-14)
    assert cantelli_bound(means, weights, variances=[4.0] * 3, clipped=True) == pytest.approx(1.0)
    # C_c = I (V_c = 3): plain term 1/(1 + 2/3) = 0.6; directional s^2 = u^T u = 1 -> 1/3.
    covariances = np.stack([np.eye(3)] * 3)
    assert cantelli_bound(means, weights, covariances=covariances) == pytest.approx(1.2, rel=1e-14)
    directional = cantelli_bound(means, weights, covariances=covariances, directional=True, return_terms=True)
    assert directional.bound == pytest.approx(2.0 / 3.0, rel=1e-14)
    np.testing.assert_allclose(directional.pair_variances[off], 1.0, rtol=1e-14)


def test_equal_weight_rows_give_term_one():
    means = [[5.0, 0.0], [0.0, 5.0], [-5.0, 0.0]]
    weights = [[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]  # classes 0 and 1 share a weight row
    margins, directions = pairwise_margins(means, weights, bias=[1.0, 0.0, 0.0])
    assert margins[0, 1] == -math.inf and margins[1, 0] == -math.inf
    np.testing.assert_allclose(directions[0, 1], 0.0)
    result = cantelli_bound(means, weights, variances=[0.0, 0.0, 0.0], return_terms=True)
    assert result.terms[0, 1] == 1.0 and result.terms[1, 0] == 1.0
    # Class 0 vs 2: u = (1, 0), m = 5 > 0 with V = 0 -> term 0.
    assert result.terms[0, 2] == 0.0
    # Exact Gaussian error of a degenerate pair is decided by the bias: b_0 > b_1 -> 0, b_1 < b_0 -> 1.
    error = gaussian_pairwise_error(means, np.zeros((3, 2, 2)), weights, bias=[1.0, 0.0, 0.0])
    assert error[0, 1] == 0.0 and error[1, 0] == 1.0


def test_zero_variance_conventions_in_bound():
    # Perfectly collapsed, correctly classified classes: bound 0. Misclassified mean: term 1.
    means = [[1.0], [-1.0]]
    assert cantelli_bound(means, [[1.0], [-1.0]], variances=[0.0, 0.0]) == 0.0
    assert cantelli_bound(means, [[-1.0], [1.0]], variances=[0.0, 0.0]) == 1.0


# ---------------------------------------------------------------------------------------------
# Gaussian checks


def test_gaussian_pairwise_error_by_hand():
    # 1-D: g | Y=1 ~ N(1, 0.25), g | Y=2 ~ N(-0.5, 1); w = (1, -1), bias (0.2, 0).
    # Gap for class 1: 2 g + 0.2 ~ N(2.2, 1) -> error Phi(-2.2).
    # Gap for class 2: -2 g - 0.2 ~ N(0.8, 4) -> error Phi(-0.4).
    means = [[1.0], [-0.5]]
    covariances = [[[0.25]], [[1.0]]]
    weights = [[1.0], [-1.0]]
    bias = [0.2, 0.0]
    for scale in (1.0, 3.0):
        error = gaussian_pairwise_error(means, covariances, weights, bias=bias, scale=scale)
        assert error[0, 1] == pytest.approx(normal_cdf(-2.2), rel=1e-12)
        assert error[1, 0] == pytest.approx(normal_cdf(-0.4), rel=1e-12)
        assert error[0, 0] == 0.0 and error[1, 1] == 0.0


def test_gaussian_pairwise_error_zero_spread():
    means = [[1.0, 0.0], [0.0, 0.0]]
    weights = [[1.0, 0.0], [-1.0, 0.0]]
    # Class 1's mean sits exactly on the boundary (tie -> error 1); class 0 is strictly correct.
    error = gaussian_pairwise_error(means, np.zeros((2, 2, 2)), weights)
    assert error[0, 1] == 0.0 and error[1, 0] == 1.0
    # Spread orthogonal to w_0 - w_1 does not matter.
    covariances = np.array([np.diag([0.0, 5.0]), np.diag([0.0, 5.0])])
    np.testing.assert_array_equal(gaussian_pairwise_error(means, covariances, weights), error)


def test_two_class_gaussian_against_inline_monte_carlo():
    # Independent sampler: the multi-class error for K=2 is p_0 Phi(-m_01/s_01) + p_1 Phi(-m_10/s_10).
    rng = np.random.default_rng(12345)
    means = np.array([[0.6, -0.2, 0.1], [-0.3, 0.4, 0.0]])
    factors = rng.normal(size=(2, 3, 3)) * 0.5
    covariances = factors @ np.swapaxes(factors, 1, 2)
    weights = rng.normal(size=(2, 3))
    bias = np.array([0.1, -0.05])
    priors = np.array([0.3, 0.7])
    exact = gaussian_pairwise_error(means, covariances, weights, bias=bias)
    n = 200_000
    for c in range(2):
        sample = rng.multivariate_normal(means[c], covariances[c], size=n)
        scores = sample @ weights.T + bias
        empirical = np.mean(scores[:, 1 - c] >= scores[:, c])
        standard_error = math.sqrt(exact[c, 1 - c] * (1 - exact[c, 1 - c]) / n)
        # 5 standard errors: a false failure has probability ~6e-7 (and the seed is fixed).
        assert abs(empirical - exact[c, 1 - c]) <= 5 * standard_error
    truth = priors[0] * exact[0, 1] + priors[1] * exact[1, 0]
    result = gaussian_error_monte_carlo(
        means, covariances, weights, bias=bias, priors=priors, samples=200_000, seed=7
    )
    assert result.samples_per_class == 200_000
    assert result.standard_error > 0
    assert abs(result.estimate - truth) <= 5 * result.standard_error
    np.testing.assert_allclose(result.estimate, priors @ result.class_errors)


def test_monte_carlo_counts_ties_as_errors():
    # Zero covariance, all scores equal: every draw is a tie, hence an error.
    result = gaussian_error_monte_carlo(
        [[0.0], [0.0], [0.0]], np.zeros((3, 1, 1)), [[1.0], [2.0], [3.0]], samples=10
    )
    assert result.estimate == 1.0 and result.standard_error == 0.0


def test_monte_carlo_is_reproducible():
    args = ([[1.0], [-1.0]], [[[1.0]], [[1.0]]], [[1.0], [-1.0]])
    first = gaussian_error_monte_carlo(*args, samples=1000, seed=3)
    second = gaussian_error_monte_carlo(*args, samples=1000, seed=3)
    assert first.estimate == second.estimate


# ---------------------------------------------------------------------------------------------
# Property tests: the bound is never below the truth for Gaussian class conditionals.


@st.composite
def gaussian_problems(draw):
    num_classes = draw(st.integers(2, 4))
    dim = draw(st.integers(1, 4))
    element = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=64)
    means = draw(hnp.arrays(np.float64, (num_classes, dim), elements=element))
    weights = draw(hnp.arrays(np.float64, (num_classes, dim), elements=element))
    bias = draw(hnp.arrays(np.float64, (num_classes,), elements=element))
    factors = draw(hnp.arrays(np.float64, (num_classes, dim, dim), elements=st.floats(-1.5, 1.5, width=64)))
    covariances = factors @ np.swapaxes(factors, 1, 2)
    raw_priors = draw(hnp.arrays(np.float64, (num_classes,), elements=st.floats(0.05, 1.0, width=64)))
    priors = raw_priors / raw_priors.sum()
    scale = draw(st.sampled_from([1.0, 0.5, 4.0]))
    return means, covariances, weights, bias, priors, scale


@settings(max_examples=100, deadline=None)
@given(gaussian_problems())
def test_cantelli_terms_dominate_gaussian_pairwise_error(problem):
    means, covariances, weights, bias, priors, scale = problem
    exact = gaussian_pairwise_error(means, covariances, weights, bias=bias, scale=scale)
    for directional in (False, True):
        result = cantelli_bound(
            means, weights, covariances=covariances, bias=bias, scale=scale,
            directional=directional, return_terms=True,
        )
        assert np.all(result.terms >= exact - 1e-12)
    # Exact union bound over competitors also never exceeds the Cantelli bound.
    assert priors @ exact.sum(axis=1) <= cantelli_bound(
        means, weights, covariances=covariances, priors=priors, bias=bias, scale=scale
    ) + 1e-12


@settings(max_examples=100, deadline=None)
@given(gaussian_problems())
def test_tightenings_never_looser(problem):
    means, covariances, weights, bias, priors, scale = problem
    common = dict(covariances=covariances, priors=priors, bias=bias, scale=scale)
    plain = cantelli_bound(means, weights, **common)
    directional = cantelli_bound(means, weights, directional=True, **common)
    clipped = cantelli_bound(means, weights, clipped=True, **common)
    both = cantelli_bound(means, weights, directional=True, clipped=True, **common)
    tolerance = 1e-12
    assert directional <= plain + tolerance
    assert clipped <= plain + tolerance
    assert both <= min(directional, clipped) + tolerance
    assert clipped <= 1.0 + tolerance
    # variances = traces gives the same plain bound as covariances.
    traces = np.trace(covariances, axis1=1, axis2=2)
    same = cantelli_bound(means, weights, variances=traces, priors=priors, bias=bias, scale=scale)
    assert same == pytest.approx(plain, rel=1e-12, abs=1e-12)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(gaussian_problems())
def test_bound_dominates_monte_carlo_error(problem):
    """Thm. 3.2 against the true multi-class error of Gaussian class conditionals.

    The bound is a theorem, so ``bound >= truth``; the test fails only if the Monte Carlo estimate
    overshoots the truth by more than 4 standard errors (plus 1e-3 for the case of a zero estimated
    standard error), which has probability below ~3e-5 per example under the normal approximation.
    Both the examples (derandomize=True) and the sampler seeds are fixed, so the run is reproducible.
    The tightest variant (directional and clipped) is tested, which also covers the others.
    """
    means, covariances, weights, bias, priors, scale = problem
    bound = cantelli_bound(
        means, weights, covariances=covariances, priors=priors, bias=bias, scale=scale,
        directional=True, clipped=True,
    )
    truth = gaussian_error_monte_carlo(
        means, covariances, weights, bias=bias, priors=priors, samples=20_000, seed=2024
    )
    assert bound >= truth.estimate - 4 * truth.standard_error - 1e-3


@settings(max_examples=50, deadline=None)
@given(gaussian_problems(), st.floats(0.01, 100.0))
def test_bound_is_scale_invariant(problem, factor):
    # Multiplying g (means by t, covariances by t^2) and B_g by t leaves g~, hence the bound, unchanged.
    means, covariances, weights, bias, priors, scale = problem
    base = cantelli_bound(means, weights, covariances=covariances, priors=priors, bias=bias, scale=scale)
    scaled = cantelli_bound(
        factor * means, weights, covariances=factor**2 * covariances, priors=priors,
        bias=bias * factor, scale=scale * factor,
    )
    # bias scales with g so that the classifier's decisions are unchanged
    assert scaled == pytest.approx(base, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad inputs


GOOD_MEANS = [[1.0, 0.0], [0.0, 1.0]]
GOOD_WEIGHTS = [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(means=[[1.0, 0.0]], weights=[[1.0, 0.0]], variances=[1.0]), "means"),
        (dict(means=[1.0, 0.0], weights=GOOD_WEIGHTS, variances=[1.0, 1.0]), "means"),
        (dict(means=[[np.nan, 0.0], [0.0, 1.0]], weights=GOOD_WEIGHTS, variances=[1.0, 1.0]), "means"),
        (dict(means=GOOD_MEANS, weights=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], variances=[1.0, 1.0]), "weights"),
        (dict(means=GOOD_MEANS, weights=[[1.0, 0.0]], variances=[1.0, 1.0]), "weights"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, -0.1]), "variances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, np.nan]), "variances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, np.inf]), "variances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0, 1.0]), "variances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS), "variances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0], directional=True), "covariances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0],
              covariances=np.stack([np.eye(2)] * 2)), "covariances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS,
              covariances=np.stack([np.eye(2), np.diag([1.0, -1.0])])), "covariances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS,
              covariances=np.stack([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]])), "covariances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, covariances=np.stack([np.eye(3)] * 2)), "covariances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, covariances=np.stack([np.eye(2)] * 3)), "covariances"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0], priors=[0.5, 0.6]), "priors"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0], priors=[1.5, -0.5]), "priors"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0], scale=0.0), "scale"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0], scale=-1.0), "scale"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0], bias=[0.0]), "bias"),
        (dict(means=GOOD_MEANS, weights=GOOD_WEIGHTS, variances=[1.0, 1.0], bias=[0.0, np.nan]), "bias"),
    ],
)
def test_cantelli_bound_rejects_bad_inputs(kwargs, name):
    kwargs = dict(kwargs)
    means = kwargs.pop("means")
    weights = kwargs.pop("weights")
    with pytest.raises(ValueError, match=name):
        cantelli_bound(means, weights, **kwargs)


def test_cantelli_term_rejects_bad_inputs():
    with pytest.raises(ValueError, match="margin"):
        cantelli_term(np.nan, 1.0)
    with pytest.raises(ValueError, match="variance"):
        cantelli_term(1.0, -1.0)
    with pytest.raises(ValueError, match="variance"):
        cantelli_term(1.0, np.nan)
    with pytest.raises(ValueError, match="margin and variance"):
        cantelli_term([1.0, 2.0], [1.0, 2.0, 3.0])


def test_gaussian_functions_reject_bad_inputs():
    covariances = np.stack([np.eye(2)] * 2)
    with pytest.raises(ValueError, match="covariances"):
        gaussian_pairwise_error(GOOD_MEANS, np.stack([np.eye(2), -np.eye(2)]), GOOD_WEIGHTS)
    with pytest.raises(ValueError, match="scale"):
        gaussian_pairwise_error(GOOD_MEANS, covariances, GOOD_WEIGHTS, scale=0)
    with pytest.raises(ValueError, match="weights"):
        gaussian_error_monte_carlo(GOOD_MEANS, covariances, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="samples"):
        gaussian_error_monte_carlo(GOOD_MEANS, covariances, GOOD_WEIGHTS, samples=0)
    with pytest.raises(ValueError, match="priors"):
        gaussian_error_monte_carlo(GOOD_MEANS, covariances, GOOD_WEIGHTS, priors=[0.2, 0.2])
    with pytest.raises(ValueError, match="seed"):
        gaussian_error_monte_carlo(GOOD_MEANS, covariances, GOOD_WEIGHTS, seed=-1)
