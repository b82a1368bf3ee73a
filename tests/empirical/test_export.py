"""``ncgrok export``: what was written is read back with the viewers' own readers (TensorBoard's event
accumulator; wandb's offline run file parsed here record by record with its protobuf schema) and
compared with metrics.csv read here with the csv module, and with ``grokking_onset`` on it."""
from __future__ import annotations

import csv
import json
import math
import os
import struct
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import numpy as np
import pytest
import torch

import ncgrok.cli
from ncgrok.cli import export as export_cli
from ncgrok.empirical.onset import grokking_onset
from ncgrok.empirical.sweep import run_sweep

_spec = spec_from_file_location("status_tests", Path(__file__).with_name("test_status.py"))
_status_tests = module_from_spec(_spec)
_spec.loader.exec_module(_status_tests)  # tests run with --import-mode=importlib: the same tiny sweep, by path
config, gaussian_split = _status_tests.config, _status_tests.gaussian_split


def cli(argv: list[str]) -> int:
    return ncgrok.cli.main(argv, modules=(export_cli,))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "sweep"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(config(weight_decays=(0.1, 0.01), seeds=(0,), group_size=None), out, split=gaussian_split())
    finally:
        torch.set_num_threads(threads)
    return out


def metrics(run_dir: Path) -> dict[str, np.ndarray]:
    with open(run_dir / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return {column: np.array([float(row[column]) for row in rows]) for column in rows[0]}


def onset(table: dict[str, np.ndarray]):
    return grokking_onset(table["step"].astype(int), table["train_acc"], table["test_acc"])


RUNS = ("wd0.01_lr0.03_seed0", "wd0.1_lr0.03_seed0")


def test_tensorboard_events_read_back(sweep, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = tmp_path / "tb"
    assert cli(["export", "tensorboard", str(sweep), "--out", str(out)]) == 0
    assert "exported 2 run(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == list(RUNS)
    assert not list(tmp_path.glob(".tb.partial-*"))
    for name in RUNS:
        table = metrics(sweep / name)
        events = EventAccumulator(str(out / name), size_guidance={"scalars": 0}).Reload()
        for column, values in table.items():
            if column == "step":
                continue
            scalars = events.Scalars(column)
            assert [event.step for event in scalars] == table["step"].astype(int).tolist()
            # TensorBoard keeps 32-bit floats; NaN (no held-out sample here) compares equal
            np.testing.assert_array_equal(np.array([event.value for event in scalars], dtype=np.float32),
                                          values.astype(np.float32))
        expected = onset(table)
        for tag, value in (("outcome/fit_step", expected.fit_step), ("outcome/onset_step", expected.onset_step),
                           ("outcome/final_test_acc", table["test_acc"][-1])):
            (event,) = events.Scalars(tag)
            assert (math.isnan(event.value) and value is None) or event.value == np.float32(value)
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        stored = json.loads((sweep / name / "config.json").read_text())["run"]
        assert {key: hparams[key].number_value for key in ("lr", "weight_decay", "seed")} == stored
        assert hparams["optimizer"].string_value == "adamw"


def wandb_records(path: Path) -> list:
    """The records of a wandb run file: a 7-byte header (':W&B', magic, version), then LevelDB-log
    chunks in 32 KiB blocks (crc32 4 bytes, length 2, type 1: full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pending, position = [], b"", 7
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position: position + 7])
        chunk, position = data[position + 7: position + 7 + length], position + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind in (2, 3):
            pending = (pending if kind == 3 else b"") + chunk
        elif kind == 4:
            records.append(pending + chunk)
    return [wandb_internal_pb2.Record.FromString(record) for record in records]


def item_key(item) -> str:
    """A history or summary item's key (newer wandb writes it as a one-element ``nested_key``)."""
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_runs_read_back(sweep, tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "wb"
    assert cli(["export", "wandb", str(sweep), "--out", str(out), "--project", "test"]) == 0
    assert "wandb sync" in capsys.readouterr().out
    assert "WANDB_MODE" not in os.environ  # set only while exporting
    files = sorted(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2
    by_name = {}
    for path in files:
        records = wandb_records(path)
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        by_name[run.display_name] = (run, records)
    assert sorted(by_name) == list(RUNS)
    for name, (run, records) in by_name.items():
        table = metrics(sweep / name)
        assert run.project == "test" and run.run_group == "sweep"
        config = {item_key(item): json.loads(item.value_json) for item in run.config.update}
        assert {key: config[key] for key in ("lr", "weight_decay", "seed")} == \
            json.loads((sweep / name / "config.json").read_text())["run"]
        history = [r.history for r in records if r.WhichOneof("record_type") == "history"]
        assert [h.step.num for h in history] == table["step"].astype(int).tolist()
        for index, row in enumerate(history):
            values = {item_key(item): json.loads(item.value_json) for item in row.item}
            logged = np.array([values[column] for column in table if column != "step"], dtype=float)
            np.testing.assert_array_equal(logged, [table[column][index] for column in table if column != "step"])
        summary = {}
        for r in records:
            if r.WhichOneof("record_type") == "summary":
                summary.update({item_key(item): json.loads(item.value_json) for item in r.summary.update})
        expected = onset(table)
        assert summary["fit_step"] == expected.fit_step and summary["onset_status"] == expected.status
        assert summary["training_status"] == "completed"


def test_bad_output_or_missing_package_is_one_line_and_writes_nothing(sweep, tmp_path, monkeypatch, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    assert cli(["export", "tensorboard", str(sweep), "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "not empty" in err
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    assert cli(["export", "wandb", str(sweep), "--out", str(tmp_path / "w")]) == 2
    assert "pip install 'ncgrok[export]'" in capsys.readouterr().err and not (tmp_path / "w").exists()
    assert cli(["export", "tensorboard", str(tmp_path / "nothing"), "--out", str(tmp_path / "t")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "t").exists()
