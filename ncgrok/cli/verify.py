"""``ncgrok verify``: the claims ledger (issue 12) on a run, a sweep, or any directory of runs."""
from __future__ import annotations

import argparse
import json
import sys

from ncgrok.cli import options

_DESCRIPTION = (
    "Checks every claim of the ledger on the runs at or below PATH (a run directory with metrics.csv and "
    "config.json, a sweep directory, or any directory of run directories; config.json needs lr, weight_decay and "
    "seed, optionally optimizer and steps). Prints one line per claim: id, verdict (holds, fails, inconclusive, "
    "vacuous, not_applicable), statistic [interval], the criterion fixed in advance and the source (the paper's "
    "result and whether it is published, a statement of the paper's text, or our reconstruction)."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser(
        "verify", help="check the claims ledger (paper claims and our reconstructions) on runs", description=_DESCRIPTION
    )
    verify.add_argument("path", metavar="PATH", type=options.path, help="a run directory, a sweep directory or a directory of runs")
    verify.add_argument("--json", action="store_true",
                        help='print {"claims": [{"id", "verdict", "statistic", "interval", "criterion", "source", '
                             '"detail"}]} instead of lines')
    verify.add_argument("--out", type=options.path, default=None, metavar="DIR", help="also write DIR/ledger.json")
    verify.add_argument("--only", type=options.name, nargs="+", default=None, metavar="ID", help="check only these claim ids")
    verify.add_argument("--apply-to-adamw", action="store_true",
                        help="apply gradient-descent theorems (tau2-lower-bound) to AdamW runs too")
    verify.set_defaults(func=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from ncgrok.empirical.ledger.load import load_curves
    from ncgrok.empirical.ledger.runner import ledger_json, ledger_lines, run_checks
    from ncgrok.files import atomic_write_json, json_safe

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; pass a directory for ledger.json")
    runs = load_curves(args.path)
    results = run_checks(runs, only=args.only, apply_to_adamw=args.apply_to_adamw)
    payload = ledger_json(results)
    if args.json:
        print(json.dumps(json_safe(payload), allow_nan=False))
    else:
        print("\n".join(ledger_lines(results)))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = atomic_write_json(args.out / "ledger.json", payload)
        if not args.json:
            print(f"wrote {path}")
    if all(run.diverged for run in runs):
        print(f"ncgrok verify: every run under {args.path} diverged in training; no claim could be checked",
              file=sys.stderr)
        return 1
    return 0
