"""Claims about the collapse of the features after the fit (issue 12).

* ``tau2-lower-bound`` (Thm. 4.3: rate published, constant reconstructed): RNC1 does not collapse
  earlier than the theorem's ``1/(eta lambda)`` time scale allows.
* ``nc2-follows-rnc1`` (paper text, Fig. 3): after the fit, NC2 tends to 1 in step with RNC1.

Runs are read through :mod:`ledger.replicates` (lambda levels of one learning rate, copies merged).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ncgrok.empirical.ledger.core import ClaimResult, RunCurves, Source
from ncgrok.empirical.ledger.replicates import RunEvents, level_values, sweep_levels
from ncgrok.empirical.ledger.stats import Censored, bootstrap_levels, censored_median, rank_correlation
from ncgrok.empirical.ledger.verdicts import levels_text, pooled_band_claim, unreplicated_claim

__all__ = ["tau2_lower_bound", "nc2_follows_rnc1", "GRADIENT_DESCENT"]

GRADIENT_DESCENT = ("sgd", "gd")


# ---------------------------------------------------------------------------------------------
# tau2-lower-bound


def _collapse_ratio(run: RunEvents, fraction: float) -> tuple[float, bool] | None:
    """``rho = 2 eta lambda (t_drop - t_fit) / log(1/fraction)`` from the last re-fit (censored when
    RNC1 had not fallen by the last log)."""
    fit = run.fit_event("last_refit")
    if run.rnc1_drop is None or fit is None:
        return None
    drop, censored = run.rnc1_drop
    scale = 2.0 * run.run.lr * run.run.weight_decay / math.log(1.0 / fraction)
    return (drop - fit) * scale, censored


def _smallest_lower_median(sets: list[Censored]) -> float:
    """Smallest level median with censored values at their bounds: a lower bound of the true one."""
    return min(float(np.median(level.values)) for level in sets)


def _smallest_upper_median(sets: list[Censored]) -> float:
    """Smallest level Kaplan-Meier median, ``inf`` for a level where it is undefined (beyond the bounds)."""
    medians = [censored_median(level) for level in sets]
    return min(math.inf if m is None else m for m in medians)


def tau2_lower_bound(
    runs: Sequence[RunCurves],
    *,
    apply_to_adamw: bool = False,
    min_ratio: float = 1.0,
    rnc1_fraction: float = 0.1,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ClaimResult:
    """``tau2-lower-bound``: the RNC1 collapse is not earlier than Thm. 4.3's time scale allows.

    The theorem's event is RNC1 becoming small; here: the first log after the last re-fit with RNC1
    ``<= rnc1_fraction`` x its value there (:func:`empirical.onset.rnc1_drop_time`). Thm. 4.3 bounds
    the steps to it from below by ``Omega((eta lambda)^-1 log(1/eps2))`` (published rate). Our
    reconstructed constant (the UFM null-space argument: a variance shrinking no faster than
    ``(1 - eta lambda)^(2t)``) makes the normalised collapse time
    ``rho = 2 eta lambda (t_drop - t_fit) / log(1/rnc1_fraction)`` at least ``min_ratio`` = 1 at every
    lambda. Per level the Kaplan-Meier median of ``rho``; a run where RNC1 has not fallen by its last
    log is a lower bound. The statistic is the smallest level median; its interval's low end
    resamples medians with those runs at their bounds (a valid lower bound of each median), its high
    end with them unbounded, so a short run can neither confirm nor refute. The smallest median is taken
    over levels, but each level's median is resampled from that level's seeds, so a level with a single
    run gives no interval and the claim is ``inconclusive`` (:func:`ledger.verdicts.unreplicated_claim`).
    Gradient-descent runs only (optimizer ``sgd``/``gd``) unless ``apply_to_adamw``: the theorem is for
    gradient descent.
    """
    source = Source("Thm. 4.3 (rate published; constant and event reconstructed)", "reconstructed")
    claim = "RNC1 does not collapse sooner after the fit than Thm. 4.3's 1/(eta lambda) time scale allows."
    criterion = (
        f"rho = 2 eta lambda (RNC1 drop to {rnc1_fraction:g}x - fit) / log(1/{rnc1_fraction:g}); holds if the "
        f"{confidence:.0%} interval of the smallest level median of rho lies at or above {min_ratio:g}, fails if it "
        "lies below, inconclusive otherwise"
    )
    allowed = GRADIENT_DESCENT + (("adamw",) if apply_to_adamw else ())
    chosen = [run for run in runs if run.optimizer.lower() in allowed]
    if not chosen:
        optimizers = ", ".join(sorted({run.optimizer for run in runs}))
        return ClaimResult("tau2-lower-bound", claim, source, criterion, "not_applicable",
                           detail=f"no gradient-descent run (optimizers: {optimizers}); Thm. 4.3 is for gradient "
                                  "descent (ask for AdamW runs explicitly with --apply-to-adamw)")
    if not any(run.has("rnc1") for run in chosen):
        return ClaimResult("tau2-lower-bound", claim, source, criterion, "not_applicable",
                           detail="no run has an rnc1 column")
    sweep = sweep_levels(chosen, rnc1_fraction=rnc1_fraction)
    sets, decays, missing = level_values(sweep.positive_levels(), lambda run: _collapse_ratio(run, rnc1_fraction))
    head = (f"{sweep.note()}; optimizers {', '.join(sorted({r.optimizer for r in chosen}))}; level medians of rho "
            f"{levels_text(decays, [censored_median(s) for s in sets])} (undefined: RNC1 had not fallen in half the "
            f"runs by the last log); {missing} run(s) without a fit or RNC1 left out")
    if not sets:
        return ClaimResult("tau2-lower-bound", claim, source, criterion, "inconclusive",
                           detail=f"{head}; no run with a fit and RNC1")
    smallest = _smallest_upper_median(sets)
    statistic = smallest if math.isfinite(smallest) else None
    withheld = unreplicated_claim("tau2-lower-bound", claim, source, criterion, sets, decays, statistic=statistic,
                                  detail=head)
    if withheld is not None:
        return withheld
    options = dict(resamples=resamples, confidence=confidence, seed=seed)  # same seed: the same resamples
    low = bootstrap_levels(sets, _smallest_lower_median, **options).low
    high = bootstrap_levels(sets, _smallest_upper_median, **options).high
    if low >= min_ratio:
        verdict = "holds"
    elif high < min_ratio:
        verdict = "fails"
    else:
        verdict = "inconclusive"
    return ClaimResult("tau2-lower-bound", claim, source, criterion, verdict, statistic=statistic, interval=(low, high),
                       detail=f"{head}; interval: low end with not-yet-fallen runs at their bounds, high end with "
                              "them unbounded")


# ---------------------------------------------------------------------------------------------
# nc2-follows-rnc1


def _nc2_rnc1_correlation(run: RunEvents) -> tuple[float, bool] | None:
    fit = run.fit_event("last_refit")
    if fit is None or not run.run.has("nc2", "rnc1"):
        return None
    after = run.run["step"] >= fit
    rho = rank_correlation(run.run["nc2"][after], run.run["rnc1"][after])
    return None if rho is None else (rho, False)


def nc2_follows_rnc1(
    runs: Sequence[RunCurves], *, threshold: float = 0.5, resamples: int = 2000, confidence: float = 0.95,
    seed: int = 0,
) -> ClaimResult:
    """``nc2-follows-rnc1``: after the (last re-)fit, NC2 and RNC1 move together.

    Per run, Spearman's rank correlation of NC2 and RNC1 over the logged steps from the last re-fit on;
    pooled as the mean over lambda levels of the per-level median, its interval resampling runs within
    levels (no interval, ``inconclusive``, when a level has a single run). Caveat: two curves that both fall
    after the fit correlate even when they fall at different times, so this checks a common direction
    over the logs, not simultaneity.
    """
    source = Source("Fig. 3 remark: NC2 tends to 1 in step with RNC1", "paper-text")
    claim = "After the fit, NC2 moves with RNC1 (both fall together)."
    criterion = (f"holds: the {confidence:.0%} interval of the pooled rank correlation of NC2 and RNC1 after the fit "
                 f"lies above {threshold:g}; fails: it lies below {threshold:g}; otherwise inconclusive")
    if not any(run.has("nc2", "rnc1") for run in runs):
        return ClaimResult("nc2-follows-rnc1", claim, source, criterion, "not_applicable",
                           detail="no run has finite nc2 and rnc1 columns (nc2 needs classes <= feature dimension)")
    sweep = sweep_levels(runs)
    sets, decays, missing = level_values(sweep.levels, _nc2_rnc1_correlation)
    head = f"{sweep.note()}; {missing} run(s) without a fit or with constant curves left out"
    if not sets:
        return ClaimResult("nc2-follows-rnc1", claim, source, criterion, "inconclusive",
                           detail=f"{head}; no run to correlate")
    return pooled_band_claim("nc2-follows-rnc1", claim, source, criterion, sets, decays, head,
                           band=(threshold, np.inf), resamples=resamples, confidence=confidence, seed=seed)
