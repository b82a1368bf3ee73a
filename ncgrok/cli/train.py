"""``ncgrok train`` (one run) and ``ncgrok sweep`` (a grid trained as one batched job).

The training layer writes data only; the final table's fit step, onset step and onset status are
computed here from each run's ``metrics.csv`` with ``empirical.onset.grokking_onset`` (default
thresholds, the same definitions as ``ncgrok onset``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from ncgrok.cli import forecast as forecast_cli
from ncgrok.cli import options
from ncgrok.empirical.runs import format_value, json_safe

PROTOCOL = (
    "Defaults are the paper's main setting (Sakamoto & Sato, arXiv:2509.20829, Figs. 2-4): the first "
    "1000 MNIST training images, MLP 784-200-200-200-10 with every parameter x8 at init, squared error "
    "to one-hot summed over batch and outputs, AdamW lr 1e-3, batch 100 by per-epoch shuffling, "
    "100,000 steps, logged every step below 30, every 10 below 150, then every steps//150. "
    "--dataset modular-addition / modular-division train the transformer of Nanda et al. "
    "(modtransformer; Power et al.'s with --layers 2 --layer-norm post) on the pairs mod --modulus, full "
    "batch, and log the exact population columns."
)


def _add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="mnist",
                      choices=("mnist", "fashion-mnist", "cifar10", "modular-addition", "modular-division"),
                      help="data set to train on (default mnist; get the images with `ncgrok data fetch`); "
                           "modular-addition (a + b mod p) and modular-division (a / b mod p, b != 0, p prime) "
                           "are generated: every pair, split by --train-fraction")
    data.add_argument("--modulus", type=options.count(2), default=None,
                      help="modular data sets: the modulus p, at most 257 (default 97; Nanda et al. use 113)")
    data.add_argument("--train-fraction", type=options.probability, default=None,
                      help="modular data sets: fraction of the pairs trained on, in (0, 1) (default 0.3); the "
                           "other pairs are the test and held-out set")
    data.add_argument("--data-dir", type=options.path_text, default=None,
                      help="data directory (default $NCGROK_DATA or ~/.cache/ncgrok/data; for cifar10 the "
                           "archive or extracted folder)")
    data.add_argument("--train-size", type=options.positive_count, default=None,
                      help="the FIRST N training images (default 1000); modular data sets derive it from "
                           "--train-fraction, leave it out")
    data.add_argument("--heldout-size", type=options.non_negative_count, default=None,
                      help="held-out population sample from the unused training images (0 = none; default 5000); "
                           "modular data sets: every unseen pair (0 = none)")
    data.add_argument("--test-size", type=options.positive_count, default=None,
                      help="measure on a fixed subset of N test images, the same for every run and logged step "
                           "(default: the whole test set); not for the modular data sets, whose test set is "
                           "every unseen pair")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=None, choices=("mlp", "cnn", "transformer", "resnet18", "modtransformer"),
                       help="network architecture (default mlp, the paper's; modtransformer, the transformer of "
                            "Nanda et al. (1 layer) or Power et al. (--layers 2 --layer-norm post), for the modular "
                            "data sets and only those)")
    model.add_argument("--depth", type=options.positive_count, default=4, help="MLP linear layers (4 = 784-200-200-200-10; 3 = released config)")
    model.add_argument("--width", type=options.positive_count, default=None, help="hidden width (default: architecture's)")
    model.add_argument("--heads", type=options.positive_count, default=4,
                       help="transformer/modtransformer attention heads, dividing --width (default 4)")
    model.add_argument("--ff-width", type=options.positive_count, default=None,
                       help="transformer/modtransformer feed-forward width (default 256; 512 for modtransformer)")
    model.add_argument("--layers", type=options.positive_count, default=1,
                       help="modtransformer residual blocks (attention + MLP) (default 1, Nanda et al.'s; "
                            "2 is Power et al.'s)")
    model.add_argument("--layer-norm", default="none", choices=("none", "post"),
                       help="modtransformer LayerNorm: none (default, Nanda et al.) or post, after each residual "
                            "sum (Power et al.'s code); the representation is what the unembedding reads")
    model.add_argument("--init-scale", type=options.positive_number, default=None,
                       help="large-init multiplier (default 8; 1 for resnet18)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--optimizer", default="adamw", choices=("adamw", "sgd"),
                       help="AdamW with decoupled weight decay (default, the paper's) or SGD with coupled L2 decay")
    optim.add_argument("--momentum", type=options.number(0, 1, high_open=True), default=0.0,
                       help="SGD momentum, in [0, 1) (default 0)")
    optim.add_argument("--batch-size", type=options.non_negative_count, default=None,
                       help="examples per step, at most --train-size; 0 = full batch (default 100; modular data "
                            "sets: full batch)")
    optim.add_argument("--betas", type=options.number(0, 1, high_open=True), nargs=2, default=[0.9, 0.999],
                       metavar=("BETA1", "BETA2"),
                       help="AdamW's betas, each in [0, 1) (default 0.9 0.999, torch's; Nanda et al.: 0.9 0.98)")
    optim.add_argument("--steps", type=options.positive_count, default=100_000,
                       help="optimizer steps (default 100000)")
    optim.add_argument("--loss", default="mse", choices=("mse", "cross-entropy"),
                       help="mse: squared error to one-hot (default, the paper's); cross-entropy: softmax "
                            "cross-entropy (Power et al., Nanda et al.)")
    optim.add_argument("--loss-reduction", default=None, choices=("sum", "mean"),
                       help="sum over batch (and outputs) or mean, as torch's reduction (default: sum for mse, the "
                            "paper's; mean for cross-entropy)")
    optim.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                       help="floating-point precision of training (default float32)")
    optim.add_argument("--device", type=options.device, default="auto", help="auto (GPU if present), cpu, cuda, cuda:1, ...")
    out = parser.add_argument_group("logging and output")
    out.add_argument("--log-every", type=options.positive_count, default=None,
                     help="log every N steps instead of the paper's schedule")
    out.add_argument("--delta", type=options.probability, default=0.05,
                     help="failure probability of the held-out radius (Thm. 4.1), in (0, 1) (default 0.05)")
    out.add_argument("--snapshot-steps", type=options.non_negative_count, nargs="*", default=(),
                     help="also save each run's model at these steps (each from 0 to --steps)")
    out.add_argument("--measure-ib", action="store_true",
                     help="also log the information plane on a test subset: nHSIC(Z;X), nHSIC(Z;Y), compressed "
                          "MI I(Z;X), I(Z;Y) (nats) and the Thm. 3.4 trace/log-det bounds on I(Z;X|Y)")
    out.add_argument("--ib-sigma", type=options.positive_number, default=0.1,
                     help="noise std of Z = g(X) + B_g E in units of g/B_g, for the Thm. 3.4 bounds (default 0.1)")
    out.add_argument("--ib-samples", type=options.count(100), default=2000,
                     help="test examples used by --measure-ib, >= 100 (default 2000)")
    out.add_argument("--ib-every", type=options.positive_count, default=1,
                     help="with --measure-ib, measure the information plane at every Nth logged step only (and the "
                          "last); the other rows hold NaN there (default 1: every logged step)")
    out.add_argument("--checkpoint-seconds", type=options.non_negative_number, default=10.0,
                     help="save the resumable training state at the first logged step after this many seconds "
                          "since the last save (0 = at every logged step; default 10)")
    out.add_argument("--out", required=True, type=options.path,
                     help="output directory (one writer at a time: a second process on it is refused)")
    out.add_argument("--resume", action="store_true",
                     help="continue an interrupted run/sweep in --out from its last checkpoint (same settings)")
    out.add_argument("--json", action="store_true", help="print the final summaries as JSON")
    out.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train one network and log collapse measures, bounds and accuracy",
        description="Train one network and write config.json, metrics.csv, summary.json and a "
                    "resumable checkpoint to --out. " + PROTOCOL,
    )
    _add_shared_arguments(train)
    _add_forecast_arguments(train)
    train.add_argument("--lr", type=options.positive_number, default=1e-3, help="learning rate, > 0 (default 1e-3)")
    train.add_argument("--weight-decay", type=options.non_negative_number, default=0.01,
                       help="weight decay lambda, >= 0 (default 0.01)")
    train.add_argument("--seed", type=options.seed, default=0, help="seed of the initialization and batch order (default 0)")
    train.set_defaults(func=_run_train)

    sweep = subparsers.add_parser(
        "sweep",
        help="train a grid of runs (seeds x weight decays x lrs) as one batched job",
        description="Train every combination of --weight-decay, --lr and --seeds at once (one batched "
                    "computation), one directory per run under --out. " + PROTOCOL,
    )
    _add_shared_arguments(sweep)
    _add_forecast_arguments(sweep)
    sweep.add_argument("--lr", type=options.positive_number, nargs="+", action=options.distinct(), default=[1e-3],
                       help="learning rates, each > 0 and given once (default 1e-3)")
    sweep.add_argument("--weight-decay", type=options.non_negative_number, nargs="+", action=options.distinct(),
                       default=[0.3, 0.1, 0.03, 0.01, 0.003, 0.001],
                       help="weight decays, each >= 0 and given once (default 0.3 0.1 0.03 0.01 0.003 0.001)")
    sweep.add_argument("--seeds", type=options.seed, nargs="+", action=options.distinct(), default=[0, 1, 2, 3, 4],
                       help="seeds, each given once (default 0 1 2 3 4)")
    _add_sharding_arguments(sweep)
    sweep.set_defaults(func=_run_sweep)


def _config(args: argparse.Namespace, *, lrs, weight_decays, seeds):
    from ncgrok.empirical.sweep_config import SweepConfig

    # --heldout-size left out: the data set's default (None already means "every unused image")
    heldout = {} if args.heldout_size is None else {"heldout_size": args.heldout_size}
    return SweepConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        modulus=args.modulus,
        train_fraction=args.train_fraction,
        model=args.model,
        depth=args.depth,
        width=args.width,
        heads=args.heads,
        ff_width=args.ff_width,
        layers=args.layers,
        layer_norm=args.layer_norm,
        init_scale=args.init_scale,
        train_size=args.train_size,
        **heldout,
        test_size=args.test_size,
        optimizer=args.optimizer,
        lrs=lrs,
        weight_decays=weight_decays,
        seeds=seeds,
        batch_size=args.batch_size,
        steps=args.steps,
        loss=args.loss,
        loss_reduction=args.loss_reduction,
        dtype=args.dtype,
        device=args.device,
        momentum=args.momentum,
        betas=args.betas,
        log_every=args.log_every,
        delta=args.delta,
        snapshot_steps=args.snapshot_steps,
        measure_ib=args.measure_ib,
        ib_sigma=args.ib_sigma,
        ib_samples=args.ib_samples,
        ib_every=args.ib_every,
        checkpoint_seconds=args.checkpoint_seconds,
    )


def _run_train(args: argparse.Namespace) -> int:
    _check_forecast_arguments(args)
    return _execute(args, _config(args, lrs=[args.lr], weight_decays=[args.weight_decay], seeds=[args.seed]))


def _run_sweep(args: argparse.Namespace) -> int:
    config = _config(args, lrs=args.lr, weight_decays=args.weight_decay, seeds=args.seeds)
    config = dataclasses.replace(config, group_size=args.group_size)
    _check_sharding_arguments(args)
    _check_forecast_arguments(args)
    if args.executor is not None:
        return _run_executor(args, config)
    return _execute(args, config)


class ProgressBar:
    """tqdm bar over training steps showing the mean test accuracy and RNC1 over runs."""

    def __init__(self, total: int, *, disable: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="step", disable=disable, file=sys.stderr, dynamic_ncols=True)
        self.position = 0
        self.forecast = ""  # the live forecast's text (--forecast), shown after the measures

    def __call__(self, step: int, total: int, rows: list[dict[str, float]]) -> None:
        if rows:
            test_acc = sum(row["test_acc"] for row in rows) / len(rows)
            rnc1 = sum(row["rnc1"] for row in rows) / len(rows)
            forecast = f" {self.forecast}" if self.forecast else ""
            self.bar.set_postfix_str(f"test_acc={test_acc:.3f} rnc1={rnc1:.3g} runs={len(rows)}{forecast}", refresh=False)
        if total != self.bar.total:  # a sweep of several batched groups counts the steps of all
            self.bar.total = total
        self.bar.update(step - self.position)
        self.position = step

    def message(self, line: str) -> None:
        """A line on stderr above the bar (a run that diverged)."""
        self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def run_onsets(run_dirs: Sequence[Path]) -> list[Any]:
    """``empirical.onset.GrokkingOnset`` of each run, from its ``metrics.csv`` (status ``diverged``
    for a run whose training diverged)."""
    from ncgrok.empirical.onset import run_onset
    from ncgrok.empirical.runs import load_run

    return [run_onset(load_run(directory)) for directory in run_dirs]


def _final(final: dict[str, Any], column: str, spec: str) -> str:
    value = final.get(column)
    return "nan" if value is None else format(value, spec)  # summary.json holds NaN as null


def summary_table(summaries: list[dict[str, Any]], onsets: Sequence[Any] | None = None) -> str:
    """One line per run: final accuracies, RNC1 and NC2, training status; with ``onsets`` (one
    ``GrokkingOnset`` per summary) also the fit step, onset step and onset status."""
    header = ("run", "train_acc", "test_acc", "rnc1", "nc2", "status")
    if onsets is not None:
        header += ("fit_step", "onset_step", "onset")
    lines = [header]
    for index, summary in enumerate(summaries):
        final = summary["final"] or {}
        status = summary["status"]
        if status == "diverged":
            status += f" at step {summary['divergence']['step']}"
        line = (
            summary["name"],
            _final(final, "train_acc", ".3f"),
            _final(final, "test_acc", ".3f"),
            _final(final, "rnc1", ".3g"),
            _final(final, "nc2", ".3g"),
            status,
        )
        if onsets is not None:
            onset = onsets[index]
            line += (format_value(onset.fit_step), format_value(onset.onset_step), onset.status)
        lines.append(line)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(str(value).ljust(width) for value, width in zip(line, widths)) for line in lines)


def _execute(args: argparse.Namespace, config) -> int:
    from ncgrok.empirical.sweep import run_sweep

    live = _live_forecast(args, config)  # (checks --calibrate-on before anything is written)
    bar = ProgressBar(config.steps, disable=args.quiet or args.json)
    try:
        result = run_sweep(config, args.out, resume=args.resume, progress=_forecasting(bar, live), shard=_shard(args),
                           on_divergence=bar.message)
    finally:
        bar.close()
    timing = {"train_seconds": result.train_seconds, "measure_seconds": result.measure_seconds,
              "resumed_from": result.resumed_from}
    if live is not None:
        timing["forecast_seconds"] = live.seconds
    footer = (f"\ntraining {result.train_seconds:.1f} s, measurement {result.measure_seconds:.1f} s"
              + (f", forecast {live.seconds:.1f} s" if live is not None else "")
              + (f" (resumed from step {result.resumed_from})" if result.resumed_from else ""))
    return _print_runs(args, result.out_dir, result.summaries, result.run_dirs, timing, footer)


def _print_runs(args: argparse.Namespace, out: Path, summaries: list[dict[str, Any]], run_dirs: Sequence[Path],
                extra: dict[str, Any], footer: str | None) -> int:
    """The final table (or JSON with ``extra``) of ``summaries`` with each run's onset."""
    onsets = run_onsets(run_dirs)
    diverged = [summary["name"] for summary in summaries if summary["status"] == "diverged"]
    if args.json:
        runs = [{**summary, "onset": dataclasses.asdict(onset)} for summary, onset in zip(summaries, onsets)]
        print(json.dumps(json_safe({"out": str(out), "runs": runs, "diverged": len(diverged), **extra}), default=str))
    else:
        print(summary_table(summaries, onsets))
        if footer:
            print(footer)
        if diverged:
            print(f"{len(diverged)} of {len(summaries)} run(s) diverged (frozen at the step shown, their metrics.csv "
                  "stops there; see their summary.json)")
        print(f"results: {out}")
    if summaries and len(diverged) == len(summaries):
        print(f"ncgrok {args.command}: every run ({len(summaries)}) diverged in training, so none is usable; lower "
              f"--lr (the lines above say how far); the results in {out} are kept", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# The live onset forecast (--forecast; see ncgrok.empirical.forecast_live)

def _add_forecast_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("live onset forecast")
    group.add_argument("--forecast", action="store_true",
                       help="after every logged step forecast each run's grokking onset without its test columns "
                            "(as ncgrok forecast does): the progress bar shows it and each run's forecast.csv keeps "
                            "its history (drawn by ncgrok figures)")
    group.add_argument("--calibrate-on", type=options.path_text, default=None, metavar="SWEEP_DIR",
                       help="with --forecast: completed runs (e.g. an earlier sweep) whose onsets calibrate the "
                            "forecast; the runs of this job that have already grokked calibrate the others too")
    group.add_argument("--forecast-signal", choices=forecast_cli.SIGNALS, default=None,
                       help="with --forecast: the contracting quantity the variance-crossing forecaster extrapolates "
                            "(default rnc1)")


def _check_forecast_arguments(args: argparse.Namespace) -> None:
    if not args.forecast:
        given = [flag for flag, value in (("--calibrate-on", args.calibrate_on),
                                          ("--forecast-signal", args.forecast_signal)) if value is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} only apply with --forecast: add --forecast or drop them")
    elif getattr(args, "executor", None) is not None:
        raise ValueError("--forecast needs the runs trained in this process, and --executor trains them in others: "
                         "drop --forecast (ncgrok forecast DIR forecasts them afterwards) or train without --executor")


def _live_forecast(args: argparse.Namespace, config) -> Any:
    """The live forecast of ``--forecast`` (``None`` without it); a bad ``--calibrate-on`` is a ValueError."""
    if not args.forecast:
        return None
    from ncgrok.empirical.forecast import Calibration, ForecastSettings
    from ncgrok.empirical.forecast_live import LiveForecast, calibration_from, plan_from_config

    settings = ForecastSettings(signal=args.forecast_signal or "rnc1")
    calibration = Calibration()
    if args.calibrate_on is not None:
        try:
            calibration = calibration_from(args.calibrate_on, out_dir=args.out, signal=settings.signal)
        except (ValueError, FileNotFoundError) as error:
            raise ValueError(f"--calibrate-on {args.calibrate_on}: {error}") from None
    return LiveForecast(plan_from_config(config, args.out, shard=_shard(args), calibration=calibration,
                                         settings=settings))


def _forecasting(bar: ProgressBar, live: Any) -> Any:
    """The progress callback: the live forecast (if any) after each logged step, then the bar."""
    if live is None:
        return bar

    def progress(done: int, total: int, rows: list[dict[str, float]]) -> None:
        bar.forecast = live.update()
        bar(done, total, rows)

    return progress


# ---------------------------------------------------------------------------------------------
# Sharding and executors (ncgrok sweep only; see ncgrok.empirical.shards)

# --shard's value is checked by empirical.shards.Shard.parse (one line naming --shard and the fix).
SHARD_TEXT = options.Text("K/N: shard K of N, numbered from 1 (e.g. 2/3)")
_EXECUTOR_FLAGS = {"local": ("jobs",), "submitit": ("cluster", "partition", "gpus_per_shard", "timeout", "mem",
                                                    "cpus_per_shard", "wait")}


def _add_sharding_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "batched groups, shards and executors",
        "The grid is trained in batched groups of --group-size runs; a shard is a set of whole groups, so "
        "shards run one after another write exactly the run directories of the unsharded sweep.")
    group.add_argument("--group-size", type=options.positive_count, default=None,
                       help="train at most this many runs in one batched group (grid order: weight decay, lr, "
                            "seed); default: the whole grid in one group")
    group.add_argument("--shard", type=SHARD_TEXT, default=None, metavar="K/N",
                       help="train only shard K of N (numbered from 1) into --out, e.g. from a job array: "
                            "--shard $SLURM_ARRAY_TASK_ID/N or $PBS_ARRAY_INDEX/N")
    group.add_argument("--executor", choices=("local", "submitit"), default=None,
                       help="run every shard: 'local' as subprocesses here (one per GPU when several are "
                            "visible), 'submitit' as one job array (pip install 'ncgrok[cluster]')")
    group.add_argument("--shards", type=options.positive_count, default=None,
                       help="with --executor: the number of shards N (default: one per batched group)")
    group.add_argument("--jobs", type=options.positive_count, default=None,
                       help="--executor local: shards run at once on the CPU (default 1; one per GPU when "
                            "several are visible and --device is auto)")
    group.add_argument("--cluster", choices=("slurm", "local", "debug"), default="slurm",
                       help="--executor submitit: where submitit runs the jobs (default slurm)")
    group.add_argument("--partition", type=options.name, default=None, help="--executor submitit: SLURM partition")
    group.add_argument("--gpus-per-shard", type=options.count(0, 1), default=None,
                       help="--executor submitit: 0 or 1 (a shard trains on one device)")
    group.add_argument("--timeout", type=options.positive_count, default=None, metavar="MIN",
                       help="--executor submitit: time limit per job in minutes (a timed-out job is requeued "
                            "and resumes from its checkpoint)")
    group.add_argument("--mem", type=options.positive_number, default=None, metavar="GB",
                       help="--executor submitit: memory per job in GB")
    group.add_argument("--cpus-per-shard", type=options.positive_count, default=None,
                       help="--executor submitit: CPUs per job")
    group.add_argument("--wait", action="store_true",
                       help="--executor submitit --cluster slurm: wait for the jobs and print the results "
                            "(local and debug always wait)")


def _shard(args: argparse.Namespace):
    from ncgrok.empirical.shards import Shard

    return Shard.parse(args.shard) if getattr(args, "shard", None) is not None else None


def _check_sharding_arguments(args: argparse.Namespace) -> None:
    if args.shard is not None and args.executor is not None:
        raise ValueError("--shard K/N trains one shard and --executor runs all of them: give one of the two")
    if args.executor is None and args.shards is not None:
        raise ValueError("--shards N goes with --executor; to train one shard use --shard K/N")
    defaults = {"cluster": "slurm", "wait": False}
    for executor, names in _EXECUTOR_FLAGS.items():
        given = [name for name in names if getattr(args, name) != defaults.get(name)]
        if given and args.executor != executor:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(f"{flags} only apply with --executor {executor}")


def _run_executor(args: argparse.Namespace, config) -> int:
    """Run (local) or submit (submitit) every shard, then print the runs like a plain sweep."""
    from ncgrok.empirical import shards as sharding
    from ncgrok.empirical.sweep import prepare_shards

    count = args.shards if args.shards is not None else len(config.groups())
    if args.executor == "submitit":  # checked before anything is written
        options = sharding.ClusterOptions(args.cluster, args.partition, args.gpus_per_shard, args.timeout, args.mem,
                                          args.cpus_per_shard)
        sharding.require_submitit()
    shards = sharding.unfinished_shards(args.out, prepare_shards(config, args.out, count, resume=args.resume))
    quiet = args.quiet or args.json
    if not quiet and len(shards) < count:
        print(f"{count - len(shards)} of {count} shards are already completed", file=sys.stderr)

    def report(outcome) -> None:
        if not quiet:
            state = "done" if outcome.error is None else f"failed: {outcome.error}"
            print(f"shard {outcome.shard} {state} ({outcome.seconds:.1f} s)", file=sys.stderr)

    if not shards:
        outcomes = []
    elif args.executor == "local":
        outcomes = sharding.run_local(config, args.out, shards, jobs=args.jobs, on_done=report)
    else:
        jobs = sharding.submit_shards(config, args.out, shards, options)
        if not quiet:
            print(f"submitted {len(jobs)} shard job(s) to {args.cluster}: {', '.join(job.job_id for job in jobs)}",
                  file=sys.stderr)
        if args.cluster == "slurm" and not args.wait:
            print(f"follow them with: ncgrok status {args.out}")
            return 0
        outcomes = sharding.wait_for_jobs(jobs, shards, on_done=report)
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    for outcome in failed:
        print(f"ncgrok sweep: shard {outcome.shard} failed: {outcome.error}", file=sys.stderr)
    if failed:
        print("finished shards are kept; rerun the same command with --resume to continue", file=sys.stderr)
        return 1
    return _print_sweep_runs(args, config)


def _print_sweep_runs(args: argparse.Namespace, config) -> int:
    """The final table (or JSON) of every run of a sweep whose shards ran in other processes."""
    from ncgrok.empirical.runs import SweepDirectory
    from ncgrok.empirical.sweep_config import run_name

    directory = SweepDirectory(args.out)
    run_dirs = [directory.run(run_name(run)).path for run in config.runs()]
    summaries = [directory.run(path.name).read_summary() for path in run_dirs]
    return _print_runs(args, args.out, summaries, run_dirs, {}, None)
