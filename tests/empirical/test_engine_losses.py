"""The engine's cross-entropy loss and AdamW betas against torch's own, on every backend.

References are independent computations: ``torch.nn.functional.cross_entropy`` with autograd on the
plain module of a run (``BatchedTrainer.run_module``), and a run trained alone with
``torch.optim.AdamW`` on the batches of a seeded ``DataLoader`` (the engine's batch-order contract).
float64 throughout: the engine and the reference differ only in the summation order of the matrix
products (about 1e-16 relative per operation), so 1e-10 after a few steps is safe and far below any
real difference (a wrong gradient scale or a missing softmax moves the values at the 1e-3 level).
"""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ncgrok.empirical.engine import BatchedTrainer, RunConfig
from ncgrok.empirical.losses import batch_loss, gradient_scale, per_example_loss
from ncgrok.empirical.models import ModelSpec, build_module

pytestmark = pytest.mark.usefixtures("single_thread")

MLP = ModelSpec(arch="mlp", input_shape=(1, 6, 6), width=16, depth=3, num_classes=4)
CNN = ModelSpec(arch="cnn", input_shape=(1, 6, 6), width=2, hidden_features=8, num_classes=4)
MODULAR = ModelSpec(arch="modtransformer", input_shape=(3, 5), num_classes=4, width=8, heads=2, ff_width=12)
RESNET = ModelSpec(arch="resnet18", input_shape=(3, 4, 4), width=2, num_classes=4)
RUNS = [RunConfig(seed=0, lr=1e-3, weight_decay=0.01), RunConfig(seed=1, lr=2e-3, weight_decay=0.3)]
# (spec, backend): the hand-written MLP backward, vmap over functional_call, the per-run autograd loop
BACKENDS = [(MLP, "mlp"), (MLP, "vmap"), (MLP, "loop"), (CNN, "vmap"), (MODULAR, "vmap"), (RESNET, "loop")]


def _data(spec, n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *spec.input_shape, generator=g, dtype=torch.float64)
    y = torch.arange(n) % spec.num_classes
    return x, y


def _case_id(case):
    return f"{case[0].arch}-{case[1]}"


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", BACKENDS, ids=_case_id)
def test_cross_entropy_loss_and_gradients_equal_torch(case, reduction):
    spec, backend = case
    x, y = _data(spec)
    trainer = BatchedTrainer(spec, RUNS, x, y, batch_size=len(y), loss="cross-entropy", loss_reduction=reduction,
                             dtype=torch.float64, device="cpu", backend=backend)
    modules = [trainer.run_module(r) for r in range(len(RUNS))]  # before the batch norm buffers move
    trainer._xb.copy_(trainer._x.expand(len(RUNS), *trainer._x.shape))  # the whole set as every run's batch
    trainer._yb.copy_(F.one_hot(y, spec.num_classes).double().expand(len(RUNS), -1, -1))
    with torch.no_grad():
        trainer._compute_gradients()
    for r, module in enumerate(modules):
        loss = F.cross_entropy(module(x), y, reduction=reduction)
        grads = torch.autograd.grad(loss, list(module.parameters()))
        assert float(trainer._losses[r]) == pytest.approx(float(loss.detach()), rel=1e-12)
        for (name, _), want in zip(module.named_parameters(), grads):
            got = trainer._grads[trainer.param_names.index(name)][r]
            torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10, msg=f"run {r} {name}")


def _alone(spec, run, x, y, steps, batch_size, betas):
    """Run ``run`` alone: F.cross_entropy (batch mean), torch.optim.AdamW, the seeded DataLoader order."""
    model = build_module(spec, run.seed, dtype=torch.float64)
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=run.weight_decay, betas=betas)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(run.seed))
    done = 0
    while done < steps:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                return model
    return model


@pytest.mark.cpu_kernels
@pytest.mark.parametrize("case", [c for c in BACKENDS if c[0] is not RESNET], ids=_case_id)
def test_cross_entropy_training_with_betas_equals_torch_alone(case):
    spec, backend = case
    x, y = _data(spec)
    betas = (0.9, 0.98)
    trainer = BatchedTrainer(spec, RUNS, x, y, batch_size=8, loss="cross-entropy", loss_reduction="mean", betas=betas,
                             dtype=torch.float64, device="cpu", backend=backend)
    trainer.train(7)  # crosses an epoch boundary (3 batches per epoch)
    stacked = trainer.named_parameters()
    for r, run in enumerate(RUNS):
        for name, want in _alone(spec, run, x, y, 7, 8, betas).named_parameters():
            got = stacked[name][r].clone()
            want = want.detach().clone()
            if name == "attn.qkv.bias":  # the key bias: exact gradient 0, rounding noise amplified by Adam
                key = slice(spec.resolved_width, 2 * spec.resolved_width)
                torch.testing.assert_close(got[key], want[key], atol=1e-6, rtol=0)
                got[key] = want[key]
            torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10, msg=f"run {r} {name}")


def test_betas_change_the_trajectory():
    """The betas reach the optimizer: (0.9, 0.98) and the default (0.9, 0.999) part after a few steps."""
    x, y = _data(MLP)
    params = []
    for betas in ((0.9, 0.98), (0.9, 0.999)):
        trainer = BatchedTrainer(MLP, RUNS[:1], x, y, batch_size=8, betas=betas, dtype=torch.float64, device="cpu")
        trainer.train(5)
        params.append(trainer.named_parameters()["linears.0.weight"].clone())
    assert not torch.allclose(params[0], params[1], rtol=1e-6, atol=0)


def test_loss_functions_by_hand():
    """Two examples, three classes, against numbers written out."""
    logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64)
    log_z = torch.log(torch.tensor(2.0, dtype=torch.float64).exp() + 2)
    per_example = torch.stack([torch.log(torch.tensor(3.0, dtype=torch.float64)), log_z])
    torch.testing.assert_close(per_example_loss("cross-entropy", logits, targets), per_example, rtol=1e-15, atol=0)
    assert float(batch_loss("cross-entropy", "mean", logits, targets)) == pytest.approx(float(per_example.mean()), rel=1e-15)
    assert float(batch_loss("cross-entropy", "sum", logits, targets)) == pytest.approx(float(per_example.sum()), rel=1e-15)
    # squared error: (1 + 0 + 0) + (4 + 1 + 0)
    assert float(batch_loss("mse", "sum", logits, targets)) == 6.0
    assert float(batch_loss("mse", "mean", logits, targets)) == 1.0
    assert gradient_scale("cross-entropy", "mean", 2, 3) == 0.5 and gradient_scale("mse", "mean", 2, 3) == 2 / 6


@pytest.mark.parametrize("kwargs, match", [({"loss": "hinge"}, "loss must be one of"),
                                           ({"loss": "cross-entropy", "loss_reduction": "avg"}, "loss_reduction")])
def test_unknown_loss_is_refused(kwargs, match):
    x, y = _data(MLP)
    with pytest.raises(ValueError, match=match):
        BatchedTrainer(MLP, RUNS, x, y, batch_size=8, device="cpu", **kwargs)


def test_cross_entropy_checkpoint_round_trip_and_loss_mismatch():
    x, y = _data(MLP)
    trainer = BatchedTrainer(MLP, RUNS, x, y, batch_size=8, loss="cross-entropy", dtype=torch.float64, device="cpu")
    trainer.train(3)
    state = trainer.state_dict()
    resumed = BatchedTrainer(MLP, RUNS, x, y, batch_size=8, loss="cross-entropy", dtype=torch.float64, device="cpu")
    resumed.load_state_dict(state)
    trainer.train(4)
    resumed.train(4)
    for a, b in zip(trainer._params, resumed._params):
        assert torch.equal(a, b)
    squared = BatchedTrainer(MLP, RUNS, x, y, batch_size=8, dtype=torch.float64, device="cpu")
    with pytest.raises(ValueError, match="different settings"):
        squared.load_state_dict(state)
