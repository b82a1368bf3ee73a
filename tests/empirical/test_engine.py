"""Tests of empirical.engine.BatchedTrainer against independent references.

The reference for a run is the most ordinary PyTorch loop: the plain module from
``build_module(spec, seed)``, ``torch.optim.AdamW`` / ``torch.optim.SGD`` and a
``DataLoader(shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed))``.
Tolerances: float64 runs agree to 1e-10 (only the summation order of the matrix products differs,
about 1e-16 relative per step); float32 runs to a few 1e-4 after 30 steps, the drift of float32
reassociation differences through Adam's normalised steps (each differing element moves by at most
lr per step, so the bound 30 * lr * 10 is safe and still far below the 1e-2-scale changes training
makes)."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ncgrok.empirical.engine import BatchedTrainer, RunConfig, log_schedule, select_device
from ncgrok.empirical.models import ModelSpec, build_module

pytestmark = pytest.mark.usefixtures("single_thread")

MLP = ModelSpec(arch="mlp", input_shape=(1, 6, 6), width=16, depth=4, num_classes=4)
CNN = ModelSpec(arch="cnn", input_shape=(1, 6, 6), width=2, hidden_features=8, num_classes=4)
TRANSFORMER = ModelSpec(arch="transformer", input_shape=(1, 4, 4), width=8, heads=2, ff_width=12, patch_size=2, num_classes=4)
RESNET = ModelSpec(arch="resnet18", input_shape=(3, 4, 4), width=2, num_classes=4)
# Power et al.'s modtransformer in miniature: two causal blocks, LayerNorm after each residual sum
POWER = ModelSpec(arch="modtransformer", input_shape=(3, 5), width=8, heads=2, ff_width=12, num_classes=4, layers=2,
                  layer_norm="post")





RUNS = [
    RunConfig(seed=0, lr=1e-3, weight_decay=0.01),
    RunConfig(seed=1, lr=2e-3, weight_decay=0.3),
    RunConfig(seed=2, lr=1e-3, weight_decay=0.0),
    RunConfig(seed=0, lr=5e-4, weight_decay=0.01),
]


def _data(spec, n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *spec.input_shape, generator=g)
    y = torch.randint(0, spec.num_classes, (n,), generator=g)
    return x, y


def _reference(spec, run, x, y, steps, *, optimizer, batch_size, dtype, reduction="sum", momentum=0.0):
    """Train one run alone with torch.optim and a seeded DataLoader."""
    model = build_module(spec, run.seed, dtype=dtype)
    if optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=run.lr, weight_decay=run.weight_decay, momentum=momentum)
    loader = DataLoader(
        TensorDataset(x.to(dtype), y),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(run.seed),
    )
    done = 0
    while done < steps:
        for xb, yb in loader:
            target = F.one_hot(yb, spec.num_classes).to(dtype)
            loss = F.mse_loss(model(xb), target, reduction=reduction)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return model


def _assert_runs_match(trainer, refs, atol, rtol, loose=None):
    """``loose``: {name: (index, atol)} entries compared with their own tolerance."""
    loose = loose or {}
    stacked = trainer.named_parameters()
    for r, ref in enumerate(refs):
        for name, p in ref.named_parameters():
            got, want = stacked[name][r].clone(), p.detach().clone()
            if name in loose:
                index, loose_atol = loose[name]
                torch.testing.assert_close(got[index], want[index], atol=loose_atol, rtol=0)
                got[index] = want[index]
            torch.testing.assert_close(got, want, atol=atol, rtol=rtol, msg=f"run {r} {name}")
        for name, b in ref.named_buffers():
            got = dict(zip(trainer.buffer_names, trainer._buffers))[name][r]
            if b.dtype.is_floating_point:
                torch.testing.assert_close(got, b, atol=atol, rtol=rtol)
            else:
                assert torch.equal(got, b)


# ----------------------------------------------------------------------------- batched == alone


@pytest.mark.cpu_kernels
@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_mlp_adamw_batched_equals_alone_float64(impl):
    x, y = _data(MLP)
    steps = 50  # 5 epochs of 12 batches of 10 / ... crosses epoch boundaries
    trainer = BatchedTrainer(MLP, RUNS, x, y, batch_size=10, dtype=torch.float64, device="cpu", optimizer_impl=impl)
    trainer.train(steps)
    assert trainer.step == steps
    refs = [_reference(MLP, run, x, y, steps, optimizer="adamw", batch_size=10, dtype=torch.float64) for run in RUNS]
    _assert_runs_match(trainer, refs, atol=1e-10, rtol=1e-10)


@pytest.mark.cpu_kernels
def test_mlp_adamw_batched_equals_alone_float32_and_mean_loss():
    x, y = _data(MLP, n=64)  # 64 % 10 != 0: the last 4 indices of each epoch are skipped
    steps = 30
    trainer = BatchedTrainer(MLP, RUNS, x, y, batch_size=10, loss_reduction="mean", device="cpu")
    trainer.train(steps)
    refs = [
        _reference(MLP, run, x, y, steps, optimizer="adamw", batch_size=10, dtype=torch.float32, reduction="mean")
        for run in RUNS
    ]
    _assert_runs_match(trainer, refs, atol=3e-4 * 10 / 3, rtol=1e-4)


@pytest.mark.cpu_kernels
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_mlp_sgd_batched_equals_alone_float64(momentum):
    x, y = _data(MLP)
    runs = [RunConfig(0, 1e-3, 0.01), RunConfig(1, 3e-3, 0.0), RunConfig(2, 1e-3, 0.1)]
    spec = ModelSpec(arch="mlp", input_shape=(1, 6, 6), width=16, depth=3, num_classes=4, init_scale=1.0)
    trainer = BatchedTrainer(
        spec, runs, x, y, optimizer="sgd", momentum=momentum, batch_size=12, dtype=torch.float64, device="cpu"
    )
    trainer.train(40)
    refs = [
        _reference(spec, run, x, y, 40, optimizer="sgd", batch_size=12, dtype=torch.float64, momentum=momentum)
        for run in runs
    ]
    _assert_runs_match(trainer, refs, atol=1e-10, rtol=1e-10)


@pytest.mark.cpu_kernels
@pytest.mark.parametrize("spec", [CNN, TRANSFORMER, POWER, dataclasses.replace(POWER, layer_norm="none")],
                         ids=["cnn", "transformer", "modtransformer-2-post", "modtransformer-2"])
def test_vmap_architectures_batched_equals_alone_float64(spec):
    x, y = _data(spec, n=40)
    runs = RUNS[:3]
    trainer = BatchedTrainer(spec, runs, x, y, batch_size=8, dtype=torch.float64, device="cpu")
    assert trainer.backend == "vmap"
    trainer.train(12)
    refs = [_reference(spec, run, x, y, 12, optimizer="adamw", batch_size=8, dtype=torch.float64) for run in runs]
    # The key bias has gradient exactly 0 in exact arithmetic (softmax ignores a per-query constant),
    # so both implementations see rounding noise (~1e-14) there, which Adam turns into steps of about
    # lr * noise / eps ~ 1e-9 that differ between them; that slice (of every attention) is compared to 1e-6.
    width = spec.resolved_width
    loose = {name: (slice(width, 2 * width), 1e-6) for name in trainer.param_names if name.endswith("attn.qkv.bias")}
    _assert_runs_match(trainer, refs, atol=1e-10, rtol=1e-10, loose=loose)


@pytest.mark.cpu_kernels
def test_resnet_loop_backend_equals_alone_including_batchnorm_buffers():
    x, y = _data(RESNET, n=16)
    runs = RUNS[:2]
    trainer = BatchedTrainer(RESNET, runs, x, y, batch_size=8, dtype=torch.float64, device="cpu")
    assert trainer.backend == "loop"
    trainer.train(3)
    refs = [_reference(RESNET, run, x, y, 3, optimizer="adamw", batch_size=8, dtype=torch.float64) for run in runs]
    _assert_runs_match(trainer, refs, atol=1e-10, rtol=1e-10)
    # eval forward uses the running statistics, like the plain module in eval mode
    logits = trainer.forward(x[:5])
    for r, ref in enumerate(refs):
        torch.testing.assert_close(logits[r], ref.eval()(x[:5].double()), atol=1e-10, rtol=1e-10)


# ----------------------------------------------------------------------------- optimizer bit-exactness


def _random_grads(trainer, gen):
    for g in trainer._grads:
        g.copy_(torch.randn(g.shape, generator=gen, dtype=g.dtype) * 10 ** torch.randint(-3, 2, (), generator=gen))


# runs sharing (lr, weight decay): consecutive ones are updated as one (k, ...) slice, scattered ones
# run by run; both must equal the per-run update
GROUPED_RUNS = [
    RunConfig(seed=0, lr=1e-3, weight_decay=0.1),
    RunConfig(seed=1, lr=1e-3, weight_decay=0.1),
    RunConfig(seed=2, lr=1e-3, weight_decay=0.1),
    RunConfig(seed=3, lr=2e-3, weight_decay=0.01),
    RunConfig(seed=4, lr=2e-3, weight_decay=0.3),
    RunConfig(seed=5, lr=2e-3, weight_decay=0.01),
]


def _assert_steps_bitwise(trainer, refs, opts, trainer_step, *, steps, seed):
    """Feed the same random gradients to the trainer and to one torch.optim optimizer per run for
    ``steps`` steps, then require every parameter of every run to be equal bit for bit."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        _random_grads(trainer, gen)
        for r, (m, opt) in enumerate(zip(refs, opts)):
            for p, g in zip(m.parameters(), trainer._grads):
                p.grad = g[r].clone()
            opt.step()
        with torch.no_grad():
            trainer_step()
        trainer.step += 1
    stacked = trainer.named_parameters()
    for r, m in enumerate(refs):
        for name, p in m.named_parameters():
            assert torch.equal(stacked[name][r], p.detach()), (r, name)


@pytest.mark.cpu_kernels
@pytest.mark.parametrize("impl, fused", [("foreach", False), ("fused", True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("runs", [RUNS, GROUPED_RUNS], ids=["distinct", "grouped"])
def test_adamw_step_is_bitwise_torch_adamw(impl, fused, dtype, runs):
    """Given identical gradients, the stacked update is torch.optim.AdamW's update bit for bit."""
    x, y = _data(MLP)
    trainer = BatchedTrainer(MLP, runs, x, y, batch_size=10, dtype=dtype, device="cpu", optimizer_impl=impl,
                             betas=(0.8, 0.99), eps=1e-6)
    refs = [build_module(MLP, run.seed, dtype=dtype) for run in runs]
    opts = [
        torch.optim.AdamW(m.parameters(), lr=run.lr, weight_decay=run.weight_decay, betas=(0.8, 0.99), eps=1e-6,
                          foreach=False, fused=fused or None)
        for m, run in zip(refs, runs)
    ]
    _assert_steps_bitwise(trainer, refs, opts, trainer._apply_update, steps=5, seed=0)


@pytest.mark.cpu_kernels
@pytest.mark.parametrize("runs", [RUNS, GROUPED_RUNS], ids=["distinct", "grouped"])
def test_sgd_step_is_bitwise_torch_sgd(runs):
    x, y = _data(MLP)
    trainer = BatchedTrainer(MLP, runs, x, y, optimizer="sgd", momentum=0.9, batch_size=10, device="cpu")
    refs = [build_module(MLP, run.seed) for run in runs]
    opts = [
        torch.optim.SGD(m.parameters(), lr=run.lr, weight_decay=run.weight_decay, momentum=0.9)
        for m, run in zip(refs, runs)
    ]
    _assert_steps_bitwise(trainer, refs, opts, trainer._apply_update, steps=4, seed=1)


# ----------------------------------------------------------------------------- init, order, resume


def test_initial_runs_are_build_module_of_their_seed():
    x, y = _data(MLP)
    trainer = BatchedTrainer(MLP, RUNS, x, y, batch_size=10, device="cpu")
    for r, run in enumerate(RUNS):
        ref = dict(build_module(MLP, run.seed).named_parameters())
        mod = trainer.run_module(r)
        for name, p in mod.named_parameters():
            assert torch.equal(p, ref[name])
            assert torch.equal(trainer.named_parameters()[name][r], ref[name])


def test_batch_order_is_seeded_dataloader_order():
    n, b = 23, 5
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    spec = ModelSpec(arch="mlp", input_shape=(1,), width=2, depth=1, num_classes=2)
    trainer = BatchedTrainer(spec, [RunConfig(4, 0.0, 0.0), RunConfig(9, 0.0, 0.0)], x, torch.zeros(n, dtype=torch.long),
                             batch_size=b, device="cpu")
    got = torch.stack([trainer._next_indices().view(2, b) for _ in range(4 * 200 + 3)])  # crosses chunk ends
    for r, seed in enumerate((4, 9)):
        loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=b, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(seed))
        expected = []
        while len(expected) < got.shape[0]:
            expected += [batch[0] for batch in loader]
        assert torch.equal(got[:, r], torch.stack(expected[: got.shape[0]]))


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["step"] == sb["step"]
    assert all(torch.isfinite(p).all() for p in sa["params"].values())
    for key in ("params", "buffers"):
        for n in sa[key]:
            assert torch.equal(sa[key][n], sb[key][n]), n
    for k in sa["optimizer"]:
        for n in sa["optimizer"][k]:
            assert torch.equal(sa["optimizer"][k][n], sb["optimizer"][k][n]), (k, n)
    assert all(torch.equal(u, v) for u, v in zip(sa["batch_order"]["generator_states"], sb["batch_order"]["generator_states"]))


@pytest.mark.cpu_kernels
@pytest.mark.parametrize(
    "spec, kwargs",
    [(MLP, {}), (dataclasses.replace(MLP, init_scale=1.0), {"optimizer": "sgd", "momentum": 0.5}), (MLP, {"optimizer_impl": "foreach"}), (CNN, {})],
    ids=["mlp-adamw", "mlp-sgd", "mlp-foreach", "cnn"],
)
def test_resume_equals_uninterrupted(tmp_path, spec, kwargs):
    x, y = _data(spec, n=50)  # 5 batches per epoch; 37 stops mid-epoch
    make = lambda: BatchedTrainer(spec, RUNS[:3], x, y, batch_size=10, device="cpu", **kwargs)
    straight = make()
    straight.train(60)

    first = make()
    first.train(37)
    path = tmp_path / "ckpt.pt"
    torch.save(first.state_dict(), path)
    first.train(23)  # continuing the same object is also uninterrupted
    _assert_same_state(first, straight)

    resumed = make()
    resumed.load_state_dict(torch.load(path, weights_only=True))
    assert resumed.step == 37
    resumed.train(23)
    _assert_same_state(resumed, straight)

    in_memory = make()
    mid = make()
    mid.train(37)
    in_memory.load_state_dict(mid.state_dict())
    in_memory.train(23)
    _assert_same_state(in_memory, straight)


def test_resume_from_step_zero_and_mismatch_errors():
    x, y = _data(MLP)
    a = BatchedTrainer(MLP, RUNS[:2], x, y, batch_size=10, device="cpu")
    b = BatchedTrainer(MLP, RUNS[:2], x, y, batch_size=10, device="cpu")
    b.load_state_dict(a.state_dict())
    a.train(7)
    b.train(7)
    _assert_same_state(a, b)
    other_runs = BatchedTrainer(MLP, RUNS[1:3], x, y, batch_size=10, device="cpu")
    with pytest.raises(ValueError, match="runs"):
        other_runs.load_state_dict(a.state_dict())
    other_opt = BatchedTrainer(MLP, RUNS[:2], x, y, batch_size=20, device="cpu")
    with pytest.raises(ValueError, match="settings"):
        other_opt.load_state_dict(a.state_dict())


# ----------------------------------------------------------------------------- evaluation API


@pytest.mark.parametrize("spec", [MLP, CNN, TRANSFORMER, RESNET, POWER],
                         ids=["mlp", "cnn", "transformer", "resnet", "modtransformer-2"])
def test_logits_are_representation_times_last_layer(spec):
    x, y = _data(spec, n=30)
    trainer = BatchedTrainer(spec, RUNS[:3], x, y, batch_size=10, dtype=torch.float64, device="cpu")
    trainer.train(3)
    logits, rep = trainer.forward_with_representation(x, chunk_size=7)
    w, b = trainer.last_layer()
    assert logits.shape == (3, 30, spec.num_classes) and rep.shape[:2] == (3, 30) and w.shape == (3, spec.num_classes, rep.shape[2])
    torch.testing.assert_close(logits, rep @ w.transpose(1, 2) + b.unsqueeze(1), rtol=1e-12, atol=1e-10)
    assert torch.equal(trainer.forward(x, chunk_size=7), logits)
    assert trainer.forward(x[:0]).shape == (3, 0, spec.num_classes)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size"):
            trainer.forward(x, chunk_size=bad)
    whole = trainer.forward_with_representation(x)[1]  # one chunk
    assert torch.equal(whole, rep) or torch.allclose(whole, rep, rtol=1e-13, atol=1e-12)
    for r in range(3):  # each run's plain module agrees
        module = trainer.run_module(r).eval()
        o, h = module(x.double(), with_representation=True)
        torch.testing.assert_close(logits[r], o, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(rep[r], h, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spec", [dataclasses.replace(MLP, depth=1), dataclasses.replace(MLP, depth=3), CNN],
                         ids=["mlp-1", "mlp-3", "cnn"])
def test_evaluate_chunk_is_the_forward_bit_for_bit(spec):
    """``evaluate_chunk`` (the MLP's forward into reused buffers; the plain forward elsewhere) equals
    ``forward_with_representation`` exactly in float32, also for an empty chunk; bad input is refused."""
    x, y = _data(spec, n=30)
    trainer = BatchedTrainer(spec, RUNS[:3], x, y, batch_size=10, device="cpu")
    trainer.train(2)
    for chunk in (x[:17], x[17:], x[:0]):
        logits, features = trainer.evaluate_chunk(chunk)
        expected = trainer.forward_with_representation(chunk)
        assert logits.shape == expected[0].shape and features.shape == expected[1].shape
        assert torch.equal(logits, expected[0]) and torch.equal(features, expected[1])
    with pytest.raises(ValueError, match="x must have shape"):
        trainer.evaluate_chunk(x[:, :, :3])


def test_norms_and_linear_weights():
    x, y = _data(MLP)
    trainer = BatchedTrainer(MLP, RUNS, x, y, batch_size=10, dtype=torch.float64, device="cpu")
    trainer.train(2)
    for r in range(len(RUNS)):
        m = trainer.run_module(r)
        total = torch.sqrt(sum((p**2).sum() for p in m.parameters()))
        torch.testing.assert_close(trainer.weight_norm()[r], total, rtol=1e-12, atol=0)
        head = torch.sqrt((m.linears[-1].weight ** 2).sum() + (m.linears[-1].bias ** 2).sum())
        torch.testing.assert_close(trainer.last_layer_norm()[r], head, rtol=1e-12, atol=0)
        ws = trainer.linear_weights()
        assert [tuple(w.shape[1:]) for w in ws] == [(16, 36), (16, 16), (16, 16), (4, 16)]
        for w, layer in zip(ws, m.linears):
            assert torch.equal(w[r], layer.weight)


# ----------------------------------------------------------------------------- schedule, device, learning


def _schedule_by_definition(total):
    interval = total // 150
    return [
        t
        for t in range(total + 1)
        if t < 30 or (t < 150 and t % 10 == 0) or (t >= 150 and t % interval == 0) or t == total
    ]


def test_log_schedule_paper_length():
    s = log_schedule(100_000)
    assert s[:30] == list(range(30))
    assert s[30:42] == [30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140]
    assert s[42:192] == [666 * k for k in range(1, 151)]
    assert s[-2:] == [99_900, 100_000]
    assert len(s) == 193
    assert s == _schedule_by_definition(100_000)


@pytest.mark.parametrize("total", [0, 1, 5, 29, 30, 35, 149, 150, 151, 299, 300, 1000, 4567])
def test_log_schedule_small_totals(total):
    s = log_schedule(total)
    assert s == _schedule_by_definition(total)
    assert s[0] == 0 and s[-1] == total and s == sorted(set(s))


def test_log_schedule_explicit_values():
    assert log_schedule(0) == [0]
    assert log_schedule(35) == list(range(30)) + [30, 35]
    assert log_schedule(300)[42:46] == [150, 152, 154, 156]
    with pytest.raises(ValueError):
        log_schedule(-1)


def test_select_device():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError):
        select_device("nonsense")


def test_input_validation():
    x, y = _data(MLP)
    with pytest.raises(ValueError, match="optimizer"):
        BatchedTrainer(MLP, RUNS, x, y, optimizer="adam", device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        BatchedTrainer(MLP, RUNS, x, y, batch_size=1000, device="cpu")
    with pytest.raises(ValueError, match="train_y"):
        BatchedTrainer(MLP, RUNS, x, y.float(), batch_size=10, device="cpu")
    with pytest.raises(ValueError, match="labels"):
        BatchedTrainer(MLP, RUNS, x, y + 10, batch_size=10, device="cpu")
    with pytest.raises(ValueError, match="runs"):
        BatchedTrainer(MLP, [], x, y, batch_size=10, device="cpu")
    with pytest.raises(ValueError, match="seed"):
        RunConfig(seed=-1, lr=1e-3, weight_decay=0.0)
    numpy_run = RunConfig(seed=np.int64(3), lr=np.float64(1e-3), weight_decay=np.float64(0.1))
    assert type(numpy_run.seed) is int and type(numpy_run.lr) is float and numpy_run == RunConfig(3, 1e-3, 0.1)
    with pytest.raises(ValueError, match="BatchNorm"):
        BatchedTrainer(RESNET, RUNS, *_data(RESNET), batch_size=10, device="cpu", backend="vmap")


@pytest.mark.parametrize("changes, match", [
    (dict(model_spec="mlp"), "model_spec must be"),
    (dict(runs=[(0, 1e-3, 0.0)]), "runs must be"),
    (dict(loss="hinge"), "loss"),
    (dict(dtype=torch.float16), "dtype must be"),
    (dict(betas=(0.9, 1.0)), "betas must be"),
    (dict(eps=-1.0), "eps must be"),
    (dict(momentum=1.0), "momentum must be"),
    (dict(divergence_factor=0.5), "divergence_factor must be"),
    (dict(device="nonsense"), "device must be"),
    (dict(backend="jit"), "backend must be"),
    (dict(model_spec=CNN, train_x=_data(CNN)[0], backend="mlp"), "backend='mlp' needs arch='mlp'"),
    (dict(train_x=[[0.0] * 36] * 60), "train_x and train_y must be torch tensors"),
    (dict(train_x=torch.zeros(60, 35)), "train_x must have shape"),
    (dict(model_spec=CNN, train_x=torch.zeros(60, 36)), "train_x must have shape"),
    (dict(train_y=torch.zeros(59, dtype=torch.long)), "train_y must be an integer tensor"),
    (dict(batch_size=0), "batch_size must be"),
])
def test_each_bad_argument_is_named(changes, match):
    x, y = _data(MLP)
    arguments = dict(model_spec=MLP, runs=RUNS, train_x=x, train_y=y, batch_size=10, device="cpu") | changes
    with pytest.raises(ValueError, match=match):
        BatchedTrainer(arguments.pop("model_spec"), arguments.pop("runs"), arguments.pop("train_x"),
                       arguments.pop("train_y"), **arguments)


def test_mlp_learns_separable_task():
    """Four well-separated Gaussian classes in 20 dimensions: 200 AdamW steps of the MLP with standard
    init fit the training set far above chance (25%; with x8 init fitting takes thousands of steps,
    the slow regime the paper studies)."""
    gen = torch.Generator().manual_seed(0)
    k, n, d = 4, 200, 20
    centers = 3 * torch.randn(k, d, generator=gen)
    y = torch.arange(n) % k
    x = centers[y] + torch.randn(n, d, generator=gen)
    spec = ModelSpec(arch="mlp", input_shape=(d,), width=32, depth=3, num_classes=k, init_scale=1.0)
    trainer = BatchedTrainer(spec, [RunConfig(0, 1e-3, 0.01), RunConfig(1, 1e-3, 0.1)], x, y, batch_size=20, device="cpu")
    before = (trainer.forward(x).argmax(-1) == y).float().mean(dim=1)
    trainer.train(200)
    after = (trainer.forward(x).argmax(-1) == y).float().mean(dim=1)
    assert (after >= 0.9).all(), (before, after)
