"""Train a grid of runs (seeds x weight decays x learning rates) as batched groups, on disk.

``run_sweep(config, out_dir)`` loads the data split, trains the grid's batched groups
(``SweepConfig.groups``) one after another with ``empirical.engine.BatchedTrainer`` (every run of a
group at once), measures all runs of the group at each step of the logging schedule with
``empirical.measure.measure_runs`` (on a modular data set also the exact population columns of
``empirical.modular.PopulationMeasurement``), appends the rows to each run's ``metrics.csv`` and
checkpoints the group's batched state, so ``resume=True`` continues an interrupted sweep bit for bit. With
``shard=Shard(K, N)`` it trains only the groups of shard K of N (``empirical.shards``), writing the
same run directories an unsharded sweep writes and keeping its checkpoint, summary and lock in the
shard's own directory, so the N shards can run at once, anywhere the directory is mounted. It
writes data only (analyses such as onsets are computed from ``metrics.csv`` by their callers); the
files and their guarantees are those of ``empirical.runs``. Library code: it never prints; pass a
``progress`` callback to follow it.

Order of work, so that a rejected call writes nothing and a crash at any point can be resumed:
everything that can be checked without writing is checked first (the settings, an existing
directory's ``sweep.json`` against them, the lock, the data, the network), then the shard is locked,
``sweep.json`` created if no shard did it yet, and each group in turn gets its runs' ``config.json``
and ``metrics.csv`` header, appends rows and checkpoints (the checkpoint names its group). A resume
deletes partial writes, restores the checkpoint's group, cuts its ``metrics.csv`` back to the
checkpoint and replays from there; the groups before it are complete and those after it start anew.

Divergence: the trainer freezes a run whose loss explodes or stops being finite
(``empirical.divergence``; the others continue bit for bit). After each training interval the newly
diverged runs get ``summary.json`` status ``diverged`` with their ``divergence`` entry, their
``metrics.csv`` gets no row logged after the divergence step, and ``on_divergence`` receives one
line naming the run, the step, the losses and the fix (:func:`divergence_message`).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ncgrok.empirical.divergence import STABLE_SGD_LR, Divergence
from ncgrok.empirical.engine import BatchedTrainer, RunConfig, select_device
from ncgrok.empirical.information_plane import InformationMeasurement
from ncgrok.empirical.measure import as_measurement_data, measure_runs
from ncgrok.empirical.modular import PopulationMeasurement
from ncgrok.empirical.runs import (
    RETRAIN,
    START_OVER,
    RunDirectory,
    RunDirectoryError,
    ShardDirectory,
    SweepDirectory,
)
from ncgrok.empirical.shards import Shard, shard_groups
from ncgrok.empirical.sweep_config import DTYPES, SweepConfig, run_name  # noqa: F401 (re-exported)

__all__ = ["DTYPES", "Shard", "SweepConfig", "SweepResult", "divergence_message", "prepare_shards",
           "run_name", "run_sweep"]

def divergence_message(name: str, divergence: Divergence, config: SweepConfig) -> str:
    """One line naming the diverged run, where and how, and what to change."""
    fix = f"lower --lr for --optimizer {config.optimizer}"
    if config.optimizer == "sgd":
        other = "sum" if config.loss_reduction == "mean" else "mean"
        stable = {reduction: f"{lr:.0e}".replace("e-0", "e-") for reduction, lr in STABLE_SGD_LR.items()}
        fix += (f"; with the paper's x8 initialisation plain SGD is stable for --lr <= "
                f"{stable[config.loss_reduction]} with --loss-reduction {config.loss_reduction} "
                f"(<= {stable[other]} with {other})")
    return (f"{name} diverged at step {divergence.step} (loss {divergence.loss:.2g}, last finite "
            f"{divergence.last_finite_loss:.2g}; {divergence.reason}): {fix}")


@dataclass
class SweepResult:
    """The run directories of the sweep (of the shard), their summaries (empty unless completed),
    this process's training and measurement time, and the step it resumed from."""

    out_dir: Path
    run_dirs: list[Path]
    summaries: list[dict[str, Any]]
    train_seconds: float
    measure_seconds: float
    resumed_from: int


ProgressCallback = Callable[[int, int, list[dict[str, float]]], None]
MessageCallback = Callable[[str], None]



def _shard_started(config: SweepConfig, directory: SweepDirectory, shard: Shard, mine: list[int]) -> bool:
    """Whether shard ``shard`` has written anything (its state or one of its run directories)."""
    state = directory.shard(shard.index, shard.count)
    if shard.count == 1 or state.checkpoint_path.exists() or state.summary_path.exists():
        return True
    groups = config.groups()
    return any(directory.run(run_name(run)).path.exists() for index in mine for run in groups[index])


def _check_directory(config: SweepConfig, directory: SweepDirectory, shard: Shard, mine: list[int], *,
                     resume: bool) -> None:
    """Refuse what cannot be written or continued, reading only (called before and under the lock)."""
    if not directory.holds_sweep():
        if directory.is_empty():
            return
        if not directory.holds_sweep():  # (a shard starting beside this one may have just created it)
            raise RunDirectoryError(f"{directory.path} exists, is not empty and holds no sweep "
                                    f"({directory.sweep_path.name} is missing); choose another --out")
    manifest = directory.read_manifest()
    if manifest.shards != shard.count:
        given = "no --shard" if shard.count == 1 else f"--shard {shard}"
        raise RunDirectoryError(f"the sweep in {directory.path} is split into {manifest.shards} shard(s) "
                                f"({directory.sweep_path.name}), {given} was given; run its shards as --shard K/{manifest.shards}")
    if not resume and _shard_started(config, directory, shard, mine):
        what = "a sweep" if shard.count == 1 else f"shard {shard} of a sweep, started before"
        raise RunDirectoryError(f"{directory.path} already holds {what}; pass --resume to continue it or choose another --out")
    _check_manifest(config, directory, shard, manifest)


def _check_manifest(config: SweepConfig, directory: SweepDirectory, shard: Shard, manifest=None) -> None:
    """``sweep.json`` holds these settings, this grid and this number of shards."""
    manifest = manifest if manifest is not None else directory.read_manifest()
    try:
        stored_config = SweepConfig.from_dict(manifest.settings, source=directory.sweep_path)
    except ValueError as error:
        raise RunDirectoryError(f"{error}; {START_OVER}") from None
    differences = config.resume_differences(stored_config)
    if differences:
        raise RunDirectoryError(f"--resume needs the settings of the sweep in {directory.path} "
                                f"({directory.sweep_path.name}); these differ: " + "; ".join(differences))
    names = [run_name(run) for run in config.runs()]
    if manifest.runs != names:
        raise RunDirectoryError(f"{directory.sweep_path} lists runs {manifest.runs}, the settings give {names} "
                                f"(corrupt); {START_OVER}")
    if manifest.shards != shard.count:
        raise RunDirectoryError(f"{directory.sweep_path} was written for {manifest.shards} shard(s), not "
                                f"{shard.count}; run its shards as --shard K/{manifest.shards}")


def _write_run_files(config: SweepConfig, runs: list[RunConfig], directories: list[RunDirectory]) -> None:
    """Each run's ``config.json`` and an empty ``metrics.csv`` (when its group starts or starts anew)."""
    for run, directory in zip(runs, directories):
        directory.write_config(config.run_config(run, directory.name))
        directory.metrics(config.columns()).create()


def _check_run_configs(config: SweepConfig, runs: list[RunConfig], directories: list[RunDirectory]) -> None:
    """Before continuing: every ``config.json`` matches the settings (a missing one is rewritten)."""
    for run, directory in zip(runs, directories):
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


def _check_logged_steps(config: SweepConfig, directories: list[RunDirectory], step: int,
                        diverged_at: dict[str, int] | None = None) -> None:
    """Every ``metrics.csv`` holds exactly the logged steps up to ``step`` (more may follow), those
    of a run in ``diverged_at`` (name: divergence step) only up to its divergence step."""
    diverged_at = diverged_at or {}
    for directory in directories:
        last = min(step, diverged_at.get(directory.name, step))
        expected = [s for s in config.schedule() if s <= last]
        table = directory.metrics(config.columns())
        kept = table.steps_through(step)
        if kept != expected:
            missing, extra = sorted(set(expected) - set(kept))[:5], sorted(set(kept) - set(expected))[:5]
            raise RunDirectoryError(f"{table.path} does not hold the logged steps up to the checkpoint's step "
                                    f"{step} (missing {missing}, unexpected {extra}): damaged file; {RETRAIN}")


@dataclass
class _Session:
    """What this process did, for the ``session`` entries of the summaries."""

    train_seconds: float = 0.0
    measure_seconds: float = 0.0
    resumed_from: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _new_trainer(config: SweepConfig, runs: list[RunConfig], data, device) -> BatchedTrainer:
    return BatchedTrainer(
        config.model_spec(tuple(data.train_x.shape[1:]), data.num_classes),
        runs,
        data.train_x,
        data.train_y,
        optimizer=config.optimizer,
        batch_size=config.batch_size,
        loss_reduction=config.loss_reduction,
        loss=config.loss,
        dtype=config.torch_dtype,
        device=device,
        betas=config.betas,
        momentum=config.momentum,
    )


def run_sweep(
    config: SweepConfig,
    out_dir: Path | str,
    *,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    split: Any | None = None,
    stop_after_step: int | None = None,
    shard: Shard | None = None,
    on_divergence: MessageCallback | None = None,
) -> SweepResult:
    """Train and measure every run of ``config`` (of shard ``shard`` only, if given); write results
    under ``out_dir``.

    ``split`` overrides data loading (an object with ``train_x, train_y, test_x, test_y,
    heldout_x, heldout_y, num_classes``, as ``empirical.data.paper_split`` returns); it is measured as
    given (the ``test_size`` subset is cut by ``SweepConfig.load_split``, which it replaces).
    ``stop_after_step`` stops (after checkpointing) once that logged step of the group being trained
    is done; it simulates an interruption in tests and lets a user split a long sweep into sessions.
    ``progress(done, total, rows)`` is called after each logged step with the steps done and to do
    over the shard's groups and the group's new rows (of the runs that have not diverged);
    ``on_divergence(line)`` once per run that diverges (:func:`divergence_message`). A directory problem (existing sweep without
    ``resume``, different settings or shard count, another process writing the shard, a corrupt or
    unwritable file) raises :class:`empirical.runs.RunDirectoryError`; too many shards for the
    groups a ``ValueError``.
    """
    shard = shard if shard is not None else Shard()
    directory = SweepDirectory(Path(out_dir))
    state = directory.shard(shard.index, shard.count)
    mine = shard_groups(config, shard)
    groups = config.groups()
    state.check_unlocked()
    _check_directory(config, directory, shard, mine, resume=resume)
    split = split if split is not None else config.load_split()
    device = select_device(config.device)
    data = as_measurement_data(_without_empty_heldout(split), device=device, dtype=config.torch_dtype)
    trainer = _new_trainer(config, groups[mine[0]], data, device)  # the network is checked before any write
    information = _information_measurement(config, split, data) if config.measure_ib else None
    population = None
    if config.is_modular:
        population = PopulationMeasurement(config.modulus, config.operation, device=device, dtype=config.torch_dtype,
                                           chunk_size=config.measure_chunk_size)
    with state.locked():
        _check_directory(config, directory, shard, mine, resume=resume)  # again: it may have changed meanwhile
        if not directory.create_manifest(config.to_dict(), [run_name(run) for run in config.runs()], shard.count):
            _check_manifest(config, directory, shard)  # another shard wrote it between the check and here
        state.remove_partial_writes()
        for index in mine:
            for run in groups[index]:
                directory.run(run_name(run)).remove_partial_writes()
        checkpoint = state.read_checkpoint(map_location=device) if state.checkpoint_path.is_file() else None
        first = _resume_position(config, directory, mine, checkpoint)
        loop = _GroupLoop(config, directory, shard, mine, data, information, population, progress, on_divergence)
        for position in range(first, len(mine)):
            runs = groups[mine[position]]
            directories = [directory.run(run_name(run)) for run in runs]
            if trainer.runs != runs:
                trainer = _new_trainer(config, runs, data, device)
            restored = checkpoint is not None and position == first
            if restored:
                _restore(config, directories, trainer, checkpoint, state)
            else:
                _write_run_files(config, runs, directories)
            if not loop.train(position, trainer, directories, stop_after_step, restored=restored):
                break
        return loop.result()


def _resume_position(config: SweepConfig, directory: SweepDirectory, mine: list[int], checkpoint) -> int:
    """Position in ``mine`` of the group to continue: the checkpoint's (its earlier groups are
    complete; their files are checked), or 0 without a checkpoint."""
    if checkpoint is None:
        return 0
    group = checkpoint.get("group", 0)  # checkpoints of one-group sweeps written before groups existed
    if group not in mine:
        raise RunDirectoryError(f"{directory.path}: the checkpoint is of batched group {group!r}, not one of this "
                                f"shard's groups {mine} (corrupt); {RETRAIN}")
    position = mine.index(group)
    groups = config.groups()
    for index in mine[: position + 1]:
        directories = [directory.run(run_name(run)) for run in groups[index]]
        _check_run_configs(config, groups[index], directories)
        if index != group:
            _check_logged_steps(config, directories, config.steps, _divergence_steps(directories))
    return position


def _divergence_steps(directories: list[RunDirectory]) -> dict[str, int]:
    """The divergence step of each run of a completed group whose ``summary.json`` says it diverged."""
    steps = {}
    for directory in directories:
        summary = directory.read_summary()
        if summary is not None and summary.get("status") == "diverged":
            steps[directory.name] = int(summary["divergence"]["step"])
    return steps


def _without_empty_heldout(split: Any) -> Any:
    """``split`` with an empty held-out sample (``heldout_size=0``) left out of the measurement."""
    heldout = getattr(split, "heldout_y", None)
    if heldout is None or len(heldout) > 0:
        return split
    names = ("train_x", "train_y", "test_x", "test_y", "num_classes")
    return type("SplitWithoutHeldout", (), {name: getattr(split, name) for name in names})()


def _restore(config: SweepConfig, directories: list[RunDirectory], trainer: BatchedTrainer, checkpoint: dict,
             state: ShardDirectory) -> None:
    """Load the checkpoint into ``trainer`` and cut every ``metrics.csv`` of its group back to its step."""
    try:
        trainer.load_state_dict(checkpoint["trainer"])
    except (KeyError, TypeError, ValueError) as error:
        raise RunDirectoryError(f"{state.checkpoint_path} does not fit the settings in the sweep's sweep.json "
                                f"({error}); {RETRAIN}") from None
    diverged_at = {directories[index].name: divergence.step for index, divergence in trainer.diverged.items()}
    _check_logged_steps(config, directories, trainer.step, diverged_at)  # every file before changing any
    for directory in directories:
        directory.metrics(config.columns()).truncate_after(trainer.step)


class _GroupLoop:
    """Trains a shard's groups in turn and writes their rows, checkpoints and summaries."""

    def __init__(self, config: SweepConfig, directory: SweepDirectory, shard: Shard, mine: list[int], data,
                 information, population, progress: ProgressCallback | None, on_divergence: MessageCallback | None):
        self.config, self.directory, self.shard, self.mine = config, directory, shard, mine
        self.state = directory.shard(shard.index, shard.count)
        self.data, self.information, self.population, self.progress = data, information, population, progress
        self.on_divergence = on_divergence
        self.session = _Session()
        self.resumed = False
        self.status = "running"
        self.summaries: dict[str, dict[str, Any]] = {}  # of the groups done, by run name
        self.run_dirs = [directory.run(run_name(run)).path for index in mine for run in config.groups()[index]]

    def train(self, position: int, trainer: BatchedTrainer, directories: list[RunDirectory],
              stop_after_step: int | None, *, restored: bool) -> bool:
        """Train group ``mine[position]`` to the end (True) or to ``stop_after_step`` (False)."""
        config = self.config
        tables = [run.metrics(config.columns()) for run in directories]
        group_session = _Session(resumed_from=trainer.step)
        if not self.resumed:
            self.session.resumed_from, self.resumed = trainer.step, True
        # a restored checkpoint's own step is already logged
        schedule = [step for step in config.schedule() if step > trainer.step or not restored]
        information_steps = config.information_steps()
        last_checkpoint = time.monotonic()
        announced = set(trainer.diverged) if restored else set()  # (announced by the process that diverged)
        for target in schedule:
            started = time.perf_counter()
            if target > trainer.step:
                trainer.train(target - trainer.step)
            diverged = trainer.diverged
            measured = time.perf_counter()
            rows = measure_runs(trainer, self.data, delta=config.delta, chunk_size=config.measure_chunk_size,
                                loss=config.loss)
            if self.population is not None:
                scales = ([row[name] for row in rows] for name in ("feature_norm_mean", "feature_norm_max"))
                for row, extra in zip(rows, self.population(trainer, *scales)):
                    row.update(extra)
            if self.information is not None and target in information_steps:
                scales = [row["feature_norm_max"] for row in rows]
                for row, extra in zip(rows, self.information(trainer, scales)):
                    row.update(extra)
            for session in (group_session, self.session):
                session.train_seconds += measured - started
                session.measure_seconds += time.perf_counter() - measured
            # a diverged run's parameters are those of its divergence step: no row for a later step
            logging = [index not in diverged or target <= diverged[index].step for index in range(len(rows))]
            for table, row, logged in zip(tables, rows, logging):
                if logged:
                    table.append([{"step": target, **row}])
            if diverged.keys() - announced:
                self._announce_divergence(trainer, directories, diverged, announced, group_session)
            if target in config.snapshot_steps:
                _save_snapshots(trainer, directories, target)
            final = target == config.steps
            stopping = stop_after_step is not None and target >= stop_after_step and not final
            if final or stopping or time.monotonic() - last_checkpoint >= config.checkpoint_seconds:
                self.state.write_checkpoint({"group": self.mine[position], "trainer": trainer.state_dict()})
                last_checkpoint = time.monotonic()
                if not (final or stopping):
                    self._write_summaries(position, trainer, directories, "running", group_session)
            if self.progress is not None:
                live = [row for row, logged in zip(rows, logging) if logged]
                self.progress(position * config.steps + target, len(self.mine) * config.steps, live)
            if stopping:
                self._write_summaries(position, trainer, directories, "running", group_session)
                return False
        if position == len(self.mine) - 1:
            self.status = "completed"
        self._write_summaries(position, trainer, directories, "completed", group_session)
        return True

    def _announce_divergence(self, trainer: BatchedTrainer, directories: list[RunDirectory],
                             diverged: dict[int, Divergence], announced: set[int], session: _Session) -> None:
        """Mark the runs that diverged since the last call ``diverged`` on disk and tell the user."""
        for index in sorted(diverged.keys() - announced):
            self._write_run_summary(trainer, index, directories[index], "running", session)
            if self.on_divergence is not None:
                self.on_divergence(divergence_message(directories[index].name, diverged[index], self.config))
            announced.add(index)

    def _write_run_summary(self, trainer: BatchedTrainer, index: int, directory: RunDirectory, status: str,
                           session: _Session) -> None:
        """Run ``index``'s summary: ``status``, or ``diverged`` with its divergence if it diverged."""
        divergence = trainer.diverged.get(index)
        if divergence is not None:
            status, divergence = "diverged", divergence._asdict()
        summary = directory.write_summary(dataclasses.asdict(trainer.runs[index]), status=status,
                                          session=session.as_dict(), divergence=divergence)
        self.summaries[summary["name"]] = summary

    def _write_summaries(self, position: int, trainer: BatchedTrainer, directories: list[RunDirectory], status: str,
                         session: _Session) -> None:
        """The summaries of group ``mine[position]``'s runs with ``status`` (``diverged`` for a run
        that diverged), and the shard's summary listing the runs of its groups up to that one."""
        for index, run_directory in enumerate(directories):
            self._write_run_summary(trainer, index, run_directory, status, session)
        groups = self.config.groups()
        names = [run_name(run) for index in self.mine[: position + 1] for run in groups[index]]
        shard = {"index": self.shard.index, "count": self.shard.count, "groups": list(self.mine)}
        self.state.write_summary([self._summary(name) for name in names], status=self.status,
                                 session=self.session.as_dict(), shard=shard)

    def _summary(self, name: str) -> dict[str, Any]:
        """A run's summary as written by this process, else as on disk (a group trained before)."""
        summary = self.summaries.get(name) or self.directory.run(name).read_summary()
        if summary is None:
            raise RunDirectoryError(f"{self.directory.run(name).summary_path} is missing although its batched group "
                                    f"is complete; {RETRAIN}")
        return summary

    def result(self) -> SweepResult:
        summaries = [self._summary(path.name) for path in self.run_dirs] if self.status == "completed" else []
        return SweepResult(self.directory.path, list(self.run_dirs), summaries, self.session.train_seconds,
                           self.session.measure_seconds, self.session.resumed_from)


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


def _save_snapshots(trainer: BatchedTrainer, runs: list[RunDirectory], step: int) -> None:
    """Each run's state dict at ``step``, as CPU tensors (the same file whichever device trained it)."""
    import io

    import torch

    for index, directory in enumerate(runs):
        buffer = io.BytesIO()
        state = {name: tensor.detach().to("cpu") for name, tensor in trainer.run_module(index).state_dict().items()}
        torch.save(state, buffer)
        directory.write_snapshot(step, buffer.getvalue())


def prepare_shards(config: SweepConfig, out_dir: Path | str, count: int, *, resume: bool = False) -> list[Shard]:
    """Check, reading only, that the ``count`` shards of ``config`` can be written to ``out_dir``
    (as :func:`run_sweep` would for each), then create its ``sweep.json``: what a launcher does
    before it starts the shards (``empirical.shards``), so that a mistake is one error at once
    rather than one per job. Returns the shards."""
    shards = [Shard(index, count) for index in range(1, count + 1)]
    directory = SweepDirectory(Path(out_dir))
    for shard in shards:
        directory.shard(shard.index, shard.count).check_unlocked()
        _check_directory(config, directory, shard, shard_groups(config, shard), resume=resume)
    if not directory.create_manifest(config.to_dict(), [run_name(run) for run in config.runs()], count):
        _check_manifest(config, directory, shards[0])
    return shards
