"""Claims that belong to one experiment of the paper rather than to every sweep (``ncgrok reproduce``).

``ncgrok verify`` runs the general ledger (``ledger.CHECKS``) on any runs. The checks here state what a
particular figure or publication reports, so they are registered by the presets that reproduce it
(``empirical.presets``) and never run by default: "no grokking gap" is the expected outcome of the
CNN of Fig. 7, not a property every sweep should have.

* ``no-gap`` / ``grokking-gap`` (the two directions of one statistic): the ratio of test accuracy at
  the fit (first logged step with training accuracy >= the fit threshold) to the final test accuracy.
  A run that generalises as it fits has a ratio near 1; a grokking run, near chance over final.
* ``rnc1-falls-after-fit``: RNC1 keeps contracting after the training set is fitted (log ratio of the
  last logged RNC1 to RNC1 at the fit).
* ``nc1-tracks-test-better``: over the logged steps, NC1 follows test accuracy more closely than RNC1
  (difference of the Spearman correlations of ``-NC1`` and ``-RNC1`` with test accuracy).
* ``earlier-with-more-data``: two sweeps that differ only in training-set size; the test accuracy of the
  larger one rises earlier: log ratio of the first steps at which each run of a pair (same weight decay
  and seed) reaches a common test-accuracy level, censoring respected. (A first version compared grokking
  onsets; a run that generalises as it fits has its fit step as onset, which is not when its test
  accuracy rose, so it measured the wrong event.)
* ``population-collapse``: on a finite task (modular arithmetic) the exact population within-class
  variance, evaluated on every input, falls after the fit.
* ``pair-margin-separation``: for one class pair (Figs. 2 and 5), the fraction of unseen examples on
  their own side of the pair's last-layer boundary rises from the early to the late snapshot.

Every statistic is a per-run value; runs are replicates nested in weight-decay levels (seeds within a
level are not independent levels), so intervals are within-level bootstrap percentile intervals
(:func:`ledger.stats.bootstrap_levels`) of the mean over levels of the level means, judged through
:func:`ledger.verdicts.bootstrap_claim`: a level with a single run gives no interval and the claim is
``inconclusive`` with its statistic shown (the ledger's one rule for every bootstrap-based claim).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from ncgrok.empirical.ledger.core import ClaimResult, RunCurves, Source
from ncgrok.empirical.ledger.replicates import sweep_levels
from ncgrok.empirical.ledger.stats import Censored, rank_correlation
from ncgrok.empirical.ledger.verdicts import bootstrap_claim, fmt, levels_text
from ncgrok.empirical.onset import FIT_THRESHOLD, first_fit_step

__all__ = [
    "test_accuracy_ratio_at_fit",
    "no_gap",
    "grokking_gap",
    "rnc1_falls_after_fit",
    "nc1_tracks_test_better",
    "earlier_with_more_data",
    "pair_margin_separation",
    "population_collapse",
]

NO_GAP_RATIO = 0.9
GAP_RATIO = 0.5
MIN_RISE = 0.05  # a test-accuracy rise smaller than this (as empirical.onset's MIN_GAIN) is not timed


def _mean_of_level_means(levels: Sequence[Censored]) -> float | None:
    if not levels or any(level.size == 0 for level in levels):
        return None
    return float(np.mean([level.values.mean() for level in levels]))


def _per_level(runs: Sequence[RunCurves], value: Callable[[RunCurves], float | None],
               decays: Sequence[float] | None = None) -> tuple[list[Censored], list[float], int]:
    """``value`` of each run grouped by weight decay (the most common learning rate's runs, copies
    merged, as ``ledger.replicates.sweep_levels``); the number of runs without a value."""
    sweep = sweep_levels(runs)
    sets, kept_decays, missing = [], [], 0
    for level in sweep.levels:
        if decays is not None and not any(math.isclose(level.weight_decay, d, rel_tol=1e-9) for d in decays):
            continue
        values = [value(events.run) for events in level.runs]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        missing += len(values) - len(finite)
        if finite:
            sets.append(Censored.of(finite))
            kept_decays.append(level.weight_decay)
    return sets, kept_decays, missing


def _sign_verdict(low: float, high: float, *, threshold: float, holds_above: bool) -> str:
    """``holds`` when the interval lies on the claimed side of ``threshold``, ``fails`` when it lies
    entirely on the other side (or touches it from there), else ``inconclusive``."""
    above, below = low > threshold, high < threshold
    if holds_above:
        return "holds" if above else "fails" if high <= threshold else "inconclusive"
    return "holds" if below else "fails" if low >= threshold else "inconclusive"


def _result(claim_id: str, claim: str, source: Source, criterion: str, sets: list[Censored], decays: list[float],
            missing: int, what: str, *, threshold: float, holds_above: bool, resamples: int, seed: int) -> ClaimResult:
    if not sets:
        return ClaimResult(claim_id, claim, source, criterion, "inconclusive",
                           detail=f"no run has a value ({missing} run(s) without one: {what})")
    means = [float(s.values.mean()) for s in sets]
    detail = (f"{what}; level means {levels_text(decays, means)}; runs per level "
              f"{[s.size for s in sets]}" + (f"; {missing} run(s) without a value left out" if missing else ""))
    return bootstrap_claim(claim_id, claim, source, criterion, sets, decays, detail, statistic=_mean_of_level_means,
                           verdict_of=lambda low, high: _sign_verdict(low, high, threshold=threshold,
                                                                      holds_above=holds_above),
                           resamples=resamples, confidence=0.95, seed=seed)


# ---------------------------------------------------------------------------------------------
# the generalisation gap at the fit


def test_accuracy_ratio_at_fit(run: RunCurves, *, fit_threshold: float = FIT_THRESHOLD) -> float | None:
    """Test accuracy at the first logged step with training accuracy >= ``fit_threshold``, divided by
    the last logged test accuracy; ``None`` when the run never fits or ends at zero test accuracy."""
    if not run.has("train_acc", "test_acc"):
        return None
    steps, train, test = run["step"], run["train_acc"], run["test_acc"]
    fit = first_fit_step(steps, train, threshold=fit_threshold)
    if fit is None:
        return None
    final = test[np.isfinite(test)][-1]
    at_fit = test[int(np.flatnonzero(steps == fit)[0])]
    if not (final > 0 and math.isfinite(at_fit)):
        return None
    return float(at_fit / final)


def _gap_claim(runs: Sequence[RunCurves], claim_id: str, claim: str, *, source: Source, ratio: float, holds_above: bool,
               resamples: int, seed: int) -> ClaimResult:
    """The two directions of the test-accuracy ratio at the fit (:func:`test_accuracy_ratio_at_fit`)."""
    sets, decays, missing = _per_level(runs, test_accuracy_ratio_at_fit)
    side, other = ("above", "at or below") if holds_above else ("below", "at or above")
    criterion = (f"holds: the 95% within-level bootstrap interval of the mean (over lambda levels) test-accuracy ratio "
                 f"(at the fit / final) lies {side} {ratio:g}; fails: it lies {other} {ratio:g}")
    return _result(claim_id, claim, source, criterion, sets, decays, missing,
                   "ratio = test accuracy at the fit / final test accuracy", threshold=ratio, holds_above=holds_above,
                   resamples=resamples, seed=seed)


def no_gap(runs: Sequence[RunCurves], *, source: Source, ratio: float = NO_GAP_RATIO, resamples: int = 2000,
           seed: int = 0) -> ClaimResult:
    """``no-gap``: test accuracy rises with training accuracy (no grokking delay)."""
    return _gap_claim(runs, "no-gap", "Test accuracy rises together with the fit of the training set: no grokking gap.",
                      source=source, ratio=ratio, holds_above=True, resamples=resamples, seed=seed)


def grokking_gap(runs: Sequence[RunCurves], *, source: Source, ratio: float = GAP_RATIO, resamples: int = 2000,
                 seed: int = 0) -> ClaimResult:
    """``grokking-gap``: at the fit, test accuracy is still far below where it ends (grokking)."""
    return _gap_claim(runs, "grokking-gap",
                      "The training set is fitted long before the test accuracy rises (a grokking gap).",
                      source=source, ratio=ratio, holds_above=False, resamples=resamples, seed=seed)


# ---------------------------------------------------------------------------------------------
# collapse after the fit, and which collapse measure tracks the test accuracy


def _log_ratio_after_fit(run: RunCurves, column: str, fit_threshold: float = FIT_THRESHOLD) -> float | None:
    """``log(column at the last log / column at the fit)``; ``None`` if the run never fits or a value is not positive."""
    if not run.has("train_acc", column):
        return None
    steps, values = run["step"], run[column]
    fit = first_fit_step(steps, run["train_acc"], threshold=fit_threshold)
    if fit is None:
        return None
    at_fit = values[int(np.flatnonzero(steps == fit)[0])]
    last = values[np.isfinite(values)][-1]
    if not (at_fit > 0 and last > 0):
        return None
    return float(math.log(last / at_fit))


def rnc1_falls_after_fit(runs: Sequence[RunCurves], *, source: Source, decays: Sequence[float] | None = None,
                         resamples: int = 2000, seed: int = 0) -> ClaimResult:
    """``rnc1-falls-after-fit``: training RNC1 keeps falling after the fit (at ``decays``, default all)."""
    sets, kept, missing = _per_level(runs, lambda run: _log_ratio_after_fit(run, "rnc1"), decays)
    where = "" if decays is None else f" at lambda {', '.join(f'{d:g}' for d in decays)}"
    criterion = ("holds: the 95% within-level bootstrap interval of the mean log(RNC1 last / RNC1 at the fit) lies "
                 "below 0; fails: it lies at or above 0")
    return _result("rnc1-falls-after-fit", f"RNC1 keeps decreasing after the training set is fitted{where}.", source,
                   criterion, sets, kept, missing, "log(RNC1 at the last log / RNC1 at the fit)",
                   threshold=0.0, holds_above=False, resamples=resamples, seed=seed)


def _tracking_difference(run: RunCurves) -> float | None:
    if not run.has("test_acc", "nc1", "rnc1"):
        return None
    test = run["test_acc"]
    nc1 = rank_correlation(-run["nc1"], test)
    rnc1 = rank_correlation(-run["rnc1"], test)
    if nc1 is None or rnc1 is None:
        return None
    return nc1 - rnc1


def nc1_tracks_test_better(runs: Sequence[RunCurves], *, source: Source, resamples: int = 2000,
                           seed: int = 0) -> ClaimResult:
    """``nc1-tracks-test-better``: NC1 follows test accuracy over training more closely than RNC1."""
    sets, decays, missing = _per_level(runs, _tracking_difference)
    criterion = ("holds: the 95% within-level bootstrap interval of the mean of rho(-NC1, test acc) - rho(-RNC1, "
                 "test acc) (Spearman over logged steps) lies above 0; fails: it lies at or below 0")
    return _result("nc1-tracks-test-better", "NC1 tracks the test accuracy better than RNC1 does.", source, criterion,
                   sets, decays, missing, "Spearman rho(-NC1, test acc) - rho(-RNC1, test acc) per run",
                   threshold=0.0, holds_above=True, resamples=resamples, seed=seed)


# ---------------------------------------------------------------------------------------------
# two training-set sizes


def _common_level_crossings(small: RunCurves, large: RunCurves, final_points: int = 5) -> list[tuple[float, bool]] | None:
    """For a pair of runs, the first logged step at which each run's test accuracy reaches the level half-way
    between their mean first logged test accuracy and the smaller of their final accuracies (median of the
    last ``final_points`` logs): ``(step, False)``, or ``(last step, True)`` (censored) when it never does;
    ``None`` when that rise is below :data:`MIN_RISE`."""
    if not (small.has("test_acc") and large.has("test_acc")):
        return None
    curves = [(run["step"], run["test_acc"]) for run in (small, large)]
    start = float(np.mean([acc[np.isfinite(acc)][0] for _, acc in curves]))
    final = min(float(np.median(acc[np.isfinite(acc)][-final_points:])) for _, acc in curves)
    if not final >= start + MIN_RISE:
        return None  # no rise to time
    level = start + 0.5 * (final - start)
    crossings = []
    for steps, acc in curves:
        reached = np.flatnonzero(acc >= level)
        crossings.append((float(steps[reached[0]]), False) if reached.size else (float(steps[-1]), True))
    return crossings


def _paired_log_ratios(small: Sequence[RunCurves], large: Sequence[RunCurves]) -> tuple[dict[float, list[float]], int]:
    """Per weight decay, ``log(t_large / t_small)`` of the runs paired by seed, ``t`` the common-level
    crossing of :func:`_common_level_crossings`. A censored crossing is a lower bound: the pair counts only
    when the order is still known (the censored run is the later one), with its bound."""
    def runs_by_key(runs):
        return {(events.run.weight_decay, events.run.seed): events.run
                for level in sweep_levels(runs).levels for events in level.runs}

    a, b = runs_by_key(small), runs_by_key(large)
    ratios: dict[float, list[float]] = {}
    dropped = 0
    for key in sorted(set(a) & set(b)):
        crossings = _common_level_crossings(a[key], b[key])
        if crossings is None or min(v for v, _ in crossings) <= 0:
            dropped += 1
            continue
        (first, first_censored), (second, second_censored) = crossings
        value = math.log(second / first)
        if (first_censored and second_censored) or (second_censored and value < 0) or (first_censored and value > 0):
            dropped += 1  # the bounds do not settle which run is earlier
            continue
        ratios.setdefault(key[0], []).append(value)
    return ratios, dropped + len(set(a) ^ set(b))


def earlier_with_more_data(small: Sequence[RunCurves], large: Sequence[RunCurves], *, source: Source,
                           sizes: tuple[int, int], resamples: int = 2000, seed: int = 0) -> ClaimResult:
    """``earlier-with-more-data``: the sweep trained on ``sizes[1]`` examples groks earlier than the one
    on ``sizes[0]`` (runs paired by weight decay and seed)."""
    ratios, dropped = _paired_log_ratios(small, large)
    decays = sorted(ratios)
    sets = [Censored.of(ratios[d]) for d in decays]
    criterion = (f"holds: the 95% within-level bootstrap interval of the mean log(t n={sizes[1]} / t n={sizes[0]}) lies "
                 "below 0, t the first logged step at which test accuracy reaches half-way from its start to the pair's "
                 "smaller final value (pairs by weight decay and seed); fails: it lies at or above 0")
    return _result("earlier-with-more-data",
                   f"With {sizes[1]} training examples the test accuracy rises earlier than with {sizes[0]}.",
                   source, criterion, sets, decays, dropped,
                   "log ratio of the common-level crossing steps per (lambda, seed) pair; unpaired, flat or undecidable "
                   "censored pairs left out",
                   threshold=0.0, holds_above=False, resamples=resamples, seed=seed)


# ---------------------------------------------------------------------------------------------
# a class pair's margins (Figs. 2 and 5)


def pair_margin_separation(margins: Sequence, *, source: Source) -> ClaimResult:
    """``pair-margin-separation``: for each :class:`empirical.margins.MarginData` (one run and class pair,
    snapshots early and late), the fraction of the pair's unseen examples on their own side of the
    boundary rises from the first to the last snapshot. Statistic: the smallest rise over the runs and
    pairs given (every one must rise)."""
    criterion = ("holds: the own-side fraction of the pair's unseen examples rises from the early to the late "
                 "snapshot by more than 0.05 in every run and pair; fails: it does not rise (<= 0) in at least one")
    claim = "After grokking the unseen examples of a class pair are separated by the pair's boundary, as the training examples are."
    rises, parts = [], []
    for data in margins:
        early, late = data.steps[0], data.steps[-1]
        fraction = {}
        for step in (early, late):
            first, second = (data.get(step, "unseen", c) for c in data.classes)
            fraction[step] = float(np.concatenate([first > 0, second < 0]).mean())
        rises.append(fraction[late] - fraction[early])
        parts.append(f"{data.run_name} classes {data.classes[0]}/{data.classes[1]}: {fmt(fraction[early])} at step "
                     f"{early} -> {fmt(fraction[late])} at step {late}")
    if not rises:
        return ClaimResult("pair-margin-separation", claim, source, criterion, "not_applicable",
                           detail="no run has two model snapshots")
    smallest = min(rises)
    verdict = "holds" if smallest > 0.05 else "fails" if smallest <= 0 else "inconclusive"
    return ClaimResult("pair-margin-separation", claim, source, criterion, verdict, statistic=smallest,
                       detail="; ".join(parts))


# ---------------------------------------------------------------------------------------------
# the exact population of a finite task (modular arithmetic)


def _transfer_gaps(runs: Sequence[RunCurves], fit_threshold: float = FIT_THRESHOLD) -> str:
    """The exact gap population_within_var - rnc1 (same scale) at the fit and at the last log, per run."""
    parts = []
    for run in runs:
        if not run.has("train_acc", "population_within_var", "rnc1"):
            continue
        steps = run["step"]
        fit = first_fit_step(steps, run["train_acc"], threshold=fit_threshold)
        if fit is None:
            continue
        i = int(np.flatnonzero(steps == fit)[0])
        gap = run["population_within_var"] - run["rnc1"]
        parts.append(f"{run.name}: {fmt(gap[i])} at the fit, {fmt(gap[-1])} at step {steps[-1]:.0f}")
    return "; ".join(parts)


def population_collapse(runs: Sequence[RunCurves], *, source: Source, resamples: int = 2000,
                        seed: int = 0) -> ClaimResult:
    """``population-collapse``: the *exact* population within-class variance (every input of a finite
    task evaluated, nothing estimated) falls after the fit. On such a task this is the quantity the
    paper's argument is about (training collapse transferring to the population, Thm. 4.1), measured
    without sampling error; the exact gap to the training RNC1 is reported in the detail."""
    sets, decays, missing = _per_level(runs, lambda run: _log_ratio_after_fit(run, "population_within_var"))
    criterion = ("holds: the 95% within-level bootstrap interval of the mean log(V_pop last / V_pop at the fit) lies "
                 "below 0; fails: it lies at or above 0 (V_pop: exact population within-class variance, "
                 "population_within_var)")
    result = _result("population-collapse",
                     "The exact population within-class variance contracts after the fit (training collapse transfers).",
                     source, criterion, sets, decays, missing, "log(V_pop at the last log / V_pop at the fit)",
                     threshold=0.0, holds_above=False, resamples=resamples, seed=seed)
    gaps = _transfer_gaps(runs)
    if not gaps:
        return result
    return replace(result, detail=f"{result.detail}; exact gap V_pop - RNC1: {gaps}")
