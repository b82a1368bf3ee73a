"""Ledger checks of the paper's bounds: Thm. 3.2 (``r1-cantelli``), Thm. 3.4 with Fig. 4
(``r2-ib-compression``) and Thm. 4.1 (``r4-transfer``).

Each check reads the ``metrics.csv`` columns written by :mod:`ncgrok.empirical.measure` (through
:class:`RunCurves`), gives every run its own verdict, and combines them by one rule:

* runs lacking the columns, or whose data do not meet the claim's premise (e.g. no training collapse
  for a claim about what a collapse implies), are ``not_applicable`` and listed with the reason;
  when every run is, so is the claim;
* one run that ``fails`` makes the claim fail: each is a statement about every network, and the
  per-run criteria leave a margin (an ``inconclusive`` zone) between holding and failing;
* ``holds`` when every run that tested the claim holds (runs where a bound was vacuous are
  reported, not counted); ``vacuous`` when every measured run was; otherwise ``inconclusive``;
* the statistic is the median of the per-run statistic and the interval its range (minimum,
  maximum) over the runs that tested the claim. The range does not shrink when seeds are copies.

Times: the *fit* is the first logged step with train accuracy at or above ``fit_threshold``
(:func:`ncgrok.empirical.onset.first_fit_step`); "after the fit" means the logged steps from it on; the
*end* value of a curve is the median of its last ``end_points`` finite logged values. Every threshold
is a field of :class:`BoundCriteria`, fixed before the data are read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
from scipy.stats import spearmanr

from ncgrok.empirical.ledger.core import VERDICTS, ClaimResult, RunCurves, Source
from ncgrok.empirical.onset import first_fit_step, grokking_onset

__all__ = [
    "BoundCriteria",
    "RunOutcome",
    "CANTELLI_FORMS",
    "wilson_lower",
    "r1_cantelli",
    "r2_ib_compression",
    "r4_transfer",
    "BOUND_CHECKS",
]


@dataclass(frozen=True)
class BoundCriteria:
    """Every threshold of the three checks (defaults are the ledger's pre-stated criteria).

    ``fit_threshold``: train accuracy that marks the fit. ``end_points``: logged values whose median
    is a curve's end value. ``collapse_factor``: a claim about what happens *with* the training
    collapse is tested on a run only if the training quantity at the end is at most this fraction of
    its value at the fit. ``min_points``: fewest post-fit logged points for a rank correlation.
    ``tracking``: rank correlation at or above which two curves move together (r2 holds), below
    zero they move apart (r2 fails). ``transfer_holds`` / ``transfer_fails``: r4 holds at a transfer
    ratio at or above the first, fails below the second. ``violation_z``: r1 counts a bound as below
    its measured error only when it is below the error's one-sided Wilson lower confidence limit at
    this many standard errors (the error is a proportion over ``test_size`` or
    ``cantelli_pair_count`` test examples; 3 leaves about 0.13% false alarms per comparison for a
    bound that is exactly tight, and bounds are rarely tight); without the sample size the
    comparison is strict.
    """

    fit_threshold: float = 0.99
    end_points: int = 3
    collapse_factor: float = 0.5
    min_points: int = 4
    tracking: float = 0.5
    transfer_holds: float = 0.5
    transfer_fails: float = 0.25
    violation_z: float = 3.0


DEFAULT_CRITERIA = BoundCriteria()


class RunOutcome(NamedTuple):
    """One run's verdict on one claim, its statistic (None when not tested) and a short note."""

    name: str
    verdict: str
    statistic: float | None
    note: str


# --------------------------------------------------------------------------------------------- shared


def _fit_index(run: RunCurves, criteria: BoundCriteria) -> int | None:
    if not run.has("step", "train_acc"):
        return None
    steps, accuracy = run["step"], run["train_acc"]
    finite = np.isfinite(accuracy)
    if not finite.any():
        return None
    step = first_fit_step(steps[finite], accuracy[finite], threshold=criteria.fit_threshold)
    return None if step is None else int(np.flatnonzero(steps == step)[0])


def _end(values: np.ndarray, criteria: BoundCriteria) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite[-criteria.end_points :])) if finite.size else float("nan")


def _start(values: np.ndarray) -> float:
    """The first finite value (the value at the fit when ``values`` starts there)."""
    finite = values[np.isfinite(values)]
    return float(finite[0]) if finite.size else float("nan")


def _rank_correlation(a: np.ndarray, b: np.ndarray, criteria: BoundCriteria) -> float:
    """Spearman's rank correlation over the points where both are finite (NaN if too few or constant)."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < criteria.min_points or np.ptp(a[both]) == 0 or np.ptp(b[both]) == 0:
        return float("nan")
    return float(spearmanr(a[both], b[both]).statistic)


def _combine(
    claim_id: str, claim: str, source: Source, criterion: str, outcomes: Sequence[RunOutcome], summary: str,
    extra: dict | None = None,
) -> ClaimResult:
    """The module docstring's rule: per-run verdicts to one ledger entry."""
    measured = [o for o in outcomes if o.verdict != "not_applicable"]
    tested = [o for o in measured if o.verdict in ("holds", "fails", "inconclusive")]
    counts = {v: sum(o.verdict == v for o in outcomes) for v in VERDICTS}
    if not measured:
        verdict = "not_applicable"
    elif counts["fails"]:
        verdict = "fails"
    elif not tested:
        verdict = "vacuous"
    elif counts["holds"] == len(tested):
        verdict = "holds"
    else:
        verdict = "inconclusive"
    values = [o.statistic for o in tested if o.statistic is not None and np.isfinite(o.statistic)]
    statistic = float(np.median(values)) if values else None
    interval = (float(min(values)), float(max(values))) if values else None
    tally = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items() if n)
    notes = "; ".join(f"{o.name}: {o.verdict.replace('_', ' ')} ({o.note})" for o in outcomes[:8])
    more = f"; ... {len(outcomes) - 8} more runs" if len(outcomes) > 8 else ""
    detail = f"{len(outcomes)} runs: {tally}. " + (f"{summary} " if summary else "") + f"Per run: {notes}{more}."
    return ClaimResult(
        id=claim_id, claim=claim, source=source, criterion=criterion, verdict=verdict,
        statistic=statistic, interval=interval, detail=detail,
        extra={"runs": [o._asdict() for o in outcomes], **(extra or {})},
    )


def _median_text(values: Sequence[float], label: str) -> str:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return f"{label}: not measured."
    return (f"{label}: median {np.median(finite):.3g}, range [{min(finite):.3g}, {max(finite):.3g}] "
            f"over {len(finite)} runs.")


# ------------------------------------------------------------------------------------ r1-cantelli

# (name, bound column, error column); "test_error" is 1 - test_acc. Tightest multi-class form last.
CANTELLI_FORMS = (
    ("plain", "cantelli_bound", "test_error"),
    ("clipped", "cantelli_bound_clipped", "test_error"),
    ("directional", "cantelli_bound_directional_clipped", "test_error"),
    ("pair", "cantelli_pair_term", "cantelli_pair_error"),
    ("pair-directional", "cantelli_pair_term_directional", "cantelli_pair_error"),
)
SAMPLE_SIZES = {"test_error": "test_size", "cantelli_pair_error": "cantelli_pair_count"}


def _error(run: RunCurves, column: str) -> np.ndarray | None:
    if column == "test_error":
        return 1.0 - run["test_acc"] if run.has("test_acc") else None
    return run[column] if run.has(column) else None


def wilson_lower(error: np.ndarray, size: np.ndarray, z: float) -> np.ndarray:
    """One-sided Wilson score lower confidence limit of a proportion ``error`` over ``size`` trials
    (``error`` itself where ``size`` is missing or zero)."""
    n = np.where(np.isfinite(size) & (size > 0), size, np.inf)
    centre = error + z**2 / (2 * n)
    spread = z * np.sqrt(error * (1 - error) / n + z**2 / (4 * n**2))
    return np.where(np.isfinite(n), (centre - spread) / (1 + z**2 / n), error)


def _cantelli_run(run: RunCurves, criteria: BoundCriteria) -> tuple[RunOutcome, dict]:
    forms, slacks, violations = {}, [], 0
    for name, bound_column, error_column in CANTELLI_FORMS:
        error = _error(run, error_column)
        if error is None or not run.has(bound_column):
            continue
        bound = run[bound_column]
        measured = np.isfinite(bound) & np.isfinite(error)
        if not measured.any():
            continue
        informative = measured & (bound < 1.0)
        slack = (bound - error)[informative]
        size_column = SAMPLE_SIZES[error_column]
        size = run[size_column] if run.has(size_column) else np.full(error.shape, np.nan)
        below = int(np.sum(bound[informative] < wilson_lower(error, size, criteria.violation_z)[informative]))
        forms[name] = {"steps": int(measured.sum()), "non_vacuous": int(informative.sum()),
                       "violations": below, "min_slack": float(slack.min()) if slack.size else None}
        slacks.extend(slack.tolist())
        violations += below
    tracking = _cantelli_tracking(run, criteria)
    if not forms:
        return RunOutcome(run.name, "not_applicable", None, "no Cantelli column measured (no held-out data)"), tracking
    shown = ", ".join(f"{n} {f['non_vacuous']}/{f['steps']} non-vacuous" + (f", {f['violations']} below" if f["violations"] else "")
                      for n, f in forms.items())
    tracking["forms"] = forms
    if not slacks:
        return RunOutcome(run.name, "vacuous", None, f"every form >= 1 at every step; {shown}"), tracking
    verdict = "fails" if violations else "holds"
    return RunOutcome(run.name, verdict, float(min(slacks)), f"min slack {min(slacks):.3g}; {shown}"), tracking


def _cantelli_tracking(run: RunCurves, criteria: BoundCriteria) -> dict:
    """Does the tightest multi-class form move with the test error after the fit, and fall at the onset?"""
    tracking = {"correlation": float("nan"), "onset_ratio": float("nan"), "form": None}
    fit = _fit_index(run, criteria)
    form = next((f for f in reversed(CANTELLI_FORMS[:3]) if run.has(f[1])), None)
    if fit is None or form is None or not run.has("test_acc"):
        return tracking
    bound, error = run[form[1]][fit:], 1.0 - run["test_acc"][fit:]
    tracking["form"] = form[0]
    tracking["correlation"] = _rank_correlation(bound, error, criteria)
    finite = np.isfinite(run["train_acc"]) & np.isfinite(run["test_acc"])
    onset = grokking_onset(run["step"][finite], run["train_acc"][finite], run["test_acc"][finite],
                           fit_threshold=criteria.fit_threshold)
    if onset.status == "grokked":
        steps = run["step"][fit:]
        before, after = bound[steps < onset.onset_step], bound[steps >= onset.onset_step]
        before, after = before[np.isfinite(before)], after[np.isfinite(after)]
        if before.size and after.size and np.median(before) > 0:
            tracking["onset_ratio"] = float(np.median(after) / np.median(before))
    return tracking


def r1_cantelli(runs: Sequence[RunCurves], *, criteria: BoundCriteria = DEFAULT_CRITERIA) -> ClaimResult:
    """Thm. 3.2 (published): the Cantelli bound is above the test error, where it says something.

    A probability bound at or above 1 cannot fail, so a step where a form is >= 1 is vacuous for that
    form, never "holds". The forms (all valid consequences of Thm. 3.2's argument, from held-out
    class statistics; see ``measure``): the published multi-class sum (up to ``K - 1``), its clipped
    and directional-clipped tightenings, each against ``1 - test_acc``, and the largest two-class
    term with its directional version against that pair's pairwise error on the test set. A run
    fails if any non-vacuous form is below its error at any logged step, beyond the error's sampling
    error (``violation_z``); it holds if some form is non-vacuous somewhere and none is ever below.
    The statistic is the smallest slack (bound minus measured error) over the non-vacuous steps of
    every form; it can be slightly negative on a run that holds, within the sampling error.

    Reported, not judged: whether the tightest multi-class form *tracks* the test error after the
    fit (Spearman correlation over logged steps) and whether it falls at the grokking onset (median
    after the onset over median between fit and onset).
    """
    pairs = [_cantelli_run(run, criteria) for run in runs]
    outcomes = [outcome for outcome, _ in pairs]
    correlations = [t["correlation"] for _, t in pairs]
    ratios = [t["onset_ratio"] for _, t in pairs]
    plain_vacuous = [run.has("cantelli_bound") and bool(np.all(run["cantelli_bound"][np.isfinite(run["cantelli_bound"])] >= 1.0))
                     for run in runs]
    summary = (
        f"Published form >= 1 (vacuous) at every step in {sum(plain_vacuous)} of {len(runs)} runs. "
        + _median_text(correlations, "Tracking after the fit (rank correlation of the tightest multi-class form "
                                     "with the test error)")
        + " " + _median_text(ratios, "Fall at the onset (bound after / before the grokking onset; < 1 = falls)")
    )
    return _combine(
        "r1-cantelli",
        "The Cantelli bound of the multi-class error (and its two-class terms) is above the measured test error.",
        Source("Thm. 3.2", "published"),
        "vacuous where a form is >= 1; fails if a non-vacuous form is below its measured test error (beyond "
        f"{criteria.violation_z:g} standard errors, Wilson) at any logged step of any run; holds if no such step and some "
        "form is non-vacuous; statistic: min slack bound - error",
        outcomes, summary, extra={"tracking": [t for _, t in pairs]},
    )


# ------------------------------------------------------------------------------- r2-ib-compression

IB_ROUTES = (
    ("compressed-MI (KSG/Ross)", "mi_zx_ksg", "mi_zy_ksg"),
    ("compressed-MI (paper's three-entropy route)", "mi_zx", "mi_zy"),
    ("nHSIC", "nhsic_zx", "nhsic_zy"),
)


def _collapse_exercised(values: np.ndarray, fit: int, criteria: BoundCriteria) -> tuple[bool, str]:
    start, end = _start(values[fit:]), _end(values[fit:], criteria)
    if not (np.isfinite(start) and np.isfinite(end)) or start <= 0:
        return False, "not measured at the fit"
    if end > criteria.collapse_factor * start:
        return False, f"no training collapse after the fit (end/fit {end / start:.2g} > {criteria.collapse_factor:g})"
    return True, ""


def _ib_run(run: RunCurves, criteria: BoundCriteria) -> RunOutcome:
    routes = [r for r in IB_ROUTES if run.has(r[1], r[2])]
    if not routes:
        return RunOutcome(run.name, "not_applicable", None, "information columns not measured (--measure-ib)")
    if not run.has("rnc1"):
        return RunOutcome(run.name, "not_applicable", None, "rnc1 not measured")
    fit = _fit_index(run, criteria)
    if fit is None:
        return RunOutcome(run.name, "not_applicable", None, "never fit the training set")
    rnc1 = run["rnc1"]
    exercised, why = _collapse_exercised(rnc1, fit, criteria)
    if not exercised:
        return RunOutcome(run.name, "not_applicable", None, f"RNC1 {why}")
    verdicts, correlations, notes = [], [], []
    for name, zx, zy in routes:
        redundant = (run[zx] - run[zy])[fit:]
        correlation = _rank_correlation(redundant, rnc1[fit:], criteria)
        start, end = _start(redundant), _end(redundant, criteria)
        fell = bool(end < start)
        if not np.isfinite(correlation) or not np.isfinite(start):
            verdicts.append("inconclusive")
        elif correlation < 0 or not fell:
            verdicts.append("fails")
        else:
            verdicts.append("holds" if correlation >= criteria.tracking else "inconclusive")
        correlations.append(correlation)
        notes.append(f"{name} rank corr. with RNC1 {correlation:.2f}, {'fell' if fell else 'did not fall'}")
    if run.has("ib_bound_logdet", "mi_zx", "mi_zy"):
        bound, estimate = run["ib_bound_logdet"][fit:], (run["mi_zx"] - run["mi_zy"])[fit:]
        both = np.isfinite(bound) & np.isfinite(estimate)
        if both.any():
            below = float(np.mean(bound[both] < estimate[both]))
            verdicts.append("fails" if below > 0.5 else "holds")
            notes.append(f"log-det bound below the estimate at {100 * below:.0f}% of {int(both.sum())} steps")
    trends = {name: _trend_sign(run[zx] - run[zy], fit, criteria) for name, zx, zy in routes if "compressed" in name}
    if len(trends) == 2:
        agree = len(set(trends.values())) == 1
        notes.append(f"the two compressed-MI routes {'agree' if agree else 'DISAGREE'} in the sign of the trend")
    verdict = "fails" if "fails" in verdicts else ("holds" if all(v == "holds" for v in verdicts) else "inconclusive")
    finite = [c for c in correlations if np.isfinite(c)]
    return RunOutcome(run.name, verdict, float(min(finite)) if finite else None, "; ".join(notes))


def _trend_sign(values: np.ndarray, fit: int, criteria: BoundCriteria) -> int:
    """-1 if the post-fit end value is below the value at the fit, +1 if above, 0 otherwise."""
    start, end = _start(values[fit:]), _end(values[fit:], criteria)
    return int(np.sign(end - start)) if np.isfinite(start) and np.isfinite(end) else 0


def r2_ib_compression(runs: Sequence[RunCurves], *, criteria: BoundCriteria = DEFAULT_CRITERIA) -> ClaimResult:
    """Fig. 4 (paper-text) with Thm. 3.4's log-det bound (published): redundant information falls
    with RNC1 after the fit.

    Redundant information is ``I(Z;X) - I(Z;Y)`` by the compressed-MI route, with the KSG / Ross
    estimators (``mi_zx_ksg - mi_zy_ksg``, measured to be accurate on thin supports) and with the
    paper's three-entropy route (``mi_zx - mi_zy``), and its nHSIC analogue (``nhsic_zx - nhsic_zy``);
    every route measured is judged, and the detail says whether the two compressed-MI routes agree in
    the sign of the trend. A run tests the claim when it fits and its RNC1
    falls after the fit to at most ``collapse_factor`` of its value there. Per route, over the
    post-fit logged steps: holds when the rank correlation with RNC1 is at least ``tracking`` and the
    end value is below the value at the fit; fails when the correlation is negative or the
    redundancy did not fall. Where ``ib_bound_logdet`` is measured, the log-det bound must be at or
    above the compressed-MI estimate at most post-fit steps, else the run fails. (The bound concerns
    the noisy representation ``Z = g(X) + B_g E`` at the measured ``sigma``, the estimate the
    deterministic one after compression: a shortfall says the bound at that noise level does not
    cover the estimate, not that Thm. 3.4 is false.) The statistic is the smaller of the routes'
    rank correlations. ``not_applicable`` when no run measured the information columns.
    """
    outcomes = [_ib_run(run, criteria) for run in runs]
    return _combine(
        "r2-ib-compression",
        "Redundant information I(Z;X) - I(Z;Y) (compressed-MI by KSG/Ross and by the paper's route, and nHSIC) "
        "falls with RNC1 after the fit, "
        "under the log-det bound of Thm. 3.4.",
        Source("Fig. 4 with Thm. 3.4", "paper-text"),
        f"per run with RNC1 falling after the fit: every route's rank correlation with RNC1 >= {criteria.tracking:g} "
        "and end < fit value (holds); a negative correlation, no fall, or the log-det bound below the estimate at "
        "most steps (fails); statistic: min rank correlation over routes",
        outcomes, "",
    )


# ------------------------------------------------------------------------------------- r4-transfer


def _within_share(nc1: np.ndarray) -> np.ndarray:
    """Within-class share of the total variance, ``W / (W + B) = NC1 / (1 + NC1)`` (in [0, 1])."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(nc1), 1.0, nc1 / (1.0 + nc1))


def _band_note(run: RunCurves, fit: int, criteria: BoundCriteria) -> str:
    """Thm. 4.1's held-out band at the end, on one scale (reported, not judged)."""
    if not run.has("rnc1_sup", "heldout_within_var_clip", "heldout_radius"):
        return "held-out band not measured at rnc1_sup's scale"
    train = _end(run["rnc1_sup"][fit:], criteria)
    heldout = _end(run["heldout_within_var_clip"][fit:], criteria)
    radius = _end(run["heldout_radius"][fit:], criteria)
    inside = abs(train - heldout) <= radius
    above = run["heldout_frac_above_scale"][fit:] if run.has("heldout_frac_above_scale") else np.array([np.nan])
    clipped = f", up to {100 * np.nanmax(above):.1f}% of held-out features clipped" if np.isfinite(above).any() else ""
    return (f"band: rnc1_sup {train:.3g} {'inside' if inside else 'outside'} held-out {heldout:.3g} +- {radius:.3g}"
            f"{' (radius above the value: uninformative)' if radius >= heldout else ''}{clipped}")


def _transfer_run(run: RunCurves, criteria: BoundCriteria) -> RunOutcome:
    if not run.has("nc1", "heldout_nc1"):
        return RunOutcome(run.name, "not_applicable", None, "heldout_nc1 not measured (no held-out data)")
    fit = _fit_index(run, criteria)
    if fit is None:
        return RunOutcome(run.name, "not_applicable", None, "never fit the training set")
    train, population = _within_share(run["nc1"]), _within_share(run["heldout_nc1"])
    exercised, why = _collapse_exercised(train, fit, criteria)
    if not exercised:
        return RunOutcome(run.name, "not_applicable", None, f"training within-class share {why}")
    train_fall = 1.0 - _end(train[fit:], criteria) / _start(train[fit:])
    start = _start(population[fit:])
    if not (np.isfinite(start) and start > 0):
        return RunOutcome(run.name, "not_applicable", None, "held-out NC1 not measured at the fit")
    population_fall = 1.0 - _end(population[fit:], criteria) / start
    ratio = population_fall / train_fall
    if ratio >= criteria.transfer_holds:
        verdict = "holds"
    elif ratio < criteria.transfer_fails:
        verdict = "fails"
    else:
        verdict = "inconclusive"
    note = (f"within-class share fell by {100 * train_fall:.0f}% on training, {100 * population_fall:.0f}% held-out "
            f"(ratio {ratio:.2f}); {_band_note(run, fit, criteria)}")
    return RunOutcome(run.name, verdict, float(ratio), note)


def r4_transfer(runs: Sequence[RunCurves], *, criteria: BoundCriteria = DEFAULT_CRITERIA) -> ClaimResult:
    """Thm. 4.1 (reconstructed): the collapse of the training features transfers to the population.

    Measured as the *within-class share* of the feature variance, ``W / (W + B) = NC1 / (1 + NC1)``,
    on the training set (``nc1``) and on held-out data (``heldout_nc1``; both sides on one sample's
    own scale, so no feature-norm scale enters). A run tests the claim when it fits and its training
    share falls after the fit to at most ``collapse_factor`` of its value there. The statistic is
    the *transfer ratio*: the relative fall of the held-out share from the fit to the end over the
    relative fall of the training share (1: the population collapses as far, in relative terms; 0:
    it does not collapse at all). It holds at or above ``transfer_holds`` and fails below
    ``transfer_fails``.

    Why not RNC1 on both sides: in a small MLP fitted to shuffled labels (a memorising network) the
    held-out within-class variance over the training set's largest squared norm still fell 6-fold
    while the training value fell 110-fold, because the whole feature cloud shrinks relative to its
    largest norm; so "the population variance falls as well" held for a network that generalises
    nothing. Relative to the between-class variance the held-out share stayed near 1 (labels
    independent of inputs leave the population no between-class variance), and the check fails
    there (tested). Thm. 4.1's held-out band is reported per run on one scale: ``rnc1_sup`` against
    ``heldout_within_var_clip`` (held-out features clipped to the training set's largest norm ``B``,
    so ``||g / B|| <= 1`` and ``heldout_radius`` is valid) with the fraction of clipped features; the
    band is marked uninformative when its radius exceeds the value.
    """
    outcomes = [_transfer_run(run, criteria) for run in runs]
    return _combine(
        "r4-transfer",
        "When the training features collapse after the fit, the held-out (population) features collapse with them.",
        Source("Thm. 4.1", "reconstructed"),
        f"per run whose training within-class share falls to <= {criteria.collapse_factor:g} of its fit value: "
        f"transfer ratio (relative fall held-out / training, fit to end) >= {criteria.transfer_holds:g} holds, "
        f"< {criteria.transfer_fails:g} fails",
        outcomes, "",
    )


# The ledger ids of these checks (``ncgrok.empirical.ledger.CHECKS`` registers them).
BOUND_CHECKS = {"r1-cantelli": r1_cantelli, "r2-ib-compression": r2_ib_compression, "r4-transfer": r4_transfer}
