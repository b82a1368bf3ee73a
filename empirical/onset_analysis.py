"""Onsets of every run of a sweep and their comparison with the R6 law (Thm. 4.3), per learning rate.

:func:`analyze_onsets` applies the definitions of ``empirical.onset`` to each run (fit step,
sustained midpoint crossing of test accuracy, status, RNC1 drop step) and compares the onsets with
the two R6 predictions of Thm. 4.3 (log-log slope ``-1``; calibrated ``t_fit + C / (eta lambda)``;
rates published, exact form reconstructed) through :func:`empirical.onset.summarize_onsets`, once
per learning rate. :func:`onset_analysis_dict` is the result as plain JSON-able data.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ncgrok.empirical.runs import Run
from ncgrok.empirical.onset import (
    ADAMW_CAVEAT,
    FIT_THRESHOLD,
    GD_CAVEAT,
    RNC1_FRACTION,
    GrokkingOnset,
    OnsetRecord,
    OnsetSummary,
    grokking_onset,
    onset_definitions,
    rnc1_drop_time,
    summarize_onsets,
)

__all__ = ["RunOnset", "OnsetAnalysis", "analyze_onsets", "onset_analysis_dict"]


@dataclass(frozen=True)
class RunOnset:
    """Onset quantities of one run (definitions in ``empirical.onset``).

    ``resolution`` is the gap between the onset's logged step and the logged step before it: the
    sustained crossing happened somewhere in that interval (``None`` if the run did not grok).
    ``rnc1_drop_step`` is :func:`empirical.onset.rnc1_drop_time` (first logged step after the fit
    with RNC1 ``<= rnc1_fraction`` x RNC1 at the fit), computed on the logged steps with a finite RNC1.
    """

    name: str
    seed: int
    lr: float
    weight_decay: float
    optimizer: str
    result: GrokkingOnset
    rnc1_drop_step: int | float | None
    resolution: int | float | None

    @property
    def delay(self) -> float | None:
        return self.result.delay


@dataclass(frozen=True)
class OnsetAnalysis:
    """Every run's onset, and one :class:`empirical.onset.OnsetSummary` per learning rate.

    ``summaries`` pairs each learning rate with its summary (ascending). Runs with weight decay 0 have
    no R6 prediction (``C / (eta * 0)`` is infinite): they are listed in ``runs`` and
    ``zero_weight_decay`` but not summarised. ``rnc1_drop_means`` maps each summarised
    ``(lr, weight_decay)`` to the mean RNC1 drop step over its runs that have one (NaN if none).
    ``notes`` are the caveats to print with the numbers.
    """

    runs: tuple[RunOnset, ...]
    summaries: tuple[tuple[float, OnsetSummary], ...]
    zero_weight_decay: tuple[str, ...]
    optimizers: tuple[str, ...]
    fit_threshold: float
    rnc1_fraction: float
    calibrate_on: float | None
    confidence: float
    notes: tuple[str, ...]
    rnc1_drop_means: Mapping[tuple[float, float], float] = dataclasses.field(default_factory=dict)


def _run_onset(run: Run, *, fit_threshold: float, rnc1_fraction: float) -> RunOnset:
    steps = run.steps
    result = grokking_onset(steps, run.column("train_acc"), run.column("test_acc"), fit_threshold=fit_threshold)
    rnc1 = run.column("rnc1")
    finite = np.isfinite(rnc1)
    drop = None
    if result.fit_step is not None and np.any(finite & (steps >= result.fit_step)):
        drop = rnc1_drop_time(steps[finite], rnc1[finite], fit_step=result.fit_step, fraction=rnc1_fraction)
    resolution = None
    if result.onset_step is not None:
        index = int(np.flatnonzero(steps == result.onset_step)[0])
        resolution = _plain(steps[index] - steps[index - 1]) if index > 0 else 0
    return RunOnset(run.name, run.seed, run.lr, run.weight_decay, run.optimizer, result, drop, resolution)


def _plain(value: Any) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def _mean_drop(onsets: Sequence[RunOnset]) -> float:
    drops = [float(item.rnc1_drop_step) for item in onsets if item.rnc1_drop_step is not None]
    return float(np.mean(drops)) if drops else math.nan


def analyze_onsets(
    runs: Sequence[Run],
    *,
    fit_threshold: float = FIT_THRESHOLD,
    rnc1_fraction: float = RNC1_FRACTION,
    calibrate_on: float | None = None,
    confidence: float = 0.95,
) -> OnsetAnalysis:
    """Onset of every run and the R6 comparison per learning rate (Thm. 4.3; exact form reconstructed).

    Per run: :func:`empirical.onset.grokking_onset` (fit step, plateau, final, sustained midpoint
    crossing, status) and :func:`empirical.onset.rnc1_drop_time`. Per learning rate:
    :func:`empirical.onset.summarize_onsets` with ``calibrate_on`` (default: its middle weight decay),
    which counts never-fit / never-grokked / no-gap runs, fits the log-log slope of ``onset - fit``
    on ``lambda`` with a ``confidence`` interval, and predicts ``t_fit + C / (eta lambda)``.
    """
    if not runs:
        raise ValueError("no runs to analyse")
    onsets = [_run_onset(run, fit_threshold=fit_threshold, rnc1_fraction=rnc1_fraction) for run in runs]
    zero = tuple(item.name for item in onsets if item.weight_decay == 0)
    summaries = []
    drop_means = {}
    for lr in sorted({item.lr for item in onsets}):
        members = [item for item in onsets if item.lr == lr and item.weight_decay > 0]
        if members:
            records = [OnsetRecord(item.weight_decay, item.seed, item.result) for item in members]
            summaries.append((lr, summarize_onsets(records, lr=lr, calibrate_on=calibrate_on, confidence=confidence)))
        for decay in sorted({item.weight_decay for item in members}):
            drop_means[(lr, decay)] = _mean_drop([item for item in members if item.weight_decay == decay])
    optimizers = tuple(sorted({item.optimizer for item in onsets}))
    notes = []
    if "adamw" in optimizers:
        notes.append(ADAMW_CAVEAT)
    if "sgd" in optimizers:
        notes.append(GD_CAVEAT)
    if zero:
        notes.append(f"{len(zero)} run(s) with weight decay 0 have no R6 prediction and are left out of the "
                     f"per-weight-decay summary: {', '.join(zero)}")
    for lr, summary in summaries:
        if summary.slope_excluded:
            notes.append(f"lr {lr:g}: {summary.slope_excluded} grokked run(s) with onset at the fit log (delay 0) "
                         "are left out of the slope fit (no logarithm)")
        if summary.slope_fit is None:
            notes.append(f"lr {lr:g}: fewer than two weight decays grokked, so no slope is fitted")
    return OnsetAnalysis(
        runs=tuple(onsets),
        summaries=tuple(summaries),
        zero_weight_decay=zero,
        optimizers=optimizers,
        fit_threshold=float(fit_threshold),
        rnc1_fraction=float(rnc1_fraction),
        calibrate_on=None if calibrate_on is None else float(calibrate_on),
        confidence=float(confidence),
        notes=tuple(notes),
        rnc1_drop_means=drop_means,
    )


def onset_analysis_dict(analysis: OnsetAnalysis) -> dict[str, Any]:
    """Every number of an :class:`OnsetAnalysis` as plain JSON-able data (NaN kept as float NaN)."""
    runs = []
    for item in analysis.runs:
        runs.append({
            "name": item.name,
            "seed": item.seed,
            "lr": item.lr,
            "weight_decay": item.weight_decay,
            "optimizer": item.optimizer,
            **dataclasses.asdict(item.result),
            "delay": item.delay,
            "onset_resolution": item.resolution,
            "rnc1_drop_step": item.rnc1_drop_step,
            "rnc1_drop_minus_onset": (
                None if item.rnc1_drop_step is None or item.result.onset_step is None
                else item.rnc1_drop_step - item.result.onset_step
            ),
        })
    learning_rates = []
    for lr, summary in analysis.summaries:
        fit = summary.slope_fit
        slope = None
        if fit is not None:
            slope = {
                **dataclasses.asdict(fit),
                "slope_ci": list(fit.slope_ci),
                "predicted_slope": -1.0,
                "consistent_with_prediction": bool(fit.slope_ci[0] <= -1.0 <= fit.slope_ci[1]),
            }
        rows = []
        for row in summary.rows:
            entry = dataclasses.asdict(row)
            entry["seeds"] = list(row.seeds)
            entry["rnc1_drop_mean"] = analysis.rnc1_drop_means.get((lr, row.weight_decay), math.nan)
            rows.append(entry)
        learning_rates.append({
            "lr": lr,
            "rows": rows,
            "slope_fit": slope,
            "slope_excluded": summary.slope_excluded,
            "calibration_weight_decay": summary.calibration_weight_decay,
            "onset_constant": summary.onset_constant,
        })
    return {
        "definitions": onset_definitions(fit_threshold=analysis.fit_threshold, rnc1_fraction=analysis.rnc1_fraction),
        "runs": runs,
        "learning_rates": learning_rates,
        "zero_weight_decay_runs": list(analysis.zero_weight_decay),
        "optimizers": list(analysis.optimizers),
        "notes": list(analysis.notes),
    }
