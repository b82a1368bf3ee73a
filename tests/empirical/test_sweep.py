"""Sweeps on disk: schema, resume equals uninterrupted, CLI behaviour, a short real MNIST run."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import ncgrok
from ncgrok.empirical.data import resolve_data_dir
from ncgrok.empirical.measure import METRIC_COLUMNS
from ncgrok.empirical.models import ModelSpec
from ncgrok.empirical.runs import read_metrics, read_metrics_rows
from ncgrok.empirical.sweep import SweepConfig, run_sweep

REQUIRED_COLUMNS = (
    "step, train_loss, train_acc, test_loss, test_acc, nc1, nc1_pinv, rnc1, rnc1_sup, nc2, within_var, "
    "between_var, feature_norm_mean, heldout_within_var, heldout_radius, cantelli_bound, weight_norm, "
    "last_layer_norm"
).split(", ")


def synthetic_split(seed=0, num_classes=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, 1, 6, 6)).astype(np.float32)

    def draw(n):
        y = np.arange(n) % num_classes
        x = centres[y] + 0.8 * rng.normal(size=(n, 1, 6, 6)).astype(np.float32)
        return x.astype(np.float32), y.astype(np.int64)

    train_x, train_y = draw(60)
    test_x, test_y = draw(90)
    heldout_x, heldout_y = draw(45)
    return SimpleNamespace(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                           heldout_x=heldout_x, heldout_y=heldout_y, num_classes=num_classes)


def small_config(**changes):
    settings = dict(
        model="mlp", depth=3, width=12, init_scale=2.0, train_size=60, batch_size=20, steps=40,
        weight_decays=(0.1, 0.01), seeds=(0, 1), lrs=(1e-2,), log_every=5, device="cpu",
        checkpoint_seconds=0.0, snapshot_steps=(10,),
    )
    settings.update(changes)
    return SweepConfig(**settings)


def test_sweep_writes_the_documented_schema(tmp_path):
    config = small_config()
    result = run_sweep(config, tmp_path / "sweep", split=synthetic_split())
    assert len(result.run_dirs) == 4
    for directory in result.run_dirs:
        header = (directory / "metrics.csv").read_text().splitlines()[0].split(",")
        assert header[: len(REQUIRED_COLUMNS)] == REQUIRED_COLUMNS or set(REQUIRED_COLUMNS) <= set(header)
        rows = read_metrics_rows(directory / "metrics.csv")
        assert [row["step"] for row in rows] == list(range(0, 41, 5))
        assert json.loads((directory / "config.json").read_text())["run"]["weight_decay"] in (0.1, 0.01)
        summary = json.loads((directory / "summary.json").read_text())
        assert summary["final"]["step"] == 40
        assert (directory / "snapshots" / "step_10.pt").is_file()
    assert (tmp_path / "sweep" / "checkpoint.pt").is_file()
    # the synthetic task is easy: every run learns it
    assert all(s["final"]["train_acc"] > 0.9 for s in result.summaries)


@pytest.mark.cpu_kernels
def test_resume_equals_uninterrupted(tmp_path):
    split = synthetic_split()
    straight = run_sweep(small_config(), tmp_path / "straight", split=split)
    interrupted = tmp_path / "interrupted"
    run_sweep(small_config(), interrupted, split=split, stop_after_step=15)
    # a crash after the checkpoint but mid-way through appending rows leaves a partial line
    with open(interrupted / straight.run_dirs[0].name / "metrics.csv", "a") as stream:
        stream.write("20,0.5,0.")
    resumed = run_sweep(small_config(), interrupted, split=split, resume=True)
    assert resumed.resumed_from == 15
    for a, b in zip(straight.run_dirs, resumed.run_dirs):
        assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()


def test_existing_directory_needs_resume_and_same_settings(tmp_path):
    split = synthetic_split()
    run_sweep(small_config(steps=10), tmp_path / "s", split=split)
    with pytest.raises(ValueError, match="--resume"):
        run_sweep(small_config(steps=10), tmp_path / "s", split=split)
    with pytest.raises(ValueError, match="steps"):
        run_sweep(small_config(steps=20), tmp_path / "s", split=split, resume=True)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"lrs": (0.0,)}, "lr must be > 0"),
        ({"weight_decays": (-0.1,)}, "weight_decay must be >= 0"),
        ({"seeds": ()}, "seeds needs at least one"),
        ({"batch_size": 100}, "--batch-size"),
        ({"delta": 1.5}, "delta"),
        ({"snapshot_steps": (99,)}, "--snapshot-steps"),
        ({"ib_every": 0}, "ib_every"),
    ],
)
def test_invalid_sweep_settings(changes, match):
    with pytest.raises(ValueError, match=match):
        small_config(**changes)


def _real_mnist_dir():
    for candidate in (resolve_data_dir(), Path("/tmp/mnistpack/package/data")):
        if (candidate / "mnist" / "train-images-idx3-ubyte").exists() or (candidate / "train-images-idx3-ubyte").exists():
            return candidate
    return None


@pytest.mark.realdata
def test_short_real_mnist_run_learns_via_cli(tmp_path, capsys):
    data_dir = _real_mnist_dir()
    if data_dir is None:
        pytest.skip("real MNIST files not present; run `ncgrok data fetch mnist` to enable this test")
    status = ncgrok.main([
        "train", "--data-dir", str(data_dir), "--train-size", "300", "--heldout-size", "200", "--depth", "3",
        "--width", "64", "--init-scale", "1", "--steps", "300", "--log-every", "100", "--weight-decay", "0.01", "--out",
        str(tmp_path / "run"), "--json",
    ])
    assert status == 0
    payload = json.loads(capsys.readouterr().out)
    final = payload["runs"][0]["final"]
    # 10 classes: chance is 0.1. Three epochs of AdamW on 300 images fit most of them.
    assert final["train_acc"] > 0.8
    assert final["test_acc"] > 0.3
    metrics = read_metrics(tmp_path / "run" / payload["runs"][0]["name"])
    assert list(metrics["step"]) == [0, 100, 200, 300]
    assert set(METRIC_COLUMNS) <= set(metrics)


def test_cli_reports_bad_values_in_one_line(tmp_path, capsys):
    status = ncgrok.main(["sweep", "--out", str(tmp_path / "x"), "--lr", "-1", "--steps", "5"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lr: must be a finite number > 0" in err[0]


def test_measure_ib_adds_information_columns(tmp_path):
    split = synthetic_split()
    rng = np.random.default_rng(3)
    split.test_y = np.arange(240) % 3
    split.test_x = (np.repeat(split.train_x[:3], 80, axis=0)[np.argsort(np.argsort(split.test_y))]
                    + 0.5 * rng.normal(size=(240, 1, 6, 6))).astype(np.float32)
    config = small_config(steps=10, weight_decays=(0.1,), seeds=(0,), measure_ib=True, ib_samples=200,
                          ib_sigma=0.5, data_dir=str(tmp_path), snapshot_steps=(10,))
    result = run_sweep(config, tmp_path / "ib", split=split)
    metrics = read_metrics(result.run_dirs[0])
    for column in ("nhsic_zx", "nhsic_zy", "mi_zx", "mi_zy", "mi_zx_ksg", "mi_zy_ksg", "ib_bound_trace", "ib_bound_logdet"):
        assert np.all(np.isfinite(metrics[column])), column
    # the last row, recomputed outside the sweep from the step-10 snapshot: the same 200-example subset
    # (seeded, sorted), the cached autoencoder's codes, features scaled by the training max norm.
    # The snapshot's nn.Module forward sums in another order than the batched float32 engine, so the
    # features agree to float32 rounding (estimates moved by <= 1e-7 relative here): rel 1e-5 allows
    # that, while another subset, scale, sigma or code would move them by far more.
    import torch

    from ncgrok.empirical.information import CompressedMutualInformation, NormalizedHSIC, fit_or_load
    from ncgrok.empirical.runs import load_run, load_snapshot
    from ncgrok.theory.collapse import ClassStatistics, class_covariances
    from ncgrok.theory.information import ib_bound_logdet

    module = load_snapshot(load_run(result.run_dirs[0]), 10, input_shape=(1, 6, 6), num_classes=3)
    subset = np.sort(np.random.default_rng(0).permutation(240)[:200])
    x, y = split.test_x[subset], split.test_y[subset]
    with torch.no_grad():
        _, z = module(torch.from_numpy(split.train_x), with_representation=True)
        scale = float(z.norm(dim=1).max())
        _, z = module(torch.from_numpy(x), with_representation=True)
    z = z.double().numpy()
    codes = fit_or_load(split.test_x.reshape(240, -1), tmp_path / "autoencoders").encode(x.reshape(200, -1))
    last = {c: metrics[c][-1] for c in metrics}
    for suffix, estimator in (("", "kl"), ("_ksg", "ksg")):
        again = CompressedMutualInformation(estimator=estimator).estimate(z, codes, y)
        assert again.i_zx == pytest.approx(last[f"mi_zx{suffix}"], rel=1e-5, abs=1e-9)
        assert again.i_zy == pytest.approx(last[f"mi_zy{suffix}"], rel=1e-5, abs=1e-9)
    hsic = NormalizedHSIC(sigma=5.0, kernel_x="gaussian", kernel_y="linear").estimate(z, y, batch_size=100, passes=3, seed=0)
    assert hsic == pytest.approx(last["nhsic_zy"], rel=1e-5)
    stats = ClassStatistics.from_features(z, y, num_classes=3)
    bound = ib_bound_logdet(class_covariances(stats) / scale**2, sigma=0.5, priors=stats.priors)
    assert bound == pytest.approx(last["ib_bound_logdet"], rel=1e-5)
    # log det(I + A) <= Tr A for PSD A (Thm. 3.4's second inequality)
    assert np.all(metrics["ib_bound_logdet"] <= metrics["ib_bound_trace"] + 1e-12)
    # nHSIC of a batch of m = 100 lies in [0, m - 1]
    assert np.all((metrics["nhsic_zy"] >= 0) & (metrics["nhsic_zy"] <= 99))
    assert list((tmp_path / "autoencoders").glob("autoencoder-*.pt"))  # cached once per data set

    # every 2nd logged step (0, 10) and the last (10) carry the columns; step 5 holds NaN
    sparse = run_sweep(small_config(steps=10, weight_decays=(0.1,), seeds=(0,), measure_ib=True, ib_samples=200,
                                    ib_sigma=0.5, ib_every=2, data_dir=str(tmp_path), snapshot_steps=()),
                       tmp_path / "ib_sparse", split=split)
    sparse_metrics = read_metrics(sparse.run_dirs[0])
    assert list(sparse_metrics["step"]) == [0, 5, 10]
    assert np.isnan(sparse_metrics["mi_zx"][1]) and np.all(np.isfinite(sparse_metrics["mi_zx"][[0, 2]]))
    np.testing.assert_array_equal(sparse_metrics["nhsic_zy"][[0, 2]], metrics["nhsic_zy"][[0, 2]])


def test_heldout_size_zero_means_no_heldout_sample(tmp_path, monkeypatch):
    # `--heldout-size 0` is "none" (it used to become None, which paper_split reads as "all unused images")
    from ncgrok.cli import build_parser
    from ncgrok.cli import train as train_cli
    from ncgrok.empirical.sweep_config import SweepConfig as Config

    args = build_parser().parse_args(["train", "--out", str(tmp_path / "x"), "--heldout-size", "0"])
    assert train_cli._config(args, lrs=[1e-3], weight_decays=[0.0], seeds=[0]).heldout_size == 0
    split = synthetic_split()
    split.heldout_x, split.heldout_y = split.heldout_x[:0], split.heldout_y[:0]  # what paper_split(heldout_size=0) gives
    result = run_sweep(small_config(steps=10, heldout_size=0, snapshot_steps=()), tmp_path / "s", split=split)
    metrics = read_metrics(result.run_dirs[0])
    for column in ("heldout_within_var", "heldout_radius", "cantelli_bound"):
        assert np.all(np.isnan(metrics[column])), column
    assert Config is SweepConfig  # empirical.sweep re-exports the settings class


# The settings of small_config() as sweep.json stored them before loss, betas, heads, ff_width,
# modulus and train_fraction existed (copied from a sweep.json written by that version); layers,
# layer_norm and test_size came later still.
SETTINGS_BEFORE_MODULAR = {
    "dataset": "mnist", "data_dir": None, "model": "mlp", "depth": 3, "width": 12, "init_scale": 2.0,
    "train_size": 60, "heldout_size": 5000, "heldout_seed": 0, "optimizer": "adamw", "lrs": [0.01],
    "weight_decays": [0.1, 0.01], "seeds": [0, 1], "batch_size": 20, "steps": 40, "loss_reduction": "sum",
    "dtype": "float32", "device": "cpu", "momentum": 0.0, "log_every": 5, "delta": 0.05, "snapshot_steps": [10],
    "checkpoint_seconds": 0.0, "measure_chunk_size": 512, "measure_ib": False, "ib_sigma": 0.1, "ib_samples": 2000,
    "ib_every": 1, "group_size": None, "extra": {},
}
NEW_SETTINGS = ("loss", "betas", "heads", "ff_width", "modulus", "train_fraction", "layers", "layer_norm", "test_size")


def test_settings_written_before_the_modular_settings_load_as_they_were():
    config = SweepConfig.from_dict(SETTINGS_BEFORE_MODULAR, source="old/sweep.json")
    assert config == small_config()
    assert (config.loss, config.betas, config.modulus, config.train_fraction) == ("mse", (0.9, 0.999), None, None)
    assert (config.layers, config.layer_norm, config.test_size) == (1, "none", None)
    transformer = SweepConfig.from_dict({**SETTINGS_BEFORE_MODULAR, "model": "transformer", "width": 8},
                                        source="old/sweep.json")
    assert transformer.model_spec((1, 4, 4), 3) == ModelSpec(arch="transformer", input_shape=(1, 4, 4), num_classes=3,
                                                             width=8, depth=3, init_scale=2.0)  # heads 4, ff 256


@pytest.mark.cpu_kernels
def test_a_sweep_written_before_the_modular_settings_resumes(tmp_path):
    """An interrupted sweep whose sweep.json and config.json files lack the new settings continues to
    the same metrics.csv as an uninterrupted one."""
    split = synthetic_split()
    straight = run_sweep(small_config(), tmp_path / "straight", split=split)
    old = tmp_path / "old"
    run_sweep(small_config(), old, split=split, stop_after_step=15)
    for path in [old / "sweep.json", *old.glob("*/config.json")]:
        payload = json.loads(path.read_text())
        settings = payload["config"] if path.name == "sweep.json" else payload
        for key in NEW_SETTINGS:
            del settings[key]
        path.write_text(json.dumps(payload))
    assert json.loads((old / "sweep.json").read_text())["config"] == SETTINGS_BEFORE_MODULAR
    resumed = run_sweep(small_config(), old, split=split, resume=True)
    assert resumed.resumed_from == 15
    for a, b in zip(straight.run_dirs, resumed.run_dirs):
        assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()


# ----------------------------------------------------------------------------- test_size


def _data_fixtures():
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("data_fixtures", Path(__file__).with_name("test_data_fixtures.py"))
    module = module_from_spec(spec)
    spec.loader.exec_module(module)  # tests run with --import-mode=importlib: load the shared writers by path
    return module


@pytest.mark.parametrize("value", [0, -4, 2.5, True, "7"])
def test_test_size_must_be_a_whole_number_of_images(value):
    with pytest.raises(ValueError, match=r"--test-size must be a whole number >= 1"):
        small_config(test_size=value)


def test_test_size_measures_the_same_subset_in_every_run_and_log(tmp_path, monkeypatch):
    """On synthetic MNIST files of 20 test images, ``test_size=7`` measures the 7 images of the
    documented rule: test_acc and test_loss of every run and logged step are those of the trained
    network on exactly those images, and metrics.csv's test_size column reads 7."""
    import torch

    from ncgrok.empirical import data
    from ncgrok.empirical.models import build_module

    fx = _data_fixtures()
    arrays, md5 = fx.synthetic_idx_set(tmp_path / "data" / "mnist", n_train=60, n_test=20)
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    config = small_config(data_dir=str(tmp_path / "data"), train_size=30, heldout_size=10, batch_size=10, steps=10,
                          snapshot_steps=(0, 5, 10), test_size=7)
    result = run_sweep(config, tmp_path / "sweep")
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["config"]["test_size"] == 7
    kept = sorted(np.random.default_rng(0).permutation(20)[:7].tolist())  # the rule, written out again
    images = (arrays["t10k-images-idx3-ubyte"][kept, None] / 255.0 - 0.1307) / 0.3081
    labels = arrays["t10k-labels-idx1-ubyte"][kept].astype(np.int64)
    for directory, run in zip(result.run_dirs, config.runs()):
        rows = read_metrics_rows(directory / "metrics.csv")
        assert [row["test_size"] for row in rows] == [7.0] * len(rows)
        for row in rows:
            if row["step"] not in (0, 5, 10):
                continue
            module = build_module(config.model_spec((1, 28, 28), 10), run.seed)
            snapshot = directory / "snapshots" / f"step_{row['step']}.pt"
            module.load_state_dict(torch.load(snapshot, weights_only=True))
            with torch.no_grad():
                logits = module(torch.from_numpy(images.astype(np.float32)))
            accuracy = float((logits.argmax(1).numpy() == labels).mean())
            assert row["test_acc"] == pytest.approx(accuracy, abs=1e-12)
    whole = small_config(data_dir=str(tmp_path / "data"), train_size=30, heldout_size=10, batch_size=10, steps=1,
                         snapshot_steps=(), seeds=(0,), weight_decays=(0.1,))
    rows = read_metrics_rows(run_sweep(whole, tmp_path / "whole").run_dirs[0] / "metrics.csv")
    assert rows[0]["test_size"] == 20.0


def test_test_size_above_the_test_set_writes_nothing(tmp_path, monkeypatch):
    from ncgrok.empirical import data

    fx = _data_fixtures()
    _, md5 = fx.synthetic_idx_set(tmp_path / "data" / "mnist", n_train=60, n_test=20)
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    config = small_config(data_dir=str(tmp_path / "data"), train_size=30, heldout_size=10, batch_size=10, test_size=21)
    with pytest.raises(ValueError, match=r"test_size \(--test-size\) must be at most 20"):
        run_sweep(config, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()
