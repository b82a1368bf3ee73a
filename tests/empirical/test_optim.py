"""empirical.optim against torch.optim, bit for bit, on plain stacked tensors.

The reference for run r is the ordinary torch optimizer on that run's own tensors (``p[r]``), fed the
same gradients. Shapes include sizes that are not multiples of a vector register (10, 3 x 7, 5): the
fused kernel computes such tails with scalar code, and a kernel call over several runs at once puts
run boundaries inside vector registers, which changes the rounding of a few elements in a few
hundred steps (the reason the fused AdamW is called once per run).
"""

import math

import pytest
import torch

from ncgrok.empirical.optim import (
    AdamWState,
    SGDState,
    adamw_init,
    adamw_update,
    group_runs,
    sgd_init,
    sgd_update,
)

pytestmark = [pytest.mark.cpu_kernels, pytest.mark.usefixtures("single_thread")]

SHAPES = [(10,), (3, 7), (16, 4), (5,)]
# runs sharing (lr, weight decay): 0-1 and 3-4 consecutive, 2 and 5 scattered
LRS = [1e-3, 1e-3, 3e-3, 2e-3, 2e-3, 3e-3]
DECAYS = [0.1, 0.1, 0.0, 0.03, 0.03, 0.0]
BETAS, EPS = (0.8, 0.99), 1e-6




def _stacked(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn((len(LRS),) + s, generator=gen, dtype=dtype) for s in SHAPES]


def _random_gradients(grads, gen):
    """Gradients of mixed magnitudes (1e-3 .. 10), written in place like a backward pass would."""
    for g in grads:
        scale = 10.0 ** torch.randint(-3, 2, (), generator=gen).item()
        g.copy_(torch.randn(g.shape, generator=gen, dtype=g.dtype) * scale)


def _run_against_torch(params, grads, state, update, make_optimizer, *, steps, seed, frozen=None):
    """Step the stacked state and one torch optimizer per run on copies; both see the same gradients."""
    runs = params[0].shape[0]
    copies = [[p[r].clone().requires_grad_(True) for p in params] for r in range(runs)]
    optimizers = [make_optimizer(copies[r], r) for r in range(runs)]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        _random_gradients(grads, gen)
        for r, opt in enumerate(optimizers):
            for c, g in zip(copies[r], grads):
                c.grad = g[r].clone()
            opt.step()
        with torch.no_grad():
            state = update(params, grads, state, frozen=frozen)
    return state, copies, optimizers


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_adamw_is_bitwise_torch_adamw(impl, dtype):
    params = _stacked(dtype)
    grads = [torch.zeros_like(p) for p in params]
    state = adamw_init(params, grads, lrs=LRS, weight_decays=DECAYS, betas=BETAS, eps=EPS, impl=impl)
    assert state.plan.impl == impl and state.count == 0

    def make(tensors, r):
        kind = {"fused": True} if impl == "fused" else {"foreach": False}
        return torch.optim.AdamW(tensors, lr=LRS[r], weight_decay=DECAYS[r], betas=BETAS, eps=EPS, **kind)

    state, copies, optimizers = _run_against_torch(params, grads, state, adamw_update, make, steps=300, seed=1)
    assert isinstance(state, AdamWState) and state.count == 300
    for r, (tensors, opt) in enumerate(zip(copies, optimizers)):
        for i, c in enumerate(tensors):
            assert torch.equal(params[i][r], c.detach()), (r, i)
            assert torch.equal(state.exp_avg[i][r], opt.state[c]["exp_avg"]), (r, i)
            assert torch.equal(state.exp_avg_sq[i][r], opt.state[c]["exp_avg_sq"]), (r, i)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("impl, momentum", [("fused", 0.0), ("foreach", 0.0), ("foreach", 0.9)])
def test_sgd_is_bitwise_torch_sgd(impl, momentum, dtype):
    """The default torch.optim.SGD (single-tensor), with both implementations."""
    params = _stacked(dtype)
    grads = [torch.zeros_like(p) for p in params]
    state = sgd_init(params, grads, lrs=LRS, weight_decays=DECAYS, momentum=momentum, impl=impl)
    assert state.plan.impl == impl

    def make(tensors, r):
        return torch.optim.SGD(tensors, lr=LRS[r], weight_decay=DECAYS[r], momentum=momentum)

    state, copies, optimizers = _run_against_torch(params, grads, state, sgd_update, make, steps=100, seed=2)
    assert isinstance(state, SGDState) and state.count == 100
    for r, (tensors, opt) in enumerate(zip(copies, optimizers)):
        for i, c in enumerate(tensors):
            assert torch.equal(params[i][r], c.detach()), (r, i)
            if momentum:
                assert torch.equal(state.momentum_buffer[i][r], opt.state[c]["momentum_buffer"]), (r, i)


def _all_tensors(params, state):
    return [t.clone() for t in params + [b for bufs in state.buffers.values() for b in bufs]]


@pytest.mark.parametrize(
    "init, update, options",
    [
        (adamw_init, adamw_update, {"impl": "fused"}),
        (adamw_init, adamw_update, {"impl": "foreach"}),
        (sgd_init, sgd_update, {"impl": "fused"}),
        (sgd_init, sgd_update, {"impl": "foreach"}),
        (sgd_init, sgd_update, {"momentum": 0.9}),
    ],
    ids=["adamw-fused", "adamw-foreach", "sgd-fused", "sgd-foreach", "sgd-momentum"],
)
def test_frozen_runs_stay_unchanged_and_the_others_are_unaffected(init, update, options):
    """Runs 1 and 4 (one of each consecutive pair) frozen after 3 steps, with non-finite gradients from then on: they keep every
    parameter and buffer bit for bit; the other runs equal an unmasked twin step for step."""
    masked_params, plain_params = _stacked(torch.float32), _stacked(torch.float32)
    masked_grads = [torch.zeros_like(p) for p in masked_params]
    plain_grads = [torch.zeros_like(p) for p in plain_params]
    masked = init(masked_params, masked_grads, lrs=LRS, weight_decays=DECAYS, **options)
    plain = init(plain_params, plain_grads, lrs=LRS, weight_decays=DECAYS, **options)
    frozen = torch.zeros(len(LRS), dtype=torch.bool)
    gen = torch.Generator().manual_seed(3)
    for step in range(8):
        if step == 3:
            frozen[[1, 4]] = True
            kept = _all_tensors(masked_params, masked)
        _random_gradients(masked_grads, gen)
        for mg, pg in zip(masked_grads, plain_grads):
            pg.copy_(mg)
            if step >= 3:
                mg[1] = math.nan
                mg[4] = math.inf
        masked = update(masked_params, masked_grads, masked, frozen=frozen)
        plain = update(plain_params, plain_grads, plain)
    now, twin = _all_tensors(masked_params, masked), _all_tensors(plain_params, plain)
    for t_now, t_kept, t_twin in zip(now, kept, twin):
        for r in range(len(LRS)):
            expected = t_kept[r] if r in (1, 4) else t_twin[r]
            assert torch.equal(t_now[r], expected), r


def test_group_runs_keeps_first_appearance_order():
    groups = group_runs(LRS, DECAYS)
    assert [(g.lr, g.weight_decay, g.runs) for g in groups] == [(1e-3, 0.1, (0, 1)), (3e-3, 0.0, (2, 5)), (2e-3, 0.03, (3, 4))]


def test_state_is_bound_to_its_tensors_and_inputs_are_checked():
    params = _stacked(torch.float32)
    grads = [torch.zeros_like(p) for p in params]
    state = adamw_init(params, grads, lrs=LRS, weight_decays=DECAYS)
    assert set(state.buffers) == {"exp_avg", "exp_avg_sq"}
    with pytest.raises(ValueError, match="params must be the tensors"):
        adamw_update([p.clone() for p in params], grads, state)
    sgd = sgd_init(params, grads, lrs=LRS, weight_decays=DECAYS)
    assert set(sgd.buffers) == {"momentum_buffer"}
    with pytest.raises(ValueError, match="grads must be the tensors"):
        sgd_update(params, [g.clone() for g in grads], sgd)
    with pytest.raises(ValueError, match="lrs must have one entry per run"):
        adamw_init(params, grads, lrs=LRS[:2], weight_decays=DECAYS)
    with pytest.raises(ValueError, match="weight_decays must be finite"):
        sgd_init(params, grads, lrs=LRS, weight_decays=[0.1, -1.0, 0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="optimizer_impl"):
        adamw_init(params, grads, lrs=LRS, weight_decays=DECAYS, impl="fast")
    with pytest.raises(ValueError, match="momentum"):
        sgd_init(params, grads, lrs=LRS, weight_decays=DECAYS, momentum=1.0)
    with pytest.raises(ValueError, match="optimizer_impl='fused' for sgd needs momentum 0"):
        sgd_init(params, grads, lrs=LRS, weight_decays=DECAYS, momentum=0.9, impl="fused")
    assert sgd_init(params, grads, lrs=LRS, weight_decays=DECAYS, momentum=0.9).plan.impl == "foreach"


def test_fused_adamw_merges_only_tail_free_tensors_of_consecutive_runs():
    """The plan's group calls: a (k, ...) slice for consecutive runs whose per-run size is a multiple of
    MERGE_UNIT ((16, 4) here, for runs 0-1 and 3-4), one view per run for everything else."""
    from ncgrok.empirical.optim import MERGE_UNIT

    params = _stacked(torch.float32)
    grads = [torch.zeros_like(p) for p in params]
    state = adamw_init(params, grads, lrs=LRS, weight_decays=DECAYS, impl="fused")
    calls = state.plan.work.groups
    assert [(c.lr, c.weight_decay) for c in calls] == [(1e-3, 0.1), (3e-3, 0.0), (2e-3, 0.03)]
    merged = [(p.shape[0], p.shape[1:]) for c in calls for p in c.tensors[0] if p.dim() == 3]
    assert merged == [(2, (16, 4)), (2, (16, 4))] and 64 % MERGE_UNIT == 0
    # runs 2 and 5 share a group but are not consecutive: one view per run and tensor
    assert len(calls[1].tensors[0]) == 2 * len(SHAPES)
    # the others: 3 tensors with a tail x 2 runs + 1 slice
    assert len(calls[0].tensors[0]) == len(calls[2].tensors[0]) == 3 * 2 + 1


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT",
                    reason="ATEN_CPU_CAPABILITY=default kernels round the vector and scalar paths alike: "
                           "there a merged call is torch per run, so there is nothing to plant")
def test_a_call_spanning_runs_with_tails_is_not_torch(monkeypatch):
    """The planted violation behind MERGE_UNIT: merging every tensor of consecutive runs (unit 1) puts run
    boundaries inside vector registers, and the bit-for-bit comparison with torch.optim.AdamW catches it
    (AVX2 and AVX-512 kernels)."""
    import ncgrok.empirical.optim as optim

    monkeypatch.setattr(optim, "MERGE_UNIT", 1)
    params = _stacked(torch.float32)
    grads = [torch.zeros_like(p) for p in params]
    state = adamw_init(params, grads, lrs=LRS, weight_decays=DECAYS, betas=BETAS, eps=EPS, impl="fused")

    def make(tensors, r):
        return torch.optim.AdamW(tensors, lr=LRS[r], weight_decay=DECAYS[r], betas=BETAS, eps=EPS, fused=True)

    state, copies, _ = _run_against_torch(params, grads, state, adamw_update, make, steps=300, seed=1)
    differ = [(r, i) for r in range(len(LRS)) for i, c in enumerate(copies[r]) if not torch.equal(params[i][r], c.detach())]
    assert differ, "merging runs with scalar tails was expected to change some element's rounding"
