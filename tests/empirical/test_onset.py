"""Tests for empirical/onset.py (onset definitions on planted curves) and the R6 summary of
empirical/onset_analysis.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ncgrok.empirical.onset import GrokkingOnset, first_fit_step, grokking_onset, onset_definitions, rnc1_drop_time
from ncgrok.empirical.onset_analysis import OnsetRecord, summarize_onsets

TOTAL_STEPS = 100_000


def paper_schedule(total: int = TOTAL_STEPS) -> np.ndarray:
    """Logged steps of the paper: every step below 30, every 10 below 150, then every total // 150."""
    late = total // 150
    return np.array(sorted(set(range(0, 30)) | set(range(30, 150, 10)) | set(range(150, total + 1, late))), dtype=float)


def sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def curves(steps, *, fit_mid=2_000.0, onset=40_000.0, width=800.0, plateau=0.15, final=0.88, fit_top=1.0):
    """Train accuracy rising to ``fit_top`` around ``fit_mid``; test accuracy rising from ``plateau``
    to ``final`` with its midpoint exactly at ``onset``."""
    train = 0.1 + (fit_top - 0.1) * sigmoid((steps - fit_mid) / 150.0)
    test = plateau + (final - plateau) * sigmoid((steps - onset) / width)
    return train, test


def first_logged_at_or_after(steps: np.ndarray, value: float) -> float:
    return float(steps[np.flatnonzero(steps >= value)[0]])


# ---------------------------------------------------------------------------------------------
# fit time


def test_first_fit_step_is_the_first_logged_step_above_threshold():
    steps = np.array([0, 10, 20, 30, 40])
    train = np.array([0.1, 0.5, 0.989, 0.99, 1.0])
    assert first_fit_step(steps, train) == 30
    assert first_fit_step(steps, train, threshold=0.5) == 10
    assert first_fit_step(steps, np.full(5, 0.98)) is None


def test_inputs_are_validated_with_the_argument_named():
    with pytest.raises(ValueError, match="steps"):
        first_fit_step([0, 10, 10], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="train_acc"):
        first_fit_step([0, 10, 20], [10.0, 50.0, 99.0])  # percentages
    with pytest.raises(ValueError, match="test_acc"):
        grokking_onset([0, 1, 2], [0.1, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="test_acc"):
        grokking_onset([0, 1, 2], [0.1, 1, 1], [0.1, np.nan, 0.3])


def test_definitions_in_words_state_the_thresholds_in_force():
    import inspect

    defaults = {name: parameter.default for name, parameter in inspect.signature(grokking_onset).parameters.items()}
    text = onset_definitions()
    assert text["fit_step"].endswith(f">= {defaults['fit_threshold']:g}")
    assert f"majority of the {defaults['sustain']} logs" in text["onset_step"]
    assert f"last {defaults['final_points']} logs" in text["final"]
    assert f"next {defaults['plateau_points'] - 1}" in text["plateau"]
    assert f">= {defaults['min_gain']:g}" in text["status"] and f"{defaults['generalized_accuracy']:g})" in text["status"]
    drop = inspect.signature(rnc1_drop_time).parameters["fraction"].default
    assert f"RNC1 <= {drop:g} x" in text["rnc1_drop_step"]
    other = onset_definitions(fit_threshold=0.95, rnc1_fraction=0.25)
    assert other["fit_step"].endswith(">= 0.95") and "RNC1 <= 0.25 x" in other["rnc1_drop_step"]


# ---------------------------------------------------------------------------------------------
# onset on planted curves


@pytest.mark.parametrize("onset", [10_000.0, 20_000.0, 40_000.0, 71_234.0])
def test_planted_sigmoid_onset_recovered_within_one_log_interval(onset):
    steps = paper_schedule()
    train, test = curves(steps, onset=onset)
    result = grokking_onset(steps, train, test)
    interval = TOTAL_STEPS // 150
    assert result.status == "grokked"
    # Fit: the exact first logged step with train accuracy >= 0.99.
    assert result.fit_step == steps[np.flatnonzero(train >= 0.99)[0]]
    assert result.plateau == pytest.approx(0.15, abs=1e-3)
    assert result.final == pytest.approx(0.88, abs=1e-3)
    # The midpoint of the rise is planted at ``onset``; the detected onset is the first logged step
    # at or after it (the plateau/final estimates shift the level by < 1e-3, i.e. < 1 step of time).
    assert result.onset_step == first_logged_at_or_after(steps, onset)
    assert abs(result.onset_step - onset) <= interval
    assert result.delay == result.onset_step - result.fit_step


def test_noisy_curve_with_spikes_keeps_the_onset():
    rng = np.random.default_rng(1234)
    steps = paper_schedule()
    onset = 40_000.0
    train, test = curves(steps, onset=onset)
    test = np.clip(test + rng.normal(0.0, 0.01, size=steps.size), 0.0, 1.0)
    # Single upward spikes well before the onset (one right at the fit), and a single dip after it.
    for step in (3_000, 10_000, 20_000, 30_000, 35_000):
        test[np.argmin(np.abs(steps - step))] = 0.9
    test[np.argmin(np.abs(steps - 50_000))] = 0.1
    # Two spikes close together (2 of 5 logs): still not a sustained crossing.
    index = np.argmin(np.abs(steps - 25_000))
    test[index] = test[index + 2] = 0.9
    result = grokking_onset(steps, train, test)
    assert result.status == "grokked"
    assert abs(result.onset_step - onset) <= TOTAL_STEPS // 150
    assert result.plateau == pytest.approx(0.15, abs=0.03)
    # Without the sustained rule (sustain = 1) the first spike after the fit would be taken.
    naive = grokking_onset(steps, train, test, sustain=1)
    assert naive.onset_step < 15_000


def test_never_fit_never_grokked_and_no_gap_statuses():
    steps = paper_schedule()
    rng = np.random.default_rng(7)
    train, test = curves(steps, fit_top=0.95)
    never_fit = grokking_onset(steps, train, test)
    assert never_fit.status == "never_fit"
    assert never_fit.fit_step is None and never_fit.onset_step is None and never_fit.delay is None

    train, _ = curves(steps)
    flat = np.clip(0.2 + rng.normal(0.0, 0.01, steps.size), 0, 1)
    never = grokking_onset(steps, train, flat)
    assert never.status == "never_grokked"
    assert never.fit_step is not None and never.onset_step is None

    # Test accuracy rises with the training accuracy (like the paper's CNN): generalised at the fit.
    with_fit = np.clip(0.1 + 0.8 * sigmoid((steps - 1_900.0) / 150.0) + rng.normal(0, 0.005, steps.size), 0, 1)
    no_gap = grokking_onset(steps, train, with_fit)
    assert no_gap.status == "no_gap"
    assert no_gap.plateau == pytest.approx(0.9, abs=0.02)

    # A small late rise (0.03 < min_gain = 0.05) is not grokking.
    small = 0.2 + 0.03 * sigmoid((steps - 40_000.0) / 800.0)
    assert grokking_onset(steps, train, small).status == "never_grokked"
    assert grokking_onset(steps, train, small, min_gain=0.02).status == "grokked"


# ---------------------------------------------------------------------------------------------
# RNC1 drop


def test_rnc1_drop_time_on_planted_exponential():
    steps = np.arange(0, 50_001, 100, dtype=float)
    fit, tau = 5_000.0, 7_000.0
    rnc1 = np.where(steps <= fit, 3.0, 3.0 * np.exp(-(steps - fit) / tau))
    expected = first_logged_at_or_after(steps, fit + tau * math.log(10.0))
    assert rnc1_drop_time(steps, rnc1, fit_step=fit) == expected
    # fit_step between logs: the reference is the next logged value (still 3.0 here).
    assert rnc1_drop_time(steps, rnc1, fit_step=fit - 50) == expected
    assert rnc1_drop_time(steps, rnc1, fit_step=None) is None
    assert rnc1_drop_time(steps, np.full(steps.size, 2.0), fit_step=fit) is None
    with pytest.raises(ValueError, match="fit_step"):
        rnc1_drop_time(steps, rnc1, fit_step=60_000)


# ---------------------------------------------------------------------------------------------
# Sweep summary


LR = 1e-3
DECAYS = (0.3, 0.1, 0.03, 0.01, 0.003)
CONSTANT = 0.75


def planted_records(*, seeds=5, noise=0.0, rng=None):
    records = []
    for decay in DECAYS:
        for seed in range(seeds):
            fit = 1_000.0 + 37.0 * seed + 11.0 * decay
            delay = CONSTANT / (LR * decay)
            if noise:
                delay *= math.exp(rng.normal(0.0, noise))
            result = GrokkingOnset("grokked", fit, 0.15, 0.88, 0.515, fit + delay)
            records.append(OnsetRecord(decay, seed, result))
    return records


def test_summary_recovers_planted_slope_and_calibration_exactly():
    summary = summarize_onsets(planted_records(), lr=LR)
    assert summary.slope_fit.slope == pytest.approx(-1.0, abs=1e-12)
    assert summary.slope_fit.num_points == 25
    # Middle of (0.003, 0.01, 0.03, 0.1, 0.3) in ascending order.
    assert summary.calibration_weight_decay == 0.03
    assert summary.onset_constant == pytest.approx(CONSTANT, rel=1e-12)
    for row in summary.rows:
        assert row.num_runs == row.num_grokked == 5
        assert row.delay_mean == pytest.approx(CONSTANT / (LR * row.weight_decay), rel=1e-12)
        assert row.delay_std == pytest.approx(0.0, abs=1e-6)
        assert row.predicted_onset == pytest.approx(row.onset_mean, rel=1e-12)
        assert row.onset_relative_error == pytest.approx(0.0, abs=1e-12)
        assert row.delay_relative_error == pytest.approx(0.0, abs=1e-12)
    assert [row.weight_decay for row in summary.rows] == sorted(DECAYS)


def test_summary_slope_ci_covers_planted_slope_with_noise():
    rng = np.random.default_rng(3)
    summary = summarize_onsets(planted_records(noise=0.2, rng=rng), lr=LR, calibrate_on=0.01)
    low, high = summary.slope_fit.slope_ci
    assert low < -1.0 < high
    assert summary.calibration_weight_decay == 0.01
    row = next(r for r in summary.rows if r.weight_decay == 0.01)
    assert summary.onset_constant == pytest.approx(row.delay_mean * LR * 0.01, rel=1e-12)
    assert row.delay_relative_error == pytest.approx(0.0, abs=1e-12)
    assert row.delay_min <= row.delay_mean <= row.delay_max and row.delay_std > 0


def test_summary_counts_failed_runs_and_never_drops_them():
    records = planted_records(seeds=3)
    records.append(OnsetRecord(0.01, 3, GrokkingOnset("never_fit", None, None, 0.1, None, None)))
    records.append(OnsetRecord(0.01, 4, GrokkingOnset("never_grokked", 900, 0.15, 0.16, None, None)))
    records.append({"weight_decay": 0.001, "seed": 0, "result": GrokkingOnset("never_grokked", 900, 0.15, 0.16, None, None)})
    summary = summarize_onsets(records, lr=LR)
    row = next(r for r in summary.rows if r.weight_decay == 0.01)
    assert (row.num_runs, row.num_grokked, row.num_never_fit, row.num_never_grokked) == (5, 3, 1, 1)
    assert row.seeds == (0, 1, 2, 3, 4)
    empty = summary.rows[0]
    assert empty.weight_decay == 0.001 and empty.num_runs == 1 and empty.num_never_grokked == 1
    assert math.isnan(empty.delay_mean) and math.isnan(empty.predicted_onset)
    assert sum(r.num_runs for r in summary.rows) == len(records)
    # The slope still uses only the grokked runs: exactly -1.
    assert summary.slope_fit.slope == pytest.approx(-1.0, abs=1e-12)
    with pytest.raises(ValueError, match="calibrate_on"):
        summarize_onsets(records, lr=LR, calibrate_on=0.001)


def test_end_to_end_planted_onsets_through_curves():
    """Curves with onsets planted at fit + C/(eta lambda), C = 1: detection + summary give slope ~ -1."""
    steps = np.arange(0, 60_001, 10, dtype=float)
    records = []
    for decay in (0.3, 0.1, 0.03):
        for seed in range(3):
            train, _ = curves(steps, fit_mid=500.0 + 20 * seed)
            fit = float(steps[np.flatnonzero(train >= 0.99)[0]])
            _, test = curves(steps, onset=fit + 1.0 / (LR * decay), width=20.0)
            records.append(OnsetRecord(decay, seed, grokking_onset(steps, train, test)))
    summary = summarize_onsets(records, lr=LR)
    assert all(r.result.status == "grokked" for r in records)
    # Each onset is quantised to the 10-step log grid: delays within 10 of C/(eta lambda).
    for record in records:
        assert abs(record.result.delay - 1.0 / (LR * record.weight_decay)) <= 10
    assert summary.slope_fit.slope == pytest.approx(-1.0, abs=0.01)
    assert summary.onset_constant == pytest.approx(1.0, rel=0.01)


def test_run_onset_reads_a_logged_run_and_marks_divergence():
    """`run_onset` is `grokking_onset` of the run's columns, and `diverged_onset` of it for a diverged run."""
    from types import SimpleNamespace

    from ncgrok.empirical.onset import diverged_onset, grokking_onset, run_onset

    steps = np.arange(0, 4000, 100)
    train = np.clip(steps / 1000, 0, 1)
    test = np.where(steps < 2500, 0.1, 0.95)
    columns = {"train_acc": train, "test_acc": test}
    run = SimpleNamespace(steps=steps, column=columns.__getitem__, diverged=False)
    expected = grokking_onset(steps, train, test)
    assert expected.status == "grokked"
    assert run_onset(run) == expected
    run.diverged = True
    assert run_onset(run) == diverged_onset(expected)
    assert run_onset(run).status == "diverged" and run_onset(run).onset_step is None
