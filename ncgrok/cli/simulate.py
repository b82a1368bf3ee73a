"""``ncgrok simulate ...``: the toy dynamics of Thm. 4.3 from the command line.

Subcommands: ``ufm`` (one unconstrained-features run), ``sweep`` (time scales over weight decays and
learning rates), ``figures`` (regenerate the committed figures), and ``gmm``/``gap`` (registered by
:mod:`ncgrok.cli.simulate_gmm`). Handlers parse, call library
functions and print; user mistakes raise ``ValueError`` (one line, exit status 2, via ``ncgrok.main``).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from ncgrok.cli import options, simulate_gmm
from ncgrok.files import atomic_write_json, json_safe
from ncgrok.simulate.trajectories import (
    auto_horizon,
    collapse_scaling,
    sweep_to_csv,
    sweep_ufm,
    time_scales,
)
from ncgrok.simulate.ufm import DTYPE_NAMES, UFMConfig, simulate_ufm

STATUS = (
    "Status: the rates of Thm. 4.3 (tau1 ~ log(1/eps1)/eta independent of lambda, "
    "tau2 ~ log(1/eps2)/(eta lambda)) are published in Sakamoto & Sato, arXiv:2509.20829; the exact "
    "forms compared here (UFM contraction by 1 - eta*lambda in the null space of W, "
    "tau2 = tau1 + log(RNC1(tau1)/eps2)/(2 eta lambda), and the small-init estimate of tau1) are "
    "reconstructed derivations with the published shape."
)

MODEL_DESCRIPTION = (
    "The unconstrained features model: the N training features H (p x N) are free parameters next to a "
    "linear classifier W (K x p) and an optional bias b; gradient descent with step eta on "
    "(1/2)||W H + b - Y||^2 + (lambda/2)(||W||^2 + ||H||^2), squared loss to one-hot targets, bias not "
    "decayed. Features of one class share a target, so their differences shrink by (I - eta(W^T W + "
    "lambda I)) per step: fast in the row space of W (fitting), by exactly 1 - eta*lambda in its null "
    "space (p > K). The training loss therefore fits in a number of steps independent of lambda (tau1), "
    "while the within-class variability, RNC1, collapses only after about log(RNC1(tau1)/eps2)/(2 eta "
    "lambda) further steps (tau2): the separation of time scales that the paper identifies with grokking."
)

CONVENTIONS = (
    "tau1 = first step with (1/2)||WH+b-Y||^2 <= eps1 * its initial value (unregularized loss, relative); "
    "tau2 = first step with RNC1 <= eps2 (RNC1 = Tr Sigma_W / B^2, B the mean feature norm, or the largest "
    "with --scale sup), both interpolated log-linearly between logged steps; tau2 counts from step 0."
)


# --------------------------------------------------------------------------- registration
def register(subparsers: Any) -> None:
    """Add ``ncgrok simulate`` and its subcommands."""
    parser = subparsers.add_parser(
        "simulate",
        help="toy dynamics: unconstrained features model (Thm. 4.3), Gaussian mixtures",
        description="Simulations that check the paper's results on toy models where the truth is computable.",
    )
    simulate_subparsers = parser.add_subparsers(dest="simulation", metavar="SIMULATION")
    parser.set_defaults(func=lambda args: _print_help(parser))
    _register_ufm(simulate_subparsers)
    _register_sweep(simulate_subparsers)
    _register_figures(simulate_subparsers)
    simulate_gmm.register(simulate_subparsers)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_model_arguments(parser: argparse.ArgumentParser, *, sweep: bool) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--classes", type=options.count(2), default=4, metavar="K", help="number of classes K (>= 2; default 4)")
    model.add_argument("--samples-per-class", type=options.count_list, default="8", metavar="N|N1,N2,..",
                       help="samples per class: one count, or one per class for unbalanced classes (default 8)")
    model.add_argument("--dim", type=options.positive_count, default=16, metavar="P",
                       help="feature dimension p (default 16; p > K leaves W a null space)")
    model.add_argument("--init-scale", type=options.positive_number, default=0.1,
                       help="entries of W and H start N(0, init_scale^2/p) (default 0.1)")
    model.add_argument("--bias", action="store_true", help="learn an (undecayed) bias")
    model.add_argument("--freeze-classifier", action="store_true",
                       help="keep W (and b) at its initial value; only the features move")
    optimization = parser.add_argument_group("optimization")
    if not sweep:
        optimization.add_argument("--lr", type=options.positive_number, default=0.1, help="step size eta (default 0.1)")
        optimization.add_argument("--weight-decay", type=options.non_negative_number, default=1e-2,
                                  help="lambda (>= 0, with lr * lambda < 1; default 0.01)")
    optimization.add_argument("--steps", type=options.positive_count, default=None,
                              help="nominal GD steps (default: enough for RNC1 to reach eps2, from the predictions)")
    optimization.add_argument("--substeps", type=options.positive_count, default=1,
                              help="split each step into this many steps of size eta/substeps "
                                   "(gradient-flow approximation; step t is flow time t*eta; default 1)")
    optimization.add_argument("--dtype", choices=DTYPE_NAMES, default="float64",
                              help="floating-point precision of the simulation (default float64)")
    optimization.add_argument("--seed", type=options.seed, default=0,
                              help="seed of the initialization of W and H (default 0)")
    logging = parser.add_argument_group("logging and time scales")
    logging.add_argument("--log-every", type=options.positive_count, default=None, metavar="K",
                         help="record every K steps (default: --log-points log-spaced steps)")
    logging.add_argument("--log-points", type=options.count(2), default=200,
                         help="number of log-spaced records (>= 2; default 200)")
    logging.add_argument("--eps1", type=options.probability, default=1e-3, help="tau1 threshold on loss / initial loss (default 1e-3)")
    logging.add_argument("--eps2", type=options.probability, default=1e-6, help="tau2 threshold on RNC1 (default 1e-6)")
    logging.add_argument("--scale", choices=("mean", "sup"), default="mean",
                         help="feature scale B in RNC1 (mean norm: the paper's plots; sup: the theory's B_g)")
    logging.add_argument("--no-interpolate", action="store_true",
                         help="report the first logged step past a threshold instead of interpolating")


def _samples(text: str) -> int | list[int]:
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"samples_per_class must be a count or comma-separated counts, got {text!r}") from None
    if not values:
        raise ValueError("samples_per_class must not be empty")
    return values[0] if len(values) == 1 else values


def _config(args: argparse.Namespace, **overrides: Any) -> UFMConfig:
    values = dict(
        num_classes=args.classes,
        samples_per_class=_samples(args.samples_per_class),
        feature_dim=args.dim,
        init_scale=args.init_scale,
        bias=args.bias,
        train_classifier=not args.freeze_classifier,
        substeps=args.substeps,
        dtype=args.dtype,
        seed=args.seed,
        log_every=args.log_every,
        log_points=args.log_points,
        eps1=args.eps1,
        eps2=args.eps2,
        scale=args.scale,
    )
    if args.steps is not None:
        values["steps"] = args.steps
    values.update(overrides)
    return UFMConfig(**values)


# --------------------------------------------------------------------------- ufm
def _register_ufm(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ufm",
        help="one unconstrained-features-model run: fit time tau1 vs collapse time tau2 (Thm. 4.3)",
        description=(
            "Simulate the unconstrained features model under gradient descent with weight decay "
            "(Thm. 4.3) and compare the measured fit time tau1 and collapse time tau2 with the "
            "predictions.\n\n" + MODEL_DESCRIPTION + "\n\n" + CONVENTIONS + "\n\n" + STATUS + "\n\n"
            "Writes DIR/trajectory.csv (one row per logged step), DIR/ufm_trajectory.png and "
            "DIR/summary.json; prints a measured-vs-predicted table (or, with --json, one JSON object)."
        ),
        formatter_class=_formatter,
    )
    _add_model_arguments(parser, sweep=False)
    parser.add_argument("--out", type=options.path_text, default="ncgrok-out/simulate-ufm", metavar="DIR",
                        help="output directory (default ./ncgrok-out/simulate-ufm)")
    parser.add_argument("--no-figure", action="store_true", help="skip the PNG")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object instead of the table")
    parser.set_defaults(func=_run_ufm)


def _run_ufm(args: argparse.Namespace) -> int:
    config = _config(args, lr=args.lr, weight_decay=args.weight_decay)
    if args.steps is None:
        config = config.replace(steps=_default_steps(config))
    started = time.perf_counter()
    result = simulate_ufm(config)
    elapsed = time.perf_counter() - started
    scales = time_scales(result, interpolate=not args.no_interpolate)
    out = Path(args.out)
    files = {"trajectory": str(result.to_csv(out / "trajectory.csv"))}
    if not args.no_figure:
        from ncgrok.simulate.figures import plot_trajectory

        files["figure"] = str(plot_trajectory(result, out / "ufm_trajectory.png", scales=scales))
    final = {name: float(values[-1]) for name, values in result.trajectory.items()}
    summary = {
        "command": "simulate ufm",
        "config": config.to_dict(),
        "interpolate": not args.no_interpolate,
        "time_scales": scales.to_dict(),
        "final": final,
        "seconds": elapsed,
        "files": {**files, "summary": str(out / "summary.json")},
        "status": STATUS,
    }
    atomic_write_json(out / "summary.json", summary)
    if args.json:
        print(_dumps(summary))
        return 0
    counts = config.class_counts
    samples = f"n_c={counts[0]}" if len(set(counts)) == 1 else f"n_c={list(counts)}"
    print(
        f"UFM: K={config.num_classes}, {samples} (N={config.num_samples}), p={config.feature_dim}, "
        f"init {config.init_scale:g}, lr={config.lr:g}, weight decay={config.weight_decay:g}, "
        f"{config.steps} steps{f' x {config.substeps} substeps' if config.substeps > 1 else ''}, "
        f"{config.dtype}, seed {config.seed}{', bias' if config.bias else ''}"
        f"{', classifier frozen' if not config.train_classifier else ''} ({elapsed:.2f} s)"
    )
    print(_time_scale_table(scales))
    print(
        f"final (step {int(final['step'])}): loss/loss0 {final['loss_relative']:.3g}, train accuracy "
        f"{final['train_accuracy']:.3f}, RNC1 {final['rnc1']:.3g} (sup scale {final['rnc1_sup']:.3g}), "
        f"NC1 {final['nc1']:.3g}, NC2 {final['nc2']:.4g}, ||W^T W - H H^T|| {final['imbalance']:.3g}"
    )
    print(f"RNC1 at tau1: {scales.rnc1_at_fit:.3g}; share of the spread in the null space of W: "
          f"{scales.null_fraction_at_fit:.3f}")
    if not scales.collapsed:
        print(f"note: RNC1 did not reach eps2={config.eps2:g} within {config.steps} steps; raise --steps")
    for path in files.values():
        print(f"wrote {path}")
    print(f"wrote {out / 'summary.json'}")
    return 0


def _default_steps(config: UFMConfig) -> int:
    """Default horizon: 1.5 x the predicted collapse time (from RNC1 = 1), at least 2000 steps."""
    return max(2000, auto_horizon(config, margin=1.5))


def _format(value: float, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _percent(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:+.1f}%"


def _time_scale_table(scales: Any) -> str:
    rows = [
        ("tau1 (loss/loss0 <= %g)" % scales.eps1, scales.tau1, scales.tau1_predicted, scales.tau1_rel_error),
        ("tau2 (RNC1 <= %g)" % scales.eps2, scales.tau2, scales.tau2_predicted, scales.tau2_rel_error),
        ("tau2 - tau1", scales.delay, scales.delay_predicted, scales.delay_rel_error),
    ]
    width = max(len(row[0]) for row in rows)
    lines = [f"{'':<{width}}  {'measured':>12}  {'predicted':>12}  {'rel. error':>10}"]
    for label, measured, predicted, error in rows:
        lines.append(f"{label:<{width}}  {_format(measured):>12}  {_format(predicted):>12}  {_percent(error):>10}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- sweep
def _register_sweep(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="UFM time scales over weight decays and learning rates; log-log slope of tau2 vs lambda",
        description=(
            "Run the unconstrained features model (Thm. 4.3) for every (lr, weight decay) pair, measure "
            "tau1 and tau2, compare them with the predictions and fit the log-log slope of tau2 - tau1 "
            "(and of tau2) against lambda (Thm. 4.3 / R6 predict -1).\n\n" + MODEL_DESCRIPTION + "\n\n"
            + CONVENTIONS + "\n\n" + STATUS + "\n\n"
            "Each run lasts until both thresholds are crossed (at most 3x the predicted times) unless "
            "--steps is given. Writes DIR/sweep.csv, DIR/ufm_tau2_scaling.png and DIR/summary.json."
        ),
        formatter_class=_formatter,
    )
    parser.add_argument("--weight-decay", type=options.positive_number, nargs="+", action=options.distinct(),
                        default=[1e-3, 2e-3, 5e-3, 1e-2],
                        metavar="LAMBDA", help="weight decays, each > 0 (default 1e-3 2e-3 5e-3 1e-2)")
    parser.add_argument("--lr", type=options.positive_number, nargs="+", action=options.distinct(), default=[0.1], metavar="ETA",
                        help="learning rates, each > 0 (default 0.1)")
    _add_model_arguments(parser, sweep=True)
    parser.add_argument("--out", type=options.path_text, default="ncgrok-out/simulate-sweep", metavar="DIR",
                        help="output directory (default ./ncgrok-out/simulate-sweep)")
    parser.add_argument("--no-figure", action="store_true", help="skip the PNG")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object instead of the table")
    parser.set_defaults(func=_run_sweep)


def _run_sweep(args: argparse.Namespace) -> int:
    config = _config(args, lr=args.lr[0], weight_decay=args.weight_decay[0])
    started = time.perf_counter()
    rows = sweep_ufm(
        config, weight_decays=args.weight_decay, lrs=args.lr, steps=args.steps, interpolate=not args.no_interpolate
    )
    elapsed = time.perf_counter() - started
    fits = {}
    for lr in sorted({row["lr"] for row in rows}):
        entry: dict[str, Any] = {}
        for quantity in ("delay", "tau2"):
            try:
                fit = collapse_scaling(rows, quantity=quantity, lr=lr)
            except ValueError as error:
                entry[quantity] = {"error": str(error)}
            else:
                entry[quantity] = {"slope": fit.slope, "slope_ci": list(fit.slope_ci), "intercept": fit.intercept,
                                   "num_points": fit.num_points}
        fits[repr(lr)] = entry
    out = Path(args.out)
    files = {"table": str(sweep_to_csv(rows, out / "sweep.csv"))}
    if not args.no_figure and any(math.isfinite(row["tau2"]) for row in rows):
        from ncgrok.simulate.figures import plot_tau2_scaling

        files["figure"] = str(plot_tau2_scaling(rows, out / "ufm_tau2_scaling.png"))
    summary = {
        "command": "simulate sweep",
        "config": config.to_dict(),
        "weight_decays": list(args.weight_decay),
        "lrs": list(args.lr),
        "steps": args.steps,
        "interpolate": not args.no_interpolate,
        "rows": rows,
        "slopes": fits,
        "seconds": elapsed,
        "files": {**files, "summary": str(out / "summary.json")},
        "status": STATUS,
    }
    atomic_write_json(out / "summary.json", summary)
    if args.json:
        print(_dumps(summary))
        return 0
    print(f"UFM sweep: {len(rows)} runs in {elapsed:.2f} s "
          f"(K={config.num_classes}, N={config.num_samples}, p={config.feature_dim}, eps1={config.eps1:g}, "
          f"eps2={config.eps2:g}, {config.scale} scale)")
    header = (f"{'lr':>8} {'lambda':>8} {'tau1':>9} {'pred':>9} {'err':>7} {'tau2':>10} {'pred':>10} {'err':>7} "
              f"{'tau2-tau1':>10} {'RNC1(tau1)':>10}")
    print(header)
    for row in rows:
        print(f"{row['lr']:>8g} {row['weight_decay']:>8g} {_format(row['tau1']):>9} "
              f"{_format(row['tau1_predicted']):>9} {_percent(row['tau1_rel_error']):>7} "
              f"{_format(row['tau2']):>10} {_format(row['tau2_predicted']):>10} {_percent(row['tau2_rel_error']):>7} "
              f"{_format(row['delay']):>10} {row['rnc1_at_fit']:>10.3g}")
    for lr, entry in fits.items():
        for quantity, label in (("delay", "tau2 - tau1"), ("tau2", "tau2")):
            fit = entry[quantity]
            if "error" in fit:
                print(f"lr={float(lr):g}: slope of log({label}) vs log(lambda): {fit['error']}")
            else:
                low, high = fit["slope_ci"]
                print(f"lr={float(lr):g}: slope of log({label}) vs log(lambda) = {fit['slope']:+.4f} "
                      f"(95% CI {low:+.4f} .. {high:+.4f}; predicted -1)")
    if any(not row["collapsed"] for row in rows):
        print("note: some runs did not reach eps2 (n/a); raise --steps or leave it at its default")
    for path in files.values():
        print(f"wrote {path}")
    print(f"wrote {out / 'summary.json'}")
    return 0


# --------------------------------------------------------------------------- figures
def _register_figures(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "figures",
        help="regenerate the committed simulation figures (figures/ufm_*.png and figures/gmm_*.png)",
        description=(
            "Regenerate the committed figures: ufm_timescales.png (relative training loss and RNC1 against "
            "the step for several weight decays: fit time independent of lambda, collapse time ~ "
            "1/(eta lambda)) and ufm_tau2_scaling.png (measured tau2 against 1/(eta lambda), log-log, with "
            "the predicted line), both for the unconstrained features model of Thm. 4.3; plus the "
            "Gaussian-mixture figures gmm_bounds.png and gmm_linear_bounds.png (default gmm run, and the "
            "same with a linear network; ncgrok.simulate.gmm.make_figures; skip with --no-mixture).\n\n" + STATUS
        ),
        formatter_class=_formatter,
    )
    parser.add_argument("--out", type=options.path_text, default="figures", metavar="DIR", help="output directory (default ./figures)")
    parser.add_argument("--weight-decay", type=options.positive_number, nargs="+", action=options.distinct(), default=None, metavar="LAMBDA",
                        help="weight decays of the UFM figures (default 1e-3 2e-3 5e-3 1e-2 3e-2, lr 0.1)")
    parser.add_argument("--no-mixture", action="store_true", help="only the UFM figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object listing the files")
    parser.set_defaults(func=_run_figures)


def _run_figures(args: argparse.Namespace) -> int:
    from ncgrok.simulate.figures import make_figures

    messages: list[str] = []
    started = time.perf_counter()
    options: dict[str, Any] = {}
    if args.weight_decay is not None:
        options["weight_decays"] = args.weight_decay
    paths = make_figures(args.out, include_mixture=not args.no_mixture, progress=messages.append, **options)
    elapsed = time.perf_counter() - started
    if args.json:
        print(_dumps({"command": "simulate figures", "out": args.out, "files": [str(p) for p in paths],
                      "messages": messages, "seconds": elapsed}))
        return 0
    for message in messages:
        if "mixture" in message:
            print(message)
    for path in paths:
        print(f"wrote {path}")
    print(f"({elapsed:.1f} s)")
    return 0


# --------------------------------------------------------------------------- JSON
def _dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
