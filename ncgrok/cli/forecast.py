"""``ncgrok forecast``: predict each run's grokking onset from what it logged so far (never the test set)."""
from __future__ import annotations

import argparse
import json
import sys
import math
from typing import Any

from ncgrok.cli import options
from ncgrok.files import json_safe

# empirical.forecast.SIGNALS (not imported here so that --help stays fast; a test checks they agree)
SIGNALS = ("rnc1", "heldout_within_var", "nc2", "nc1")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "forecast",
        help="forecast the grokking onset from the contraction of the within-class variance (no test data)",
        description=(
            "Predict each run's grokking onset, with an 80%% interval, from the rows logged up to --at: the "
            "contraction of the held-out within-class variance (or training RNC1) after the fit, extrapolated to "
            "the contraction at which completed runs grokked (calibrated leaving the run out), and the "
            "reconstructed R6 law t_fit + C/(lr * weight decay). Test accuracy and loss are never read for the "
            "forecast run; completed runs' onsets (from their test accuracy) are the calibration."
        ),
    )
    parser.add_argument("path", type=options.path_text, metavar="RUN_OR_SWEEP", help="a run directory or a directory of run directories")
    parser.add_argument("--at", type=options.non_negative_number, default=None, metavar="STEP",
                        help="use only rows logged at or before this step (default: each run's last row)")
    parser.add_argument("--forecaster", choices=("variance-crossing", "r6-law"), default="variance-crossing",
                        help="which forecaster (default: variance-crossing)")
    parser.add_argument("--signal", choices=SIGNALS, default="rnc1",
                        help="the contracting quantity variance-crossing extrapolates (default: rnc1, the training RNC1)")
    parser.add_argument("--calibrate-on", type=options.path_text, metavar="SWEEP", default=None,
                        help="more completed runs to calibrate on (e.g. an earlier sweep), besides the other runs given")
    parser.add_argument("--backtest", action="store_true",
                        help="replay every completed run that grokked: forecast at fit + k*1000 steps and half-way to "
                             "the onset, and print each forecaster's median error and interval coverage")
    parser.add_argument("--history", action="store_true",
                        help="print what the live forecast said at each logged step (up to --at) from each run's "
                             "forecast.csv, written by ncgrok train/sweep --forecast (runs without one say so)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=_run)


def _curves(path: str) -> list[Any]:
    from ncgrok.empirical.ledger.load import load_curves  # the same loader as ncgrok verify

    return load_curves(path)


def _number(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.0f}"


def _run(args: argparse.Namespace) -> int:
    from ncgrok.empirical import forecast

    if args.at is not None and not (math.isfinite(args.at) and args.at >= 0):
        raise ValueError(f"--at must be a step >= 0, got {args.at}")
    if args.history:
        return _history(args)
    settings = forecast.ForecastSettings(signal=args.signal)
    runs = _curves(args.path)
    if runs and all(run.diverged for run in runs):
        print(f"ncgrok forecast: every run under {args.path} diverged in training; nothing to forecast",
              file=sys.stderr)
        return 1
    extra = _curves(args.calibrate_on) if args.calibrate_on else []
    if args.backtest:
        rows = forecast.backtest(runs + extra, settings=settings)
        summary = {"all": forecast.backtest_summary(rows), "halfway": forecast.backtest_summary(rows, halfway_only=True)}
        if args.json:
            print(json.dumps(json_safe({"backtest": summary, "rows": [
                {"run": r.run, "forecaster": r.forecaster, "at_step": r.at_step, "fit_step": r.fit_step,
                 "onset_step": r.onset_step, **r.forecast.to_json()} for r in rows]})))
            return 0
        for scope, table in summary.items():
            print(f"{scope} forecasts:" if scope == "all" else "forecasts half-way between fit and onset:")
            for name, entry in table.items():
                rel = entry["median_abs_error_relative"]
                cov = entry["coverage"]
                print(f"  {name:18s} {entry['forecasts']}/{entry['attempts']} made; median |error| "
                      f"{_number(entry['median_abs_error_steps'])} steps"
                      f" ({'-' if rel is None else f'{100 * rel:.0f}%'} of the delay); 80% interval coverage "
                      f"{'-' if cov is None else f'{100 * cov:.0f}%'}; other statuses {entry['other_statuses']}")
        return 0
    results = forecast.forecast_runs(runs, at=args.at, forecaster=args.forecaster, calibration_runs=extra,
                                     settings=settings)
    if args.json:
        print(json.dumps(json_safe({"runs": [r.to_json() for r in results]})))
        return 0
    print(f"{'run':28s} {'at_step':>8s} {'status':18s} {'onset':>8s} {'80% interval':>17s}  forecaster")
    for r in results:
        interval = "-" if r.interval is None else f"[{_number(r.interval[0])}, {_number(r.interval[1])}]"
        print(f"{r.run:28s} {_number(r.at_step):>8s} {r.status:18s} {_number(r.predicted_onset):>8s} {interval:>17s}  "
              f"{r.forecaster}: {r.detail}")
    return 0


def _history(args: argparse.Namespace) -> int:
    """``--history``: the rows of each run's ``forecast.csv`` (the chosen forecaster's, up to ``--at``)."""
    from ncgrok.empirical.runs import RunDirectory, find_run_directories

    for flag, given in (("--backtest", args.backtest), ("--calibrate-on", args.calibrate_on is not None)):
        if given:
            raise ValueError(f"--history prints the forecasts made during training (calibrated then); drop {flag}")
    histories = []
    for directory in find_run_directories(args.path):
        rows = [row for row in RunDirectory(directory).forecast().rows() if row["forecaster"] == args.forecaster
                and (args.at is None or row["step"] <= args.at)]
        histories.append({"run": directory.name, "history": rows})
    if args.json:
        print(json.dumps(json_safe({"runs": histories})))
        return 0
    for entry in histories:
        if not entry["history"]:
            print(f"{entry['run']}: no {args.forecaster} rows in forecast.csv (trained without --forecast?)")
            continue
        print(f"{entry['run']} ({args.forecaster}, live):")
        print(f"  {'step':>8s} {'status':18s} {'onset':>8s} {'80% interval':>17s}  detail")
        for row in entry["history"]:
            interval = "-" if not math.isfinite(row["low"]) else f"[{_number(row['low'])}, {_number(row['high'])}]"
            print(f"  {row['step']:>8d} {row['status']:18s} {_number(row['predicted_onset']):>8s} {interval:>17s}  "
                  f"{row['detail']}")
    return 0
