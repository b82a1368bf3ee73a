"""Reading run directories for analysis: :class:`Run`, :func:`load_run`, :func:`load_sweep`, snapshots.

Part of the run-directory owner (``empirical.runs``, which re-exports everything here): file names
and formats are ``runs``'s; this module only reads through them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ncgrok.empirical.runs import (
    CONFIG_FILE,
    DIVERGENCE_KEY,
    METRICS_FILE,
    RunDirectory,
    RunDirectoryError,
    read_metrics,
)


@dataclass(frozen=True, eq=False)
class Run:
    """One run directory: its identity (from ``config.json``'s ``run`` entry), settings and metrics.

    ``config`` is the parsed ``config.json``; ``metrics`` maps each ``metrics.csv`` column to a
    numpy array (``step`` included, as logged). ``status`` is ``summary.json``'s (one of
    :data:`RUN_STATUSES`), ``None`` without one (a run written by other code: unknown, taken as
    completed); ``divergence`` is its ``divergence`` entry when the run diverged.
    """

    name: str
    path: Path
    seed: int
    lr: float
    weight_decay: float
    optimizer: str
    config: dict[str, Any]
    metrics: dict[str, np.ndarray]
    status: str | None = None
    divergence: dict[str, Any] | None = None

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def steps(self) -> np.ndarray:
        return self.metrics["step"]

    def column(self, name: str) -> np.ndarray:
        try:
            return self.metrics[name]
        except KeyError:
            raise ValueError(f"{self.path / METRICS_FILE} has no column {name!r}") from None

    def sweep_config(self) -> Any:
        """The run's settings as an ``empirical.sweep_config.SweepConfig`` (strict: every setting
        must be in ``config.json``)."""
        from ncgrok.empirical.sweep_config import SweepConfig  # imports torch; Run loading does not need it

        try:
            return SweepConfig.from_run_config(self.config, source=self.path / CONFIG_FILE)
        except ValueError as error:
            raise RunDirectoryError(str(error)) from None


def load_run(path: Path | str) -> Run:
    """Read one run directory: ``config.json`` (which must hold ``name``, ``optimizer`` and the
    ``run`` entry {seed, lr, weight_decay}), ``metrics.csv`` and, if present, ``summary.json``'s status."""
    directory = RunDirectory(Path(path))
    config = directory.read_config()
    entry = config.get("run")
    if (not isinstance(entry, Mapping) or not {"seed", "lr", "weight_decay"} <= set(entry)
            or not {"name", "optimizer"} <= set(config)):
        raise RunDirectoryError(
            f"{directory.config_path} needs 'name', 'optimizer' and the 'run' entry {{seed, lr, weight_decay}}; "
            "was it written by ncgrok train/sweep?"
        )
    summary = directory.read_summary()
    return Run(
        name=str(config["name"]),
        path=directory.path,
        seed=int(entry["seed"]),
        lr=float(entry["lr"]),
        weight_decay=float(entry["weight_decay"]),
        optimizer=str(config["optimizer"]),
        config=dict(config),
        metrics=read_metrics(directory.metrics_path),
        status=None if summary is None else summary.get("status"),
        divergence=None if summary is None else summary.get(DIVERGENCE_KEY),
    )


def find_run_directories(path: Path | str) -> list[Path]:
    """Run directories at or below ``path`` (a directory holding ``metrics.csv``), sorted by name."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if (path / METRICS_FILE).is_file():
        return [path]
    runs = sorted(p.parent for p in path.glob(f"*/{METRICS_FILE}"))
    if not runs:
        raise ValueError(f"{path} holds no run directories (no */{METRICS_FILE}); point at a `ncgrok train` or "
                         "`ncgrok sweep` output")
    return runs


def load_sweep(path: Path | str) -> list[Run]:
    """Every run at or below ``path`` (one run directory, or a sweep directory), sorted by name."""
    return [load_run(directory) for directory in find_run_directories(path)]


def snapshot_steps(run: Run | Path | str) -> list[int]:
    """Steps of the model snapshots saved in ``<run>/snapshots/step_<N>.pt``, ascending."""
    return RunDirectory(run.path if isinstance(run, Run) else Path(run)).snapshot_steps()


def load_snapshot(run: Run, step: int, *, input_shape: Sequence[int], num_classes: int) -> Any:
    """The network of ``run`` at snapshot ``step``, on the CPU in eval mode.

    The architecture comes from ``config.json`` (``SweepConfig.model_spec``), the input shape and
    class count from the data (as ``ncgrok sweep`` builds it); the saved state dict is loaded
    strictly (a mismatch raises ``ValueError`` naming the snapshot).
    """
    import torch

    from ncgrok.empirical.models import build_module

    path = RunDirectory(run.path).snapshot_path(step)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; snapshots of {run.name}: {snapshot_steps(run) or 'none'}")
    config = run.sweep_config()
    module = build_module(config.model_spec(input_shape, num_classes), run.seed, dtype=config.torch_dtype, device="cpu")
    try:
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # a shape mismatch (RuntimeError) or a damaged file
        raise ValueError(f"{path} does not fit the network described by {run.path / CONFIG_FILE} and the data's "
                         f"input shape {tuple(input_shape)}: {(str(error).splitlines() or [''])[0]}") from None
    return module.eval()


def load_run_split(run: Run, data_dir: str | Path | None = None) -> Any:
    """The data split ``run`` was trained on, rebuilt from its ``config.json`` (``data_dir`` overrides
    the stored data directory)."""
    return run.sweep_config().load_split(data_dir=data_dir)

