"""Tests of empirical.models: architecture shapes, the large-init rule, the representation, and the
batched forms against the plain modules (independent per-run evaluation / autograd)."""

import copy
import dataclasses

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
    # Power et al.'s shape in miniature: 2 blocks, LayerNorm after each residual sum
    "modtransformer": dict(arch="modtransformer", input_shape=(3, 6), num_classes=5, width=8, heads=2, ff_width=12,
                           layers=2, layer_norm="post"),
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


@pytest.mark.parametrize("arch", ["cnn", "transformer", "modtransformer"])
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


# --------------------------------------------------------------------------------------------------
# The modtransformer's blocks (Nanda et al.: 1, no LayerNorm; Power et al.: 2, LayerNorm after each sum)


def _layer_norm(z, weight, bias, eps=1e-5):
    mean = z.mean(-1, keepdim=True)
    var = ((z - mean) ** 2).mean(-1, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps) * weight + bias


def _block_by_hand(z, w, prefix, heads, post_norm):
    """One causal residual block from the named parameters, with plain tensor operations."""
    width = z.shape[-1]
    size = width // heads
    q, k, v = (z @ w[prefix + "attn.qkv.weight"].T + w[prefix + "attn.qkv.bias"]).split(width, dim=-1)
    t = z.shape[1]
    allowed = torch.tril(torch.ones(t, t, dtype=torch.bool))  # position i sees positions 0..i
    outputs = []
    for h in range(heads):
        part = slice(h * size, (h + 1) * size)
        scores = q[..., part] @ k[..., part].transpose(1, 2) / size**0.5
        scores = torch.where(allowed, scores, torch.tensor(float("-inf"), dtype=z.dtype))
        outputs.append(torch.softmax(scores, dim=-1) @ v[..., part])
    z = z + torch.cat(outputs, dim=-1) @ w[prefix + "attn.proj.weight"].T + w[prefix + "attn.proj.bias"]
    if post_norm:
        z = _layer_norm(z, w[prefix + "norm1.weight"], w[prefix + "norm1.bias"])
    hidden = torch.relu(z @ w[prefix + "linear1.weight"].T + w[prefix + "linear1.bias"])
    z = z + hidden @ w[prefix + "linear2.weight"].T + w[prefix + "linear2.bias"]
    if post_norm:
        z = _layer_norm(z, w[prefix + "norm2.weight"], w[prefix + "norm2.bias"])
    return z


@pytest.mark.parametrize("layer_norm", ["none", "post"])
def test_two_block_modtransformer_against_hand_written_forward(layer_norm):
    """Two causal blocks written out from the parameters; the representation is the last position of
    the residual stream the unembedding reads (after the second block's last LayerNorm with "post")."""
    spec = ModelSpec(**{**TINY["modtransformer"], "layer_norm": layer_norm})
    module = build_module(spec, 3, dtype=torch.float64)
    with torch.no_grad():  # LayerNorm starts at weight 1, bias 0: move it so that its parameters are used
        for name, p in module.named_parameters():
            if ".norm" in name or name.startswith("norm"):
                p.add_(0.3 * torch.randn_like(p))
    w = dict(module.named_parameters())
    x = torch.randn(7, 3, 6, dtype=torch.float64)
    z = x @ w["embed.weight"].T + w["pos_embedding"][0]
    for prefix in ("", "later_blocks.0."):
        z = _block_by_hand(z, w, prefix, heads=2, post_norm=layer_norm == "post")
    logits, rep = module(x, with_representation=True)
    torch.testing.assert_close(rep, z[:, -1], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(logits, z[:, -1] @ w["unembed.weight"].T + w["unembed.bias"], atol=1e-12, rtol=1e-12)
    has_norm = any(isinstance(m, torch.nn.LayerNorm) for m in module.modules())
    assert has_norm == (layer_norm == "post")


def test_power_transformer_shapes_and_non_embedding_parameter_count():
    """Power et al.: 2 layers, width 128, 4 heads, "about 4e5 non-embedding parameters"; counted here
    from the formula of one block (with this toolkit's biases and the "post" LayerNorms)."""
    p, w, f = 97, 128, 512
    spec = ModelSpec(arch="modtransformer", input_shape=(3, p + 1), num_classes=p, ff_width=f, layers=2,
                     layer_norm="post")
    module = build_module(spec, 0)
    block = {
        "attn.qkv.weight": (3 * w, w), "attn.qkv.bias": (3 * w,), "attn.proj.weight": (w, w), "attn.proj.bias": (w,),
        "linear1.weight": (f, w), "linear1.bias": (f,), "linear2.weight": (w, f), "linear2.bias": (w,),
        "norm1.weight": (w,), "norm1.bias": (w,), "norm2.weight": (w,), "norm2.bias": (w,),
    }
    expected = {"embed.weight": (w, p + 1), "pos_embedding": (1, 3, w), "unembed.weight": (p, w), "unembed.bias": (p,)}
    expected.update(block)
    expected.update({"later_blocks.0." + name: shape for name, shape in block.items()})
    assert {n: tuple(t.shape) for n, t in module.named_parameters()} == expected
    per_block = (3 * w * w + 3 * w) + (w * w + w) + (w * f + f) + (f * w + w) + 4 * w
    assert per_block == 198_272
    embedding = {"embed.weight", "pos_embedding", "unembed.weight", "unembed.bias"}
    counted = sum(t.numel() for n, t in module.named_parameters() if n not in embedding)
    assert counted == 2 * per_block == 396_544
    assert abs(counted - 4e5) / 4e5 < 0.01
    out, rep = module(torch.zeros(2, 3, p + 1), with_representation=True)
    assert out.shape == (2, p) and rep.shape == (2, w)


def test_one_block_names_and_initial_weights_are_the_unmasked_models():
    """``layers=1`` builds the parameters the 1-layer model always had (names, values of a seed),
    and the causal mask does not change its training: AdamW steps on the model with and without the
    mask agree bit for bit (the last position attends to every position either way)."""
    spec = ModelSpec(arch="modtransformer", input_shape=(3, 8), num_classes=7, width=16, heads=4, ff_width=32)
    module = build_module(spec, 5)
    names = ["pos_embedding", "embed.weight", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
             "attn.proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "unembed.weight",
             "unembed.bias"]
    assert [n for n, _ in module.named_parameters()] == names
    with torch.random.fork_rng(devices=[]):  # the draws of the 1-layer model, in its construction order
        torch.manual_seed(5)
        embed = torch.nn.Linear(8, 16, bias=False)
        pos = torch.nn.init.normal_(torch.empty(1, 3, 16), std=0.02)
        qkv, proj = torch.nn.Linear(16, 48), torch.nn.Linear(16, 16)
        linear1, linear2, unembed = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16), torch.nn.Linear(16, 7)
    by_hand = [pos, embed.weight, qkv.weight, qkv.bias, proj.weight, proj.bias, linear1.weight, linear1.bias,
               linear2.weight, linear2.bias, unembed.weight, unembed.bias]
    assert all(torch.equal(a, b) for a, b in zip(module.parameters(), by_hand))
    unmasked = copy.deepcopy(module)
    unmasked.attn.causal = False
    x = torch.randn(40, 3, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 7, (40,), generator=torch.Generator().manual_seed(1))
    for model in (module, unmasked):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0, betas=(0.9, 0.98))
        for _ in range(5):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(module.parameters(), unmasked.parameters()))
    two = build_module(dataclasses.replace(spec, layers=2), 5)  # with two blocks the mask does matter
    two_unmasked = copy.deepcopy(two)
    for attention in (two_unmasked.attn, two_unmasked.later_blocks[0].attn):
        attention.causal = False
    assert not torch.allclose(two(x), two_unmasked(x))


@pytest.mark.parametrize("changes, match", [
    ({"layers": 0}, r"layers .* must be an integer >= 1"),
    ({"layers": -2}, r"layers .* must be an integer >= 1"),
    ({"layers": 1.5}, r"layers .* must be an integer >= 1"),
    ({"layers": True}, r"layers .* must be an integer >= 1"),
    ({"layer_norm": "pre"}, "layer_norm must be one of"),
    ({"arch": "transformer", "input_shape": (1, 8, 8), "layers": 2}, "layers applies to arch='modtransformer' only"),
    ({"arch": "mlp", "layers": 1, "layer_norm": "post"}, "layer_norm applies to arch='modtransformer' only"),
])
def test_block_settings_are_validated(changes, match):
    with pytest.raises(ValueError, match=match):
        ModelSpec(**{**TINY["modtransformer"], **changes})


def test_block_settings_round_trip_and_default_for_specs_written_before_them():
    spec = ModelSpec(**TINY["modtransformer"])
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in spec.to_dict().items() if k not in ("layers", "layer_norm")}
    assert ModelSpec.from_dict(old) == dataclasses.replace(spec, layers=1, layer_norm="none")
