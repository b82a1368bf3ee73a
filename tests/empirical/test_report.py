"""``empirical.report.analyze_sweep`` on a planted sweep with exactly known answers, and drawing from
the report alone (the sweep directory deleted first).

The planted sweep is written row by row: every 10 steps from 0 to 2000, train accuracy jumps from
0.5 to 1 at the fit step, test accuracy from 0.2 to 0.9 at the onset step, and RNC1 from 1 to 0.05
at the onset step. So the onset definitions of ``empirical.onset`` must return exactly those steps:
plateau 0.2 (the three logs from the fit are before the onset), final 0.9, level 0.55 first reached
at the onset and held from there; the RNC1 drop (<= 0.1 x its value at the fit) is the onset step.
The onsets obey the R6 law exactly: delay = C / (eta lambda) with C = 1, eta = 0.01.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

LR = 0.01
CONSTANT = 1.0
DECAYS = (0.5, 0.25, 0.1)
FIT = {0: 100, 1: 150}
STEPS = np.arange(0, 2001, 10)
PNG_HEADER = b"\x89PNG\r\n\x1a\n"
# (weight decay, seed 2): the runs that do not grok, and how
SPECIAL = {0.5: "never_grokked", 0.25: "no_gap", 0.1: "never_fit"}
VIOLATING = ("wd0.5_seed1", (400, 410, 420, 430))  # R1 bound planted below the test error at these steps
OUTSIDE = "wd0.1_seed0"  # R4 radius planted smaller than the train/held-out gap


def planted_onset(decay: float, seed: int) -> int:
    return FIT[seed] + round(CONSTANT / (LR * decay))


def _curves(name: str, decay: float, seed: int) -> dict[str, np.ndarray]:
    t = STEPS
    status = SPECIAL[decay] if seed == 2 else "grokked"
    fit = None if status == "never_fit" else FIT.get(seed, 100)
    onset = planted_onset(decay, seed) if status == "grokked" else None
    train = np.where(t >= fit, 1.0, 0.5) if fit is not None else np.full(t.shape, 0.9)
    if status == "no_gap":
        test = np.full(t.shape, 0.9)
    else:
        test = np.where(t >= onset, 0.9, 0.2) if onset is not None else np.full(t.shape, 0.2)
    rnc1 = np.where(t >= onset, 0.05, 1.0) if onset is not None else np.ones(t.shape)
    bound = (1.0 - test) + 0.05
    if name == VIOLATING[0]:
        bound = np.where(np.isin(t, VIOLATING[1]), (1.0 - test) - 0.01, bound)
    return {
        "train_acc": train, "test_acc": test, "rnc1": rnc1, "nc2": 1.0 + rnc1, "rnc1_sup": 0.5 * rnc1,
        "heldout_within_var_sup": 0.5 * rnc1 + 0.02, "heldout_radius": np.full(t.shape, 0.01 if name == OUTSIDE else 0.05),
        "cantelli_bound": bound, "mi_zx": np.full(t.shape, 2.0 + seed), "mi_zy": np.ones(t.shape),
        "nhsic_zx": np.full(t.shape, 0.5), "nhsic_zy": np.full(t.shape, 0.25),
    }


def write_planted_sweep(root: Path) -> Path:
    for decay in DECAYS:
        for seed in (0, 1, 2):
            name = f"wd{decay:g}_seed{seed}"
            directory = root / name
            directory.mkdir(parents=True)
            config = {"name": name, "optimizer": "adamw", "dataset": "mnist", "model": "mlp",
                      "run": {"seed": seed, "lr": LR, "weight_decay": decay}}
            (directory / "config.json").write_text(json.dumps(config))
            columns = _curves(name, decay, seed)
            lines = [",".join(["step", *columns])]
            lines += [",".join([str(int(step)), *(repr(float(values[i])) for values in columns.values())])
                      for i, step in enumerate(STEPS)]
            (directory / "metrics.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return write_planted_sweep(tmp_path_factory.mktemp("planted") / "sweep")


def test_analyze_sweep_finds_the_planted_onsets_and_the_exact_law(planted):
    from ncgrok.empirical.report import analyze_sweep

    report = analyze_sweep(planted)
    onsets = {(item.weight_decay, item.seed): item for item in report.require_onsets().runs}
    assert len(onsets) == 9
    for decay in DECAYS:
        for seed in (0, 1):
            item = onsets[(decay, seed)]
            assert item.result.status == "grokked"
            assert item.result.fit_step == FIT[seed] and item.result.onset_step == planted_onset(decay, seed)
            assert item.rnc1_drop_step == planted_onset(decay, seed) and item.resolution == 10
        assert onsets[(decay, 2)].result.status == SPECIAL[decay]
        assert onsets[(decay, 2)].rnc1_drop_step is None
    (lr, summary), = report.onsets.summaries
    assert lr == LR and summary.calibration_weight_decay == 0.25
    assert summary.onset_constant == pytest.approx(CONSTANT, rel=1e-12)
    assert summary.slope_fit.slope == pytest.approx(-1.0, abs=1e-12)
    for row in summary.rows:
        assert (row.num_runs, row.num_grokked) == (3, 2)
        assert row.onset_mean == pytest.approx(np.mean([planted_onset(row.weight_decay, s) for s in (0, 1)]))
        assert row.onset_relative_error == pytest.approx(0.0, abs=1e-12)
        assert report.onsets.rnc1_drop_means[(LR, row.weight_decay)] == row.onset_mean
    # the ledger: every registered claim once, in registry order, each with a verdict
    from ncgrok.empirical.ledger import CHECKS, VERDICTS

    assert [claim.id for claim in report.claims] == list(CHECKS)
    assert all(claim.verdict in VERDICTS for claim in report.claims)
    assert [entry["id"] for entry in report.to_json()["claims"]] == list(CHECKS)
    # seed bands: mi_zx - mi_zy = 1 + seed, so each cell of seeds 0, 1, 2 has mean 2, range [1, 3]
    (curves,) = report.learning_rates
    assert curves.information and not curves.ib_bounds
    assert [cell.weight_decay for cell in curves.cells] == sorted(DECAYS)
    for cell in curves.cells:
        band = cell.bands["mi_difference"]
        assert cell.seeds == (0, 1, 2) and np.all(band.mean == 2.0) and np.all(band.count == 3)
        assert np.all(band.interval("minmax")[0] == 1.0) and np.all(band.interval("minmax")[1] == 3.0)
    assert report.margins is None and report.notes == ("Fig. 2 skipped: no run has two model snapshots "
                                                       "(train with --snapshot-steps A B)",)


def test_report_is_json_with_or_without_the_drawing_arrays(planted):
    from ncgrok.empirical.report import analyze_sweep

    report = analyze_sweep(planted, margins=False)
    brief = json.loads(json.dumps(report.to_json(), allow_nan=False))
    runs = {(run["weight_decay"], run["seed"]): run for run in brief["onsets"]["runs"]}
    assert runs[(0.1, 1)]["onset_step"] == planted_onset(0.1, 1) and runs[(0.1, 2)]["fit_step"] is None
    assert brief["margins"] is None and "bound_curves" not in brief
    assert "bands" not in brief["learning_rates"][0]["weight_decays"][0]
    full = json.loads(json.dumps(report.to_json(arrays=True), allow_nan=False))
    cell = full["learning_rates"][0]["weight_decays"][0]
    assert cell["bands"]["test_acc"]["steps"] == STEPS.tolist()
    assert [curves["name"] for curves in full["bound_curves"]][:3] == ["wd0.1_seed0", "wd0.1_seed1", "wd0.1_seed2"]


def test_figures_draw_from_the_report_after_the_sweep_is_deleted(tmp_path):
    from ncgrok.empirical.figures import make_figures
    from ncgrok.empirical.report import analyze_sweep

    sweep = write_planted_sweep(tmp_path / "sweep")
    report = analyze_sweep(sweep)
    shutil.rmtree(sweep)
    paths = make_figures(report, tmp_path / "figs")
    names = ["fig3_dynamics", "fig4_information", "bounds_r1_r4", "onset_scaling"]
    assert paths == [tmp_path / "figs" / f"{name}.png" for name in names]
    assert all(path.read_bytes()[:8] == PNG_HEADER for path in paths)
    assert not sweep.exists()


def test_onset_errors_are_kept_and_bad_margin_choices_raise(planted, tmp_path):
    from ncgrok.empirical.figures import make_figures
    from ncgrok.empirical.report import analyze_sweep

    report = analyze_sweep(planted, calibrate_on=0.3, margins=False)
    assert report.onsets is None and report.notes[0].startswith("onsets not computed: calibrate_on = 0.3")
    with pytest.raises(ValueError, match="calibrate_on = 0.3 is not a weight decay"):
        report.require_onsets()
    with pytest.raises(ValueError, match="--margin-run 'nowhere' is not a run"):
        analyze_sweep(planted, margin_run="nowhere")
    with pytest.raises(ValueError, match="band must be one of"):
        make_figures(report, tmp_path / "none", band="range")
    assert not (tmp_path / "none").exists()


def test_fig4_band_of_the_ksg_route_and_the_diverged_note(tmp_path):
    """Runs that logged mi_*_ksg get a 'mi_difference_ksg' band beside the paper's route; a run whose
    summary says diverged is named in the report's notes (and so printed by ncgrok figures)."""
    import json

    from ncgrok.empirical.report import analyze_sweep

    steps = np.arange(0, 50, 10)
    for seed, status in ((0, "completed"), (1, "diverged")):
        run = tmp_path / f"wd0.1_seed{seed}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"name": run.name, "optimizer": "adamw", "steps": 40,
                                                     "run": {"seed": seed, "lr": 1e-3, "weight_decay": 0.1}}))
        columns = {"step": steps, "train_acc": np.ones(5), "test_acc": np.full(5, 0.5), "rnc1": np.full(5, 0.1),
                   "mi_zx": np.full(5, 3.0), "mi_zy": np.full(5, 1.0), "nhsic_zx": np.full(5, 0.5),
                   "nhsic_zy": np.full(5, 0.2), "mi_zx_ksg": np.full(5, 2.0 + seed), "mi_zy_ksg": np.full(5, 1.0)}
        lines = [",".join(columns)] + [",".join(repr(float(columns[c][i])) for c in columns) for i in range(5)]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
        (run / "summary.json").write_text(json.dumps({"name": run.name, "status": status}))
    report = analyze_sweep(tmp_path, margins=False)
    (cell,) = report.learning_rates[0].cells
    assert np.all(cell.bands["mi_difference_ksg"].mean == 1.5)  # (1 + 2) / 2 over the two seeds
    assert np.all(cell.bands["mi_difference"].mean == 2.0)
    assert any("1 of 2 run(s) diverged" in note and "wd0.1_seed1" in note for note in report.notes)
