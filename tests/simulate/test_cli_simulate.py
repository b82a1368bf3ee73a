"""Tests for ``ncgrok simulate ...`` (simulate/cli.py), run in-process through ``ncgrok.main``."""
from __future__ import annotations

import csv
import json

import pytest

import ncgrok

FAST_UFM = ["--steps", "3000", "--weight-decay", "0.02", "--log-points", "80"]


def _subcommands() -> set[str]:
    from ncgrok.cli import build_parser

    parser = build_parser()
    simulate = parser._subparsers._group_actions[0].choices["simulate"]
    return set(simulate._subparsers._group_actions[0].choices)


def test_ufm_writes_csv_png_and_json_summary(tmp_path, capsys):
    out = tmp_path / "ufm"
    assert ncgrok.main(["simulate", "ufm", *FAST_UFM, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "measured" in printed and "predicted" in printed and "tau2" in printed
    for name in ("trajectory.csv", "ufm_trajectory.png", "summary.json"):
        assert (out / name).stat().st_size > 0
    assert (out / "ufm_trajectory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "trajectory.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows[0]["step"] == "0" and rows[-1]["step"] == "3000"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["weight_decay"] == 0.02
    assert summary["time_scales"]["collapsed"] is True


def test_ufm_json_prints_one_object_echoing_the_inputs(tmp_path, capsys):
    argv = ["simulate", "ufm", *FAST_UFM, "--samples-per-class", "4,6,5", "--classes", "3", "--dim", "7",
            "--bias", "--seed", "3", "--out", str(tmp_path), "--json", "--no-figure"]
    assert ncgrok.main(argv) == 0
    printed = capsys.readouterr().out.strip()
    assert "\n" not in printed
    summary = json.loads(printed)
    assert summary["config"]["samples_per_class"] == [4, 6, 5]
    assert summary["config"]["bias"] is True and summary["config"]["feature_dim"] == 7
    scales = summary["time_scales"]
    assert 0 < scales["tau1"] < scales["tau2"] < 3000
    assert abs(scales["tau2_rel_error"]) < 0.05
    assert summary["final"]["train_accuracy"] == 1.0
    assert not (tmp_path / "ufm_trajectory.png").exists()


def test_sweep_prints_table_and_slope_and_writes_files(tmp_path, capsys):
    argv = ["simulate", "sweep", "--weight-decay", "0.01", "0.02", "0.05", "--lr", "0.2", "--eps2", "1e-4",
            "--out", str(tmp_path)]
    assert ncgrok.main(argv) == 0
    printed = capsys.readouterr().out
    assert "slope of log(tau2 - tau1) vs log(lambda)" in printed
    for name in ("sweep.csv", "ufm_tau2_scaling.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["rows"]) == 3
    assert abs(summary["slopes"]["0.2"]["delay"]["slope"] + 1) < 0.1


def test_sweep_json(tmp_path, capsys):
    argv = ["simulate", "sweep", "--weight-decay", "0.02", "0.05", "--lr", "0.1", "0.2", "--eps2", "1e-3",
            "--out", str(tmp_path), "--json", "--no-figure"]
    assert ncgrok.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [(row["lr"], row["weight_decay"]) for row in summary["rows"]] == [
        (0.1, 0.02), (0.1, 0.05), (0.2, 0.02), (0.2, 0.05)
    ]
    assert set(summary["slopes"]) == {"0.1", "0.2"}


def test_figures_command_writes_the_ufm_figures(tmp_path, capsys):
    argv = ["simulate", "figures", "--out", str(tmp_path), "--weight-decay", "0.05", "0.1", "--no-mixture"]
    assert ncgrok.main(argv) == 0
    for name in ("ufm_timescales.png", "ufm_tau2_scaling.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "ufm_timescales.png" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, name",
    [
        (["simulate", "ufm", "--lr", "0"], "--lr"),
        (["simulate", "ufm", "--weight-decay", "-1"], "--weight-decay"),
        (["simulate", "ufm", "--samples-per-class", "3,0,2,2"], "--samples-per-class"),
        (["simulate", "ufm", "--samples-per-class", "a"], "--samples-per-class"),
        (["simulate", "ufm", "--classes", "1"], "--classes"),
        (["simulate", "ufm", "--dim", "0"], "--dim"),
        (["simulate", "ufm", "--eps2", "2"], "--eps2"),
        (["simulate", "sweep", "--weight-decay", "0", "0.01"], "--weight-decay"),
        (["simulate", "sweep", "--lr", "-0.1"], "--lr"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, name, tmp_path, capsys):
    assert ncgrok.main([*argv, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ncgrok simulate {argv[1]}: error:") and name in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_simulate_without_subcommand_prints_help_and_returns_2(capsys):
    assert ncgrok.main(["simulate"]) == 2
    assert "ufm" in capsys.readouterr().out


def test_help_says_what_is_simulated_and_cites_the_theorem(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ncgrok.main(["simulate", "ufm", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "unconstrained features model" in text and "Thm. 4.3" in text
    assert "published" in text and "reconstructed" in text


def test_simulate_lists_every_subcommand():
    names = _subcommands()
    assert {"ufm", "sweep", "figures", "gmm", "gap"} <= names
