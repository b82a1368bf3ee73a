"""The claims ledger: every claim ncgrok checks, as a named check whose verdict could fail.

See :mod:`ncgrok.empirical.ledger.core` for the vocabulary. ``CHECKS`` maps each claim id to its check.
"""
from ncgrok.empirical.ledger.core import VERDICTS, Check, ClaimResult, RunCurves, Source

CHECKS: dict[str, Check] = {}

__all__ = ["VERDICTS", "CHECKS", "Check", "ClaimResult", "RunCurves", "Source"]
