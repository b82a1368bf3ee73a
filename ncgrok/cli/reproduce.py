"""``ncgrok reproduce``: one command per experiment of the paper and of the grokking literature."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ncgrok.cli import options
from ncgrok.files import json_safe

_DESCRIPTION = (
    "Train a preset's sweeps, check its claims (the general ledger of `ncgrok verify` on each sweep plus the "
    "preset's own expected outcomes, each with its source), draw its figures and write OUT/reproduce.json. "
    "--scale reduced is sized to finish in about 10 minutes on 2 CPU cores (what it changes is listed by --list); "
    "--scale full is the published setting (hours). Re-running with the same --out resumes an interrupted preset "
    "and reuses finished sweeps. The data must be on disk first (`ncgrok data fetch mnist|fashion-mnist`)."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reproduce", help="run a paper figure or a standard grokking task as a checked experiment",
                                   description=_DESCRIPTION)
    parser.add_argument("preset", nargs="?", type=options.name, metavar="PRESET",
                        help="the preset to run (see --list)")
    parser.add_argument("--list", action="store_true", help="print every preset, its source and its expected outcome")
    parser.add_argument("--scale", choices=("reduced", "full"), default="reduced",
                        help="reduced (about 10 minutes on 2 CPU cores; default) or full (the published setting)")
    parser.add_argument("--variant", type=options.name, default=None, metavar="NAME",
                        help="another model for the same experiment, where the preset offers one (see --list): "
                             "modular-addition/-division --variant power trains Power et al.'s 2-layer transformer "
                             "instead of Nanda et al.'s 1-layer one")
    parser.add_argument("--out", type=options.path, default=None, metavar="DIR",
                        help="output directory (default ncgrok-out/<preset>-<scale>[-<variant>])")
    parser.add_argument("--data-dir", type=options.path_text, default=None,
                        help="data directory (default $NCGROK_DATA or ~/.cache/ncgrok/data)")
    parser.add_argument("--device", type=options.device, default="auto", help="auto (GPU if present), cpu, cuda, cuda:N, mps")
    parser.add_argument("--format", nargs="+", default=["png"], choices=["png", "pdf", "svg"], help="figure formats (default png)")
    parser.add_argument("--json", action="store_true",
                        help='print {"preset", "scale", "runs": [{"run", "fit_step", "onset_step", "status", '
                             '"final_train_acc", "final_test_acc"}], "claims": [...]} instead of text')
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _listing(as_json: bool) -> int:
    from ncgrok.empirical.presets import PRESETS

    entries = [{"preset": p.name, "source": p.source, "reports": p.reports, "expected": p.expected,
                "reduced": p.reduced_note, "datasets": list(p.datasets),
                "variants": {name: what for name, (what, _) in p.variants.items()}} for p in PRESETS.values()]
    if as_json:
        print(json.dumps({"presets": entries}))
        return 0
    for entry in entries:
        print(f"{entry['preset']}\n  source:   {entry['source']}\n  reports:  {entry['reports']}\n"
              f"  expected: {entry['expected']}\n  reduced:  {entry['reduced']}\n  data:     {', '.join(entry['datasets'])}")
        for name, what in entry["variants"].items():
            print(f"  --variant {name}: {what}")
    return 0


def _text(result: Any, payload: dict[str, Any]) -> list[str]:
    from ncgrok.empirical.ledger.runner import ledger_lines
    from ncgrok.empirical.runs import format_value

    lines = [f"{payload['preset']} ({payload['scale']}): {payload['source']}", f"reports: {payload['reports']}", ""]
    header = ("run", "fit_step", "onset_step", "status", "train_acc", "test_acc")
    rows = [header] + [(r["run"], format_value(r["fit_step"]), format_value(r["onset_step"]), r["status"],
                        format_value(r["final_train_acc"]), format_value(r["final_test_acc"])) for r in payload["runs"]]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in rows] + [""]
    for stage in dict.fromkeys(claim.stage for claim in result.claims):
        lines.append(f"claims ({'preset' if not stage else 'ledger on ' + stage}):")
        lines += ["  " + line for line in ledger_lines([c.result for c in result.claims if c.stage == stage])]
    lines += [""] + [f"note: {note}" for note in payload["notes"]]
    lines.append(f"figures: {len(payload['figures'])} in {result.out_dir / 'figures'}")
    lines.append(f"total {payload['seconds']:.0f} s (training {payload['train_seconds']:.0f} s, measurement "
                 f"{payload['measure_seconds']:.0f} s); results in {result.out_dir}")
    return lines


def _run(args: argparse.Namespace) -> int:
    if args.list:
        if args.preset is not None:
            raise ValueError("--list takes no PRESET; give either --list or a preset name")
        return _listing(args.json)
    if args.preset is None:
        raise ValueError("PRESET is missing; `ncgrok reproduce --list` shows the presets")
    from ncgrok.cli.train import ProgressBar
    from ncgrok.empirical.presets import get_preset
    from ncgrok.empirical.reproduce import prepare_stages, reproduce, result_json

    preset = get_preset(args.preset)
    preset.stages_at(args.scale, args.variant)  # an unknown variant is refused before anything is written
    suffix = f"-{args.variant}" if args.variant else ""
    out = args.out if args.out is not None else Path("ncgrok-out") / f"{preset.name}-{args.scale}{suffix}"
    bars: list[ProgressBar] = []

    def progress(label: str) -> ProgressBar:
        if bars:
            bars[-1].close()
        config = next(stage.config for stage in prepare_stages(preset, args.scale, variant=args.variant)
                      if stage.label == label)
        if not (args.quiet or args.json):
            print(f"{preset.name}: stage {label}", file=sys.stderr)
        bars.append(ProgressBar(config.steps, disable=args.quiet or args.json))
        return bars[-1]

    try:
        result = reproduce(preset, args.scale, out, variant=args.variant, data_dir=args.data_dir, device=args.device,
                           progress=progress, formats=tuple(args.format))
    finally:
        for bar in bars:
            bar.close()
    payload = result_json(result)
    if args.json:
        print(json.dumps(json_safe(payload), allow_nan=False))
    else:
        print("\n".join(_text(result, payload)))
    return 0
