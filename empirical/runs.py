"""Run and sweep directories on disk: atomic writes, metrics tables, checkpoints.

Layout of a sweep directory (``ncgrok sweep --out DIR``; ``ncgrok train`` writes the same with one
run)::

    DIR/sweep.json              the sweep's configuration and the list of runs
    DIR/checkpoint.pt           the whole batched training state (all runs), for --resume
    DIR/<run name>/config.json  that run's full configuration
    DIR/<run name>/metrics.csv  one row per logged step (column ``step`` first)
    DIR/<run name>/summary.json final metrics, fit time, onset, wall time
    DIR/<run name>/snapshots/step_<N>.pt   optional model snapshots

Every file is written to a temporary name in the same directory and moved into place with
``os.replace`` (:mod:`ncgrok.files`), so a reader (or a crash) never sees a half-written file; JSON
files store NaN and infinities as ``null``. ``metrics.csv`` grows by appending whole lines; on resume
it is cut back to the rows at or before the checkpoint's step (dropping any partial last line), and
training replays the rest bit for bit.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

# atomic_write_json and json_safe are re-exported: empirical.sweep and empirical.cli_analysis
# import them from here.
from ncgrok.files import atomic_write_bytes, atomic_write_json, json_safe  # noqa: F401


def read_json(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the file is corrupt") from None


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    return str(value)


class MetricsTable:
    """``metrics.csv`` of one run: a fixed header, rows appended as whole lines."""

    def __init__(self, path: Path | str, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        if self.columns[0] != "step":
            raise ValueError("the first metrics column must be 'step'")

    def create(self) -> None:
        atomic_write_bytes(self.path, (",".join(self.columns) + "\n").encode())

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        lines = []
        for row in rows:
            lines.append(",".join(format_value(row.get(column, float("nan"))) for column in self.columns))
        if not lines:
            return
        with open(self.path, "a") as stream:
            stream.write("\n".join(lines) + "\n")
            stream.flush()

    def truncate_after(self, step: int) -> None:
        """Keep the header and the complete rows with ``step <= step`` (atomically)."""
        kept = [",".join(self.columns)]
        for row in read_metrics_rows(self.path, expected_columns=self.columns):
            if row["step"] <= step:
                kept.append(",".join(format_value(row[column]) for column in self.columns))
        atomic_write_bytes(self.path, ("\n".join(kept) + "\n").encode())


def read_metrics_rows(path: Path | str, *, expected_columns: Sequence[str] | None = None) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as dicts of floats (``step`` as int); a partial last line is dropped."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist; is this a run directory written by ncgrok train/sweep?") from None
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(complete))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{path} is empty; the run never logged (delete the directory or use --resume)") from None
    if expected_columns is not None and header != list(expected_columns):
        raise ValueError(f"{path} has columns {header}, expected {list(expected_columns)}")
    rows = []
    for line_number, values in enumerate(reader, start=2):
        if len(values) != len(header):
            raise ValueError(f"{path}, line {line_number}: {len(values)} values for {len(header)} columns (corrupt file)")
        row = {}
        for column, value in zip(header, values):
            try:
                row[column] = float(value)
            except ValueError:
                raise ValueError(f"{path}, line {line_number}: column {column!r} is not a number: {value!r}") from None
        row["step"] = int(row["step"])
        rows.append(row)
    return rows


def read_metrics(path: Path | str) -> dict[str, Any]:
    """A ``metrics.csv`` (or a run directory containing one) as a dict of numpy column arrays."""
    import numpy as np

    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    rows = read_metrics_rows(path)
    if not rows:
        raise ValueError(f"{path} has a header but no logged rows yet")
    return {column: np.array([row[column] for row in rows]) for column in rows[0]}


def find_run_directories(path: Path | str) -> list[Path]:
    """Run directories at or below ``path`` (a directory holding ``metrics.csv``), sorted by name."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if (path / "metrics.csv").is_file():
        return [path]
    runs = sorted(p.parent for p in path.glob("*/metrics.csv"))
    if not runs:
        raise ValueError(f"{path} holds no run directories (no */metrics.csv); point at a `ncgrok train` or `ncgrok sweep` output")
    return runs
