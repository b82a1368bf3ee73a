"""Paired, interleaved timing of one batched training step against this machine's own limits.

The host's speed drifts (other tenants; on the 2-core AMD EPYC used so far the float32 matmul rate
moved between 94 and 184 GFLOP/s within a session), so a ratio of a mean over one minute to the best
matmul sample of another minute says more about the host than about the engine. Here every quantity
is timed in **rounds**: in each round, back to back, one 2048^3 matmul, a block of batched training
steps, a block of steps of each one-model-at-a-time baseline, the step's matrix products alone, the AdamW update
alone and a large in-place streaming update. A ratio is formed within each round and the median over rounds is
reported (with its range), so drift that is slow next to a round (about a second) cancels.

The roofline of a step, from the same rounds: the highest training fraction of the matmul rate
reachable on this machine by any change that keeps results identical, under two assumptions:

* the step's matrix products run no faster than they do alone, in the same ``bmm`` calls (results
  stay identical only with the same products: another shape or grouping rounds differently);
* AdamW (torch's fused kernel, the one that rounds as ``torch.optim.AdamW``) reads parameters,
  gradients and both moments and writes parameters and both moments, 7 float32 streams of every
  parameter, at no more than the machine's streaming bandwidth (``a.add_(b)`` in place over arrays
  far larger than the last-level cache, AdamW's access pattern, counted as bytes read plus
  bytes written), and does not overlap with the products (both need both cores).

So ``attainable = step FLOPs / matmul rate / (matrix products alone + AdamW bytes / streaming bandwidth)``,
ignoring every other part of a step (batch gather, ReLU, bias sums, the loss), which only lowers it.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ncgrok.empirical.engine import BatchedTrainer

STREAM_ELEMENTS = 64 * 2**20  # 256 MB of float32 per array: 8x a 32 MB last-level cache
ADAMW_STREAMS = 7  # fused AdamW reads p, g, m, v and writes p, m, v


class StreamBandwidth:
    """Memory bandwidth of an in-place streaming update, AdamW's access pattern: ``a.add_(b)`` over
    two ``STREAM_ELEMENTS`` float32 arrays reads ``a`` and ``b`` and writes ``a`` (3 streams; a plain
    copy would also read the destination's lines before writing them, traffic it does not count)."""

    def __init__(self, elements: int = STREAM_ELEMENTS):
        self.a = torch.zeros(elements)
        self.b = torch.zeros(elements)
        self.a.add_(self.b)  # touch every page once

    def sample(self) -> float:
        """Bytes per second of one update."""
        start = time.perf_counter()
        self.a.add_(self.b)
        return 3 * self.a.numel() * self.a.element_size() / (time.perf_counter() - start)


def step_matrix_products(trainer: BatchedTrainer) -> Callable[[int], None]:
    """The ``bmm`` calls of ``n`` of the trainer's MLP steps, alone: forward products, weight
    gradients, input gradients of every layer but the first, with the engine's shapes, into
    preallocated buffers (no bias, ReLU, loss or optimizer)."""
    if trainer.backend != "mlp":
        raise ValueError("step_matrix_products needs the MLP backend")
    weights = trainer._mlp.weights
    r, b = trainer.num_runs, trainer.batch_size
    inputs = [trainer._xb] + [torch.rand(r, b, w.shape[2]) for w in weights[1:]]
    outputs = [torch.rand(r, b, w.shape[1]) for w in weights]
    grads = [torch.empty_like(w) for w in weights]
    upstream = [torch.empty(r, b, w.shape[2]) for w in weights]

    def run(n: int) -> None:
        for _ in range(n):
            for x, w, z in zip(inputs, weights, outputs):
                torch.bmm(x, w.transpose(1, 2), out=z)
            for i in range(len(weights) - 1, -1, -1):
                torch.bmm(outputs[i].transpose(1, 2), inputs[i], out=grads[i])
                if i > 0:
                    torch.bmm(outputs[i], weights[i], out=upstream[i])

    return run


def adamw_bytes(trainer: BatchedTrainer) -> int:
    """Bytes fused AdamW moves per step for all of the trainer's parameters."""
    return ADAMW_STREAMS * sum(p.numel() * p.element_size() for p in trainer._params)


@dataclass(frozen=True)
class Rounds:
    """Seconds of each timed part, one entry per round (``bandwidth``: bytes per second)."""

    matmul: list[float]  # one 2048^3 product
    step: list[float]  # one batched training step (all runs)
    baselines: dict[str, list[float]]  # one model-step of each one-model-at-a-time baseline, by name
    products: list[float]  # the matrix products of one batched step alone
    adamw: list[float]  # one AdamW update of all runs
    bandwidth: list[float]  # bytes per second of the streaming update
    forward: list[float]  # the forward passes of one measurement alone (empty if not asked for)


def timed(fn: Callable[[], object], per: int = 1) -> float:
    """Wall-clock seconds of one call of ``fn`` divided by ``per`` (the steps it makes)."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / per


def time_rounds(trainer: BatchedTrainer, baselines: dict[str, Callable[[int], None]], *, rounds: int = 12,
                steps: int = 8, baseline_steps: int = 30, forward: Callable[[], None] | None = None) -> Rounds:
    """Time every part once per round, back to back (see the module docstring). ``baselines``: by
    name, ``fn(n)`` training one model ``n`` steps; ``forward``, if given, is the measurement's
    forward passes, timed once per round as well. The trainer serves only for timing: it is trained
    on and its AdamW update is repeated on stale gradients."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    products = step_matrix_products(trainer)
    stream = StreamBandwidth()
    trainer.train(2), products(2), trainer._apply_update(), a @ b  # warm up
    for baseline in baselines.values():
        baseline(5)
    out = Rounds([], [], {name: [] for name in baselines}, [], [], [], [])

    for _ in range(rounds):
        out.matmul.append(timed(lambda: a @ b, 1))
        out.step.append(timed(lambda: trainer.train(steps), steps))
        for name, baseline in baselines.items():
            out.baselines[name].append(timed(lambda: baseline(baseline_steps), baseline_steps))
        out.products.append(timed(lambda: products(steps), steps))
        with torch.no_grad():
            out.adamw.append(timed(lambda: [trainer._apply_update() for _ in range(steps)], steps))
        out.bandwidth.append(stream.sample())
        if forward is not None:
            out.forward.append(timed(forward, 1))
    return out


@dataclass(frozen=True)
class Paired:
    """Median over rounds (and the lowest and highest round) of one within-round ratio."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> "Paired":
        return cls(statistics.median(values), min(values), max(values))

    def __format__(self, spec: str) -> str:
        return f"{format(self.median, spec)} [rounds {format(self.low, spec)}-{format(self.high, spec)}]"


@dataclass(frozen=True)
class Roofline:
    """Within-round ratios of a batched step of ``runs`` runs (``flops`` per step)."""

    matmul_rate: Paired  # GFLOP/s
    fraction: Paired  # training GFLOP/s / matmul rate
    fraction_best: float  # the definition: fastest training round / best matmul sample
    products_fraction: Paired  # the step's matrix products alone / matmul rate
    adamw_share: Paired  # AdamW / whole step
    adamw_bandwidth: Paired  # AdamW bytes / AdamW seconds, GB/s
    stream_bandwidth: Paired  # GB/s
    attainable: Paired  # the roofline bound on the fraction (module docstring)
    speedups: dict[str, Paired]  # by baseline: its model-step / (batched step / runs)
    speedups_attainable: dict[str, Paired]  # the same with the batched step at the roofline
    measurement_floor: Paired | None  # share of the full sweep the measurement's forward passes alone take


def roofline(r: Rounds, *, flops: float, runs: int, adamw_traffic: int, share: Callable[[float, float], float]) -> Roofline:
    """The within-round ratios of ``r`` for a step of ``flops`` FLOPs over ``runs`` runs; ``share(step
    seconds, measurement seconds)`` is the measurement's share of the full sweep."""
    rate = [2 * 2048**3 / t for t in r.matmul]
    return Roofline(
        matmul_rate=Paired.of([v / 1e9 for v in rate]),
        fraction=Paired.of([flops / s / m for s, m in zip(r.step, rate)]),
        fraction_best=flops / min(r.step) / max(rate),
        products_fraction=Paired.of([flops / p / m for p, m in zip(r.products, rate)]),
        adamw_share=Paired.of([a / s for a, s in zip(r.adamw, r.step)]),
        adamw_bandwidth=Paired.of([adamw_traffic / a / 1e9 for a in r.adamw]),
        stream_bandwidth=Paired.of([bw / 1e9 for bw in r.bandwidth]),
        attainable=Paired.of([flops / m / (p + adamw_traffic / bw) for m, p, bw in zip(rate, r.products, r.bandwidth)]),
        speedups={name: Paired.of([b / (s / runs) for b, s in zip(times, r.step)]) for name, times in r.baselines.items()},
        speedups_attainable={name: Paired.of([b / ((p + adamw_traffic / bw) / runs)
                                              for b, p, bw in zip(times, r.products, r.bandwidth)])
                             for name, times in r.baselines.items()},
        measurement_floor=Paired.of([share(s, f) for s, f in zip(r.step, r.forward)]) if r.forward else None,
    )


def reach(best_possible: float, target: float, *, at_most: bool = False) -> str:
    """Whether a target is in reach on this machine, given the best value the roofline allows:
    at least ``target`` (or, ``at_most``, at most it; for shares such as the measurement's)."""
    ok = best_possible <= target if at_most else best_possible >= target
    return "reachable on this machine" if ok else "out of reach on this machine"
