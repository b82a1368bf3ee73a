"""Run the registered checks and present their results (lines for a terminal, JSON for files)."""
from __future__ import annotations

from typing import Any, Sequence

from ncgrok.empirical.ledger.core import ClaimResult, RunCurves, check_usable_runs
from ncgrok.empirical.ledger.verdicts import fmt

__all__ = ["run_checks", "ledger_lines", "ledger_json", "APPLY_TO_ADAMW"]

# checks that accept ``apply_to_adamw`` (gradient-descent theorems)
APPLY_TO_ADAMW = ("tau2-lower-bound",)


def run_checks(
    runs: Sequence[RunCurves], *, only: Sequence[str] | None = None, apply_to_adamw: bool = False
) -> list[ClaimResult]:
    """The result of every registered check (or of the ids in ``only``, in registry order)."""
    from ncgrok.empirical.ledger import CHECKS

    if only:
        unknown = [claim_id for claim_id in only if claim_id not in CHECKS]
        if unknown:
            raise ValueError(f"only: unknown claim id(s) {', '.join(unknown)}; known ids: {', '.join(CHECKS)}")
    if not runs:
        raise ValueError("no runs to check; point at a run directory or a sweep directory")
    results = []
    for claim_id, check in CHECKS.items():
        if only and claim_id not in only:
            continue
        options = {"apply_to_adamw": True} if apply_to_adamw and claim_id in APPLY_TO_ADAMW else {}
        results.append(check_usable_runs(check, runs, **options))
    return results


def ledger_lines(results: Sequence[ClaimResult]) -> list[str]:
    """One line per claim: id, verdict, statistic [interval], criterion, source."""
    width = max((len(result.id) for result in results), default=0)
    lines = []
    for result in results:
        interval = "" if result.interval is None else f" [{fmt(result.interval[0])}, {fmt(result.interval[1])}]"
        statistic = "-" if result.statistic is None else fmt(result.statistic)
        lines.append(f"{result.id:<{width}}  {result.verdict:<14}  {statistic}{interval}  "
                     f"criterion: {result.criterion}  source: {result.source}")
    return lines


def ledger_json(results: Sequence[ClaimResult]) -> dict[str, Any]:
    """``{"claims": [{"id", "verdict", "statistic", "interval", "criterion", "source", "detail", ...}]}``."""
    return {"claims": [result.to_json() for result in results]}
