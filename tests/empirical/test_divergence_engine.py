"""A diverging run inside a BatchedTrainer is frozen and the other runs do not notice (issue 18).

The diverging case is the one a user hit: SGD with ``loss_reduction="mean"`` and lr 0.01 on the
paper's x8-init MLP (784-200-200-200-10), which blows up within a few steps, next to runs with a
stable step size (3e-5; the measured limit for this initialisation is about 1e-4, see
`ncgrok.empirical.divergence.DIVERGENCE_FACTOR`). References are independent of the code under
test: the same grid without the diverging run, the diverging run's own recorded history, and a
plain ``nn.Module`` + ``torch.optim.SGD`` + ``DataLoader`` loop for the step it diverged at.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ncgrok.empirical.divergence import DIVERGENCE_FACTOR, divergence_init, divergence_observe, divergence_report
from ncgrok.empirical.engine import BatchedTrainer, Divergence, RunConfig
from ncgrok.empirical.models import ModelSpec, build_module

pytestmark = [pytest.mark.cpu_kernels, pytest.mark.usefixtures("single_thread")]

PAPER_MLP = ModelSpec(arch="mlp", input_shape=(1, 28, 28), num_classes=10)  # 784-200-200-200-10, init x8
OK_A, BAD, OK_B = RunConfig(0, 3e-5, 0.01), RunConfig(1, 0.01, 0.01), RunConfig(2, 3e-5, 0.01)
STEPS = 12




def _data(spec, n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *spec.input_shape, generator=g)
    y = torch.randint(0, spec.num_classes, (n,), generator=g)
    return x, y


def _state(trainer, run):
    """Parameters and optimizer buffers of one run, cloned."""
    sd = trainer.state_dict()
    tensors = list(sd["params"].values()) + list(sd["buffers"].values())
    tensors += [t for bufs in sd["optimizer"].values() for t in bufs.values()]
    return [t[run].clone() for t in tensors]


def _assert_equal(a, b):
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        assert torch.equal(u, v), i


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_diverging_run_is_frozen_and_the_others_run_as_without_it(momentum):
    x, y = _data(PAPER_MLP)
    options = dict(optimizer="sgd", momentum=momentum, loss_reduction="mean", device="cpu")
    grid = BatchedTrainer(PAPER_MLP, [OK_A, BAD, OK_B], x, y, **options)
    history = [_state(grid, 1)]  # the diverging run after 0, 1, 2, ... steps
    for _ in range(STEPS):
        grid.train(1)
        history.append(_state(grid, 1))
    assert set(grid.diverged) == {1}
    record = grid.diverged[1]
    assert isinstance(record, Divergence) and 1 <= record.step <= 4  # "within a few steps"
    assert record.loss > DIVERGENCE_FACTOR * 1e3 and math.isfinite(record.last_finite_loss)
    # frozen at its state after `step` steps, which is finite, for every later step
    for later in history[record.step :]:
        _assert_equal(later, history[record.step])
    assert all(torch.isfinite(t).all() for t in history[record.step])
    assert not all(torch.equal(u, v) for u, v in zip(history[record.step], history[record.step - 1]))

    without = BatchedTrainer(PAPER_MLP, [OK_A, OK_B], x, y, **options)
    without.train(STEPS)
    assert without.diverged == {}
    _assert_equal(_state(grid, 0), _state(without, 0))
    _assert_equal(_state(grid, 2), _state(without, 1))


def _plain_batch_losses(spec, run, x, y, steps, *, dtype):
    """Batch loss of each step of a plain module trained alone with torch.optim.SGD (mean loss)."""
    model = build_module(spec, run.seed, dtype=dtype)
    opt = torch.optim.SGD(model.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    loader = DataLoader(TensorDataset(x.to(dtype), y), batch_size=100, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(run.seed))
    losses = []
    while len(losses) < steps:
        for xb, yb in loader:
            loss = F.mse_loss(model(xb), F.one_hot(yb, spec.num_classes).to(dtype))
            losses.append(loss.item())
            if not math.isfinite(loss.item()):
                return losses
            opt.zero_grad()
            loss.backward()
            opt.step()
            if len(losses) == steps:
                break
    return losses


def test_reported_step_and_losses_match_a_plain_torch_loop():
    """float64: the step is the first whose batch loss passes 1e4 x the first (or is not finite) in
    the plain loop; the losses agree to 1e-6 (reassociation noise, grown by at most ~1e4 per step of
    blow-up over <= 4 steps from 1e-16, stays below 1e-9 there)."""
    x, y = _data(PAPER_MLP)
    trainer = BatchedTrainer(PAPER_MLP, [BAD], x, y, optimizer="sgd", loss_reduction="mean",
                             dtype=torch.float64, device="cpu")
    trainer.train(STEPS)
    plain = _plain_batch_losses(PAPER_MLP, BAD, x, y, STEPS, dtype=torch.float64)
    expected = next(t for t, loss in enumerate(plain) if not loss <= DIVERGENCE_FACTOR * plain[0])
    record = trainer.diverged[0]
    assert record.step == expected
    assert record.loss == pytest.approx(plain[expected], rel=1e-6)
    assert record.last_finite_loss == pytest.approx(plain[expected - 1], rel=1e-6)
    assert record.reason == f"loss {plain[expected] / plain[0]:.3g} times its first batch loss"


def test_factor_inf_waits_for_a_non_finite_loss():
    x, y = _data(PAPER_MLP)
    default = BatchedTrainer(PAPER_MLP, [BAD], x, y, optimizer="sgd", loss_reduction="mean", device="cpu")
    only_nonfinite = BatchedTrainer(PAPER_MLP, [BAD], x, y, optimizer="sgd", loss_reduction="mean", device="cpu",
                                    divergence_factor=math.inf)
    default.train(STEPS)
    only_nonfinite.train(STEPS)
    late = only_nonfinite.diverged[0]
    assert late.reason == "non-finite loss" and not math.isfinite(late.loss)
    assert late.step > default.diverged[0].step
    for bad in (0.5, math.nan, -1.0):
        with pytest.raises(ValueError, match="divergence_factor"):
            BatchedTrainer(PAPER_MLP, [BAD], x, y, device="cpu", divergence_factor=bad)


# ---------------------------------------------------------------------- every optimizer and backend

SMALL_MLP = ModelSpec(arch="mlp", input_shape=(1, 6, 6), width=16, depth=3, num_classes=4)
CNN = ModelSpec(arch="cnn", input_shape=(1, 6, 6), width=2, hidden_features=8, num_classes=4)
RESNET = ModelSpec(arch="resnet18", input_shape=(3, 4, 4), width=2, num_classes=4)


def _blow_up_head(trainer, run):
    """Run ``run``'s last-layer weights x 1e30: its first loss overflows float32 (non-finite)."""
    with torch.no_grad():
        trainer._params[trainer._head_index[0]][run].mul_(1e30)


@pytest.mark.parametrize(
    "spec, options",
    [
        (SMALL_MLP, {"optimizer_impl": "fused"}),
        (SMALL_MLP, {"optimizer_impl": "foreach"}),
        (CNN, {}),
        (RESNET, {}),
    ],
    ids=["mlp-fused", "mlp-foreach", "cnn-vmap", "resnet-loop"],
)
def test_run_diverging_at_its_first_step_is_frozen_with_every_backend(spec, options):
    x, y = _data(spec, n=40)
    runs = [RunConfig(0, 1e-3, 0.1), RunConfig(1, 1e-3, 0.1), RunConfig(2, 1e-3, 0.1)]
    grid = BatchedTrainer(spec, runs, x, y, batch_size=8, device="cpu", **options)
    _blow_up_head(grid, 1)
    start = _state(grid, 1)
    grid.train(6)
    assert set(grid.diverged) == {1}
    record = grid.diverged[1]
    assert record.step == 0 and record.reason == "non-finite loss" and math.isnan(record.last_finite_loss)
    _assert_equal(_state(grid, 1), start)  # parameters, BatchNorm statistics and moments untouched

    without = BatchedTrainer(spec, [runs[0], runs[2]], x, y, batch_size=8, device="cpu", **options)
    without.train(6)
    _assert_equal(_state(grid, 0), _state(without, 0))
    _assert_equal(_state(grid, 2), _state(without, 1))


# ---------------------------------------------------------------------- checkpoints


def test_resume_keeps_the_divergence_and_continues_bit_for_bit(tmp_path):
    x, y = _data(PAPER_MLP)
    make = lambda: BatchedTrainer(PAPER_MLP, [OK_A, BAD], x, y, optimizer="sgd", momentum=0.9,
                                  loss_reduction="mean", device="cpu")
    straight = make()
    straight.train(STEPS)
    first = make()
    first.train(STEPS // 2)
    assert 1 in first.diverged
    torch.save(first.state_dict(), tmp_path / "ckpt.pt")
    resumed = make()
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    assert resumed.diverged == first.diverged
    resumed.train(STEPS - STEPS // 2)
    assert resumed.diverged == straight.diverged
    for run in (0, 1):
        _assert_equal(_state(resumed, run), _state(straight, run))


def test_checkpoint_without_divergence_flags_still_loads():
    x, y = _data(SMALL_MLP, n=40)
    runs = [RunConfig(0, 1e-3, 0.1), RunConfig(1, 2e-3, 0.0)]
    make = lambda: BatchedTrainer(SMALL_MLP, runs, x, y, batch_size=8, device="cpu")
    straight = make()
    straight.train(10)
    old = make()
    old.train(4)
    state = old.state_dict()
    del state["divergence"]  # the layout before divergence detection existed
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.diverged == {}
    resumed.train(6)
    for run in (0, 1):
        _assert_equal(_state(resumed, run), _state(straight, run))


# ---------------------------------------------------------------------- per-run losses


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_batched_mlp_reports_each_runs_batch_loss(reduction):
    x, y = _data(SMALL_MLP, n=40)
    runs = [RunConfig(0, 1e-3, 0.1), RunConfig(1, 1e-3, 0.1)]
    trainer = BatchedTrainer(SMALL_MLP, runs, x, y, batch_size=8, loss_reduction=reduction,
                             dtype=torch.float64, device="cpu")
    trainer.train(1)
    idx = trainer._batch_order.chunk[0]  # (R, B): the batch of the step just taken
    for r in range(2):
        module = build_module(SMALL_MLP, runs[r].seed, dtype=torch.float64)
        target = F.one_hot(y[idx[r]], 4).double()
        expected = F.mse_loss(module(x[idx[r]].double()), target, reduction=reduction)
        torch.testing.assert_close(trainer._losses[r], expected, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------- the rule itself


def test_divergence_rule_on_a_hand_made_loss_sequence():
    """Run 0 healthy; run 1 passes 10 x its first loss; run 2 turns nan; run 3 starts at loss 0
    (no explosion limit: only a non-finite loss counts) and later turns inf."""
    losses = [
        [4.0, 2.0, 0.0, 0.0],
        [3.0, 19.0, math.nan, 1e30],
        [2.0, 21.0, 5.0, 1e30],  # run 1: 21 > 10 x 2
        [1.0, 1.0, 1.0, math.inf],
        [0.5, 0.0, 0.0, 0.0],  # frozen runs ignore what follows
    ]
    state = divergence_init(4, torch.device("cpu"), torch.float64)
    for step, values in enumerate(losses):
        state = divergence_observe(state, torch.tensor(values, dtype=torch.float64), step, factor=10.0)
    report = divergence_report(state)
    assert set(report) == {1, 2, 3}
    assert report[1] == Divergence(2, 21.0, 19.0, "loss 10.5 times its first batch loss")
    assert report[2].step == 1 and math.isnan(report[2].loss) and report[2].last_finite_loss == 0.0
    assert report[2].reason == "non-finite loss"
    assert report[3] == Divergence(3, math.inf, 1e30, "non-finite loss")
    assert state.frozen.tolist() == [False, True, True, True]
