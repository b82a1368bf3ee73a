"""``ncgrok simulate gmm``: a small network trained on a known Gaussian mixture, bounds vs truth;
``ncgrok simulate gap``: how the training-vs-population gap of the within-class variance shrinks with
the number of training samples per class (the simulation check of Thm. 4.1, reconstructed).

``register(subparsers)`` adds the ``gmm`` and ``gap`` subcommands to the ``ncgrok simulate`` group
(the group's module calls it). The ``gmm`` handler parses, calls :func:`ncgrok.simulate.gmm.run_gmm`,
writes the trajectory CSV, a JSON summary and the figure, and prints a table (or one JSON object with
``--json``); the ``gap`` handler does the same around
:func:`ncgrok.simulate.concentration_check.variance_gap_scaling`.

Without the ``simulate`` group the same command runs as ``python -m ncgrok.cli.simulate_gmm [options]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from ncgrok.cli import options
from ncgrok.files import atomic_write_json, json_safe
from ncgrok.simulate.concentration_check import (
    GapScalingResult,
    gap_check_config,
    gap_figure,
    variance_gap_scaling,
    write_gap_csv,
)
from ncgrok.simulate.gmm import (
    ACTIVATIONS,
    OPTIMIZERS,
    TRAJECTORY_COLUMNS,
    GMMConfig,
    GMMResult,
    bound_figure,
    run_gmm,
    write_trajectory_csv,
)

DESCRIPTION = """\
Train a small network x -> phi(W1 x + b1) -> g = W2 (.) -> W3 g + b3 (last two layers linear) with
squared loss and weight decay on n samples per class of a known Gaussian mixture, and at logged
steps compare with the truth measured on large fresh samples:
  Thm. 3.2 (published)     Cantelli bound on the test error from population class means and
                           within-class variances (plain and directional);
  Thm. 3.4 (published)     trace and log-det bounds on I(Z;X|Y) for Z = g(X) + B_g E,
                           E ~ N(0, sigma^2 I): exact value for --activation identity (a linear
                           network; then it equals the log-det bound), otherwise a Monte Carlo
                           estimate (biased upwards by O(1/mi-inner)) with its standard error;
  Thm. 4.1 (reconstructed) held-out Hoeffding radius (our rigorous derivation, not the paper's
                           constants) around the held-out within-class variance, checked against
                           the population variance.
B_g is the largest feature norm on the training set (the "sup" estimator), re-measured at each step.
Writes OUT/gmm_trajectory.csv, OUT/gmm_summary.json and the figure (atomically)."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``gmm`` and ``gap`` to a subparsers object (the ``ncgrok simulate`` group); returns the
    ``gmm`` parser."""
    parser = _register_gmm(subparsers)
    register_gap(subparsers)
    return parser


def _add_mixture_arguments(
    parser: argparse.ArgumentParser,
    defaults: GMMConfig,
    *,
    population_title: str,
    mixture_seed_default: int | None,
    mixture_seed_help: str,
    lr_help: str,
    steps_help: str,
) -> tuple[Any, Any, Any]:
    """The population, network and training options shared by ``gmm`` and ``gap``; returns the three
    argument groups so that each command can add its own options to them."""
    population = parser.add_argument_group(population_title)
    population.add_argument("--classes", type=options.count(2), default=defaults.num_classes, help="number of classes K (>= 2)")
    population.add_argument("--input-dim", type=options.positive_count, default=defaults.input_dim,
                            help="input dimension d (>= 1)")
    population.add_argument("--separation", type=options.positive_number, default=defaults.separation,
                            help="norm of each random class mean (means are ~separation*sqrt(2) apart)")
    population.add_argument("--noise", type=options.positive_number, default=defaults.noise,
                            help="scale of the class covariances (> 0)")
    population.add_argument("--mixture-seed", type=options.seed, default=mixture_seed_default, help=mixture_seed_help)
    network = parser.add_argument_group("network")
    network.add_argument("--hidden-dim", type=options.positive_count, default=defaults.hidden_dim, help="hidden width m (>= 1)")
    network.add_argument("--feature-dim", type=options.positive_count, default=defaults.feature_dim,
                         help="representation dimension p (>= 1)")
    network.add_argument("--activation", choices=ACTIVATIONS, default=defaults.activation,
                         help="hidden activation; 'identity' is the linear network (exact Gaussian case)")
    network.add_argument("--leaky-slope", type=options.fraction, default=defaults.leaky_slope,
                         help="slope alpha of the smooth leaky ReLU for negative inputs")
    network.add_argument("--sharpness", type=options.positive_number, default=defaults.sharpness,
                         help="beta of the smooth leaky ReLU (kink smoothed over ~1/beta)")
    network.add_argument("--init-scale", type=options.positive_number, default=defaults.init_scale,
                         help="weights start N(0, init_scale^2 / fan_in)")
    training = parser.add_argument_group("training")
    training.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer,
                          help="full-batch GD or AdamW (decoupled weight decay)")
    training.add_argument("--lr", type=options.positive_number, default=defaults.lr, help=lr_help)
    training.add_argument("--weight-decay", type=options.non_negative_number, default=defaults.weight_decay,
                          help="lambda (>= 0, with lr * lambda < 1) on W1, W2, W3")
    training.add_argument("--steps", type=options.positive_count, default=defaults.steps, help=steps_help)
    return population, network, training


def _register_gmm(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``gmm`` to a subparsers object."""
    defaults = GMMConfig()
    parser = subparsers.add_parser(
        "gmm",
        help="Gaussian-mixture network: Thm. 3.2/3.4 (published) and 4.1 (reconstructed) bounds vs truth",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    population, _, training = _add_mixture_arguments(
        parser, defaults, population_title="population",
        mixture_seed_default=None, mixture_seed_help="seed of the random mixture (default --seed)",
        lr_help="step size eta (> 0)", steps_help="number of training steps",
    )
    population.add_argument("--priors", type=options.priors_list, default=None,
                            help="class priors as comma-separated numbers summing to 1 (default uniform)")
    group = training
    group.add_argument("--n-train", type=options.count(2), default=defaults.n_train, help="training samples per class (>= 2)")
    group = parser.add_argument_group("measurement")
    group.add_argument("--sigma", type=options.positive_number, default=defaults.sigma,
                       help="noise std of Z = g(X) + B_g E in units of g/B_g (Thm. 3.4)")
    group.add_argument("--n-test", type=options.positive_count, default=defaults.n_test, help="fresh test samples per class")
    group.add_argument("--n-population", type=options.count(2), default=defaults.n_population,
                       help="fresh samples per class for population moments (nonlinear networks; >= 2)")
    group.add_argument("--n-heldout", type=options.count(2), default=defaults.n_heldout,
                       help="held-out samples per class for the Thm. 4.1 radius (>= 2)")
    group.add_argument("--mi-outer", type=options.count(2), default=defaults.mi_outer,
                       help="outer Monte Carlo points per class for I(Z;X|Y) (>= 2)")
    group.add_argument("--mi-inner", type=options.count(2), default=defaults.mi_inner,
                       help="inner points M per class, >= 2 (the estimate's upward bias is O(1/M))")
    group.add_argument("--delta", type=options.probability, default=defaults.delta,
                       help="failure probability of the radius, in (0, 1)")
    group.add_argument("--logs", type=options.count(2), default=defaults.num_logs,
                       help="number of log-spaced logged steps (>= 2)")
    group = parser.add_argument_group("output")
    group.add_argument("--seed", type=options.seed, default=defaults.seed, help="seed of samples and initialization")
    group.add_argument("--out", type=options.path_text, default=os.path.join("runs", "gmm"), help="output directory (default runs/gmm)")
    group.add_argument("--figure", type=options.figure_path_text, default=None,
                       help="figure path, .png, .pdf or .svg (default OUT/gmm_bounds.png)")
    group.add_argument("--no-figure", action="store_true", help="skip the figure (saves importing matplotlib)")
    group.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(func=run_command)
    return parser


def _priors(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"--priors must be comma-separated numbers, got {text!r}") from None


def config_from_args(args: argparse.Namespace) -> GMMConfig:
    """The :class:`GMMConfig` described by parsed arguments (raises ``ValueError`` on bad values)."""
    return GMMConfig(
        num_classes=args.classes, input_dim=args.input_dim, hidden_dim=args.hidden_dim,
        feature_dim=args.feature_dim, activation=args.activation, leaky_slope=args.leaky_slope,
        sharpness=args.sharpness, init_scale=args.init_scale, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, steps=args.steps, n_train=args.n_train, sigma=args.sigma,
        n_test=args.n_test, n_population=args.n_population, n_heldout=args.n_heldout,
        mi_outer=args.mi_outer, mi_inner=args.mi_inner, delta=args.delta, num_logs=args.logs,
        separation=args.separation, noise=args.noise, priors=_priors(args.priors), seed=args.seed,
        mixture_seed=args.mixture_seed,
    )


def result_document(result: GMMResult, files: dict[str, str]) -> dict[str, Any]:
    """The JSON object of a run: inputs echoed, summary, the whole trajectory and the files written."""
    return json_safe({
        "command": "simulate gmm",
        "config": result.config.to_dict(),
        "summary": result.summary,
        "trajectory": {name: result.trajectory[name] for name in TRAJECTORY_COLUMNS},
        "files": files,
    })


def format_table(result: GMMResult, files: dict[str, str]) -> str:
    """The human-readable summary: each bound at the final step, the truth, and whether it held."""
    config, summary = result.config, result.summary
    final, held = summary["final"], summary["held_at_every_step"]
    yes = lambda flag: "yes" if flag else "NO"  # noqa: E731
    linear = config.activation == "identity"
    if linear:
        information = f"I(Z;X|Y) = {final['mi_exact']:.4f} exact (MC {final['mi_estimate']:.4f} ± {final['mi_se']:.4f})"
    else:
        information = f"I(Z;X|Y) ~ {final['mi_estimate']:.4f} ± {final['mi_se']:.4f} (MC, biased up ~{final['mi_bias_estimate']:.1g})"
    test = f"test error {final['test_error']:.4f} ± {final['test_error_se']:.4f}"
    gap = max(abs(final["heldout_variance"] - final["population_variance"]), 0.0)
    rows = [
        ("Thm. 3.2 Cantelli bound (published)", final["cantelli_bound"], test, held["cantelli_bound"]),
        ("Thm. 3.2 Cantelli, directional", final["cantelli_directional"], test, held["cantelli_directional"]),
        ("Thm. 3.4 IB trace bound, nats (published)", final["ib_trace"], information, held["ib_trace"]),
        ("Thm. 3.4 IB log-det bound, nats", final["ib_logdet"], information, held["ib_logdet"]),
        ("Thm. 4.1 held-out radius (reconstructed)", final["heldout_radius"],
         f"|V_heldout - V| = {gap:.4f}", held["heldout_radius"]),
    ]
    tolerance = ("exact, 1e-9 relative" if linear else
                 f"bound >= MC estimate - {summary['monte_carlo_tolerance_se']:g} SE")
    lines = [
        f"Gaussian mixture K={config.num_classes} d={config.input_dim} -> m={config.hidden_dim} -> "
        f"p={config.feature_dim} ({config.activation}), {config.optimizer} lr={config.lr:g} "
        f"lambda={config.weight_decay:g}, {config.steps} steps, n={config.n_train}/class, seed={config.seed}",
        f"final step {int(final['step'])}: train loss {final['train_loss']:.4g}, train error {final['train_error']:.4f}, "
        f"B_g = {final['feature_scale']:.4g}",
        "",
        f"{'bound (final step)':<44}{'value':>10}   {'truth':<58}{'held at every step'}",
    ]
    for name, value, truth, flag in rows:
        lines.append(f"{name:<44}{value:>10.4f}   {truth:<58}{yes(flag)}")
    lines += [
        "",
        f"within-class variance of g/B_g: train RNC1 {final['train_rnc1']:.4g}, population V "
        f"{final['population_variance']:.4g}, held-out {final['heldout_variance']:.4g} "
        f"(radius {final['heldout_radius']:.4g} at delta={config.delta:g})",
        f"IB bounds held: {tolerance}; Cantelli: bound >= measured test error "
        f"(within {summary['monte_carlo_tolerance_se']:g} SE: {yes(held['cantelli_bound_within_mc'])}).",
        f"max ||g||/B_g on fresh samples: population {final['population_norm_ratio']:.3f}, "
        f"held-out {final['heldout_norm_ratio']:.3f} (> 1 means B_g from the training set is exceeded)",
        f"{summary['logged_steps']} logged steps in {summary['runtime_seconds']:.1f} s",
    ]
    for label, path in files.items():
        lines.append(f"{label}: {path}")
    return "\n".join(lines)


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``ncgrok simulate gmm``."""
    config = config_from_args(args)
    result = run_gmm(config)
    out = args.out
    os.makedirs(out, exist_ok=True)
    files = {"trajectory": write_trajectory_csv(result, os.path.join(out, "gmm_trajectory.csv"))}
    if not args.no_figure:
        files["figure"] = bound_figure(result, args.figure or os.path.join(out, "gmm_bounds.png"))
    summary_path = os.path.join(out, "gmm_summary.json")
    files["summary"] = summary_path
    document = result_document(result, files)
    atomic_write_json(summary_path, document, indent=1)
    if args.json:
        print(json.dumps(document, allow_nan=False))
    else:
        print(format_table(result, files))
    return 0

# =============================================================================== ncgrok simulate gap
GAP_DESCRIPTION = """\
Simulation check of Thm. 4.1 (reconstructed; the paper's constants were not recovered): for a
trained network on a Gaussian mixture, the gap between the training within-class variance (train
RNC1: the biased estimator, dividing by n) and the population within-class variance V shrinks like
n^(-1/2) or faster in the number n of training samples per class.

For every n in --samples-per-class and every seed in --seeds, the `gmm` network is trained on n
samples per class of the same population (fixed by --mixture-seed) and, at the final step, the gap
|train RNC1 - V| is recorded; both are in units of g/B_g with B_g = the largest training feature norm
at that step. V is exact for --activation identity, otherwise estimated from --n-population fresh
points per class (its Monte Carlo error is reported: a gap below twice that error is not resolved).
For comparison: the rigorous held-out radius of Thm. 4.1 at n (level 1 - delta, for a network that
did not see the sample) and the gap of an independent sample of size n. The mean gap over seeds is
fitted as mean gap ~ n^slope (least squares in log-log, t-interval).
Writes OUT/gap_runs.csv (one row per n and seed), OUT/gap_summary.json and OUT/gap_scaling.png
(atomically)."""


def register_gap(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``gap`` to a subparsers object (the ``ncgrok simulate`` group)."""
    defaults = gap_check_config()
    parser = subparsers.add_parser(
        "gap",
        help="Thm. 4.1 (reconstructed) check: |train RNC1 - population V| vs n per class, fitted slope",
        description=GAP_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--samples-per-class", type=options.count(2), nargs="+", action=options.distinct(2), default=[25, 50, 100, 200, 400], metavar="N",
                        help="training samples per class, at least two distinct values >= 2 (default 25 50 100 200 400)")
    parser.add_argument("--seeds", type=options.seed, nargs="+", action=options.distinct(), default=[0, 1, 2], metavar="SEED",
                        help="seeds of training sample, initialization and population sample (default 0 1 2)")
    _add_mixture_arguments(
        parser, defaults, population_title="population (class priors are uniform)",
        mixture_seed_default=0, mixture_seed_help="seed of the random mixture (default 0)",
        lr_help=f"step size eta (default {defaults.lr:g}; GD at 0.1 diverged for a default seed)",
        steps_help=f"training steps per run (default {defaults.steps}, fewer than `gmm` to stay fast)",
    )
    group = parser.add_argument_group("measurement")
    group.add_argument("--n-population", type=options.count(2), default=defaults.n_population,
                       help=f"fresh samples per class for V of a nonlinear network, >= 2 (default {defaults.n_population})")
    group.add_argument("--delta", type=options.probability, default=defaults.delta,
                       help="failure probability of the held-out radius, in (0, 1)")
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=options.path_text, default=os.path.join("runs", "gap"), help="output directory (default runs/gap)")
    group.add_argument("--no-figure", action="store_true", help="skip the figure (saves importing matplotlib)")
    group.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(func=run_gap_command)
    return parser


def gap_config_from_args(args: argparse.Namespace) -> GMMConfig:
    """The :class:`GMMConfig` of ``ncgrok simulate gap`` (raises ``ValueError`` on bad values)."""
    return gap_check_config(
        num_classes=args.classes, input_dim=args.input_dim, separation=args.separation, noise=args.noise,
        mixture_seed=args.mixture_seed, hidden_dim=args.hidden_dim, feature_dim=args.feature_dim,
        activation=args.activation, leaky_slope=args.leaky_slope, sharpness=args.sharpness,
        init_scale=args.init_scale, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, steps=args.steps, n_population=args.n_population, delta=args.delta,
    )


def format_gap_table(result: GapScalingResult, files: dict[str, str]) -> str:
    """The human-readable summary of a :class:`~ncgrok.simulate.concentration_check.GapScalingResult`."""
    config, fit, fresh = result.config, result.fit, result.fresh_fit
    number = lambda value: "n/a" if not math.isfinite(value) else f"{value:.3g}"  # noqa: E731
    lines = [
        f"Gaussian mixture K={config.num_classes} d={config.input_dim} -> m={config.hidden_dim} -> "
        f"p={config.feature_dim} ({config.activation}), {config.optimizer} lr={config.lr:g} "
        f"lambda={config.weight_decay:g}, {config.steps} steps, mixture seed {config.mixture_seed}, "
        f"seeds {' '.join(map(str, result.seeds))}",
        "gap = |train RNC1 (biased, /n) - population V| at the final step, both in units of g/B_g "
        "(B_g = max training ||g||)",
        "",
        f"{'n':>6} {'mean gap':>10} {'std':>10} {'train-V':>10} {'fresh gap':>10} {'radius':>8} "
        f"{'2 s.e.(V)':>10}  resolved",
    ]
    for entry in result.summary:
        lines.append(
            f"{entry['n']:>6} {entry['mean_gap']:>10.3g} {number(entry['std_gap']):>10} "
            f"{entry['mean_signed_gap']:>+10.2g} {entry['mean_fresh_gap']:>10.3g} {entry['heldout_radius']:>8.3f} "
            f"{2 * entry['mean_population_se']:>10.2g}  {'yes' if entry['resolved'] else 'NO'}")
    low, high = fit.slope_ci
    fresh_low, fresh_high = fresh.slope_ci
    verdict = ("gap shrinks like n^(-1/2) or faster (CI upper bound <= -0.5)" if result.rate_at_least_sqrt else
               "rate n^(-1/2) or faster not established (CI upper bound > -0.5)"
               + ("" if result.rate_not_excluded else "; CI excludes it"))
    lines += [
        "",
        f"slope of log(mean gap) vs log(n): {fit.slope:+.3f} ({fit.confidence:.0%} CI {low:+.3f} .. {high:+.3f}, "
        f"{fit.num_points} points); Thm. 4.1 (reconstructed): <= -0.5",
        f"  -> {verdict}",
        f"fresh sample of the same size: slope {fresh.slope:+.3f} (CI {fresh_low:+.3f} .. {fresh_high:+.3f})",
        "radius: held-out Hoeffding radius of Thm. 4.1 at n (delta="
        f"{config.delta:g}); train-V < 0 means the training features collapsed more than the population's",
        f"{len(result.rows)} runs in {result.runtime_seconds:.1f} s",
    ]
    if not all(entry["resolved"] for entry in result.summary):
        lines.append("note: some mean gaps are below twice the Monte Carlo error of V; raise --n-population "
                     "or use --activation identity (exact V)")
    for label, path in files.items():
        lines.append(f"{label}: {path}")
    return "\n".join(lines)


def run_gap_command(args: argparse.Namespace) -> int:
    """Handler of ``ncgrok simulate gap``."""
    config = gap_config_from_args(args)
    result = variance_gap_scaling(config, samples_per_class=args.samples_per_class, seeds=args.seeds)
    out = args.out
    os.makedirs(out, exist_ok=True)
    files = {"runs": write_gap_csv(result, os.path.join(out, "gap_runs.csv"))}
    if not args.no_figure:
        files["figure"] = gap_figure(result, os.path.join(out, "gap_scaling.png"))
    summary_path = os.path.join(out, "gap_summary.json")
    files["summary"] = summary_path
    document = json_safe({
        "command": "simulate gap",
        "status": "Thm. 4.1 (reconstructed): simulation check of the n_c^(-1/2) rate",
        "config": config.to_dict(),
        **result.to_dict(),
        "files": files,
    })
    atomic_write_json(summary_path, document, indent=1)
    if args.json:
        print(json.dumps(document, allow_nan=False))
    else:
        print(format_gap_table(result, files))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m ncgrok.cli.simulate_gmm [options]`` is ``ncgrok simulate gmm
    [options]`` (same options, one-line errors, exit status 2 on a user mistake)."""
    from ncgrok.cli import main as ncgrok_main

    return ncgrok_main(["simulate", "gmm", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
