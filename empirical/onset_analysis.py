"""Onsets of a weight-decay sweep compared with the R6 onset law, per weight decay and learning rate.

R6 is our reconstruction with the time scale of Thm. 4.3 (a gradient-descent lower bound on the
steps until RNC1 is small): the delay ``t_grok - t_fit`` scales as ``1 / lambda`` (slope ``-1`` of
``log(delay)`` on ``log(lambda)``) and equals ``C / (eta lambda)`` with ``C`` calibrated on one
weight decay. :func:`summarize_onsets` compares onsets of one learning rate with both;
:func:`analyze_onsets` applies the definitions of ``empirical.onset`` to every run of a sweep (fit
step, sustained midpoint crossing of test accuracy, status, RNC1 drop step) and summarises each
learning rate; :func:`onset_analysis_dict` is the result as plain JSON-able data.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ncgrok.empirical.runs import Run
from ncgrok.empirical.onset import (
    ADAMW_CAVEAT,
    FIT_THRESHOLD,
    GD_CAVEAT,
    RNC1_FRACTION,
    STATUSES,
    GrokkingOnset,
    onset_definitions,
    rnc1_drop_time,
    run_onset,
)
from ncgrok.theory._validation import as_scalar
from ncgrok.theory.timescales import LogLogFit, fit_loglog_slope, fit_onset_constant, predicted_onset

__all__ = [
    "OnsetRecord",
    "WeightDecaySummary",
    "OnsetSummary",
    "summarize_onsets",
    "RunOnset",
    "OnsetAnalysis",
    "analyze_onsets",
    "onset_analysis_dict",
]


# ---------------------------------------------------------------------------------------------
# One learning rate: per weight decay, slope and calibration


@dataclass(frozen=True)
class OnsetRecord:
    """One run of a sweep: its weight decay, seed and :class:`GrokkingOnset`."""

    weight_decay: float
    seed: int
    result: GrokkingOnset


@dataclass(frozen=True)
class WeightDecaySummary:
    """Onsets of all seeds at one weight decay.

    Every run is counted in ``num_runs`` and in exactly one of the status counts. Delay statistics
    (``t_grok - t_fit`` in steps) are over grokked runs only: mean, sample std (``ddof = 1``; NaN with
    fewer than two grokked runs), min and max; NaN when no run grokked. ``fit_mean``/``onset_mean``
    are over grokked runs too. ``predicted_onset`` is ``fit_mean + C / (lr weight_decay)``,
    ``predicted_delay`` is ``C / (lr weight_decay)``; ``onset_relative_error`` is
    ``(predicted_onset - onset_mean) / onset_mean`` and ``delay_relative_error`` is
    ``(predicted_delay - delay_mean) / delay_mean`` (zero by construction at the calibration weight
    decay). Predictions are NaN when there is no calibration or no grokked run here.
    """

    weight_decay: float
    num_runs: int
    num_grokked: int
    num_never_fit: int
    num_never_grokked: int
    num_no_gap: int
    delay_mean: float
    delay_std: float
    delay_min: float
    delay_max: float
    fit_mean: float
    onset_mean: float
    predicted_onset: float
    predicted_delay: float
    onset_relative_error: float
    delay_relative_error: float
    seeds: tuple[int, ...] = field(default=())
    num_censored: int = 0
    num_diverged: int = 0


@dataclass(frozen=True)
class OnsetSummary:
    """Per-weight-decay rows (ascending ``weight_decay``), the log-log slope fit and the calibration.

    ``slope_fit`` is :func:`theory.timescales.fit_loglog_slope` on the per-seed delays of grokked
    runs (repeated weight decays; ``None`` with fewer than two distinct weight decays that grokked).
    ``onset_constant`` is ``C`` from :func:`theory.timescales.fit_onset_constant` on the grokked seeds
    at ``calibration_weight_decay`` (``None`` when no weight decay grokked).
    ``slope_excluded`` counts grokked runs with zero delay (onset at the fit log), which have no
    logarithm and are left out of the slope fit (but not of the rows).
    """

    rows: tuple[WeightDecaySummary, ...]
    slope_fit: LogLogFit | None
    calibration_weight_decay: float | None
    onset_constant: float | None
    lr: float
    slope_excluded: int = 0


def _record(item: Any, index: int) -> OnsetRecord:
    if isinstance(item, OnsetRecord):
        return item
    if isinstance(item, Mapping):
        try:
            return OnsetRecord(float(item["weight_decay"]), int(item.get("seed", index)), item["result"])
        except KeyError as error:
            raise ValueError(f"records[{index}] lacks the key {error.args[0]!r} (need weight_decay, result)") from None
    raise ValueError(f"records[{index}] must be an OnsetRecord or a mapping, got {type(item).__name__}")


def summarize_onsets(
    records: Iterable[Any],
    *,
    lr: float,
    calibrate_on: float | None = None,
    confidence: float = 0.95,
) -> OnsetSummary:
    """Summarise onsets of a weight-decay sweep and compare them with our reconstructed R6 onset law.

    ``records`` are :class:`OnsetRecord` s (or mappings with ``weight_decay``, ``seed``, ``result``).
    ``lr`` is the step size ``eta`` of the prediction ``C / (eta lambda)``. ``calibrate_on`` is the
    weight decay whose grokked seeds fix ``C`` (least squares, i.e. ``C = mean delay x eta lambda``);
    by default the middle one of the weight decays with at least one grokked run, in ascending order
    (the lower middle for an even count: 0.01 for the paper's sweep 0.001 ... 0.3). Every run is
    counted; runs that never fitted or never grokked appear in the status counts, never silently
    dropped.
    """
    lr = as_scalar("lr", lr, positive=True)
    confidence = as_scalar("confidence", confidence, open_unit=True)
    items = [_record(item, index) for index, item in enumerate(records)]
    if not items:
        raise ValueError("records is empty; pass at least one run")
    for index, item in enumerate(items):
        as_scalar(f"records[{index}].weight_decay", item.weight_decay, positive=True)
        if not isinstance(item.result, GrokkingOnset):
            raise ValueError(f"records[{index}].result must be a GrokkingOnset, got {type(item.result).__name__}")
        if item.result.status not in STATUSES:
            raise ValueError(f"records[{index}] has unknown status {item.result.status!r}")

    decays = sorted({float(item.weight_decay) for item in items})
    groups = {decay: [item for item in items if float(item.weight_decay) == decay] for decay in decays}
    grokked = {decay: [item.result for item in group if item.result.status == "grokked"] for decay, group in groups.items()}
    grokked_decays = [decay for decay in decays if grokked[decay]]

    # Scaling law on per-seed delays.
    # A zero delay (onset at the fit log itself) has no logarithm: such runs are left out of the
    # slope fit only, and counted in ``slope_excluded``.
    pairs = [(decay, result.delay) for decay in grokked_decays for result in grokked[decay]]
    positive = [(decay, delay) for decay, delay in pairs if delay > 0]
    slope = None
    if len({decay for decay, _ in positive}) >= 2:
        slope = fit_loglog_slope([d for d, _ in positive], [t for _, t in positive], confidence=confidence)

    # Calibration of C on one weight decay.
    constant = None
    calibration = None
    if calibrate_on is not None:
        calibration = as_scalar("calibrate_on", calibrate_on, positive=True)
        if calibration not in grokked:
            raise ValueError(f"calibrate_on = {calibration:g} is not a weight decay of the records ({decays})")
        if not grokked[calibration]:
            raise ValueError(f"calibrate_on = {calibration:g}: no run grokked there, so C cannot be fitted")
    elif grokked_decays:
        calibration = grokked_decays[(len(grokked_decays) - 1) // 2]
    if calibration is not None:
        runs = grokked[calibration]
        constant = fit_onset_constant(
            [calibration] * len(runs),
            [result.onset_step for result in runs],
            lr=lr,
            fit_times=[result.fit_step for result in runs],
        )

    rows = []
    nan = math.nan
    for decay in decays:
        group = groups[decay]
        results = grokked[decay]
        counts = {status: sum(item.result.status == status for item in group) for status in STATUSES}
        delays = np.array([result.delay for result in results], dtype=float)
        fits = np.array([result.fit_step for result in results], dtype=float)
        onsets = np.array([result.onset_step for result in results], dtype=float)
        if delays.size:
            delay_mean, delay_min, delay_max = float(delays.mean()), float(delays.min()), float(delays.max())
            delay_std = float(delays.std(ddof=1)) if delays.size > 1 else nan
            fit_mean, onset_mean = float(fits.mean()), float(onsets.mean())
        else:
            delay_mean = delay_std = delay_min = delay_max = fit_mean = onset_mean = nan
        predicted = predicted_delay = onset_error = delay_error = nan
        if constant is not None and delays.size:
            predicted = float(predicted_onset(decay, lr=lr, fit_time=fit_mean, constant=constant))
            predicted_delay = predicted - fit_mean
            onset_error = (predicted - onset_mean) / onset_mean if onset_mean else nan
            delay_error = (predicted_delay - delay_mean) / delay_mean if delay_mean else nan
        rows.append(
            WeightDecaySummary(
                weight_decay=decay,
                num_runs=len(group),
                num_grokked=counts["grokked"],
                num_never_fit=counts["never_fit"],
                num_never_grokked=counts["never_grokked"],
                num_no_gap=counts["no_gap"],
                num_censored=counts["censored"],
                num_diverged=counts["diverged"],
                delay_mean=delay_mean,
                delay_std=delay_std,
                delay_min=delay_min,
                delay_max=delay_max,
                fit_mean=fit_mean,
                onset_mean=onset_mean,
                predicted_onset=predicted,
                predicted_delay=predicted_delay,
                onset_relative_error=onset_error,
                delay_relative_error=delay_error,
                seeds=tuple(int(item.seed) for item in group),
            )
        )
    return OnsetSummary(
        rows=tuple(rows),
        slope_fit=slope,
        calibration_weight_decay=calibration,
        onset_constant=constant,
        lr=lr,
        slope_excluded=len(pairs) - len(positive),
    )


# ---------------------------------------------------------------------------------------------
# A sweep: every run, every learning rate


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
    """Every run's onset, and one :class:`OnsetSummary` per learning rate.

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
    rnc1_drop_means: Mapping[tuple[float, float], float] = field(default_factory=dict)


def _run_onset(run: Run, *, fit_threshold: float, rnc1_fraction: float) -> RunOnset:
    steps = run.steps
    result = run_onset(run, fit_threshold=fit_threshold)
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
    :func:`summarize_onsets` with ``calibrate_on`` (default: its middle weight decay),
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
    diverged = [item.name for item in onsets if item.result.status == "diverged"]
    if diverged:
        notes.append(f"{len(diverged)} of {len(onsets)} run(s) diverged in training (their summary.json): counted as "
                     f"'diverged', with no onset: {', '.join(diverged)}")
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
