"""``ncgrok status``: per-shard and per-run progress read from the files of a sweep, against values
worked out by hand (steps, statuses, rate and ETA from planted session timings) and against
``grokking_onset`` applied to the run's metrics.csv read here with the csv module."""
from __future__ import annotations

import csv
import json
import os
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import SimpleNamespace

import pytest

import ncgrok.cli
from ncgrok.cli import status as status_cli
from ncgrok.empirical.onset import grokking_onset
from ncgrok.empirical.progress import sweep_progress
from ncgrok.empirical.runs import SweepDirectory
from ncgrok.empirical.shards import Shard
from ncgrok.empirical.sweep import run_sweep
from ncgrok.empirical.sweep_config import SweepConfig
from ncgrok.files import DirectoryLock


_spec = spec_from_file_location("shard_tests", Path(__file__).with_name("test_shards.py"))
_shard_tests = module_from_spec(_spec)
_spec.loader.exec_module(_shard_tests)  # tests run with --import-mode=importlib: its helpers, by path
one_thread = _shard_tests.one_thread


def gaussian_split() -> SimpleNamespace:
    """Classes far enough apart to be fitted within 12 steps; no held-out sample."""
    return _shard_tests.gaussian_split(4, spread=3.0, noise=0.5, heldout=0)


def config(**changes) -> SweepConfig:
    """Six runs (3 weight decays x 2 seeds) in groups of two; 12 steps logged every 4."""
    return _shard_tests.tiny_config(**{"init_scale": 0.5, "lrs": (3e-2,), "heldout_size": 0, "snapshot_steps": (),
                                       **changes})


def plant_session(run_dir: Path, *, train: float, measure: float, resumed_from: int) -> None:
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    summary["session"] = {"train_seconds": train, "measure_seconds": measure, "resumed_from": resumed_from}
    path.write_text(json.dumps(summary))


def test_three_shards_completed_stopped_and_pending(tmp_path):
    out, split = tmp_path / "s", gaussian_split()
    run_sweep(config(), out, split=split, shard=Shard(1, 3))
    run_sweep(config(), out, split=split, shard=Shard(2, 3), stop_after_step=4)
    plant_session(out / "wd0.03_lr0.03_seed0", train=3.0, measure=1.0, resumed_from=0)  # 4 steps in 4 s

    report = sweep_progress(out)
    assert (report.runs, report.runs_done) == (6, 2)
    one, two, three = report.shards
    assert (one.shard, one.status, one.groups, one.runs_done, one.done_steps, one.total_steps, one.eta_seconds) == \
        ("1/3", "completed", [0], 2, 12, 12, 0.0)
    assert (two.status, two.groups, two.runs_done, two.done_steps, two.writer) == ("stopped", [1], 0, 4, None)
    assert two.steps_per_second == pytest.approx(1.0) and two.eta_seconds == pytest.approx(8.0)
    assert (three.status, three.done_steps, three.steps_per_second, three.eta_seconds) == ("pending", 0, None, None)
    assert [(r.name, r.shard, r.status, r.step) for r in report.run_progress] == [
        ("wd0.1_lr0.03_seed0", "1/3", "completed", 12), ("wd0.1_lr0.03_seed1", "1/3", "completed", 12),
        ("wd0.03_lr0.03_seed0", "2/3", "stopped", 4), ("wd0.03_lr0.03_seed1", "2/3", "stopped", 4),
        ("wd0.01_lr0.03_seed0", "3/3", "pending", None), ("wd0.01_lr0.03_seed1", "3/3", "pending", None)]
    for run in report.run_progress[:4]:
        with open(out / run.name / "metrics.csv", newline="") as stream:
            rows = list(csv.DictReader(stream))
        expected = grokking_onset([int(r["step"]) for r in rows], [float(r["train_acc"]) for r in rows],
                                  [float(r["test_acc"]) for r in rows])
        assert (run.fit_step, run.onset_step, run.onset) == (expected.fit_step, expected.onset_step, expected.status)
    assert report.run_progress[0].fit_step is not None  # the easy task is fitted within 12 steps

    # while a process holds shard 2's lock, the shard is running and the writer is named
    with DirectoryLock(SweepDirectory(out).shard(2, 3).lock_path, purpose="test"):
        two = sweep_progress(out).shards[1]
        assert two.status == "running" and two.writer.startswith(f"pid {os.getpid()} on host ")
        assert [r.status for r in sweep_progress(out).run_progress[2:4]] == ["running", "running"]


def test_eta_weights_each_group_by_its_cost(tmp_path):
    """One shard, groups of 4 and 2 runs (costs 5 and 3 single-run steps), stopped at step 4 of the
    first at a planted rate of 2 steps/s: left = (8 * 5 + 12 * 3) / 5 / 2 = 7.6 s."""
    out = tmp_path / "s"
    run_sweep(config(group_size=4), out, split=gaussian_split(), stop_after_step=4)
    plant_session(out / "wd0.1_lr0.03_seed0", train=1.5, measure=0.5, resumed_from=0)
    (shard,) = sweep_progress(out).shards
    assert (shard.shard, shard.status, shard.done_steps, shard.total_steps) == ("1/1", "stopped", 4, 24)
    assert shard.steps_per_second == pytest.approx(2.0) and shard.eta_seconds == pytest.approx(7.6)


def test_cli_prints_tables_and_json(tmp_path, capsys):
    out = tmp_path / "s"
    run_sweep(config(), out, split=gaussian_split(), shard=Shard(3, 3))
    main = lambda argv: ncgrok.cli.main(argv, modules=(status_cli,))  # noqa: E731
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{out}: 2 of 6 runs done, 0 diverged, 3 shard(s)")
    assert "3/3    completed  2       2/2        12/12" in text and "1/3    pending" in text
    assert "wd0.01_lr0.03_seed1  3/3    completed  12/12" in text
    assert main(["status", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [s["status"] for s in payload["shards"]] == ["pending", "pending", "completed"]
    assert main(["status", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no sweep" in err
