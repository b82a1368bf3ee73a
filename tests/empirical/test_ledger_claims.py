"""Each ledger claim seen holding and failing on planted runs (issue 12), plus censoring, collapses
and copied seeds. Planted curves: tests/empirical/ledger_planted.py (closed forms, fixed seeds)."""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ncgrok.empirical.ledger import CHECKS, VERDICTS
from ncgrok.empirical.ledger.collapse_claims import nc2_follows_rnc1, tau2_lower_bound
from ncgrok.empirical.ledger.onset_claims import monotone_lambda, r6_scaling, sync_rnc1_onset
from ncgrok.empirical.ledger.runner import ledger_json, ledger_lines, run_checks

_spec = importlib.util.spec_from_file_location("ledger_planted", Path(__file__).with_name("ledger_planted.py"))
planted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(planted)

FAST = dict(resamples=400)


def test_registry_holds_the_claims_of_this_module():
    assert {"monotone-lambda", "sync-rnc1-onset", "tau2-lower-bound", "r6-scaling", "nc2-follows-rnc1"} <= set(CHECKS)


# ---------------------------------------------------------------------------------------------
# monotone-lambda


def test_monotone_lambda_holds_on_a_decreasing_sweep():
    result = monotone_lambda(planted.scaling_sweep(slope=-1.0, jitter=0.2), **FAST)
    assert result.verdict == "holds" and result.source.status == "paper-text"
    assert result.statistic > 0.8 and result.interval[0] > 0.5
    assert all(p < 0.05 for p in result.extra["p_values"].values())


def test_monotone_lambda_fails_when_onsets_grow_with_lambda():
    result = monotone_lambda(planted.scaling_sweep(slope=+0.5, jitter=0.1), **FAST)
    assert result.verdict == "fails" and result.statistic < 0 and "overall" in result.detail


def test_monotone_lambda_fails_on_a_reversal_between_adjacent_levels():
    """Onsets fall with lambda except from 0.01 to 0.02, where they jump up: the overall trend is still
    downward, but the reversal is significant (exact Mann-Whitney p = 1/924 with 6 seeds)."""
    delays = {0.005: 30_000.0, 0.01: 15_000.0, 0.02: 40_000.0, 0.04: 8_000.0, 0.08: 4_000.0}
    runs = [planted.planted_run(d, s, onset=planted.measured_fit() + delay + 200.0 * s)
            for d, delay in delays.items() for s in range(6)]
    result = monotone_lambda(runs, **FAST)
    assert result.verdict == "fails"
    assert "0.01 -> 0.02" in result.detail


def test_monotone_lambda_inconclusive_on_a_flat_sweep_or_two_levels():
    flat = monotone_lambda(planted.scaling_sweep(slope=0.0, jitter=0.2), **FAST)
    assert flat.verdict == "inconclusive" and abs(flat.statistic) < 0.3
    two = monotone_lambda(planted.scaling_sweep(decays=(0.01, 0.02)), **FAST)
    assert two.verdict == "inconclusive" and "need 3" in two.detail


def test_monotone_lambda_takes_censored_onsets_as_later():
    """The smallest lambda never finishes its rise (censored at the horizon): still consistent."""
    runs = [r for r in planted.scaling_sweep(slope=-1.0, jitter=0.2) if r.weight_decay != 0.005]
    runs += [planted.planted_run(0.005, s, onset=150_000.0, width=25_000.0) for s in range(5)]
    result = monotone_lambda(runs, **FAST)
    assert result.verdict == "holds"
    assert "0.005: undefined" in result.detail  # the level median is beyond the horizon


# ---------------------------------------------------------------------------------------------
# sync-rnc1-onset


def test_sync_holds_when_rnc1_falls_at_the_onset():
    result = sync_rnc1_onset(planted.scaling_sweep(jitter=0.2), **FAST)
    assert result.verdict == "holds" and -0.5 < result.interval[0] <= result.interval[1] < 0.5


def test_sync_fails_when_rnc1_falls_at_the_fit():
    runs = planted.scaling_sweep(jitter=0.2, rnc1_centre=planted.measured_fit() + 300.0, rnc1_width=100.0)
    result = sync_rnc1_onset(runs, **FAST)
    assert result.verdict == "fails" and result.interval[1] < -0.5 and result.statistic == pytest.approx(-1.0, abs=0.1)


def test_sync_not_applicable_without_rnc1():
    runs = [dataclasses.replace(r, columns={k: v for k, v in r.columns.items() if k != "rnc1"})
            for r in planted.scaling_sweep()]
    assert sync_rnc1_onset(runs, **FAST).verdict == "not_applicable"


# ---------------------------------------------------------------------------------------------
# tau2-lower-bound


def collapse_sweep(multiple: float, *, optimizer: str = "sgd", lr: float = 0.01, steps=planted.STEPS, seeds: int = 3):
    """RNC1 decays exponentially from the fit and reaches 0.1x after ``multiple`` x log(10)/(2 eta lambda)
    steps, i.e. rho = multiple (up to 10% seed jitter and the 100-step logging)."""
    rng = np.random.default_rng(4)
    fit = planted.measured_fit()
    runs = []
    for decay in (0.005, 0.01, 0.02, 0.04):
        for seed in range(seeds):
            tau = multiple * np.exp(0.1 * rng.standard_normal()) / (2 * lr * decay)
            curve = lambda steps, tau=tau: np.where(steps < fit, 0.5, 0.5 * np.exp(-(steps - fit) / tau))  # noqa: E731
            runs.append(planted.planted_run(decay, seed, onset=fit + 5_000.0, rnc1=curve, optimizer=optimizer, lr=lr,
                                            steps=steps))
    return runs


def test_tau2_holds_when_rnc1_collapses_slower_than_the_bound():
    result = tau2_lower_bound(collapse_sweep(3.0), **FAST)
    assert result.verdict == "holds" and result.interval[0] >= 1.0
    assert result.statistic == pytest.approx(3.0, rel=0.25)


def test_tau2_fails_when_rnc1_collapses_too_early():
    result = tau2_lower_bound(collapse_sweep(0.3), **FAST)
    assert result.verdict == "fails" and result.interval[1] < 1.0


def test_tau2_not_applicable_to_adamw_unless_asked():
    runs = collapse_sweep(0.3, optimizer="adamw")
    assert tau2_lower_bound(runs, **FAST).verdict == "not_applicable"
    assert tau2_lower_bound(runs, apply_to_adamw=True, **FAST).verdict == "fails"
    assert run_checks(runs, only=["tau2-lower-bound"], apply_to_adamw=True)[0].verdict == "fails"


def test_tau2_uses_runs_where_rnc1_has_not_fallen_as_bounds():
    """RNC1 falls only after 30x the bound's time: on 100k steps most runs have not fallen, but their
    bounds already exceed the theorem's time, so the bound holds; cut at 20k steps the bounds are
    below it at lambda = 0.005 and nothing is decided."""
    long = tau2_lower_bound(collapse_sweep(30.0), **FAST)
    assert long.verdict == "holds" and "0.005: undefined" in long.detail
    short = tau2_lower_bound(collapse_sweep(30.0, steps=planted.STEPS[planted.STEPS <= 20_000]), **FAST)
    assert short.verdict == "inconclusive" and short.interval[1] == np.inf and short.statistic is None


# ---------------------------------------------------------------------------------------------
# r6-scaling


def test_r6_holds_for_slope_minus_one():
    result = r6_scaling(planted.scaling_sweep(slope=-1.0, jitter=0.2), **FAST)
    assert result.verdict == "holds" and result.source.status == "reconstructed"
    assert result.interval[0] <= -1.0 <= result.interval[1] and result.interval[1] < 0
    assert result.statistic == pytest.approx(-1.0, abs=0.15)


def test_r6_fails_for_slope_minus_a_tenth():
    result = r6_scaling(planted.scaling_sweep(slope=-0.1, jitter=0.2), **FAST)
    assert result.verdict == "fails" and result.interval[0] > -1.0
    assert result.statistic == pytest.approx(-0.1, abs=0.1)


def test_r6_inconclusive_with_two_levels():
    assert r6_scaling(planted.scaling_sweep(decays=(0.01, 0.02)), **FAST).verdict == "inconclusive"


def test_r6_leaves_out_a_censored_level_and_says_so():
    runs = [r for r in planted.scaling_sweep(slope=-1.0, jitter=0.2) if r.weight_decay != 0.005]
    runs += [planted.planted_run(0.005, s, onset=150_000.0, width=25_000.0) for s in range(5)]
    result = r6_scaling(runs, **FAST)
    assert result.verdict == "holds"
    assert "1 level(s) with an undefined or zero median left out" in result.detail


def test_copied_seeds_do_not_shrink_the_interval():
    """Five copies of every run (new names and seeds, same curves): merged, so the interval is the
    same to the last bit (same bootstrap seed, same de-duplicated data)."""
    runs = planted.scaling_sweep(slope=-1.0, jitter=0.2)
    copies = [dataclasses.replace(r, name=f"{r.name}_copy{c}", seed=100 * c + r.seed) for r in runs for c in range(5)]
    once, copied = r6_scaling(runs, **FAST), r6_scaling(copies, **FAST)
    assert copied.interval == once.interval and copied.statistic == once.statistic
    assert "100 identical copies of runs merged" in copied.detail
    trend_once, trend_copied = monotone_lambda(runs, **FAST), monotone_lambda(copies, **FAST)
    assert trend_copied.interval == trend_once.interval and trend_copied.extra == trend_once.extra


def test_r6_reports_first_fit_and_last_refit_after_a_collapse():
    """Train accuracy reaches 0.95, collapses at 4k and re-fits 2k steps before the onset: the delay
    from the first fit scales like 1/lambda, the delay from the re-fit is flat. The two disagree, so
    the verdict is inconclusive, and both slopes are reported."""
    rng = np.random.default_rng(6)
    steps = planted.STEPS
    runs = []
    for decay in (0.01, 0.02, 0.04, 0.08):
        for seed in range(4):
            delay = 100.0 * round(400.0 * (0.01 / decay) * np.exp(0.1 * rng.standard_normal()))
            first = float(steps[np.flatnonzero(steps >= 2_000)[0]])
            onset = first + delay
            refit = onset - 2_000.0
            train = np.interp(steps, [0, 1_900, 2_000, 3_500, 4_000, 4_200, refit - 100, refit, steps[-1]],
                              [0.1, 0.85, 0.95, 0.95, 0.45, 0.45, 0.9, 0.995, 1.0])
            runs.append(planted.planted_run(decay, seed, onset=onset, train=train, width=300.0))
    result = r6_scaling(runs, **FAST)
    assert result.verdict == "inconclusive"
    assert result.statistic == pytest.approx(-1.0, abs=0.15)
    assert abs(result.extra["last_refit_slope"]) < 0.05
    assert "from first_fit" in result.detail and "from last_refit" in result.detail


# ---------------------------------------------------------------------------------------------
# nc2-follows-rnc1


def test_nc2_holds_when_it_moves_with_rnc1_and_fails_when_it_opposes():
    follows = nc2_follows_rnc1(planted.scaling_sweep(jitter=0.2), **FAST)
    assert follows.verdict == "holds" and follows.statistic > 0.9
    opposes = nc2_follows_rnc1(planted.scaling_sweep(jitter=0.2, nc2="opposes"), **FAST)
    assert opposes.verdict == "fails" and opposes.statistic < -0.9
    assert nc2_follows_rnc1(planted.scaling_sweep(nc2=None), **FAST).verdict == "not_applicable"


# ---------------------------------------------------------------------------------------------
# one run per level: no interval, so no verdict from the bootstrap

ONE_RUN = "a level with a single run has no replicate, so no interval (one run at lambda"

# claim id: (check, planted runs that hold with `seeds` runs per level, runs that fail; the statistic each
# plants, with a tolerance covering the seed jitter of one run per level)
BOOTSTRAP_CASES = {
    "sync-rnc1-onset": (
        sync_rnc1_onset,
        lambda seeds: planted.scaling_sweep(seeds=seeds, jitter=0.2),
        lambda seeds: planted.scaling_sweep(seeds=seeds, jitter=0.2, rnc1_centre=planted.measured_fit() + 300.0,
                                            rnc1_width=100.0),
        (pytest.approx(0.0, abs=0.5), pytest.approx(-1.0, abs=0.1)),
    ),
    "nc2-follows-rnc1": (
        nc2_follows_rnc1,
        lambda seeds: planted.scaling_sweep(seeds=seeds, jitter=0.2),
        lambda seeds: planted.scaling_sweep(seeds=seeds, jitter=0.2, nc2="opposes"),
        (pytest.approx(1.0, abs=0.01), pytest.approx(-1.0, abs=0.01)),
    ),
    "tau2-lower-bound": (
        tau2_lower_bound,
        lambda seeds: collapse_sweep(3.0, seeds=seeds),
        lambda seeds: collapse_sweep(0.3, seeds=seeds),
        (pytest.approx(3.0, rel=0.3), pytest.approx(0.3, rel=0.3)),
    ),
    "r6-scaling": (
        r6_scaling,
        lambda seeds: planted.scaling_sweep(seeds=seeds, slope=-1.0, jitter=0.2),
        lambda seeds: planted.scaling_sweep(seeds=seeds, slope=-0.1, jitter=0.2),
        (pytest.approx(-1.0, abs=0.3), pytest.approx(-0.1, abs=0.3)),
    ),
}


@pytest.mark.parametrize("planted_verdict", ["holds", "fails"])
@pytest.mark.parametrize("claim_id", BOOTSTRAP_CASES)
def test_one_run_per_level_is_inconclusive_where_two_runs_decide(claim_id, planted_verdict):
    """The same planted law with two runs per level holds (or fails), so the check can decide (an exactly
    planted NC2 gives every run rho = 1, a legitimately zero-width interval from replicates); with one
    run per level resampling within a level returns that run, there is no interval, and the claim is
    inconclusive, its statistic shown as measured (near the planted value) and the levels named."""
    check, holding, failing, planted_statistic = BOOTSTRAP_CASES[claim_id]
    build, expected = (holding, planted_statistic[0]) if planted_verdict == "holds" else (failing, planted_statistic[1])
    replicated = check(build(2), **FAST)
    assert replicated.verdict == planted_verdict and replicated.interval[0] <= replicated.interval[1]
    single = check(build(1), **FAST)
    assert single.verdict == "inconclusive" and single.interval is None
    assert single.statistic == expected
    levels = (0.005, 0.01, 0.02, 0.04) if claim_id == "tau2-lower-bound" else planted.DECAYS
    assert f"{ONE_RUN} {', '.join(f'{d:g}' for d in levels)})" in single.detail


@pytest.mark.parametrize("claim_id", BOOTSTRAP_CASES)
def test_copied_seeds_of_one_run_still_count_as_one_run(claim_id):
    """Two copies of each run of a one-run-per-level sweep (new names and seeds, same curves) are merged:
    still one run per level, still no interval."""
    check, _, failing, _ = BOOTSTRAP_CASES[claim_id]
    runs = failing(1)
    result = check(planted.copies(runs, times=2), **FAST)
    assert result.verdict == "inconclusive" and result.interval is None and ONE_RUN in result.detail
    assert f"{2 * len(runs)} identical copies of runs merged" in result.detail


def test_a_single_unreplicated_level_is_enough_to_withhold_the_interval():
    runs = [r for r in planted.scaling_sweep(seeds=2, jitter=0.2, nc2="opposes") if (r.weight_decay, r.seed) != (0.02, 1)]
    result = nc2_follows_rnc1(runs, **FAST)
    assert result.verdict == "inconclusive" and result.interval is None
    assert f"{ONE_RUN} 0.02)" in result.detail


def test_monotone_lambda_with_one_run_per_level_keeps_its_permutation_verdict_without_an_interval():
    """The trend test permutes level labels over all runs, so one run per level is a valid test: a
    perfectly ordered sweep of n levels has exact p = 1/n! (one of n! equally likely orders under the
    null). The verdict stands, the concordance's within-level interval is withheld. Five ordered levels
    hold (1/120 < 0.05) but an increase on five cannot fail (1/120 > Bonferroni 0.05/10); on six it
    does (1/720 < 0.05/12); three levels cannot hold (1/6). Jitter 0.02 cannot reorder levels whose
    delays differ by a factor 2 (slope -1) or sqrt(2) (slope 0.5)."""
    down = monotone_lambda(planted.scaling_sweep(seeds=1, slope=-1.0, jitter=0.02), **FAST)
    assert down.verdict == "holds" and down.interval is None and down.statistic == 1.0
    assert down.extra["p_values"] == {"onset": pytest.approx(1 / 120), "delay": pytest.approx(1 / 120)}
    assert f"{ONE_RUN} 0.005, 0.01, 0.02, 0.04, 0.08)" in down.detail
    up = monotone_lambda(planted.scaling_sweep(seeds=1, slope=0.5, jitter=0.02), **FAST)
    assert up.verdict == "inconclusive" and up.interval is None and up.statistic == -1.0
    six = monotone_lambda(planted.scaling_sweep(seeds=1, slope=0.5, jitter=0.02, decays=planted.DECAYS + (0.16,)), **FAST)
    assert six.verdict == "fails" and six.interval is None
    three = monotone_lambda(planted.scaling_sweep(seeds=1, jitter=0.02, decays=(0.01, 0.02, 0.04)), **FAST)
    assert three.verdict == "inconclusive" and three.extra["p_values"]["onset"] == pytest.approx(1 / 6)
    two = monotone_lambda(planted.scaling_sweep(seeds=2, slope=-1.0, jitter=0.02), **FAST)
    # two runs per level: the interval is made (every resample of these ordered runs is ordered: [1, 1])
    assert two.verdict == "holds" and two.interval == (1.0, 1.0) and ONE_RUN not in two.detail


# ---------------------------------------------------------------------------------------------
# runner


def test_runner_validates_ids_and_prints_one_line_per_claim():
    runs = planted.scaling_sweep(decays=(0.01, 0.02, 0.04), seeds=3)
    with pytest.raises(ValueError, match="only: unknown claim id"):
        run_checks(runs, only=["no-such-claim"])
    results = run_checks(runs, only=["r6-scaling", "monotone-lambda"])
    assert [r.id for r in results] == [i for i in CHECKS if i in ("r6-scaling", "monotone-lambda")]
    lines = ledger_lines(results)
    assert len(lines) == 2 and all(r.verdict in line and str(r.source) in line for r, line in zip(results, lines))
    claims = ledger_json(results)["claims"]
    assert {"id", "verdict", "statistic", "interval", "criterion", "source", "detail"} <= set(claims[0])
    assert all(c["verdict"] in VERDICTS for c in claims)
