"""Train a grid of runs (seeds x weight decays x learning rates) as one batched job, on disk.

``run_sweep(config, out_dir)`` loads the data split, trains every run of the grid at once with
``empirical.engine.BatchedTrainer``, measures all runs at each step of the logging schedule with
``empirical.measure.measure_runs``, appends the rows to each run's ``metrics.csv`` and checkpoints
the whole batched state, so ``resume=True`` continues an interrupted sweep bit for bit. The
directory layout is described in ``empirical.runs``. Library code: it never prints; pass a
``progress`` callback to follow it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ncgrok.empirical.engine import EVAL_CHUNK_SIZE, BatchedTrainer, RunConfig, log_schedule, select_device
from ncgrok.empirical.measure import (
    INFORMATION_COLUMNS,
    METRIC_COLUMNS,
    InformationMeasurement,
    InformationSettings,
    as_measurement_data,
    measure_runs,
)
from ncgrok.empirical.models import ModelSpec
from ncgrok.empirical.runs import MetricsTable, atomic_write_bytes, atomic_write_json, read_json, read_metrics_rows

DTYPES = {"float32": torch.float32, "float64": torch.float64}
CHECKPOINT = "checkpoint.pt"
SWEEP_FILE = "sweep.json"
SCHEMA_VERSION = 1


@dataclass
class SweepConfig:
    """Everything that defines a sweep. Defaults are the paper's main MNIST setting
    (``shared/spec/experiments.md``): MLP 784-200-200-200-10, init x8, summed squared loss, AdamW
    lr 1e-3, batch 100 from the first 1000 training images, 100,000 steps, the paper's logging
    schedule."""

    dataset: str = "mnist"
    data_dir: str | None = None
    model: str = "mlp"
    depth: int = 4
    width: int | None = None
    init_scale: float | None = None
    train_size: int = 1000
    heldout_size: int | None = 5000
    heldout_seed: int = 0
    optimizer: str = "adamw"
    lrs: Sequence[float] = (1e-3,)
    weight_decays: Sequence[float] = (0.01,)
    seeds: Sequence[int] = (0,)
    batch_size: int = 100
    steps: int = 100_000
    loss_reduction: str = "sum"
    dtype: str = "float32"
    device: str = "auto"
    momentum: float = 0.0
    log_every: int | None = None
    delta: float = 0.05
    snapshot_steps: Sequence[int] = ()
    checkpoint_seconds: float = 10.0
    measure_chunk_size: int = EVAL_CHUNK_SIZE
    measure_ib: bool = False
    ib_sigma: float = 0.1
    ib_samples: int = 2000
    ib_every: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lrs = tuple(float(v) for v in self.lrs)
        self.weight_decays = tuple(float(v) for v in self.weight_decays)
        self.seeds = tuple(int(v) for v in self.seeds)
        self.snapshot_steps = tuple(sorted(int(v) for v in self.snapshot_steps))
        for name, values in (("lr", self.lrs), ("weight_decay", self.weight_decays), ("seeds", self.seeds)):
            if not values:
                raise ValueError(f"{name} needs at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has repeated values {list(values)}; give each once")
        if any(not math.isfinite(v) or v <= 0 for v in self.lrs):
            raise ValueError(f"lr must be > 0, got {list(self.lrs)}")
        if any(not math.isfinite(v) or v < 0 for v in self.weight_decays):
            raise ValueError(f"weight_decay must be >= 0, got {list(self.weight_decays)}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.batch_size > self.train_size:
            raise ValueError(f"batch_size ({self.batch_size}) cannot exceed train_size ({self.train_size})")
        if self.log_every is not None and self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must lie strictly between 0 and 1, got {self.delta}")
        if self.ib_every < 1:
            raise ValueError(f"ib_every must be >= 1, got {self.ib_every}")
        if self.measure_ib:
            self.information_settings()  # validates ib_sigma and ib_samples
        if any(s < 0 or s > self.steps for s in self.snapshot_steps):
            raise ValueError(f"snapshot_steps must lie in [0, steps={self.steps}], got {list(self.snapshot_steps)}")

    def information_settings(self) -> InformationSettings:
        return InformationSettings(sigma=self.ib_sigma, sample_size=self.ib_samples)

    def columns(self) -> tuple[str, ...]:
        """Column names of every run's metrics.csv."""
        return ("step",) + METRIC_COLUMNS + (INFORMATION_COLUMNS if self.measure_ib else ())

    def information_steps(self) -> set[int]:
        """Logged steps that also carry the --measure-ib columns: every ``ib_every``-th logged step
        of the full schedule, and the last one (the others get NaN there)."""
        schedule = self.schedule()
        return set(schedule[:: self.ib_every]) | {schedule[-1]}

    def runs(self) -> list[RunConfig]:
        """The grid, ordered by weight decay, then learning rate, then seed."""
        return [
            RunConfig(seed=seed, lr=lr, weight_decay=decay)
            for decay in self.weight_decays
            for lr in self.lrs
            for seed in self.seeds
        ]

    def schedule(self) -> list[int]:
        """Logged steps: the paper's schedule (or every ``log_every`` steps), plus snapshot steps."""
        if self.log_every is None:
            steps = set(log_schedule(self.steps))
        else:
            steps = set(range(0, self.steps, self.log_every)) | {self.steps}
        return sorted(steps | set(self.snapshot_steps))

    def to_dict(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        for key in ("lrs", "weight_decays", "seeds", "snapshot_steps"):
            payload[key] = list(payload[key])
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "SweepConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(payload) - known
        if unknown:
            raise ValueError(f"unknown sweep settings {sorted(unknown)}")
        return cls(**payload)


def run_name(run: RunConfig) -> str:
    """Directory name of a run, e.g. ``wd0.01_lr0.001_seed0``."""
    return f"wd{run.weight_decay:g}_lr{run.lr:g}_seed{run.seed}"


# Settings that may differ on --resume without changing the computation.
_RESUMABLE_DIFFERENCES = {"device", "checkpoint_seconds", "measure_chunk_size", "data_dir"}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in _RESUMABLE_DIFFERENCES}


@dataclass
class SweepResult:
    out_dir: Path
    run_dirs: list[Path]
    summaries: list[dict[str, Any]]
    train_seconds: float
    measure_seconds: float
    resumed_from: int


ProgressCallback = Callable[[int, int, list[dict[str, float]]], None]


def _model_spec(config: SweepConfig, input_shape: tuple[int, ...], num_classes: int) -> ModelSpec:
    return ModelSpec(
        arch=config.model,
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        width=config.width,
        depth=config.depth,
        init_scale=config.init_scale,
    )


def _load_split(config: SweepConfig):
    from ncgrok.empirical.data import paper_split

    return paper_split(
        config.dataset,
        train_size=config.train_size,
        heldout_size=config.heldout_size,
        data_dir=config.data_dir,
        heldout_seed=config.heldout_seed,
    )


def prepare_out_dir(config: SweepConfig, out_dir: Path, *, resume: bool) -> tuple[list[Path], bool]:
    """Check or create the sweep directory; returns the run directories and whether to resume."""
    out_dir = Path(out_dir)
    runs = config.runs()
    run_dirs = [out_dir / run_name(run) for run in runs]
    sweep_file = out_dir / SWEEP_FILE
    if sweep_file.exists():
        if not resume:
            raise ValueError(
                f"{out_dir} already holds a sweep; pass --resume to continue it or choose another --out"
            )
        saved = read_json(sweep_file)
        if saved.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"{sweep_file} was written by an incompatible ncgrok version (schema {saved.get('schema')})")
        if _comparable(saved["config"]) != _comparable(config.to_dict()):
            differing = sorted(
                key for key in set(saved["config"]) | set(config.to_dict())
                if key not in _RESUMABLE_DIFFERENCES and saved["config"].get(key) != config.to_dict().get(key)
            )
            raise ValueError(
                f"--resume needs the same settings as the interrupted sweep; these differ: {differing} "
                f"(see {sweep_file})"
            )
        return run_dirs, (out_dir / CHECKPOINT).exists()
    if out_dir.exists() and any(out_dir.iterdir()) and not resume:
        raise ValueError(f"{out_dir} exists and is not empty; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    for run, directory in zip(runs, run_dirs):
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(directory / "config.json", {**config.to_dict(), "run": dataclasses.asdict(run),
                                                      "name": directory.name})
        MetricsTable(directory / "metrics.csv", config.columns()).create()
    atomic_write_json(sweep_file, {"schema": SCHEMA_VERSION, "config": config.to_dict(),
                                   "runs": [directory.name for directory in run_dirs]})
    return run_dirs, False


def run_sweep(
    config: SweepConfig,
    out_dir: Path | str,
    *,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    split: Any | None = None,
    stop_after_step: int | None = None,
) -> SweepResult:
    """Train and measure every run of ``config``; write results under ``out_dir``.

    ``split`` overrides data loading (an object with ``train_x, train_y, test_x, test_y,
    heldout_x, heldout_y, num_classes``, as ``empirical.data.paper_split`` returns).
    ``stop_after_step`` stops (after checkpointing) once that logged step is done; it simulates an
    interruption in tests and lets a user split a long sweep into sessions.
    """
    out_dir = Path(out_dir)
    run_dirs, has_checkpoint = prepare_out_dir(config, out_dir, resume=resume)
    split = split if split is not None else _load_split(config)
    device = select_device(config.device)
    dtype = DTYPES[config.dtype]
    data = as_measurement_data(split, device=device, dtype=dtype)
    spec = _model_spec(config, tuple(data.train_x.shape[1:]), data.num_classes)
    trainer = BatchedTrainer(
        spec,
        config.runs(),
        data.train_x,
        data.train_y,
        optimizer=config.optimizer,
        batch_size=config.batch_size,
        loss_reduction=config.loss_reduction,
        dtype=dtype,
        device=device,
        momentum=config.momentum,
    )
    tables = [MetricsTable(directory / "metrics.csv", config.columns()) for directory in run_dirs]
    information = _information_measurement(config, split, data) if config.measure_ib else None
    resumed_from = 0
    logged: set[int] = set()
    if has_checkpoint:
        state = torch.load(out_dir / CHECKPOINT, map_location=device, weights_only=False)
        trainer.load_state_dict(state["trainer"])
        resumed_from = trainer.step
        for table in tables:
            table.truncate_after(trainer.step)
        logged = {row["step"] for row in read_metrics_rows(tables[0].path)}
    elif resume:
        for table in tables:  # interrupted before the first checkpoint: start over cleanly
            table.create()

    schedule = [s for s in config.schedule() if s >= trainer.step and s not in logged]
    information_steps = config.information_steps()
    train_seconds = measure_seconds = 0.0
    last_checkpoint = time.monotonic()
    rows: list[dict[str, float]] = []
    for target in schedule:
        started = time.perf_counter()
        if target > trainer.step:
            trainer.train(target - trainer.step)
        measured = time.perf_counter()
        train_seconds += measured - started
        rows = measure_runs(trainer, data, delta=config.delta, chunk_size=config.measure_chunk_size)
        if information is not None and target in information_steps:
            scales = [row["feature_norm_max"] for row in rows]
            for row, extra in zip(rows, information(trainer, scales)):
                row.update(extra)
        measure_seconds += time.perf_counter() - measured
        for table, row in zip(tables, rows):
            table.append([{"step": target, **row}])
        if target in config.snapshot_steps:
            _save_snapshots(trainer, run_dirs, target)
        final = target == config.steps
        stopping = stop_after_step is not None and target >= stop_after_step
        if final or stopping or time.monotonic() - last_checkpoint >= config.checkpoint_seconds:
            _checkpoint(trainer, out_dir)
            last_checkpoint = time.monotonic()
        if progress is not None:
            progress(target, config.steps, rows)
        if stopping and not final:
            return SweepResult(out_dir, run_dirs, [], train_seconds, measure_seconds, resumed_from)
    summaries = [
        _write_summary(directory, config, train_seconds, measure_seconds, resumed_from) for directory in run_dirs
    ]
    atomic_write_json(out_dir / "summary.json", {"runs": summaries, "train_seconds": train_seconds,
                                                 "measure_seconds": measure_seconds, "resumed_from": resumed_from})
    return SweepResult(out_dir, run_dirs, summaries, train_seconds, measure_seconds, resumed_from)


def _information_measurement(config: SweepConfig, split: Any, data) -> InformationMeasurement:
    """The --measure-ib measurement on the test set, with the input autoencoder fitted once per data
    set and cached under ``<data dir>/autoencoders`` (see ``empirical.information.fit_or_load``)."""
    import numpy as np

    from ncgrok.empirical.data import resolve_data_dir
    from ncgrok.empirical.information import fit_or_load

    test_x = np.asarray(split.test_x, dtype=np.float32).reshape(len(split.test_x), -1)
    cache = Path(config.data_dir) if config.data_dir and Path(config.data_dir).is_dir() else resolve_data_dir()
    encoder = fit_or_load(test_x, cache / "autoencoders")
    return InformationMeasurement(data.test_x, data.test_y, encoder=encoder,
                                  settings=config.information_settings(), num_classes=data.num_classes)


def _checkpoint(trainer: BatchedTrainer, out_dir: Path) -> None:
    import io

    buffer = io.BytesIO()
    torch.save({"schema": SCHEMA_VERSION, "trainer": trainer.state_dict()}, buffer)
    atomic_write_bytes(out_dir / CHECKPOINT, buffer.getvalue())


def _save_snapshots(trainer: BatchedTrainer, run_dirs: list[Path], step: int) -> None:
    import io

    for index, directory in enumerate(run_dirs):
        buffer = io.BytesIO()
        torch.save(trainer.run_module(index).state_dict(), buffer)
        atomic_write_bytes(directory / "snapshots" / f"step_{step}.pt", buffer.getvalue())


def _write_summary(
    directory: Path, config: SweepConfig, train_seconds: float, measure_seconds: float, resumed_from: int
) -> dict[str, Any]:
    from ncgrok.empirical.onset import fit_time, grokking_onset

    rows = read_metrics_rows(directory / "metrics.csv")
    final = rows[-1]
    steps = [row["step"] for row in rows]
    train_acc = [row["train_acc"] for row in rows]
    test_acc = [row["test_acc"] for row in rows]
    onset = grokking_onset(steps, train_acc, test_acc)
    summary = {
        "name": directory.name,
        **read_json(directory / "config.json")["run"],
        "final": final,
        "fit_step": fit_time(steps, train_acc),
        "onset": dataclasses.asdict(onset) if dataclasses.is_dataclass(onset) else onset,
        "logged_steps": len(rows),
        "sweep_train_seconds": train_seconds,
        "sweep_measure_seconds": measure_seconds,
        "resumed_from": resumed_from,
    }
    atomic_write_json(directory / "summary.json", summary)
    return summary
