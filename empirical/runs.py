"""Run and sweep directories on disk: the one module that names their files and reads and writes them.

Layout (``ncgrok sweep --out DIR``; ``ncgrok train`` writes the same with one run)::

    DIR/sweep.json              schema version, the sweep's settings (``SweepConfig.to_dict``), run names,
                                ``shards`` (into how many shards the grid is split; 1 when unsharded).
                                Created once (by whichever process comes first) and never changed.
    DIR/checkpoint.pt           the batched training state of the group being trained, for --resume
    DIR/summary.json            status, the summary of every run trained so far, the session
    DIR/lock                    advisory lock of the process writing DIR (pid, host, since when)
    DIR/<run>/config.json       the sweep's settings plus ``run`` {seed, lr, weight_decay} and ``name``
    DIR/<run>/metrics.csv       one row per logged step (:data:`METRICS_SCHEMA`)
    DIR/<run>/summary.json      training facts only: ``status`` (:data:`RUN_STATUSES`), ``final`` (last
                                metrics row), ``logged_steps``, ``session`` (timings, resumed_from);
                                a ``diverged`` run also ``divergence`` {step, loss, last_finite_loss,
                                reason}: it was frozen there and its metrics.csv has no later rows
    DIR/<run>/snapshots/step_<N>.pt   optional model snapshots (state dicts, CPU tensors)

A sweep split into N shards (``--shard K/N``) keeps ``checkpoint.pt``, ``summary.json`` and ``lock``
per shard, in ``DIR/shards/<K>-of-<N>/`` (:class:`ShardDirectory`; an unsharded sweep is shard 1 of
1, whose state is ``DIR`` itself); its run directories are those above, written by one shard each.
So no file is written by two processes: shards run concurrently, each locked on its own, and
readers merge them (:func:`load_sweep` reads every run directory, ``empirical.progress`` every shard).

Analyses (onsets, bound checks) are computed from ``metrics.csv`` by their callers. Crash safety:
every file but ``metrics.csv`` and ``lock`` is replaced atomically and flushed to disk
(:mod:`ncgrok.files`; a crash can leave a ``.<name>.partial-*`` file, which a resume deletes).
``metrics.csv`` grows by whole lines, each flushed before the next checkpoint; a resume cuts it back
to the checkpoint's step (dropping a partial last line) and replays the rest bit for bit. One process
at a time writes a shard (its ``lock``, released by the kernel when its owner dies). A missing,
corrupt or unwritable file raises :class:`RunDirectoryError` naming the file and what to do.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from ncgrok.files import (
    DirectoryLock,
    append_bytes,
    atomic_write_bytes,
    atomic_write_json,
    default_file_mode,
    is_partial_write,
    json_safe,
    lock_holder,
    remove_partial_writes,
)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
SWEEP_FILE = "sweep.json"
LOCK_FILE = "lock"
SHARDS_DIR = "shards"
SNAPSHOT_DIR = "snapshots"
SCHEMA_VERSION = 1
RUN_STATUSES = ("running", "completed", "diverged")
DIVERGENCE_KEY = "divergence"  # summary.json's entry of a diverged run: step, loss, last_finite_loss, reason
SESSION_KEY = "session"  # summary.json's entry for the writing process (timings, resumed_from), not results
_SNAPSHOT = re.compile(r"^step_(\d+)\.pt$")

# What to tell a user whose run directory cannot be used as it is.
START_OVER = "start over with a new --out"
RETRAIN = f"delete {CHECKPOINT_FILE} and run again with --resume to retrain from step 0, or {START_OVER}"


class RunDirectoryError(ValueError):
    """A file of a run or sweep directory is missing, corrupt, locked or cannot be written; the
    message names the file and what to do."""


# ---------------------------------------------------------------------------------------------
# The metrics.csv schema


@dataclass(frozen=True)
class MetricColumn:
    name: str
    meaning: str
    required: bool = False


_TRAIN = "on the training set"
METRICS_SCHEMA: tuple[MetricColumn, ...] = (
    MetricColumn("step", "optimizer steps completed when the row was measured (integer, strictly increasing)", True),
    MetricColumn("train_loss", "squared error to the one-hot target, summed over outputs, mean over training examples"),
    MetricColumn("train_acc", "training accuracy, a fraction in [0, 1]", True),
    MetricColumn("test_loss", "as train_loss, on the test set"),
    MetricColumn("test_acc", "test accuracy, a fraction in [0, 1]", True),
    MetricColumn("test_size", "number of test examples behind test_acc and the pair errors (their sample size)"),
    MetricColumn("nc1", f"Tr Sigma_W / Tr Sigma_B of the last hidden layer's features {_TRAIN}"),
    MetricColumn("nc1_pinv", f"Tr(Sigma_W Sigma_B^+) / K {_TRAIN}"),
    MetricColumn("rnc1", f"Tr Sigma_W / (mean feature norm)^2 {_TRAIN} (the paper's plotted RNC1)", True),
    MetricColumn("rnc1_sup", f"Tr Sigma_W / (largest feature norm B_g)^2 {_TRAIN} (the theory's RNC1)"),
    MetricColumn("nc2", "sigma_max / sigma_min of the matrix of uncentred class means"),
    MetricColumn("etf_deviation", "relative distance of the centred class means' Gram matrix from the simplex ETF's"),
    MetricColumn("within_var", f"Tr Sigma_W, unscaled, {_TRAIN}"),
    MetricColumn("between_var", f"Tr Sigma_B, unscaled, {_TRAIN}"),
    MetricColumn("feature_norm_mean", f"mean feature norm {_TRAIN}"),
    MetricColumn("feature_norm_max", f"largest feature norm B_g {_TRAIN}"),
    MetricColumn("heldout_within_var", "unbiased population within-class variance (Def. 3.1) from held-out training "
                 "images, over the training mean norm squared (NaN without a held-out sample)"),
    MetricColumn("heldout_within_var_sup", "the same over B^2, B the largest feature norm of training and held-out data "
                 "(not on rnc1_sup's scale)"),
    MetricColumn("heldout_within_var_clip", "held-out population within-class variance on rnc1_sup's scale B (the "
                 "training set's largest feature norm), each held-out feature clipped to norm B"),
    MetricColumn("heldout_frac_above_scale", "fraction of held-out features whose norm exceeds B (clipped above)"),
    MetricColumn("heldout_radius", "Thm. 4.1 radius of heldout_within_var_clip (features of norm <= 1) at the sweep's delta"),
    MetricColumn("heldout_nc1", "Tr Sigma_W / Tr Sigma_B of the held-out features"),
    MetricColumn("cantelli_bound", "Thm. 3.2 bound on the test error from held-out class statistics (vs 1 - test_acc); "
                 "vacuous when >= 1"),
    MetricColumn("cantelli_bound_clipped", "Thm. 3.2 with each class's inner sum capped at 1"),
    MetricColumn("cantelli_bound_directional_clipped", "Thm. 3.2 with the directional variance u^T C_c u, capped per class"),
    MetricColumn("cantelli_pair_term", "the largest two-class Cantelli term (c, k), <= 1"),
    MetricColumn("cantelli_pair_term_directional", "the directional two-class term of the same pair"),
    MetricColumn("cantelli_pair_error", "that pair's measured error P(z_k >= z_c | Y = c) on the test set"),
    MetricColumn("cantelli_pair_count", "number of class-c test examples behind cantelli_pair_error"),
    MetricColumn("weight_norm", "Frobenius norm of all parameters"),
    MetricColumn("last_layer_norm", "norm of the last layer's weight and bias"),
    MetricColumn("imbalance_norm", "||W_L^T W_L - W_{L-1} W_{L-1}^T||_F of the last two linear layers (Thm. 4.3)"),
    MetricColumn("nhsic_zx", "--measure-ib: normalised HSIC between features Z and inputs X"),
    MetricColumn("nhsic_zy", "--measure-ib: normalised HSIC between features Z and labels Y"),
    MetricColumn("mi_zx", "--measure-ib: compressed mutual information I(Z;X), nats (the paper's three-entropy route)"),
    MetricColumn("mi_zy", "--measure-ib: compressed mutual information I(Z;Y), nats"),
    MetricColumn("mi_zx_ksg", "--measure-ib: I(Z;X) on the same codes by the KSG estimator, nats"),
    MetricColumn("mi_zy_ksg", "--measure-ib: I(Z;Y) on the same codes by Ross's mixed estimator, nats"),
    MetricColumn("ib_bound_trace", "--measure-ib: Thm. 3.4 trace bound on I(Z;X|Y), nats"),
    MetricColumn("ib_bound_logdet", "--measure-ib: Thm. 3.4 log-det bound on I(Z;X|Y), nats"),
)
REQUIRED_METRICS = tuple(column.name for column in METRICS_SCHEMA if column.required)
METRICS_SCHEMA_TEXT = (
    "metrics.csv: comma-separated, a header line then one line per logged step, every line ending in a "
    "newline; 'step' is the first column; numbers as Python writes them ('nan', 'inf' allowed). Required "
    f"columns: {', '.join(REQUIRED_METRICS)}; the others are optional, and unknown columns are kept and ignored."
)


def check_metrics_header(header: Sequence[str], path: Path | str) -> None:
    """Raise :class:`RunDirectoryError` unless ``header`` is a valid ``metrics.csv`` header."""
    problems = []
    if not header or header[0] != "step":
        problems.append("the first column must be 'step'")
    missing = [name for name in REQUIRED_METRICS if name not in header]
    if missing:
        problems.append(f"required columns {missing} are missing")
    repeated = sorted({name for name in header if list(header).count(name) > 1})
    if repeated:
        problems.append(f"columns {repeated} appear more than once")
    if problems:
        raise RunDirectoryError(f"{path}: {'; '.join(problems)} (header {list(header)}). {METRICS_SCHEMA_TEXT}")


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    return str(value)


def _complete_lines(path: Path) -> list[str]:
    """The lines of ``path`` that end in a newline (a crash can leave a partial last line)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RunDirectoryError(f"{path} does not exist; is this a run directory written by ncgrok train/sweep?") from None
    except UnicodeDecodeError:
        raise RunDirectoryError(f"{path} is not a text file (corrupt); {START_OVER}") from None
    return text[: text.rfind("\n") + 1].splitlines()


def read_metrics_rows(path: Path | str, *, expected_columns: Sequence[str] | None = None) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as dicts of floats (``step`` as int); a partial last line is dropped."""
    path = Path(path)
    lines = _complete_lines(path)
    if not lines:
        raise RunDirectoryError(f"{path} has no header line (corrupt); {RETRAIN}")
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = next(reader)
    if expected_columns is not None and header != list(expected_columns):
        raise RunDirectoryError(f"{path} has columns {header}, expected {list(expected_columns)}; {START_OVER}")
    check_metrics_header(header, path)
    rows, previous = [], -math.inf
    for line_number, values in enumerate(reader, start=2):
        where = f"{path}, line {line_number}"
        if len(values) != len(header):
            raise RunDirectoryError(f"{where}: {len(values)} values for {len(header)} columns (corrupt); {RETRAIN}")
        try:
            row = {column: float(value) for column, value in zip(header, values)}
        except ValueError:
            raise RunDirectoryError(f"{where}: a value is not a number: {values} (corrupt); {RETRAIN}") from None
        if not row["step"].is_integer() or row["step"] <= previous:
            raise RunDirectoryError(f"{where}: step {values[0]} is not an integer above the previous row's; {RETRAIN}")
        previous = row["step"] = int(row["step"])
        rows.append(row)
    return rows


def read_metrics(path: Path | str) -> dict[str, np.ndarray]:
    """A ``metrics.csv`` (or a run directory containing one) as a dict of numpy column arrays."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    rows = read_metrics_rows(path)
    if not rows:
        raise RunDirectoryError(f"{path} has a header but no logged rows yet")
    return {column: np.array([row[column] for row in rows]) for column in rows[0]}


class MetricsTable:
    """``metrics.csv`` of one run: a fixed header, rows appended as whole lines."""

    def __init__(self, path: Path | str, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        check_metrics_header(self.columns, self.path)

    def create(self) -> None:
        with _writing(self.path):
            atomic_write_bytes(self.path, (",".join(self.columns) + "\n").encode())

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        lines = [",".join(format_value(row.get(column, math.nan)) for column in self.columns) for row in rows]
        if lines:
            with _writing(self.path):
                append_bytes(self.path, ("\n".join(lines) + "\n").encode())

    def steps_through(self, step: int) -> list[int]:
        """The logged steps ``<= step`` (complete rows only). Reads only."""
        return [row["step"] for row in read_metrics_rows(self.path, expected_columns=self.columns) if row["step"] <= step]

    def truncate_after(self, step: int) -> None:
        """Keep the header and the complete rows with ``step <= step``, byte for byte (atomically)."""
        lines = _complete_lines(self.path)[: 1 + len(self.steps_through(step))]
        with _writing(self.path):
            atomic_write_bytes(self.path, "".join(line + "\n" for line in lines).encode())


# ---------------------------------------------------------------------------------------------
# Files


def read_json(path: Path | str, *, fix: str = START_OVER) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or corrupt file is a :class:`RunDirectoryError` ending in ``fix``."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirectoryError(f"{path} does not exist; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirectoryError(f"{path} is not valid JSON ({error}): the file is corrupt; {fix}") from None
    if not isinstance(payload, dict):
        raise RunDirectoryError(f"{path} holds a JSON {type(payload).__name__}, not an object (corrupt); {fix}")
    return payload


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed write (disk full, read-only file system, ...) into a RunDirectoryError."""
    try:
        yield
    except OSError as error:
        raise RunDirectoryError(
            f"cannot write {path}: {error.strerror or error}; the files written before (the last checkpoint "
            f"among them) are intact: make room or make the directory writable and run again with --resume, "
            f"or {START_OVER}"
        ) from error


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    with _writing(path):
        atomic_write_json(path, payload)


def _file(name: str) -> property:
    """A directory class's attribute: the path of its file ``name``."""
    return property(lambda self: self.path / name, doc=f"``<directory>/{name}``")


@dataclass(frozen=True)
class RunDirectory:
    """One run's directory (see the module docstring for its files)."""

    path: Path
    config_path = _file(CONFIG_FILE)
    metrics_path = _file(METRICS_FILE)
    summary_path = _file(SUMMARY_FILE)

    @property
    def name(self) -> str:
        return self.path.name

    def snapshot_path(self, step: int) -> Path:
        return self.path / SNAPSHOT_DIR / f"step_{int(step)}.pt"

    def metrics(self, columns: Sequence[str]) -> MetricsTable:
        return MetricsTable(self.metrics_path, columns)

    def read_config(self) -> dict[str, Any]:
        fix = f"delete it and run again with --resume to rewrite it from {SWEEP_FILE}, or {START_OVER}"
        return read_json(self.config_path, fix=fix)

    def write_config(self, payload: Mapping[str, Any]) -> None:
        _write_json(self.config_path, payload)

    def write_summary(self, run: Mapping[str, Any], *, status: str, session: Mapping[str, Any],
                      divergence: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write and return ``summary.json``: the ``run`` entry, ``status``, the last row of
        ``metrics.csv`` and the number of rows, and the ``session``; training facts only. A
        ``diverged`` run also gets its ``divergence`` entry (step, loss, last_finite_loss, reason)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        if (status == "diverged") != (divergence is not None):
            raise ValueError("a divergence entry goes with status 'diverged', and only with it")
        rows = read_metrics_rows(self.metrics_path)
        summary = json_safe({"name": self.name, **run, "status": status, "final": rows[-1] if rows else None,
                             "logged_steps": len(rows), SESSION_KEY: dict(session)})
        if divergence is not None:
            summary[DIVERGENCE_KEY] = json_safe(dict(divergence))
        _write_json(self.summary_path, summary)
        return summary

    def read_summary(self) -> dict[str, Any] | None:
        """``summary.json``, or ``None`` before the run's first one was written."""
        return read_json(self.summary_path) if self.summary_path.is_file() else None

    def write_snapshot(self, step: int, data: bytes) -> None:
        path = self.snapshot_path(step)
        with _writing(path):
            atomic_write_bytes(path, data)

    def snapshot_steps(self) -> list[int]:
        """Steps of the saved model snapshots, ascending."""
        folder = self.path / SNAPSHOT_DIR
        if not folder.is_dir():
            return []
        return sorted(int(match.group(1)) for match in map(_SNAPSHOT.match, (f.name for f in folder.iterdir())) if match)

    def remove_partial_writes(self) -> None:
        for folder in (self.path, self.path / SNAPSHOT_DIR):
            if folder.is_dir():
                with _writing(folder):
                    remove_partial_writes(folder)


class SweepManifest(NamedTuple):
    """``sweep.json``: the stored settings (a dict for ``SweepConfig.from_dict``), the run names of the
    whole grid and the number of shards the grid is split into."""

    settings: dict[str, Any]
    runs: list[str]
    shards: int


@dataclass(frozen=True)
class ShardDirectory:
    """Where one shard of a sweep keeps its state: ``checkpoint.pt``, ``summary.json`` and ``lock``
    (``DIR`` itself for an unsharded sweep, ``DIR/shards/<K>-of-<N>`` for shard K of N)."""

    path: Path
    checkpoint_path = _file(CHECKPOINT_FILE)
    summary_path = _file(SUMMARY_FILE)
    lock_path = _file(LOCK_FILE)

    def holder(self) -> str | None:
        """Who is writing this shard now (``pid P on host H since T``), or ``None``."""
        return lock_holder(self.lock_path)

    def check_unlocked(self) -> None:
        """Refuse at once if another process writes here (reads only; :meth:`locked` then takes the lock)."""
        holder = self.holder()
        if holder is not None:
            raise RunDirectoryError(f"{self.path} is being written by {holder} ({self.lock_path}); wait for "
                                    f"that process to finish (or stop it), or choose another --out")

    @contextlib.contextmanager
    def locked(self) -> Iterator["ShardDirectory"]:
        """Create the directory if needed and hold its lock (refused at once if another process holds it)."""
        with _writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
        lock = DirectoryLock(self.lock_path, purpose=f"write to {self.path}")
        with _writing(self.lock_path):
            lock.acquire()
        try:
            yield self
        finally:
            lock.release()

    def write_checkpoint(self, state: Mapping[str, Any]) -> None:
        import torch  # the file-format layer stays torch-free at import (``ncgrok --help`` imports it)

        buffer = io.BytesIO()
        torch.save({"schema": SCHEMA_VERSION, **state}, buffer)
        with _writing(self.checkpoint_path):
            atomic_write_bytes(self.checkpoint_path, buffer.getvalue())

    def read_checkpoint(self, *, map_location: Any = "cpu") -> dict[str, Any]:
        """The checkpoint's payload (tensors and plain values only: ``weights_only`` loading)."""
        import torch

        try:
            state = torch.load(self.checkpoint_path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise RunDirectoryError(f"{self.checkpoint_path} does not exist; {RETRAIN}") from None
        except Exception as error:  # torch reports a damaged file in many ways (zip, pickle, EOF, seek)
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise RunDirectoryError(f"{self.checkpoint_path} is truncated or corrupt ({first}); {RETRAIN}") from None
        if not isinstance(state, dict) or state.get("schema") != SCHEMA_VERSION:
            raise RunDirectoryError(f"{self.checkpoint_path} is not a checkpoint of schema {SCHEMA_VERSION}; {RETRAIN}")
        return state

    def write_summary(self, runs: Sequence[Mapping[str, Any]], *, status: str, session: Mapping[str, Any],
                      shard: Mapping[str, Any]) -> None:
        """``summary.json`` of the shard: ``status``, the summaries of its runs trained so far, the
        ``session``, and ``shard`` (its index, the shard count and its groups)."""
        _write_json(self.summary_path, {"status": status, "runs": list(runs), SESSION_KEY: dict(session),
                                        "shard": dict(shard)})

    def read_summary(self) -> dict[str, Any] | None:
        """``summary.json`` of the shard, or ``None`` before its first one was written."""
        return read_json(self.summary_path) if self.summary_path.is_file() else None

    def remove_partial_writes(self) -> None:
        """Delete what interrupted writes left here (hold the lock)."""
        with _writing(self.path):
            remove_partial_writes(self.path)


@dataclass(frozen=True)
class SweepDirectory:
    """A sweep's directory: ``sweep.json``, one :class:`RunDirectory` per run, and the state of each
    shard (:meth:`shard`)."""

    path: Path
    sweep_path = _file(SWEEP_FILE)

    def run(self, name: str) -> RunDirectory:
        return RunDirectory(self.path / name)

    def shard(self, index: int = 1, count: int = 1) -> ShardDirectory:
        """The state directory of shard ``index`` (1-based) of ``count``."""
        return ShardDirectory(self.path if count == 1 else self.path / SHARDS_DIR / f"{index}-of-{count}")

    def holds_sweep(self) -> bool:
        return self.sweep_path.is_file()

    def is_empty(self) -> bool:
        """True when the directory is missing or holds nothing but a lock file, partial writes and
        shard state directories (a shard starting beside this process)."""
        if not self.path.exists():
            return True
        if not self.path.is_dir():
            raise RunDirectoryError(f"{self.path} is a file, not a directory; choose another --out")
        return all(p.name in (LOCK_FILE, SHARDS_DIR) or is_partial_write(p) for p in self.path.iterdir())

    def read_manifest(self) -> SweepManifest:
        """``sweep.json`` (a file without ``shards`` was written unsharded)."""
        fix = f"it records the sweep's settings; restore it, or {START_OVER}"
        manifest = read_json(self.sweep_path, fix=fix)
        if manifest.get("schema") != SCHEMA_VERSION:
            raise RunDirectoryError(f"{self.sweep_path} has schema {manifest.get('schema')!r}, this ncgrok reads "
                                    f"{SCHEMA_VERSION} (written by another version, or corrupt); {START_OVER}")
        names, shards = manifest.get("runs"), manifest.get("shards", 1)
        if not isinstance(manifest.get("config"), dict) or not isinstance(names, list):
            raise RunDirectoryError(f"{self.sweep_path} lacks its 'config' object or 'runs' list (corrupt); {fix}")
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
            raise RunDirectoryError(f"{self.sweep_path}: 'shards' must be an integer >= 1, got {shards!r} (corrupt); {fix}")
        return SweepManifest(manifest["config"], [str(name) for name in names], shards)

    def create_manifest(self, settings: Mapping[str, Any], names: Sequence[str], shards: int) -> bool:
        """Write ``sweep.json`` unless it exists, atomically and exclusively (a complete file is
        hard-linked into place, which fails if another process got there first): shards starting at
        once need no common lock. Returns whether this call created it."""
        payload = {"schema": SCHEMA_VERSION, "config": dict(settings), "runs": list(names), "shards": int(shards)}
        data = (json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n").encode()
        with _writing(self.sweep_path):
            self.path.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{SWEEP_FILE}.partial-", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(data)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.chmod(temporary, default_file_mode())
                os.link(temporary, self.sweep_path)
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(temporary)


# ---------------------------------------------------------------------------------------------
# Reading runs for analysis


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

