"""Progress of a sweep from the files on disk, per shard and per run: what ``ncgrok status DIR`` prints.

Everything is read, nothing written, and nothing needs the process that trains (it may run on
another host: a user watching a cluster job needs only the shared directory). Sources, all owned by
``empirical.runs``: ``sweep.json`` (the grid, the group size, the shard count), each shard's
``summary.json`` and ``lock`` (status, and who writes it now), each run's ``metrics.csv`` (steps done
so far, the curves for the fit and onset so far, ``empirical.onset.grokking_onset`` with its
default thresholds), ``summary.json`` (status, and the session's timings) and, for a run trained with
``--forecast``, the last lead row of its ``forecast.csv`` (``empirical.forecast_live.bar_text``).

Rate and ETA (estimates): a run's summary is rewritten at each checkpoint with the session's
training and measurement seconds and the step the session started from, so the group's rate is
(last summarised step - session start) / seconds, in optimizer steps per second. A shard's ETA is
its remaining steps, each group's weighted by its cost relative to the group the rate was measured
on (``empirical.shards.group_cost``), over that rate. The logging schedule measures densely early
on, so early rates underestimate later ones.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ncgrok.empirical.runs import RunDirectory, RunDirectoryError, SweepDirectory, read_metrics_rows
from ncgrok.empirical.shards import Shard, group_cost, group_slices, partition_groups

__all__ = ["RunProgress", "ShardProgress", "SweepProgress", "sweep_progress"]


@dataclass
class RunProgress:
    """One run: ``status`` is ``pending`` (not started), ``running``, ``stopped`` (started, nobody
    writes it: resume it), ``completed`` or ``diverged`` (from its ``summary.json``)."""

    name: str
    shard: str
    group: int
    status: str
    step: int | None
    steps: int
    fit_step: float | None = None
    onset_step: float | None = None
    onset: str | None = None
    forecast: str | None = None  # the live forecast at its last logged step (--forecast), as the bar shows it


@dataclass
class ShardProgress:
    """One shard: ``status`` is ``pending``, ``running`` (``writer`` holds its lock), ``stopped`` or
    ``completed``; ``done_steps`` / ``total_steps`` count the optimizer steps of its groups."""

    shard: str
    status: str
    groups: list[int]
    runs: int
    runs_done: int
    done_steps: int
    total_steps: int
    writer: str | None
    steps_per_second: float | None
    eta_seconds: float | None
    seconds_since_write: float | None


@dataclass
class SweepProgress:
    path: str
    runs: int
    runs_done: int
    runs_diverged: int = 0  # of runs_done: diverged in training (frozen; status "diverged")
    shards: list[ShardProgress] = field(default_factory=list)
    run_progress: list[RunProgress] = field(default_factory=list)


def _run_progress(directory: RunDirectory, shard: str, group: int, steps: int, writing: bool,
                  ) -> tuple[RunProgress, dict[str, Any] | None, float | None]:
    """A run's progress, its summary (or ``None``) and when its metrics were last written."""
    from ncgrok.empirical.onset import diverged_onset, grokking_onset

    if not directory.path.is_dir():
        return RunProgress(directory.name, shard, group, "pending", None, steps), None, None
    summary = directory.read_summary()
    try:
        rows = read_metrics_rows(directory.metrics_path)
        written = directory.metrics_path.stat().st_mtime
    except RunDirectoryError:  # created a moment ago, or damaged: the status still says what is known
        rows, written = [], None
    status = summary["status"] if summary else "running"
    if status == "running" and not writing:
        status = "stopped"
    progress = RunProgress(directory.name, shard, group, status, rows[-1]["step"] if rows else None, steps)
    if rows:
        onset = grokking_onset([row["step"] for row in rows], [row["train_acc"] for row in rows],
                               [row["test_acc"] for row in rows])
        if status == "diverged":
            onset = diverged_onset(onset)
        progress.fit_step, progress.onset_step, progress.onset = onset.fit_step, onset.onset_step, onset.status
    progress.forecast = _live_forecast(directory)
    return progress, summary, written


def _live_forecast(directory: RunDirectory) -> str | None:
    """The bar's text for the run's last lead ``forecast.csv`` row (``None`` without one)."""
    from ncgrok.empirical.forecast_live import LEAD, bar_text

    try:
        rows = [row for row in directory.forecast().rows() if row["forecaster"] == LEAD]
    except RunDirectoryError:  # damaged: the next --forecast session rewrites it
        return None
    return bar_text(rows[-1:]) if rows else None


def _rate(summary: dict[str, Any] | None) -> float | None:
    """Optimizer steps per second of the session that wrote ``summary`` (module docstring)."""
    if not summary or not summary.get("final"):
        return None
    session = summary.get("session") or {}
    seconds = (session.get("train_seconds") or 0.0) + (session.get("measure_seconds") or 0.0)
    steps = summary["final"]["step"] - (session.get("resumed_from") or 0)
    return steps / seconds if seconds > 0 and steps > 0 else None


def sweep_progress(path: Path | str, *, now: float | None = None) -> SweepProgress:
    """Progress of the sweep in ``path`` (a directory written by ``ncgrok sweep`` or ``train``)."""
    directory = SweepDirectory(Path(path))
    if not directory.holds_sweep():
        raise FileNotFoundError(f"{directory.sweep_path} does not exist: {directory.path} holds no sweep started by "
                                "ncgrok sweep/train (point at its --out)")
    manifest = directory.read_manifest()
    steps = int(manifest.settings.get("steps", 0))
    group_size = manifest.settings.get("group_size")
    slices = group_slices(len(manifest.runs), group_size)
    now = time.time() if now is None else now
    report = SweepProgress(str(directory.path), len(manifest.runs), 0)
    for index, groups in enumerate(partition_groups(len(manifest.runs), group_size, manifest.shards), start=1):
        shard = Shard(index, manifest.shards)
        state = directory.shard(index, manifest.shards)
        writer = state.holder()
        summary = state.read_summary()
        runs, summaries, written, done = [], {}, [], {}
        for group in groups:
            for position in slices[group]:
                run, run_summary, last_write = _run_progress(directory.run(manifest.runs[position]), str(shard), group,
                                                             steps, writer is not None)
                runs.append(run)
                summaries[group] = summaries.get(group) or run_summary
                written += [last_write] if last_write is not None else []
                if run.status == "diverged":  # its rows stop at the divergence; the group trains on
                    done.setdefault(group, steps)
                else:
                    done[group] = min(done.get(group, steps), run.step or 0)
        rate_group = next((group for group in reversed(groups) if _rate(summaries.get(group))), None)
        rate = _rate(summaries.get(rate_group)) if rate_group is not None else None
        remaining = sum((steps - done[group]) * group_cost(len(slices[group])) for group in groups)
        eta = remaining / group_cost(len(slices[rate_group])) / rate if rate else None
        if summary and summary.get("status") == "completed":
            status = "completed"
        elif writer is not None:
            status = "running"
        else:
            status = "pending" if summary is None and not written else "stopped"
        runs_done = sum(run.status in ("completed", "diverged") for run in runs)
        report.shards.append(ShardProgress(
            str(shard), status, list(groups), len(runs), runs_done, sum(done.values()), steps * len(groups), writer,
            rate, 0.0 if status == "completed" else eta, now - max(written) if written else None))
        report.run_progress += runs
        report.runs_done += runs_done
        report.runs_diverged += sum(run.status == "diverged" for run in runs)
    return report
