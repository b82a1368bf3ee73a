"""Forecast the grokking onset of a run while it is still memorising, without the test set.

The paper's mechanism (Sec. 4-5): after the training set is fitted, the within-class variance of the
representation keeps contracting on the slow ``1/(eta lambda)`` time scale of weight decay (Thm. 4.3),
and test accuracy rises when the *population* within-class variance has contracted enough (Thm. 3.2
bounds the error by it). A forecaster may therefore watch the contraction, which is visible in
quantities measured without the test set, and extrapolate it to the level at which runs grok.

Two forecasters, both reading only the rows logged up to the forecast step and only the columns in
``ALLOWED_COLUMNS`` (never test accuracy or test loss; a test scrambles those and checks that the
forecast does not move):

* ``variance-crossing`` (ours): fit a straight line to ``log V`` over the last ``window`` logged
  post-fit rows, where ``V`` is the training RNC1 by default (or the held-out within-class variance,
  a population estimate by Thm. 4.1, or NC2 or NC1: ``ForecastSettings.signal``), and extrapolate to
  ``log V(t_fit) + delta``.
  The contraction ``delta`` (how far ``log V`` has fallen from the fit to the onset) is calibrated on
  completed runs, leaving the forecast run out. 80% interval: Monte Carlo over the slope's sampling
  distribution and the calibration runs' ``delta`` values.
* ``r6-law`` (our reconstruction R6, not a claim of the paper): ``t_fit + C / (eta lambda)`` with ``C``
  the median of ``(onset - fit) * eta * lambda`` over the calibration runs; interval from their 10th
  and 90th percentiles. It ignores everything measured after the fit.

The observed onsets used for calibration and for the backtest come from
:func:`ncgrok.empirical.onset.grokking_onset` (test accuracy of *other*, completed runs).

During training, ``ncgrok train/sweep --forecast`` runs both forecasters after every logged step and
keeps their answers in each run's ``forecast.csv`` (:mod:`ncgrok.empirical.forecast_live`);
``empirical.forecast_figure`` draws that history against the observed onset.

Statuses: ``forecast``; ``insufficient_data`` (not fitted yet, fewer than ``min_points`` post-fit
rows, or no completed run to calibrate on); ``no_onset_expected`` (the variance is not contracting,
or the crossing lies beyond the run's horizon: "no onset expected before step N");
``already_grokked`` (the forecaster's own criterion was met at or before the forecast step: the
variance has already contracted by ``delta``; judged without test accuracy); ``diverged`` (training
diverged, per the run's ``summary.json``: no onset to forecast; never calibrated or backtested on).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ncgrok.files import json_safe

from ncgrok.empirical.ledger.core import RunCurves
from ncgrok.empirical.onset import grokking_onset

__all__ = [
    "ALLOWED_COLUMNS",
    "FORECASTERS",
    "FORECAST_STATUSES",
    "ForecastSettings",
    "Forecast",
    "Calibration",
    "calibrate",
    "forecast_run",
    "forecast_runs",
    "curves_through",
    "backtest",
]

FORECASTERS = ("variance-crossing", "r6-law")
FORECAST_STATUSES = ("forecast", "no_onset_expected", "insufficient_data", "already_grokked", "diverged")
# what a forecast may read: training-set measures and the held-out (not test) variance
ALLOWED_COLUMNS = ("step", "train_acc", "train_loss", "rnc1", "within_var", "nc1", "nc2", "heldout_within_var")
# the contracting quantity the variance-crossing forecaster extrapolates (ForecastSettings.signal)
SIGNALS = ("rnc1", "heldout_within_var", "nc2", "nc1")


@dataclass(frozen=True)
class ForecastSettings:
    """``signal``: the column extrapolated (one of ``SIGNALS``; ``rnc1`` by default: on the ``ncgrok grok``
    sweep it gave the smallest half-way error of the four, see the README); ``fit_threshold``: train
    accuracy that counts as fitted (as in ``onset``); ``min_points``: post-fit
    rows needed; ``window``: trailing post-fit rows in the slope fit; ``coverage``: interval mass;
    ``draws``/``seed``: Monte Carlo of the interval."""

    signal: str = "rnc1"
    fit_threshold: float = 0.99
    min_points: int = 4
    window: int = 8
    coverage: float = 0.8
    draws: int = 4000
    seed: int = 0


@dataclass(frozen=True)
class Calibration:
    """What completed runs say: per run, the log-variance contraction from fit to onset (``deltas``)
    and the R6 constant ``(onset - fit) * eta * lambda`` (``constants``); run names for leave-one-out."""

    names: tuple[str, ...] = ()
    deltas: tuple[float, ...] = ()
    constants: tuple[float, ...] = ()

    def __add__(self, other: "Calibration") -> "Calibration":
        return Calibration(self.names + other.names, self.deltas + other.deltas, self.constants + other.constants)

    def without(self, name: str) -> "Calibration":
        keep = [i for i, n in enumerate(self.names) if n != name]
        return Calibration(tuple(self.names[i] for i in keep), tuple(self.deltas[i] for i in keep),
                           tuple(self.constants[i] for i in keep))


@dataclass(frozen=True)
class Forecast:
    run: str
    forecaster: str
    status: str
    at_step: float
    predicted_onset: float | None = None
    interval: tuple[float, float] | None = None
    detail: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (non-finite numbers as ``None``)."""
        return json_safe({
            "run": self.run,
            "status": self.status,
            "predicted_onset": None if self.predicted_onset is None else float(self.predicted_onset),
            "interval": None if self.interval is None else [float(v) for v in self.interval],
            "forecaster": self.forecaster,
            "at_step": float(self.at_step),
            "detail": self.detail,
        })


# ---------------------------------------------------------------------------------------------- inputs


def _allowed(run: RunCurves, until: float | None) -> dict[str, np.ndarray]:
    """The run's allowed columns at logged steps <= ``until`` (test columns are never read)."""
    steps = np.asarray(run.columns["step"], dtype=float)
    keep = steps <= (np.inf if until is None else until)
    return {c: np.asarray(run.columns[c], dtype=float)[keep] for c in ALLOWED_COLUMNS if c in run.columns}


def _signal(columns: dict[str, np.ndarray], name: str) -> tuple[str, np.ndarray] | None:
    values = columns.get(name)
    if values is not None and values.size and np.all(np.isfinite(values)) and np.all(values > 0):
        return name, values
    return None


def _fit_index(train_acc: np.ndarray, threshold: float) -> int | None:
    hits = np.flatnonzero(train_acc >= threshold)
    return int(hits[0]) if hits.size else None


def _log_value_at(steps: np.ndarray, values: np.ndarray, step: float) -> float:
    return float(np.interp(step, steps, np.log(values)))


# ---------------------------------------------------------------------------------------------- calibration


def observed_onset(run: RunCurves) -> tuple[float, float] | None:
    """(fit step, onset step) of a completed run that grokked, by :func:`grokking_onset`; else None
    (also for a run that diverged)."""
    cols = run.columns
    if run.diverged or not all(c in cols for c in ("step", "train_acc", "test_acc")):
        return None
    result = grokking_onset(cols["step"], cols["train_acc"], cols["test_acc"])
    if result.status != "grokked" or result.onset_step is None or result.fit_step is None:
        return None
    return float(result.fit_step), float(result.onset_step)


def calibrate(runs: Sequence[RunCurves], signal: str = "rnc1") -> Calibration:
    """Calibration from every run that grokked and has a variance signal (see the module docstring)."""
    names, deltas, constants = [], [], []
    signal_name = signal
    for run in runs:
        observed = observed_onset(run)
        columns = _allowed(run, None)
        signal = _signal(columns, signal_name)
        if observed is None or signal is None:
            continue
        fit, onset = observed
        steps = columns["step"]
        _, values = signal
        names.append(run.name)
        deltas.append(_log_value_at(steps, values, onset) - _log_value_at(steps, values, fit))
        constants.append((onset - fit) * run.lr * run.weight_decay)
    return Calibration(tuple(names), tuple(deltas), tuple(constants))


# ---------------------------------------------------------------------------------------------- forecasters


def _bounds(samples: np.ndarray, coverage: float) -> tuple[float, float]:
    tail = 50.0 * (1.0 - coverage)
    low, high = np.percentile(samples, [tail, 100.0 - tail], method="inverted_cdf")  # no arithmetic on inf draws
    return float(low), float(high)


def _variance_crossing(run: RunCurves, columns: dict, fit: int, at: float, calibration: Calibration,
                       settings: ForecastSettings) -> Forecast:
    name = "variance-crossing"
    signal_name, values = _signal(columns, settings.signal)
    steps = columns["step"]
    post = np.arange(fit, steps.size)[-settings.window:]
    t, y = steps[post], np.log(values[post])
    slope, intercept = np.polyfit(t, y, 1)
    residual = y - (intercept + slope * t)
    spread = math.sqrt(float(residual @ residual) / max(t.size - 2, 1))
    slope_se = spread / math.sqrt(float(((t - t.mean()) ** 2).sum()))
    start = float(np.log(values[fit]))
    delta = float(np.median(calibration.deltas))
    target = start + delta
    extra = {"signal": signal_name, "slope_per_step": float(slope), "delta": delta}
    if float(np.log(values[-1])) <= target:
        return Forecast(run.name, name, "already_grokked", at, detail=(
            f"log {signal_name} has already fallen by {start - float(np.log(values[-1])):.3g} since the fit, "
            f"more than the calibrated {-delta:.3g}"), extra=extra)
    if slope >= 0:
        return Forecast(run.name, name, "no_onset_expected", at, detail=(
            f"{signal_name} is not contracting after the fit (slope {slope:.3g} per step): no onset expected "
            f"before step {run.horizon}"), extra=extra)
    predicted = (target - intercept) / slope
    rng = np.random.default_rng(settings.seed)
    slopes = slope + slope_se * rng.standard_normal(settings.draws)
    targets = start + rng.choice(np.asarray(calibration.deltas), settings.draws)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.where(slopes < 0, t.mean() + (targets - (intercept + slope * t.mean())) / slopes, np.inf)
    interval = _bounds(np.maximum(draws, at), settings.coverage)
    if predicted > run.horizon:
        return Forecast(run.name, name, "no_onset_expected", at, interval=interval, detail=(
            f"extrapolated crossing at step {predicted:.0f}, beyond the horizon: no onset expected before step "
            f"{run.horizon}"), extra=extra)
    return Forecast(run.name, name, "forecast", at, float(predicted), interval,
                    f"log {signal_name} falls {-slope:.3g} per step; crossing at log V(fit) {delta:+.3g}", extra)


def _r6_law(run: RunCurves, columns: dict, fit: int, at: float, calibration: Calibration,
            settings: ForecastSettings) -> Forecast:
    name = "r6-law"
    rate = run.lr * run.weight_decay
    if rate <= 0:
        return Forecast(run.name, name, "no_onset_expected", at, detail="weight decay 0: the law predicts no onset")
    fit_step = float(columns["step"][fit])
    constants = np.asarray(calibration.constants)
    predicted = fit_step + float(np.median(constants)) / rate
    low, high = _bounds(fit_step + constants / rate, settings.coverage)
    detail = f"t_fit {fit_step:.0f} + C / (eta lambda), C = {np.median(constants):.3g} from {constants.size} runs"
    if predicted > run.horizon:
        return Forecast(run.name, name, "no_onset_expected", at, interval=(low, high),
                        detail=f"{detail}; beyond the horizon: no onset expected before step {run.horizon}")
    return Forecast(run.name, name, "forecast", at, predicted, (low, high), detail)


_FORECASTERS = {"variance-crossing": _variance_crossing, "r6-law": _r6_law}


def forecast_run(run: RunCurves, calibration: Calibration, *, at: float | None = None,
                 forecaster: str = "variance-crossing", settings: ForecastSettings = ForecastSettings()) -> Forecast:
    """Forecast ``run``'s onset from its rows logged up to ``at`` (default: its last row). ``calibration``
    should not contain ``run`` itself (use :meth:`Calibration.without`)."""
    if settings.signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {settings.signal!r}")
    if forecaster not in _FORECASTERS:
        raise ValueError(f"forecaster must be one of {FORECASTERS}, got {forecaster!r}")
    columns = _allowed(run, at)
    if run.diverged:
        last = float(columns["step"][-1]) if columns.get("step") is not None and columns["step"].size else math.nan
        return Forecast(run.name, forecaster, "diverged", last, detail="training diverged (summary.json): its curves "
                        "stop there, no onset to forecast; lower --lr and train it again")
    if "step" not in columns or columns["step"].size == 0:
        return Forecast(run.name, forecaster, "insufficient_data", float("nan"), detail="no logged rows up to that step")
    at_step = float(columns["step"][-1])
    if "train_acc" not in columns:
        return Forecast(run.name, forecaster, "insufficient_data", at_step, detail="train_acc was not logged")
    fit = _fit_index(columns["train_acc"], settings.fit_threshold)
    if fit is None:
        return Forecast(run.name, forecaster, "insufficient_data", at_step,
                        detail=f"not fitted yet (train accuracy below {settings.fit_threshold:g})")
    if not calibration.names:
        return Forecast(run.name, forecaster, "insufficient_data", at_step,
                        detail="no completed run that grokked to calibrate on (give a sweep, or --calibrate-on)")
    if forecaster == "variance-crossing":
        if _signal(columns, settings.signal) is None:
            return Forecast(run.name, forecaster, "insufficient_data", at_step,
                            detail=f"{settings.signal} not logged with positive finite values")
        if columns["step"].size - fit < settings.min_points:
            return Forecast(run.name, forecaster, "insufficient_data", at_step,
                            detail=f"not enough post-fit data yet ({columns['step'].size - fit} rows, need {settings.min_points})")
    return _FORECASTERS[forecaster](run, columns, fit, at_step, calibration, settings)


def forecast_runs(runs: Sequence[RunCurves], *, at: float | None = None, forecaster: str = "variance-crossing",
                  calibration_runs: Sequence[RunCurves] = (), settings: ForecastSettings = ForecastSettings()) -> list[Forecast]:
    """Forecast every run; calibration on ``runs`` plus ``calibration_runs``, leaving each forecast run out."""
    calibration = calibrate(list(runs) + list(calibration_runs), settings.signal)
    return [forecast_run(run, calibration.without(run.name), at=at, forecaster=forecaster, settings=settings)
            for run in runs]


def curves_through(run: RunCurves, step: float) -> RunCurves:
    """``run`` as it was when ``step`` had just been logged: every column cut to the rows at steps <= ``step``."""
    keep = np.asarray(run.columns["step"], dtype=float) <= step
    columns = {name: np.asarray(values)[keep] for name, values in run.columns.items()}
    return RunCurves(run.name, run.lr, run.weight_decay, run.seed, run.optimizer, run.horizon, columns, run.status)


# ---------------------------------------------------------------------------------------------- backtest


@dataclass(frozen=True)
class BacktestRow:
    run: str
    forecaster: str
    at_step: float
    fit_step: float
    onset_step: float
    forecast: Forecast

    @property
    def error(self) -> float | None:
        p = self.forecast.predicted_onset
        return None if p is None else p - self.onset_step

    @property
    def covered(self) -> bool | None:
        i = self.forecast.interval
        return None if i is None else bool(i[0] <= self.onset_step <= i[1])


def backtest(runs: Sequence[RunCurves], *, every: float = 1000.0, halfway: bool = True,
             settings: ForecastSettings = ForecastSettings()) -> list[BacktestRow]:
    """Replay every grokked run: forecast at fit + k * ``every`` (k = 1, 2, ... while before the onset)
    and, with ``halfway``, at the logged step nearest below halfway between fit and onset; each with
    leave-one-run-out calibration. Rows carry the observed fit and onset."""
    calibration = calibrate(runs, settings.signal)
    rows = []
    for run in runs:
        observed = observed_onset(run)
        if observed is None:
            continue
        fit, onset = observed
        points = {float(p) for p in np.arange(fit + every, onset, every)}
        if halfway:
            points.add(fit + 0.5 * (onset - fit))
        own = calibration.without(run.name)
        for at in sorted(points):
            for name in FORECASTERS:
                result = forecast_run(run, own, at=float(at), forecaster=name, settings=settings)
                rows.append(BacktestRow(run.name, name, float(at), fit, onset, result))
    return rows


def backtest_summary(rows: Sequence[BacktestRow], *, halfway_only: bool = False) -> dict[str, dict[str, Any]]:
    """Per forecaster: forecasts made, median absolute error (steps and relative to the delay), interval
    coverage, and how many forecasts ended in another status."""
    summary = {}
    for name in FORECASTERS:
        mine = [r for r in rows if r.forecaster == name]
        if halfway_only:
            mine = [r for r in mine if abs(r.at_step - (r.fit_step + 0.5 * (r.onset_step - r.fit_step))) < 1e-9]
        made = [r for r in mine if r.forecast.status == "forecast"]
        errors = np.array([abs(r.error) for r in made])
        relative = np.array([abs(r.error) / (r.onset_step - r.fit_step) for r in made])
        covered = [r.covered for r in made if r.covered is not None]
        summary[name] = {
            "attempts": len(mine),
            "forecasts": len(made),
            "median_abs_error_steps": float(np.median(errors)) if made else None,
            "median_abs_error_relative": float(np.median(relative)) if made else None,
            "coverage": float(np.mean(covered)) if covered else None,
            "other_statuses": {s: sum(r.forecast.status == s for r in mine) for s in FORECAST_STATUSES if s != "forecast"},
        }
    return summary
