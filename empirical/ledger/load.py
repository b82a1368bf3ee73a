"""Runs on disk as the ledger reads them: ``RunCurves`` from ncgrok run directories or any others.

A run directory holds ``metrics.csv`` (column ``step`` first, then any logged columns; the ledger
uses ``train_acc``, ``test_acc`` (fractions), ``rnc1``, ``nc2`` when present) and ``config.json``
with the run's settings: either ncgrok's layout (a ``run`` entry with ``seed``, ``lr``,
``weight_decay``, and top-level ``optimizer`` and ``steps``) or the same keys at the top level, so
runs written by other code can be checked. ``optimizer`` defaults to ``"adamw"``; ``steps`` (the
horizon) defaults to the last logged step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from ncgrok.empirical.ledger.core import RunCurves
from ncgrok.empirical.runs import CONFIG_FILE, Run, find_run_directories, load_run, read_json, read_metrics

__all__ = ["runs_to_curves", "load_curves", "REQUIRED_SETTINGS"]

REQUIRED_SETTINGS = ("lr", "weight_decay", "seed")


def runs_to_curves(runs: Iterable[Run]) -> list[RunCurves]:
    """Loaded runs (``empirical.runs.Run``) as :class:`RunCurves` (horizon: the configured ``steps``)."""
    return [RunCurves.from_run(run) for run in runs]


def _foreign_run(path: Path, config: Mapping[str, Any]) -> Run:
    missing = [key for key in REQUIRED_SETTINGS if key not in config]
    if missing:
        raise ValueError(
            f"{path / CONFIG_FILE} lacks {', '.join(missing)}; a run's config.json needs lr, weight_decay and seed "
            "(top level, or in ncgrok's 'run' entry), optionally optimizer and steps"
        )
    try:
        settings = {key: float(config[key]) for key in ("lr", "weight_decay")}
        seed = int(config["seed"])
    except (TypeError, ValueError):
        raise ValueError(f"{path / CONFIG_FILE}: lr, weight_decay must be numbers and seed an integer") from None
    return Run(name=str(config.get("name", path.name)), path=path, seed=seed, optimizer=str(config.get("optimizer", "adamw")),
               config=dict(config), metrics=read_metrics(path), **settings)


def load_curves(path: Path | str) -> list[RunCurves]:
    """Every run at or below ``path`` (a run directory, a sweep directory, or any directory of run
    directories), sorted by directory name."""
    runs = []
    for directory in find_run_directories(path):
        config = read_json(directory / CONFIG_FILE)
        runs.append(load_run(directory) if isinstance(config.get("run"), Mapping) else _foreign_run(directory, config))
    return runs_to_curves(runs)
