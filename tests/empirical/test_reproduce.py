"""``ncgrok reproduce``: the preset registry, the command line, and one tiny preset end to end on synthetic
IDX files in the real on-disk format (no preset is trained at its real scale here)."""
from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

import ncgrok
from ncgrok.empirical import data, presets
from ncgrok.empirical.ledger import preset_claims as pc
from ncgrok.empirical.ledger.core import Source
from ncgrok.empirical.presets import PRESETS, SCALES, Preset, Stage
from ncgrok.empirical.reproduce import RESULT_FILE
from ncgrok.empirical.sweep_config import SweepConfig

_spec = importlib.util.spec_from_file_location("fixtures", Path(__file__).with_name("test_data_fixtures.py"))
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


# ----------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_has_valid_stages_at_both_scales(name):
    preset = PRESETS[name]
    sizes = {}
    for scale in SCALES:
        stages = preset.stages_at(scale)
        assert stages and len({stage.label for stage in stages}) == len(stages)
        for stage in stages:
            assert isinstance(stage.config, SweepConfig)
            assert stage.config.dataset in preset.datasets
        sizes[scale] = sum(len(s.config.runs()) * s.config.steps for s in stages)
    # the reduced scale trains strictly less than the published one
    assert sizes["reduced"] < sizes["full"]
    assert preset.source and preset.reports and preset.expected and preset.reduced_note


def test_unknown_scale_and_preset_are_refused():
    with pytest.raises(ValueError, match="--scale"):
        PRESETS["fig7-cnn"].stages_at("medium")
    with pytest.raises(ValueError, match="ncgrok reproduce --list"):
        presets.get_preset("fig99")


@pytest.mark.parametrize("name", ["modular-addition", "modular-division"])
@pytest.mark.parametrize("scale", SCALES)
def test_power_variant_changes_only_the_model(name, scale):
    """--variant power: Power et al.'s 2 layers with LayerNorm after each residual sum; nothing else moves."""
    default, = PRESETS[name].stages_at(scale)
    nanda, = PRESETS[name].stages_at(scale, "nanda")
    power, = PRESETS[name].stages_at(scale, "power")
    assert nanda == default and (default.config.layers, default.config.layer_norm) == (1, "none")
    assert (power.config.layers, power.config.layer_norm) == (2, "post")
    assert power.config.model == "modtransformer" and power.label == default.label
    assert replace(power.config, layers=1, layer_norm="none") == default.config


def test_list_names_every_preset(capsys):
    assert ncgrok.main(["reproduce", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["presets"]
    assert [entry["preset"] for entry in listed] == list(PRESETS)
    assert all(entry["source"] and entry["expected"] for entry in listed)
    assert ncgrok.main(["reproduce", "--list"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in PRESETS)


@pytest.mark.parametrize("argv, needle", [
    (["reproduce", "fig99"], "unknown preset"),
    (["reproduce"], "PRESET is missing"),
    (["reproduce", "--list", "fig7-cnn"], "--list takes no PRESET"),
    (["reproduce", "fig7-cnn", "--scale", "huge"], "--scale"),
    (["reproduce", "fig7-cnn", "--variant", "power"], "it has none"),
    (["reproduce", "modular-addition", "--variant", "vaswani"], "it offers nanda, power"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "out"
    assert ncgrok.main(argv + ["--out", str(out)]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_missing_data_exits_2_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    status = ncgrok.main(["reproduce", "fig6-fashion", "--out", str(out), "--data-dir", str(tmp_path / "empty"), "--quiet"])
    assert status == 2
    err = capsys.readouterr().err
    assert "ncgrok data fetch fashion-mnist" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# ----------------------------------------------------------------------------- end to end


def _tiny_stages(scale: str) -> tuple[Stage, ...]:
    base = SweepConfig(train_size=40, heldout_size=10, batch_size=20, steps=30, width=16, weight_decays=(0.1, 0.01),
                       seeds=(0, 1), snapshot_steps=(10, 30), device="cpu")
    return (Stage("small", base), Stage("large", SweepConfig(**{**base.to_dict(), "train_size": 50})))


def _tiny_claims(runs, context):
    source = Source("test preset", "paper-text")
    return [pc.no_gap(runs["small"], source=source),
            pc.earlier_with_more_data(runs["small"], runs["large"], sizes=(40, 50), source=source),
            pc.pair_margin_separation(context["margins"], source=source)]


@pytest.fixture
def tiny_preset(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "mnist"
    _, md5 = fixtures.synthetic_idx_set(folder, n_train=60, n_test=20)
    fixtures.use_checksums(monkeypatch, data, "mnist", md5)
    preset = Preset("tiny", "a test", "nothing", "nothing", _tiny_stages, _tiny_claims, "30 steps",
                    margin_pairs=((4, 5),))
    monkeypatch.setitem(PRESETS, "tiny", preset)
    return tmp_path / "data"


def test_tiny_preset_end_to_end_and_rerun_reuses_it(tiny_preset, tmp_path, capsys, single_thread):
    out = tmp_path / "out"
    argv = ["reproduce", "tiny", "--out", str(out), "--data-dir", str(tiny_preset), "--device", "cpu", "--json"]
    assert ncgrok.main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["preset"] == "tiny" and payload["scale"] == "reduced"
    assert sorted(run["run"].split("/")[0] for run in payload["runs"]) == ["large"] * 4 + ["small"] * 4
    for run in payload["runs"]:
        assert set(run) == {"run", "fit_step", "onset_step", "status", "final_train_acc", "final_test_acc"}
    stages = {claim["stage"] for claim in payload["claims"]}
    assert stages == {"small", "large", ""}
    ids = [claim["id"] for claim in payload["claims"] if claim["stage"] == ""]
    assert ids == ["no-gap", "earlier-with-more-data", "pair-margin-separation"]
    # pair-margin-separation read the margins of every run with two snapshots (4 runs x 1 pair x 2 stages)
    margin_claim = next(c for c in payload["claims"] if c["id"] == "pair-margin-separation")
    assert margin_claim["verdict"] != "not_applicable" and margin_claim["detail"].count("classes 4/5") == 8
    assert all(Path(path).exists() for path in payload["figures"])
    assert any("margins_" in path for path in payload["figures"])
    assert json.loads((out / RESULT_FILE).read_text())["runs"] == payload["runs"]
    # a second call finds both sweeps finished and reuses them
    before = (out / "small" / "wd0.1_lr0.001_seed0" / "metrics.csv").read_bytes()
    assert ncgrok.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["runs"] == payload["runs"] and again["train_seconds"] == 0
    assert (out / "small" / "wd0.1_lr0.001_seed0" / "metrics.csv").read_bytes() == before
