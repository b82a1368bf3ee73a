"""Shared pieces of the ledger's checks: how a verdict follows from an interval, and detail text.

Every claim judged on a within-level bootstrap interval (:func:`ledger.stats.bootstrap_levels`) comes
through here for the rule that an interval needs a replicate in every level: a claim with a level of
one run (copies merged) is ``inconclusive``, shows its statistic as measured, has no interval, and its
detail names those levels (:func:`unreplicated_reason`, :func:`unreplicated_claim`,
:func:`bootstrap_claim`; the reasons are in the ``ledger.stats`` module docstring).
"""
from __future__ import annotations

from typing import Callable, Sequence

from ncgrok.empirical.ledger.core import ClaimResult, Source
from ncgrok.empirical.ledger.stats import (
    Censored,
    bootstrap_levels,
    censored_median,
    pooled_level_median,
    unreplicated_levels,
)

__all__ = ["fmt", "levels_text", "band_verdict", "unreplicated_reason", "unreplicated_claim", "bootstrap_claim",
           "pooled_band_claim"]


def fmt(value: float | None) -> str:
    """A number for a detail line (``undefined`` for ``None``)."""
    return "undefined" if value is None else f"{value:.3g}"


def levels_text(decays: Sequence[float], values: Sequence[float | None]) -> str:
    """``"lambda: value"`` pairs, comma separated."""
    return ", ".join(f"{d:g}: {fmt(v)}" for d, v in zip(decays, values))


def band_verdict(low: float, high: float, band: tuple[float, float]) -> str:
    """``holds`` when ``[low, high]`` lies inside the open ``band``, ``fails`` when it lies entirely
    outside it (above its top or below its bottom), ``inconclusive`` when it straddles an edge."""
    bottom, top = band
    if bottom < low and high < top:
        return "holds"
    if high < bottom or low > top:
        return "fails"
    return "inconclusive"


def unreplicated_reason(decays: Sequence[float], sets: Sequence[Censored]) -> str:
    """Why no interval can be made, naming the weight decays whose level has a single run; empty when
    every level (``sets[i]`` at ``decays[i]``) has at least two."""
    single = unreplicated_levels(sets)
    if not single:
        return ""
    return ("a level with a single run has no replicate, so no interval (one run at lambda "
            + ", ".join(f"{decays[i]:g}" for i in single) + ")")


def unreplicated_claim(
    claim_id: str, claim: str, source: Source, criterion: str, sets: Sequence[Censored], decays: Sequence[float], *,
    statistic: float | None, detail: str,
) -> ClaimResult | None:
    """The entry of a bootstrap-judged claim whose levels are not all replicated: ``inconclusive``, the
    ``statistic`` as measured, no interval, ``detail`` followed by :func:`unreplicated_reason`. ``None``
    when every level has at least two runs (the claim goes on to its interval)."""
    reason = unreplicated_reason(decays, sets)
    if not reason:
        return None
    return ClaimResult(claim_id, claim, source, criterion, "inconclusive", statistic=statistic,
                       detail=f"{detail}; {reason}")


def bootstrap_claim(
    claim_id: str, claim: str, source: Source, criterion: str, sets: list[Censored], decays: list[float], detail: str, *,
    statistic: Callable[[list[Censored]], float | None], verdict_of: Callable[[float, float], str], resamples: int,
    confidence: float, seed: int,
) -> ClaimResult:
    """A claim on ``statistic(sets)`` judged by ``verdict_of(low, high)`` of its within-level bootstrap
    interval; ``inconclusive`` when the statistic is undefined, and by :func:`unreplicated_claim` when a
    level has a single run. Resamples with an undefined statistic (censoring) are counted in the detail."""
    value = statistic(sets)
    withheld = unreplicated_claim(claim_id, claim, source, criterion, sets, decays, statistic=value, detail=detail)
    if withheld is not None:
        return withheld
    interval = bootstrap_levels(sets, statistic, resamples=resamples, confidence=confidence, seed=seed)
    verdict = "inconclusive" if value is None else verdict_of(interval.low, interval.high)
    if interval.undefined:
        detail = f"{detail}; {interval.undefined} of {interval.resamples} resamples undefined (censoring)"
    return ClaimResult(claim_id, claim, source, criterion, verdict, statistic=value,
                       interval=(interval.low, interval.high), detail=detail)


def pooled_band_claim(
    claim_id: str, claim: str, source: Source, criterion: str, sets: list[Censored], decays: list[float],
    head: str, *, band: tuple[float, float], resamples: int, confidence: float, seed: int,
) -> ClaimResult:
    """A claim about the mean over lambda levels of the per-level (Kaplan-Meier) medians of a per-run
    value: :func:`band_verdict` of its within-level bootstrap interval (:func:`bootstrap_claim`)."""
    detail = f"{head}; level medians {levels_text(decays, [censored_median(s) for s in sets])}"
    return bootstrap_claim(claim_id, claim, source, criterion, sets, decays, detail, statistic=pooled_level_median,
                           verdict_of=lambda low, high: band_verdict(low, high, band), resamples=resamples,
                           confidence=confidence, seed=seed)
