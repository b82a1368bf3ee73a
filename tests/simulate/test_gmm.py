"""Tests for simulate/gmm/ and ncgrok/cli/simulate_gmm.py (Gaussian-mixture networks).

Every comparison is against something exact or independent of the code under test: finite
differences for the hand-written gradients, the balancedness identity of Thm. 4.3 for the GD update,
an element-by-element AdamW in torch's documented form for the AdamW update,
closed-form Gaussian information (computed here with ``slogdet``) for the linear network, a 1-D
quadrature for a non-Gaussian information, and Monte Carlo truths with stated tolerances.

Two short runs (one linear, one nonlinear network; fixed seeds, ~2-4 s each on a loaded 2-core
machine) are shared by the trajectory tests through module-scoped fixtures.
"""
from __future__ import annotations

import argparse
import dataclasses
import csv
import json
import math

import numpy as np
import pytest
from scipy import integrate

from ncgrok.cli import simulate_gmm as cli_gmm
from ncgrok.simulate.gmm import (
    TRAJECTORY_COLUMNS,
    GaussianMixture,
    GMMConfig,
    Optimizer,
    conditional_information_monte_carlo,
    exact_linear_moments,
    init_network,
    loss_and_gradients,
    run_gmm,
)
from ncgrok.theory.information import ib_bound_logdet
from ncgrok.theory.timescales import balancedness_step, imbalance

# Allowance, in standard errors, when a bound is compared with a Monte Carlo truth. With roughly
# normal estimates a one-sided 4-SE excursion has probability ~3e-5 per comparison, so the ~10
# correlated comparisons per run cannot plausibly fail by chance; a real violation of a bound shows
# up as a systematic gap, not as a 4-SE fluctuation.
SE = 4.0

SMALL_RUN = dict(steps=800, num_logs=8, n_test=20000, n_population=20000, n_heldout=500,
                 mi_outer=800, mi_inner=2000, seed=0)


@pytest.fixture(scope="module")
def nonlinear_run():
    return run_gmm(GMMConfig(activation="smooth_leaky_relu", **SMALL_RUN))


@pytest.fixture(scope="module")
def linear_run():
    return run_gmm(GMMConfig(activation="identity", **SMALL_RUN))


# ----------------------------------------------------------------------------------------------
# Building blocks


@pytest.mark.parametrize("activation", ["smooth_leaky_relu", "relu", "identity"])
def test_gradients_match_central_finite_differences(activation):
    rng = np.random.default_rng(3)
    network = init_network(4, 5, 3, 3, activation=activation, init_scale=1.3, seed=11)
    network.b1 = rng.normal(size=5)
    network.b3 = rng.normal(size=3)
    x = rng.normal(size=(9, 4))
    targets = np.eye(3)[rng.integers(0, 3, size=9)]
    if activation == "relu":  # keep every pre-activation away from the kink
        assert np.abs(x @ network.W1.T + network.b1).min() > 1e-3
    weight_decay = 0.37
    _, grads = loss_and_gradients(network, x, targets, weight_decay=weight_decay)
    step = 1e-6
    for name, value in network.parameters().items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + step
            plus, _ = loss_and_gradients(network, x, targets, weight_decay=weight_decay)
            value[index] = original - step
            minus, _ = loss_and_gradients(network, x, targets, weight_decay=weight_decay)
            value[index] = original
            numeric[index] = (plus - minus) / (2 * step)
        # Central differences have error O(step^2) ~ 1e-12 plus rounding ~ 1e-16/step ~ 1e-10.
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_smooth_leaky_relu_limits():
    """phi(a) = alpha a + (1-alpha) softplus(beta a)/beta tends to the leaky ReLU away from 0."""
    network = init_network(1, 1, 1, 2, activation="smooth_leaky_relu", leaky_slope=0.1, sharpness=4.0)
    a = np.array([[-30.0], [30.0]])
    value, derivative = network._activate(a)
    np.testing.assert_allclose(value.ravel(), [-3.0, 30.0], rtol=1e-12)
    np.testing.assert_allclose(derivative.ravel(), [0.1, 1.0], rtol=1e-12)


def test_gd_step_obeys_the_balancedness_identity():
    """Thm. 4.3 (reconstructed): for f = W3 W2 h, one GD step with weight decay maps the imbalance
    D = W3^T W3 - W2 W2^T to (1 - eta lambda)^2 D + eta^2 (G3^T G3 - G2 G2^T), exactly."""
    rng = np.random.default_rng(5)
    network = init_network(6, 7, 4, 3, activation="smooth_leaky_relu", seed=2)
    x = rng.normal(size=(20, 6))
    targets = np.eye(3)[rng.integers(0, 3, size=20)]
    lr, weight_decay = 0.07, 0.3
    before = imbalance(network.W3, network.W2)
    _, grads = loss_and_gradients(network, x, targets)  # unregularized gradients
    expected = balancedness_step(before, grad_last=grads["W3"], grad_prev=grads["W2"], lr=lr,
                                 weight_decay=weight_decay)
    optimizer = Optimizer(kind="gd", lr=lr, weight_decay=weight_decay)
    network, _ = optimizer.step(network, grads, optimizer.init(network))
    np.testing.assert_allclose(imbalance(network.W3, network.W2), expected, rtol=0, atol=1e-13)


def _reference_adamw(values, grads_per_step, *, lr, weight_decay, betas, eps):
    """AdamW element by element in the form torch.optim.AdamW's documentation gives (decay first,
    then the step lr / (1 - beta1^t) times m / (sqrt(v) / sqrt(1 - beta2^t) + eps)), decay on the
    weights W1, W2, W3 only. Plain Python floats: an implementation independent of the code."""
    beta1, beta2 = betas
    params = {name: [float(x) for x in np.ravel(value)] for name, value in values.items()}
    first = {name: [0.0] * len(flat) for name, flat in params.items()}
    second = {name: [0.0] * len(flat) for name, flat in params.items()}
    for t, grads in enumerate(grads_per_step, start=1):
        for name, flat in params.items():
            decay = weight_decay if name.startswith("W") else 0.0
            for i, g in enumerate(np.ravel(grads[name])):
                flat[i] *= 1.0 - lr * decay
                first[name][i] = beta1 * first[name][i] + (1.0 - beta1) * g
                second[name][i] = beta2 * second[name][i] + (1.0 - beta2) * g * g
                denominator = math.sqrt(second[name][i]) / math.sqrt(1.0 - beta2**t) + eps
                flat[i] -= lr / (1.0 - beta1**t) * first[name][i] / denominator
    return {name: np.reshape(flat, np.shape(values[name])) for name, flat in params.items()}


def test_adamw_steps_match_an_independent_implementation():
    """Five AdamW steps (random gradients fed to both) against :func:`_reference_adamw`. The two
    order the arithmetic differently, so they agree to rounding (~1e-16 relative per step)."""
    rng = np.random.default_rng(4)
    network = init_network(3, 4, 2, 3, seed=5)
    network.b1, network.b3 = rng.normal(size=4), rng.normal(size=3)
    settings = dict(lr=0.01, weight_decay=0.2, betas=(0.8, 0.95), eps=1e-8)
    optimizer = Optimizer(kind="adamw", **settings)
    state = optimizer.init(network)
    initial = network.parameters()
    grads_per_step = [{name: rng.normal(size=value.shape) for name, value in initial.items()} for _ in range(5)]
    for grads in grads_per_step:
        network, state = optimizer.step(network, grads, state)
    expected = _reference_adamw(initial, grads_per_step, **settings)
    assert state.count == 5
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(network, name), value, rtol=1e-12, atol=1e-14, err_msg=name)
        assert not np.allclose(value, initial[name])  # the steps moved every parameter


def test_optimizer_step_leaves_its_arguments_unchanged():
    network = init_network(3, 4, 2, 3, seed=1)
    snapshot = network.copy()
    grads = {name: np.ones_like(value) for name, value in network.parameters().items()}
    optimizer = Optimizer(kind="adamw", lr=0.1, weight_decay=0.1)
    state = optimizer.init(network)
    optimizer.step(network, grads, state)
    for name, value in snapshot.parameters().items():
        np.testing.assert_array_equal(getattr(network, name), value)
        np.testing.assert_array_equal(state.first[name], 0.0)
    assert state.count == 0
    with pytest.raises(ValueError, match="kind"):
        Optimizer(kind="sgd", lr=0.1, weight_decay=0.0)


def test_mixture_samples_have_the_stated_moments():
    mixture = GaussianMixture.random(3, 4, separation=2.0, noise=0.7, seed=1)
    rng = np.random.default_rng(0)
    count = 200_000
    for c in range(3):
        sample = mixture.sample_class(c, count, rng)
        # mean error ~ sqrt(S_ii / n) <= 0.7 e^0.5 / 450 ~ 0.003; covariance error ~ 1% of its scale.
        np.testing.assert_allclose(sample.mean(axis=0), mixture.means[c], atol=0.015)
        np.testing.assert_allclose(np.cov(sample.T), mixture.covariances[c], atol=0.03)
    x, y = mixture.sample(5, rng)
    assert x.shape == (15, 4) and np.array_equal(y, np.repeat([0, 1, 2], 5))


# ----------------------------------------------------------------------------------------------
# The information estimator against exact answers


def _gaussian_information(covariances, sigma, priors):
    """0.5 sum_c p_c log det(I + C_c / sigma^2), computed independently with slogdet."""
    dim = covariances.shape[1]
    return 0.5 * sum(p * np.linalg.slogdet(np.eye(dim) + c / sigma**2)[1] for p, c in zip(priors, covariances))


def test_information_estimator_matches_gaussian_closed_form():
    rng = np.random.default_rng(7)
    sigma, priors = 0.3, np.array([0.3, 0.7])
    means = np.array([[0.2, -0.1, 0.0], [-0.3, 0.4, 0.1]])
    roots = [rng.normal(size=(3, 3)) * 0.25, rng.normal(size=(3, 3)) * 0.15]
    covariances = np.array([r @ r.T for r in roots])
    outer = [m + rng.normal(size=(3000, 3)) @ r.T for m, r in zip(means, roots)]
    noise = [sigma * rng.normal(size=(3000, 3)) for _ in range(2)]
    inner = [m + rng.normal(size=(4000, 3)) @ r.T for m, r in zip(means, roots)]
    estimate = conditional_information_monte_carlo(outer, noise, inner, sigma=sigma, priors=priors)
    exact = _gaussian_information(covariances, sigma, priors)
    assert abs(estimate.estimate - exact) <= SE * estimate.standard_error + 2 * estimate.bias_estimate
    assert estimate.lower <= estimate.estimate  # self-inclusion can only lower the estimate
    assert estimate.lower - SE * estimate.standard_error <= exact <= estimate.estimate + SE * estimate.standard_error


def test_information_estimator_on_a_non_gaussian_class_and_logdet_gap():
    """Features at two points +-s e_1 (one class): I(Z;X|Y) = h(Z_1) - h(N(0, sigma^2)) for the 1-D
    mixture Z_1 = +-s + N(0, sigma^2), computed by quadrature; the log-det bound is far above it."""
    s, sigma = 0.5, 0.2
    rng = np.random.default_rng(1)
    points = np.array([[s, 0.0], [-s, 0.0]])
    outer = [points[rng.integers(0, 2, size=4000)]]
    inner = [points[rng.integers(0, 2, size=3000)]]
    noise = [sigma * rng.normal(size=(4000, 2))]

    def density(z):
        return 0.5 * (np.exp(-(z - s) ** 2 / (2 * sigma**2)) + np.exp(-(z + s) ** 2 / (2 * sigma**2))) / (
            math.sqrt(2 * math.pi) * sigma)

    entropy, _ = integrate.quad(lambda z: -density(z) * math.log(density(z)), -s - 12 * sigma, s + 12 * sigma,
                                limit=200)
    exact = entropy - 0.5 * math.log(2 * math.pi * math.e * sigma**2)
    assert exact < math.log(2)  # a binary input carries at most log 2 nats
    estimate = conditional_information_monte_carlo(outer, noise, inner, sigma=sigma)
    assert abs(estimate.estimate - exact) <= SE * estimate.standard_error + 2 * estimate.bias_estimate
    covariance = np.array([[[s**2, 0.0], [0.0, 0.0]]])
    logdet = ib_bound_logdet(covariance, sigma=sigma)
    assert logdet > estimate.estimate + 10 * estimate.standard_error  # non-Gaussian: strict gap


# ----------------------------------------------------------------------------------------------
# Bounds along training runs


@pytest.mark.parametrize("which", ["nonlinear_run", "linear_run"])
def test_cantelli_bound_is_never_below_the_test_error(which, request):
    """Thm. 3.2 along training. The test error is a stratified Monte Carlo estimate on 20000 fresh
    points per class (SE ~0.001-0.003); the bound uses exact moments (linear network) or moments from
    20000 fresh points per class, whose relative error (~1%) moves the bound by far less than 0.01.
    So we allow 4 SE of the test error plus 0.01 absolute; the observed slack is much larger."""
    t = request.getfixturevalue(which).trajectory
    for column in ("cantelli_bound", "cantelli_directional"):
        assert np.all(t[column] >= t["test_error"] - SE * t["test_error_se"] - 0.01), column
    assert np.all(t["cantelli_directional"] <= t["cantelli_bound"] + 1e-12)
    assert t["test_error"][-1] < 0.1 < t["test_error"][0]  # the run actually learns


def test_linear_network_logdet_bound_equals_exact_information(linear_run):
    """Thm. 3.4: for a linear network g(X)|Y=c is Gaussian, so I(Z;X|Y) equals the log-det bound."""
    t, network, mixture = linear_run.trajectory, linear_run.network, linear_run.mixture
    np.testing.assert_allclose(t["ib_logdet"], t["mi_exact"], rtol=1e-10, atol=0)
    # Independent recomputation at the final step: C_c = A S_c A^T / B_g^2 with A = W2 W1.
    product = network.W2 @ network.W1
    covariances = np.array([product @ s @ product.T for s in mixture.covariances]) / t["feature_scale"][-1] ** 2
    exact = _gaussian_information(covariances, linear_run.config.sigma, mixture.priors)
    assert t["mi_exact"][-1] == pytest.approx(exact, rel=1e-10)
    assert t["ib_logdet"][-1] == pytest.approx(exact, rel=1e-10)
    assert np.all(t["ib_trace"] >= t["ib_logdet"])


def test_linear_network_exact_moments_match_a_large_sample(linear_run):
    """exact_linear_moments vs the unbiased variance of 20000 fresh points per class (relative SE
    <= sqrt(2/20000) = 1%), so a 5% tolerance."""
    t = linear_run.trajectory
    np.testing.assert_allclose(t["population_variance_sample"], t["population_variance"], rtol=0.05)
    means, covariances = exact_linear_moments(linear_run.network, linear_run.mixture)
    assert means.shape == (3, 6) and covariances.shape == (3, 6, 6)


def test_monte_carlo_information_agrees_with_exact_for_the_linear_network(linear_run):
    """Validates the estimator on the exact case: |estimate - exact| <= 4 SE + 2 x its estimated
    O(1/M) upward bias, and the [lower, estimate] bracket holds up to 4 SE."""
    t = linear_run.trajectory
    assert np.all(np.abs(t["mi_estimate"] - t["mi_exact"]) <= SE * t["mi_se"] + 2 * t["mi_bias_estimate"])
    assert np.all(t["mi_lower"] - SE * t["mi_se"] <= t["mi_exact"])
    assert np.all(t["mi_exact"] <= t["mi_estimate"] + SE * t["mi_se"])
    assert np.all(t["mi_bias_estimate"] < t["mi_se"])  # M = 2000 makes the bias negligible here


def test_nonlinear_network_logdet_bound_is_never_below_the_estimate(nonlinear_run):
    t = nonlinear_run.trajectory
    assert np.all(np.isnan(t["mi_exact"]))
    assert np.all(t["ib_logdet"] >= t["mi_estimate"] - SE * t["mi_se"])
    assert np.all(t["ib_logdet"] >= t["mi_lower"] - SE * t["mi_se"])
    assert np.all(t["ib_trace"] >= t["ib_logdet"])
    held = nonlinear_run.summary["held_at_every_step"]
    assert held["ib_logdet"] and held["ib_trace"] and held["cantelli_bound"]


@pytest.mark.parametrize("which", ["nonlinear_run", "linear_run"])
def test_heldout_radius_covers_the_population_variance(which, request):
    """Thm. 4.1 (reconstructed) held-out radius: |V_heldout - V| <= radius at every logged step."""
    run = request.getfixturevalue(which)
    t = run.trajectory
    assert np.all(t["heldout_covered"] == 1.0)
    assert np.all(np.abs(t["heldout_variance"] - t["population_variance"]) <= t["heldout_radius"])
    assert run.summary["held_at_every_step"]["heldout_radius"]


def test_training_collapses_the_within_class_variance(nonlinear_run):
    t = nonlinear_run.trajectory
    assert t["train_rnc1"][-1] < t["train_rnc1"][0]
    assert np.all(t["population_variance"] > 0) and np.all(np.isfinite(t["complexity_ratio"]))


def test_adamw_run_trains():
    result = run_gmm(GMMConfig(optimizer="adamw", lr=3e-3, weight_decay=0.05, steps=300, num_logs=3,
                               n_test=2000, n_population=2000, n_heldout=100, mi_outer=50, mi_inner=100))
    t = result.trajectory
    assert t["train_error"][-1] < t["train_error"][0]
    assert np.all(t["cantelli_bound"] >= t["test_error"] - SE * t["test_error_se"])


def test_priors_and_given_population_are_used():
    means = np.array([[3.0, 0.0], [-3.0, 0.0]])
    covariances = np.array([np.eye(2), 0.5 * np.eye(2)])
    config = GMMConfig(num_classes=2, input_dim=2, means=means, covariances=covariances, priors=[0.2, 0.8],
                       steps=50, num_logs=2, n_test=500, n_population=500, n_heldout=50, mi_outer=20, mi_inner=40,
                       lr=0.03)
    mixture = config.mixture()
    np.testing.assert_array_equal(mixture.means, means)
    np.testing.assert_array_equal(mixture.priors, [0.2, 0.8])
    result = run_gmm(config)
    assert set(result.trajectory) == set(TRAJECTORY_COLUMNS)
    assert list(result.trajectory["step"]) == [0, 50]
    # inputs of norm ~3 make lr 0.1 diverge within a few steps: a clear error, not a NaN deep inside
    with pytest.raises(ValueError, match="diverged .* lower lr"):
        run_gmm(dataclasses.replace(config, lr=0.1))


# ----------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    "changes, name",
    [
        (dict(lr=0.0), "lr"),
        (dict(lr=-0.1), "lr"),
        (dict(weight_decay=-1e-3), "weight_decay"),
        (dict(num_classes=1), "num_classes"),
        (dict(feature_dim=0), "feature_dim"),
        (dict(input_dim=0), "input_dim"),
        (dict(hidden_dim=0), "hidden_dim"),
        (dict(sigma=0.0), "sigma"),
        (dict(sigma=-1.0), "sigma"),
        (dict(steps=0), "steps"),
        (dict(n_train=1), "n_train"),
        (dict(n_heldout=1), "n_heldout"),
        (dict(mi_inner=1), "mi_inner"),
        (dict(delta=1.0), "delta"),
        (dict(activation="tanh"), "activation"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(leaky_slope=1.5), "leaky_slope"),
        (dict(priors=[0.5, 0.6, 0.1]), "priors"),
        (dict(means=np.zeros((2, 8))), "means"),
        (dict(covariances=-np.ones((3, 8, 8))), "covariances"),
        (dict(lr=10.0, weight_decay=0.5), "lr * weight_decay"),
        (dict(adam_betas=(0.9, 1.0)), "adam_betas"),
    ],
)
def test_invalid_configs_raise_value_error_naming_the_argument(changes, name):
    with pytest.raises(ValueError, match=name.replace("*", r"\*")):
        GMMConfig(**changes)


# ----------------------------------------------------------------------------------------------
# Command line

TINY_ARGS = ["--steps", "40", "--logs", "4", "--n-train", "30", "--n-test", "500", "--n-population", "500",
             "--n-heldout", "60", "--mi-outer", "60", "--mi-inner", "120"]


def _local_parser():
    parser = argparse.ArgumentParser(prog="ncgrok simulate")
    cli_gmm.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_writes_csv_figure_and_json(tmp_path, capsys):
    out = tmp_path / "run"
    args = _local_parser().parse_args(["gmm", *TINY_ARGS, "--out", str(out), "--json"])
    assert args.func(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["config"]["steps"] == 40 and document["config"]["n_train"] == 30
    assert set(document["summary"]["held_at_every_step"]) >= {"cantelli_bound", "ib_logdet", "heldout_radius"}
    with open(out / "gmm_trajectory.csv") as stream:
        rows = list(csv.reader(stream))
    assert tuple(rows[0]) == TRAJECTORY_COLUMNS
    assert [int(row[0]) for row in rows[1:]] == document["trajectory"]["step"]
    assert (out / "gmm_bounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "gmm_summary.json").read_text())["summary"] == document["summary"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli_table_and_help(tmp_path, capsys):
    parser = _local_parser()
    args = parser.parse_args(["gmm", *TINY_ARGS, "--activation", "identity", "--out", str(tmp_path), "--no-figure"])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "Thm. 3.2" in table and "exact" in table and "held at every step" in table
    assert not (tmp_path / "gmm_bounds.png").exists() and (tmp_path / "gmm_trajectory.csv").exists()
    help_text = parser._subparsers._group_actions[0].choices["gmm"].format_help()
    for needle in ("Thm. 3.2", "Thm. 3.4", "Thm. 4.1", "published", "reconstructed"):
        assert needle in help_text


def test_cli_user_error_is_one_line_exit_2(tmp_path, capsys):
    status = cli_gmm.main(["--lr", "-1", "--out", str(tmp_path)])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert "lr" in error and len(error.splitlines()) == 1


def test_ncgrok_simulate_gmm_entry_point(tmp_path, capsys):
    import ncgrok

    status = ncgrok.main(["simulate", "gmm", *TINY_ARGS, "--out", str(tmp_path), "--no-figure", "--json"])
    assert status == 0
    assert json.loads(capsys.readouterr().out)["command"] == "simulate gmm"
    assert (tmp_path / "gmm_trajectory.csv").exists()
