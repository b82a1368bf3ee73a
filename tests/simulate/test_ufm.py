"""Tests for simulate/ufm.py: the unconstrained features model under GD with weight decay (Thm. 4.3).

Every check is against an exact identity recomputed here, independently of the simulator's code:
gradients by finite differences and by the textbook formulas, the one-step balancedness identity
(theory.timescales.balancedness_step), and the exact linear update of same-class feature differences
``delta' = (I - eta (W^T W + lambda I)) delta``.
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest

from ncgrok.simulate.ufm import (
    TRAJECTORY_COLUMNS,
    UFMConfig,
    UFMSimulator,
    simulate_ufm,
    ufm_gradients,
)
from ncgrok.theory.timescales import balancedness_step, ufm_step_size_condition, ufm_variance_bound


def _residual(sim: UFMSimulator) -> np.ndarray:
    """``W H + b - Y`` recomputed from the state (independent of the simulator's gradient code)."""
    out = sim.weights @ sim.features - sim.targets
    if sim.config.bias:
        out = out + sim.bias[:, None]
    return out


def _same_class_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first, second = [], []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if labels[i] == labels[j]:
                first.append(i)
                second.append(j)
    return np.array(first), np.array(second)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("bias", [False, True])
def test_gradients_match_central_finite_differences(bias):
    # Central differences of a quadratic-in-each-entry loss are exact up to rounding (~1e-9 here).
    sim = UFMSimulator(UFMConfig(num_classes=3, samples_per_class=[2, 3, 2], feature_dim=4, init_scale=0.7,
                                 bias=bias, seed=3))
    sim.bias[:] = np.array([0.1, -0.2, 0.3]) if bias else 0.0
    grads = ufm_gradients(sim.weights, sim.features, sim.bias if bias else None, sim.targets)

    def loss() -> float:
        return 0.5 * float(np.sum(_residual(sim) ** 2))

    assert grads.loss == pytest.approx(loss(), rel=1e-14)
    step = 1e-6
    for array, analytic in ((sim.weights, grads.weights), (sim.features, grads.features)) + (
        ((sim.bias, grads.bias),) if bias else ()
    ):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + step
            plus = loss()
            array[index] = saved - step
            minus = loss()
            array[index] = saved
            numeric[index] = (plus - minus) / (2 * step)
        np.testing.assert_allclose(analytic, numeric, atol=1e-8)


# --------------------------------------------------------------------------- balancedness
@pytest.mark.parametrize("bias", [False, True])
def test_imbalance_follows_one_step_balancedness_identity_at_every_step(bias):
    # f = W H (+ b): W is the last layer W_L (K x p), H the previous one W_{L-1} (p x N).
    config = UFMConfig(num_classes=3, samples_per_class=4, feature_dim=6, init_scale=0.8, lr=0.05,
                       weight_decay=0.05, bias=bias, seed=1)
    sim = UFMSimulator(config)
    for _ in range(300):
        residual = _residual(sim)
        grad_last = residual @ sim.features.T  # dL/dW of the unregularized loss
        grad_prev = sim.weights.T @ residual  # dL/dH
        current = sim.weights.T @ sim.weights - sim.features @ sim.features.T
        predicted = balancedness_step(current, grad_last=grad_last, grad_prev=grad_prev,
                                      lr=config.lr, weight_decay=config.weight_decay)
        sim.step()
        after = sim.weights.T @ sim.weights - sim.features @ sim.features.T
        assert np.max(np.abs(after - predicted)) <= 1e-10
    # The run really moved (the identity is not checked on a frozen state).
    assert sim.gradients().loss < 0.5 * sim.initial_loss


def test_gradient_flow_substeps_approach_exponential_decay_of_imbalance():
    # Gradient flow: D(t) = exp(-2 lambda t) D(0) exactly; GD adds an O(eta) term per unit time,
    # so the error must shrink roughly in proportion to the substep size.
    errors = {}
    for substeps in (1, 20):
        config = UFMConfig(num_classes=3, samples_per_class=3, feature_dim=5, init_scale=1.0, lr=0.2,
                           weight_decay=0.1, substeps=substeps, seed=2)
        sim = UFMSimulator(config)
        start = sim.weights.T @ sim.weights - sim.features @ sim.features.T
        sim.step(25)
        end = sim.weights.T @ sim.weights - sim.features @ sim.features.T
        exact = math.exp(-2 * config.weight_decay * config.lr * 25) * start
        errors[substeps] = np.linalg.norm(end - exact) / np.linalg.norm(start)
    assert errors[20] < errors[1] / 8


# --------------------------------------------------------------------------- contraction
def test_same_class_differences_contract_by_one_minus_eta_lambda_under_step_size_condition():
    config = UFMConfig(num_classes=4, samples_per_class=[3, 4, 2, 5], feature_dim=9, init_scale=0.5,
                       lr=0.15, weight_decay=0.02, seed=4)
    sim = UFMSimulator(config)
    first, second = _same_class_pairs(sim.labels)
    factor = 1 - config.lr * config.weight_decay
    checked = 0
    for _ in range(400):
        norm = np.linalg.norm(sim.weights, 2)
        holds = ufm_step_size_condition(lr=config.lr, weight_decay=config.weight_decay, classifier_norm=norm)
        before = np.linalg.norm(sim.features[:, first] - sim.features[:, second], axis=0)
        sim.step()
        after = np.linalg.norm(sim.features[:, first] - sim.features[:, second], axis=0)
        if holds:
            checked += 1
            assert np.all(after <= factor * before * (1 + 1e-12) + 1e-300)
    assert checked == 400  # the condition holds throughout this run, so every step was checked


def test_within_class_variance_stays_below_the_geometric_bound():
    # Tr Sigma_W is an average of squared same-class differences, each contracting by 1 - eta lambda
    # while the step-size condition holds (checked on every logged step of this run).
    config = UFMConfig(lr=0.2, weight_decay=0.01, steps=4000, log_every=10, init_scale=0.5, seed=9)
    result = simulate_ufm(config)
    assert np.all(result["step_size_condition"] == 1)
    bound = ufm_variance_bound(result["within_var"][0], lr=config.lr, weight_decay=config.weight_decay,
                               steps=result["step"])
    assert np.all(result["within_var"] <= bound * (1 + 1e-12))
    # ... and with p > K the bound is attained up to a constant: the rate is exactly 1 - eta lambda late on.
    late = result["step"] >= 2000
    rate = np.polyfit(result["step"][late], np.log(result["within_var"][late]), 1)[0]
    assert rate == pytest.approx(2 * math.log(1 - config.lr * config.weight_decay), rel=1e-3)


def test_null_space_spread_contracts_exactly_with_frozen_classifier():
    config = UFMConfig(num_classes=3, samples_per_class=4, feature_dim=8, init_scale=1.0, lr=0.1,
                       weight_decay=0.03, train_classifier=False, bias=True, seed=5)
    sim = UFMSimulator(config)
    frozen = sim.weights.copy()
    _, singular, right = np.linalg.svd(frozen)
    null_basis = right[len(singular):]  # p - K rows spanning the null space of W
    first, second = _same_class_pairs(sim.labels)
    factor = 1 - config.lr * config.weight_decay
    for _ in range(200):
        before = np.linalg.norm(null_basis @ (sim.features[:, first] - sim.features[:, second]), axis=0)
        sim.step()
        after = np.linalg.norm(null_basis @ (sim.features[:, first] - sim.features[:, second]), axis=0)
        np.testing.assert_allclose(after, factor * before, rtol=1e-12)
    np.testing.assert_array_equal(sim.weights, frozen)


def test_logged_null_spread_decays_geometrically_with_frozen_classifier():
    config = UFMConfig(num_classes=3, samples_per_class=5, feature_dim=10, init_scale=1.0, lr=0.1,
                       weight_decay=0.02, train_classifier=False, steps=300, log_every=7, seed=6)
    result = simulate_ufm(config)
    steps, spread = result["step"], result["spread_null"]
    expected = spread[0] * (1 - config.lr * config.weight_decay) ** (2 * steps)
    np.testing.assert_allclose(spread, expected, rtol=1e-11)


def test_spread_columns_are_consistent_with_within_class_variance():
    result = simulate_ufm(UFMConfig(steps=500, log_points=30, seed=7))
    total = result.config.num_samples
    np.testing.assert_allclose(result["spread"], total * result["within_var"], rtol=1e-12)
    np.testing.assert_allclose(result["spread_row"] + result["spread_null"], result["spread"], rtol=1e-9, atol=1e-25)
    assert np.all(result["classifier_rank"] == result.config.num_classes)


# --------------------------------------------------------------------------- trajectory and result
def test_trajectory_has_every_column_and_sensible_values():
    result = simulate_ufm(UFMConfig(steps=3000, weight_decay=0.02, seed=8))
    assert result.columns == TRAJECTORY_COLUMNS
    assert result["step"][0] == 0 and result["step"][-1] == 3000
    assert result["loss_relative"][0] == pytest.approx(1.0)
    assert result["train_accuracy"][-1] == 1.0
    assert result["rnc1"][-1] < 1e-6 * result["rnc1"][0]
    assert np.all(np.isfinite(result["nc2"]))  # K = 4 <= p = 16
    assert result["nc2"][-1] == pytest.approx(1.0, abs=1e-3)  # balanced classes: orthogonal equal-norm means
    np.testing.assert_allclose(result["time"], result["step"] * result.config.lr)


def test_nc2_is_nan_when_classes_exceed_dimension():
    result = simulate_ufm(UFMConfig(num_classes=5, feature_dim=3, steps=50, log_points=5))
    assert np.all(np.isnan(result["nc2"]))
    assert np.all(result["classifier_rank"] == 3)
    np.testing.assert_allclose(result["spread_null"], 0.0, atol=1e-20)


def test_unbalanced_classes_and_float32():
    config = UFMConfig(samples_per_class=[2, 5, 9, 3], dtype="float32", steps=2000, weight_decay=0.02)
    result = simulate_ufm(config)
    assert result.features.dtype == np.float32 and result.features.shape == (16, 19)
    assert np.bincount(result.labels).tolist() == [2, 5, 9, 3]
    reference = simulate_ufm(config.replace(dtype="float64"))
    # float32 rounding (~1e-7 relative per step) stays far below the quantities compared here.
    np.testing.assert_allclose(result["feature_norm_mean"], reference["feature_norm_mean"], rtol=1e-3)
    assert result["train_accuracy"][-1] == 1.0


def test_csv_round_trip_is_atomic(tmp_path):
    result = simulate_ufm(UFMConfig(steps=200, log_points=20))
    path = result.to_csv(tmp_path / "deep" / "trajectory.csv")
    assert os.listdir(path.parent) == ["trajectory.csv"]  # no temporary file left behind
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert tuple(rows[0]) == TRAJECTORY_COLUMNS and len(rows) == len(result)
    for name in ("step", "rnc1", "spread_null", "imbalance"):
        np.testing.assert_array_equal([float(row[name]) for row in rows], result[name])


def test_stop_when_collapsed_ends_the_run_after_both_thresholds():
    result = simulate_ufm(UFMConfig(steps=100000, weight_decay=0.05, eps2=1e-4, stop_when_collapsed=True))
    assert result.stopped_early and result["step"][-1] < 100000
    assert result["rnc1"][-1] <= 1e-4 and result["loss_relative"][-1] <= 1e-3
    assert result["rnc1"][-2] > 1e-4 or result["loss_relative"][-2] > 1e-3


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "changes, name",
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -0.1}, "lr"),
        ({"weight_decay": -1e-3}, "weight_decay"),
        ({"num_classes": 1}, "num_classes"),
        ({"feature_dim": 0}, "feature_dim"),
        ({"eps1": 0.0}, "eps1"),
        ({"eps1": 1.0}, "eps1"),
        ({"eps2": 1.5}, "eps2"),
        ({"samples_per_class": 0}, "samples_per_class"),
        ({"samples_per_class": [3, 0, 2, 2]}, "samples_per_class"),
        ({"samples_per_class": [3, 3]}, "samples_per_class"),
        ({"init_scale": 0.0}, "init_scale"),
        ({"steps": 0}, "steps"),
        ({"substeps": 0}, "substeps"),
        ({"dtype": "float16"}, "dtype"),
        ({"scale": "max"}, "scale"),
        ({"log_every": 0}, "log_every"),
        ({"lr": 2.0, "weight_decay": 0.5}, "lr \\* weight_decay"),
    ],
)
def test_invalid_configuration_names_the_argument(changes, name):
    with pytest.raises(ValueError, match=name):
        UFMConfig(**changes)


def test_divergence_is_reported_as_a_value_error_naming_lr():
    with pytest.raises(ValueError, match="lr"):
        simulate_ufm(UFMConfig(lr=3.0, weight_decay=0.0, init_scale=1.0, steps=400, log_points=10))
