"""Tests of theory.information (Thm. 3.4 IB bounds, Prop. 3.3 Fano form).

Exact answers used: the 1-D closed form 0.5 log(1 + c / sigma^2), hand arithmetic, a Monte Carlo
estimate of E[log p(z|x) - log p(z|y)] written with scipy.stats, numerical integration of a
non-Gaussian entropy, and exact discrete mutual information of random joint distributions.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, stats

from ncgrok.theory.information import (
    fano_information_lower_bound,
    gaussian_conditional_information,
    ib_bound_logdet,
    ib_bound_trace,
    required_information_rise,
)


# ---------------------------------------------------------------------------------------------
# Thm. 3.4: hand values and closed forms


def test_trace_form_by_hand():
    # V = (1 + 3)/2 = 2, sigma = 2: 2 / (2 * 4) = 0.25
    assert ib_bound_trace(sigma=2.0, variances=[1.0, 3.0]) == pytest.approx(0.25, rel=1e-15)
    # priors (0.25, 0.75): V = 0.25 + 2.25 = 2.5 -> 2.5 / 8
    assert ib_bound_trace(sigma=2.0, variances=[1.0, 3.0], priors=[0.25, 0.75]) == pytest.approx(2.5 / 8)
    covariances = np.array([np.diag([0.5, 0.5]), [[2.0, 1.0], [1.0, 1.0]]])  # traces 1 and 3
    assert ib_bound_trace(sigma=2.0, covariances=covariances) == pytest.approx(0.25, rel=1e-15)


@pytest.mark.parametrize("variance, sigma", [(1.0, 1.0), (0.3, 0.1), (5.0, 2.0), (0.0, 1.0), (1e-12, 1.0)])
def test_one_dimensional_closed_form(variance, sigma):
    expected = 0.5 * math.log1p(variance / sigma**2)
    covariances = [[[variance]]]
    assert ib_bound_logdet(covariances, sigma=sigma) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert gaussian_conditional_information(covariances, sigma=sigma) == pytest.approx(
        expected, rel=1e-9, abs=1e-14
    )


def test_logdet_of_diagonal_covariances_by_hand():
    covariances = np.array([np.diag([1.0, 3.0]), np.diag([0.0, 8.0])])
    sigma = 1.0
    expected = 0.3 * 0.5 * (math.log(2.0) + math.log(4.0)) + 0.7 * 0.5 * (math.log(1.0) + math.log(9.0))
    assert ib_bound_logdet(covariances, sigma=sigma, priors=[0.3, 0.7]) == pytest.approx(expected, rel=1e-14)
    assert gaussian_conditional_information(covariances, sigma=sigma, priors=[0.3, 0.7]) == pytest.approx(
        expected, rel=1e-12
    )


def test_gaussian_information_against_monte_carlo():
    """I(Z;X|Y) = E[log p(z | g) - log p(z | y)] for a linear g on a Gaussian mixture, sampled.

    Tolerance: 5 standard errors of the sample mean (false failure probability ~6e-7, seed fixed).
    """
    rng = np.random.default_rng(2509)
    dim, sigma = 3, 0.7
    factors = rng.normal(size=(2, dim, dim)) * 0.6
    covariances = factors @ np.swapaxes(factors, 1, 2)
    means = rng.normal(size=(2, dim))
    priors = np.array([0.4, 0.6])
    n = 100_000
    class_means, class_variances = [], []
    for c in range(2):
        features = rng.multivariate_normal(means[c], covariances[c], size=n)
        noisy = features + sigma * rng.standard_normal((n, dim))
        log_given_input = stats.norm.logpdf(noisy, loc=features, scale=sigma).sum(axis=1)
        log_given_class = stats.multivariate_normal(means[c], covariances[c] + sigma**2 * np.eye(dim)).logpdf(noisy)
        ratio = log_given_input - log_given_class
        class_means.append(ratio.mean())
        class_variances.append(ratio.var(ddof=1) / n)
    estimate = priors @ np.array(class_means)
    standard_error = math.sqrt(priors**2 @ np.array(class_variances))
    exact = gaussian_conditional_information(covariances, sigma=sigma, priors=priors)
    assert abs(exact - estimate) <= 5 * standard_error
    assert ib_bound_logdet(covariances, sigma=sigma, priors=priors) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("amplitude, sigma", [(1.0, 1.0), (2.0, 0.5), (0.3, 1.0)])
def test_logdet_bounds_a_non_gaussian_case(amplitude, sigma):
    """g | Y ~ uniform on {-a, +a}: Z | Y is a two-Gaussian mixture, its entropy by quadrature.

    Its covariance is a^2, so Thm. 3.4's log-det form 0.5 log(1 + a^2/sigma^2) must bound the truth,
    strictly (the mixture is not Gaussian), and the Gaussian formula is not the truth here.
    """
    def density(z):
        return 0.5 * (stats.norm.pdf(z, amplitude, sigma) + stats.norm.pdf(z, -amplitude, sigma))

    def integrand(z):
        f = density(z)
        return -f * math.log(f) if f > 0 else 0.0

    limit = amplitude + 12 * sigma
    entropy, _ = integrate.quad(integrand, -limit, limit, points=[-amplitude, amplitude], epsabs=1e-12, limit=200)
    truth = entropy - 0.5 * math.log(2 * math.pi * math.e * sigma**2)
    bound = ib_bound_logdet([[[amplitude**2]]], sigma=sigma)
    assert 0 < truth < bound
    assert truth <= math.log(2.0) + 1e-9  # at most the entropy of the two-point g
    assert bound <= ib_bound_trace(sigma=sigma, variances=[amplitude**2])


# ---------------------------------------------------------------------------------------------
# Thm. 3.4: properties on random PSD matrices


@st.composite
def covariance_problems(draw):
    num_classes = draw(st.integers(1, 4))
    dim = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    eigenvalues = draw(
        hnp.arrays(np.float64, (num_classes, dim), elements=st.floats(0.0, 10.0, width=64))
    )
    rotations = np.linalg.qr(rng.normal(size=(num_classes, dim, dim)))[0]
    covariances = (rotations * eigenvalues[:, None, :]) @ np.swapaxes(rotations, 1, 2)
    covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2))
    raw = draw(hnp.arrays(np.float64, (num_classes,), elements=st.floats(0.05, 1.0, width=64)))
    priors = raw / raw.sum()
    sigma = draw(st.floats(0.1, 10.0))
    return covariances, eigenvalues, rotations, priors, sigma


@settings(max_examples=100, deadline=None)
@given(covariance_problems())
def test_exact_information_equals_logdet_and_trace_dominates(problem):
    covariances, eigenvalues, _, priors, sigma = problem
    logdet = ib_bound_logdet(covariances, sigma=sigma, priors=priors)
    exact = gaussian_conditional_information(covariances, sigma=sigma, priors=priors)
    trace = ib_bound_trace(sigma=sigma, covariances=covariances, priors=priors)
    assert exact == pytest.approx(logdet, rel=1e-10, abs=1e-10)
    assert logdet <= trace + 1e-12
    assert logdet >= 0.0
    # Both against their definitions from the drawn eigenvalues.
    assert logdet == pytest.approx(priors @ (0.5 * np.log1p(eigenvalues / sigma**2).sum(axis=1)), rel=1e-9, abs=1e-12)
    assert trace == pytest.approx(priors @ eigenvalues.sum(axis=1) / (2 * sigma**2), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(covariance_problems(), st.data())
def test_bounds_grow_with_any_eigenvalue(problem, data):
    covariances, eigenvalues, rotations, priors, sigma = problem
    num_classes, dim = eigenvalues.shape
    which = data.draw(st.integers(0, num_classes - 1))
    index = data.draw(st.integers(0, dim - 1))
    increase = data.draw(st.floats(0.01, 5.0))
    raised = eigenvalues.copy()
    raised[which, index] += increase
    new = (rotations * raised[:, None, :]) @ np.swapaxes(rotations, 1, 2)
    new = 0.5 * (new + np.swapaxes(new, 1, 2))

    old_trace = ib_bound_trace(sigma=sigma, covariances=covariances, priors=priors)
    new_trace = ib_bound_trace(sigma=sigma, covariances=new, priors=priors)
    assert new_trace > old_trace
    assert new_trace - old_trace == pytest.approx(priors[which] * increase / (2 * sigma**2), rel=1e-7, abs=1e-12)

    old_logdet = ib_bound_logdet(covariances, sigma=sigma, priors=priors)
    new_logdet = ib_bound_logdet(new, sigma=sigma, priors=priors)
    assert new_logdet > old_logdet
    expected = 0.5 * priors[which] * math.log(
        (sigma**2 + raised[which, index]) / (sigma**2 + eigenvalues[which, index])
    )
    assert new_logdet - old_logdet == pytest.approx(expected, rel=1e-6, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Prop. 3.3 (reconstructed): Fano


def binary_entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -p * math.log(p) - (1 - p) * math.log(1 - p)


def discrete_mutual_information(joint: np.ndarray) -> float:
    rows = joint.sum(axis=1, keepdims=True)
    columns = joint.sum(axis=0, keepdims=True)
    total = 0.0
    for (i, j), mass in np.ndenumerate(joint):
        if mass > 0:
            total += mass * (math.log(mass) - math.log(rows[i, 0]) - math.log(columns[0, j]))
    return total


def test_fano_hand_values():
    assert fano_information_lower_bound(num_classes=2, error=0.0) == pytest.approx(math.log(2), rel=1e-15)
    assert fano_information_lower_bound(num_classes=4, error=0.0) == pytest.approx(math.log(4), rel=1e-15)
    assert fano_information_lower_bound(num_classes=2, error=0.5) == pytest.approx(0.0, abs=1e-15)
    assert fano_information_lower_bound(num_classes=3, error=2 / 3) == pytest.approx(0.0, abs=1e-15)
    assert fano_information_lower_bound(num_classes=10, error=0.9) == pytest.approx(0.0, abs=1e-14)
    expected = math.log(3) - binary_entropy(0.1) - 0.1 * math.log(2)
    assert fano_information_lower_bound(num_classes=3, error=0.1) == pytest.approx(expected, rel=1e-14)
    # Non-uniform priors: always predicting the majority class has error 0.1 and needs nothing.
    assert fano_information_lower_bound(num_classes=2, error=0.1, priors=[0.9, 0.1]) == pytest.approx(0.0, abs=1e-15)
    # ... and the raw value is negative (vacuous) beyond that.
    raw = fano_information_lower_bound(num_classes=2, error=0.3, priors=[0.9, 0.1])
    assert raw == pytest.approx(binary_entropy(0.1) - binary_entropy(0.3), rel=1e-14)
    assert raw < 0


def test_required_information_rise_by_hand():
    assert required_information_rise(initial_information=0.2, num_classes=2, error=0.0) == pytest.approx(
        math.log(2) - 0.2, rel=1e-14
    )
    assert required_information_rise(initial_information=1.0, num_classes=2, error=0.0) == 0.0
    assert required_information_rise(initial_information=0.0, num_classes=2, error=0.3, priors=[0.9, 0.1]) == 0.0
    expected = math.log(5) - binary_entropy(0.2) - 0.2 * math.log(4)
    assert required_information_rise(initial_information=0.0, num_classes=5, error=0.2) == pytest.approx(
        expected, rel=1e-14
    )


@pytest.mark.parametrize("num_classes, error", [(2, 0.1), (3, 0.25), (5, 0.5), (7, 6 / 7), (4, 0.0)])
def test_fano_is_attained_by_the_symmetric_channel(num_classes, error):
    # Uniform Y; Y^ = Y w.p. 1 - P_e, otherwise uniform on the other K - 1 labels: equality in Fano.
    joint = np.full((num_classes, num_classes), error / (num_classes - 1) / num_classes)
    np.fill_diagonal(joint, (1 - error) / num_classes)
    mutual = discrete_mutual_information(joint)
    assert fano_information_lower_bound(num_classes=num_classes, error=error) == pytest.approx(
        mutual, rel=1e-12, abs=1e-14
    )


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 5).flatmap(
    lambda k: st.tuples(
        st.just(k),
        hnp.arrays(np.float64, (k, k), elements=st.floats(0.0, 1.0, width=64, allow_subnormal=False)),
        st.floats(0.0, 5.0),
    )
))
def test_fano_inequality_on_random_joints(case):
    num_classes, weights, diagonal_boost = case
    joint = weights + diagonal_boost * np.eye(num_classes)
    assume(joint.sum() > 1e-6)
    joint = joint / joint.sum()
    error = 1.0 - float(np.trace(joint))
    assume(error <= 1.0 - 1.0 / num_classes)
    priors = joint.sum(axis=1)
    priors = priors / priors.sum()
    bound = fano_information_lower_bound(num_classes=num_classes, error=max(error, 0.0), priors=priors)
    assert discrete_mutual_information(joint) >= bound - 1e-10


# ---------------------------------------------------------------------------------------------
# Bad inputs


GOOD = np.stack([np.eye(2), 2 * np.eye(2)])


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: ib_bound_trace(sigma=0.0, variances=[1.0]), "sigma"),
        (lambda: ib_bound_trace(sigma=-1.0, variances=[1.0]), "sigma"),
        (lambda: ib_bound_trace(sigma=np.nan, variances=[1.0]), "sigma"),
        (lambda: ib_bound_trace(sigma=None, variances=[1.0]), "sigma"),
        (lambda: ib_bound_trace(sigma=1.0, variances=[1.0, -1.0]), "variances"),
        (lambda: ib_bound_trace(sigma=1.0, variances=[1.0, np.nan]), "variances"),
        (lambda: ib_bound_trace(sigma=1.0, variances=[[1.0]]), "variances"),
        (lambda: ib_bound_trace(sigma=1.0), "variances"),
        (lambda: ib_bound_trace(sigma=1.0, variances=[1.0, 2.0], covariances=GOOD), "covariances"),
        (lambda: ib_bound_trace(sigma=1.0, variances=[1.0, 2.0], priors=[0.5, 0.6]), "priors"),
        (lambda: ib_bound_trace(sigma=1.0, variances=[1.0, 2.0], priors=[1.0]), "priors"),
        (lambda: ib_bound_logdet(GOOD, sigma=0.0), "sigma"),
        (lambda: ib_bound_logdet(np.stack([np.eye(2), -np.eye(2)]), sigma=1.0), "covariances"),
        (lambda: ib_bound_logdet([[[1.0, 1.0], [0.0, 1.0]]], sigma=1.0), "covariances"),
        (lambda: ib_bound_logdet(np.eye(2), sigma=1.0), "covariances"),
        (lambda: ib_bound_logdet([[[np.nan]]], sigma=1.0), "covariances"),
        (lambda: ib_bound_logdet(GOOD, sigma=1.0, priors=[0.2, 0.3, 0.5]), "priors"),
        (lambda: gaussian_conditional_information(GOOD, sigma=-2.0), "sigma"),
        (lambda: gaussian_conditional_information(np.stack([np.eye(2), np.diag([1.0, -0.5])]), sigma=1.0),
         "covariances"),
        (lambda: gaussian_conditional_information(GOOD, sigma=1.0, priors=[0.7, 0.7]), "priors"),
        (lambda: fano_information_lower_bound(num_classes=1, error=0.0), "num_classes"),
        (lambda: fano_information_lower_bound(num_classes=2.5, error=0.0), "num_classes"),
        (lambda: fano_information_lower_bound(num_classes=2, error=-0.1), "error"),
        (lambda: fano_information_lower_bound(num_classes=2, error=1.2), "error"),
        (lambda: fano_information_lower_bound(num_classes=2, error=0.6), "error"),  # worse than chance
        (lambda: fano_information_lower_bound(num_classes=2, error=np.nan), "error"),
        (lambda: fano_information_lower_bound(num_classes=3, error=0.1, priors=[0.5, 0.5]), "priors"),
        (lambda: required_information_rise(initial_information=-0.1, num_classes=2, error=0.1),
         "initial_information"),
        (lambda: required_information_rise(initial_information=0.1, num_classes=2, error=0.9), "error"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
