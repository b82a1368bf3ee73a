"""``ncgrok onset`` / ``ncgrok figures`` on a synthetic sweep with planted onsets, bound checks on
hand-made curves, and the Fig. 2 margins of a real (tiny) sweep checked against the logits.

The synthetic sweep is written file by file in the layout of ``empirical.runs`` (sweep.json,
<run>/config.json, <run>/metrics.csv). Its curves obey the R6 law exactly: run (lambda, seed) fits
at a logged step ``t_fit`` (train accuracy jumps to 1 there), its test accuracy rises from 0.15 to
0.90 along a sharp logistic in log-step centred at ``t_grok = t_fit + C / (eta lambda)`` with
``C = ln(10) / 2``, and RNC1 decays as ``exp(-2 eta lambda (t - t_fit))`` after the fit -- so RNC1
reaches 0.1 x its value at the fit exactly at ``t_grok`` too (the UFM rate of Thm. 4.3). The logged
steps are log-spaced (about 4% apart), so the detected onset and RNC1 drop are the first logged
step at or after ``t_grok``: within one log interval of the planted value.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import ncgrok
from ncgrok.empirical.measure import METRIC_COLUMNS

LR = 1e-3
DECAYS = (0.3, 0.1, 0.03)
SEEDS = (0, 1)
CONSTANT = math.log(10.0) / 2.0
TOTAL = 100_000
STEPS = np.unique(np.concatenate([[0], np.round(np.geomspace(1, TOTAL, 300))])).astype(int)
FIT_STEPS = {0: int(STEPS[np.searchsorted(STEPS, 300)]), 1: int(STEPS[np.searchsorted(STEPS, 520)])}
PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def planted_onset(decay: float, seed: int) -> float:
    return FIT_STEPS[seed] + CONSTANT / (LR * decay)


def _curves(decay: float, fit: int | None, onset: float | None, *, information: bool) -> dict[str, np.ndarray]:
    t = STEPS.astype(float)
    if fit is None:  # never fits: train accuracy saturates at 0.95
        train = 0.1 + 0.85 * (1 - np.exp(-t / 200.0))
    else:
        train = np.where(t >= fit, 1.0, 0.1 + 0.85 * t / fit)
    if onset is None:  # never generalises beyond the plateau
        test = 0.1 + 0.05 * np.minimum(t / 300.0, 1.0)
    else:
        log_t = np.log(np.maximum(t, 1.0))
        test = 0.15 + 0.75 / (1.0 + np.exp(np.clip((math.log(onset) - log_t) / 0.005, -50, 50)))
        test = np.where(t < 300, 0.1 + 0.05 * t / 300.0, test)
    r0 = 0.5
    if fit is None or onset is None:
        rnc1 = np.full(t.shape, r0)
    else:
        rnc1 = r0 * np.exp(-2.0 * LR * decay * np.maximum(t - fit, 0.0))
    columns = {column: np.full(t.shape, 1.0) for column in METRIC_COLUMNS}
    columns.update(
        train_acc=train, test_acc=test, train_loss=1 - train, test_loss=1 - test, rnc1=rnc1, rnc1_sup=0.3 * rnc1,
        nc1=3 * rnc1, nc2=1 + 4 * rnc1 / r0, heldout_within_var=1.1 * rnc1, heldout_within_var_sup=0.33 * rnc1,
        heldout_radius=np.full(t.shape, 0.05), cantelli_bound=np.minimum(1.5, (1 - test) * 1.3 + 0.01),
    )
    if information:
        columns.update(mi_zx=2 + 4 * rnc1, mi_zy=np.full(t.shape, 1.9), nhsic_zx=0.5 + rnc1,
                       nhsic_zy=np.full(t.shape, 0.45), ib_bound_trace=rnc1 / (2 * 0.1**2),
                       ib_bound_logdet=0.8 * rnc1 / (2 * 0.1**2))
    return columns


def _write_run(directory: Path, decay: float, seed: int, columns: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True)
    config = {"dataset": "mnist", "model": "mlp", "depth": 4, "width": None, "init_scale": None, "optimizer": "adamw",
              "lrs": [LR], "weight_decays": list(DECAYS), "seeds": [0, 1, 2], "steps": TOTAL,
              "run": {"seed": seed, "lr": LR, "weight_decay": decay}, "name": directory.name}
    (directory / "config.json").write_text(json.dumps(config))
    names = ["step"] + list(columns)
    lines = [",".join(names)]
    for index, step in enumerate(STEPS):
        lines.append(",".join([str(int(step))] + [repr(float(columns[name][index])) for name in columns]))
    (directory / "metrics.csv").write_text("\n".join(lines) + "\n")


def write_synthetic_sweep(root: Path, *, information: bool = False) -> Path:
    """3 weight decays x 2 seeds obeying the planted law, plus a never-grokking run (lambda 0.3,
    seed 2) and a never-fitting run (lambda 0.03, seed 2)."""
    names = []
    for decay in DECAYS:
        for seed in SEEDS:
            name = f"wd{decay:g}_lr{LR:g}_seed{seed}"
            _write_run(root / name, decay, seed,
                       _curves(decay, FIT_STEPS[seed], planted_onset(decay, seed), information=information))
            names.append(name)
    special = {(0.3, 2): (FIT_STEPS[0], None), (0.03, 2): (None, None)}
    for (decay, seed), (fit, onset) in special.items():
        name = f"wd{decay:g}_lr{LR:g}_seed{seed}"
        _write_run(root / name, decay, seed, _curves(decay, fit, onset, information=information))
        names.append(name)
    (root / "sweep.json").write_text(json.dumps({"schema": 1, "config": {"lrs": [LR]}, "runs": names}))
    return root


def log_interval(value: float) -> float:
    """Gap between the logged steps around ``value`` (the resolution of any onset there)."""
    index = int(np.searchsorted(STEPS, value))
    return float(STEPS[index] - STEPS[index - 1])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return write_synthetic_sweep(tmp_path_factory.mktemp("synthetic") / "sweep")


def run_json(capsys, argv: list[str]) -> dict:
    assert ncgrok.main(argv) == 0
    return json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------------------------------------
# ncgrok onset


def test_onset_json_recovers_planted_onsets_and_slope(sweep, capsys):
    payload = run_json(capsys, ["onset", str(sweep), "--json"])
    runs = {(run["weight_decay"], run["seed"]): run for run in payload["runs"]}
    assert len(runs) == 8
    for decay in DECAYS:
        for seed in SEEDS:
            run = runs[(decay, seed)]
            planted = planted_onset(decay, seed)
            assert run["status"] == "grokked"
            assert run["fit_step"] == FIT_STEPS[seed]
            assert abs(run["onset_step"] - planted) <= log_interval(planted)
            # RNC1 reaches 0.1 x RNC1(fit) at the planted onset as well (C = ln(10)/2)
            assert abs(run["rnc1_drop_step"] - planted) <= log_interval(planted)
    assert runs[(0.3, 2)]["status"] == "never_grokked"
    assert runs[(0.03, 2)]["status"] == "never_fit"
    assert runs[(0.03, 2)]["rnc1_drop_step"] is None

    (summary,) = payload["learning_rates"]
    rows = {row["weight_decay"]: row for row in summary["rows"]}
    assert rows[0.3]["num_runs"] == 3 and rows[0.3]["num_grokked"] == 2 and rows[0.3]["num_never_grokked"] == 1
    assert rows[0.03]["num_never_fit"] == 1 and rows[0.1]["num_runs"] == 2
    # Planted delays are exactly C/(eta lambda): slope -1; onsets are quantised to ~4% log steps, and the
    # relative quantisation error of a delay is at most interval/delay < 6% here, so 0.05 is safe.
    slope = summary["slope_fit"]
    assert abs(slope["slope"] + 1.0) < 0.05
    assert slope["num_points"] == 6 and slope["predicted_slope"] == -1.0
    # C is calibrated on the middle weight decay (0.1) and must come back within the quantisation error
    assert summary["calibration_weight_decay"] == 0.1
    assert summary["onset_constant"] == pytest.approx(CONSTANT, rel=0.06)
    for row in summary["rows"]:
        assert abs(row["delay_relative_error"]) < 0.12
    assert any("AdamW" in note for note in payload["notes"])


def test_onset_calibrate_on_and_text_table(sweep, capsys, tmp_path):
    figure = tmp_path / "onset.png"
    status = ncgrok.main(["onset", str(sweep), "--calibrate-on", "0.3", "--figure", str(figure)])
    out = capsys.readouterr().out
    assert status == 0
    assert "never_fit" in out and "never_grokked" in out
    assert "R6 predicts -1" in out and "calibrated: C =" in out and "from lambda = 0.3" in out
    assert "AdamW" in out and "not exact" in out
    assert figure.read_bytes()[:8] == PNG_HEADER
    assert f"wrote {figure}" in out


def test_onset_single_run_directory(sweep, capsys):
    payload = run_json(capsys, ["onset", str(sweep / f"wd0.1_lr{LR:g}_seed0"), "--json"])
    assert len(payload["runs"]) == 1 and payload["learning_rates"][0]["slope_fit"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["onset", "{missing}"], "does not exist"),
        (["figures", "{missing}", "--out", "{out}"], "does not exist"),
        (["onset", "{sweep}", "--calibrate-on", "0.5"], "calibrate_on"),
    ],
)
def test_user_errors_are_one_line_with_status_2(sweep, tmp_path, capsys, argv, message):
    argv = [a.format(missing=tmp_path / "nowhere", out=tmp_path / "out", sweep=sweep) for a in argv]
    assert ncgrok.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and captured.out == ""


# ---------------------------------------------------------------------------------------------
# ncgrok figures


def test_figures_writes_pngs_and_skips_what_is_missing(sweep, tmp_path, capsys):
    out = tmp_path / "figs"
    assert ncgrok.main(["figures", str(sweep), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for name in ("fig3_dynamics", "bounds_r1_r4", "onset_scaling"):
        path = out / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_HEADER and path.stat().st_size > 10_000
        assert f"wrote {path}" in text
    assert not (out / "fig4_information.png").exists() and "Fig. 4 skipped" in text
    assert not (out / "fig2_margins.png").exists() and "Fig. 2 skipped" in text
    # the ledger replaces the old per-run "R1 holds" lines: one line per registered claim
    from ncgrok.empirical.ledger import CHECKS

    assert "claims ledger" in text and "R1 holds" not in text
    assert all(f"  {claim_id} " in text for claim_id in CHECKS)


def test_information_figure_needs_the_ib_columns_and_writes_each_format(sweep, tmp_path):
    from ncgrok.empirical.figures import information_figure
    from ncgrok.empirical.report import analyze_sweep

    (plain,) = analyze_sweep(sweep, margins=False).learning_rates
    with pytest.raises(ValueError, match="--measure-ib"):
        information_figure(plain, tmp_path / "none.png")
    (curves,) = analyze_sweep(write_synthetic_sweep(tmp_path / "ib", information=True), margins=False).learning_rates
    assert curves.information and curves.ib_bounds
    paths = information_figure(curves, tmp_path / "figs" / "fig4", formats=("png", "pdf"))
    assert paths == [tmp_path / "figs" / "fig4.png", tmp_path / "figs" / "fig4.pdf"]
    assert paths[0].read_bytes()[:8] == PNG_HEADER and paths[1].read_bytes()[:5] == b"%PDF-"


def test_seed_band_on_uneven_runs():
    from ncgrok.empirical.runs import Run
    from ncgrok.empirical.bands import seed_band

    a = Run("a", Path("a"), 0, LR, 0.1, "adamw", {}, {"step": np.array([0, 1, 2]), "x": np.array([1.0, 2.0, 3.0])})
    b = Run("b", Path("b"), 1, LR, 0.1, "adamw", {}, {"step": np.array([0, 2]), "x": np.array([3.0, np.nan])})
    band = seed_band([a, b], "x")
    assert band.steps.tolist() == [0, 1, 2] and band.count.tolist() == [2, 1, 1]
    low, high = band.interval("minmax")
    assert band.mean.tolist() == [2.0, 2.0, 3.0] and low.tolist() == [1.0, 2.0, 3.0]
    assert high.tolist() == [3.0, 2.0, 3.0]
    low, high = band.interval("std")
    assert high[0] == pytest.approx(2.0 + math.sqrt(2.0)) and low[1] == 2.0 and high[1] == 2.0
    with pytest.raises(ValueError, match="band"):
        band.interval("range")


# ---------------------------------------------------------------------------------------------
# Fig. 2 on a real tiny sweep


def tiny_split(seed: int = 0, num_classes: int = 3) -> SimpleNamespace:
    """Three well-separated Gaussian classes of 1x6x6 'images' (the pattern of test_sweep.py)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, 1, 6, 6)).astype(np.float32)

    def draw(n):
        y = np.arange(n) % num_classes
        return (centres[y] + 0.8 * rng.normal(size=(n, 1, 6, 6))).astype(np.float32), y.astype(np.int64)

    train_x, train_y = draw(60)
    test_x, test_y = draw(90)
    heldout_x, heldout_y = draw(45)
    return SimpleNamespace(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                           heldout_x=heldout_x, heldout_y=heldout_y, num_classes=num_classes)


def test_margins_from_snapshots_of_a_real_sweep(tmp_path):
    import torch

    from ncgrok.empirical.figures import make_figures
    from ncgrok.empirical.margins import margin_data
    from ncgrok.empirical.report import analyze_sweep
    from ncgrok.empirical.runs import load_run, load_snapshot, read_metrics
    from ncgrok.empirical.sweep import SweepConfig, run_sweep

    split = tiny_split()
    config = SweepConfig(model="mlp", depth=3, width=12, init_scale=2.0, train_size=60, batch_size=20, steps=40,
                         weight_decays=(0.1,), seeds=(0,), lrs=(1e-2,), log_every=10, device="cpu",
                         checkpoint_seconds=0.0, snapshot_steps=(10, 40))
    result = run_sweep(config, tmp_path / "sweep", split=split)
    run = load_run(result.run_dirs[0])
    metrics = read_metrics(run.path)

    # The rebuilt snapshot is the trained network: its accuracies match the logged ones.
    # (The log comes from the batched forward pass; a float32 rounding difference could flip an example
    # sitting exactly on a boundary, so one example of slack per set.)
    module = load_snapshot(run, 40, input_shape=split.train_x.shape[1:], num_classes=3)
    with torch.no_grad():
        logits = module(torch.as_tensor(split.train_x)).double()
        test_logits = module(torch.as_tensor(split.test_x)).double()
    logged = {name: float(metrics[name][metrics["step"] == 40][0]) for name in ("train_acc", "test_acc")}
    assert abs((logits.argmax(1).numpy() == split.train_y).mean() - logged["train_acc"]) <= 1 / 60 + 1e-12
    assert abs((test_logits.argmax(1).numpy() == split.test_y).mean() - logged["test_acc"]) <= 1 / 90 + 1e-12

    data = margin_data(run, split, classes=(0, 2))
    assert data.steps == (10, 40)
    # Independent route: the signed distance equals (logit_a - logit_b) / ||w_a - w_b|| (same affine map).
    weight = module.head.weight.detach().double()
    norm = float((weight[0] - weight[2]).norm())
    for label in (0, 2):
        index = np.flatnonzero(split.train_y == label)
        expected = ((logits[index, 0] - logits[index, 2]) / norm).numpy()
        np.testing.assert_allclose(data.get(40, "train", label), expected, rtol=1e-4, atol=1e-4)
        assert data.get(10, "unseen", label).size == int(np.sum(split.test_y == label))
    rows = data.summary()
    assert len(rows) == 8 and all(0.0 <= row["correct_side_fraction"] <= 1.0 for row in rows)

    report = analyze_sweep(result.out_dir, split=split, margin_classes=(0, 2))
    assert report.margins.summary() == rows  # the report's margins are margin_data's
    shutil.rmtree(result.out_dir)  # Fig. 2 is drawn from the report, without the snapshots
    paths = make_figures(report, tmp_path / "figs")
    margin_png = tmp_path / "figs" / "fig2_margins.png"
    assert margin_png in paths and margin_png.read_bytes()[:8] == PNG_HEADER
    assert not any("Fig. 2" in note for note in report.notes)
