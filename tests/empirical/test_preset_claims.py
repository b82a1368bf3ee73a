"""The presets' own claims (``ledger.preset_claims``): each shown holding on planted runs built to satisfy
it and failing on planted runs built to violate it (curves are closed forms of the step, so the
expected statistic is known)."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from ncgrok.empirical.ledger import preset_claims as pc
from ncgrok.empirical.ledger.core import RunCurves, Source
from ncgrok.empirical.margins import MarginData, MarginSet

_spec = importlib.util.spec_from_file_location("ledger_planted", Path(__file__).with_name("ledger_planted.py"))
planted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(planted)

SOURCE = Source("test", "paper-text")
DECAYS = (0.01, 0.1)


def _grokking(seeds=3, onset=40_000.0):
    return [planted.planted_run(d, s, onset=onset + 500.0 * s) for d in DECAYS for s in range(seeds)]


def _no_gap(seeds=3):
    # test accuracy rises with the fit (midpoint at the fit step): ratio at the fit ~ 0.88/0.88 region
    runs = []
    for d in DECAYS:
        for s in range(seeds):
            run = planted.planted_run(d, s, onset=planted.FIT - 1500.0, width=300.0)
            runs.append(run)
    return runs


def test_accuracy_ratio_at_fit_against_the_planted_curve():
    run = planted.planted_run(0.01, 0, onset=40_000.0)
    fit = planted.measured_fit()
    expected_at_fit = 0.12 + 0.76 * planted.sigmoid((fit - 40_000.0) / max(300.0, 0.05 * (40_000.0 - planted.FIT)))
    final = run["test_acc"][-1]
    assert pc.test_accuracy_ratio_at_fit(run) == pytest.approx(expected_at_fit / final, rel=1e-12)


@pytest.mark.parametrize("runs, no_gap, gap", [(_grokking, "fails", "holds"), (_no_gap, "holds", "fails")])
def test_gap_claims_go_both_ways(runs, no_gap, gap):
    planted_runs = runs()
    assert pc.no_gap(planted_runs, source=SOURCE).verdict == no_gap
    assert pc.grokking_gap(planted_runs, source=SOURCE).verdict == gap


def test_gap_claim_with_one_run_per_level_is_inconclusive_not_holds():
    (run,) = _no_gap(seeds=1)[:1]
    assert pc.no_gap([run], source=SOURCE).verdict == "inconclusive"
    # one seed at each of two levels: still no replicate within a level, so no interval and no verdict
    result = pc.no_gap(_no_gap(seeds=1), source=SOURCE)
    assert result.verdict == "inconclusive" and result.interval is None and result.statistic > 0.9


def _with_column(run, name, values):
    return RunCurves(run.name, run.lr, run.weight_decay, run.seed, run.optimizer, run.horizon,
                     {**run.columns, name: values(run)})


def _rising_rnc1(seeds):
    return [planted.planted_run(d, s, onset=40_000.0, rnc1=lambda t, s=s: 0.1 + t / 1e6 + 1e-6 * s)
            for d in DECAYS for s in range(seeds)]


def _tracking(seeds, nc1):
    # RNC1 an oscillation unrelated to the test accuracy; NC1 given as a function of the run
    base = [planted.planted_run(d, s, onset=40_000.0, rnc1=lambda t, s=s: 0.2 + 0.1 * np.sin(t / 7000.0) + 1e-6 * s)
            for d in DECAYS for s in range(seeds)]
    return [_with_column(run, "nc1", nc1) for run in base]


def _population(seeds, values):
    return [_with_column(run, "population_within_var", values) for run in _grokking(seeds)]


# claim id: (check, runs that hold with `seeds` runs per level, runs that fail, the claim's threshold and
# whether it holds above it): every preset claim judged on a within-level bootstrap interval
BOOTSTRAP_CLAIMS = {
    "no-gap": (lambda runs: pc.no_gap(runs, source=SOURCE), _no_gap, _grokking, (pc.NO_GAP_RATIO, True)),
    "grokking-gap": (lambda runs: pc.grokking_gap(runs, source=SOURCE), _grokking, _no_gap, (pc.GAP_RATIO, False)),
    "rnc1-falls-after-fit": (lambda runs: pc.rnc1_falls_after_fit(runs, source=SOURCE), _grokking, _rising_rnc1,
                             (0.0, False)),
    "nc1-tracks-test-better": (lambda runs: pc.nc1_tracks_test_better(runs, source=SOURCE),
                               lambda seeds: _tracking(seeds, lambda r: 1.0 - r["test_acc"]),
                               lambda seeds: _tracking(seeds, lambda r: r["test_acc"].copy()), (0.0, True)),
    "earlier-with-more-data": (lambda pair: pc.earlier_with_more_data(*pair, sizes=(1000, 3000), source=SOURCE),
                               lambda seeds: (_grokking(seeds, 40_000.0), _grokking(seeds, 30_000.0)),
                               lambda seeds: (_grokking(seeds, 30_000.0), _grokking(seeds, 40_000.0)), (0.0, False)),
    "population-collapse": (lambda runs: pc.population_collapse(runs, source=SOURCE),
                            lambda seeds: _population(seeds, lambda r: r["rnc1"] + 0.05),
                            lambda seeds: _population(seeds, lambda r: 0.1 + r["step"] / 1e6), (0.0, False)),
}
ONE_RUN = "a level with a single run has no replicate, so no interval (one run at lambda"


@pytest.mark.parametrize("planted_verdict", ["holds", "fails"])
@pytest.mark.parametrize("claim_id", BOOTSTRAP_CLAIMS)
def test_every_bootstrap_claim_needs_two_runs_per_level(claim_id, planted_verdict):
    """Two runs per level decide the planted verdict; one run per level (the same construction) gives no
    interval and ``inconclusive``, with the statistic as measured on the side the planted runs put it."""
    check, holding, failing, (threshold, holds_above) = BOOTSTRAP_CLAIMS[claim_id]
    build = holding if planted_verdict == "holds" else failing
    replicated = check(build(2))
    assert replicated.verdict == planted_verdict and replicated.interval is not None
    single = check(build(1))
    assert single.verdict == "inconclusive" and single.interval is None
    assert (single.statistic > threshold) == (holds_above == (planted_verdict == "holds"))
    assert f"{ONE_RUN} 0.01, 0.1)" in single.detail and "runs per level [1, 1]" in single.detail


def test_copied_and_partly_unreplicated_levels_count_their_distinct_runs():
    check, holding, _, _ = BOOTSTRAP_CLAIMS["grokking-gap"]
    copied = check(planted.copies(holding(1), times=2))  # three identical runs per level: merged into one
    assert copied.verdict == "inconclusive" and copied.interval is None and "runs per level [1, 1]" in copied.detail
    partly = check([run for run in holding(2) if (run.weight_decay, run.seed) != (0.1, 1)])
    assert partly.verdict == "inconclusive" and partly.interval is None and f"{ONE_RUN} 0.1)" in partly.detail


def test_never_fitted_runs_have_no_ratio():
    flat = np.full(planted.STEPS.shape, 0.5)
    runs = [planted.planted_run(0.01, s, onset=40_000.0, train=flat) for s in range(3)]
    result = pc.no_gap(runs, source=SOURCE)
    assert result.verdict == "inconclusive" and "3 run(s)" in result.detail


def test_rnc1_falls_after_fit_both_ways():
    falling = _grokking()
    assert pc.rnc1_falls_after_fit(falling, source=SOURCE).verdict == "holds"
    # RNC1 rising after the fit: planted as an increasing function of the step
    result = pc.rnc1_falls_after_fit(_rising_rnc1(3), source=SOURCE)
    assert result.verdict == "fails" and result.statistic > 0
    # restricted to one level: only that level's runs are read
    assert "lambda 0.1" in pc.rnc1_falls_after_fit(falling, source=SOURCE, decays=(0.1,)).claim
    assert "[3]" in pc.rnc1_falls_after_fit(falling, source=SOURCE, decays=(0.1,)).detail


def test_nc1_tracks_test_better_both_ways():
    # NC1 mirrors test accuracy exactly: rho(-NC1, test) = 1, while RNC1 oscillates (|rho| well below 1)
    mirrored = _tracking(3, lambda r: 1.0 - r["test_acc"])
    assert pc.nc1_tracks_test_better(mirrored, source=SOURCE).verdict == "holds"
    # NC1 moving against test accuracy: rho(-NC1, test) = -1 < rho(-RNC1, test)
    opposed = _tracking(3, lambda r: r["test_acc"].copy())
    result = pc.nc1_tracks_test_better(opposed, source=SOURCE)
    assert result.verdict == "fails" and result.statistic < 0


def test_earlier_with_more_data_both_ways_and_censoring():
    small = _grokking(onset=40_000.0)
    large = _grokking(onset=30_000.0)
    result = pc.earlier_with_more_data(small, large, sizes=(1000, 3000), source=SOURCE)
    assert result.verdict == "holds"
    assert result.statistic == pytest.approx(np.mean([np.mean([math.log((30_000 + 500 * s) / (40_000 + 500 * s))
                                                               for s in range(3)])] * 2), abs=0.01)
    assert pc.earlier_with_more_data(large, small, sizes=(1000, 3000), source=SOURCE).verdict == "fails"
    # the larger set still far from its final accuracy at the horizon: it reaches the common level later
    late = _grokking(onset=95_000.0)
    assert pc.earlier_with_more_data(small, late, sizes=(1000, 3000), source=SOURCE).verdict == "fails"
    # the same curves: not earlier (log ratio 0 fails); test accuracy that never rises: nothing to compare
    same = pc.earlier_with_more_data(small, small, sizes=(1000, 3000), source=SOURCE)
    assert same.verdict == "fails" and same.statistic == 0.0
    flat = [planted.planted_run(d, s, onset=1e9) for d in DECAYS for s in range(3)]
    both = pc.earlier_with_more_data(flat, flat, sizes=(1000, 3000), source=SOURCE)
    assert both.verdict == "inconclusive" and both.statistic is None


def test_common_level_crossing_against_the_planted_curves():
    small = planted.planted_run(0.01, 0, onset=40_000.0)
    large = planted.planted_run(0.01, 0, onset=30_000.0)
    (t_small, c_small), (t_large, c_large) = pc._common_level_crossings(small, large)
    # both curves rise 0.12 -> 0.88 symmetrically about their onsets: the half-way level is crossed at the
    # first logged step at or after each onset (within the width of one sigmoid step of the level's offset)
    assert not c_small and not c_large
    assert 40_000.0 <= t_small <= 40_100.0 and 30_000.0 <= t_large <= 30_100.0


def _margins(early_own: float, late_own: float, n: int = 200) -> MarginData:
    def distances(own_fraction, sign):
        k = int(round(own_fraction * n))
        return sign * np.concatenate([np.full(k, 1.0), np.full(n - k, -1.0)])

    sets = []
    for step, own in ((1000, early_own), (9000, late_own)):
        sets += [MarginSet(step, "unseen", 4, distances(own, +1.0)), MarginSet(step, "unseen", 5, distances(own, -1.0))]
    return MarginData("run", 0.1, 0, (4, 5), (1000, 9000), tuple(sets), {})


def test_pair_margin_separation_both_ways():
    held = pc.pair_margin_separation([_margins(0.6, 0.95)], source=SOURCE)
    assert held.verdict == "holds" and held.statistic == pytest.approx(0.35)
    assert pc.pair_margin_separation([_margins(0.6, 0.95), _margins(0.9, 0.8)], source=SOURCE).verdict == "fails"
    assert pc.pair_margin_separation([_margins(0.6, 0.62)], source=SOURCE).verdict == "inconclusive"
    assert pc.pair_margin_separation([], source=SOURCE).verdict == "not_applicable"


def test_population_collapse_both_ways_and_reports_the_exact_gap():
    base = _grokking()
    result = pc.population_collapse(_population(3, lambda r: r["rnc1"] + 0.05), source=SOURCE)
    assert result.verdict == "holds" and result.statistic < 0
    assert "exact gap V_pop - RNC1" in result.detail and "0.05 at the fit" in result.detail
    assert pc.population_collapse(_population(3, lambda r: 0.1 + r["step"] / 1e6), source=SOURCE).verdict == "fails"
    # image runs have no exact population column: nothing to judge
    assert pc.population_collapse(base, source=SOURCE).verdict == "inconclusive"
