"""The live onset forecast of ``ncgrok train/sweep --forecast``: ``forecast.csv`` per run, a text for the bar.

After each logged step (the training loop's progress callback calls :func:`update_live`), every run
whose ``metrics.csv`` changed is forecast at each of its logged steps that has no row in its
``forecast.csv`` yet, by both forecasters of :mod:`ncgrok.empirical.forecast` (``variance-crossing``
and ``r6-law``), which read only the run's own non-test columns up to that step. ``empirical.runs``
owns both files (:class:`~ncgrok.empirical.runs.ForecastTable`); this module reads ``metrics.csv``
and appends to ``forecast.csv``, nothing else.

**Calibration** of the forecast of run ``r`` at logged step ``s`` (never ``r`` itself):

* the runs of ``--calibrate-on`` that completed (:func:`calibration_from`; fixed);
* the runs of this process's batched groups trained before ``r``'s group (complete by then);
* the other runs of ``r``'s group, with their rows up to ``s``: they train in lockstep with ``r``, and
  one whose test accuracy has already risen (``empirical.onset.grokking_onset`` on what it logged so
  far) calibrates the others' forecasts.

Runs trained by other shards at the same time are not used: how far they are depends on timing.
So each row is a function of the files at step ``s``, and a resumed run writes the rows of an
uninterrupted one. Without any calibration the status is ``insufficient_data`` and ``detail`` says
why; no number is made up.

**Resume.** The first update of a process cuts each run's ``forecast.csv`` back to the last step of
its ``metrics.csv`` (which the resume has cut back to the checkpoint), drops a partial last line and
a step left with only some of its forecasters, and fills in the missing steps. Existing rows are kept
as they are (a resume with another ``--calibrate-on`` keeps the earlier rows' calibration).

**Cost** per update: re-reading the changed runs' ``metrics.csv`` and, per run and new step,
``grokking_onset`` on each run of its group and the two forecasters (a 4000-draw Monte Carlo
interval). Measured in ``ncgrok train/sweep`` as ``forecast_seconds`` (printed with the timings).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from ncgrok.empirical.forecast import (
    FORECASTERS,
    Calibration,
    ForecastSettings,
    calibrate,
    curves_through,
    forecast_run,
)
from ncgrok.empirical.ledger.core import RunCurves
from ncgrok.empirical.runs import RunDirectory, SweepDirectory, read_metrics_rows

__all__ = ["LiveRun", "LivePlan", "LiveState", "plan_from_config", "calibration_from", "init_live", "update_live",
           "step_calibrations", "forecast_rows", "latest_forecasts", "bar_text", "LiveForecast"]

LEAD = "variance-crossing"  # the forecaster the bar shows


class LiveRun(NamedTuple):
    """One run being trained: its directory and the settings the forecasters read."""

    directory: RunDirectory
    lr: float
    weight_decay: float
    seed: int
    optimizer: str


@dataclass(frozen=True)
class LivePlan:
    """What is forecast: this process's batched groups in training order, the configured number of
    steps (each run's horizon), the fixed calibration (``--calibrate-on``) and the forecast settings."""

    groups: tuple[tuple[LiveRun, ...], ...]
    horizon: int
    calibration: Calibration = Calibration()
    settings: ForecastSettings = ForecastSettings()


class LiveState(NamedTuple):
    """``seen``: each run's ``metrics.csv`` (size, mtime) when last forecast; ``written``: the steps with a
    complete set of rows in its ``forecast.csv``; ``finished``: calibration of each complete group;
    ``latest``: each run's last lead row; ``group``: the group forecast last; ``seconds``: time spent."""

    seen: dict[str, tuple[int, int]]
    written: dict[str, frozenset[int]]
    finished: dict[int, Calibration]
    latest: dict[str, dict[str, Any]]
    group: int | None
    seconds: float


def init_live() -> LiveState:
    return LiveState({}, {}, {}, {}, None, 0.0)


def plan_from_config(config: Any, out_dir: Path | str, *, shard: Any = None, calibration: Calibration = Calibration(),
                     settings: ForecastSettings = ForecastSettings()) -> LivePlan:
    """The plan of ``run_sweep(config, out_dir, shard=shard)`` (a ``SweepConfig``; shard 1 of 1 by default)."""
    from ncgrok.empirical.shards import Shard, shard_groups
    from ncgrok.empirical.sweep_config import run_name

    directory, groups = SweepDirectory(Path(out_dir)), config.groups()
    mine = shard_groups(config, shard if shard is not None else Shard())
    return LivePlan(
        tuple(tuple(LiveRun(directory.run(run_name(run)), run.lr, run.weight_decay, run.seed, config.optimizer)
                    for run in groups[index]) for index in mine),
        int(config.steps), calibration, settings)


def calibration_from(path: Path | str, *, out_dir: Path | str, signal: str = "rnc1") -> Calibration:
    """The calibration given by the completed runs under ``path`` (``summary.json`` status ``completed``,
    or none: written by other code). ``ValueError`` when ``path`` overlaps ``out_dir`` (a run would
    calibrate its own forecast), holds no run, or none of its completed runs grokked with ``signal``."""
    from ncgrok.empirical.ledger.load import load_curves

    given, out = Path(path).resolve(), Path(out_dir).resolve()
    if given == out or given in out.parents or out in given.parents:
        raise ValueError(f"it overlaps --out {out_dir}, so a run would calibrate its own forecast; give a directory "
                         "of other, completed runs")
    runs = [run for run in load_curves(given) if run.status in (None, "completed")]
    calibration = calibrate(runs, signal)
    if not calibration.names:
        raise ValueError(f"none of its {len(runs)} completed run(s) grokked with {signal} logged, so there is nothing "
                         "to calibrate on; give a sweep whose runs grokked")
    return calibration


# ---------------------------------------------------------------------------------------------- one step


def step_calibrations(group: Sequence[RunCurves], step: int, signal: str) -> list[Calibration]:
    """Each run's contribution to the calibration at logged ``step``: itself with its rows up to ``step``
    (empty unless it has grokked by then)."""
    return [calibrate([curves_through(run, step)], signal) for run in group]


def forecast_rows(run: RunCurves, calibration: Calibration, step: int,
                  settings: ForecastSettings = ForecastSettings()) -> list[dict[str, Any]]:
    """``forecast.csv``'s rows of ``run`` at logged ``step``: each forecaster on ``run``'s rows up to
    ``step`` with ``calibration`` (which must not contain ``run``)."""
    rows = []
    for name in FORECASTERS:
        forecast = forecast_run(run, calibration, at=step, forecaster=name, settings=settings)
        low, high = forecast.interval if forecast.interval is not None else (math.nan, math.nan)
        predicted = math.nan if forecast.predicted_onset is None else float(forecast.predicted_onset)
        rows.append({"step": int(step), "forecaster": name, "status": forecast.status, "predicted_onset": predicted,
                     "low": float(low), "high": float(high), "signal": settings.signal if name == LEAD else "",
                     "calibration_runs": len(calibration.names), "detail": forecast.detail})
    return rows


# ---------------------------------------------------------------------------------------------- files


def _key(run: LiveRun) -> str:
    return str(run.directory.path)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _curves(run: LiveRun, horizon: int, *, status: bool = False) -> RunCurves | None:
    """The run's logged rows (``None`` before the first); with ``status`` its ``summary.json`` status."""
    rows = read_metrics_rows(run.directory.metrics_path)
    if not rows:
        return None
    columns = {name: np.array([row[name] for row in rows], dtype=float) for name in rows[0]}
    summary = run.directory.read_summary() if status else None
    return RunCurves(run.directory.name, run.lr, run.weight_decay, run.seed, run.optimizer, horizon, columns,
                     None if summary is None else summary.get("status"))


def _complete_steps(run: LiveRun, last_step: int) -> frozenset[int]:
    """Cut the run's ``forecast.csv`` back to ``last_step`` and to whole steps; the steps it keeps."""
    table = run.directory.forecast()
    rows = table.keep_through(last_step)
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["step"]] = counts.get(row["step"], 0) + 1
    if rows and counts[rows[-1]["step"]] < len(FORECASTERS):  # a crash inside the last step's append
        rows = table.keep_through(rows[-1]["step"] - 1)
    return frozenset(row["step"] for row in rows)


def _finished(plan: LivePlan, state: LiveState, group: int) -> Calibration:
    """Calibration of the complete groups before ``group`` (each computed once)."""
    total = plan.calibration
    for index in range(group):
        if index not in state.finished:
            runs = [_curves(run, plan.horizon, status=True) for run in plan.groups[index]]
            state.finished[index] = calibrate([run for run in runs if run is not None], plan.settings.signal)
        total = total + state.finished[index]
    return total


def update_live(plan: LivePlan, state: LiveState) -> LiveState:
    """Forecast every run whose ``metrics.csv`` changed since ``state``, at each of its logged steps
    without rows in ``forecast.csv`` (appended there); returns the new state."""
    started = time.perf_counter()
    seen, written, latest = dict(state.seen), dict(state.written), dict(state.latest)
    state = state._replace(finished=dict(state.finished))
    group_forecast = state.group
    for index, group in enumerate(plan.groups):
        signatures = {_key(run): _signature(run.directory.metrics_path) for run in group}
        if all(signatures[key] is None or signatures[key] == seen.get(key) for key in signatures):
            continue
        curves = {_key(run): _curves(run, plan.horizon) for run in group if signatures[_key(run)] is not None}
        members = [name for name, run in curves.items() if run is not None]
        present = [curves[name] for name in members]
        contributions: dict[int, dict[str, Calibration]] = {}
        before = _finished(plan, state, index)
        for run in group:
            key = _key(run)
            own = curves.get(key)
            if own is None or signatures[key] == seen.get(key):
                continue
            steps = [int(step) for step in own.columns["step"]]
            if key not in written:
                written[key] = _complete_steps(run, steps[-1])
            rows = []
            for step in (step for step in steps if step not in written[key]):
                if step not in contributions:
                    contributions[step] = dict(zip(members, step_calibrations(present, step, plan.settings.signal)))
                calibration = sum((part for name, part in contributions[step].items() if name != key), before)
                rows += forecast_rows(own, calibration, step, plan.settings)
            run.directory.forecast().append(rows)
            written[key] = written[key] | {row["step"] for row in rows}
            lead = [row for row in rows if row["forecaster"] == LEAD]
            if lead:
                latest[key] = lead[-1]
            seen[key] = signatures[key]
        group_forecast = index
    seconds = state.seconds + time.perf_counter() - started
    return LiveState(seen, written, state.finished, latest, group_forecast, seconds)


# ---------------------------------------------------------------------------------------------- the bar


def latest_forecasts(plan: LivePlan, state: LiveState) -> list[dict[str, Any]]:
    """The last lead ``forecast.csv`` row of each run of the group forecast last (in the group's order)."""
    if state.group is None:
        return []
    return [state.latest[_key(run)] for run in plan.groups[state.group] if _key(run) in state.latest]


def _steps(value: float) -> str:
    """A step count in a few characters: 950, 1.5k, 42k, 1.2M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            scaled = value / scale
            return f"{scaled:.1f}{suffix}" if scaled < 10 else f"{scaled:.0f}{suffix}"
    return f"{value:.0f}"


def bar_text(rows: Sequence[dict[str, Any]]) -> str:
    """From lead ``forecast.csv`` rows: ``onset~42k [35k,60k]`` or the status word for one run; for
    several, the range of the forecast onsets and how many runs are in each other status."""
    if len(rows) == 1:
        (row,) = rows
        if row["status"] != "forecast":
            return row["status"]
        return f"onset~{_steps(row['predicted_onset'])} [{_steps(row['low'])},{_steps(row['high'])}]"
    onsets = sorted(row["predicted_onset"] for row in rows if row["status"] == "forecast")
    parts = []
    if onsets:
        span = _steps(onsets[0]) if len(onsets) == 1 else f"{_steps(onsets[0])}..{_steps(onsets[-1])}"
        parts.append(f"onset~{span} ({len(onsets)}/{len(rows)})")
    counts: dict[str, int] = {}
    for row in rows:
        if row["status"] != "forecast":
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(parts + [f"{status} {count}" for status, count in counts.items()])


class LiveForecast:
    """The holder the command line keeps: :meth:`update` after each logged step returns the bar's text."""

    def __init__(self, plan: LivePlan):
        self.plan, self.state = plan, init_live()

    def update(self) -> str:
        self.state = update_live(self.plan, self.state)
        return bar_text(latest_forecasts(self.plan, self.state))

    @property
    def seconds(self) -> float:
        return self.state.seconds
