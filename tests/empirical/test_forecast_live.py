"""The live forecast (``empirical.forecast_live``) on planted runs appended row by row as training would.

Planted runs (``test_forecast.planted_run``): fitted at step 1000, log RNC1 falls linearly at a known
rate after it, test accuracy jumps when it has fallen by 2, so the onset is fit + 2 / rate exactly
(up to the logging interval at which ``grokking_onset`` sees the jump).
"""
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest

from ncgrok.empirical.forecast import Calibration, calibrate
from ncgrok.empirical.forecast_live import LivePlan, LiveRun, bar_text, init_live, latest_forecasts, update_live
from ncgrok.empirical.runs import FORECAST_COLUMNS, MetricsTable, RunDirectory

_spec = importlib.util.spec_from_file_location("forecast_tests", Path(__file__).with_name("test_forecast.py"))
_forecast_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_forecast_tests)
FIT = _forecast_tests.FIT

EVERY, HORIZON = 200, 16_000
COLUMNS = ("step", "train_acc", "train_loss", "test_acc", "test_loss", "rnc1", "nc2", "heldout_within_var")


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """Durability is not under test here; fsync took two thirds of these tests' time on the shared disk."""
    monkeypatch.setattr(os, "fsync", lambda descriptor: None)


def planted(name, rate, **changes):
    return _forecast_tests.planted_run(name, rate, every=EVERY, horizon=HORIZON, **changes)


def calibration_sweep():
    """Four completed planted runs: onsets 11000, 7667, 6000 and 5000."""
    return calibrate([planted(f"c{i}", rate)[0] for i, rate in enumerate((2e-4, 3e-4, 4e-4, 5e-4))])


def live_run(root, curves):
    return LiveRun(RunDirectory(root / curves.name), curves.lr, curves.weight_decay, curves.seed, curves.optimizer)


def train_group(plan, groups, index, start=0, stop=None, state=None, *, update=True):
    """Rows ``start`` to ``stop`` (exclusive; default: to the end) of group ``index`` appended step by step
    to each run's metrics.csv (created anew at row 0), calling ``update_live`` after each step as the
    training loop's progress callback does (unless ``update`` is false: a session without --forecast,
    or a crash before the callback). Returns the state."""
    state = init_live() if state is None else state
    tables = [MetricsTable(run.directory.metrics_path, COLUMNS) for run in plan.groups[index]]
    if start == 0:
        for run, table in zip(plan.groups[index], tables):
            run.directory.path.mkdir(parents=True, exist_ok=True)
            table.create()
    group = groups[index]
    for row in range(start, group[0].columns["step"].size if stop is None else stop):
        for curves, table in zip(group, tables):
            table.append([{column: float(curves.columns[column][row]) for column in COLUMNS}])
        if update:
            state = update_live(plan, state)
    return state


def train(plan, groups):
    state = None
    for index in range(len(groups)):
        state = train_group(plan, groups, index, state=state)
    return state


def forecast_table(run):
    return {(row["step"], row["forecaster"]): row for row in run.directory.forecast().rows()}


def test_the_known_onset_is_forecast_at_every_step_between_enough_post_fit_rows_and_the_onset(tmp_path):
    curves, onset = planted("new", 2.5e-4)  # onset 9000
    plan = LivePlan(((live_run(tmp_path, curves),),), HORIZON, calibration_sweep())
    state = train(plan, [[curves]])
    rows = forecast_table(plan.groups[0][0])
    assert set(rows) == {(int(step), name) for step in curves.columns["step"] for name in ("variance-crossing", "r6-law")}
    for step in curves.columns["step"]:
        row = rows[(int(step), "variance-crossing")]
        if step < FIT:
            assert row["status"] == "insufficient_data" and "not fitted" in row["detail"]
        elif step < FIT + 3 * EVERY:  # 4 post-fit rows needed (ForecastSettings.min_points)
            assert row["status"] == "insufficient_data" and "post-fit" in row["detail"]
        elif step < onset - EVERY:
            # noiseless straight line: the crossing is the planted one; the calibrated contraction is
            # known to within one log of the calibration runs' detected onsets (2.5e-4 x 200 in log V)
            assert row["status"] == "forecast", row
            assert row["predicted_onset"] == pytest.approx(onset, abs=2 * EVERY)
            # three of the four calibration onsets fall on a log, so the noiseless interval can shrink to
            # the onset itself: allow rounding (1e-6 steps)
            assert row["low"] - 1e-6 <= onset <= row["high"] + 1e-6
            assert row["calibration_runs"] == 4 and row["signal"] == "rnc1"
        elif step > onset + EVERY:
            assert row["status"] == "already_grokked"
    assert bar_text(latest_forecasts(plan, state)) == "already_grokked"
    halfway = int(FIT + 0.5 * (onset - FIT)) // EVERY * EVERY
    one = rows[(halfway, "variance-crossing")]
    assert bar_text([one]).startswith("onset~9.") and "[" in bar_text([one])


def test_without_calibration_every_row_is_insufficient_data_with_the_reason(tmp_path):
    curves, _ = planted("alone", 2.5e-4)
    plan = LivePlan(((live_run(tmp_path, curves),),), HORIZON, Calibration())
    train(plan, [[curves]])
    text = (tmp_path / "alone" / "forecast.csv").read_text().splitlines()
    assert text[0] == ",".join(FORECAST_COLUMNS)
    rows = plan.groups[0][0].directory.forecast().rows()
    assert len(rows) == 2 * curves.columns["step"].size
    assert {row["status"] for row in rows} == {"insufficient_data"}
    assert all(math.isnan(row["predicted_onset"]) and math.isnan(row["low"]) for row in rows)
    fitted = [row for row in rows if row["step"] >= FIT]
    assert all("no completed run that grokked to calibrate on" in row["detail"] for row in fitted)
    assert all(row["calibration_runs"] == 0 for row in rows)


def group_of_three():
    """Fast runs (onsets 3000 and 5000) grok early in the sweep and calibrate the slow one (onset 9000)."""
    return [planted("fast", 1e-3)[0], planted("mid", 5e-4, seed=1)[0], planted("slow", 2.5e-4, seed=2)[0]]


def test_runs_that_grokked_earlier_in_the_group_calibrate_the_others(tmp_path):
    group = group_of_three()
    plan = LivePlan((tuple(live_run(tmp_path, run) for run in group),), HORIZON)
    train(plan, [group])
    slow = forecast_table(plan.groups[0][2])
    # before the fast run's onset (3000) nothing has grokked: no calibration at all
    assert slow[(2000, "variance-crossing")]["calibration_runs"] == 0
    assert slow[(2000, "variance-crossing")]["status"] == "insufficient_data"
    # once both faster runs have grokked (and their rise is no longer censored) the slow run is forecast
    row = slow[(6000, "variance-crossing")]
    assert row["calibration_runs"] == 2 and row["status"] == "forecast"
    assert row["predicted_onset"] == pytest.approx(9000, abs=2 * EVERY)
    # a run never calibrates itself: the fast run has at most the other two
    assert max(r["calibration_runs"] for r in forecast_table(plan.groups[0][0]).values()) <= 2


def scrambled(curves, seed=0):
    rng = np.random.default_rng(seed)
    columns = dict(curves.columns)
    columns["test_acc"] = rng.random(columns["step"].size)
    columns["test_loss"] = 100 * rng.random(columns["step"].size)
    return type(curves)(curves.name, curves.lr, curves.weight_decay, curves.seed, curves.optimizer, curves.horizon,
                        columns)


@pytest.mark.parametrize("target", [0, 2])
def test_scrambling_a_runs_test_columns_leaves_its_forecast_csv_unchanged(tmp_path, target):
    group = group_of_three()
    fixed = calibration_sweep()
    for label, runs in (("plain", group), ("scrambled", [scrambled(r) if i == target else r for i, r in enumerate(group)])):
        plan = LivePlan((tuple(live_run(tmp_path / label, run) for run in runs),), HORIZON, fixed)
        train(plan, [runs])
    name = group[target].name
    plain = (tmp_path / "plain" / name / "forecast.csv").read_bytes()
    assert plain == (tmp_path / "scrambled" / name / "forecast.csv").read_bytes()
    assert b",forecast," in plain  # not vacuous: the run was forecast


def two_groups(root):
    """Group 0 (fast, mid) trains first and calibrates group 1 (slow, and a second slow seed)."""
    first = [planted("fast", 1e-3)[0], planted("mid", 5e-4, seed=1)[0]]
    second = [planted("slow", 2.5e-4, seed=2)[0], planted("slow2", 3e-4, seed=3)[0]]
    plan = LivePlan((tuple(live_run(root, r) for r in first), tuple(live_run(root, r) for r in second)), HORIZON)
    return plan, [first, second]


def listing(root):
    return {path.relative_to(root): path.read_bytes() for path in sorted(root.rglob("forecast.csv"))}


LAST = HORIZON // EVERY  # index of the last row


@pytest.mark.parametrize("session", ["cut back", "checkpoint at the crash", "resumed with --forecast", "between groups"])
def test_a_resumed_run_writes_the_forecast_csv_of_an_uninterrupted_one(tmp_path, session):
    plan, groups = two_groups(tmp_path / "whole")
    train(plan, groups)
    whole = listing(tmp_path / "whole")
    assert len(whole) == 4 and all(b",forecast," in data for data in whole.values())

    root = tmp_path / "cut"
    plan, groups = two_groups(root)
    if session == "between groups":
        # group 0's last metrics row and checkpoint were written, the process died before its forecast
        state = train_group(plan, groups, 0, stop=LAST)
        train_group(plan, groups, 0, LAST, None, state, update=False)
        crashed, crash_row, checkpoint = 0, LAST, None
    else:
        forecasting = session != "resumed with --forecast"
        state = train_group(plan, groups, 0, update=forecasting)
        state = train_group(plan, groups, 1, 0, 30, state, update=forecasting)
        train_group(plan, groups, 1, 30, 31, state, update=False)  # row 30 logged, then the crash
        crashed, crash_row = 1, 30
        checkpoint = {"cut back": 20, "checkpoint at the crash": 30, "resumed with --forecast": 30}[session]
    torn = plan.groups[crashed][0].directory.forecast_path
    if torn.exists():  # (a session without --forecast has no forecast.csv to tear)
        with open(torn, "a") as stream:  # the crash inside the append of the crash row's two forecasts
            stream.write(f"{crash_row * EVERY},variance-crossing,forecast,1.0,0.5,2.0,rnc1,0,made up\n"
                         f"{crash_row * EVERY},r6-la")
    if checkpoint is None:
        train_group(plan, groups, 1)  # group 1 starts anew in the resumed process
    else:
        for run in plan.groups[1]:
            MetricsTable(run.directory.metrics_path, COLUMNS).truncate_after(checkpoint * EVERY)
        train_group(plan, groups, 1, checkpoint + 1)
    assert listing(root) == whole
