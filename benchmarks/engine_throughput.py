"""Throughput of empirical.engine.BatchedTrainer on the paper's MLP, against baselines run in this process.

Prints
  * for R runs trained together (default R = 1, 6, 30; paper MLP 784-200-200-200-10, batch 100,
    summed squared loss, AdamW, synthetic data of the MNIST subset's shape), timed in interleaved
    rounds with every ratio paired within its round (``roofline.py`` says why): ms per batched
    step, the fraction of the float32 matmul rate (FLOPs counted exactly: forward, weight
    gradients, input gradients of every layer but the first; 111.9 MFLOP per model-step), the
    step's matrix products alone as a fraction of it, AdamW's share of the step, the roofline
    (the highest fraction any change keeping results identical could reach), and the speed-up
    over a plain one-model-at-a-time loop (``nn.Module`` + ``torch.optim.AdamW`` + per-step batch
    indexing, same settings), as a Markdown table,
  * with ``--breakdown``: the time of each part of one batched step at the largest R, and the
    alternatives measured while designing the engine (foreach vs fused AdamW, autograd vs the
    hand-written backward),
  * with ``--measure`` instead of all the above: one ``empirical.measure.measure_runs`` call at the
    largest R on random data of the paper's sizes (1000 training, 10,000 test, 5000 held-out
    images): its wall-clock and CPU seconds, the share of it spent in the forward passes alone, the
    page faults it causes, and, against a training step timed in the same process, the measurement
    share of the extrapolated full sweep (100,000 steps, 193 logs) with the 6% target of issue 16
    and the floor the forward passes alone set at the matmul rate,
  * how much CPU other processes used meanwhile (the numbers are only meaningful on an idle machine).

Usage: ``python benchmarks/engine_throughput.py [--rounds 8] [--steps 8] [--runs 1,6,30] [--breakdown]``
(about two minutes with the defaults on 2 cores); ``python benchmarks/engine_throughput.py --measure
[--runs 30] [--repeats 3]`` (about 30 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncgrok.machine import describe  # noqa: E402
from ncgrok.empirical.engine import EVAL_CHUNK_SIZE, BatchedTrainer, RunConfig, log_schedule  # noqa: E402
from ncgrok.empirical.measure import MeasurementData, measure_runs  # noqa: E402
from ncgrok.empirical.models import ModelSpec, build_module  # noqa: E402
from ncgrok.empirical.optim import adamw_init, adamw_update  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from roofline import adamw_bytes, roofline, time_rounds  # noqa: E402

WEIGHT_DECAYS = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
FULL_STEPS = 100_000  # the paper's sweep; log_schedule(FULL_STEPS) has 193 logged steps
MEASUREMENT_SHARE_TARGET = 0.06  # issue 16: measurement at most 6% of the full sweep's wall-clock
MEASURED_SIZES = {"train": 1000, "test": 10_000, "held-out": 5000}  # images measured at every log


def measurement_share(train_per_step: float, measure_per_log: float) -> float:
    """Share of the extrapolated full sweep (``FULL_STEPS`` steps, its logs) spent measuring."""
    measuring = len(log_schedule(FULL_STEPS)) * measure_per_log
    return measuring / (FULL_STEPS * train_per_step + measuring)


def measurement_target_line(share: float) -> str:
    verdict = "met" if share <= MEASUREMENT_SHARE_TARGET else "not met"
    return f"target: measurement at most {MEASUREMENT_SHARE_TARGET:.0%} of the full sweep: {verdict} ({share:.1%})"


def mlp_forward_flops(spec: ModelSpec, samples: int) -> float:
    """FLOPs of one run's forward pass over ``samples`` inputs (the measurement's matrix products)."""
    dims = [spec.input_dim] + [spec.resolved_width] * (spec.depth - 1) + [spec.num_classes]
    return 2.0 * samples * sum(i * o for i, o in zip(dims[:-1], dims[1:]))


def mlp_flops_per_step(spec: ModelSpec, batch_size: int) -> float:
    dims = [spec.input_dim] + [spec.resolved_width] * (spec.depth - 1) + [spec.num_classes]
    macs = [i * o for i, o in zip(dims[:-1], dims[1:])]
    forward = 2 * batch_size * sum(macs)
    weight_grads = 2 * batch_size * sum(macs)
    input_grads = 2 * batch_size * sum(macs[1:])
    return float(forward + weight_grads + input_grads)


class MatmulRate:
    """float32 2048^3 ``torch.mm`` rate, sampled between the other measurements; the best sample is
    the machine's rate (conservative denominator when other tenants slow the host down at times)."""

    def __init__(self):
        self.a, self.b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        self.a @ self.b
        self.samples: list[float] = []

    def sample(self, repeats: int = 1) -> None:
        for _ in range(repeats):
            t = time.perf_counter()
            self.a @ self.b
            self.samples.append(2 * 2048**3 / (time.perf_counter() - t) / 1e9)

    @property
    def best(self) -> float:
        return max(self.samples)


def best_time(fn, steps: int, repeats: int, matmul: MatmulRate | None = None) -> tuple[float, float]:
    """(best, median) seconds per call of fn(steps) / steps, after one warm-up call; samples the
    matmul rate before each repeat."""
    fn(max(1, steps // 5))
    times = []
    for _ in range(repeats):
        if matmul is not None:
            matmul.sample()
        t = time.perf_counter()
        fn(steps)
        times.append((time.perf_counter() - t) / steps)
    return min(times), statistics.median(times)


def synthetic_data(n: int = 1000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def make_runs(r: int) -> list[RunConfig]:
    return [RunConfig(seed=i // len(WEIGHT_DECAYS), lr=1e-3, weight_decay=WEIGHT_DECAYS[i % len(WEIGHT_DECAYS)]) for i in range(r)]


def plain_loop(spec: ModelSpec, x, y, batch_size: int):
    """One model, nn.Module + torch.optim.AdamW, batches by indexing a per-epoch permutation."""
    model = build_module(spec, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    onehot = F.one_hot(y, 10).float()
    xf = x.reshape(x.shape[0], -1)
    gen = torch.Generator().manual_seed(0)
    state = {"perm": torch.randperm(x.shape[0], generator=gen), "pos": 0}

    def run(steps: int) -> None:
        for _ in range(steps):
            if state["pos"] + batch_size > x.shape[0]:
                state["perm"], state["pos"] = torch.randperm(x.shape[0], generator=gen), 0
            idx = state["perm"][state["pos"] : state["pos"] + batch_size]
            state["pos"] += batch_size
            loss = (model(xf[idx]) - onehot[idx]).square().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


class CpuUse:
    """CPU seconds used by other processes between start and stop (from /proc/stat)."""

    def __init__(self):
        self.ok = os.path.exists("/proc/stat")

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    def start(self):
        if self.ok:
            self.t0, self.b0, self.o0 = time.perf_counter(), self._busy(), self._own()
        return self

    def others_cores(self) -> float | None:
        if not self.ok:
            return None
        wall = time.perf_counter() - self.t0
        return max(0.0, (self._busy() - self.b0) - (self._own() - self.o0)) / wall


def breakdown(spec: ModelSpec, x, y, r: int, batch_size: int, steps: int, repeats: int) -> None:
    print(f"\nbreakdown of one batched step, R={r} (ms per step, best of {repeats}):")
    trainer = BatchedTrainer(spec, make_runs(r), x, y, batch_size=batch_size, device="cpu")
    trainer.train(2)
    xb_flat = trainer._xb.view(r * batch_size, -1)
    yb_flat = trainer._yb.view(r * batch_size, -1)

    def gather(n):
        for _ in range(n):
            idx = trainer._next_indices()
            torch.index_select(trainer._x, 0, idx, out=xb_flat)
            torch.index_select(trainer._onehot, 0, idx, out=yb_flat)

    def manual(n):
        with torch.no_grad():
            for _ in range(n):
                trainer._compute_gradients()

    ws, bs = trainer._params[0::2], trainer._params[1::2]

    def autograd_bmm(n):
        for _ in range(n):
            leaves = [t.detach().requires_grad_(True) for t in trainer._params]
            h = trainer._xb
            for i in range(0, len(leaves), 2):
                z = torch.baddbmm(leaves[i + 1].unsqueeze(1), h, leaves[i].transpose(1, 2))
                h = torch.relu(z) if i + 2 < len(leaves) else z
            grads = torch.autograd.grad((h - trainer._yb).square().sum(), leaves)
            torch._foreach_copy_(trainer._grads, list(grads))

    def optimizer(impl):
        lrs, decays = [run.lr for run in trainer.runs], [run.weight_decay for run in trainer.runs]
        state = adamw_init(trainer._params, trainer._grads, lrs=lrs, weight_decays=decays, impl=impl)
        frozen = torch.zeros(r, dtype=torch.bool)  # the engine always passes its divergence mask

        def run(n):
            nonlocal state
            with torch.no_grad():
                for _ in range(n):
                    state = adamw_update(trainer._params, trainer._grads, state, frozen=frozen)

        return run

    parts = [
        ("batch gather (index_select into preallocated buffers)", gather),
        ("forward+backward, hand-written bmm (engine)", manual),
        ("forward+backward, autograd over the same bmm graph", autograd_bmm),
        ("AdamW fused kernel, one call per run (engine default)", optimizer("fused")),
        ("AdamW foreach ops with (R,1,..) per-run factors", optimizer("foreach")),
    ]
    for label, fn in parts:
        best, med = best_time(fn, steps, repeats)
        print(f"  {label:58s} {best * 1e3:8.2f}  (median {med * 1e3:.2f})")
    flops = mlp_flops_per_step(spec, batch_size) * r
    del ws, bs
    print(f"  matmul work of one step: {flops / 1e9:.2f} GFLOP")


def measurement_forward(trainer: BatchedTrainer, data: MeasurementData):
    """The forward passes ``measure_runs(trainer, data)`` makes, in the same chunks and the same
    way, as a function of no arguments (the measurement's floor: no statistic computed)."""
    sets = [images for images in (data.train_x, data.heldout_x, data.test_x) if images is not None]

    def run() -> None:
        with torch.no_grad():
            for images in sets:
                for start in range(0, images.shape[0], EVAL_CHUNK_SIZE):
                    trainer.evaluate_chunk(images[start : start + EVAL_CHUNK_SIZE])

    return run


def measurement(spec: ModelSpec, r: int, repeats: int, matmul: MatmulRate) -> None:
    """Time one ``measure_runs`` call of R runs (see the module docstring, ``--measure``)."""
    x, y = synthetic_data(MEASURED_SIZES["train"], seed=0)
    test_x, test_y = synthetic_data(MEASURED_SIZES["test"], seed=1)
    heldout_x, heldout_y = synthetic_data(MEASURED_SIZES["held-out"], seed=2)
    trainer = BatchedTrainer(spec, make_runs(r), x, y, batch_size=100, device="cpu")
    train_per_step, _ = best_time(trainer.train, 20, repeats, matmul)
    data = MeasurementData(x, y, test_x, test_y, spec.num_classes, heldout_x, heldout_y)

    forward_only = measurement_forward(trainer, data)
    measure_runs(trainer, data)  # warm-up (the first call also prepares what later logs reuse)
    timings = {"measure": [], "forward": []}
    faults = []
    for _ in range(repeats):
        matmul.sample()
        for name, call in (("measure", lambda: measure_runs(trainer, data)), ("forward", forward_only)):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            timings[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            if name == "measure":
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    matmul.sample(3)
    measure_wall, measure_cpu = min(timings["measure"])
    forward_wall, _ = min(timings["forward"])
    flops = r * mlp_forward_flops(spec, sum(MEASURED_SIZES.values()))
    rate = matmul.best
    share = measurement_share(train_per_step, measure_wall)
    floor = flops / 1e9 / rate
    sizes = ", ".join(f"{count} {name}" for name, count in MEASURED_SIZES.items())
    print(f"measure_runs, R={r} ({sizes} images; best of {repeats}): {measure_wall:.2f} s wall, {measure_cpu:.2f} s CPU;"
          f" median {statistics.median(wall for wall, _ in timings['measure']):.2f} s wall;"
          f" {statistics.median(faults):.0f} minor page faults per call (median)")
    print(f"  forward passes alone: {forward_wall:.2f} s = {forward_wall / measure_wall:.0%} of the call;"
          f" {flops / 1e9:.0f} GFLOP at {flops / 1e9 / forward_wall:.0f} GFLOP/s ="
          f" {flops / 1e9 / forward_wall / rate:.2f} of the matmul rate ({rate:.0f} GFLOP/s)")
    print(f"  training at R={r}: {train_per_step * 1e3:.1f} ms per step; extrapolated full sweep"
          f" ({FULL_STEPS} steps, {len(log_schedule(FULL_STEPS))} logs): measurement share {share:.1%}")
    print(f"  {measurement_target_line(share)}")
    print(f"  floor: the forward passes alone at the matmul rate take {floor:.2f} s per log ="
          f" {measurement_share(train_per_step, floor):.1%} of the sweep at this training speed")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8,
                        help="batched steps per round at R = 30, scaled by 30 / R below it (default 8)")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds per R (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported (default 3)")
    parser.add_argument("--runs", default="1,6,30", help="comma-separated numbers of runs (default 1,6,30)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--breakdown", action="store_true", help="also time the parts of one step")
    parser.add_argument("--measure", action="store_true",
                        help="instead, time one measure_runs call at the largest R (about 30 s)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = [int(v) for v in args.runs.split(",")]
    spec = ModelSpec(arch="mlp")  # 784-200-200-200-10, init x8
    batch_size = 100
    x, y = synthetic_data()
    flops = mlp_flops_per_step(spec, batch_size)
    use = CpuUse().start()

    matmul = MatmulRate()
    matmul.sample(3)
    print(describe() + "; float32")
    if args.measure:
        measurement(spec, max(runs), args.repeats, matmul)
        report_other_cpu_use(use)
        return
    print(f"MLP 784-200-200-200-10, batch {batch_size}: {flops / 1e6:.1f} MFLOP per model-step; medians over "
          f"{args.rounds} interleaved rounds, each ratio paired within its round (benchmarks/roofline.py)")
    plain = plain_loop(spec, x, y, batch_size)
    print("| runs trained together | ms per batched step | fraction of matmul rate | products alone | AdamW share "
          "| roofline | speed-up vs plain loop |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        trainer = BatchedTrainer(spec, make_runs(r), x, y, batch_size=batch_size, device="cpu")
        rounds = time_rounds(trainer, {"plain": plain}, rounds=args.rounds, steps=args.steps * max(1, 30 // r))
        roof = roofline(rounds, flops=r * flops, runs=r, adamw_traffic=adamw_bytes(trainer), share=measurement_share)
        print(f"| engine, R = {r} | {statistics.median(rounds.step) * 1e3:.2f} | {roof.fraction.median:.2f} "
              f"| {roof.products_fraction.median:.2f} | {roof.adamw_share.median:.0%} | {roof.attainable.median:.2f} "
              f"| {roof.speedups['plain'].median:.2f}x |")
        if r == max(runs):
            minutes = FULL_STEPS * statistics.median(rounds.step) * 30 / r / 60
            print(f"  -> 30 runs x {FULL_STEPS} steps at this rate: {minutes:.0f} min of training "
                  f"(matmul rate in these rounds: {roof.matmul_rate:.0f} GFLOP/s)")
        del trainer
    if args.breakdown:
        breakdown(spec, x, y, max(runs), batch_size, args.steps, args.repeats)
    report_other_cpu_use(use)


def report_other_cpu_use(use: CpuUse) -> None:
    others = use.others_cores()
    if others is not None:
        note = "  (machine busy: numbers are pessimistic)" if others > 0.1 else ""
        print(f"other processes used {others:.2f} cores on average during the benchmark{note}")


if __name__ == "__main__":
    main()
