"""Grokking onset on logged training curves, and observed vs predicted onsets (R6, from Thm. 4.3).

Everything here is pure numpy on already-logged curves: arrays of logged ``steps`` (strictly
increasing) and of train accuracy, test accuracy (fractions in ``[0, 1]``) and RNC1.

**Definitions** (the theory spec R6 asks for a precise, per-seed onset):

* **Fit time** ``t_fit`` (:func:`fit_time`): the first logged step with train accuracy
  ``>= fit_threshold`` (0.99).
* **Plateau** (:func:`grokking_onset`): the median test accuracy over the ``plateau_points`` (3)
  logged points starting *at* the fit index (the fit point and the next two), so a single noisy log
  at the fit time does not set it.
* **Final**: the median test accuracy over the last ``final_points`` (5) logged points.
* **Level**: ``plateau + (final - plateau) / 2``, the midpoint of the post-fit rise.
* **Onset** ``t_grok``: the first logged step ``t_i`` at or after the fit with ``test_i >= level``
  that is *sustained*: a strict majority of the ``sustain`` (5) logged points starting at ``i``
  (fewer at the end of the curve) are ``>= level``. A single spike (or two in five) is not an onset.
  With ``sustain >= final_points`` such a step always exists when ``final > plateau``.
* **Status**: ``"never_fit"`` (no fit time); ``"grokked"`` when ``final - plateau >= min_gain``
  (0.05 absolute); otherwise ``"no_gap"`` when ``plateau >= generalized_accuracy`` (0.8: the test
  accuracy had already generalised when the training set was fitted, as for the paper's CNN) and
  ``"never_grokked"`` when it had not. ``generalized_accuracy`` is data-set dependent; 0.8 suits
  MNIST/Fashion-MNIST with 1000 training examples.

Caveat: the final value is whatever the run reached by its last log. A run still rising at the end
gets an onset relative to that partial rise (earlier than the eventual midpoint); compare ``final``
across seeds before trusting such onsets.

R6 predictions compared by :func:`summarize_onsets`: the **scaling law** (slope ``-1`` of
``log(t_grok - t_fit)`` on ``log(lambda)``) and the **calibrated** onset ``t_fit + C / (eta lambda)``
with ``C`` fitted on one weight decay. Both come from Thm. 4.3 for gradient descent (rates
**published**, exact forms **reconstructed**); under AdamW they are predictions to test, not
consequences of the theorem.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from ncgrok.theory._validation import as_array, as_count, as_scalar
from ncgrok.theory.timescales import LogLogFit, fit_loglog_slope, fit_onset_constant, predicted_onset

__all__ = [
    "STATUSES",
    "GrokkingOnset",
    "OnsetRecord",
    "WeightDecaySummary",
    "OnsetSummary",
    "fit_time",
    "grokking_onset",
    "rnc1_drop_time",
    "summarize_onsets",
]

STATUSES = ("grokked", "never_fit", "never_grokked", "no_gap")


# ---------------------------------------------------------------------------------------------
# Input checks


def _steps(steps: Any) -> np.ndarray:
    values = as_array("steps", steps, ndim=1)
    if values.size == 0:
        raise ValueError("steps must hold at least one logged step")
    if values.size > 1 and np.any(np.diff(values) <= 0):
        raise ValueError("steps must be strictly increasing (one entry per logged step, in order)")
    return values


def _curve(name: str, value: Any, length: int, *, accuracy: bool = False) -> np.ndarray:
    values = as_array(name, value, shape=(length,))
    if accuracy and np.any((values < 0) | (values > 1)):
        raise ValueError(f"{name} must be fractions in [0, 1] (not percentages), got range [{values.min():g}, {values.max():g}]")
    return values


def _step_value(steps: np.ndarray, index: int) -> int | float:
    value = float(steps[index])
    return int(value) if value.is_integer() else value


def _sustained_crossing(passes: np.ndarray, start: int, sustain: int) -> int | None:
    """First index ``i >= start`` with ``passes[i]`` and a strict majority of ``passes[i:i+sustain]``."""
    for index in range(start, passes.size):
        if passes[index]:
            window = passes[index : index + sustain]
            if 2 * int(window.sum()) > window.size:
                return index
    return None


# ---------------------------------------------------------------------------------------------
# Per-run quantities


def _fit_index(train_acc: np.ndarray, threshold: float) -> int | None:
    hits = np.flatnonzero(train_acc >= threshold)
    return int(hits[0]) if hits.size else None


def fit_time(steps: Any, train_acc: Any, *, threshold: float = 0.99) -> int | float | None:
    """First logged step with train accuracy ``>= threshold``; ``None`` if the run never fits (R6 ``t_fit``)."""
    steps = _steps(steps)
    train_acc = _curve("train_acc", train_acc, steps.size, accuracy=True)
    threshold = as_scalar("threshold", threshold, closed_unit=True)
    index = _fit_index(train_acc, threshold)
    return None if index is None else _step_value(steps, index)


@dataclass(frozen=True)
class GrokkingOnset:
    """Onset of one run (see the module docstring for every definition).

    ``status`` is one of :data:`STATUSES`. ``fit_step``/``onset_step`` are logged steps or ``None``;
    ``plateau`` is ``None`` for runs that never fit; ``level`` and ``onset_step`` are set only for
    ``"grokked"`` runs; ``final`` is always set.
    """

    status: str
    fit_step: int | float | None
    plateau: float | None
    final: float
    level: float | None
    onset_step: int | float | None

    @property
    def delay(self) -> float | None:
        """``onset_step - fit_step`` for grokked runs, else ``None``."""
        if self.onset_step is None or self.fit_step is None:
            return None
        return self.onset_step - self.fit_step


def grokking_onset(
    steps: Any,
    train_acc: Any,
    test_acc: Any,
    *,
    fit_threshold: float = 0.99,
    plateau_points: int = 3,
    final_points: int = 5,
    sustain: int = 5,
    min_gain: float = 0.05,
    generalized_accuracy: float = 0.8,
) -> GrokkingOnset:
    """Fit time, post-fit plateau, final accuracy, onset step and status of one run (R6).

    Definitions (module docstring): plateau = median test accuracy over ``plateau_points`` logs from
    the fit; final = median over the last ``final_points`` logs; onset = first logged step at or
    after the fit where test accuracy ``>= plateau + (final - plateau)/2`` with a strict majority of
    the ``sustain`` logs from there also above; status ``"grokked"`` needs ``final - plateau >=
    min_gain``, otherwise ``"no_gap"`` (plateau ``>= generalized_accuracy``) or ``"never_grokked"``.
    """
    steps = _steps(steps)
    train_acc = _curve("train_acc", train_acc, steps.size, accuracy=True)
    test_acc = _curve("test_acc", test_acc, steps.size, accuracy=True)
    fit_threshold = as_scalar("fit_threshold", fit_threshold, closed_unit=True)
    plateau_points = as_count("plateau_points", plateau_points)
    final_points = as_count("final_points", final_points)
    sustain = as_count("sustain", sustain)
    min_gain = as_scalar("min_gain", min_gain, positive=True)
    generalized_accuracy = as_scalar("generalized_accuracy", generalized_accuracy, closed_unit=True)

    final = float(np.median(test_acc[-final_points:]))
    fit_index = _fit_index(train_acc, fit_threshold)
    if fit_index is None:
        return GrokkingOnset("never_fit", None, None, final, None, None)
    fit_step = _step_value(steps, fit_index)
    plateau = float(np.median(test_acc[fit_index : fit_index + plateau_points]))
    if final - plateau < min_gain:
        status = "no_gap" if plateau >= generalized_accuracy else "never_grokked"
        return GrokkingOnset(status, fit_step, plateau, final, None, None)
    level = plateau + 0.5 * (final - plateau)
    onset_index = _sustained_crossing(test_acc >= level, fit_index, sustain)
    if onset_index is None:  # only possible when sustain < final_points
        return GrokkingOnset("never_grokked", fit_step, plateau, final, None, None)
    return GrokkingOnset("grokked", fit_step, plateau, final, level, _step_value(steps, onset_index))


def rnc1_drop_time(
    steps: Any, rnc1: Any, *, fit_step: Any, fraction: float = 0.1, sustain: int = 1
) -> int | float | None:
    """First logged step after ``fit_step`` where RNC1 ``<= fraction`` x its value at the fit.

    The reference is RNC1 at the first logged step ``>= fit_step``; the search starts at the next
    logged step. With ``sustain > 1`` a strict majority of the ``sustain`` logs from the crossing on
    must also be below (as for the onset). Returns ``None`` when ``fit_step`` is ``None`` (the run
    never fitted) or when RNC1 never drops that far. Compare with the onset: the paper reports
    that RNC1 falls together with the rise of test accuracy (Fig. 3).
    """
    steps = _steps(steps)
    rnc1 = _curve("rnc1", rnc1, steps.size)
    if np.any(rnc1 < 0):
        raise ValueError(f"rnc1 must be non-negative, got minimum {rnc1.min():.6g}")
    fraction = as_scalar("fraction", fraction, open_unit=True)
    sustain = as_count("sustain", sustain)
    if fit_step is None:
        return None
    fit_step = as_scalar("fit_step", fit_step)
    later = np.flatnonzero(steps >= fit_step)
    if later.size == 0:
        raise ValueError(f"fit_step {fit_step:g} is after the last logged step {steps[-1]:g}")
    fit_index = int(later[0])
    target = fraction * rnc1[fit_index]
    index = _sustained_crossing(rnc1 <= target, fit_index + 1, sustain)
    return None if index is None else _step_value(steps, index)


# ---------------------------------------------------------------------------------------------
# Sweep summary


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
    """Summarise onsets of a weight-decay sweep and compare them with the R6 predictions.

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
