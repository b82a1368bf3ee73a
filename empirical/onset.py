"""Grokking onset on logged training curves: fit, collapse and re-fit, onset, censoring (R6).

Everything here is pure numpy on already-logged curves: arrays of logged ``steps`` (strictly
increasing) and of train accuracy, test accuracy (fractions in ``[0, 1]``) and RNC1.

**Definitions.** Every threshold is a keyword argument of :func:`grokking_onset` (and of
:func:`fit_events` for the training-accuracy events); defaults in parentheses.

* **Fit step** ``t_fit`` (:func:`first_fit_step`, ``GrokkingOnset.fit_step``): the first logged step
  with train accuracy ``>= fit_threshold`` (0.99). An observed step, not the predicted fitting time
  ``tau1`` of :func:`theory.timescales.fit_time`.
* **Fit episodes, collapses, re-fits** (:func:`fit_events`). Train accuracy is followed with
  hysteresis: an *episode* starts at a logged step where it reaches ``near_fit_threshold`` (0.9) and
  ends with a **fit collapse** at the first later logged step where it falls below
  ``collapse_threshold`` (0.7); the next episode starts when it reaches ``near_fit_threshold`` again.
  ``fit_collapses`` counts the collapses. An episode's *fit* is its first logged step with train
  accuracy ``>= fit_threshold``; an episode that collapsed before reaching that level counts as a fit
  attempt starting at its first step (e.g. 0.95 at step 4k, a fall to 0.45, 0.99 first at 14k: the
  first fit is at 4k, the re-fit at 14k). ``first_fit`` is the earliest fit or fit attempt;
  ``last_refit`` is the fit of the episode after the last collapse (``None`` if the run never fits
  again). Without a collapse, ``first_fit == last_refit == fit_step``.
* **Plateau**: the median test accuracy over the ``plateau_points`` (3) logged points starting *at*
  the fit index (the fit point and the next two), so a single noisy log at the fit does not set it.
* **Final**: the median test accuracy over the last ``final_points`` (5) logged points.
* **Level**: ``plateau + (final - plateau) / 2``, the midpoint of the post-fit rise.
* **Onset** ``t_grok``: the first logged step ``t_i`` at or after the fit with ``test_i >= level``
  that is *sustained*: a strict majority of the ``sustain`` (5) logged points starting at ``i``
  (fewer at the end of the curve) are ``>= level``. A single spike (or two in five) is not an onset.
  With ``sustain >= final_points`` such a step always exists when ``final > plateau``.
* **Censoring** (a rise still under way at the horizon, the last logged step). Let ``t_25`` and
  ``t_75`` be the sustained crossings of ``plateau + 0.25 (final - plateau)`` and of the 0.75 level,
  ``D = max(t_75 - t_25, gap)`` (``gap`` the largest spacing between the last ``final_points`` logs)
  and ``central = 0.5 (final - plateau) / D`` the rise's mean rate between them. The *end rate* is
  the least-squares slope of test accuracy on step over the logs in ``[t_last - D, t_last]`` (at
  least the last ``final_points`` logs). The run is ``censored`` when the end rate is clearly
  positive (at least twice its least-squares standard error) and ``>= censor_fraction`` (0.5) x
  ``central``. For a logistic rise this holds until about 95% of the eventual rise is reached, so a
  run cut in the middle of its rise is never ``grokked`` (its midpoint would be that of a partial
  rise); its onset is only known to be later than its last logged step. A run still being trained
  is judged on what it has logged so far.
* **Status**: ``"never_fit"`` (no fit time); ``"grokked"`` when ``final - plateau >= min_gain``
  (0.05 absolute) and the rise is not censored; ``"censored"`` when it is; otherwise ``"no_gap"``
  when ``plateau >= generalized_accuracy`` (0.8: the test accuracy had already generalised when the
  training set was fitted, as for the paper's CNN) and ``"never_grokked"`` when it had not.
  ``generalized_accuracy`` is data-set dependent; 0.8 suits MNIST/Fashion-MNIST with 1000 training
  examples. Both ``censored`` and ``never_grokked`` runs have an onset later than their last logged
  step (``GrokkingOnset.last_step``); the claims ledger treats them as right-censored.
  ``"diverged"`` (:func:`diverged_onset`): training diverged (the run's ``summary.json`` says so), so
  its curves stop at the divergence and it has no onset; counted, never used as an onset.

What the paper claims about onsets (Sec. 5.1, Fig. 3) is qualitative: stronger weight decay makes
grokking earlier and the gap shorter, and RNC1 falls with the rise of test accuracy rather than with
the fit. Thm. 4.3 is a *lower bound*, for gradient descent, on the steps until RNC1 is small; it
says nothing directly about test accuracy. The **scaling law** (slope ``-1`` of
``log(t_grok - t_fit)`` on ``log(lambda)``) and the **calibrated** onset ``t_fit + C / (eta lambda)``
compared by ``empirical.onset_analysis.summarize_onsets`` are **our reconstruction** (R6) with Thm. 4.3's time scale, not
predictions of the paper; under AdamW they are hypotheses to test (:data:`ADAMW_CAVEAT`; for
gradient descent :data:`GD_CAVEAT`).

The same definitions in words, with the thresholds in force, are :func:`onset_definitions` (printed
by ``ncgrok onset`` and stored in its JSON).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncgrok.theory._validation import as_array, as_count, as_scalar

__all__ = [
    "STATUSES",
    "GrokkingOnset",
    "diverged_onset",
    "run_onset",
    "FitEvents",
    "fit_events",
    "FIT_THRESHOLD",
    "RNC1_FRACTION",
    "ADAMW_CAVEAT",
    "GD_CAVEAT",
    "onset_definitions",
    "first_fit_step",
    "grokking_onset",
    "rnc1_drop_time",
]

STATUSES = ("grokked", "censored", "never_fit", "never_grokked", "no_gap", "diverged")

# Defaults of the definitions (module docstring); the functions below and onset_definitions use them.
FIT_THRESHOLD = 0.99
NEAR_FIT_THRESHOLD = 0.9
COLLAPSE_THRESHOLD = 0.7
PLATEAU_POINTS = 3
FINAL_POINTS = 5
SUSTAIN = 5
MIN_GAIN = 0.05
GENERALIZED_ACCURACY = 0.8
CENSOR_FRACTION = 0.5
RNC1_FRACTION = 0.1

ADAMW_CAVEAT = (
    "AdamW: decoupled weight decay multiplies every weight by (1 - eta lambda) per step, so the "
    "1/(eta lambda) time scale of the shrinkage is exact; the balancedness/UFM identities behind "
    "Thm. 4.3 (a gradient-descent bound) are not exact under Adam's preconditioning, so the R6 law, our "
    "reconstruction, is a hypothesis tested here, not a consequence of the theorem."
)
GD_CAVEAT = (
    "SGD: Thm. 4.3 is stated for full-batch gradient descent, as a lower bound on the steps until RNC1 "
    "is small; the onset form t_fit + C/(eta lambda) is our reconstruction (R6)."
)


def onset_definitions(*, fit_threshold: float = FIT_THRESHOLD, rnc1_fraction: float = RNC1_FRACTION) -> dict[str, str]:
    """Every reported onset quantity defined in words (the module docstring's definitions at the
    default windows and event thresholds, with the given ``fit_threshold`` and ``rnc1_fraction``)."""
    return {
        "fit_step": f"first logged step with train accuracy >= {fit_threshold:g}",
        "onset_step": "first logged step at or after the fit where test accuracy >= plateau + (final - plateau)/2, "
                      f"with a strict majority of the {SUSTAIN} logs from there also above (empirical.onset)",
        "plateau": f"median test accuracy over the fit log and the next {PLATEAU_POINTS - 1}",
        "final": f"median test accuracy over the last {FINAL_POINTS} logs",
        "status": f"grokked if final - plateau >= {MIN_GAIN:g} and the rise has finished; censored if test accuracy "
                  f"still climbs at the last log at >= {CENSOR_FRACTION:g} x the rise's central rate; else no_gap "
                  f"(plateau >= {GENERALIZED_ACCURACY:g}) or never_grokked; never_fit if train accuracy never "
                  "reached the fit threshold; diverged if training diverged (the run's summary.json; its curves "
                  "stop there, so it has no onset)",
        "first_fit": f"first fit, or the start of a fit attempt (train accuracy >= {NEAR_FIT_THRESHOLD:g}) that "
                     f"collapsed below {COLLAPSE_THRESHOLD:g} before reaching the fit threshold",
        "last_refit": "fit step of the episode after the last collapse (None if the run never fits again)",
        "fit_collapses": f"times train accuracy fell below {COLLAPSE_THRESHOLD:g} after reaching {NEAR_FIT_THRESHOLD:g}",
        "last_step": "last logged step (the onset of a censored or never_grokked run is later)",
        "rnc1_drop_step": f"first logged step after the fit with RNC1 <= {rnc1_fraction:g} x RNC1 at the fit",
        "delay": "onset_step - fit_step",
        "prediction": "t_fit + C / (lr * weight_decay), C fitted on the calibration weight decay (R6, our "
                      "reconstruction with the time scale of Thm. 4.3)",
    }


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


def first_fit_step(steps: Any, train_acc: Any, *, threshold: float = FIT_THRESHOLD) -> int | float | None:
    """First logged step with train accuracy ``>= threshold``; ``None`` if the run never fits.

    The observed ``t_fit`` of R6 (a logged step), not the predicted fitting time ``tau1`` of
    :func:`theory.timescales.fit_time`."""
    steps = _steps(steps)
    train_acc = _curve("train_acc", train_acc, steps.size, accuracy=True)
    threshold = as_scalar("threshold", threshold, closed_unit=True)
    index = _fit_index(train_acc, threshold)
    return None if index is None else _step_value(steps, index)


@dataclass(frozen=True)
class FitEvents:
    """Training-accuracy events of one run (module docstring: fit episodes, collapses, re-fits).

    ``first_fit``/``last_refit`` are logged steps or ``None``; ``collapse_steps`` are the logged
    steps where train accuracy fell below the collapse threshold (``len == fit_collapses``).
    """

    first_fit: int | float | None
    last_refit: int | float | None
    fit_collapses: int
    collapse_steps: tuple[int | float, ...]


def _fit_event_indices(
    train_acc: np.ndarray, fit_threshold: float, near_fit_threshold: float, collapse_threshold: float
) -> tuple[int | None, int | None, list[int]]:
    """Indices of the first fit (or fit attempt), of the last re-fit, and of every collapse."""
    first = None
    episode_start = None  # index where the current episode started, None between episodes
    episode_fit = None  # index where the current episode reached fit_threshold
    collapses: list[int] = []
    for index, value in enumerate(train_acc):
        if episode_start is None and value >= near_fit_threshold:
            episode_start, episode_fit = index, None
        if episode_start is None:
            continue
        if episode_fit is None and value >= fit_threshold:
            episode_fit = index
            first = index if first is None else first
        if value < collapse_threshold:
            if first is None:  # a fit attempt that collapsed before reaching fit_threshold
                first = episode_start
            collapses.append(index)
            episode_start = episode_fit = None
    return first, episode_fit, collapses


def _check_fit_thresholds(fit_threshold: Any, near_fit_threshold: Any, collapse_threshold: Any) -> tuple[float, float, float]:
    fit_threshold = as_scalar("fit_threshold", fit_threshold, closed_unit=True)
    near_fit_threshold = as_scalar("near_fit_threshold", near_fit_threshold, closed_unit=True)
    collapse_threshold = as_scalar("collapse_threshold", collapse_threshold, closed_unit=True)
    if not collapse_threshold < near_fit_threshold <= fit_threshold:
        raise ValueError(
            "need collapse_threshold < near_fit_threshold <= fit_threshold, got "
            f"{collapse_threshold:g}, {near_fit_threshold:g}, {fit_threshold:g}; lower collapse_threshold "
            "or raise near_fit_threshold"
        )
    return fit_threshold, near_fit_threshold, collapse_threshold


def fit_events(
    steps: Any,
    train_acc: Any,
    *,
    fit_threshold: float = FIT_THRESHOLD,
    near_fit_threshold: float = NEAR_FIT_THRESHOLD,
    collapse_threshold: float = COLLAPSE_THRESHOLD,
) -> FitEvents:
    """First fit, last re-fit and the training-accuracy collapses of one run (module docstring).

    Needs ``collapse_threshold < near_fit_threshold <= fit_threshold``.
    """
    steps = _steps(steps)
    train_acc = _curve("train_acc", train_acc, steps.size, accuracy=True)
    thresholds = _check_fit_thresholds(fit_threshold, near_fit_threshold, collapse_threshold)
    return _fit_events(steps, train_acc, thresholds)


def _fit_events(steps: np.ndarray, train_acc: np.ndarray, thresholds: tuple[float, float, float]) -> FitEvents:
    first, last, collapses = _fit_event_indices(train_acc, *thresholds)
    return FitEvents(
        first_fit=None if first is None else _step_value(steps, first),
        last_refit=None if last is None else _step_value(steps, last),
        fit_collapses=len(collapses),
        collapse_steps=tuple(_step_value(steps, index) for index in collapses),
    )


@dataclass(frozen=True)
class GrokkingOnset:
    """Onset of one run (see the module docstring for every definition).

    ``status`` is one of :data:`STATUSES`. ``fit_step``/``onset_step`` are logged steps or ``None``;
    ``plateau`` is ``None`` for runs that never fit; ``level`` and ``onset_step`` are set only for
    ``"grokked"`` runs; ``final`` is always set. ``first_fit``, ``last_refit`` and ``fit_collapses``
    are the :class:`FitEvents`; ``last_step`` is the last logged step (the censoring point of
    ``"censored"`` and ``"never_grokked"`` runs).
    """

    status: str
    fit_step: int | float | None
    plateau: float | None
    final: float
    level: float | None
    onset_step: int | float | None
    first_fit: int | float | None = None
    last_refit: int | float | None = None
    fit_collapses: int = 0
    last_step: int | float | None = None

    @property
    def delay(self) -> float | None:
        """``onset_step - fit_step`` for grokked runs, else ``None``."""
        if self.onset_step is None or self.fit_step is None:
            return None
        return self.onset_step - self.fit_step


def _slope_and_stderr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of ``y`` on ``x`` and its standard error (0 with fewer than 3 points)."""
    centred = x - x.mean()
    sxx = float(np.dot(centred, centred))
    slope = float(np.dot(centred, y - y.mean()) / sxx)
    if x.size < 3:
        return slope, 0.0
    residuals = y - y.mean() - slope * centred
    return slope, math.sqrt(float(np.dot(residuals, residuals)) / (x.size - 2) / sxx)


def _rise_censored(
    steps: np.ndarray, test_acc: np.ndarray, fit_index: int, plateau: float, final: float,
    *, sustain: int, final_points: int, censor_fraction: float,
) -> bool:
    """Whether the post-fit rise is still under way at the last log (module docstring: Censoring)."""
    rise = final - plateau
    quarter = _sustained_crossing(test_acc >= plateau + 0.25 * rise, fit_index, sustain)
    three_quarters = _sustained_crossing(test_acc >= plateau + 0.75 * rise, fit_index, sustain)
    tail = steps[-final_points:]
    gap = float(np.max(np.diff(tail))) if tail.size > 1 else 0.0
    duration = gap
    if quarter is not None and three_quarters is not None:
        duration = max(float(steps[three_quarters] - steps[quarter]), gap)
    if duration <= 0:
        return False
    window = steps >= steps[-1] - duration
    window[-final_points:] = True
    if window.sum() < 2:
        return False
    end_rate, stderr = _slope_and_stderr(steps[window], test_acc[window])
    return end_rate >= censor_fraction * 0.5 * rise / duration and end_rate >= 2.0 * stderr


def grokking_onset(
    steps: Any,
    train_acc: Any,
    test_acc: Any,
    *,
    fit_threshold: float = FIT_THRESHOLD,
    near_fit_threshold: float = NEAR_FIT_THRESHOLD,
    collapse_threshold: float = COLLAPSE_THRESHOLD,
    plateau_points: int = PLATEAU_POINTS,
    final_points: int = FINAL_POINTS,
    sustain: int = SUSTAIN,
    min_gain: float = MIN_GAIN,
    generalized_accuracy: float = GENERALIZED_ACCURACY,
    censor_fraction: float = CENSOR_FRACTION,
) -> GrokkingOnset:
    """Fit events, post-fit plateau, final accuracy, onset step and status of one run (R6).

    Definitions (module docstring): plateau = median test accuracy over ``plateau_points`` logs from
    the fit; final = median over the last ``final_points`` logs; onset = first logged step at or
    after the fit where test accuracy ``>= plateau + (final - plateau)/2`` with a strict majority of
    the ``sustain`` logs from there also above; status ``"grokked"`` needs ``final - plateau >=
    min_gain`` and a finished rise (``"censored"`` when the test accuracy still climbs at
    ``censor_fraction`` x the rise's central rate at the last log), otherwise ``"no_gap"`` (plateau
    ``>= generalized_accuracy``) or ``"never_grokked"``. Collapses and re-fits of the training
    accuracy use ``near_fit_threshold`` and ``collapse_threshold`` (:func:`fit_events`).
    """
    steps = _steps(steps)
    train_acc = _curve("train_acc", train_acc, steps.size, accuracy=True)
    test_acc = _curve("test_acc", test_acc, steps.size, accuracy=True)
    thresholds = _check_fit_thresholds(fit_threshold, near_fit_threshold, collapse_threshold)
    plateau_points = as_count("plateau_points", plateau_points)
    final_points = as_count("final_points", final_points)
    sustain = as_count("sustain", sustain)
    min_gain = as_scalar("min_gain", min_gain, positive=True)
    generalized_accuracy = as_scalar("generalized_accuracy", generalized_accuracy, closed_unit=True)
    censor_fraction = as_scalar("censor_fraction", censor_fraction, positive=True)

    fits = _fit_events(steps, train_acc, thresholds)
    events = dict(first_fit=fits.first_fit, last_refit=fits.last_refit, fit_collapses=fits.fit_collapses,
                  last_step=_step_value(steps, steps.size - 1))
    final = float(np.median(test_acc[-final_points:]))
    fit_index = _fit_index(train_acc, thresholds[0])
    if fit_index is None:
        return GrokkingOnset("never_fit", None, None, final, None, None, **events)
    fit_step = _step_value(steps, fit_index)
    plateau = float(np.median(test_acc[fit_index : fit_index + plateau_points]))
    if final - plateau < min_gain:
        status = "no_gap" if plateau >= generalized_accuracy else "never_grokked"
        return GrokkingOnset(status, fit_step, plateau, final, None, None, **events)
    if _rise_censored(steps, test_acc, fit_index, plateau, final,
                      sustain=sustain, final_points=final_points, censor_fraction=censor_fraction):
        return GrokkingOnset("censored", fit_step, plateau, final, None, None, **events)
    level = plateau + 0.5 * (final - plateau)
    onset_index = _sustained_crossing(test_acc >= level, fit_index, sustain)
    if onset_index is None:  # only possible when sustain < final_points
        return GrokkingOnset("never_grokked", fit_step, plateau, final, None, None, **events)
    return GrokkingOnset("grokked", fit_step, plateau, final, level, _step_value(steps, onset_index), **events)


def diverged_onset(result: GrokkingOnset) -> GrokkingOnset:
    """``result`` of a run whose training diverged: status ``"diverged"``, no level or onset (its
    curves stop at the divergence, so a rise there is no grokking); the fit events are kept."""
    return dataclasses.replace(result, status="diverged", level=None, onset_step=None)


def run_onset(run: Any, *, fit_threshold: float = FIT_THRESHOLD) -> GrokkingOnset:
    """`grokking_onset` of a logged run (anything with ``steps``, ``column(name)`` and ``diverged``,
    e.g. ``empirical.runs.Run``), as `diverged_onset` when its training diverged."""
    result = grokking_onset(run.steps, run.column("train_acc"), run.column("test_acc"), fit_threshold=fit_threshold)
    return diverged_onset(result) if run.diverged else result


def rnc1_drop_time(
    steps: Any, rnc1: Any, *, fit_step: Any, fraction: float = RNC1_FRACTION, sustain: int = 1
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
