"""Claims about when grokking happens across a weight-decay sweep (issue 12).

* ``monotone-lambda`` (paper text, Sec. 5.1 / Fig. 3): stronger weight decay makes grokking earlier
  and narrows the gap between fitting and generalisation.
* ``sync-rnc1-onset`` (paper text, Sec. 5.1 / Fig. 3): the decrease of RNC1 is synchronised with the
  emergence of grokking, not with fitting the training set.
* ``r6-scaling`` (our reconstruction R6, not the paper's claim): the delay after the fit scales like
  ``1/lambda`` (slope ``-1`` of ``log(delay)`` on ``log(lambda)``).

Every check reads runs through :mod:`ledger.replicates` (lambda levels of one learning rate, copies
merged, onsets censored at the last log), uses the level as the unit of replication
(:mod:`ledger.stats`), and states its criterion before looking at the data. Bootstrap intervals are
reproducible (``seed``) percentile intervals from ``resamples`` within-level resamples, made only when
every level entering the statistic has at least two runs (``ledger.stats`` module docstring): with a
level of one run ``sync-rnc1-onset`` and ``r6-scaling`` are ``inconclusive`` with no interval, and
``monotone-lambda`` gives no interval but keeps the verdict of its permutation test (its docstring).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ncgrok.empirical.ledger.core import ClaimResult, RunCurves, Source
from ncgrok.empirical.ledger.replicates import RunEvents, Sweep, level_values, sweep_levels
from ncgrok.empirical.ledger.stats import (
    ReplicateTable,
    bootstrap_levels,
    censored_median,
    concordance_of_members,
    jonckheere_terpstra,
    loglog_level_slope,
    pair_scores,
)
from ncgrok.empirical.ledger.verdicts import fmt, levels_text, pooled_band_claim, unreplicated_reason

__all__ = ["monotone_lambda", "sync_rnc1_onset", "r6_scaling", "MIN_LEVELS"]

MIN_LEVELS = 3
PAPER_ONSET = Source("Sec. 5.1, Fig. 3", "paper-text")


# ---------------------------------------------------------------------------------------------
# monotone-lambda


def monotone_lambda(
    runs: Sequence[RunCurves], *, alpha: float = 0.05, resamples: int = 2000, seed: int = 0
) -> ClaimResult:
    """``monotone-lambda``: onset and delay (from the fit) decrease with the weight decay.

    Jonckheere-Terpstra trend tests over the lambda levels with seeds as replicates; censored onsets
    enter as lower bounds (Gehan scores). The statistic is the weaker of the two concordances (1: every
    run at a larger lambda is earlier than every run at a smaller one), with a within-level bootstrap
    interval. A significant increase (overall, or between adjacent levels) makes it fail.

    A level with a single run: the concordance's interval resamples runs within levels, so it is not
    made (``interval`` is ``None``, the detail names the levels). The verdict stands: it comes from the
    Jonckheere-Terpstra test, whose null distribution permutes the level labels over all runs (under
    "lambda has no effect" every run is exchangeable with every other, whatever the number per level),
    not from resampling within a level. Its smallest attainable p-value is ``1 / #assignments`` (``1/n!``
    with one run at each of ``n`` levels), so few unreplicated levels cannot reach a verdict: ``holds``
    needs four (``1/24 < 0.05``), and ``fails``, at the Bonferroni level ``alpha / (2 n)`` of its ``2 n``
    increase tests, six.
    """
    sweep = sweep_levels(runs)
    claim = "Stronger weight decay brings the grokking onset earlier and shortens the delay after the fit."
    criterion = (
        f"holds: one-sided Jonckheere-Terpstra p < {alpha:g} for onset and for delay decreasing in lambda, "
        f"seeds as replicates, >= {MIN_LEVELS} levels; fails: a significant increase of onset or delay, overall "
        "or between adjacent levels (one-sided, Bonferroni over these tests); otherwise inconclusive"
    )
    quantities = {"onset": level_values(sweep.levels, RunEvents.onset_value),
                  "delay": level_values(sweep.levels, RunEvents.delay_value)}
    sets, decays, missing = quantities["onset"]
    head = f"{sweep.note()}; {missing} run(s) without a fit left out"
    if len(sets) < MIN_LEVELS:
        return ClaimResult("monotone-lambda", claim, PAPER_ONSET, criterion, "inconclusive",
                           detail=f"{head}; {len(sets)} level(s) with onsets, need {MIN_LEVELS}")
    # a run with an onset has a delay from its fit (the onset is never before the fit): same runs, same levels
    assert [s.size for s in quantities["delay"][0]] == [s.size for s in sets]
    decreasing, increase_tests, scores = {}, [], []
    for name, (values, _, _) in quantities.items():
        decreasing[name] = jonckheere_terpstra(values, seed=seed)
        increase_tests.append((f"{name} overall", decreasing[name].p_value_opposite))
        for i in range(len(values) - 1):
            pair = jonckheere_terpstra(values[i : i + 2])
            increase_tests.append((f"{name} {decays[i]:g} -> {decays[i + 1]:g}", pair.p_value_opposite))
        scores.append(pair_scores(np.concatenate([v.values for v in values]), np.concatenate([v.censored for v in values])))
    threshold = alpha / len(increase_tests)
    increases = [f"{label} (p = {p:.3g})" for label, p in increase_tests if p < threshold]

    # bootstrap of the weaker concordance: runs resampled within levels, their pair scores reused
    sizes = np.cumsum([0] + [s.size for s in sets])
    members = [ReplicateTable(np.arange(sizes[i], sizes[i + 1])) for i in range(len(sets))]

    def weaker_trend(drawn: list[ReplicateTable]) -> float:
        return min(concordance_of_members(matrix, [level.rows for level in drawn]) for matrix in scores)

    reason = unreplicated_reason(decays, sets)
    interval = None if reason else bootstrap_levels(members, weaker_trend, resamples=resamples, seed=seed)
    if increases:
        verdict = "fails"
    elif all(test.p_value < alpha for test in decreasing.values()):
        verdict = "holds"
    else:
        verdict = "inconclusive"
    tests = "; ".join(
        f"{name}: JT p = {test.p_value:.3g} ({test.method}), concordance {test.concordance:.3f}, "
        f"level medians {levels_text(decays, [censored_median(s) for s in quantities[name][0]])}"
        for name, test in decreasing.items()
    )
    detail = f"{head}; {tests}; significant increases (Bonferroni level {threshold:.3g}): {', '.join(increases) or 'none'}"
    if reason:
        detail += f"; {reason} (the verdict is the permutation test's, which needs no replicate within a level)"
    return ClaimResult("monotone-lambda", claim, PAPER_ONSET, criterion, verdict,
                       statistic=min(t.concordance for t in decreasing.values()),
                       interval=None if interval is None else (interval.low, interval.high), detail=detail,
                       extra={"p_values": {name: t.p_value for name, t in decreasing.items()}})


# ---------------------------------------------------------------------------------------------
# sync-rnc1-onset


def _relative_lag(run: RunEvents) -> tuple[float, bool] | None:
    """``(t_drop - t_onset) / (t_onset - t_fit)`` from the last re-fit: 0 when RNC1 falls at the onset,
    -1 when it falls at the fit; censored when RNC1 had not fallen by the last log."""
    fit = run.fit_event("last_refit")
    if run.onset.status != "grokked" or run.rnc1_drop is None or fit is None or run.onset.onset_step <= fit:
        return None
    onset = float(run.onset.onset_step)
    drop, censored = run.rnc1_drop
    return (drop - onset) / (onset - fit), censored


def sync_rnc1_onset(
    runs: Sequence[RunCurves], *, band: float = 0.5, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> ClaimResult:
    """``sync-rnc1-onset``: RNC1's drop is nearer the grokking onset than the fit.

    Per grokked run, the relative lag ``r = (t_drop - t_onset) / (t_onset - t_fit)`` (the lag between
    the RNC1 drop and the onset in units of the lag between the fit and the onset); pooled as the mean
    over lambda levels of the per-level Kaplan-Meier median (seeds nested in levels); its interval
    resamples runs within levels, so a level with a single run makes it ``inconclusive`` with no interval.
    """
    claim = "The decrease of RNC1 is synchronised with the rise of test accuracy, not with fitting the training set."
    criterion = (
        f"holds: the {confidence:.0%} interval of the pooled relative lag (RNC1 drop - onset) / (onset - fit) lies "
        f"inside (-{band:g}, {band:g}); fails: it lies entirely outside; otherwise inconclusive"
    )
    if not any(run.has("rnc1") for run in runs):
        return ClaimResult("sync-rnc1-onset", claim, PAPER_ONSET, criterion, "not_applicable",
                           detail="no run has an rnc1 column")
    sweep = sweep_levels(runs)
    sets, decays, missing = level_values(sweep.levels, _relative_lag)
    head = f"{sweep.note()}; {missing} run(s) not grokked or without an RNC1 reference left out"
    if sum(s.size for s in sets) < 3:
        return ClaimResult("sync-rnc1-onset", claim, PAPER_ONSET, criterion, "inconclusive",
                           detail=f"{head}; fewer than 3 grokked runs with RNC1")
    return pooled_band_claim("sync-rnc1-onset", claim, PAPER_ONSET, criterion, sets, decays, head,
                           band=(-band, band), resamples=resamples, confidence=confidence, seed=seed)


# ---------------------------------------------------------------------------------------------
# r6-scaling


def _slope_verdict(low: float, high: float) -> str:
    """-1 inside the interval and 0 outside: holds; -1 outside: fails; both inside: inconclusive."""
    if not low <= -1.0 <= high:
        return "fails"
    return "inconclusive" if low <= 0.0 <= high else "holds"


def _delay_slope(sweep: Sweep, event: str, *, resamples: int, confidence: float, seed: int) -> dict:
    sets, decays, missing = level_values(sweep.positive_levels(), lambda run: run.delay_value(event))
    medians = [censored_median(s) for s in sets]
    usable = [(d, s) for d, s, m in zip(decays, sets, medians) if m is not None and m > 0]
    out = {"event": event, "missing": missing, "levels": levels_text(decays, medians),
           "dropped": len(sets) - len(usable), "slope": None, "interval": None, "verdict": "inconclusive",
           "unreplicated": ""}
    if len(usable) < MIN_LEVELS:
        return out
    used = [d for d, _ in usable]
    out["slope"] = loglog_level_slope(used, [censored_median(s) for _, s in usable])
    out["unreplicated"] = unreplicated_reason(used, [s for _, s in usable])
    if out["unreplicated"]:
        return out
    interval = bootstrap_levels(
        [s for _, s in usable], lambda drawn: loglog_level_slope(used, [censored_median(s) for s in drawn]),
        resamples=resamples, confidence=confidence, seed=seed,
    )
    out["interval"] = (interval.low, interval.high)
    out["verdict"] = _slope_verdict(interval.low, interval.high)
    out["undefined"] = interval.undefined
    return out


def r6_scaling(
    runs: Sequence[RunCurves], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> ClaimResult:
    """``r6-scaling`` (reconstructed): slope of log(level median delay) on log(lambda).

    The delay is measured from the first fit and, separately, from the last re-fit; each level's
    delay is its Kaplan-Meier median (censored runs as lower bounds); levels whose median is undefined
    (censoring) or zero are left out and counted; the interval resamples seeds within levels.

    The slope is fitted over levels, but its uncertainty here is the seed-to-seed spread of each level's
    median (the levels are fixed design points, not resampled), so the within-level rule applies: when
    a level entering the fit has a single run there is no interval, that event's verdict is
    ``inconclusive`` and the slope is shown as measured. (An interval from the scatter of the level
    medians about the fitted line would need no replicate, but it is another statistic: it mixes seed
    noise with departures from a power law, rests on as few as three points, and is not the interval
    the criterion was fixed on; it is not substituted.)
    """
    source = Source("R6, reconstructed from Thm. 4.3's 1/(eta lambda) time scale; not a claim of the paper",
                    "reconstructed")
    claim = "The delay between fit and grokking onset scales like 1/lambda (log-log slope -1)."
    criterion = (
        f"per fit event (first fit, last re-fit): holds if the {confidence:.0%} interval of the slope over lambda "
        f"levels contains -1 and excludes 0, fails if it excludes -1, inconclusive otherwise or with < {MIN_LEVELS} "
        "levels; the verdict is the common one of the two events, else inconclusive"
    )
    sweep = sweep_levels(runs)
    fits = [_delay_slope(sweep, event, resamples=resamples, confidence=confidence, seed=seed)
            for event in ("first_fit", "last_refit")]
    verdicts = {fit["verdict"] for fit in fits}
    verdict = verdicts.pop() if len(verdicts) == 1 else "inconclusive"
    parts = []
    for fit in fits:
        interval = "none" if fit["interval"] is None else f"[{fmt(fit['interval'][0])}, {fmt(fit['interval'][1])}]"
        unreplicated = f"{fit['unreplicated']}; " if fit["unreplicated"] else ""
        parts.append(f"from {fit['event']}: slope {fmt(fit['slope'])} {interval} ({fit['verdict']}); {unreplicated}"
                     f"level medians {fit['levels']}; {fit['dropped']} level(s) with an undefined or zero median "
                     f"left out; {fit['missing']} run(s) without a delay")
    first = fits[0]
    return ClaimResult("r6-scaling", claim, source, criterion, verdict, statistic=first["slope"],
                       interval=first["interval"], detail=f"{sweep.note()}; " + "; ".join(parts),
                       extra={"last_refit_slope": fits[1]["slope"], "last_refit_interval": fits[1]["interval"]})
