"""``ncgrok status DIR``: per-shard and per-run progress of a sweep, read from the files on disk
(``empirical.progress``), so a sweep running elsewhere can be followed from the shared directory."""
from __future__ import annotations

import argparse
import dataclasses
import json

from ncgrok.cli import options
from ncgrok.files import json_safe


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="progress of a sweep (per shard and per run) from its files, while it runs or after",
        description=(
            "Print the progress of the sweep in DIR from the files on disk: per shard its status (pending, "
            "running with the process holding its lock, stopped: resume it, completed), steps done, rate and "
            "estimated time left; per run its status, last logged step, and the fit and grokking onset so far "
            "(ncgrok onset's definitions). Reads only."
        ),
    )
    parser.add_argument("path", metavar="DIR", type=options.path_text, help="the --out directory of ncgrok sweep (or train)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(func=_run)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _table(header: tuple[str, ...], lines: list[tuple]) -> str:
    rows = [header] + [tuple("-" if value is None else str(value) for value in line) for line in lines]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows)


def _run(args: argparse.Namespace) -> int:
    from ncgrok.empirical.progress import sweep_progress

    report = sweep_progress(args.path)
    if args.json:
        print(json.dumps(json_safe(dataclasses.asdict(report))))
        return 0
    print(f"{report.path}: {report.runs_done} of {report.runs} runs done, {report.runs_diverged} diverged, "
          f"{len(report.shards)} shard(s)")
    print()
    print(_table(
        ("shard", "status", "groups", "runs done", "steps", "steps/s", "left", "last write", "writer"),
        [(s.shard, s.status, ",".join(map(str, s.groups)), f"{s.runs_done}/{s.runs}", f"{s.done_steps}/{s.total_steps}",
          None if s.steps_per_second is None else f"{s.steps_per_second:.3g}", _duration(s.eta_seconds),
          None if s.seconds_since_write is None else f"{_duration(s.seconds_since_write)} ago", s.writer)
         for s in report.shards]))
    print()
    print(_table(
        ("run", "shard", "status", "step", "fit_step", "onset_step", "onset", "forecast"),
        [(r.name, r.shard, r.status, None if r.step is None else f"{r.step}/{r.steps}", r.fit_step, r.onset_step,
          r.onset, r.forecast) for r in report.run_progress]))
    return 0
