"""The claims ledger: every claim ncgrok checks, as a named check whose verdict could fail.

See :mod:`ncgrok.empirical.ledger.core` for the vocabulary. ``CHECKS`` maps each claim id to its
check, in the order the ledger prints them; :func:`ledger.runner.run_checks` runs them and
:func:`ledger.load.load_curves` reads runs from disk.
"""
from ncgrok.empirical.ledger.bounds import BOUND_CHECKS
from ncgrok.empirical.ledger.collapse_claims import nc2_follows_rnc1, tau2_lower_bound
from ncgrok.empirical.ledger.core import VERDICTS, Check, ClaimResult, RunCurves, Source
from ncgrok.empirical.ledger.onset_claims import monotone_lambda, r6_scaling, sync_rnc1_onset

CHECKS: dict[str, Check] = {
    **BOUND_CHECKS,  # r1-cantelli, r2-ib-compression, r4-transfer
    "monotone-lambda": monotone_lambda,
    "sync-rnc1-onset": sync_rnc1_onset,
    "tau2-lower-bound": tau2_lower_bound,
    "r6-scaling": r6_scaling,
    "nc2-follows-rnc1": nc2_follows_rnc1,
}

__all__ = ["VERDICTS", "CHECKS", "Check", "ClaimResult", "RunCurves", "Source"]
