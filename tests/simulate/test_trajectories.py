"""Tests for simulate/trajectories.py: time-scale extraction, sweeps and the scaling law (Thm. 4.3).

The crossing and interpolation helpers are checked against exact exponentials. The sweep tests check
the published *rates* of Thm. 4.3 on the UFM: the collapse time scales like ``1/lambda`` (log-log slope
-1) while the fit time does not depend on ``lambda``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from ncgrok.simulate.trajectories import (
    SWEEP_COLUMNS,
    collapse_scaling,
    collapse_step,
    crossing_step,
    fit_step,
    predicted_fit_time,
    sweep_to_array,
    sweep_to_csv,
    sweep_ufm,
    time_scales,
    value_at,
)
from ncgrok.simulate.ufm import UFMConfig, simulate_ufm

# The sweep shared by the scaling tests: p = 16 > K = 4, one decade of weight decay. lr = 0.2 and
# eps2 = 1e-4 keep it to ~25k steps in all (about a second); the step-size condition
# lr (||W||_2^2 + lambda) <= 2 - lr lambda holds with ||W||_2^2 ~ sqrt(8) ~ 2.8.
SWEEP_CONFIG = UFMConfig(num_classes=4, samples_per_class=8, feature_dim=16, init_scale=0.1, lr=0.2, eps2=1e-4)
SWEEP_DECAYS = (1e-3, 2e-3, 5e-3, 1e-2)


@pytest.fixture(scope="module")
def sweep_rows():
    return sweep_ufm(SWEEP_CONFIG, weight_decays=SWEEP_DECAYS)


# --------------------------------------------------------------------------- crossings
def test_crossing_step_is_exact_for_an_exponential_between_coarse_logs():
    rate = 0.013
    steps = np.array([0, 3, 10, 50, 200, 1000, 5000], dtype=float)
    values = np.exp(-rate * steps)
    for threshold in (0.5, 1e-2, 1e-5, 1e-20):
        assert crossing_step(steps, values, threshold) == pytest.approx(math.log(1 / threshold) / rate, rel=1e-12)
    # Without interpolation: the first logged step at or below the threshold.
    assert crossing_step(steps, values, 1e-2, interpolate=False) == 1000
    assert math.isnan(crossing_step(steps, values, 1e-40))
    assert crossing_step(steps, values, 2.0) == 0.0  # below from the start


def test_crossing_step_falls_back_to_linear_interpolation_at_zero():
    assert crossing_step([0, 10], [1.0, 0.0], 0.25) == pytest.approx(7.5)


def test_value_at_interpolates_geometrically():
    steps = np.array([0.0, 100.0, 400.0])
    values = 2.0 * np.exp(-0.01 * steps)
    assert value_at(steps, values, 250.0) == pytest.approx(2.0 * math.exp(-2.5), rel=1e-12)
    assert value_at(steps, values, 100.0) == values[1]
    assert math.isnan(value_at(steps, values, 500.0))


def test_crossing_step_rejects_unsorted_steps():
    with pytest.raises(ValueError, match="steps"):
        crossing_step([0, 5, 3], [1.0, 0.5, 0.1], 0.2)


# --------------------------------------------------------------------------- one run
def test_time_scales_of_one_run_follow_their_definitions():
    result = simulate_ufm(SWEEP_CONFIG.replace(weight_decay=1e-2, steps=8000))
    scales = time_scales(result)
    steps = result["step"]
    # tau1: between the last logged step above eps1 and the first at or below it.
    first = int(np.argmax(result["loss_relative"] <= 1e-3))
    assert steps[first - 1] < scales.tau1 <= steps[first]
    assert fit_step(result, interpolate=False) == steps[first]
    first = int(np.argmax(result["rnc1"] <= 1e-4))
    assert steps[first - 1] < scales.tau2 <= steps[first]
    assert collapse_step(result, scale="sup", interpolate=False) == steps[int(np.argmax(result["rnc1_sup"] <= 1e-4))]
    assert scales.delay == pytest.approx(scales.tau2 - scales.tau1)
    assert scales.fitted and scales.collapsed
    # After the fit nearly all of the within-class spread is in the null space of W (p > K).
    assert scales.null_fraction_at_fit > 0.9


def test_unreached_collapse_gives_nan_not_an_error():
    scales = time_scales(simulate_ufm(SWEEP_CONFIG.replace(weight_decay=1e-3, steps=500)))
    assert scales.fitted and not scales.collapsed
    assert math.isnan(scales.tau2) and math.isnan(scales.tau2_rel_error)
    assert math.isfinite(scales.tau2_predicted)


def test_small_init_fit_time_estimate_is_within_25_percent():
    # The estimate ignores mode coupling and is first order in lr; ~10% off in these settings.
    for changes in ({}, {"lr": 0.02}, {"samples_per_class": [4, 8, 16, 8], "lr": 0.05},
                    {"num_classes": 10, "feature_dim": 32, "samples_per_class": 5, "lr": 0.05}):
        config = SWEEP_CONFIG.replace(weight_decay=1e-2, steps=250, log_points=80, **changes)
        measured = fit_step(simulate_ufm(config))
        assert predicted_fit_time(config) == pytest.approx(measured, rel=0.25)


# --------------------------------------------------------------------------- sweeps and scaling
def test_collapse_time_scales_like_inverse_weight_decay(sweep_rows):
    assert [row["weight_decay"] for row in sweep_rows] == list(SWEEP_DECAYS)
    assert all(row["fitted"] and row["collapsed"] for row in sweep_rows)
    fit = collapse_scaling(sweep_rows, quantity="tau2")
    assert abs(fit.slope + 1) < 0.1
    delay_fit = collapse_scaling(sweep_rows)
    assert abs(delay_fit.slope + 1) < 0.1


def test_fit_time_does_not_depend_on_weight_decay(sweep_rows):
    fit_times = np.array([row["tau1"] for row in sweep_rows])
    assert fit_times.max() / fit_times.min() - 1 < 0.2
    # ... and is far below the collapse time (the separation of time scales).
    assert all(row["tau2"] > 20 * row["tau1"] for row in sweep_rows)


def test_ufm_prediction_of_tau2_is_accurate(sweep_rows):
    # tau2 = tau1 + log(RNC1(tau1)/eps2) / (2 eta lambda): the only approximations are the ~1% of
    # spread left in the row space at tau1 and log(1 - eta lambda) ~ -eta lambda, both well below 5%.
    for row in sweep_rows:
        assert abs(row["tau2_rel_error"]) < 0.05
        assert row["tau2_predicted"] == pytest.approx(
            row["tau1"] + math.log(row["rnc1_at_fit"] / row["eps2"]) / (2 * row["lr"] * row["weight_decay"]),
            rel=1e-12,
        )


def test_sweep_over_learning_rates_and_table_outputs(tmp_path):
    rows = sweep_ufm(SWEEP_CONFIG, weight_decays=[2e-2, 5e-2], lrs=[0.1, 0.2])
    assert [(row["lr"], row["weight_decay"]) for row in rows] == [(0.1, 0.02), (0.1, 0.05), (0.2, 0.02), (0.2, 0.05)]
    # The delay depends on lr and lambda through 1/(lr lambda): doubling lr halves it.
    assert rows[0]["delay"] / rows[2]["delay"] == pytest.approx(2.0, rel=0.05)
    assert rows[1]["delay"] / rows[3]["delay"] == pytest.approx(2.0, rel=0.05)
    with pytest.raises(ValueError, match="lr="):
        collapse_scaling(rows)
    assert collapse_scaling(rows, lr=0.2).num_points == 2
    table = sweep_to_array(rows)
    assert table.dtype.names == SWEEP_COLUMNS and len(table) == 4
    np.testing.assert_array_equal(table["tau2"], [row["tau2"] for row in rows])
    path = sweep_to_csv(rows, tmp_path / "sweep.csv")
    loaded = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    np.testing.assert_allclose(loaded["tau1"], [row["tau1"] for row in rows], rtol=1e-15)


def test_sweep_and_scaling_reject_bad_input():
    with pytest.raises(ValueError, match="weight_decays"):
        sweep_ufm(SWEEP_CONFIG, weight_decays=[0.0, 1e-2])
    with pytest.raises(ValueError, match="weight_decays"):
        sweep_ufm(SWEEP_CONFIG, weight_decays=[])
    with pytest.raises(ValueError, match="quantity"):
        collapse_scaling([], quantity="tau1")
    with pytest.raises(ValueError, match="two weight decays"):
        collapse_scaling([{"lr": 0.1, "weight_decay": 0.01, "delay": 5.0}])
