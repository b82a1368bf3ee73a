"""Seed averages of logged curves: runs grouped by (learning rate, weight decay), mean and band.

The paper's Figs. 3 and 4 draw, for each weight decay, the mean over seeds of a logged metric with
a band around it. :func:`seed_band` computes both on the union of the seeds' logged steps, so runs
that logged different steps (or a NaN here and there) are averaged over what each one has.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ncgrok.empirical.runs import Run

__all__ = ["BANDS", "SeedBand", "seed_band", "group_runs", "has_columns"]

BANDS = ("minmax", "std")


def group_runs(runs: Iterable[Run]) -> dict[tuple[float, float], list[Run]]:
    """Runs grouped by ``(lr, weight_decay)``, keys ascending, seeds ascending within a group."""
    groups: dict[tuple[float, float], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.lr, run.weight_decay), []).append(run)
    return {key: sorted(groups[key], key=lambda run: run.seed) for key in sorted(groups)}


def has_columns(runs: Iterable[Run], columns: Sequence[str]) -> bool:
    """Whether every run logged every column of ``columns`` (with at least one finite value each)."""
    runs = list(runs)
    return bool(runs) and all(
        column in run.metrics and np.any(np.isfinite(run.metrics[column])) for run in runs for column in columns
    )


@dataclass(frozen=True)
class SeedBand:
    """A metric of one (lr, weight decay) cell on the union of its seeds' logged steps.

    ``mean``, ``minimum``, ``maximum`` and ``std`` ignore missing or non-finite values (a seed that
    logged fewer steps, a NaN measurement); ``count`` is the number of finite seed values at each step
    (the statistics are NaN where it is 0). ``std`` is the sample standard deviation (``ddof = 1``),
    0 where a single seed has a value.
    """

    steps: np.ndarray
    mean: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    std: np.ndarray
    count: np.ndarray

    def interval(self, band: str = "minmax") -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of the band: min/max over seeds (``"minmax"``) or mean -/+ std (``"std"``)."""
        if band not in BANDS:
            raise ValueError(f"band must be one of {BANDS}, got {band!r}")
        if band == "minmax":
            return self.minimum, self.maximum
        return self.mean - self.std, self.mean + self.std


def seed_band(runs: Sequence[Run], column: str, *, transform: Callable[[Run], Any] | None = None) -> SeedBand:
    """Mean over seeds, min, max and standard deviation of ``column`` at every logged step.

    ``transform`` (optional) maps one run to the array to average instead of the raw column, e.g.
    ``lambda run: run.column("mi_zx") - run.column("mi_zy")``; ``column`` then only names it.
    """
    if not runs:
        raise ValueError("seed_band needs at least one run")
    steps = np.unique(np.concatenate([run.steps for run in runs]))
    table = np.full((len(runs), steps.size), np.nan)
    for row, run in enumerate(runs):
        values = np.asarray(transform(run) if transform is not None else run.column(column), dtype=float)
        table[row, np.searchsorted(steps, run.steps)] = values
    finite = np.isfinite(table)
    count = finite.sum(axis=0)
    safe = np.where(finite, table, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, safe.sum(axis=0) / np.maximum(count, 1), np.nan)
        minimum = np.where(count > 0, np.where(finite, table, np.inf).min(axis=0), np.nan)
        maximum = np.where(count > 0, np.where(finite, table, -np.inf).max(axis=0), np.nan)
        squares = np.where(finite, (table - mean) ** 2, 0.0).sum(axis=0)
        std = np.where(count > 1, np.sqrt(squares / np.maximum(count - 1, 1)), np.where(count == 1, 0.0, np.nan))
    return SeedBand(steps=steps, mean=mean, minimum=minimum, maximum=maximum, std=std, count=count)
