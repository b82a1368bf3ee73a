"""Runs as replicates of weight-decay levels, with each run's events, for the onset and collapse claims.

:func:`sweep_levels` turns a list of :class:`RunCurves` into a :class:`Sweep`: one learning rate
(the one with the most runs; others are named in ``other_lrs`` and left out, because a law in lambda
is read at fixed eta), its weight-decay levels in ascending order, and per run its
:class:`RunEvents`: the :func:`empirical.onset.grokking_onset` result (fit, first fit, last re-fit,
collapses, onset, status) and the RNC1 drop (:func:`empirical.onset.rnc1_drop_time` measured from
the last re-fit). Runs at one level whose logged columns are bit-for-bit identical are copies of
one replicate and are merged (counted in ``duplicates``): copying a seed must not shrink an interval.

Values a claim reads from a run (``None`` when the run has none, e.g. it never fitted):

* **onset**: the onset step of a ``grokked`` run; the fit step of a ``no_gap`` run (it had already
  generalised when it fitted); for ``censored`` and ``never_grokked`` runs the last logged step,
  flagged censored (the onset is later).
* **delay from a fit event** (``fit_step``, ``first_fit`` or ``last_refit``): onset minus that step,
  censored with the onset; ``None`` when the event is missing or comes after the onset.
* **RNC1 drop**: the first logged step after the last re-fit with RNC1 ``<= rnc1_fraction`` x its
  value there; censored at the last logged step when RNC1 never falls that far.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ncgrok.empirical.ledger.core import RunCurves
from ncgrok.empirical.ledger.stats import Censored
from ncgrok.empirical.onset import GrokkingOnset, grokking_onset, rnc1_drop_time

__all__ = ["RunEvents", "Level", "Sweep", "run_events", "sweep_levels", "level_values", "FIT_EVENTS"]

FIT_EVENTS = ("fit_step", "first_fit", "last_refit")
LATER_THAN_LAST_LOG = ("censored", "never_grokked")


@dataclass(frozen=True)
class RunEvents:
    """One run and its events (module docstring). Values are ``(value, censored)`` pairs or ``None``."""

    run: RunCurves
    onset: GrokkingOnset
    rnc1_drop: tuple[float, bool] | None

    def onset_value(self) -> tuple[float, bool] | None:
        result = self.onset
        if result.status == "grokked":
            return float(result.onset_step), False
        if result.status == "no_gap":
            return float(result.fit_step), False
        if result.status in LATER_THAN_LAST_LOG:
            return float(result.last_step), True
        return None

    def fit_event(self, event: str) -> float | None:
        if event not in FIT_EVENTS:
            raise ValueError(f"fit event must be one of {FIT_EVENTS}, got {event!r}")
        value = getattr(self.onset, event)
        return None if value is None else float(value)

    def delay_value(self, event: str = "fit_step") -> tuple[float, bool] | None:
        onset, fit = self.onset_value(), self.fit_event(event)
        if onset is None or fit is None or onset[0] < fit:
            return None
        return onset[0] - fit, onset[1]


def _rnc1_drop(run: RunCurves, result: GrokkingOnset, fraction: float) -> tuple[float, bool] | None:
    if result.last_refit is None or not run.has("rnc1"):
        return None
    steps, rnc1 = run["step"], run["rnc1"]
    finite = np.isfinite(rnc1)
    if not np.any(finite & (steps >= result.last_refit)):
        return None
    drop = rnc1_drop_time(steps[finite], rnc1[finite], fit_step=result.last_refit, fraction=fraction)
    return (float(steps[finite][-1]), True) if drop is None else (float(drop), False)


def run_events(run: RunCurves, *, rnc1_fraction: float = 0.1) -> RunEvents:
    """The events of one run; it needs the columns ``step``, ``train_acc`` and ``test_acc``."""
    for name in ("step", "train_acc", "test_acc"):
        if name not in run.columns:
            raise ValueError(f"run {run.name!r} has no column {name!r}; metrics.csv needs step, train_acc, test_acc")
    result = grokking_onset(run["step"], run["train_acc"], run["test_acc"])
    return RunEvents(run, result, _rnc1_drop(run, result, rnc1_fraction))


@dataclass(frozen=True)
class Level:
    """The runs (replicates, copies merged) at one weight decay."""

    weight_decay: float
    runs: tuple[RunEvents, ...]


@dataclass(frozen=True)
class Sweep:
    """Levels of one learning rate in ascending weight decay (module docstring)."""

    lr: float
    levels: tuple[Level, ...]
    duplicates: int
    other_lrs: tuple[float, ...]

    @property
    def runs(self) -> tuple[RunEvents, ...]:
        return tuple(run for level in self.levels for run in level.runs)

    def positive_levels(self) -> tuple[Level, ...]:
        """Levels with weight decay > 0 (a law in ``1/lambda`` has no value at 0)."""
        return tuple(level for level in self.levels if level.weight_decay > 0)

    def note(self) -> str:
        """What was merged or left out, in one sentence (empty when nothing was)."""
        parts = [f"lr {self.lr:g}"]
        if self.other_lrs:
            parts.append("runs at lr " + ", ".join(f"{v:g}" for v in self.other_lrs) + " left out")
        if self.duplicates:
            parts.append(f"{self.duplicates} identical copies of runs merged")
        return "; ".join(parts)


def _fingerprint(run: RunCurves) -> str:
    digest = hashlib.sha256()
    for name in sorted(run.columns):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(run.columns[name], dtype=np.float64).tobytes())
    return digest.hexdigest()


def sweep_levels(runs: Sequence[RunCurves], *, rnc1_fraction: float = 0.1) -> Sweep:
    """Group runs into weight-decay levels of the most common learning rate (module docstring)."""
    if not runs:
        raise ValueError("no runs to check; point at a run directory or a sweep directory")
    counts = Counter(float(run.lr) for run in runs)
    lr = min(counts, key=lambda value: (-counts[value], value))
    seen: set[tuple[float, str]] = set()
    by_decay: dict[float, list[RunEvents]] = {}
    duplicates = 0
    for run in runs:
        if float(run.lr) != lr:
            continue
        key = (float(run.weight_decay), _fingerprint(run))
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        by_decay.setdefault(float(run.weight_decay), []).append(run_events(run, rnc1_fraction=rnc1_fraction))
    levels = tuple(Level(decay, tuple(by_decay[decay])) for decay in sorted(by_decay))
    return Sweep(lr, levels, duplicates, tuple(sorted(v for v in counts if v != lr)))


def level_values(
    levels: Sequence[Level], value: Callable[[RunEvents], tuple[float, bool] | None]
) -> tuple[list[Censored], list[float], int]:
    """``value`` of every run, as one :class:`Censored` set per level that has any, their weight
    decays, and the number of runs without a value (left out, to be reported)."""
    sets, decays, missing = [], [], 0
    for level in levels:
        pairs = [value(run) for run in level.runs]
        kept = [pair for pair in pairs if pair is not None]
        missing += len(pairs) - len(kept)
        if kept:
            sets.append(Censored.of([v for v, _ in kept], [c for _, c in kept]))
            decays.append(level.weight_decay)
    return sets, decays, missing
