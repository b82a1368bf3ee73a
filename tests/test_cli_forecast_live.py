"""``ncgrok train/sweep --forecast`` on a tiny real training run (synthetic MNIST files, 40 steps, about a second)."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

import ncgrok
from ncgrok.empirical.forecast import FORECAST_STATUSES, calibrate, curves_through, forecast_run
from ncgrok.empirical.ledger.load import load_curves
from ncgrok.empirical.runs import FORECAST_COLUMNS, RunDirectory

# the synthetic MNIST files and the scratch directory of the command-line input tests
_spec = importlib.util.spec_from_file_location("cli_inputs", Path(__file__).with_name("test_cli_inputs.py"))
_inputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_inputs)
scratch, listing, refusal_problem, run = _inputs.scratch, _inputs.listing, _inputs.refusal_problem, _inputs.run

_spec = importlib.util.spec_from_file_location("forecast_tests", Path(__file__).parent / "empirical" / "test_forecast.py")
_forecast_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_forecast_tests)

@pytest.fixture
def learnable_mnist(scratch, monkeypatch):
    """MNIST-shaped IDX files of 60 training and 20 test images a tiny MLP fits within 40 steps (each
    class one random template plus a little noise), checksummed as if they were MNIST."""
    import hashlib

    from ncgrok.empirical import data

    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (10, 28, 28))

    def images(count):
        labels = (np.arange(count) % 10).astype(np.uint8)
        noisy = templates[labels] + rng.integers(-20, 21, (count, 28, 28))
        return np.clip(noisy, 0, 255).astype(np.uint8), labels

    (train_x, train_y), (test_x, test_y) = images(60), images(20)
    folder = scratch / "data dir" / "mnist"
    folder.mkdir(parents=True)
    md5 = {}
    for name, array in {"train-images-idx3-ubyte": train_x, "train-labels-idx1-ubyte": train_y,
                        "t10k-images-idx3-ubyte": test_x, "t10k-labels-idx1-ubyte": test_y}.items():
        (folder / name).write_bytes(_inputs.idx_file(array))
        md5[name] = hashlib.md5(_inputs.idx_file(array)).hexdigest()
    monkeypatch.setitem(data.RECORDS, "mnist", data.RECORDS["mnist"].with_checksums(md5))


# fits the training images at step 12 (measured: train accuracy 1.0 from there), so post-fit rows are forecast
TINY = ["--data-dir", "data dir", "--depth", "2", "--width", "32", "--init-scale", "1", "--device", "cpu",
        "--train-size", "20", "--batch-size", "10", "--heldout-size", "20", "--steps", "40", "--log-every", "4"]
RUN = Path("run") / "wd0.01_lr0.001_seed0"


def write_calibration_sweep(root, rates=(2e-4, 3e-4, 4e-4, 5e-4), *, decays=True):
    """Completed planted runs in the layout other code may write (config.json and metrics.csv only)."""
    for index, rate in enumerate(rates):
        curves, _ = _forecast_tests.planted_run(f"c{index}", rate, every=500, decays=decays)
        if not decays:  # and no rise of the test accuracy either: a sweep where nothing grokked
            curves.columns["test_acc"][:] = 0.2
        _forecast_tests._write_run(root / curves.name, curves)
    return root


def test_train_forecast_writes_forecast_csv_and_shows_it_in_the_bar(learnable_mnist, scratch, capsys):
    write_calibration_sweep(scratch / "calibration")
    assert run(["train", *TINY, "--forecast", "--calibrate-on", "calibration", "--out", "run"]) == 0
    out, err = capsys.readouterr()
    assert "forecast " in out.split("training")[-1]  # the footer's timings name the forecast's seconds
    table = RunDirectory(scratch / RUN).forecast()
    assert (scratch / RUN / "forecast.csv").read_text().splitlines()[0] == ",".join(FORECAST_COLUMNS)
    rows = table.rows()
    (curves,) = load_curves(scratch / RUN)
    steps = [int(step) for step in curves.columns["step"]]
    assert steps == list(range(0, 41, 4))
    assert [(row["step"], row["forecaster"]) for row in rows] == [
        (step, name) for step in steps for name in ("variance-crossing", "r6-law")]
    assert all(row["status"] in FORECAST_STATUSES and row["calibration_runs"] == 4 for row in rows)
    late = {row["status"] for row in rows if row["step"] >= 24}  # 4 post-fit rows from the fit at step 12
    assert late and "insufficient_data" not in late
    # each row is what `forecast_run` says from the rows up to its step with the --calibrate-on runs
    calibration = calibrate(load_curves(scratch / "calibration"))
    for row in rows:
        expected = forecast_run(curves_through(curves, row["step"]), calibration, at=row["step"],
                                forecaster=row["forecaster"])
        assert (row["status"], row["detail"]) == (expected.status, expected.detail)
        predicted = math.nan if expected.predicted_onset is None else expected.predicted_onset
        assert row["predicted_onset"] == pytest.approx(predicted, nan_ok=True)
    # the bar's last state carries the lead forecaster's answer at the last step
    last = rows[-2]
    assert last["forecaster"] == "variance-crossing"
    assert ("onset~" if last["status"] == "forecast" else last["status"]) in err

    # ncgrok forecast --history reads it back; runs without a forecast.csv say so
    assert run(["forecast", "run", "--history", "--json", "--at", "20"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["runs"]
    assert entry["run"] == RUN.name
    lead = [row for row in rows if row["forecaster"] == "variance-crossing" and row["step"] <= 20]
    assert [(r["step"], r["status"]) for r in entry["history"]] == [(r["step"], r["status"]) for r in lead]
    assert run(["forecast", "calibration", "--history"]) == 0
    assert capsys.readouterr().out.count("no variance-crossing rows in forecast.csv") == 4
    assert run(["forecast", "run", "--history", "--backtest"]) == 2
    assert "--backtest" in capsys.readouterr().err


def test_sweep_forecast_quiet_json(learnable_mnist, scratch, capsys):
    argv = ["sweep", *TINY, "--weight-decay", "0.1", "0.01", "--seeds", "0", "--forecast", "--quiet", "--json",
            "--out", "grid"]
    assert run(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    payload = json.loads(out)
    assert payload["forecast_seconds"] >= 0
    for entry in payload["runs"]:
        rows = RunDirectory(scratch / "grid" / entry["name"]).forecast().rows()
        assert len(rows) == 2 * 11
        # no --calibrate-on and nothing grokked in 40 steps: never a made-up number
        assert {row["status"] for row in rows} == {"insufficient_data"}
        assert all(np.isnan(row["predicted_onset"]) and row["detail"] for row in rows)
    # ncgrok status shows each run's last live forecast (and None for a run without forecast.csv)
    from ncgrok.empirical.progress import sweep_progress

    (scratch / "grid" / payload["runs"][0]["name"] / "forecast.csv").unlink()
    assert [run.forecast for run in sweep_progress(scratch / "grid").run_progress] == [None, "insufficient_data"]


@pytest.mark.parametrize("argv, name, detail", [
    (["--calibrate-on", "calibration"], "--calibrate-on", "--forecast"),
    (["--forecast-signal", "nc2"], "--forecast-signal", "--forecast"),
    (["--forecast", "--calibrate-on", "data dir"], "--calibrate-on", "no run directories"),
    (["--forecast", "--calibrate-on", "flat"], "--calibrate-on", "none of its 2 completed run(s) grokked"),
    (["--forecast", "--calibrate-on", "no such dir"], "--calibrate-on", "does not exist"),
    (["--forecast", "--calibrate-on", "run/wd0.01_lr0.001_seed0"], "--calibrate-on", "overlaps --out"),
])
def test_bad_forecast_input_is_one_line_naming_the_flag_and_writes_nothing(argv, name, detail, learnable_mnist, scratch,
                                                                           capsys):
    write_calibration_sweep(scratch / "calibration")
    write_calibration_sweep(scratch / "flat", rates=(2e-4, 3e-4), decays=False)
    before = listing(scratch)
    problem = refusal_problem(run(["train", *TINY, *argv, "--out", "run"]), *capsys.readouterr(), name, fixes=(detail,))
    assert problem is None, problem
    assert listing(scratch) == before


def test_the_command_lines_signal_choices_are_the_forecasters():
    from ncgrok.cli import forecast as forecast_cli
    from ncgrok.empirical import forecast

    assert forecast_cli.SIGNALS == forecast.SIGNALS
