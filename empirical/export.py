"""Copy run directories into TensorBoard event files and offline wandb runs, for viewing there.

``metrics.csv`` and ``summary.json`` stay the source of truth: an export is a one-way copy, made
again whenever wanted, and never read back by ncgrok. Each run becomes one TensorBoard run (or one
wandb run) named like its directory, with

* every ``metrics.csv`` column but ``step`` as a scalar series at its logged steps (TensorBoard
  stores 32-bit floats; wandb keeps the numbers as written),
* the run's weight decay, learning rate and seed (and optimizer, data set and model) as
  hyperparameters,
* the fit step and grokking onset step of ``empirical.onset.grokking_onset`` (default thresholds,
  as ``ncgrok onset``) and the final accuracies as metrics, NaN when there is none, plus the onset
  status and the training status from ``summary.json`` (wandb summary; TensorBoard text).

Both writers are optional extras (``pip install 'ncgrok[export]'``): TensorBoard through torch's
``SummaryWriter`` (which needs the ``tensorboard`` package), wandb in offline mode
(``WANDB_MODE=offline``: nothing is sent; ``wandb sync`` uploads the run directories later). The
output directory must be new or empty, and a failed export deletes what it wrote (TensorBoard's is
written beside its place and renamed into it when complete; wandb records its directory's path in
its files, so it is written in place).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ncgrok.empirical.runs import Run, RunDirectory, load_sweep

__all__ = ["ExportedRun", "export_tensorboard", "export_wandb", "run_facts"]

HPARAM_KEYS = ("weight_decay", "lr", "seed", "optimizer", "dataset", "model")


@dataclass(frozen=True)
class ExportedRun:
    """What was exported for one run: its name, ``hparams``, ``metrics`` (fit, onset, final
    accuracies), ``status`` (training and onset) and the number of logged rows."""

    name: str
    hparams: dict[str, Any]
    metrics: dict[str, float]
    status: dict[str, str]
    rows: int


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def run_facts(run: Run) -> ExportedRun:
    """The hyperparameters, outcome metrics and statuses of ``run`` (module docstring)."""
    from ncgrok.empirical.onset import grokking_onset

    onset = grokking_onset(run.steps, run.column("train_acc"), run.column("test_acc"))
    hparams = {"weight_decay": run.weight_decay, "lr": run.lr, "seed": run.seed, "optimizer": run.optimizer,
               "dataset": str(run.config.get("dataset")), "model": str(run.config.get("model"))}
    metrics = {"fit_step": _number(onset.fit_step), "onset_step": _number(onset.onset_step),
               "final_train_acc": float(run.column("train_acc")[-1]), "final_test_acc": float(run.column("test_acc")[-1])}
    summary = RunDirectory(run.path).read_summary() or {}
    status = {"onset": onset.status, "training": str(summary.get("status", "unknown"))}
    return ExportedRun(run.name, hparams, metrics, status, len(run.steps))


def _series(run: Run) -> Iterator[tuple[int, dict[str, float]]]:
    """``(step, {column: value})`` for each logged row."""
    columns = [column for column in run.metrics if column != "step"]
    for index, step in enumerate(run.steps):
        yield int(step), {column: float(run.metrics[column][index]) for column in columns}


@contextlib.contextmanager
def _new_directory(out_dir: Path | str, *, in_place: bool = False) -> Iterator[Path]:
    """A temporary directory beside ``out_dir``, renamed to ``out_dir`` when the block succeeds and
    deleted when it fails. ``in_place``: ``out_dir`` itself, deleted when the block fails (for a
    writer that records its directory's path in what it writes, as wandb does)."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not empty; choose a new directory (an export is never "
                         "mixed with older files)")
    out.parent.mkdir(parents=True, exist_ok=True)
    if in_place:
        out.mkdir(exist_ok=True)
    folder = out if in_place else Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        yield folder
        if not in_place:
            if out.exists():
                out.rmdir()
            os.rename(folder, out)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _missing(package: str) -> ValueError:
    return ValueError(f"this export needs the optional package {package}: pip install 'ncgrok[export]' "
                      f"(or pip install {package})")


def export_tensorboard(sweep_dir: Path | str, out_dir: Path | str) -> list[ExportedRun]:
    """Write one TensorBoard run per run directory under ``sweep_dir`` to ``out_dir/<run name>``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
    except ImportError:
        raise _missing("tensorboard") from None
    runs = load_sweep(sweep_dir)
    exported = []
    with _new_directory(out_dir) as folder:
        for run in runs:
            facts = run_facts(run)
            with SummaryWriter(log_dir=str(folder / run.name)) as writer:
                for step, values in _series(run):
                    for column, value in values.items():
                        writer.add_scalar(column, value, global_step=step)
                tags = {f"outcome/{key}": value for key, value in facts.metrics.items()}
                for summary in hparams(facts.hparams, tags):
                    writer.file_writer.add_summary(summary)
                for tag, value in tags.items():
                    writer.add_scalar(tag, value, global_step=int(run.steps[-1]))
                writer.add_text("status", ", ".join(f"{key}: {value}" for key, value in facts.status.items()))
            exported.append(facts)
    return exported


def export_wandb(sweep_dir: Path | str, out_dir: Path | str, *, project: str = "ncgrok") -> list[ExportedRun]:
    """Write one offline wandb run per run directory under ``sweep_dir`` to ``out_dir/wandb/``
    (``wandb sync out_dir/wandb/offline-run-*`` uploads them). The run ids are derived from the
    sweep directory and the run name, so syncing an export twice updates the same runs."""
    try:
        import wandb
    except ImportError:
        raise _missing("wandb") from None
    runs = load_sweep(sweep_dir)
    group = Path(sweep_dir).resolve().name
    exported = []
    previous = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "offline"
    try:
        with _new_directory(out_dir, in_place=True) as folder:
            settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, disable_git=True,
                                      save_code=False, disable_job_creation=True)
            for run in runs:
                facts = run_facts(run)
                identity = hashlib.sha1(f"{Path(run.path).resolve()}".encode()).hexdigest()[:16]
                config = {**{k: v for k, v in run.config.items() if k != "run"}, **facts.hparams}
                logged = wandb.init(project=project, group=group, name=run.name, id=identity, dir=str(folder),
                                    config=config, mode="offline", settings=settings, reinit="create_new")
                try:
                    for step, values in _series(run):
                        logged.log(values, step=step)
                    logged.summary.update({**facts.metrics, **{f"{k}_status": v for k, v in facts.status.items()}})
                finally:
                    logged.finish()
                exported.append(facts)
            wandb.teardown()
    finally:
        if previous is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = previous
    return exported
