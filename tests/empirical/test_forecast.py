"""Onset forecasts on planted runs whose answer is known, and the rule that test columns are never read."""
import math

import numpy as np
import pytest

from ncgrok.empirical.forecast import (
    Calibration,
    backtest,
    backtest_summary,
    calibrate,
    forecast_run,
    forecast_runs,
)
from ncgrok.empirical.ledger.core import RunCurves

FIT, HORIZON, EVERY, DELTA = 1000, 40_000, 100, -2.0


def planted_run(name, rate, *, weight_decay=0.01, lr=1e-3, seed=0, decays=True, every=EVERY, horizon=HORIZON):
    """Fit at step 1000; log held-out variance falls at ``rate`` per step after it; test accuracy jumps
    from 0.2 to 0.9 when log V has fallen by 2 (onset = fit + 2 / rate). Logged every ``every`` steps."""
    steps = np.arange(0, horizon + 1, every, dtype=float)
    train_acc = np.clip(steps / FIT, 0.1, 1.0)
    after = np.maximum(steps - FIT, 0.0)
    log_v = math.log(0.5) - (rate * after if decays else 0.0 * after)
    onset = FIT - DELTA / rate
    test_acc = np.where(steps >= onset, 0.9, 0.2)
    columns = {
        "step": steps, "train_acc": train_acc, "train_loss": 1.0 - train_acc,
        "heldout_within_var": np.exp(log_v), "rnc1": np.exp(log_v) / 2, "nc2": 1 + np.exp(log_v),
        "test_acc": test_acc, "test_loss": 1.0 - test_acc,
    }
    return RunCurves(name, lr, weight_decay, seed, "adamw", horizon, columns), onset


@pytest.fixture
def sweep():
    return [planted_run(f"r{i}", rate)[0] for i, rate in enumerate((2e-4, 3e-4, 4e-4, 5e-4))]


def test_calibration_recovers_the_planted_contraction(sweep):
    calibration = calibrate(sweep)
    assert len(calibration.names) == 4
    # the onset is detected at a logged step (every 100), so delta is within one step's fall of -2
    assert all(abs(d - DELTA) <= 5e-4 * EVERY + 1e-9 for d in calibration.deltas)


def test_forecast_halfway_gives_the_known_onset(sweep):
    run, onset = planted_run("new", 2.5e-4)
    halfway = FIT + 0.5 * (onset - FIT)
    result = forecast_run(run, calibrate(sweep), at=halfway)
    assert result.status == "forecast"
    assert result.predicted_onset == pytest.approx(onset, abs=2 * EVERY)
    low, high = result.interval
    assert low <= onset <= high


def test_no_decay_means_no_onset_expected(sweep):
    flat, _ = planted_run("flat", 2.5e-4, decays=False)
    result = forecast_run(flat, calibrate(sweep), at=5000)
    assert result.status == "no_onset_expected"
    assert str(HORIZON) in result.detail


def test_too_early_and_uncalibrated_are_insufficient(sweep):
    run, _ = planted_run("new", 2.5e-4)
    assert forecast_run(run, calibrate(sweep), at=500).status == "insufficient_data"  # not fit yet
    assert forecast_run(run, calibrate(sweep), at=FIT + EVERY).status == "insufficient_data"  # 2 post-fit rows
    assert forecast_run(run, Calibration(), at=5000).status == "insufficient_data"


def test_already_grokked_by_the_forecasters_own_criterion(sweep):
    run, onset = planted_run("new", 2.5e-4)
    assert forecast_run(run, calibrate(sweep), at=onset + 1000).status == "already_grokked"


def test_forecast_never_reads_test_columns(sweep):
    run, onset = planted_run("new", 2.5e-4)
    scrambled_columns = dict(run.columns)
    rng = np.random.default_rng(0)
    scrambled_columns["test_acc"] = rng.random(run.columns["step"].size)
    scrambled_columns["test_loss"] = rng.random(run.columns["step"].size) * 100
    scrambled = RunCurves(run.name, run.lr, run.weight_decay, run.seed, run.optimizer, run.horizon, scrambled_columns)
    calibration = calibrate(sweep)
    for forecaster in ("variance-crossing", "r6-law"):
        a = forecast_run(run, calibration, at=5000, forecaster=forecaster)
        b = forecast_run(scrambled, calibration, at=5000, forecaster=forecaster)
        assert a.to_json() == b.to_json()


def test_r6_law_uses_the_calibrated_constant():
    # planted onsets: fit + C/(eta lambda) with C = 0.5 -> rates chosen so that 2/rate = C/(eta lambda)
    runs = [planted_run(f"w{i}", 2.0 * 1e-3 * wd / 0.5, weight_decay=wd)[0] for i, wd in enumerate((0.1, 0.05, 0.02))]
    new, onset = planted_run("new", 2.0 * 1e-3 * 0.03 / 0.5, weight_decay=0.03)
    result = forecast_run(new, calibrate(runs), at=FIT + 500, forecaster="r6-law")
    assert result.status == "forecast"
    assert result.predicted_onset == pytest.approx(onset, rel=0.02)


def test_leave_one_out_and_backtest_bookkeeping(sweep):
    forecasts = forecast_runs(sweep, at=5000)
    assert [f.run for f in forecasts] == ["r0", "r1", "r2", "r3"]
    rows = backtest(sweep, every=1000)
    onsets = {run.name: FIT - DELTA / rate for run, rate in zip(sweep, (2e-4, 3e-4, 4e-4, 5e-4))}
    for row in rows:
        assert row.fit_step == FIT
        assert row.onset_step == pytest.approx(onsets[row.run], abs=EVERY)
        assert row.at_step < row.onset_step
    per_run = {name: sum(r.run == name and r.forecaster == "r6-law" for r in rows) for name in onsets}
    # forecasts at fit + 1000, 2000, ... before the onset, plus the halfway point
    for name, onset in onsets.items():
        expected = len({float(t) for t in np.arange(FIT + 1000, onset, 1000)} | {FIT + 0.5 * (onset - FIT)})
        assert per_run[name] == expected
    summary = backtest_summary(rows, halfway_only=True)
    crossing = summary["variance-crossing"]
    assert crossing["forecasts"] == 4
    assert crossing["median_abs_error_relative"] < 0.05
    # noiseless runs: the interval spans only the calibration runs' one-log discretisation of their
    # onsets, so a detected onset one log late may fall just outside; most must be covered
    assert crossing["coverage"] >= 0.75


def _write_run(directory, run):
    import json

    directory.mkdir(parents=True)
    config = {"name": run.name, "optimizer": run.optimizer, "steps": run.horizon,
              "run": {"seed": run.seed, "lr": run.lr, "weight_decay": run.weight_decay}}
    (directory / "config.json").write_text(json.dumps(config))
    names = ["step", "train_acc", "test_acc", "rnc1", "heldout_within_var", "train_loss", "test_loss"]
    lines = [",".join(names)] + [",".join(repr(float(run.columns[n][i])) for n in names)
                                 for i in range(run.columns["step"].size)]
    (directory / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_cli_forecast_and_backtest_on_run_directories_written_by_other_code(tmp_path, sweep, capsys):
    import json

    from ncgrok.cli import main

    for run in sweep:
        _write_run(tmp_path / "sweep" / run.name, run)
    new, onset = planted_run("new", 2.5e-4)
    _write_run(tmp_path / "new" / "new", new)
    halfway = FIT + 0.5 * (onset - FIT)
    argv = ["forecast", str(tmp_path / "new"), "--calibrate-on", str(tmp_path / "sweep"), "--at", str(halfway), "--json"]
    assert main(argv) == 0
    (entry,) = json.loads(capsys.readouterr().out)["runs"]
    assert entry["status"] == "forecast" and entry["forecaster"] == "variance-crossing"
    assert entry["predicted_onset"] == pytest.approx(onset, abs=2 * EVERY)
    assert entry["at_step"] <= halfway
    assert main(["forecast", str(tmp_path / "sweep"), "--backtest"]) == 0
    assert "half-way" in capsys.readouterr().out
    assert main(["forecast", str(tmp_path / "sweep"), "--at", "-5"]) == 2
