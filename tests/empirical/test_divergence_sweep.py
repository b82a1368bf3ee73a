"""A diverging run does not take the sweep down (issue 18): it is frozen, marked ``diverged`` on disk
and by every consumer, and the other runs' results are those of a grid without it, byte for byte.

The tiny grid: the test_sweep.py MLP (depth 3, width 12) at the paper's x8 initialisation, plain SGD
with mean loss, 20 steps on 60 synthetic examples. lr 0.1 diverges for both seeds within 1 step
(checked below through the recorded divergence); lr 1e-4 is stable (the stable range measured for
the paper's MLP, ``empirical.divergence``).
"""
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import ncgrok
from ncgrok.empirical.engine import BatchedTrainer, RunConfig
from ncgrok.empirical.forecast import forecast_runs
from ncgrok.empirical.ledger import CHECKS
from ncgrok.empirical.ledger.core import check_usable_runs
from ncgrok.empirical.ledger.load import load_curves
from ncgrok.empirical.measure import as_measurement_data, measure_runs
from ncgrok.empirical.progress import sweep_progress
from ncgrok.empirical.runs import load_run, read_metrics_rows
from ncgrok.empirical.sweep import SweepConfig, run_sweep

STABLE, DIVERGING = 1e-4, 0.1


# the tiny synthetic data of test_sweep.py (3 Gaussian classes of 6x6 images)
_spec = importlib.util.spec_from_file_location("sweep_test_data", Path(__file__).with_name("test_sweep.py"))
_sweep_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sweep_tests)
synthetic_split = _sweep_tests.synthetic_split


def config(lrs, **changes):
    settings = dict(model="mlp", depth=3, width=12, init_scale=8.0, train_size=60, batch_size=20, steps=20,
                    weight_decays=(0.01,), seeds=(0, 1), lrs=tuple(lrs), log_every=5, device="cpu",
                    checkpoint_seconds=0.0, optimizer="sgd", loss_reduction="mean")
    settings.update(changes)
    return SweepConfig(**settings)


def diverged_names(lrs=(STABLE, DIVERGING)):
    return [f"wd0.01_lr{lr:g}_seed{seed}" for lr in lrs if lr == DIVERGING for seed in (0, 1)]


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """The grid with the diverging lr and the grid without it, and the console lines of the first."""
    root, split, lines = tmp_path_factory.mktemp("grids"), synthetic_split(), []
    with_it = run_sweep(config((STABLE, DIVERGING)), root / "with", split=split, on_divergence=lines.append)
    without = run_sweep(config((STABLE,)), root / "without", split=split)
    return with_it, without, lines


def test_the_other_runs_are_byte_identical_to_a_grid_without_the_diverging_lr(grids):
    # One batched group holds the whole grid (4 runs against 2): the frozen runs do not change the
    # others' numbers, in training or in measurement (per-run statistics), so no --group-size is needed.
    with_it, without, _ = grids
    assert len(with_it.run_dirs) == 4 and len(without.run_dirs) == 2
    for path in without.run_dirs:  # (config.json differs by construction: it holds the grid's lrs)
        assert (with_it.out_dir / path.name / "metrics.csv").read_bytes() == (path / "metrics.csv").read_bytes()
        assert json.loads((with_it.out_dir / path.name / "summary.json").read_text())["status"] == "completed"


def test_the_diverged_runs_are_marked_frozen_and_their_rows_stop(grids):
    with_it, _, lines = grids
    statuses = {summary["name"]: summary["status"] for summary in with_it.summaries}
    assert sorted(name for name, status in statuses.items() if status == "diverged") == diverged_names()
    for name in diverged_names():
        summary = json.loads((with_it.out_dir / name / "summary.json").read_text())
        divergence = summary["divergence"]
        assert set(divergence) == {"step", "loss", "last_finite_loss", "reason"}
        assert divergence["step"] <= 1 and divergence["last_finite_loss"] is not None
        assert divergence["loss"] is None or divergence["loss"] > divergence["last_finite_loss"]  # inf/nan: null
        steps = [row["step"] for row in read_metrics_rows(with_it.out_dir / name / "metrics.csv")]
        assert steps == [0]  # logged every 5 steps: nothing after the divergence
        assert load_run(with_it.out_dir / name).status == "diverged"
    assert len(lines) == 2
    for line, name in zip(lines, diverged_names()):
        assert line.startswith(f"{name} diverged at step ")
        assert "lower --lr for --optimizer sgd" in line
        assert "--lr <= 1e-4 with --loss-reduction mean (<= 1e-7 with sum)" in line


def test_measurement_of_non_finite_features_gives_nan_instead_of_raising():
    split = synthetic_split()
    cfg = config((STABLE,))
    data = as_measurement_data(split, device="cpu", dtype=torch.float32)

    def trainer():
        spec = cfg.model_spec(tuple(data.train_x.shape[1:]), data.num_classes)
        runs = [RunConfig(seed, STABLE, 0.01) for seed in (0, 1)]
        return BatchedTrainer(spec, runs, data.train_x, data.train_y, optimizer="sgd", batch_size=20,
                              loss_reduction="mean", device="cpu")

    clean, planted = trainer(), trainer()
    with torch.no_grad():  # run 1's first layer made non-finite: its features are inf/NaN
        next(iter(planted.named_parameters().values()))[1].fill_(math.inf)
    expected, rows = measure_runs(clean, data), measure_runs(planted, data)
    for column in ("nc1", "rnc1", "nc2", "etf_deviation", "heldout_within_var", "cantelli_bound"):
        assert math.isnan(rows[1][column]), column
    # the finite run is measured as before, every column exactly
    assert rows[0].keys() == expected[0].keys()
    for column, value in expected[0].items():
        assert rows[0][column] == value or (math.isnan(value) and math.isnan(rows[0][column])), column


def test_consumers_count_the_diverged_runs(grids):
    with_it, _, _ = grids
    path = with_it.out_dir
    curves = load_curves(path)
    assert sorted(run.name for run in curves if run.diverged) == diverged_names()
    # the claims run on the usable runs and say how many were left out
    result = check_usable_runs(CHECKS["monotone-lambda"], curves)
    assert "2 of 4 run(s) left out: diverged in training" in result.detail
    assert result.extra["diverged_runs"] == diverged_names()
    forecasts = {forecast.run: forecast.status for forecast in forecast_runs(curves)}
    assert [name for name, status in forecasts.items() if status == "diverged"] == diverged_names()
    progress = sweep_progress(path)
    assert progress.runs_diverged == 2 and progress.runs_done == 4
    assert {run.name: run.onset for run in progress.run_progress if run.status == "diverged"} == dict.fromkeys(
        diverged_names(), "diverged")


def test_onset_cli_reports_the_diverged_runs(grids, capsys):
    with_it, _, _ = grids
    assert ncgrok.main(["onset", str(with_it.out_dir), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    statuses = {run["name"]: run["status"] for run in payload["runs"]}
    assert sorted(name for name, status in statuses.items() if status == "diverged") == diverged_names()
    rows = [row for entry in payload["learning_rates"] for row in entry["rows"]]
    assert sum(row["num_diverged"] for row in rows) == 2
    assert sum(row["num_runs"] for row in rows) == 4


def _sweep_cli(tmp_path, monkeypatch, lrs, *extra):
    split = synthetic_split()
    monkeypatch.setattr(SweepConfig, "load_split", lambda self, data_dir=None: split)
    out = tmp_path / "cli"
    argv = ["sweep", "--out", str(out), "--model", "mlp", "--depth", "3", "--width", "12", "--init-scale", "8",
            "--train-size", "60", "--batch-size", "20", "--steps", "20", "--log-every", "5", "--device", "cpu",
            "--optimizer", "sgd", "--loss-reduction", "mean", "--weight-decay", "0.01", "--seeds", "0", "1",
            "--lr", *map(str, lrs), "--quiet", *extra]
    return ncgrok.main(argv), out


def test_train_cli_reports_diverged_runs_and_finishes(tmp_path, monkeypatch, capsys):
    status, _ = _sweep_cli(tmp_path, monkeypatch, (STABLE, DIVERGING), "--json")
    captured = capsys.readouterr()
    assert status == 0
    payload = json.loads(captured.out)
    statuses = {run["name"]: run["status"] for run in payload["runs"]}
    assert sorted(name for name, state in statuses.items() if state == "diverged") == diverged_names()
    assert payload["diverged"] == 2
    assert {run["onset"]["status"] for run in payload["runs"] if run["status"] == "diverged"} == {"diverged"}
    assert all(f"{name} diverged at step" in captured.err for name in diverged_names())


def test_a_grid_where_every_run_diverges_exits_1_and_keeps_its_results(tmp_path, monkeypatch, capsys):
    status, out = _sweep_cli(tmp_path, monkeypatch, (DIVERGING,))
    captured = capsys.readouterr()
    assert status == 1
    assert "every run (2) diverged" in captured.err
    assert "diverged at step" in captured.out  # the table shows them
    for seed in (0, 1):
        run = out / f"wd0.01_lr0.1_seed{seed}"
        assert json.loads((run / "summary.json").read_text())["status"] == "diverged"
        assert read_metrics_rows(run / "metrics.csv")
    assert ncgrok.main(["onset", str(out), "--json"]) == 1
    assert ncgrok.main(["verify", str(out), "--json"]) == 1
    assert ncgrok.main(["forecast", str(out), "--json"]) == 1
    assert "every run (2) diverged" in capsys.readouterr().err


@pytest.mark.parametrize("group_size, stops", [(None, (10,)), (2, (10, 15, 15))])
def test_resume_after_a_divergence_equals_the_uninterrupted_grid(tmp_path, group_size, stops):
    # The diverged runs' metrics.csv stop early; a resume must accept that and replay bit for bit:
    # with one group, from a checkpoint holding the diverged runs; with groups of 2 (the diverging lr
    # first), the stops 10, 15, 15 leave the diverged group completed and the checkpoint in the next.
    settings = config((DIVERGING, STABLE), group_size=group_size)
    straight = run_sweep(settings, tmp_path / "straight", split=synthetic_split())
    interrupted = tmp_path / "interrupted"
    for index, stop in enumerate(stops):
        run_sweep(settings, interrupted, split=synthetic_split(), resume=index > 0, stop_after_step=stop)
    resumed = run_sweep(settings, interrupted, split=synthetic_split(), resume=True)
    assert [summary["status"] for summary in resumed.summaries] == ["diverged"] * 2 + ["completed"] * 2
    for a, b in zip(straight.run_dirs, resumed.run_dirs):
        assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes(), a.name
