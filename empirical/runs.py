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
    DIR/<run>/forecast.csv      with ``--forecast``: the live onset forecast, one row per logged step and
                                forecaster (:data:`FORECAST_COLUMNS`; :class:`ForecastTable`)
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
to the checkpoint's step (dropping a partial last line) and replays the rest bit for bit.
``forecast.csv`` grows the same way; its writer (``empirical.forecast_live``) cuts it back to the last
step of ``metrics.csv`` before appending again. One process
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

from ncgrok.empirical.metrics_schema import (  # noqa: F401 (the schema is re-exported: runs owns the file)
    METRICS_SCHEMA,
    METRICS_SCHEMA_TEXT,
    REQUIRED_METRICS,
    MetricColumn,
    header_problems,
)
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
FORECAST_FILE = "forecast.csv"
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
# forecast.csv: the step of the forecast, the forecaster and its answer (empirical.forecast), the signal it
# extrapolated ("" for r6-law), how many runs calibrated it, and the reason in words
FORECAST_COLUMNS = ("step", "forecaster", "status", "predicted_onset", "low", "high", "signal", "calibration_runs",
                    "detail")
_FORECAST_WORDS, _FORECAST_COUNTS = ("forecaster", "status", "signal", "detail"), ("step", "calibration_runs")
_REFORECAST = "delete the file: the next --forecast rewrites it from metrics.csv"

# What to tell a user whose run directory cannot be used as it is.
START_OVER = "start over with a new --out"
RETRAIN = f"delete {CHECKPOINT_FILE} and run again with --resume to retrain from step 0, or {START_OVER}"


class RunDirectoryError(ValueError):
    """A file of a run or sweep directory is missing, corrupt, locked or cannot be written; the
    message names the file and what to do."""


def check_metrics_header(header: Sequence[str], path: Path | str) -> None:
    """Raise :class:`RunDirectoryError` unless ``header`` is a valid ``metrics.csv`` header."""
    problems = header_problems(header)
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


class ForecastTable:
    """``forecast.csv`` of one run: :data:`FORECAST_COLUMNS`, rows appended as whole lines (created
    with its header on the first append); a partial last line is dropped when read."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def rows(self) -> list[dict[str, Any]]:
        """The complete rows (counts as ints, other numbers as floats, words as strings); [] without the file."""
        if not self.path.is_file():
            return []
        lines = _complete_lines(self.path)
        records = list(csv.reader(lines))
        if not records or tuple(records[0]) != FORECAST_COLUMNS:
            raise RunDirectoryError(f"{self.path} lacks the header {','.join(FORECAST_COLUMNS)} (corrupt); {_REFORECAST}")
        rows = []
        for number, values in enumerate(records[1:], start=2):
            try:
                row = {c: v if c in _FORECAST_WORDS else int(v) if c in _FORECAST_COUNTS else float(v)
                       for c, v in zip(FORECAST_COLUMNS, values, strict=True)}
            except ValueError:
                raise RunDirectoryError(f"{self.path}, line {number}: {values} (corrupt); {_REFORECAST}") from None
            rows.append(row)
        return rows

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            writer.writerow([" ".join(str(row[c]).split()) if c in _FORECAST_WORDS else
                             str(int(row[c])) if c in _FORECAST_COUNTS else format_value(float(row[c]))
                             for c in FORECAST_COLUMNS])
        if not buffer.getvalue():
            return
        with _writing(self.path):
            if not self.path.is_file():
                atomic_write_bytes(self.path, (",".join(FORECAST_COLUMNS) + "\n").encode())
            append_bytes(self.path, buffer.getvalue().encode())

    def keep_through(self, step: int) -> list[dict[str, Any]]:
        """Keep the header and the complete rows with ``step <= step`` (atomically; nothing without the
        file) and return those rows: a resumed run's forecast.csv cut back to its metrics.csv."""
        rows = self.rows()
        kept = [row for row in rows if row["step"] <= step]
        if self.path.is_file() and (len(kept) < len(rows) or not self.path.read_bytes().endswith(b"\n")):
            lines = _complete_lines(self.path)[: 1 + len(kept)]
            with _writing(self.path):
                atomic_write_bytes(self.path, "".join(line + "\n" for line in lines).encode())
        return kept


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
    forecast_path = _file(FORECAST_FILE)

    @property
    def name(self) -> str:
        return self.path.name

    def forecast(self) -> ForecastTable:
        return ForecastTable(self.forecast_path)

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


# The analysis side (Run, load_run, load_sweep, snapshots) reads through the classes above; it lives in
# run_loading.py to keep each module one screenful of ideas, and is re-exported here.
from ncgrok.empirical.run_loading import (  # noqa: E402,F401
    Run,
    find_run_directories,
    load_run,
    load_run_split,
    load_snapshot,
    load_sweep,
    snapshot_steps,
)
