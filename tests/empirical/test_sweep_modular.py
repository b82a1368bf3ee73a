"""Modular arithmetic through SweepConfig, run_sweep and the CLI: data-set defaults, the exact population
columns against numpy, resume bit for bit, and the analysis commands reading the result."""
import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

import ncgrok
from ncgrok.empirical.data import modular_split
from ncgrok.empirical.models import ModelSpec, build_module
from ncgrok.empirical.modular import POPULATION_COLUMNS
from ncgrok.empirical.runs import read_metrics_rows
from ncgrok.empirical.sweep import SweepConfig, run_sweep

pytestmark = pytest.mark.usefixtures("single_thread")


def modular_config(**changes):
    """p = 11, half the pairs, a small modtransformer, Nanda's optimiser settings scaled to the toy."""
    settings = dict(dataset="modular-addition", modulus=11, train_fraction=0.5, width=16, heads=4, ff_width=32,
                    steps=60, log_every=10, seeds=(0, 1), weight_decays=(1.0,), lrs=(1e-2,), device="cpu",
                    checkpoint_seconds=0.0, loss="cross-entropy", betas=(0.9, 0.98), dtype="float64")
    settings.update(changes)
    return SweepConfig(**settings)


# ----------------------------------------------------------------------------- settings


def test_modular_defaults_are_resolved_and_stored():
    config = SweepConfig(dataset="modular-division")
    assert (config.model, config.modulus, config.train_fraction) == ("modtransformer", 97, 0.3)
    assert config.train_size == config.batch_size == round(0.3 * 97 * 96)  # derived, full batch
    assert config.heldout_size is None and config.loss == "mse" and config.loss_reduction == "sum"
    assert config.model_spec((3, 98), 97) == ModelSpec(arch="modtransformer", input_shape=(3, 98), num_classes=97,
                                                       depth=4, heads=4, ff_width=512)
    assert SweepConfig.from_dict(config.to_dict()) == config
    assert config.columns()[-len(POPULATION_COLUMNS):] == POPULATION_COLUMNS
    images = SweepConfig()
    assert (images.model, images.train_size, images.heldout_size, images.batch_size) == ("mlp", 1000, 5000, 100)
    assert not set(POPULATION_COLUMNS) & set(images.columns())
    assert SweepConfig(batch_size=0, train_size=300).batch_size == 300  # 0 = full batch for images too
    assert SweepConfig(loss="cross-entropy").loss_reduction == "mean"
    assert SweepConfig(dataset="modular-addition", modulus=11, train_fraction=0.5, train_size=60).train_size == 60


@pytest.mark.parametrize("changes, match", [
    ({"dataset": "modular-division", "modulus": 9}, r"--modulus\) must be prime"),
    ({"batch_size": 61}, r"--batch-size \(61\) cannot exceed the 60 training pairs"),
    ({"model": "transformer"}, "needs --model modtransformer"),
    ({"train_size": 59}, "--train-size is derived"),
    ({"heldout_size": 30}, "every unseen pair"),
    ({"train_fraction": 0.999}, "--train-fraction"),
    ({"betas": (0.9,)}, "--betas"),
    ({"loss": "hinge"}, "--loss"),
    ({"heads": 0}, "--heads"),
    ({"layers": 0}, r"--layers must be a whole number >= 1"),
    ({"layers": 1.5}, r"--layers must be a whole number >= 1"),
    ({"layers": True}, r"--layers must be a whole number >= 1"),
    ({"layer_norm": "pre"}, r"--layer-norm must be one of none, post"),
    ({"test_size": 10}, r"--test-size: the test set of --dataset modular-addition is every unseen pair"),
    ({"test_size": 0}, r"--test-size: the test set of --dataset modular-addition is every unseen pair"),
])
def test_inconsistent_modular_settings_name_the_flag(changes, match):
    with pytest.raises(ValueError, match=match):
        modular_config(**changes)


def test_image_settings_refuse_modular_ones():
    with pytest.raises(ValueError, match="--train-fraction applies to --dataset modular"):
        SweepConfig(train_fraction=0.3)
    with pytest.raises(ValueError, match="--model modtransformer reads token pairs"):
        SweepConfig(model="modtransformer")
    for setting, flag in (({"layers": 2}, "--layers"), ({"layer_norm": "post"}, "--layer-norm")):
        for model in ("mlp", "transformer"):
            with pytest.raises(ValueError, match=f"{flag} applies to --model modtransformer .* not --model {model}"):
                SweepConfig(model=model, **setting)


def test_power_settings_reach_the_model_and_the_files():
    config = modular_config(layers=2, layer_norm="post")
    assert config.model_spec((3, 12), 11) == ModelSpec(arch="modtransformer", input_shape=(3, 12), num_classes=11,
                                                       width=16, heads=4, ff_width=32, layers=2, layer_norm="post")
    assert (config.to_dict()["layers"], config.to_dict()["layer_norm"]) == (2, "post")
    assert SweepConfig.from_dict(config.to_dict()) == config
    default = modular_config()
    assert (default.layers, default.layer_norm) == (1, "none")
    assert default.model_spec((3, 12), 11) == dataclasses.replace(config.model_spec((3, 12), 11), layers=1,
                                                                  layer_norm="none")


# ----------------------------------------------------------------------------- the exact population columns


def _by_hand(config, module):
    """The population columns of ``module`` from pairs enumerated and labelled by hand (division: the c
    with c * b = a mod p), the training pairs' feature norms for the scales, numpy in float64."""
    p = config.modulus
    division = config.dataset == "modular-division"
    pairs = [(a, b) for a in range(p) for b in range(p) if not division or b != 0]
    labels = np.array([next(c for c in range(p) if (c * b) % p == a) if division else (a + b) % p for a, b in pairs])

    def outputs(rows):
        x = np.zeros((len(rows), 3, p + 1))
        for i, (a, b) in enumerate(rows):
            x[i, 0, a] = x[i, 1, b] = x[i, 2, p] = 1.0
        with torch.no_grad():
            logits, features = module(torch.from_numpy(x), with_representation=True)
        return logits.numpy(), features.numpy()

    train_pairs = modular_split(config.operation, p, config.train_fraction, seed=config.heldout_seed).train_pairs
    norms = np.linalg.norm(outputs(train_pairs.tolist())[1], axis=1)
    logits, features = outputs(pairs)

    def variance(scale):
        g = features / scale
        return sum(np.mean(labels == c) * np.mean(np.sum((g[labels == c] - g[labels == c].mean(0)) ** 2, axis=1))
                   for c in range(p))

    return {"population_within_var": variance(norms.mean()), "population_within_var_sup": variance(norms.max()),
            "population_acc": float(np.mean(logits.argmax(1) == labels))}


@pytest.mark.parametrize("dataset", ["modular-addition", "modular-division"])
def test_sweep_writes_exact_population_columns(tmp_path, dataset):
    config = modular_config(dataset=dataset, snapshot_steps=(60,))
    result = run_sweep(config, tmp_path / "sweep")
    split = config.load_split()
    for seed, directory in zip(config.seeds, result.run_dirs):
        header = (directory / "metrics.csv").read_text().splitlines()[0].split(",")
        assert header == list(config.columns())
        rows = read_metrics_rows(directory / "metrics.csv")
        assert [row["step"] for row in rows] == list(range(0, 61, 10))
        population = 11 * 11 if dataset == "modular-addition" else 11 * 10
        assert rows[0]["test_size"] == len(split.test_y) == population - config.train_size
        module = build_module(config.model_spec((3, config.modulus + 1), config.modulus), seed, dtype=torch.float64)
        module.load_state_dict(torch.load(directory / "snapshots" / "step_60.pt", weights_only=True))
        expected = _by_hand(config, module.eval())
        for column in POPULATION_COLUMNS:  # float64 throughout: rounding only
            assert rows[-1][column] == pytest.approx(expected[column], rel=1e-9), column
        # the population accuracy is the pair-weighted mean of training and test accuracy
        n_train, n_test = config.train_size, len(split.test_y)
        mixed = (rows[-1]["train_acc"] * n_train + rows[-1]["test_acc"] * n_test) / (n_train + n_test)
        assert rows[-1]["population_acc"] == pytest.approx(mixed, abs=1e-12)


def test_a_two_block_sweep_trains_the_model_its_files_describe(tmp_path):
    """A short sweep of Power et al.'s shape: its snapshot loads strictly into the network the stored
    settings rebuild, and the population columns are that network's (computed by hand)."""
    config = modular_config(layers=2, layer_norm="post", steps=20, seeds=(0,), snapshot_steps=(20,))
    [directory] = run_sweep(config, tmp_path / "sweep").run_dirs
    stored = SweepConfig.from_run_config(json.loads((directory / "config.json").read_text()), source="config.json")
    assert (stored.layers, stored.layer_norm) == (2, "post")
    module = build_module(stored.model_spec((3, 12), 11), 0, dtype=torch.float64)
    module.load_state_dict(torch.load(directory / "snapshots" / "step_20.pt", weights_only=True))
    assert len(module.later_blocks) == 1
    row = read_metrics_rows(directory / "metrics.csv")[-1]
    expected = _by_hand(config, module.eval())
    for column in POPULATION_COLUMNS:
        assert row[column] == pytest.approx(expected[column], rel=1e-9), column


@pytest.mark.cpu_kernels
def test_modular_resume_equals_uninterrupted(tmp_path):
    straight = run_sweep(modular_config(), tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    run_sweep(modular_config(), interrupted, stop_after_step=30)
    with open(interrupted / straight.run_dirs[0].name / "metrics.csv", "a") as stream:
        stream.write("40,0.5,0.")  # a crash mid-way through appending rows
    resumed = run_sweep(modular_config(), interrupted, resume=True)
    assert resumed.resumed_from == 30
    for a, b in zip(straight.run_dirs, resumed.run_dirs):
        assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    with pytest.raises(ValueError, match="--betas"):
        run_sweep(dataclasses.replace(modular_config(), betas=(0.9, 0.999)), interrupted, resume=True)


# ----------------------------------------------------------------------------- the command line


def test_cli_trains_modular_addition_and_the_analyses_read_it(tmp_path, capsys):
    out = tmp_path / "X"
    argv = ["train", "--dataset", "modular-addition", "--modulus", "11", "--train-fraction", "0.5", "--steps", "50",
            "--device", "cpu", "--quiet", "--out", str(out)]
    assert ncgrok.main(argv) == 0, capsys.readouterr().err
    [metrics] = out.glob("*/metrics.csv")
    with open(metrics, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert set(POPULATION_COLUMNS) <= set(rows[0]) and rows[-1]["step"] == "50"
    assert all(np.isfinite(float(row[column])) for row in rows for column in POPULATION_COLUMNS)
    capsys.readouterr()
    for command in ("onset", "verify", "forecast"):
        assert ncgrok.main([command, str(out)]) == 0, f"{command}: {capsys.readouterr().err}"
        assert "wd0.01_lr0.001_seed0" in capsys.readouterr().out or command == "verify"
