"""Bound checks along each run's logged steps: R1 (Thm. 3.2), R4 (Thm. 4.1) and R2 (Thm. 3.4).

:func:`bound_curves` takes from a run the logged columns the checks compare (NaN where a column was
not logged); :func:`check_bounds` compares them (see :class:`BoundCheck` for exactly what), and
:func:`bound_check_lines` words one run's result. The figure of these curves is
``empirical.figures.bound_figure``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncgrok.empirical.runs import Run

__all__ = ["BoundCurves", "bound_curves", "BoundCheck", "check_bounds", "bound_check_lines"]


@dataclass(frozen=True)
class BoundCurves:
    """The R1 and R4 columns of one run at its logged ``steps`` (NaN where a column was not logged).

    R1: ``cantelli_bound`` against ``test_error = 1 - test_acc``. R4: the training ``rnc1_sup``
    against the held-out estimate ``heldout_within_var_sup`` and its radius ``heldout_radius``.
    """

    name: str
    seed: int
    lr: float
    weight_decay: float
    steps: np.ndarray
    cantelli_bound: np.ndarray
    test_error: np.ndarray
    rnc1_sup: np.ndarray
    heldout_within_var_sup: np.ndarray
    heldout_radius: np.ndarray


def bound_curves(run: Run) -> BoundCurves:
    """The columns :func:`check_bounds` and the bound figure read from ``run``."""
    missing = np.full(run.steps.shape, np.nan)
    return BoundCurves(
        name=run.name,
        seed=run.seed,
        lr=run.lr,
        weight_decay=run.weight_decay,
        steps=run.steps,
        cantelli_bound=run.metrics.get("cantelli_bound", missing),
        test_error=1.0 - run.column("test_acc"),
        rnc1_sup=run.metrics.get("rnc1_sup", missing),
        heldout_within_var_sup=run.metrics.get("heldout_within_var_sup", missing),
        heldout_radius=run.metrics.get("heldout_radius", missing),
    )


@dataclass(frozen=True)
class BoundCheck:
    """R1 and R4 along one run's logged steps.

    R1 (Thm. 3.2): ``cantelli_bound`` (a plug-in value: the bound evaluated with held-out class means,
    unbiased variances and priors, with the scale ``B`` = largest feature norm on training and
    held-out data) against the test error ``1 - test_acc``. ``r1_steps`` counts steps where both are
    finite; ``r1_violations`` those with bound < error; ``r1_holds`` is ``None`` when nothing was
    measured. ``r1_median_ratio`` is the median of bound / error over measured steps with a nonzero
    error (``r1_zero_error_steps`` have none); ``r1_vacuous_fraction`` the fraction with bound >= 1.

    R4 (Thm. 4.1, held-out form): the training ``rnc1_sup`` (biased within-class variance of the
    training features over the training set's largest norm squared) against the held-out unbiased
    estimate ``heldout_within_var_sup`` of the population value (over ``B^2``, ``B`` from training and
    held-out features) whose ``1 - delta`` radius is ``heldout_radius``. The gap is
    ``rnc1_sup - heldout_within_var_sup``; ``r4_inside_fraction`` is the fraction of measured steps
    with ``|gap| <= radius``; medians of ``|gap|`` and of the radius, and the values at the last
    measured step, are given. The radius covers the held-out estimate's own error about the
    population variance; a training value outside the band differs from the population by more than
    that error allows (the generalisation gap the uniform part of Thm. 4.1 has to pay for).
    """

    name: str
    seed: int
    lr: float
    weight_decay: float
    r1_steps: int
    r1_violations: int
    r1_holds: bool | None
    r1_median_ratio: float
    r1_zero_error_steps: int
    r1_vacuous_fraction: float
    r1_final_bound: float
    r1_final_error: float
    r4_steps: int
    r4_inside_fraction: float
    r4_gap_median: float
    r4_radius_median: float
    r4_final_gap: float
    r4_final_radius: float
    r2_steps: int = 0
    r2_violations: int = 0
    r2_holds: bool | None = None
    r2_trend_correlation: float = math.nan
    r2_final_bound: float = math.nan
    r2_final_estimate: float = math.nan


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by order; enough for trend agreement)."""
    if len(a) < 3:
        return math.nan
    ranks_a = np.argsort(np.argsort(a)).astype(float)
    ranks_b = np.argsort(np.argsort(b)).astype(float)
    if ranks_a.std() == 0 or ranks_b.std() == 0:
        return math.nan
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def _finite(*arrays: np.ndarray) -> np.ndarray:
    mask = np.ones(arrays[0].shape, dtype=bool)
    for array in arrays:
        mask &= np.isfinite(array)
    return mask


def check_bounds(run: Run) -> BoundCheck:
    """R1 and R4 (and R2 with ``--measure-ib`` columns) along ``run`` (see :class:`BoundCheck`)."""
    nan = math.nan
    curves = bound_curves(run)
    bound, error = curves.cantelli_bound, curves.test_error
    measured = _finite(bound, error)
    r1_steps = int(measured.sum())
    b, e = bound[measured], error[measured]
    violations = int(np.sum(b < e))
    nonzero = e > 0
    ratio = float(np.median(b[nonzero] / e[nonzero])) if np.any(nonzero) else nan
    vacuous = float(np.mean(b >= 1.0)) if r1_steps else nan

    train, heldout, radius = curves.rnc1_sup, curves.heldout_within_var_sup, curves.heldout_radius
    measured4 = _finite(train, heldout, radius)
    gap = (train - heldout)[measured4]
    r = radius[measured4]
    r4_steps = int(measured4.sum())
    return BoundCheck(
        name=run.name,
        seed=run.seed,
        lr=run.lr,
        weight_decay=run.weight_decay,
        r1_steps=r1_steps,
        r1_violations=violations,
        r1_holds=None if r1_steps == 0 else violations == 0,
        r1_median_ratio=ratio,
        r1_zero_error_steps=int(np.sum(~nonzero)),
        r1_vacuous_fraction=vacuous,
        r1_final_bound=float(b[-1]) if r1_steps else nan,
        r1_final_error=float(e[-1]) if r1_steps else nan,
        r4_steps=r4_steps,
        r4_inside_fraction=float(np.mean(np.abs(gap) <= r)) if r4_steps else nan,
        r4_gap_median=float(np.median(np.abs(gap))) if r4_steps else nan,
        r4_radius_median=float(np.median(r)) if r4_steps else nan,
        r4_final_gap=float(gap[-1]) if r4_steps else nan,
        r4_final_radius=float(r[-1]) if r4_steps else nan,
        **_information_check(run),
    )


def _information_check(run: Run) -> dict[str, Any]:
    """R2 (Thm. 3.4) along a ``--measure-ib`` run: the log-det bound on ``I(Z;X|Y)`` of the noisy
    representation against the compressed-MI estimate ``mi_zx - mi_zy`` of the deterministic one.

    The two are not the same quantity (noise level ``--ib-sigma`` versus a k-NN estimate after
    compression), so "holds" is a sanity comparison and the rank correlation over logged steps says
    whether they move together, which is what the paper's Fig. 4 argues.
    """
    if not all(column in run.metrics for column in ("ib_bound_logdet", "mi_zx", "mi_zy")):
        return {}
    bound = run.metrics["ib_bound_logdet"]
    estimate = run.metrics["mi_zx"] - run.metrics["mi_zy"]
    measured = _finite(bound, estimate)
    steps = int(measured.sum())
    if steps == 0:
        return {}
    b, e = bound[measured], estimate[measured]
    violations = int(np.sum(b < e))
    return {
        "r2_steps": steps,
        "r2_violations": violations,
        "r2_holds": violations == 0,
        "r2_trend_correlation": _rank_correlation(b, e),
        "r2_final_bound": float(b[-1]),
        "r2_final_estimate": float(e[-1]),
    }


def bound_check_lines(check: BoundCheck) -> list[str]:
    """Summary lines of one run's checks (R1, R4, and R2 when measured), as the figures command prints them."""
    if check.r1_holds is None:
        r1 = "R1 (Thm. 3.2): not measured (no held-out sample, cantelli_bound is NaN)"
    else:
        r1 = (
            f"R1 holds at every logged step: {'yes' if check.r1_holds else 'no'} "
            f"({check.r1_steps - check.r1_violations}/{check.r1_steps} steps); "
            f"median ratio bound/error {check.r1_median_ratio:.3g}; bound >= 1 (vacuous) at "
            f"{100 * check.r1_vacuous_fraction:.0f}% of steps; last step bound {check.r1_final_bound:.3g} "
            f"vs test error {check.r1_final_error:.3g}"
        )
    if check.r4_steps == 0:
        r4 = "R4 (Thm. 4.1): not measured (no held-out sample)"
    else:
        r4 = (
            f"held-out vs train RNC1 gap vs radius: |rnc1_sup - heldout_within_var_sup| median "
            f"{check.r4_gap_median:.3g} vs radius median {check.r4_radius_median:.3g}; train value inside the "
            f"held-out band at {100 * check.r4_inside_fraction:.0f}% of {check.r4_steps} steps; last step gap "
            f"{check.r4_final_gap:+.3g}, radius {check.r4_final_radius:.3g}"
        )
    lines = [r1, r4]
    if check.r2_holds is not None:
        lines.append(
            f"R2 log-det bound >= estimated I(Z;X) - I(Z;Y) at every logged step: {'yes' if check.r2_holds else 'no'} "
            f"({check.r2_steps - check.r2_violations}/{check.r2_steps}); rank correlation of the two over steps "
            f"{check.r2_trend_correlation:.2f}; last step bound {check.r2_final_bound:.3g} vs estimate "
            f"{check.r2_final_estimate:.3g} nats (bound: noisy Z at --ib-sigma; estimate: compressed g(X))"
        )
    return lines
