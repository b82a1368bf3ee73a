"""Fit collapses, re-fits and censoring in empirical/onset.py, on planted curves (issue 12)."""
from __future__ import annotations

import numpy as np
import pytest

from ncgrok.empirical.onset import FitEvents, fit_events, grokking_onset
from ncgrok.empirical.onset_analysis import OnsetRecord, summarize_onsets

TOTAL = 100_000


def paper_schedule(total: int = TOTAL) -> np.ndarray:
    late = total // 150
    return np.array(sorted(set(range(0, 30)) | set(range(30, 150, 10)) | set(range(150, total + 1, late))), dtype=float)


def sigmoid(t):
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def fitted_train(steps, fit_mid=2_000.0):
    return 0.1 + 0.9 * sigmoid((steps - fit_mid) / 150.0)


def rise(steps, centre, width, plateau=0.15, final=0.88):
    return plateau + (final - plateau) * sigmoid((steps - centre) / width)


# ---------------------------------------------------------------------------------------------
# censoring


def test_rise_centred_after_the_horizon_is_censored_not_grokked():
    """The issue's case: a rise centred at 150k on a 100k horizon. Without censoring (an absurd
    censor_fraction) the same curve is labelled grokked with an onset in the 80k's."""
    steps = paper_schedule()
    train, test = fitted_train(steps), rise(steps, 150_000.0, 25_000.0)
    result = grokking_onset(steps, train, test)
    assert result.status == "censored"
    assert result.onset_step is None and result.delay is None and result.level is None
    assert result.last_step == steps[-1] and result.fit_step is not None
    uncensored = grokking_onset(steps, train, test, censor_fraction=1e9)
    assert uncensored.status == "grokked" and 70_000 < uncensored.onset_step < 90_000


@pytest.mark.parametrize("centre, width", [(110_000.0, 10_000.0), (100_000.0, 5_000.0), (90_000.0, 5_000.0)])
def test_rises_cut_by_the_horizon_are_censored(centre, width):
    steps = paper_schedule()
    assert grokking_onset(steps, fitted_train(steps), rise(steps, centre, width)).status == "censored"


@pytest.mark.parametrize("centre, width", [(40_000.0, 800.0), (71_000.0, 800.0), (40_000.0, 8_000.0), (80_000.0, 5_000.0)])
def test_finished_rises_are_grokked_even_near_the_horizon(centre, width):
    """(80k, 5k) has 98% of its rise done at the horizon: grokked, onset within one log of 80k."""
    steps = paper_schedule()
    result = grokking_onset(steps, fitted_train(steps), rise(steps, centre, width))
    assert result.status == "grokked"
    assert abs(result.onset_step - centre) <= TOTAL // 150 + 0.2 * width


def test_noise_on_a_small_finished_rise_does_not_censor():
    """A 0.1 rise finished at 60k with 0.01 noise: the end slope must be clearly positive (twice its
    standard error) to censor. 100 noisy copies, fixed seed: none censored. A false censoring needs
    the end slope beyond 2 standard errors *and* half the rise's central rate; with ~30 logs in the
    window the slope's noise is ~0.1 of that rate, so even one false case in 100 would be a 5-sigma event."""
    steps = paper_schedule()
    rng = np.random.default_rng(0)
    train = fitted_train(steps)
    statuses = [
        grokking_onset(steps, train, np.clip(rise(steps, 40_000.0, 4_000.0, 0.2, 0.3) + rng.normal(0, 0.01, steps.size), 0, 1)).status
        for _ in range(100)
    ]
    assert statuses.count("grokked") == 100


def test_censored_runs_are_counted_in_the_summary():
    steps = paper_schedule()
    train = fitted_train(steps)
    records = [OnsetRecord(0.01, 0, grokking_onset(steps, train, rise(steps, 150_000.0, 25_000.0))),
               OnsetRecord(0.01, 1, grokking_onset(steps, train, rise(steps, 40_000.0, 800.0)))]
    row = summarize_onsets(records, lr=1e-3).rows[0]
    assert row.num_runs == 2 and row.num_censored == 1 and row.num_grokked == 1


# ---------------------------------------------------------------------------------------------
# fit collapse and re-fit


def piecewise(steps, knots):
    """Piecewise-linear curve through ``(step, value)`` knots."""
    x, y = zip(*knots)
    return np.interp(steps, x, y)


def test_near_fit_collapse_then_fit_the_issue_case():
    """Train accuracy ~0.95 near 4k, collapse to 0.45, 0.99 first at 14k: the first fit is the attempt
    at 4k, the re-fit (and the old fit_step) is at 14k."""
    steps = np.arange(0, 30_001, 100, dtype=float)
    train = piecewise(steps, [(0, 0.1), (3_000, 0.89), (4_000, 0.95), (5_000, 0.95), (7_000, 0.45),
                              (12_000, 0.9), (14_000, 0.99), (30_000, 1.0)])
    events = fit_events(steps, train)
    first_attempt = steps[np.flatnonzero(train >= 0.9)[0]]
    refit = steps[np.flatnonzero(train >= 0.99)[0]]
    assert events == FitEvents(first_fit=first_attempt, last_refit=refit, fit_collapses=1,
                               collapse_steps=(steps[np.flatnonzero((train < 0.7) & (steps > 5_000))[0]],))
    assert 3_000 < events.first_fit < 4_000 and events.last_refit == 14_000
    test = piecewise(steps, [(0, 0.1), (14_000, 0.2), (20_000, 0.2), (22_000, 0.9), (30_000, 0.9)])
    result = grokking_onset(steps, train, test)
    assert (result.first_fit, result.last_refit, result.fit_collapses) == (events.first_fit, 14_000, 1)
    assert result.fit_step == 14_000 and result.status == "grokked"


def test_fit_collapse_and_refit_after_a_full_fit():
    steps = np.arange(0, 30_001, 100, dtype=float)
    train = piecewise(steps, [(0, 0.1), (3_000, 1.0), (5_000, 1.0), (6_000, 0.5), (10_000, 0.5),
                              (12_000, 1.0), (15_000, 1.0), (16_000, 0.6), (18_000, 1.0), (30_000, 1.0)])
    events = fit_events(steps, train)
    assert events.fit_collapses == 2
    assert events.first_fit == steps[np.flatnonzero(train >= 0.99)[0]]
    assert events.last_refit == steps[np.flatnonzero((train >= 0.99) & (steps > 16_000))[0]]
    # a dip to 0.8 (above the collapse threshold 0.7) is not a collapse; with the threshold at 0.85 it is
    dip = piecewise(steps, [(0, 0.1), (3_000, 1.0), (5_000, 1.0), (6_000, 0.8), (7_000, 1.0), (30_000, 1.0)])
    assert fit_events(steps, dip).fit_collapses == 0
    assert fit_events(steps, dip, collapse_threshold=0.85).fit_collapses == 1


def test_without_collapse_all_fits_agree_and_lost_fit_has_no_refit():
    steps = paper_schedule()
    train = fitted_train(steps)
    events = fit_events(steps, train)
    fit = steps[np.flatnonzero(train >= 0.99)[0]]
    assert events == FitEvents(fit, fit, 0, ())
    lost = piecewise(steps, [(0, 0.1), (3_000, 1.0), (5_000, 1.0), (6_000, 0.3), (TOTAL, 0.3)])
    events = fit_events(steps, lost)
    assert events.fit_collapses == 1 and events.first_fit is not None and events.last_refit is None
    assert fit_events(steps, np.full(steps.size, 0.5)) == FitEvents(None, None, 0, ())


def test_fit_thresholds_are_validated_by_name():
    steps = np.arange(5.0)
    with pytest.raises(ValueError, match="collapse_threshold < near_fit_threshold"):
        fit_events(steps, np.full(5, 0.5), near_fit_threshold=0.6, collapse_threshold=0.6)
    with pytest.raises(ValueError, match="near_fit_threshold"):
        grokking_onset(steps, np.full(5, 0.5), np.full(5, 0.5), near_fit_threshold=0.995)
    with pytest.raises(ValueError, match="censor_fraction"):
        grokking_onset(steps, np.full(5, 0.5), np.full(5, 0.5), censor_fraction=0)
