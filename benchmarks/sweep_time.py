"""Wall-clock of the paper's full weight-decay sweep, measured on a slice and extrapolated.

The full sweep (paper Fig. 3) is 6 weight decays x 5 seeds x 100,000 steps of the MLP
784-200-200-200-10 with the paper's logging schedule (193 logged steps, each measuring every run on
the 1000 training images, the 10,000 test images and a 5,000-image held-out sample). This script
trains all 30 runs together for ``--steps`` steps with ``empirical.sweep.run_sweep`` on the real
MNIST files (``ncgrok data fetch mnist``), logging every ``--log-every`` steps, and reports

* training seconds per step of the batched job and per model-step, the achieved GFLOP/s and its
  fraction of the float32 matmul rate measured in the same process;
* measurement seconds per logged step;
* the extrapolated full-sweep time ``100000 x train/step + 193 x measure/log`` and the measurement
  share of it;
* the peak resident memory of the process;
* the same job run as 30 separate single-run trainers for a few steps (the one-run-at-a-time
  baseline in this process), and the ratio.

Usage: ``python benchmarks/sweep_time.py [--steps 400] [--log-every 100] [--runs 30]`` (about two
minutes at the defaults on 2 cores).
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from empirical.data import paper_split  # noqa: E402
from empirical.engine import BatchedTrainer, RunConfig, log_schedule  # noqa: E402
from empirical.measure import as_measurement_data  # noqa: E402
from empirical.models import ModelSpec  # noqa: E402
from empirical.sweep import SweepConfig, run_sweep  # noqa: E402

FULL_STEPS = 100_000
WEIGHT_DECAYS = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
MFLOP_PER_MODEL_STEP = 111.9  # forward, weight grads, input grads but the first layer (batch 100)


def matmul_rate() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps of the measured slice (default 400)")
    parser.add_argument("--log-every", type=int, default=100, help="log interval of the slice (default 100)")
    parser.add_argument("--runs", type=int, default=30, help="number of runs (default 30 = 6 weight decays x 5 seeds)")
    parser.add_argument("--baseline-steps", type=int, default=20, help="steps of the one-run-at-a-time baseline")
    args = parser.parse_args()

    rate = matmul_rate()
    seeds = tuple(range(max(1, args.runs // len(WEIGHT_DECAYS))))
    decays = WEIGHT_DECAYS[: args.runs] if args.runs < len(WEIGHT_DECAYS) else WEIGHT_DECAYS
    config = SweepConfig(weight_decays=decays, seeds=seeds, steps=args.steps, log_every=args.log_every,
                         checkpoint_seconds=1e9, device="cpu")
    runs = len(config.runs())
    split = paper_split("mnist", heldout_size=config.heldout_size)
    with tempfile.TemporaryDirectory() as out:
        result = run_sweep(config, Path(out) / "sweep", split=split)
    logs = len(config.schedule())
    train_per_step = result.train_seconds / args.steps
    measure_per_log = result.measure_seconds / logs
    gflops = runs * MFLOP_PER_MODEL_STEP / 1e3 / train_per_step

    # one run at a time: the same trainer with R = 1, run after run
    data = as_measurement_data(split, device="cpu")
    spec = ModelSpec(input_shape=tuple(data.train_x.shape[1:]))
    start = time.perf_counter()
    for run in config.runs():
        trainer = BatchedTrainer(spec, [run], data.train_x, data.train_y, device="cpu")
        trainer.train(args.baseline_steps)
    single_per_step = (time.perf_counter() - start) / args.baseline_steps

    full_logs = len(log_schedule(FULL_STEPS))
    full_train = FULL_STEPS * train_per_step
    full_measure = full_logs * measure_per_log
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"machine float32 matmul rate: {rate:.0f} GFLOP/s (2048^3, best of 5); torch threads {torch.get_num_threads()}")
    print(f"slice: {runs} runs x {args.steps} steps, {logs} logged steps")
    print(f"training: {train_per_step * 1e3:.1f} ms per batched step, {train_per_step / runs * 1e3:.2f} ms per model-step, "
          f"{gflops:.0f} GFLOP/s")
    print(f"fraction of matmul rate: {gflops / rate:.2f}")
    print(f"measurement: {measure_per_log:.2f} s per logged step ({runs} runs; train, test and held-out sets)")
    print(f"one run at a time (R=1 trainers in sequence): {single_per_step * 1e3:.1f} ms per step of all runs; "
          f"batched speed-up {single_per_step / train_per_step:.2f}x")
    print(f"extrapolated full sweep ({runs} runs x {FULL_STEPS} steps, {full_logs} logs): "
          f"{(full_train + full_measure) / 60:.1f} min = training {full_train / 60:.1f} min + measurement "
          f"{full_measure / 60:.1f} min ({full_measure / (full_train + full_measure):.0%} measurement)")
    print(f"peak resident memory: {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
