"""``ncgrok verify`` on planted run directories (ncgrok's layout and flat configs from other code)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ncgrok.cli import build_parser, main
from ncgrok.cli import verify
from ncgrok.empirical.ledger import CHECKS
from ncgrok.empirical.ledger.load import load_curves

_spec = importlib.util.spec_from_file_location("ledger_planted", Path(__file__).with_name("ledger_planted.py"))
planted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(planted)

MODULES = (verify,)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A small sweep in ncgrok's layout: delays with slope -1, three levels, three seeds."""
    root = tmp_path_factory.mktemp("sweep")
    for run in planted.scaling_sweep(decays=(0.01, 0.02, 0.04), seeds=3, jitter=0.1):
        planted.write_run_directory(root, run)
    return root


def test_load_curves_reads_both_layouts(tmp_path):
    runs = planted.scaling_sweep(decays=(0.01, 0.02), seeds=1)
    planted.write_run_directory(tmp_path, runs[0], layout="ncgrok")
    planted.write_run_directory(tmp_path, runs[1], layout="flat")
    loaded = {curve.name: curve for curve in load_curves(tmp_path)}
    for run in runs:
        curve = loaded[run.name]
        assert (curve.lr, curve.weight_decay, curve.seed, curve.optimizer, curve.horizon) == (
            run.lr, run.weight_decay, run.seed, run.optimizer, run.horizon)
        for name, values in run.columns.items():
            assert (curve[name] == values).all(), name


def test_verify_prints_one_line_per_claim(sweep_dir, capsys):
    assert main(["verify", str(sweep_dir), "--only", "r6-scaling", "monotone-lambda"], modules=MODULES) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("monotone-lambda") and "holds" in lines[0] and "paper-text" in lines[0]
    assert lines[1].startswith("r6-scaling") and "reconstructed" in lines[1] and "criterion:" in lines[1]


def test_verify_json_and_out(sweep_dir, tmp_path, capsys):
    out = tmp_path / "ledger"
    assert main(["verify", str(sweep_dir), "--json", "--out", str(out)], modules=MODULES) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in printed["claims"]] == list(CHECKS)
    for claim in printed["claims"]:
        assert {"id", "verdict", "statistic", "interval", "criterion", "source", "detail"} <= set(claim)
    written = json.loads((out / "ledger.json").read_text())
    assert written == printed
    by_id = {c["id"]: c for c in printed["claims"]}
    assert by_id["tau2-lower-bound"]["verdict"] == "not_applicable"  # AdamW runs
    assert by_id["sync-rnc1-onset"]["verdict"] == "holds"


def test_verify_bad_input_is_one_line_and_writes_nothing(sweep_dir, tmp_path, capsys):
    out = tmp_path / "nothing"
    assert main(["verify", str(sweep_dir), "--only", "no-such-id", "--out", str(out)], modules=MODULES) == 2
    error = capsys.readouterr().err
    assert "only: unknown claim id(s) no-such-id" in error and len(error.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["verify", str(tmp_path / "missing")], modules=MODULES) == 2
    assert "does not exist" in capsys.readouterr().err

    foreign = tmp_path / "foreign"
    run = planted.scaling_sweep(decays=(0.01,), seeds=1)[0]
    directory = planted.write_run_directory(foreign, run, layout="flat")
    (directory / "config.json").write_text(json.dumps({"lr": 0.001}))
    assert main(["verify", str(foreign)], modules=MODULES) == 2
    assert "lacks weight_decay, seed" in capsys.readouterr().err


def test_verify_is_registered_through_build_parser():
    args = build_parser(MODULES).parse_args(["verify", "somewhere", "--apply-to-adamw", "--only", "r6-scaling"])
    assert args.func is verify._run_verify and args.apply_to_adamw and args.only == ["r6-scaling"]
