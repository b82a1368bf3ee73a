"""Tests of empirical.models: architecture shapes, the large-init rule, the representation, and the
batched forms against the plain modules (independent per-run evaluation / autograd)."""

import pytest
import torch
import torch.nn.functional as F

from ncgrok.empirical.models import (
    BatchedMLP,
    ModelSpec,
    apply_large_init,
    build_module,
    functional_forward,
    large_init_parameter_names,
    linear_parameter_names,
    stack_modules,
)

pytestmark = pytest.mark.usefixtures("single_thread")





TINY = {
    "mlp": dict(arch="mlp", input_shape=(1, 8, 8), width=12, depth=4),
    "cnn": dict(arch="cnn", input_shape=(1, 8, 8), width=3, hidden_features=10),
    "transformer": dict(arch="transformer", input_shape=(1, 8, 8), width=16, heads=2, ff_width=24),
    "resnet18": dict(arch="resnet18", input_shape=(3, 8, 8), width=4),
}


def _default_module(spec, seed):
    torch.manual_seed(seed)
    return spec.build()


def test_mlp_layer_shapes_paper_and_released():
    paper = build_module(ModelSpec(arch="mlp"), 0)
    assert [tuple(l.weight.shape) for l in paper.linears] == [(200, 784), (200, 200), (200, 200), (10, 200)]
    released = build_module(ModelSpec(arch="mlp", depth=3), 0)
    assert [tuple(l.weight.shape) for l in released.linears] == [(200, 784), (200, 200), (10, 200)]


def test_mlp_large_init_multiplies_every_parameter_by_8():
    spec = ModelSpec(arch="mlp")
    for seed in (0, 7):
        default = dict(_default_module(spec, seed).named_parameters())
        big = dict(build_module(spec, seed).named_parameters())
        assert len(big) == 8  # 4 weights + 4 biases
        for name, p in big.items():
            assert torch.equal(p.detach(), 8 * default[name].detach()), name


@pytest.mark.parametrize(
    "arch, scaled",
    [
        ("cnn", {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}),
        ("transformer", {"linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "fc.weight", "fc.bias"}),
        ("resnet18", set()),
    ],
)
def test_large_init_rule_per_architecture(arch, scaled):
    spec = ModelSpec(**TINY[arch])
    default = dict(_default_module(spec, 3).named_parameters())
    big = dict(build_module(spec, 3).named_parameters())
    factor = 8.0 if scaled else 1.0
    for name, p in big.items():
        expected = factor * default[name] if name in scaled else default[name]
        assert torch.equal(p.detach(), expected.detach()), name
    if scaled:
        assert set(large_init_parameter_names(spec)) == scaled


def test_resnet_init_scale_touches_classifier_only():
    spec = ModelSpec(**TINY["resnet18"], init_scale=2.0)
    assert set(large_init_parameter_names(spec)) == {"fc.weight", "fc.bias"}


def test_build_module_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_module(ModelSpec(**TINY["mlp"]), 5)
    assert torch.equal(torch.rand(3), expected)


def test_build_module_dtype_and_scale_exact_in_float64():
    spec = ModelSpec(**TINY["mlp"])
    m32 = build_module(spec, 1)
    m64 = build_module(spec, 1, dtype=torch.float64)
    for a, b in zip(m32.parameters(), m64.parameters()):
        assert b.dtype == torch.float64
        assert torch.equal(a.double(), b)


@pytest.mark.parametrize("arch", list(TINY))
def test_representation_is_input_of_last_linear_layer(arch):
    spec = ModelSpec(**TINY[arch])
    module = build_module(spec, 0, dtype=torch.float64).eval()
    x = torch.randn(5, *spec.input_shape, dtype=torch.float64)
    logits, rep = module(x, with_representation=True)
    assert torch.equal(logits, module(x))
    w, b = module.head.weight, module.head.bias
    assert rep.shape == (5, w.shape[1])
    torch.testing.assert_close(logits, rep @ w.T + b, rtol=1e-12, atol=1e-12)
    # the head is the last nn.Linear
    assert linear_parameter_names(module)[-1][0].endswith("weight")
    assert dict(module.named_parameters())[linear_parameter_names(module)[-1][0]] is w


def test_mlp_representation_is_last_hidden_relu():
    spec = ModelSpec(**TINY["mlp"])
    m = build_module(spec, 2, dtype=torch.float64)
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    h = x.reshape(6, -1)
    for layer in m.linears[:-1]:
        h = torch.clamp(h @ layer.weight.T + layer.bias, min=0)
    torch.testing.assert_close(m(x, with_representation=True)[1], h, rtol=1e-12, atol=1e-12)


def test_cnn_padding_and_rgb_channel_doubling():
    same = build_module(ModelSpec(arch="cnn", input_shape=(1, 28, 28)), 0)
    assert same.conv1.out_channels == 16 and same.conv2.out_channels == 32
    assert same.fc1.in_features == 32 * 14 * 14 and same.fc1.out_features == 128
    valid = build_module(ModelSpec(arch="cnn", input_shape=(1, 28, 28), padding=0), 0)
    assert valid.fc1.in_features == 32 * 12 * 12
    rgb = build_module(ModelSpec(arch="cnn", input_shape=(3, 32, 32)), 0)
    assert rgb.conv1.out_channels == 32 and rgb.conv2.out_channels == 64 and rgb.fc1.in_features == 64 * 16 * 16
    x = torch.randn(2, 3, 32, 32)
    assert rgb(x).shape == (2, 10)


def test_transformer_and_resnet_shapes():
    tr = build_module(ModelSpec(arch="transformer", input_shape=(1, 28, 28)), 0)
    assert tr.pos_embedding.shape == (1, 50, 128) and tr.linear1.out_features == 256
    out, rep = tr(torch.randn(3, 1, 28, 28), with_representation=True)
    assert out.shape == (3, 10) and rep.shape == (3, 128)
    rn = build_module(ModelSpec(arch="resnet18", input_shape=(3, 32, 32)), 0)
    assert rn.fc.in_features == 512
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in rn.modules())
    assert n_conv == 1 + 16 + 3  # stem, 8 blocks x 2, 3 projection shortcuts


def test_spec_validation_and_roundtrip():
    with pytest.raises(ValueError, match="arch"):
        ModelSpec(arch="vgg")
    with pytest.raises(ValueError, match="depth"):
        ModelSpec(arch="mlp", depth=0)
    with pytest.raises(ValueError, match="patch_size"):
        ModelSpec(arch="transformer", input_shape=(1, 30, 30))
    with pytest.raises(ValueError, match="input_shape"):
        ModelSpec(arch="cnn", input_shape=(784,))
    spec = ModelSpec(**TINY["transformer"])
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec(arch="mlp").resolved_init_scale == 8.0
    assert ModelSpec(arch="resnet18").resolved_init_scale == 1.0


def test_batched_mlp_forward_matches_each_module():
    spec = ModelSpec(**TINY["mlp"])
    modules = [build_module(spec, s, dtype=torch.float64) for s in (0, 1, 2)]
    params, _ = stack_modules(modules)
    ws = [params[f"linears.{i}.weight"] for i in range(4)]
    bs = [params[f"linears.{i}.bias"] for i in range(4)]
    x = torch.randn(7, 1, 8, 8, dtype=torch.float64)
    logits, rep = BatchedMLP(ws, bs).forward(x)
    for r, m in enumerate(modules):
        o, h = m(x, with_representation=True)
        torch.testing.assert_close(logits[r], o, rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(rep[r], h, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("scale", [2.0, 0.02])
def test_batched_mlp_backward_matches_autograd(depth, scale):
    spec = ModelSpec(arch="mlp", input_shape=(6,), width=5, depth=depth, num_classes=3)
    modules = [build_module(spec, s, dtype=torch.float64) for s in (0, 1)]
    params, _ = stack_modules(modules)
    ws = [params[f"linears.{i}.weight"] for i in range(depth)]
    bs = [params[f"linears.{i}.bias"] for i in range(depth)]
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    y = F.one_hot(torch.randint(0, 3, (2, 4)), 3).double()
    gw = [torch.empty_like(w) for w in ws]
    gb = [torch.empty_like(b) for b in bs]
    BatchedMLP(ws, bs).forward_backward(x, y.clone(), gw, gb, loss_scale=scale)
    for r, m in enumerate(modules):
        loss = scale / 2 * ((m(x[r]) - y[r]) ** 2).sum()
        grads = torch.autograd.grad(loss, list(m.parameters()))
        for i in range(depth):
            torch.testing.assert_close(gw[i][r], grads[2 * i], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(gb[i][r], grads[2 * i + 1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("arch", ["cnn", "transformer"])
def test_functional_forward_matches_each_module(arch):
    spec = ModelSpec(**TINY[arch])
    modules = [build_module(spec, s, dtype=torch.float64).eval() for s in (0, 1, 2)]
    params, buffers = stack_modules(modules)
    skeleton = build_module(spec, 9, dtype=torch.float64).eval()
    x = torch.randn(4, *spec.input_shape, dtype=torch.float64)
    logits, rep = functional_forward(skeleton, params, buffers, x)
    for r, m in enumerate(modules):
        o, h = m(x, with_representation=True)
        torch.testing.assert_close(logits[r], o, rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(rep[r], h, rtol=1e-12, atol=1e-9)


def test_apply_large_init_identity_for_scale_one():
    spec = ModelSpec(**TINY["mlp"], init_scale=1.0)
    m = _default_module(spec, 4)
    before = [p.clone() for p in m.parameters()]
    apply_large_init(m, spec)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
