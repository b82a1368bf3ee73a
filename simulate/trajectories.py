"""Time scales measured on UFM trajectories, and sweeps of them against Thm. 4.3's predictions.

Conventions (used by the CLI and the figures as well)
-----------------------------------------------------
* ``tau1`` (fitting time): the first step at which the **relative** data-fit loss
  ``loss(t) / loss(0)`` is ``<= eps1``, where ``loss = (1/2)||W H + b - Y||^2`` is the
  *unregularized* squared loss. Relative, so that ``eps1`` is a dimensionless number in ``(0, 1)``
  that does not depend on the number of samples; unregularized, because the regularized objective
  has a floor of order ``lambda`` that would make ``tau1`` depend on ``lambda`` (Thm. 4.3 states
  ``tau1`` independent of ``lambda``).
* ``tau2`` (collapse time): the first step at which ``RNC1 = Tr Sigma_W / B^2 <= eps2``, with the
  scale ``B`` given by ``scale`` (``"mean"``: mean feature norm, the paper's plots; ``"sup"``:
  largest norm, the theory's ``B_g``). ``tau2`` counts from step 0; the paper's "further" steps
  after fitting are ``delay = tau2 - tau1``.
* Both are read off the logged steps. With ``interpolate=True`` (the default) the crossing is
  located between the last logged step above the threshold and the first at or below it by linear
  interpolation of ``log(value)`` in the step (exact for the geometric decay of the late phase);
  with ``interpolate=False`` it is that first logged step. A threshold never reached gives NaN.

Predictions (status: rates **published** in Thm. 4.3; these exact forms **reconstructed**)
----------------------------------------------------------------------------------------
* ``tau2_predicted = tau1 + collapse_time(lr, weight_decay, eps2, initial_variance=RNC1(tau1))``
  ``= tau1 + log(RNC1(tau1) / eps2) / (2 eta lambda)`` -- the UFM argument of
  :mod:`theory.timescales`: after fitting, the within-class spread lives (almost entirely) in the null
  space of ``W``, where it decays by exactly ``(1 - eta lambda)^2`` per step; ``tau1`` and
  ``RNC1(tau1)`` are the measured ones (the calibrated prediction of R6 with the UFM constant).
* ``tau1_predicted = max_c fit_time(lr, eps1, initial_loss=(n_c/N) (y_c/x_c)^2, rate=4 y_c)``: a
  small-initialization estimate for the UFM. Each class ``c`` is a mode of the target with
  singular value ``y_c = sqrt(n_c)``; started at strength ``x_c = ||w_c + H v_c||^2 / 4`` (``w_c`` the
  class's classifier row, ``v_c`` its normalized class indicator), the mode grows like
  ``exp(2 y_c eta t)`` and then its residual decays like ``exp(-2 y_c eta t)``, so its share of the
  relative loss falls below ``eps1`` after about ``log((n_c/N)(y_c/x_c)^2/eps1) / (4 y_c eta)``
  steps. It ignores the coupling between modes and is first order in ``eta``; it is accurate to
  ~10-20% for ``init_scale << 1`` and only an order of magnitude for larger initializations. It
  contains Thm. 4.3's ``eta^-1 log(1/eps1)`` and no ``lambda``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ncgrok.files import atomic_write_text
from ncgrok.theory._validation import as_array, as_scalar
from ncgrok.theory.collapse import SCALE_ESTIMATORS
from ncgrok.theory.timescales import LogLogFit, collapse_time, fit_loglog_slope, fit_time
from ncgrok.simulate.ufm import UFMConfig, UFMResult, UFMSimulator, simulate_ufm

__all__ = [
    "crossing_step",
    "value_at",
    "fit_step",
    "collapse_step",
    "rnc1_column",
    "predicted_fit_time",
    "TimeScales",
    "time_scales",
    "auto_horizon",
    "sweep_ufm",
    "SWEEP_COLUMNS",
    "sweep_to_array",
    "sweep_to_csv",
    "collapse_scaling",
]


# --------------------------------------------------------------------------- crossings
def crossing_step(steps: Any, values: Any, threshold: float, *, interpolate: bool = True) -> float:
    """First step at which ``values <= threshold`` (NaN if never; see the module conventions).

    ``steps`` must be increasing. With ``interpolate``, ``log(values)`` is interpolated linearly
    between the last logged step above the threshold and the first at or below it (linear
    interpolation of the values themselves if either is not positive).
    """
    steps = as_array("steps", steps, ndim=1)
    values = as_array("values", values, shape=(len(steps),), finite=False)
    threshold = as_scalar("threshold", threshold)
    if len(steps) and np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    below = np.flatnonzero(values <= threshold)
    if below.size == 0:
        return float("nan")
    index = int(below[0])
    if index == 0 or not interpolate:
        return float(steps[index])
    before, after = float(values[index - 1]), float(values[index])
    if not math.isfinite(before):
        return float(steps[index])
    if before > 0 and after > 0 and threshold > 0:
        before, after, level = math.log(before), math.log(after), math.log(threshold)
    else:
        level = threshold
    fraction = 1.0 if before == after else (before - level) / (before - after)
    return float(steps[index - 1] + fraction * (steps[index] - steps[index - 1]))


def value_at(steps: Any, values: Any, step: float, *, log: bool = True) -> float:
    """``values`` at ``step`` by interpolation between logged steps (of ``log(values)`` when
    ``log`` and both neighbours are positive); NaN outside the logged range."""
    steps = as_array("steps", steps, ndim=1)
    values = as_array("values", values, shape=(len(steps),), finite=False)
    step = float(step)
    if not math.isfinite(step) or len(steps) == 0 or step < steps[0] or step > steps[-1]:
        return float("nan")
    index = int(np.searchsorted(steps, step, side="right")) - 1
    if index >= len(steps) - 1 or steps[index] == step:
        return float(values[index])
    left, right = float(values[index]), float(values[index + 1])
    fraction = (step - steps[index]) / (steps[index + 1] - steps[index])
    if log and left > 0 and right > 0:
        return float(math.exp(math.log(left) + fraction * (math.log(right) - math.log(left))))
    return float(left + fraction * (right - left))


def rnc1_column(scale: str) -> str:
    """Trajectory column holding RNC1 at ``scale`` (``"mean"`` -> ``rnc1``, ``"sup"`` -> ``rnc1_sup``)."""
    if scale not in SCALE_ESTIMATORS:
        raise ValueError(f"scale must be one of {SCALE_ESTIMATORS}, got {scale!r}")
    return "rnc1" if scale == "mean" else "rnc1_sup"


def _check_result(result: Any) -> UFMResult:
    if not isinstance(result, UFMResult):
        raise ValueError(f"expected a UFMResult (from simulate_ufm), got {type(result).__name__}")
    return result


def fit_step(result: UFMResult, *, eps1: float | None = None, interpolate: bool = True) -> float:
    """``tau1``: first step with ``loss / loss(0) <= eps1`` (default ``result.config.eps1``)."""
    result = _check_result(result)
    eps1 = result.config.eps1 if eps1 is None else as_scalar("eps1", eps1, open_unit=True)
    return crossing_step(result["step"], result["loss_relative"], eps1, interpolate=interpolate)


def collapse_step(
    result: UFMResult, *, eps2: float | None = None, scale: str | None = None, interpolate: bool = True
) -> float:
    """``tau2``: first step with ``RNC1 <= eps2`` at ``scale`` (defaults from ``result.config``)."""
    result = _check_result(result)
    eps2 = result.config.eps2 if eps2 is None else as_scalar("eps2", eps2, open_unit=True)
    column = rnc1_column(result.config.scale if scale is None else scale)
    return crossing_step(result["step"], result[column], eps2, interpolate=interpolate)


# --------------------------------------------------------------------------- predictions
def predicted_fit_time(config: UFMConfig) -> float:
    """Small-initialization estimate of ``tau1`` for the UFM (see the module docstring).

    Computed from the initial state that ``config`` (its seed) produces; uses
    :func:`theory.timescales.fit_time` once per class mode and returns the slowest.
    """
    if not isinstance(config, UFMConfig):
        raise ValueError(f"config must be a UFMConfig, got {type(config).__name__}")
    if not config.train_classifier:
        # Only H moves, so a mode grows linearly rather than exponentially: no estimate here.
        return float("nan")
    simulator = UFMSimulator(config)
    weights = simulator.weights.astype(np.float64)
    features = simulator.features.astype(np.float64)
    total = config.num_samples
    times = []
    for c, count in enumerate(config.class_counts):
        strength = math.sqrt(count)
        indicator = (simulator.labels == c) / strength
        start = float(np.sum((weights[c] + features @ indicator) ** 2)) / 4.0
        share = (count / total) * (strength / start) ** 2 if start > 0 else math.inf
        if not math.isfinite(share):
            return float("inf")
        times.append(fit_time(lr=config.lr, eps1=config.eps1, initial_loss=max(share, config.eps1), rate=4.0 * strength))
    return float(max(times))


@dataclass(frozen=True)
class TimeScales:
    """Measured and predicted time scales of one run (in nominal steps; see the module docstring).

    Relative errors are ``(predicted - measured) / measured``. ``rnc1_at_fit`` is ``RNC1(tau1)`` at
    ``scale``; ``null_fraction_at_fit`` the share of the within-class spread in the null space of
    ``W`` at ``tau1``.
    """

    lr: float
    weight_decay: float
    eps1: float
    eps2: float
    scale: str
    tau1: float
    tau2: float
    delay: float
    tau1_predicted: float
    tau2_predicted: float
    delay_predicted: float
    tau1_rel_error: float
    tau2_rel_error: float
    delay_rel_error: float
    rnc1_at_fit: float
    null_fraction_at_fit: float
    steps_run: int
    fitted: bool
    collapsed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _relative_error(predicted: float, measured: float) -> float:
    if not (math.isfinite(predicted) and math.isfinite(measured)) or measured == 0:
        return float("nan")
    return (predicted - measured) / measured


def time_scales(
    result: UFMResult,
    *,
    eps1: float | None = None,
    eps2: float | None = None,
    scale: str | None = None,
    interpolate: bool = True,
) -> TimeScales:
    """Measure ``tau1``, ``tau2`` on ``result`` and compare them with the predictions.

    Thresholds and scale default to ``result.config``. The ``tau2`` prediction needs ``tau1`` and
    a positive weight decay; otherwise it is NaN.
    """
    result = _check_result(result)
    config = result.config
    eps1 = config.eps1 if eps1 is None else as_scalar("eps1", eps1, open_unit=True)
    eps2 = config.eps2 if eps2 is None else as_scalar("eps2", eps2, open_unit=True)
    scale = config.scale if scale is None else scale
    column = rnc1_column(scale)
    steps = result["step"]
    tau1 = fit_step(result, eps1=eps1, interpolate=interpolate)
    tau2 = collapse_step(result, eps2=eps2, scale=scale, interpolate=interpolate)
    tau1_predicted = predicted_fit_time(config.replace(eps1=eps1))
    rnc1_at_fit = null_fraction = float("nan")
    tau2_predicted = float("nan")
    if math.isfinite(tau1):
        rnc1_at_fit = value_at(steps, result[column], tau1)
        spread = value_at(steps, result["spread"], tau1)
        spread_null = value_at(steps, result["spread_null"], tau1)
        null_fraction = spread_null / spread if spread > 0 else float("nan")
        if config.weight_decay > 0 and rnc1_at_fit > 0:
            tau2_predicted = tau1 + collapse_time(
                lr=config.lr, weight_decay=config.weight_decay, eps2=eps2, initial_variance=rnc1_at_fit
            )
    delay = tau2 - tau1
    delay_predicted = tau2_predicted - tau1
    return TimeScales(
        lr=config.lr,
        weight_decay=config.weight_decay,
        eps1=eps1,
        eps2=eps2,
        scale=scale,
        tau1=tau1,
        tau2=tau2,
        delay=delay,
        tau1_predicted=tau1_predicted,
        tau2_predicted=tau2_predicted,
        delay_predicted=delay_predicted,
        tau1_rel_error=_relative_error(tau1_predicted, tau1),
        tau2_rel_error=_relative_error(tau2_predicted, tau2),
        delay_rel_error=_relative_error(delay_predicted, delay),
        rnc1_at_fit=rnc1_at_fit,
        null_fraction_at_fit=null_fraction,
        steps_run=int(steps[-1]),
        fitted=math.isfinite(tau1),
        collapsed=math.isfinite(tau2),
    )


# --------------------------------------------------------------------------- sweeps
def auto_horizon(config: UFMConfig, *, margin: float = 3.0) -> int:
    """A step budget long enough for ``RNC1`` to reach ``eps2``: ``margin`` times the predicted
    ``tau1`` plus ``margin`` times ``collapse_time`` from ``RNC1 = 1`` (pair it with
    ``stop_when_collapsed`` so the margin costs nothing)."""
    margin = as_scalar("margin", margin, positive=True)
    tau1 = predicted_fit_time(config)
    if not math.isfinite(tau1):
        tau1 = fit_time(lr=config.lr, eps1=config.eps1)
    budget = margin * tau1
    if config.weight_decay > 0:
        budget += margin * collapse_time(lr=config.lr, weight_decay=config.weight_decay, eps2=config.eps2)
    return max(10, int(math.ceil(budget)))


def _values(name: str, values: Any) -> list[float]:
    array = np.atleast_1d(as_array(name, values, ndim=(0, 1)))
    if array.size == 0:
        raise ValueError(f"{name} must hold at least one value")
    return [float(v) for v in array]


def sweep_ufm(
    config: UFMConfig | None = None,
    *,
    weight_decays: Iterable[float] | float,
    lrs: Iterable[float] | float | None = None,
    steps: int | None = None,
    interpolate: bool = True,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the UFM for every ``(lr, weight_decay)`` pair and measure its time scales.

    ``config`` supplies everything else (default :class:`UFMConfig`); ``lrs`` default to
    ``config.lr``. ``steps=None`` gives each run :func:`auto_horizon` steps and stops it once both
    thresholds are crossed (``stop_when_collapsed``); an explicit ``steps`` runs every configuration
    that long. Returns one dict per run (the :class:`TimeScales` fields), ordered by lr then weight
    decay. ``progress(done, total, row)`` is called after each run.
    """
    base = UFMConfig() if config is None else config
    if not isinstance(base, UFMConfig):
        raise ValueError(f"config must be a UFMConfig, got {type(base).__name__}")
    decays = _values("weight_decays", weight_decays)
    rates = [base.lr] if lrs is None else _values("lrs", lrs)
    for decay in decays:
        if decay <= 0:
            raise ValueError(f"weight_decays must be > 0 (no collapse time without weight decay), got {decay:g}")
    rows: list[dict[str, Any]] = []
    total = len(decays) * len(rates)
    for lr in rates:
        for decay in decays:
            run_config = base.replace(lr=lr, weight_decay=decay)
            if steps is None:
                run_config = run_config.replace(steps=auto_horizon(run_config), stop_when_collapsed=True)
            else:
                run_config = run_config.replace(steps=steps)
            result = simulate_ufm(run_config)
            row = time_scales(result, interpolate=interpolate).to_dict()
            rows.append(row)
            if progress is not None:
                progress(len(rows), total, row)
    return rows


SWEEP_COLUMNS = tuple(TimeScales.__dataclass_fields__)


def sweep_to_array(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """The sweep rows as a numpy structured array (one record per run)."""
    dtypes = []
    for name in SWEEP_COLUMNS:
        if name == "scale":
            dtypes.append((name, "U4"))
        elif name in ("fitted", "collapsed"):
            dtypes.append((name, bool))
        elif name == "steps_run":
            dtypes.append((name, np.int64))
        else:
            dtypes.append((name, np.float64))
    return np.array([tuple(row[name] for name in SWEEP_COLUMNS) for row in rows], dtype=dtypes)


def sweep_to_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write the sweep rows as CSV, atomically."""
    lines = [",".join(SWEEP_COLUMNS)]
    for row in rows:
        cells = []
        for name in SWEEP_COLUMNS:
            value = row[name]
            cells.append(repr(float(value)) if isinstance(value, float) else str(value))
        lines.append(",".join(cells))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def collapse_scaling(
    rows: Sequence[dict[str, Any]], *, quantity: str = "delay", lr: float | None = None
) -> LogLogFit:
    """Log-log slope of a measured time against the weight decay (R6; Thm. 4.3 predicts ``-1``).

    ``quantity`` is ``"delay"`` (``tau2 - tau1``, the R6 form) or ``"tau2"``. Uses the rows with
    learning rate ``lr`` (needed when the sweep holds several) whose ``quantity`` is finite and
    positive; fitted with :func:`theory.timescales.fit_loglog_slope`.
    """
    if quantity not in ("delay", "tau2"):
        raise ValueError(f"quantity must be 'delay' or 'tau2', got {quantity!r}")
    rows = list(rows)
    rates = sorted({row["lr"] for row in rows})
    if lr is None:
        if len(rates) > 1:
            raise ValueError(f"the sweep holds several learning rates {rates}; pass lr= to choose one")
        lr = rates[0] if rates else None
    chosen = [
        row for row in rows
        if row["lr"] == lr and math.isfinite(row[quantity]) and row[quantity] > 0
    ]
    if len({row["weight_decay"] for row in chosen}) < 2:
        raise ValueError(
            f"need at least two weight decays with a measured {quantity} at lr={lr}; "
            "lengthen the runs (steps) or raise eps2"
        )
    return fit_loglog_slope([row["weight_decay"] for row in chosen], [row[quantity] for row in chosen])
