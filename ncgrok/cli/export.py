"""``ncgrok export tensorboard|wandb DIR --out ...``: copy run directories into TensorBoard event files
or offline wandb runs (``empirical.export``); metrics.csv and summary.json stay the source of truth."""
from __future__ import annotations

import argparse
import json

from ncgrok.cli import options
from ncgrok.files import json_safe


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="copy run directories into TensorBoard event files or offline wandb runs",
        description=(
            "Copy every run under DIR (a run directory or a sweep) for viewing in TensorBoard or wandb: each "
            "metrics.csv column as a scalar series, weight decay, lr and seed as hyperparameters, the fit and "
            "grokking onset (ncgrok onset's definitions) as metrics. A one-way copy; --out must be new or empty. "
            "Optional packages: pip install 'ncgrok[export]'."
        ),
    )
    parser.set_defaults(func=lambda args: _print_help(parser))
    targets = parser.add_subparsers(dest="target", metavar="TARGET")
    tensorboard = targets.add_parser("tensorboard", help="event files, one run per directory: tensorboard --logdir OUT")
    wandb = targets.add_parser("wandb", help="offline wandb runs (nothing is sent): wandb sync OUT/wandb/offline-run-*")
    for target in (tensorboard, wandb):
        target.add_argument("path", metavar="DIR", type=options.path_text,
                            help="a run directory or a directory of run directories")
        target.add_argument("--out", required=True, type=options.path, help="new or empty output directory")
        target.add_argument("--json", action="store_true", help="print what was exported as JSON")
    wandb.add_argument("--project", type=options.name, default="ncgrok", help="wandb project the runs are synced to (default ncgrok)")
    tensorboard.set_defaults(func=_run)
    wandb.set_defaults(func=_run)


def _print_help(parser: argparse.ArgumentParser) -> int:
    """``ncgrok export`` without a target: its help, exit status 2."""
    parser.print_help()
    return 2


def _run(args: argparse.Namespace) -> int:
    from ncgrok.empirical import export

    if args.target == "tensorboard":
        exported = export.export_tensorboard(args.path, args.out)
        hint = f"tensorboard --logdir {args.out}"
    else:
        exported = export.export_wandb(args.path, args.out, project=args.project)
        hint = f"wandb sync {args.out / 'wandb'}/offline-run-*   (uploads them to project {args.project})"
    if args.json:
        print(json.dumps(json_safe({"out": str(args.out), "runs": [vars(run) for run in exported]})))
        return 0
    for run in exported:
        outcome = ", ".join(f"{key} {value:g}" for key, value in run.metrics.items())
        print(f"{run.name}: {run.rows} rows; {outcome}; onset {run.status['onset']}")
    print(f"exported {len(exported)} run(s) to {args.out}; view with: {hint}")
    return 0
