"""Train a grid of runs (seeds x weight decays x learning rates) as one batched job, on disk.

``run_sweep(config, out_dir)`` loads the data split, trains every run of the grid at once with
``empirical.engine.BatchedTrainer``, measures all runs at each step of the logging schedule with
``empirical.measure.measure_runs``, appends the rows to each run's ``metrics.csv`` and checkpoints
the whole batched state, so ``resume=True`` continues an interrupted sweep bit for bit. It writes
data only (analyses such as onsets are computed from ``metrics.csv`` by their callers); the files
and their guarantees are those of ``empirical.runs``. Library code: it never prints; pass a
``progress`` callback to follow it.

Order of work, so that a rejected call writes nothing and a crash at any point can be resumed:
everything that can be checked without writing is checked first (the settings, an existing
directory's ``sweep.json`` against them, the lock, the data, the network), then the directory is
locked and created (``sweep.json`` first, then each run's ``config.json`` and ``metrics.csv``
header), then training appends rows and checkpoints. A resume deletes partial writes, restores
the checkpoint, cuts ``metrics.csv`` back to it and replays from there.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ncgrok.empirical.engine import BatchedTrainer, select_device
from ncgrok.empirical.measure import InformationMeasurement, as_measurement_data, measure_runs
from ncgrok.empirical.runs import (
    RETRAIN,
    START_OVER,
    RunDirectory,
    RunDirectoryError,
    SweepDirectory,
)
from ncgrok.empirical.sweep_config import DTYPES, SweepConfig, run_name  # noqa: F401 (re-exported)

__all__ = ["DTYPES", "SweepConfig", "SweepResult", "run_name", "run_sweep"]


@dataclass
class SweepResult:
    out_dir: Path
    run_dirs: list[Path]
    summaries: list[dict[str, Any]]
    train_seconds: float
    measure_seconds: float
    resumed_from: int


ProgressCallback = Callable[[int, int, list[dict[str, float]]], None]


@dataclass(frozen=True)
class _Plan:
    """What an existing or new directory needs: ``create`` it, ``restart`` a sweep that never
    checkpointed, or ``continue`` from its checkpoint."""

    action: str
    runs: tuple[RunDirectory, ...]


def _plan(config: SweepConfig, directory: SweepDirectory, *, resume: bool) -> _Plan:
    """Decide from what is on disk, reading only; every refusal happens here."""
    names = [run_name(run) for run in config.runs()]
    runs = tuple(directory.run(name) for name in names)
    if not directory.holds_sweep():
        if not directory.is_empty():
            raise RunDirectoryError(f"{directory.path} exists, is not empty and holds no sweep ({directory.sweep_path.name} "
                                    "is missing); choose another --out")
        return _Plan("create", runs)
    if not resume:
        raise RunDirectoryError(f"{directory.path} already holds a sweep; pass --resume to continue it or choose another --out")
    stored, stored_names = directory.read_manifest()
    try:
        stored_config = SweepConfig.from_dict(stored, source=directory.sweep_path)
    except ValueError as error:
        raise RunDirectoryError(f"{error}; {START_OVER}") from None
    differences = config.resume_differences(stored_config)
    if differences:
        raise RunDirectoryError(f"--resume needs the settings of the sweep in {directory.path} "
                                f"({directory.sweep_path.name}); these differ: " + "; ".join(differences))
    if stored_names != names:
        raise RunDirectoryError(f"{directory.sweep_path} lists runs {stored_names}, the settings give {names} "
                                f"(corrupt); {START_OVER}")
    return _Plan("continue" if directory.checkpoint_path.is_file() else "restart", runs)


def _write_run_files(config: SweepConfig, plan: _Plan) -> None:
    """Each run's ``config.json`` and an empty ``metrics.csv`` (on creation, and when restarting a
    sweep interrupted before its first checkpoint)."""
    for run, directory in zip(config.runs(), plan.runs):
        directory.write_config(config.run_config(run, directory.name))
        directory.metrics(config.columns()).create()


def _check_run_configs(config: SweepConfig, plan: _Plan) -> None:
    """Before continuing: every ``config.json`` matches the settings (a missing one is rewritten)."""
    for run, directory in zip(config.runs(), plan.runs):
        expected = config.run_config(run, directory.name)
        if not directory.config_path.exists():
            directory.write_config(expected)
            continue
        stored = directory.read_config()
        fix = f"(edited or corrupt): delete it and run again with --resume to rewrite it, or {START_OVER}"
        try:
            differences = config.resume_differences(SweepConfig.from_run_config(stored, source=directory.config_path))
        except ValueError as error:
            raise RunDirectoryError(f"{error} {fix}") from None
        if stored["run"] != expected["run"] or stored["name"] != expected["name"]:
            differences.append(f"run {stored['run']} named {stored['name']!r}, expected {expected['run']} "
                               f"named {expected['name']!r}")
        if differences:
            raise RunDirectoryError(f"{directory.config_path} does not match the sweep's settings "
                                    f"({'; '.join(differences)}) {fix}")


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
    interruption in tests and lets a user split a long sweep into sessions. A directory problem
    (existing sweep without ``resume``, different settings, another process writing it, a corrupt
    or unwritable file) raises :class:`empirical.runs.RunDirectoryError`.
    """
    directory = SweepDirectory(Path(out_dir))
    directory.check_unlocked()
    _plan(config, directory, resume=resume)
    split = split if split is not None else config.load_split()
    device = select_device(config.device)
    data = as_measurement_data(_without_empty_heldout(split), device=device, dtype=config.torch_dtype)
    trainer = BatchedTrainer(
        config.model_spec(tuple(data.train_x.shape[1:]), data.num_classes),
        config.runs(),
        data.train_x,
        data.train_y,
        optimizer=config.optimizer,
        batch_size=config.batch_size,
        loss_reduction=config.loss_reduction,
        dtype=config.torch_dtype,
        device=device,
        momentum=config.momentum,
    )
    information = _information_measurement(config, split, data) if config.measure_ib else None
    with directory.locked():
        plan = _plan(config, directory, resume=resume)  # again: the directory may have changed meanwhile
        names = [run.name for run in plan.runs]
        directory.remove_partial_writes(names)
        if plan.action == "create":
            directory.write_manifest(config.to_dict(), names)
        if plan.action in ("create", "restart"):
            _write_run_files(config, plan)
        else:
            _check_run_configs(config, plan)
            _restore(config, directory, plan, trainer, device)
        return _train(config, directory, plan, trainer, data, information, progress, stop_after_step,
                      restored=plan.action == "continue")


def _without_empty_heldout(split: Any) -> Any:
    """``split`` with an empty held-out sample (``heldout_size=0``) left out of the measurement."""
    heldout = getattr(split, "heldout_y", None)
    if heldout is None or len(heldout) > 0:
        return split
    names = ("train_x", "train_y", "test_x", "test_y", "num_classes")
    return type("SplitWithoutHeldout", (), {name: getattr(split, name) for name in names})()


def _restore(config: SweepConfig, directory: SweepDirectory, plan: _Plan, trainer: BatchedTrainer, device) -> None:
    """Load the checkpoint into ``trainer`` and cut every ``metrics.csv`` back to its step."""
    state = directory.read_checkpoint(map_location=device)
    try:
        trainer.load_state_dict(state["trainer"])
    except (KeyError, TypeError, ValueError) as error:
        raise RunDirectoryError(f"{directory.checkpoint_path} does not fit the settings in {directory.sweep_path.name} "
                                f"({error}); {RETRAIN}") from None
    expected = [step for step in config.schedule() if step <= trainer.step]
    tables = [run.metrics(config.columns()) for run in plan.runs]
    for table in tables:  # check every file before changing any
        kept = table.steps_through(trainer.step)
        if kept != expected:
            missing, extra = sorted(set(expected) - set(kept))[:5], sorted(set(kept) - set(expected))[:5]
            raise RunDirectoryError(f"{table.path} does not hold the logged steps up to the checkpoint's step "
                                    f"{trainer.step} (missing {missing}, unexpected {extra}): damaged file; {RETRAIN}")
    for table in tables:
        table.truncate_after(trainer.step)


def _train(config, directory: SweepDirectory, plan: _Plan, trainer: BatchedTrainer, data, information,
           progress: ProgressCallback | None, stop_after_step: int | None, *, restored: bool) -> SweepResult:
    """The training loop: train to each logged step, measure, append, checkpoint now and then."""
    tables = [run.metrics(config.columns()) for run in plan.runs]
    resumed_from = trainer.step
    session = {"train_seconds": 0.0, "measure_seconds": 0.0, "resumed_from": resumed_from}
    # a restored checkpoint's own step is already logged
    schedule = [step for step in config.schedule() if step > trainer.step or not restored]
    information_steps = config.information_steps()
    last_checkpoint = time.monotonic()
    status = "completed"
    for target in schedule:
        started = time.perf_counter()
        if target > trainer.step:
            trainer.train(target - trainer.step)
        measured = time.perf_counter()
        session["train_seconds"] += measured - started
        rows = measure_runs(trainer, data, delta=config.delta, chunk_size=config.measure_chunk_size)
        if information is not None and target in information_steps:
            scales = [row["feature_norm_max"] for row in rows]
            for row, extra in zip(rows, information(trainer, scales)):
                row.update(extra)
        session["measure_seconds"] += time.perf_counter() - measured
        for table, row in zip(tables, rows):
            table.append([{"step": target, **row}])
        if target in config.snapshot_steps:
            _save_snapshots(trainer, plan.runs, target)
        final = target == config.steps
        stopping = stop_after_step is not None and target >= stop_after_step and not final
        if final or stopping or time.monotonic() - last_checkpoint >= config.checkpoint_seconds:
            directory.write_checkpoint({"trainer": trainer.state_dict()})
            last_checkpoint = time.monotonic()
            if not (final or stopping):
                _write_summaries(config, directory, plan, "running", session)
        if progress is not None:
            progress(target, config.steps, rows)
        if stopping:
            status = "running"
            break
    summaries = _write_summaries(config, directory, plan, status, session)
    return SweepResult(directory.path, [run.path for run in plan.runs], summaries if status == "completed" else [],
                       session["train_seconds"], session["measure_seconds"], resumed_from)


def _write_summaries(config: SweepConfig, directory: SweepDirectory, plan: _Plan, status: str,
                     session: dict[str, Any]) -> list[dict[str, Any]]:
    summaries = [run_directory.write_summary(dataclasses.asdict(run), status=status, session=session)
                 for run, run_directory in zip(config.runs(), plan.runs)]
    directory.write_summary(summaries, status=status, session=session)
    return summaries


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


def _save_snapshots(trainer: BatchedTrainer, runs: tuple[RunDirectory, ...], step: int) -> None:
    import io

    import torch

    for index, directory in enumerate(runs):
        buffer = io.BytesIO()
        torch.save(trainer.run_module(index).state_dict(), buffer)
        directory.write_snapshot(step, buffer.getvalue())
