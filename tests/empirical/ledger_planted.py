"""Planted runs for the claims-ledger tests: RunCurves (and run directories) with known events.

Every curve is a closed-form function of the logged step, so each test knows the fit, the onset, the
RNC1 drop and the NC2 behaviour it planted. Loaded by the test modules with importlib (the tests
directory is not a package).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

from ncgrok.empirical.ledger.core import RunCurves

STEPS = np.arange(0.0, 100_001.0, 100.0)
LR = 1e-3
DECAYS = (0.005, 0.01, 0.02, 0.04, 0.08)
FIT = 2_000.0


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def fitted_train(steps, fit=FIT):
    return 0.1 + 0.9 * sigmoid((steps - fit) / 150.0)


def measured_fit(steps=STEPS, fit=FIT) -> float:
    """The logged step the onset code calls the fit: the first with train accuracy >= 0.99."""
    return float(steps[np.flatnonzero(fitted_train(steps, fit) >= 0.99)[0]])


def planted_run(
    decay: float,
    seed: int,
    *,
    onset: float,
    fit: float = FIT,
    width: float | None = None,
    rnc1_centre: float | None = None,
    rnc1_width: float | None = None,
    rnc1: Callable[[np.ndarray], np.ndarray] | None = None,
    nc2: str | None = "follows",
    train: np.ndarray | None = None,
    optimizer: str = "adamw",
    lr: float = LR,
    steps: np.ndarray = STEPS,
) -> RunCurves:
    """One run: train accuracy fitted near ``fit`` (or ``train``), test accuracy rising 0.12 -> 0.88
    with its midpoint at ``onset``, RNC1 falling by 100x around ``rnc1_centre`` (default: the onset) or
    given by ``rnc1(steps)``, NC2 ``"follows"`` (1 + 4 RNC1), ``"opposes"`` (rises as RNC1 falls) or
    absent (``None``)."""
    width = max(300.0, 0.05 * (onset - fit)) if width is None else width
    columns = {
        "step": steps.copy(),
        "train_acc": fitted_train(steps, fit) if train is None else np.asarray(train, float),
        # + 1e-9 seed: distinct seeds never log bit-identical curves (identical ones are merged as copies)
        "test_acc": 0.12 + 0.76 * sigmoid((steps - onset) / width) + 1e-9 * seed,
    }
    if rnc1 is not None:
        columns["rnc1"] = rnc1(steps)
    else:
        centre = onset if rnc1_centre is None else rnc1_centre
        columns["rnc1"] = 0.5 * (1.0 - 0.99 * sigmoid((steps - centre) / (width if rnc1_width is None else rnc1_width)))
    if nc2 == "follows":
        columns["nc2"] = 1.0 + 4.0 * columns["rnc1"]
    elif nc2 == "opposes":
        columns["nc2"] = 1.0 + 4.0 * (0.5 - columns["rnc1"])
    return RunCurves(f"wd{decay:g}_s{seed}", lr, decay, seed, optimizer, int(steps[-1]), columns)


def scaling_sweep(*, slope: float = -1.0, seeds: int = 5, jitter: float = 0.05, decays=DECAYS, delay_at_001: float = 20_000.0,
                  seed: int = 0, **options) -> list[RunCurves]:
    """Delays after the measured fit ``delay_at_001 (lambda / 0.01)^slope`` with log-normal seed jitter
    (fixed seed), onsets placed on logged steps."""
    rng = np.random.default_rng(seed)
    runs = []
    for decay in decays:
        for s in range(seeds):
            delay = delay_at_001 * (decay / 0.01) ** slope * np.exp(jitter * rng.standard_normal())
            runs.append(planted_run(decay, s, onset=measured_fit() + 100.0 * round(delay / 100.0), **options))
    return runs


def copies(runs: list[RunCurves], times: int = 1) -> list[RunCurves]:
    """``runs`` followed by ``times`` copies of each under new names and seeds but with the same curves:
    exact duplicates, which the ledger merges into one run."""
    return list(runs) + [dataclasses.replace(r, name=f"{r.name}_copy{c}", seed=100 * (c + 1) + r.seed)
                         for c in range(times) for r in runs]


def write_run_directory(root: Path, run: RunCurves, *, layout: str = "ncgrok") -> Path:
    """``root/<name>/metrics.csv`` and ``config.json`` in ncgrok's layout (a ``run`` entry) or flat."""
    directory = root / run.name
    directory.mkdir(parents=True)
    names = list(run.columns)
    lines = [",".join(names)]
    for i in range(run.columns["step"].size):
        lines.append(",".join(repr(float(run.columns[n][i])) if n != "step" else str(int(run.columns[n][i])) for n in names))
    (directory / "metrics.csv").write_text("\n".join(lines) + "\n")
    settings = {"seed": run.seed, "lr": run.lr, "weight_decay": run.weight_decay}
    if layout == "ncgrok":
        config = {"name": run.name, "optimizer": run.optimizer, "steps": run.horizon, "run": settings}
    else:
        config = {**settings, "optimizer": run.optimizer, "steps": run.horizon}
    (directory / "config.json").write_text(json.dumps(config))
    return directory
