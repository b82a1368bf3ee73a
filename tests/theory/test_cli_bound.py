"""Tests for `ncgrok bound ...` (theory/cli.py), run in-process through ncgrok.main."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import ncgrok


def run(argv):
    """Run the CLI; return the exit status (argparse exits become their status)."""
    try:
        return ncgrok.main(argv)
    except SystemExit as stop:
        return stop.code


def run_json(capsys, argv):
    status = run(argv + ["--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert err == ""
    return json.loads(out)


def binary_entropy(p):
    return 0.0 if p in (0.0, 1.0) else -p * math.log(p) - (1 - p) * math.log(1 - p)


# ------------------------------------------------------------------------------------------------
# cantelli


def test_cantelli_scalar_hand_values(capsys):
    report = run_json(capsys, ["bound", "cantelli", "--margin", "1", "--variance", "0.25", "--classes", "10"])
    assert report["theorem"] == "Thm. 3.2" and report["status"] == "published"
    assert report["inputs"]["margin"] == 1.0 and report["inputs"]["classes"] == 10
    assert report["results"]["pair_term"] == pytest.approx(0.25 / 1.25, rel=1e-14)
    assert report["results"]["bound"] == pytest.approx(9 * 0.2, rel=1e-14)
    assert report["results"]["vacuous"] is True


def test_cantelli_scalar_clipped_scaled_and_priors(capsys):
    report = run_json(
        capsys,
        ["bound", "cantelli", "--margin", "1", "--variance", "0.25", "--classes", "3", "--clipped"],
    )
    assert report["results"]["bound"] == pytest.approx(min(1.0, 2 * 0.2), rel=1e-14)
    report = run_json(
        capsys,
        ["bound", "cantelli", "--margin", "2", "--variance", "1", "--classes", "3", "--scale", "2",
         "--priors", "0.5", "0.25", "0.25"],
    )
    # rescaled: m = 1, V = 0.25; the bound is scale invariant
    assert report["results"]["rescaled_margin"] == pytest.approx(1.0)
    assert report["results"]["rescaled_variance"] == pytest.approx(0.25)
    assert report["results"]["bound"] == pytest.approx(0.4, rel=1e-14)
    assert report["inputs"]["priors"] == [0.5, 0.25, 0.25]
    report = run_json(capsys, ["bound", "cantelli", "--margin", "-0.5", "--variance", "1", "--classes", "2"])
    assert report["results"]["pair_term"] == 1.0 and report["results"]["bound"] == 1.0
    report = run_json(capsys, ["bound", "cantelli", "--margin", "0.5", "--variance", "0", "--classes", "4"])
    assert report["results"]["bound"] == 0.0


def test_cantelli_text_output(capsys):
    assert run(["bound", "cantelli", "--margin", "1", "--variance", "0.25", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "Thm. 3.2 (published)" in out
    assert "per-pair Cantelli term" in out and "0.2" in out and "1.8" in out and "vacuous" in out


@pytest.fixture
def two_class_stats(tmp_path):
    """p = 1: means +-1, W rows +-1, so u_01 = +1, u_10 = -1 and both margins are 1."""
    path = tmp_path / "stats.npz"
    np.savez(path, means=np.array([[1.0], [-1.0]]), W=np.array([[1.0], [-1.0]]), variances=np.array([0.25, 1.0]))
    return path


def test_cantelli_stats_hand_values(capsys, two_class_stats, tmp_path):
    report = run_json(capsys, ["bound", "cantelli", "--stats", str(two_class_stats)])
    terms = [0.25 / 1.25, 1.0 / 2.0]
    assert report["results"]["class_sums"] == pytest.approx(terms, rel=1e-14)
    assert report["results"]["bound"] == pytest.approx(0.5 * sum(terms), rel=1e-14)
    assert report["results"]["margins"][0][0] is None  # diagonal: not a competitor
    assert report["results"]["margins"][0][1] == pytest.approx(1.0)
    assert report["inputs"]["keys"] == ["W", "means", "variances"]

    # priors and bias from the file: m_01 = 1 + 0.5/2, m_10 = 1 - 0.5/2
    path = tmp_path / "biased.npz"
    np.savez(path, means=np.array([[1.0], [-1.0]]), W=np.array([[1.0], [-1.0]]), variances=np.array([0.25, 1.0]),
             priors=np.array([0.8, 0.2]), b=np.array([0.5, 0.0]))
    report = run_json(capsys, ["bound", "cantelli", "--stats", str(path)])
    expected = 0.8 * 0.25 / (0.25 + 1.25**2) + 0.2 * 1.0 / (1.0 + 0.75**2)
    assert report["results"]["bound"] == pytest.approx(expected, rel=1e-13)

    # --scale 2: means / 2, variances / 4 -> same bound
    report = run_json(capsys, ["bound", "cantelli", "--stats", str(two_class_stats), "--scale", "2"])
    assert report["results"]["bound"] == pytest.approx(0.5 * sum(terms), rel=1e-13)
    assert report["results"]["margins"][0][1] == pytest.approx(0.5)


def test_cantelli_stats_directional(capsys, tmp_path):
    path = tmp_path / "cov.npz"
    covariances = np.array([np.diag([0.25, 4.0]), np.diag([1.0, 1.0])])
    np.savez(path, means=np.array([[1.0, 0.0], [-1.0, 0.0]]), W=np.array([[1.0, 0.0], [-1.0, 0.0]]),
             covariances=covariances, priors=np.array([0.5, 0.5]))
    plain = run_json(capsys, ["bound", "cantelli", "--stats", str(path)])
    directional = run_json(capsys, ["bound", "cantelli", "--stats", str(path), "--directional"])
    # plain uses V_c = trace; directional uses the variance along u = +-e_1
    assert plain["results"]["bound"] == pytest.approx(0.5 * (4.25 / 5.25) + 0.5 * (2.0 / 3.0), rel=1e-13)
    assert directional["results"]["bound"] == pytest.approx(0.5 * 0.2 + 0.5 * 0.5, rel=1e-13)
    assert directional["inputs"]["directional"] is True


# ------------------------------------------------------------------------------------------------
# ib, fano, concentration, timescales


def test_ib_hand_values(capsys, tmp_path):
    report = run_json(capsys, ["bound", "ib", "--variance", "0.5", "--sigma", "0.5"])
    assert report["results"]["trace_bound"] == pytest.approx(0.5 / (2 * 0.25), rel=1e-14)
    assert report["units"] == "nats" and report["theorem"] == "Thm. 3.4"

    path = tmp_path / "cov.npz"
    np.savez(path, covariances=np.array([np.diag([1.0, 0.0]), np.diag([3.0, 2.0])]), priors=np.array([0.25, 0.75]))
    report = run_json(capsys, ["bound", "ib", "--stats", str(path), "--sigma", "1"])
    assert report["results"]["trace_bound"] == pytest.approx((0.25 * 1 + 0.75 * 5) / 2, rel=1e-14)
    logdet = 0.5 * (0.25 * math.log(2) + 0.75 * (math.log(4) + math.log(3)))
    assert report["results"]["logdet_bound"] == pytest.approx(logdet, rel=1e-12)
    assert report["results"]["gaussian_exact"] == pytest.approx(logdet, rel=1e-12)


def test_ib_text_says_nats(capsys):
    assert run(["bound", "ib", "--variance", "0.5", "--sigma", "0.5"]) == 0
    assert "nats" in capsys.readouterr().out


def test_fano_hand_values(capsys):
    report = run_json(capsys, ["bound", "fano", "--classes", "2", "--error", "0"])
    assert report["results"]["information_lower_bound"] == pytest.approx(math.log(2), rel=1e-14)
    report = run_json(capsys, ["bound", "fano", "--classes", "10", "--error", "0.1", "--initial-information", "0.5"])
    expected = math.log(10) - binary_entropy(0.1) - 0.1 * math.log(9)
    assert report["results"]["information_lower_bound"] == pytest.approx(expected, rel=1e-13)
    assert report["results"]["required_rise"] == pytest.approx(expected - 0.5, rel=1e-13)
    assert report["units"] == "nats" and report["status"] == "reconstructed"
    assert run(["bound", "fano", "--classes", "4", "--error", "0.25"]) == 0
    assert "nats" in capsys.readouterr().out


def test_concentration_hand_values(capsys):
    report = run_json(capsys, ["bound", "concentration", "--n", "100", "--classes", "10", "--delta", "0.05"])
    assert report["results"]["radius"] == pytest.approx(2 * math.sqrt(math.log(400) / 100), rel=1e-14)
    assert report["theorem"] == "Thm. 4.1" and report["status"] == "reconstructed"
    report = run_json(
        capsys,
        ["bound", "concentration", "--n", "9", "400", "--delta", "0.5", "--rnc1-train", "0.1",
         "--complexity-ratio", "20", "--constant", "2"],
    )
    assert report["inputs"]["classes"] == 2
    assert report["results"]["radius"] == pytest.approx(
        [2 * math.sqrt(math.log(8) / 8), 2 * math.sqrt(math.log(8) / 400)], rel=1e-14
    )
    assert report["results"]["uniform_bound_shape"][1] == pytest.approx(
        0.1 + 2 * 20 / 20 + math.sqrt(math.log(4) / 400), rel=1e-14
    )


def test_timescales_hand_values(capsys):
    report = run_json(
        capsys,
        ["bound", "timescales", "--lr", "0.1", "--weight-decay", "0.5", "--eps1", str(math.exp(-3)),
         "--eps2", str(math.exp(-4))],
    )
    results = report["results"]
    assert results["tau1"] == pytest.approx(30.0, rel=1e-12)
    assert results["tau2"] == pytest.approx(4 / (2 * 0.1 * 0.5), rel=1e-12)
    assert results["ratio"] == pytest.approx(40 / 30, rel=1e-12)
    assert results["predicted_onset"] == pytest.approx(70.0, rel=1e-12)
    assert "AdamW" in report["notes"]
    report = run_json(
        capsys,
        ["bound", "timescales", "--lr", "0.01", "--weight-decay", "0.01", "--eps1", "0.1", "--eps2", "0.01",
         "--initial-loss", "0.05", "--initial-variance", "1"],
    )
    assert report["results"]["tau1"] == 0.0 and report["results"]["ratio"] is None  # already fitted


# ------------------------------------------------------------------------------------------------
# --latex and --help


def test_latex_output(capsys):
    report = run_json(capsys, ["bound", "timescales", "--lr", "0.1", "--weight-decay", "0.1", "--eps1", "0.1",
                               "--eps2", "0.1", "--latex"])
    assert set(report["latex"]) == {"fit_time", "collapse_time", "predicted_onset"}
    assert r"\eta" in report["latex"]["collapse_time"] and r"\lambda" in report["latex"]["collapse_time"]
    assert run(["bound", "fano", "--classes", "3", "--error", "0.1", "--latex"]) == 0
    out = capsys.readouterr().out
    assert "LaTeX (fano_uniform)" in out and r"\log" in out
    assert run(["bound", "concentration", "--n", "10", "--classes", "2", "--delta", "0.1", "--latex"]) == 0
    assert r"\lfloor" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command, theorem, status",
    [
        ("cantelli", "Thm. 3.2", "published"),
        ("ib", "Thm. 3.4", "published"),
        ("fano", "Prop. 3.3", "reconstructed"),
        ("concentration", "Thm. 4.1", "reconstructed"),
        ("timescales", "Thm. 4.3", "reconstructed"),
    ],
)
def test_help_names_result_and_status(capsys, command, theorem, status):
    assert run(["bound", command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert theorem in out and status in out
    assert run(["bound", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{theorem} ({status}" in out or f"{theorem} (rates published, exact form {status}" in out


# ------------------------------------------------------------------------------------------------
# Errors: exit status 2, one line on stderr, no traceback


@pytest.fixture
def bad_files(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    single = tmp_path / "single.npy"
    np.save(single, np.ones(3))
    missing = tmp_path / "missing.npz"
    np.savez(missing, means=np.ones((2, 2)))
    shapes = tmp_path / "shapes.npz"
    np.savez(shapes, means=np.ones((3, 2)), W=np.ones((3, 3)), variances=np.ones(3))
    negative = tmp_path / "negative.npz"
    np.savez(negative, means=np.ones((2, 2)), W=np.eye(2), variances=np.array([1.0, -1.0]))
    nocov = tmp_path / "nocov.npz"
    np.savez(nocov, priors=np.array([0.5, 0.5]))
    return {p.stem: str(p) for p in (corrupt, text, single, missing, shapes, negative, nocov)} | {
        "absent": str(tmp_path / "absent.npz")
    }


ERROR_CASES = [
    (["cantelli", "--margin", "1", "--variance", "-1", "--classes", "3"], "--variance"),
    (["cantelli", "--margin", "1", "--variance", "1", "--classes", "1"], "--classes"),
    (["cantelli", "--margin", "1", "--variance", "1"], "needs"),
    (["cantelli", "--margin", "1", "--variance", "1", "--classes", "3", "--directional"], "covariances"),
    (["cantelli", "--margin", "1", "--variance", "1", "--classes", "2", "--priors", "0.3", "0.3"], "sum to 1"),
    (["cantelli", "--margin", "nan", "--variance", "1", "--classes", "2"], "--margin"),
    (["cantelli", "--stats", "{absent}"], "no such file"),
    (["cantelli", "--stats", "{corrupt}"], "npz"),
    (["cantelli", "--stats", "{text}"], "npz"),
    (["cantelli", "--stats", "{single}"], "npz"),
    (["cantelli", "--stats", "{missing}"], "missing W"),
    (["cantelli", "--stats", "{shapes}"], "shape"),
    (["cantelli", "--stats", "{negative}"], "non-negative"),
    (["cantelli", "--stats", "{missing}", "--margin", "1"], "not both"),
    (["ib", "--variance", "1", "--sigma", "0"], "--sigma"),
    (["ib", "--variance", "1", "--sigma", "-2"], "--sigma"),
    (["ib", "--variance", "-1", "--sigma", "1"], "--variance"),
    (["ib", "--sigma", "1"], "--variance"),
    (["ib", "--sigma", "1", "--stats", "{nocov}"], "covariances"),
    (["ib", "--sigma", "1", "--stats", "{absent}"], "covariances"),
    (["fano", "--classes", "1", "--error", "0.1"], "--classes"),
    (["fano", "--classes", "3", "--error", "1.5"], "error"),
    (["fano", "--classes", "3", "--error", "-0.1"], "error"),
    (["concentration", "--n", "10", "--classes", "3", "--delta", "0"], "--delta"),
    (["concentration", "--n", "10", "--classes", "3", "--delta", "1"], "--delta"),
    (["concentration", "--n", "10", "--classes", "1", "--delta", "0.1"], "--classes"),
    (["concentration", "--n", "1", "--classes", "3", "--delta", "0.1"], "--n"),
    (["concentration", "--n", "10", "--delta", "0.1"], "--classes"),
    (["concentration", "--n", "10", "20", "--classes", "3", "--delta", "0.1"], "does not match"),
    (["concentration", "--n", "10", "--classes", "3", "--delta", "0.1", "--constant", "1"], "needs all"),
    (["timescales", "--lr", "0", "--weight-decay", "0.1", "--eps1", "0.1", "--eps2", "0.1"], "--lr"),
    (["timescales", "--lr", "0.1", "--weight-decay", "0", "--eps1", "0.1", "--eps2", "0.1"], "--weight-decay"),
    (["timescales", "--lr", "0.1", "--weight-decay", "0.1", "--eps1", "-1", "--eps2", "0.1"], "--eps1"),
    # argparse-level mistakes are one line too
    (["cantelli", "--margin", "abc", "--variance", "1", "--classes", "2"], "--margin: must be a finite number"),
    (["fano", "--classes", "3"], "required"),
]


@pytest.mark.parametrize("argv, fragment", ERROR_CASES)
def test_errors_exit_2_with_one_line(capsys, bad_files, argv, fragment):
    argv = ["bound"] + [arg.format(**bad_files) for arg in argv]
    status = run(argv)
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("ncgrok bound")
    assert fragment in lines[0]


def test_missing_file_message_says_what_it_must_contain(capsys, bad_files):
    assert run(["bound", "cantelli", "--stats", bad_files["absent"]]) == 2
    err = capsys.readouterr().err
    assert bad_files["absent"] in err
    for key in ("means", "W", "covariances", "variances", "priors"):
        assert key in err


def test_bare_bound_prints_help(capsys):
    assert run(["bound"]) == 2
    assert "cantelli" in capsys.readouterr().out
