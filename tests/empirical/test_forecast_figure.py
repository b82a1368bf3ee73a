"""The forecast-vs-step figure: its data on planted runs (live forecast.csv and replay), and that the
drawn lines hold exactly those values."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import ncgrok
from ncgrok.empirical.forecast import calibrate
from ncgrok.empirical.forecast_figure import draw_forecast_histories, forecast_figure, forecast_histories
from ncgrok.empirical.forecast_live import LivePlan, LiveRun, init_live, update_live
from ncgrok.empirical.ledger.load import load_curves
from ncgrok.empirical.runs import MetricsTable, RunDirectory


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_forecast_tests = _load("forecast_tests", Path(__file__).with_name("test_forecast.py"))
FIT, EVERY, HORIZON = _forecast_tests.FIT, 250, 15_000
RATES = {"a_live": 2.5e-4, "b_fast": 1e-3, "c_mid": 5e-4, "d_slow": 2e-4}  # onsets 9000, 3000, 5000, 11000
PNG_HEADER = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """Durability is not under test here (fsync dominated the appends' time on the shared disk)."""
    monkeypatch.setattr(os, "fsync", lambda descriptor: None)


def write_live_forecast(curves, calibration, run_directory, scratch):
    """``run_directory``'s forecast.csv as ``--forecast`` writes it: ``curves``'s rows appended one by one
    to a scratch metrics.csv, the live forecast updated after each (``calibration`` as --calibrate-on)."""
    directory = RunDirectory(scratch / curves.name)
    directory.path.mkdir(parents=True)
    columns = [name for name in curves.columns]
    columns = ["step"] + [name for name in columns if name != "step"]
    table = MetricsTable(directory.metrics_path, columns)
    table.create()
    plan = LivePlan(((LiveRun(directory, curves.lr, curves.weight_decay, curves.seed, curves.optimizer),),),
                    curves.horizon, calibration)
    state = init_live()
    for row in range(curves.columns["step"].size):
        table.append([{column: float(curves.columns[column][row]) for column in columns}])
        state = update_live(plan, state)
    os.replace(directory.forecast_path, Path(run_directory) / "forecast.csv")


@pytest.fixture
def sweep(tmp_path):
    """Four completed planted runs in ncgrok's layout; ``a_live`` was trained with --forecast
    (its forecast.csv written row by row, calibrated on the other three as --calibrate-on would)."""
    runs = {name: _forecast_tests.planted_run(name, rate, every=EVERY, horizon=HORIZON, seed=index)
            for index, (name, rate) in enumerate(RATES.items())}
    for curves, _ in runs.values():
        _forecast_tests._write_run(tmp_path / curves.name, curves)
    others = calibrate([curves for name, (curves, _) in runs.items() if name != "a_live"])
    write_live_forecast(runs["a_live"][0], others, tmp_path / "a_live", tmp_path / "live")
    return tmp_path, {name: onset for name, (_, onset) in runs.items()}


def test_histories_read_forecast_csv_or_replay_and_find_the_planted_onsets(sweep):
    root, onsets = sweep
    histories = {history.run: history for history in forecast_histories(root)}
    assert set(histories) == set(RATES)
    assert {name: history.source for name, history in histories.items()} == {
        "a_live": "forecast.csv", "b_fast": "replay", "c_mid": "replay", "d_slow": "replay"}
    live_rows = RunDirectory(root / "a_live").forecast().rows()
    for name, history in histories.items():
        assert history.fit_step == FIT and history.last_step == HORIZON
        assert history.onset_status == "grokked"
        assert history.onset_step == pytest.approx(onsets[name], abs=EVERY)  # detected at a logged step
        lead = history.series[0]
        assert lead.forecaster == "variance-crossing" and lead.steps.size > 0
        # every forecast before the onset is the planted onset: a noiseless straight line whose crossing
        # level the other runs calibrate to within one log
        early = lead.steps < onsets[name] - EVERY
        assert early.any()
        assert np.allclose(lead.predicted[early], onsets[name], atol=3 * EVERY)
        assert sum(lead.statuses.values()) == HORIZON // EVERY + 1
    made = [row for row in live_rows if row["forecaster"] == "variance-crossing" and row["status"] == "forecast"]
    live = histories["a_live"].series[0]
    assert live.steps.tolist() == [row["step"] for row in made]
    assert live.predicted.tolist() == [row["predicted_onset"] for row in made]


def test_the_drawn_lines_are_the_computed_values(sweep, tmp_path):
    root, _ = sweep
    histories = forecast_histories(root)
    figure = draw_forecast_histories(histories)
    lines = {line.get_gid(): line for ax in figure.axes for line in ax.get_lines()}
    for history in histories:
        for series in history.series:
            predicted = lines[f"{history.run}|{series.forecaster}|predicted"]
            assert np.array_equal(predicted.get_xdata(), series.steps)
            assert np.array_equal(predicted.get_ydata(), series.predicted)
        lead = history.series[0]
        assert np.array_equal(lines[f"{history.run}|variance-crossing|low"].get_ydata(), lead.low)
        assert np.array_equal(lines[f"{history.run}|variance-crossing|high"].get_ydata(), lead.high)
        assert list(lines[f"{history.run}|onset"].get_ydata()) == [history.onset_step] * 2
        assert list(lines[f"{history.run}|fit"].get_xdata()) == [history.fit_step] * 2
        assert list(lines[f"{history.run}|diagonal"].get_ydata()) == [0, history.last_step]
    import matplotlib.pyplot as plt

    plt.close(figure)
    (path,) = forecast_figure(histories, tmp_path / "figure" / "forecast_history.png")
    assert path.read_bytes()[:8] == PNG_HEADER


def test_ncgrok_figures_registers_the_forecast_history(tmp_path, capsys, monkeypatch):
    """On the synthetic sweep of the analysis tests (every column the other figures need); one of its
    runs gets a live forecast.csv. The other figures (tested in test_analysis_cli.py) are not drawn."""
    from ncgrok.empirical import figures

    for name in ("dynamics_figure", "bound_figure", "onset_figure"):
        monkeypatch.setattr(figures, name, lambda *args, **kwargs: [])
    analysis_tests = _load("analysis_tests", Path(__file__).with_name("test_analysis_cli.py"))
    root = analysis_tests.write_synthetic_sweep(tmp_path / "sweep")
    runs = {run.name: run for run in load_curves(root)}
    live = "wd0.3_lr0.001_seed0"
    write_live_forecast(runs[live], calibrate([run for name, run in runs.items() if name != live]), root / live,
                        tmp_path / "live")
    out = tmp_path / "figs"
    assert ncgrok.main(["figures", str(root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out / 'forecast_history.png'}" in text
    assert f"forecast_history: 1 run(s) from their forecast.csv, {len(runs) - 1} replayed" in text
    assert (out / "forecast_history.png").read_bytes()[:8] == PNG_HEADER
