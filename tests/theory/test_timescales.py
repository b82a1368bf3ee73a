"""Tests for theory/timescales.py (Thm. 4.3 and the predicted onset, R5/R6)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from ncgrok.theory.timescales import (
    LogLogFit,
    balancedness_step,
    collapse_time,
    fit_loglog_slope,
    fit_onset_constant,
    fit_time,
    gradient_flow_imbalance,
    imbalance,
    predicted_onset,
    ufm_constant,
    ufm_contraction_factor,
    ufm_step_size_condition,
    ufm_variance_bound,
)


# ---------------------------------------------------------------------------------------------
# tau1, tau2 and the onset: hand values


def test_fit_time_hand_values():
    assert fit_time(lr=0.1, eps1=math.exp(-3)) == pytest.approx(30.0, rel=1e-14)
    assert fit_time(lr=0.1, eps1=1e-2, initial_loss=1e2, rate=2.0) == pytest.approx(
        math.log(1e4) / 0.2, rel=1e-14
    )
    assert fit_time(lr=0.1, eps1=2.0, initial_loss=1.0) == 0.0  # already fitted


def test_collapse_time_hand_values_and_independence_from_fit():
    assert collapse_time(lr=0.01, weight_decay=0.5, eps2=math.exp(-4)) == pytest.approx(400.0, rel=1e-14)
    assert collapse_time(lr=1e-3, weight_decay=1e-2, eps2=1e-3, initial_variance=10.0) == pytest.approx(
        math.log(1e4) / (2e-5), rel=1e-14
    )
    assert collapse_time(lr=0.1, weight_decay=0.1, eps2=1.0, initial_variance=0.5) == 0.0
    # halving the weight decay doubles tau2; tau1 does not take a weight decay at all
    t1 = collapse_time(lr=0.01, weight_decay=0.2, eps2=1e-3)
    t2 = collapse_time(lr=0.01, weight_decay=0.1, eps2=1e-3)
    assert t2 / t1 == pytest.approx(2.0, rel=1e-14)


def ufm_problem(seed, *, classes, dim, per_class, scale):
    """Labels, one-hot targets (K x N), a classifier W (K x p) and free features H (p x N)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    targets = np.eye(classes)[:, labels]
    return labels, targets, rng.standard_normal((classes, dim)) * scale, rng.standard_normal((dim, labels.size))


def within_class_variance(features, labels):
    """Mean squared distance of each feature column to its class mean."""
    total = 0.0
    for c in np.unique(labels):
        block = features[:, labels == c]
        total += np.sum((block - block.mean(axis=1, keepdims=True)) ** 2)
    return total / labels.size


def test_collapse_time_matches_a_simulated_ufm_null_space():
    """Gradient descent on the UFM features with the classifier W frozen (p = 5 > K = 2, so W has a
    3-dimensional null space), simulated step by step: the within-class variance reaches eps2 when its
    null-space part, which shrinks only through the weight decay, does. The first simulated step with
    variance <= eps2 must match tau2 = log(V_null(0)/eps2)/(2 eta lambda) (V_null(0) from an SVD of W)
    to relative O(eta lambda): the exact count is log(V0/eps2)/(-2 log(1 - eta lambda)), which differs
    by a factor 1 - eta lambda/2 + O((eta lambda)^2), plus one step of rounding. A formula without the
    factor 2, or with the fitting rate instead of eta lambda, is off by far more."""
    classes = 2
    labels, targets, w, h = ufm_problem(12, classes=classes, dim=5, per_class=4, scale=0.5)
    lr, weight_decay = 0.05, 0.02
    _, _, vt = np.linalg.svd(w)
    null_projector = vt[classes:].T @ vt[classes:]
    null_variance = within_class_variance(null_projector @ h, labels)
    eps2 = 1e-4 * null_variance
    assert ufm_step_size_condition(lr=lr, weight_decay=weight_decay, classifier_norm=np.linalg.norm(w, 2))
    steps = 0
    while within_class_variance(h, labels) > eps2:
        h = h - lr * (w.T @ (w @ h - targets) + weight_decay * h)
        steps += 1
    predicted = collapse_time(lr=lr, weight_decay=weight_decay, eps2=eps2, initial_variance=null_variance)
    assert abs(steps - predicted) / predicted < lr * weight_decay + 1 / predicted
    assert predicted > 4_000  # the slow scale: the row-space part alone is gone within ~200 steps


@pytest.mark.parametrize(
    "function, kwargs",
    [
        (fit_time, dict(lr=0.0, eps1=0.1)),
        (fit_time, dict(lr=0.1, eps1=-0.1)),
        (fit_time, dict(lr=0.1, eps1=0.1, rate=0.0)),
        (collapse_time, dict(lr=0.1, weight_decay=0.0, eps2=0.1)),
        (collapse_time, dict(lr=0.1, weight_decay=-1.0, eps2=0.1)),
        (collapse_time, dict(lr=0.1, weight_decay=0.1, eps2=0.0)),
        (ufm_constant, dict(variance_at_fit=0.0, eps2=0.1)),
    ],
)
def test_times_reject_bad_input(function, kwargs):
    with pytest.raises(ValueError):
        function(**kwargs)


def test_predicted_onset_hand_values():
    assert predicted_onset(0.1, lr=0.01, fit_time=100, constant=2.0) == pytest.approx(2100.0, rel=1e-14)
    values = predicted_onset([1.0, 0.5, 0.25], lr=0.1, fit_time=10, constant=3.0)
    np.testing.assert_allclose(values, [40.0, 70.0, 130.0], rtol=1e-14)
    values = predicted_onset([1.0, 0.5], lr=0.1, fit_time=[10, 20], constant=1.0)
    np.testing.assert_allclose(values, [20.0, 40.0], rtol=1e-14)
    with pytest.raises(ValueError):
        predicted_onset([1.0, 0.5], lr=0.1, fit_time=[1, 2, 3], constant=1.0)
    with pytest.raises(ValueError):
        predicted_onset(0.0, lr=0.1, fit_time=1, constant=1.0)


def test_ufm_constant_hand_values():
    assert ufm_constant(variance_at_fit=math.exp(2), eps2=1.0) == pytest.approx(1.0, rel=1e-14)
    assert ufm_constant(variance_at_fit=0.1, eps2=1.0) == 0.0
    # together with predicted_onset it reproduces collapse_time counted from t_fit
    c = ufm_constant(variance_at_fit=3.0, eps2=1e-3)
    assert predicted_onset(0.01, lr=0.1, fit_time=50, constant=c) == pytest.approx(
        50 + collapse_time(lr=0.1, weight_decay=0.01, eps2=1e-3, initial_variance=3.0), rel=1e-14
    )


def test_fit_onset_constant_recovers_planted_constant():
    decays = np.array([1e-3, 3e-3, 1e-2, 3e-2])
    lr, c = 1e-3, 4.5
    fits = np.array([100.0, 120.0, 90.0, 110.0])
    onsets = fits + c / (lr * decays)
    assert fit_onset_constant(decays, onsets, lr=lr, fit_times=fits) == pytest.approx(c, rel=1e-12)
    # one weight decay: C = (onset - t_fit) eta lambda
    assert fit_onset_constant(0.1, 1100.0, lr=0.01, fit_times=100.0) == pytest.approx(1.0, rel=1e-14)
    # least squares by hand for two points with a common fit time: x = (10, 20), y = (12, 38)
    assert fit_onset_constant([0.1, 0.05], [12.0, 38.0], lr=1.0, fit_times=0.0) == pytest.approx(
        (10 * 12 + 20 * 38) / (100 + 400), rel=1e-14
    )
    with pytest.raises(ValueError):
        fit_onset_constant([0.1, 0.2], [1.0], lr=0.1, fit_times=0.0)


# ---------------------------------------------------------------------------------------------
# Log-log slope


def test_loglog_slope_noiseless_planted_slope():
    decays = np.array([1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    fit = fit_loglog_slope(decays, 7.0 / decays)
    assert isinstance(fit, LogLogFit)
    assert fit.slope == pytest.approx(-1.0, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(7.0), abs=1e-10)
    assert fit.slope_ci[0] == pytest.approx(-1.0, abs=1e-9) and fit.slope_ci[1] == pytest.approx(-1.0, abs=1e-9)
    assert fit.num_points == 5 and fit.confidence == 0.95


def test_loglog_slope_matches_linregress_and_has_t_interval():
    rng = np.random.default_rng(3)
    decays = np.geomspace(1e-4, 1e-1, 8)
    delays = 5.0 / decays * np.exp(0.2 * rng.standard_normal(8))
    fit = fit_loglog_slope(decays, delays)
    reference = stats.linregress(np.log(decays), np.log(delays))
    assert fit.slope == pytest.approx(reference.slope, rel=1e-12)
    assert fit.intercept == pytest.approx(reference.intercept, rel=1e-12)
    assert fit.slope_stderr == pytest.approx(reference.stderr, rel=1e-10)
    half = stats.t.ppf(0.975, 6) * reference.stderr
    assert fit.slope_ci == pytest.approx((reference.slope - half, reference.slope + half), rel=1e-10)
    assert fit.slope_ci[0] <= -1.0 <= fit.slope_ci[1]


def test_loglog_slope_interval_coverage():
    """The 95% interval contains the planted slope -1 in about 95% of 600 noisy data sets.

    Tolerance: the covering count is Binomial(600, 0.95), standard deviation 5.3 (0.9%); we accept
    [0.92, 0.98], more than 3 standard deviations either side. Fixed seed.
    """
    rng = np.random.default_rng(11)
    decays = np.geomspace(1e-4, 1e-2, 6)
    hits = 0
    for _ in range(600):
        delays = 3.0 / decays * np.exp(0.3 * rng.standard_normal(decays.size))
        low, high = fit_loglog_slope(decays, delays).slope_ci
        hits += low <= -1.0 <= high
    assert 0.92 <= hits / 600 <= 0.98


def test_loglog_slope_two_points_and_bad_input():
    fit = fit_loglog_slope([0.1, 0.01], [10.0, 1000.0])
    assert fit.slope == pytest.approx(-2.0, rel=1e-14)
    assert fit.slope_ci == (-math.inf, math.inf)
    with pytest.raises(ValueError, match="distinct"):
        fit_loglog_slope([0.1, 0.1], [1.0, 2.0])
    with pytest.raises(ValueError, match="delays"):
        fit_loglog_slope([0.1, 0.2], [1.0, -2.0])
    with pytest.raises(ValueError):
        fit_loglog_slope([0.1, 0.2], [1.0])
    with pytest.raises(ValueError):
        fit_loglog_slope([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], confidence=1.0)


# ---------------------------------------------------------------------------------------------
# Balancedness


def _two_layer_problem(seed, m=3, r=5, q=4, samples=7):
    rng = np.random.default_rng(seed)
    last = rng.standard_normal((m, r)) / math.sqrt(r)
    prev = rng.standard_normal((r, q)) / math.sqrt(q)
    features = rng.standard_normal((q, samples))
    targets = np.eye(m)[:, rng.integers(0, m, samples)]
    return last, prev, features, targets


def _loss(last, prev, features, targets):
    return 0.5 * np.sum((last @ prev @ features - targets) ** 2)


def _gradients(last, prev, features, targets):
    """Gradients of (1/2)||W_L W_{L-1} H - Y||_F^2 by hand."""
    residual = last @ prev @ features - targets
    grad_last = residual @ (prev @ features).T
    grad_prev = last.T @ residual @ features.T
    return grad_last, grad_prev


def test_hand_gradients_match_finite_differences():
    last, prev, features, targets = _two_layer_problem(0)
    grad_last, grad_prev = _gradients(last, prev, features, targets)
    step = 1e-6
    for matrix, grad in ((last, grad_last), (prev, grad_prev)):
        for index in np.ndindex(matrix.shape):
            saved = matrix[index]
            matrix[index] = saved + step
            up = _loss(last, prev, features, targets)
            matrix[index] = saved - step
            down = _loss(last, prev, features, targets)
            matrix[index] = saved
            assert (up - down) / (2 * step) == pytest.approx(grad[index], abs=1e-7)


def test_imbalance_definition():
    last = np.array([[1.0, 2.0], [0.0, 1.0]])
    prev = np.array([[1.0], [1.0]])
    np.testing.assert_array_equal(imbalance(last, prev), np.array([[1.0 - 1, 2 - 1], [2 - 1, 5 - 1]]))
    with pytest.raises(ValueError, match="compose"):
        imbalance(np.ones((2, 3)), np.ones((2, 2)))


@pytest.mark.parametrize("seed", range(5))
def test_balancedness_step_matches_explicit_gd_step(seed):
    last, prev, features, targets = _two_layer_problem(seed)
    lr, weight_decay = 0.07, 0.3
    grad_last, grad_prev = _gradients(last, prev, features, targets)
    # the gradient relation the cancellation needs
    np.testing.assert_allclose(last.T @ grad_last, grad_prev @ prev.T, atol=1e-12)
    new_last = (1 - lr * weight_decay) * last - lr * grad_last
    new_prev = (1 - lr * weight_decay) * prev - lr * grad_prev
    direct = new_last.T @ new_last - new_prev @ new_prev.T
    start = last.T @ last - prev @ prev.T
    predicted = balancedness_step(start, grad_last=grad_last, grad_prev=grad_prev, lr=lr, weight_decay=weight_decay)
    np.testing.assert_allclose(predicted, direct, rtol=0, atol=1e-10)
    with_cross = balancedness_step(
        start, grad_last=grad_last, grad_prev=grad_prev, lr=lr, weight_decay=weight_decay, last=last, prev=prev
    )
    np.testing.assert_allclose(with_cross, direct, rtol=0, atol=1e-10)


def test_balancedness_step_needs_the_gradient_relation():
    """With arbitrary (non-gradient) updates the cross terms do not cancel; passing the weights
    restores exactness."""
    rng = np.random.default_rng(5)
    last, prev = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    grad_last, grad_prev = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    lr, weight_decay = 0.1, 0.2
    new_last = (1 - lr * weight_decay) * last - lr * grad_last
    new_prev = (1 - lr * weight_decay) * prev - lr * grad_prev
    direct = new_last.T @ new_last - new_prev @ new_prev.T
    start = imbalance(last, prev)
    short = balancedness_step(start, grad_last=grad_last, grad_prev=grad_prev, lr=lr, weight_decay=weight_decay)
    assert np.max(np.abs(short - direct)) > 1e-3
    full = balancedness_step(
        start, grad_last=grad_last, grad_prev=grad_prev, lr=lr, weight_decay=weight_decay, last=last, prev=prev
    )
    np.testing.assert_allclose(full, direct, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="both"):
        balancedness_step(start, grad_last=grad_last, grad_prev=grad_prev, lr=lr, weight_decay=weight_decay, last=last)
    with pytest.raises(ValueError, match="shape"):
        balancedness_step(np.eye(3), grad_last=grad_last, grad_prev=grad_prev, lr=lr, weight_decay=weight_decay)


def test_balancedness_holds_with_relu_features_below():
    """h may itself be a trained network's output: the relation involves only W_L and W_{L-1}."""
    rng = np.random.default_rng(8)
    first = rng.standard_normal((4, 6))
    inputs = rng.standard_normal((6, 9))
    features = np.maximum(first @ inputs, 0.0)
    last, prev = rng.standard_normal((3, 5)) / 3, rng.standard_normal((5, 4)) / 3
    targets = np.eye(3)[:, rng.integers(0, 3, 9)]
    grad_last, grad_prev = _gradients(last, prev, features, targets)
    lr, weight_decay = 0.01, 0.05
    new_last = (1 - lr * weight_decay) * last - lr * grad_last
    new_prev = (1 - lr * weight_decay) * prev - lr * grad_prev
    predicted = balancedness_step(
        imbalance(last, prev), grad_last=grad_last, grad_prev=grad_prev, lr=lr, weight_decay=weight_decay
    )
    np.testing.assert_allclose(predicted, imbalance(new_last, new_prev), rtol=0, atol=1e-10)


def _flow_rhs(weight_decay, shapes, features, targets):
    (m, r), (_, q) = shapes

    def rhs(_, theta):
        last = theta[: m * r].reshape(m, r)
        prev = theta[m * r :].reshape(r, q)
        grad_last, grad_prev = _gradients(last, prev, features, targets)
        return -np.concatenate([(grad_last + weight_decay * last).ravel(), (grad_prev + weight_decay * prev).ravel()])

    return rhs


def test_gradient_flow_imbalance_matches_ode_integration():
    last, prev, features, targets = _two_layer_problem(2, samples=5)
    features = features / 3  # keep the flow tame
    weight_decay, horizon = 0.4, 2.0
    theta0 = np.concatenate([last.ravel(), prev.ravel()])
    solution = integrate.solve_ivp(
        _flow_rhs(weight_decay, (last.shape, prev.shape), features, targets),
        (0.0, horizon),
        theta0,
        method="DOP853",
        rtol=1e-12,
        atol=1e-13,
    )
    assert solution.success
    m, r = last.shape
    end_last = solution.y[: m * r, -1].reshape(last.shape)
    end_prev = solution.y[m * r :, -1].reshape(prev.shape)
    expected = gradient_flow_imbalance(imbalance(last, prev), weight_decay=weight_decay, time=horizon)
    np.testing.assert_allclose(imbalance(end_last, end_prev), expected, rtol=0, atol=1e-9)
    # the weights did move: the test is not trivial
    assert np.max(np.abs(end_last - last)) > 0.05


def test_gradient_flow_imbalance_is_limit_of_small_gd_steps():
    """GD with step eta for t/eta steps approaches the flow value with error O(eta)."""
    last0, prev0, features, targets = _two_layer_problem(4, samples=5)
    weight_decay, horizon = 0.5, 1.0
    expected = gradient_flow_imbalance(imbalance(last0, prev0), weight_decay=weight_decay, time=horizon)
    errors = []
    for lr in (2e-3, 1e-3):
        last, prev = last0.copy(), prev0.copy()
        for _ in range(int(round(horizon / lr))):
            grad_last, grad_prev = _gradients(last, prev, features, targets)
            last, prev = (1 - lr * weight_decay) * last - lr * grad_last, (1 - lr * weight_decay) * prev - lr * grad_prev
        errors.append(np.max(np.abs(imbalance(last, prev) - expected)))
    assert errors[1] < 0.01
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.1)  # first order in eta


def test_gradient_flow_imbalance_hand_value_and_input_checks():
    d0 = np.array([[1.0, 2.0], [2.0, -1.0]])
    np.testing.assert_allclose(gradient_flow_imbalance(d0, weight_decay=0.5, time=3.0), math.exp(-3.0) * d0)
    with pytest.raises(ValueError):
        gradient_flow_imbalance(np.ones((2, 3)), weight_decay=0.1, time=1.0)
    with pytest.raises(ValueError):
        gradient_flow_imbalance(d0, weight_decay=0.1, time=-1.0)


# ---------------------------------------------------------------------------------------------
# Unconstrained features model


def test_ufm_step_size_condition_hand_values():
    assert ufm_step_size_condition(lr=0.1, weight_decay=1.0, classifier_norm=3.0)  # 1.0 <= 1.9
    assert ufm_step_size_condition(lr=0.1, weight_decay=1.0, classifier_norm=math.sqrt(18.0))  # 1.9 <= 1.9
    assert not ufm_step_size_condition(lr=0.1, weight_decay=1.0, classifier_norm=4.5)  # 2.125 > 1.9


def test_ufm_contraction_factor_hand_values():
    assert ufm_contraction_factor(lr=0.1, weight_decay=1.0, classifier_norm=3.0) == pytest.approx(0.9, rel=1e-14)
    # step too large: |1 - 0.1 (20.25 + 1)| = 1.125
    assert ufm_contraction_factor(lr=0.1, weight_decay=1.0, classifier_norm=4.5) == pytest.approx(1.125, rel=1e-14)


@pytest.mark.parametrize("seed", range(4))
def test_ufm_contraction_factor_is_operator_norm_of_the_update(seed):
    rng = np.random.default_rng(seed)
    classes, dim = 3, 6
    w = rng.standard_normal((classes, dim))
    lr, weight_decay = 0.05 * (seed + 1), 0.1
    update = np.eye(dim) - lr * (w.T @ w + weight_decay * np.eye(dim))
    factor = ufm_contraction_factor(lr=lr, weight_decay=weight_decay, classifier_norm=np.linalg.norm(w, 2))
    # p > K: W has a null space, so the factor is exactly the operator norm
    assert factor == pytest.approx(np.linalg.norm(update, 2), rel=1e-12)


def test_ufm_gd_step_contracts_same_class_differences():
    """One explicit GD step on the UFM loss; differences of same-class features shrink by the factor."""
    dim = 5
    labels, targets, w, h = ufm_problem(7, classes=3, dim=dim, per_class=4, scale=0.5)
    lr, weight_decay = 0.2, 0.05
    assert ufm_step_size_condition(lr=lr, weight_decay=weight_decay, classifier_norm=np.linalg.norm(w, 2))
    grad_h = w.T @ (w @ h - targets) + weight_decay * h
    new_h = h - lr * grad_h
    factor = ufm_contraction_factor(lr=lr, weight_decay=weight_decay, classifier_norm=np.linalg.norm(w, 2))
    assert factor == pytest.approx(1 - lr * weight_decay, rel=1e-14)
    update = np.eye(dim) - lr * (w.T @ w + weight_decay * np.eye(dim))
    for i in range(labels.size):
        for j in range(labels.size):
            if labels[i] == labels[j] and i != j:
                before, after = h[:, i] - h[:, j], new_h[:, i] - new_h[:, j]
                np.testing.assert_allclose(after, update @ before, atol=1e-12)
                assert np.linalg.norm(after) <= factor * np.linalg.norm(before) + 1e-12


def test_ufm_variance_bound_holds_along_a_full_ufm_run():
    """Train W and H jointly by GD; the within-class variance stays below (1 - eta lambda)^(2t) V0."""
    labels, targets, w, h = ufm_problem(9, classes=3, dim=8, per_class=5, scale=1 / 3)
    lr, weight_decay, steps = 0.05, 0.05, 400

    def within_variance(features):
        return within_class_variance(features, labels)

    start = within_variance(h)
    bounds = ufm_variance_bound(start, lr=lr, weight_decay=weight_decay, steps=np.arange(steps + 1))
    for t in range(steps + 1):
        assert within_variance(h) <= bounds[t] * (1 + 1e-12)
        if t == steps:
            break
        assert ufm_step_size_condition(lr=lr, weight_decay=weight_decay, classifier_norm=np.linalg.norm(w, 2))
        residual = w @ h - targets
        grad_w = residual @ h.T + weight_decay * w
        grad_h = w.T @ residual + weight_decay * h
        w, h = w - lr * grad_w, h - lr * grad_h
    assert ufm_variance_bound(2.0, lr=0.1, weight_decay=0.5, steps=3) == pytest.approx(2.0 * 0.95**6, rel=1e-14)
    with pytest.raises(ValueError):
        ufm_variance_bound(1.0, lr=1.0, weight_decay=2.0, steps=1)
