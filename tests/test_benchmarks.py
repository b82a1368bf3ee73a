"""The arithmetic behind the performance benchmarks' verdicts (benchmarks/roofline.py, engine_throughput.py).

The benchmarks judge issue 16's targets by ratios whose numerators are counted, not timed: the
FLOPs of a training step and the bytes AdamW moves. Those counts are checked here against an
independent count (torch's own FLOP counter over the engine's step, the parameter count from the
architecture), and the roofline's ratios against hand-computed values, so a wrong count or formula
fails here rather than silently moving a verdict.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ncgrok.empirical.engine import BatchedTrainer, RunConfig
from ncgrok.empirical.models import ModelSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from engine_throughput import mlp_flops_per_step, mlp_forward_flops  # noqa: E402
from roofline import Rounds, adamw_bytes, reach, roofline, step_matrix_products  # noqa: E402

PAPER_PARAMETERS = 784 * 200 + 200 + 2 * (200 * 200 + 200) + 200 * 10 + 10  # the paper's MLP, per run


@pytest.fixture(scope="module")
def trainer() -> BatchedTrainer:
    torch.manual_seed(0)
    x, y = torch.rand(200, 1, 28, 28), torch.randint(0, 10, (200,))
    runs = [RunConfig(seed=s, weight_decay=0.1, lr=1e-3) for s in (0, 1, 2)]
    return BatchedTrainer(ModelSpec(input_shape=(1, 28, 28)), runs, x, y, batch_size=100, device="cpu")


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def test_step_flops_formula_equals_torchs_count_of_the_engine_step(trainer):
    spec, runs = trainer.spec, trainer.num_runs
    counted = counted_flops(trainer._compute_gradients)
    assert counted == runs * mlp_flops_per_step(spec, 100) == runs * 111_920_000
    # planted: counting the first layer's input gradient too (which the engine never computes) is caught
    forward = mlp_forward_flops(spec, 100)
    assert counted != runs * 3 * forward


def test_matrix_products_alone_are_the_steps_products(trainer):
    assert counted_flops(lambda: step_matrix_products(trainer)(1)) == counted_flops(trainer._compute_gradients)
    assert counted_flops(lambda: step_matrix_products(trainer)(2)) == 2 * counted_flops(trainer._compute_gradients)


def test_adamw_traffic_is_seven_streams_of_every_parameter(trainer):
    assert adamw_bytes(trainer) == 7 * 4 * trainer.num_runs * PAPER_PARAMETERS
    assert sum(p.numel() for p in trainer._params) == trainer.num_runs * PAPER_PARAMETERS


def test_roofline_ratios_against_hand_computed_values():
    matmul_seconds = 2 * 2048**3 / 100e9  # a 100 GFLOP/s machine
    rounds = Rounds(
        matmul=[matmul_seconds, matmul_seconds / 2],  # second round: 200 GFLOP/s
        step=[0.05, 0.02],
        baselines={"plain": [0.004, 0.002], "single": [0.003, 0.003]},
        products=[0.03, 0.012],
        adamw=[0.01, 0.005],
        bandwidth=[20e9, 40e9],
        forward=[2.0, 1.0],
    )
    flops, traffic = 3e9, 200e6
    roof = roofline(rounds, flops=flops, runs=30, adamw_traffic=traffic, share=lambda step, log: log / (step + log))
    # round 1: 3 GFLOP in 50 ms = 60 GFLOP/s of 100 -> 0.6; round 2: 150 of 200 -> 0.75; median 0.675
    assert roof.fraction.median == pytest.approx(0.675) and roof.fraction.low == pytest.approx(0.6)
    assert roof.fraction_best == pytest.approx(3e9 / 0.02 / 200e9)  # fastest step, best matmul sample
    assert roof.products_fraction.median == pytest.approx((1.0 + 1.25) / 2)
    assert roof.adamw_share.median == pytest.approx((0.2 + 0.25) / 2)
    assert roof.adamw_bandwidth.median == pytest.approx((20 + 40) / 2)
    # attainable: 3e9 / rate / (products + 200 MB / bandwidth): round 1 0.03 / (0.03 + 0.01) = 0.75,
    # round 2 0.015 / (0.012 + 0.005) = 0.882...
    assert roof.attainable.low == pytest.approx(0.75) and roof.attainable.high == pytest.approx(0.015 / 0.017)
    # plain model-step against the batched step per run: 0.004 / (0.05 / 30) = 2.4, 0.002 / (0.02 / 30) = 3.0
    assert roof.speedups["plain"].median == pytest.approx(2.7)
    assert roof.speedups["single"].low == pytest.approx(0.003 / (0.05 / 30))  # each baseline paired on its own
    # at the roofline the batched step takes products + AdamW floor: 0.04 and 0.017 s
    assert roof.speedups_attainable["plain"].low == pytest.approx(0.004 / (0.04 / 30))
    assert roof.speedups_attainable["plain"].high == pytest.approx(0.002 / (0.017 / 30))
    assert roof.measurement_floor.median == pytest.approx((2.0 / 2.05 + 1.0 / 1.02) / 2)
    assert f"{roof.fraction:.2f}" == "0.68 [rounds 0.60-0.75]"


def test_roofline_without_forward_timings_has_no_measurement_floor():
    rounds = Rounds([0.1], [0.05], {"plain": [0.004]}, [0.03], [0.01], [20e9], [])
    assert roofline(rounds, flops=3e9, runs=30, adamw_traffic=200e6, share=lambda s, f: f).measurement_floor is None


def test_reach_verdicts_at_and_past_the_target():
    assert reach(0.75, 0.75) == "reachable on this machine"  # a roofline exactly at the target reaches it
    assert reach(0.7499, 0.75) == "out of reach on this machine"
    assert reach(0.06, 0.06, at_most=True) == "reachable on this machine"  # shares: lower is better
    assert reach(0.0601, 0.06, at_most=True) == "out of reach on this machine"
    assert reach(0.01, 0.06) == "out of reach on this machine"  # the direction matters
