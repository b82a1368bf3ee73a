"""The curves behind the R1 (Thm. 3.2) and R4 (Thm. 4.1) claims, per run, for the bounds figure.

:func:`bound_curves` takes from a run the logged columns the figure draws (NaN where a column was
not logged). The verdicts on these claims are the ledger's (``empirical.ledger.bounds``:
``r1-cantelli``, ``r4-transfer``), which can fail; this module only carries the curves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncgrok.empirical.runs import Run

__all__ = ["BoundCurves", "bound_curves"]


@dataclass(frozen=True)
class BoundCurves:
    """The R1 and R4 columns of one run at its logged ``steps`` (NaN where a column was not logged).

    R1 in its non-vacuous forms: the worst pair's two-class Cantelli term ``cantelli_pair_term``
    (at most 1) against that pair's measured error ``cantelli_pair_error``, and the per-class clipped
    bound ``cantelli_bound_clipped`` against ``test_error = 1 - test_acc``. R4 on one scale: the
    training ``rnc1_sup`` against the held-out ``heldout_within_var_clip`` (the training set's
    largest feature norm as the scale for both) and its Thm. 4.1 radius ``heldout_radius``.
    """

    name: str
    seed: int
    lr: float
    weight_decay: float
    steps: np.ndarray
    cantelli_pair_term: np.ndarray
    cantelli_pair_error: np.ndarray
    cantelli_bound_clipped: np.ndarray
    test_error: np.ndarray
    rnc1_sup: np.ndarray
    heldout_within_var_clip: np.ndarray
    heldout_radius: np.ndarray


def bound_curves(run: Run) -> BoundCurves:
    """The columns the bounds figure draws, read from ``run``."""
    missing = np.full(run.steps.shape, np.nan)
    return BoundCurves(
        name=run.name,
        seed=run.seed,
        lr=run.lr,
        weight_decay=run.weight_decay,
        steps=run.steps,
        cantelli_pair_term=run.metrics.get("cantelli_pair_term", missing),
        cantelli_pair_error=run.metrics.get("cantelli_pair_error", missing),
        cantelli_bound_clipped=run.metrics.get("cantelli_bound_clipped", missing),
        test_error=1.0 - run.column("test_acc"),
        rnc1_sup=run.metrics.get("rnc1_sup", missing),
        heldout_within_var_clip=run.metrics.get("heldout_within_var_clip", missing),
        heldout_radius=run.metrics.get("heldout_radius", missing),
    )
