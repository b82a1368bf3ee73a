"""Shared pieces of the ledger's checks: how a verdict follows from an interval, and detail text."""
from __future__ import annotations

from typing import Sequence

from ncgrok.empirical.ledger.core import ClaimResult, Source
from ncgrok.empirical.ledger.stats import Censored, bootstrap_levels, censored_median, pooled_level_median

__all__ = ["fmt", "levels_text", "band_verdict", "pooled_band_claim"]


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


def pooled_band_claim(
    claim_id: str, claim: str, source: Source, criterion: str, sets: list[Censored], decays: list[float],
    head: str, *, band: tuple[float, float], resamples: int, confidence: float, seed: int,
) -> ClaimResult:
    """A claim about the mean over lambda levels of the per-level (Kaplan-Meier) medians of a per-run
    value: :func:`band_verdict` of its within-level bootstrap interval (inconclusive when censoring
    leaves the statistic undefined)."""
    statistic = pooled_level_median(sets)
    interval = bootstrap_levels(sets, pooled_level_median, resamples=resamples, confidence=confidence, seed=seed)
    verdict = "inconclusive" if statistic is None else band_verdict(interval.low, interval.high, band)
    medians = [censored_median(s) for s in sets]
    detail = (f"{head}; level medians {levels_text(decays, medians)}; "
              f"{interval.undefined} of {interval.resamples} resamples undefined (censoring)")
    return ClaimResult(claim_id, claim, source, criterion, verdict, statistic=statistic,
                       interval=(interval.low, interval.high), detail=detail)
