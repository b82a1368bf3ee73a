"""The run-directory module: metrics.csv schema and reading, the settings' round trip, strict run
loading, training-only summaries, the CLI's onsets from metrics, and one owner for the file names."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from ncgrok.empirical import runs
from ncgrok.empirical.information_plane import INFORMATION_COLUMNS
from ncgrok.empirical.measure import METRIC_COLUMNS
from ncgrok.empirical.models import ModelSpec
from ncgrok.empirical.modular import POPULATION_COLUMNS
from ncgrok.empirical.runs import (
    METRICS_SCHEMA,
    REQUIRED_METRICS,
    MetricsTable,
    RunDirectoryError,
    check_metrics_header,
    load_run,
    read_metrics_rows,
)
from ncgrok.empirical.sweep_config import SweepConfig

REPOSITORY = Path(__file__).resolve().parents[2]
HEADER = "step,train_loss,train_acc,test_acc,rnc1"


def test_schema_documents_exactly_the_columns_ncgrok_writes():
    names = [column.name for column in METRICS_SCHEMA]
    assert names == ["step", *METRIC_COLUMNS, *POPULATION_COLUMNS, *INFORMATION_COLUMNS]
    assert REQUIRED_METRICS == ("step", "train_acc", "test_acc", "rnc1")
    assert all(column.meaning for column in METRICS_SCHEMA)


@pytest.mark.parametrize(
    "header, message",
    [
        (["train_acc", "step", "test_acc", "rnc1"], "first column must be 'step'"),
        (["step", "train_acc", "rnc1"], "required columns ['test_acc'] are missing"),
        (["step", "train_acc", "test_acc", "rnc1", "rnc1"], "columns ['rnc1'] appear more than once"),
    ],
)
def test_bad_headers_are_refused_with_the_schema(header, message):
    with pytest.raises(RunDirectoryError, match=re.escape(message)) as error:
        check_metrics_header(header, "x/metrics.csv")
    assert "x/metrics.csv" in str(error.value) and "Required columns: step, train_acc, test_acc, rnc1" in str(error.value)


def test_extra_columns_are_accepted():
    check_metrics_header(["step", "train_acc", "test_acc", "rnc1", "my_column"], "m.csv")


def test_rows_are_read_exactly_and_a_partial_last_line_is_dropped(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(f"{HEADER}\n0,2.5,0.1,0.1,nan\n10,1e-05,1,0.75,inf\n20,0.5,0.")
    assert read_metrics_rows(path) == [
        {"step": 0, "train_loss": 2.5, "train_acc": 0.1, "test_acc": 0.1, "rnc1": pytest.approx(float("nan"), nan_ok=True)},
        {"step": 10, "train_loss": 1e-05, "train_acc": 1.0, "test_acc": 0.75, "rnc1": float("inf")},
    ]


@pytest.mark.parametrize(
    "rows, message",
    [
        ("0,1,0.1,0.1,1\n10,1,x,0.1,1\n", "line 3: a value is not a number"),
        ("0,1,0.1,0.1,1\n10,1,0.1,0.1\n", "line 3: 4 values for 5 columns"),
        ("10,1,0.1,0.1,1\n10,1,0.1,0.1,1\n", "line 3: step 10 is not an integer above"),
        ("0.5,1,0.1,0.1,1\n", "line 2: step 0.5 is not an integer"),
    ],
)
def test_corrupt_rows_name_the_file_line_and_what_to_do(tmp_path, rows, message):
    path = tmp_path / "metrics.csv"
    path.write_text(f"{HEADER}\n{rows}")
    with pytest.raises(RunDirectoryError, match=message) as error:
        read_metrics_rows(path)
    assert str(path) in str(error.value) and "--resume" in str(error.value)


def test_truncation_keeps_the_kept_lines_byte_for_byte(tmp_path):
    path = tmp_path / "metrics.csv"
    kept = f"{HEADER}\n0,3,0.1,0.1,1e-300\n5,0.30000000000000004,0.2,0.2,nan\n"
    path.write_text(kept + "10,1,0.5,0.5,1\n15,1,0.5")
    table = MetricsTable(path, HEADER.split(","))
    assert table.steps_through(7) == [0, 5]
    table.truncate_after(7)
    assert path.read_text() == kept  # "3" stays "3", not "3.0"
    table.append([{"step": 10, "train_loss": 2, "train_acc": 0.5, "test_acc": float("nan")}])
    assert path.read_text() == kept + "10,2,0.5,nan,nan\n"


# ---------------------------------------------------------------------------------------------
# Settings round trip


def _config(**changes) -> SweepConfig:
    settings = dict(dataset="fashion-mnist", data_dir="/data", model="mlp", depth=3, width=12, init_scale=2.0,
                    train_size=60, heldout_size=0, batch_size=20, steps=40, lrs=(1e-2, 3e-3), weight_decays=(0.1,),
                    seeds=(0, 4), dtype="float64", log_every=5, snapshot_steps=(10,), measure_ib=True, ib_samples=500)
    settings.update(changes)
    return SweepConfig(**settings)


def test_settings_round_trip_through_a_run_config_json():
    config = _config()
    run = config.runs()[3]
    payload = json.loads(json.dumps(config.run_config(run, "wd0.1_lr0.003_seed4")))
    assert payload["run"] == {"seed": 4, "lr": 0.003, "weight_decay": 0.1} and payload["name"] == "wd0.1_lr0.003_seed4"
    assert SweepConfig.from_run_config(payload, source="r/config.json") == config
    assert SweepConfig.from_dict(json.loads(json.dumps(config.to_dict())), source="sweep.json") == config


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p.pop("depth"), r"r/config.json: missing settings \['depth'\]"),
        (lambda p: p.update(colour="red"), r"r/config.json: unknown settings \['colour'\]"),
        (lambda p: p.update(steps=0), "r/config.json: invalid settings: steps must be >= 1"),
        (lambda p: p.pop("run"), r"r/config.json lacks the \['run', 'name'\] entries"),
    ],
)
def test_incomplete_or_wrong_settings_name_the_file(edit, message):
    config = _config()
    payload = config.run_config(config.runs()[0], "name")
    edit(payload)
    with pytest.raises(ValueError, match=message):
        SweepConfig.from_run_config(payload, source="r/config.json")


def test_model_spec_and_split_come_from_the_settings(monkeypatch):
    config = _config(model="cnn", width=8, init_scale=None)
    assert config.model_spec((1, 28, 28), 10) == ModelSpec(arch="cnn", input_shape=(1, 28, 28), num_classes=10,
                                                            width=8, depth=3, init_scale=None)
    calls = []
    monkeypatch.setattr("ncgrok.empirical.data.paper_split", lambda name, **kw: calls.append((name, kw)) or "split")
    assert config.load_split() == "split" and config.load_split(data_dir="/moved") == "split"
    expected = dict(train_size=60, heldout_size=0, heldout_seed=0, test_size=None)
    assert calls == [("fashion-mnist", {**expected, "data_dir": "/data"}), ("fashion-mnist", {**expected, "data_dir": "/moved"})]


def test_resume_differences_name_the_flags():
    assert _config().resume_differences(_config()) == []
    assert _config(device="cuda", checkpoint_seconds=1, data_dir="/elsewhere").resume_differences(_config()) == []
    assert _config(steps=50, lrs=(0.1,)).resume_differences(_config()) == [
        "--lr: stored [0.01, 0.003], given [0.1]",
        "--steps: stored 40, given 50",
    ]


# ---------------------------------------------------------------------------------------------
# Loading runs


def _write_run(directory: Path, config: dict, metrics: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "metrics.csv").write_text(metrics)
    return directory


STEPS = list(range(0, 101, 10))
TRAIN = [0.5, 0.5, 0.5, 1, 1, 1, 1, 1, 1, 1, 1]          # fits at step 30
TEST = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.9, 0.9, 0.9, 0.9, 0.9]  # plateau 0.3, final 0.9, level 0.6: onset 60
GROKKING_ROWS = f"{HEADER}\n" + "".join(f"{s},1,{a},{b},0.5\n" for s, a, b in zip(STEPS, TRAIN, TEST))


def test_load_run_needs_the_identity_entries(tmp_path):
    config = {"name": "a", "optimizer": "sgd", "run": {"seed": 3, "lr": 0.5, "weight_decay": 0.25}}
    run = load_run(_write_run(tmp_path / "a", config, GROKKING_ROWS))
    assert (run.name, run.seed, run.lr, run.weight_decay, run.optimizer) == ("a", 3, 0.5, 0.25, "sgd")
    assert list(run.steps) == STEPS and list(run.column("test_acc")) == TEST
    with pytest.raises(RunDirectoryError, match=r"a/config.json: missing settings \['dataset'"):
        run.sweep_config()  # a hand-written config cannot rebuild a network or a split
    partial = _write_run(tmp_path / "b", {"name": "b", "run": config["run"]}, GROKKING_ROWS)
    with pytest.raises(RunDirectoryError, match="b/config.json needs 'name', 'optimizer'"):
        load_run(partial)


def test_summaries_hold_training_facts_and_the_cli_computes_onsets(tmp_path):
    from types import SimpleNamespace

    import numpy as np

    from ncgrok.cli.train import run_onsets, summary_table
    from ncgrok.empirical.sweep import run_sweep

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 1, 4, 4)).astype(np.float32)
    y = np.arange(30) % 3
    split = SimpleNamespace(train_x=x, train_y=y, test_x=x, test_y=y, heldout_x=x, heldout_y=y, num_classes=3)
    config = SweepConfig(depth=2, width=4, train_size=30, batch_size=10, steps=6, log_every=2, device="cpu",
                         checkpoint_seconds=0.0)
    stopped = run_sweep(config, tmp_path / "s", split=split, stop_after_step=2)
    assert stopped.summaries == []
    summary = json.loads((stopped.run_dirs[0] / "summary.json").read_text())
    assert summary["status"] == "running" and summary["final"]["step"] == 2
    result = run_sweep(config, tmp_path / "s", split=split, resume=True)
    summary = json.loads((result.run_dirs[0] / "summary.json").read_text())
    assert summary == result.summaries[0]
    assert set(summary) == {"name", "seed", "lr", "weight_decay", "status", "final", "logged_steps", "session"}
    assert summary["status"] == "completed" and summary["logged_steps"] == 4
    assert summary["session"]["resumed_from"] == 2 and set(summary["session"]) == {"train_seconds", "measure_seconds",
                                                                                   "resumed_from"}

    grokking = _write_run(tmp_path / "g", {"name": "g", "optimizer": "adamw",
                                           "run": {"seed": 0, "lr": 1e-3, "weight_decay": 0.1}}, GROKKING_ROWS)
    [onset] = run_onsets([grokking])
    assert (onset.status, onset.fit_step, onset.onset_step) == ("grokked", 30, 60)
    table = summary_table([{"name": "g", "status": "completed",
                            "final": {"train_acc": 1.0, "test_acc": 0.9, "rnc1": 0.5, "nc2": None}}], [onset])
    assert table.splitlines()[1].split() == ["g", "1.000", "0.900", "0.5", "nan", "completed", "30", "60", "grokked"]


def test_only_the_run_directory_module_names_run_files():
    """No other module of the training and analysis layers spells a run file's name as a string."""
    owned = {runs.CONFIG_FILE, runs.METRICS_FILE, runs.SUMMARY_FILE, runs.CHECKPOINT_FILE, runs.SWEEP_FILE,
             runs.LOCK_FILE, runs.SNAPSHOT_DIR}
    modules = [p for p in (REPOSITORY / "empirical").glob("*.py") if p.name != "runs.py"]
    modules += [REPOSITORY / "ncgrok" / "cli" / "train.py", REPOSITORY / "ncgrok" / "cli" / "analysis.py"]
    offenders = [
        f"{path.relative_to(REPOSITORY)}:{node.lineno} {node.value!r}"
        for path in modules
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in owned
    ]
    assert offenders == []

