"""The paper's networks: a description (`ModelSpec`), plain modules, and batched functional forms.

Sakamoto & Sato (arXiv:2509.20829) train four architectures (Sec. 5 and the appendix):

* ``mlp`` -- fully connected ReLU network. ``depth`` counts the linear layers: the paper's
  "four layers" 784-200-200-200-10 is ``depth=4`` (default); the released configuration's
  784-200-200-10 is ``depth=3``. Large init multiplies **every** parameter (weights and biases).
* ``cnn`` -- conv3x3(16) - ReLU - conv3x3(32) - ReLU - maxpool 2 - linear 128 - ReLU - linear K.
  Both convolutions use ``padding=1`` by default ("same" size: 28x28 stays 28x28, the pool gives
  14x14, so the first linear layer sees 32*14*14 = 6272 features); ``padding=0`` is the other common
  reading (26, 24, pool 12: 4608 features). Convolution channels are doubled (32, 64) for inputs with
  three channels; the hidden linear width stays 128. Large init on the two linear layers only.
* ``transformer`` -- 4x4 patches embedded by a stride-4 convolution to width 128, a learnable class
  token and learnable positional embedding (both initialised N(0, 0.02^2)), one post-norm encoder
  layer (4 heads, feed-forward 256, ReLU, no dropout), a linear head on the class token. Large init on
  the encoder's two feed-forward linears and the head.
* ``resnet18`` -- CIFAR variant: 3x3 stem (stride 1, no max-pool), BasicBlocks [2, 2, 2, 2] with
  widths w, 2w, 4w, 8w (w = 64), BatchNorm, global average pool, linear 8w -> K. Standard init
  (Kaiming-normal fan-out convolutions, BatchNorm weight 1 / bias 0, default linear); ``init_scale``
  defaults to 1 and, if set, scales the classifier only.
* ``modtransformer`` -- the decoder-only transformer of the modular-arithmetic grokking papers, on
  one-hot token sequences of shape ``(T, V)`` (``input_shape``; ``a, b, "="`` over ``p + 1`` tokens
  is ``(3, p + 1)``): token embedding = linear map without bias on the one-hot rows, learned
  positional embedding (N(0, 0.02^2)), then ``layers`` residual blocks, each a causal self-attention
  (``heads`` heads) and a ReLU MLP (``ff_width``) added to the residual stream, then a linear
  unembedding of the residual stream at the last position. ``layers=1``, ``layer_norm="none"``
  (the defaults) is Nanda et al. (2023): one block, no LayerNorm, MLP 512 (pass ``ff_width=512``:
  the spec default 256 is the MNIST transformer's). ``layers=2``, width 128, 4 heads, MLP 512 is
  Power et al. (2022): about 4e5 non-embedding parameters; their released implementation
  (github.com/openai/grok) normalises post-residual, ``LayerNorm(z + attention(z))`` and
  ``LayerNorm(z + mlp(z))`` in every block with no further LayerNorm before the unembedding, which
  is ``layer_norm="post"`` here (their paper states only "a standard decoder-only transformer with
  causal attention masking"). The representation ``g(x)`` is in every case the residual stream at
  the last position as the unembedding reads it: with ``layer_norm="post"`` that is after the last
  block's second LayerNorm, which is the final LayerNorm of the network. The causal mask leaves a
  1-layer model's last position unchanged (it attends to every position either way, and the other
  positions' keys and values do not depend on the mask), so 1-layer runs are those of the unmasked
  model that preceded it. Deviations from both papers: every linear map but the token embedding
  has a bias (the engine reads the head as a weight and a bias), the positional embedding is
  learned (Power et al.'s is sinusoidal) and there is no dropout. The first block's parameters are
  named ``attn.*``, ``linear1.*``, ``linear2.*`` (``norm1``, ``norm2``), those of blocks 2, 3, ...
  ``later_blocks.0.*``, ``later_blocks.1.*``, ..., so 1-layer checkpoints keep their names; the
  modules are built in the order embedding, positions, block 1, ..., block ``layers``,
  unembedding, so a 1-layer network of a seed is the one it always was. Default init is PyTorch's
  (LayerNorm weight 1, bias 0); ``init_scale`` (default 1) multiplies every parameter.

Every module's ``forward(x, with_representation=False)`` returns the logits, or ``(logits, g(x))``
where the representation ``g(x)`` is the input of the last linear layer (``module.head``). For the
MLP that is the output of the last hidden ReLU (for ``depth=1``, the flattened input itself).

Initialisation (`build_module`): ``torch.manual_seed(seed)``, build the module on the CPU in float32
with PyTorch's default initialisation, cast to the requested dtype/device, then multiply the
large-init parameters by ``init_scale`` (exact for the paper's power of two, 8). The global RNG is
restored afterwards. The batched trainer builds every run this way, so a run is the same whether
trained alone or in a batch.

Batched functional forms: `BatchedMLP` (`ncgrok.empirical.batched_mlp`, re-exported here: stacked
weights, ``torch.baddbmm``/``torch.bmm``, with a hand-written backward for training) and
`functional_forward` (``torch.func.functional_call`` under ``torch.func.vmap``) for the other
architectures.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncgrok.empirical.batched_mlp import BatchedMLP  # noqa: F401  (re-exported; the MLP's batched form lives there)

ARCHITECTURES = ("mlp", "cnn", "transformer", "resnet18", "modtransformer")

_DEFAULT_WIDTH = {"mlp": 200, "cnn": 16, "transformer": 128, "resnet18": 64, "modtransformer": 128}
_DEFAULT_INIT_SCALE = {"mlp": 8.0, "cnn": 8.0, "transformer": 8.0, "resnet18": 1.0, "modtransformer": 1.0}
# Where the modtransformer normalises: nowhere (Nanda et al.) or after each residual sum (Power et al.'s code).
LAYER_NORMS = ("none", "post")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture name and hyperparameters; everything needed to rebuild a network.

    ``input_shape`` is the shape of one example as stored in the data tensor, e.g. ``(1, 28, 28)``
    or ``(784,)`` (the MLP flattens; the convolutional models need ``(C, H, W)``).
    ``width`` (None = architecture default): MLP hidden width (200), CNN first-conv channels (16;
    the second conv has twice as many), transformer model width (128), ResNet base channels (64).
    ``depth``: number of linear layers of the MLP (4 = 784-200-200-200-10).
    ``init_scale`` (None = architecture default: 8 for mlp/cnn/transformer, 1 for resnet18): the
    large-init multiplier applied to `large_init_parameter_names`.
    ``hidden_features``: CNN hidden linear width (128). ``padding``: CNN convolution padding (1).
    ``heads``, ``ff_width``, ``patch_size``: transformer attention heads (4), feed-forward width (256),
    patch side (4).
    ``layers`` (1) and ``layer_norm`` (``"none"``, or ``"post"``): residual blocks of the modtransformer
    and where it normalises (module docstring); other architectures refuse any other value.
    """

    arch: str = "mlp"
    input_shape: tuple[int, ...] = (1, 28, 28)
    num_classes: int = 10
    width: int | None = None
    depth: int = 4
    init_scale: float | None = None
    hidden_features: int = 128
    padding: int = 1
    heads: int = 4
    ff_width: int = 256
    patch_size: int = 4
    layers: int = 1
    layer_norm: str = "none"

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        shape = tuple(int(s) for s in self.input_shape)
        if len(shape) == 0 or any(s <= 0 for s in shape):
            raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)
        if self.arch == "modtransformer":
            if len(shape) != 2 or shape[0] < 1 or shape[1] < 2:
                raise ValueError(f"input_shape for arch='modtransformer' must be (sequence length, vocabulary size), got {shape}")
        elif self.arch != "mlp" and len(shape) != 3:
            raise ValueError(f"input_shape for arch={self.arch!r} must be (channels, height, width), got {shape}")
        if int(self.num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.width is not None and int(self.width) < 1:
            raise ValueError(f"width must be a positive int or None, got {self.width}")
        if int(self.depth) < 1:
            raise ValueError(f"depth (number of linear layers of the MLP) must be >= 1, got {self.depth}")
        self._check_blocks()
        if self.init_scale is not None and not math.isfinite(float(self.init_scale)):
            raise ValueError(f"init_scale must be finite or None, got {self.init_scale}")
        if self.padding not in (0, 1):
            raise ValueError(f"padding must be 0 or 1, got {self.padding}")
        if self.arch == "cnn":
            h, w = shape[1], shape[2]
            reduced = 4 * (1 - self.padding)
            if h - reduced < 2 or w - reduced < 2:
                raise ValueError(f"input_shape {shape} is too small for the CNN with padding={self.padding}")
        if self.arch in ("transformer", "modtransformer"):
            width = self.resolved_width
            if width % self.heads != 0:
                raise ValueError(f"transformer width ({width}) must be divisible by heads ({self.heads})")
            if self.arch == "transformer" and (shape[1] % self.patch_size or shape[2] % self.patch_size):
                raise ValueError(
                    f"input height/width {shape[1:]} must be divisible by patch_size={self.patch_size}"
                )

    def _check_blocks(self) -> None:
        """``layers`` and ``layer_norm``: valid, and left at their defaults unless arch='modtransformer'."""
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 1:
            raise ValueError(f"layers (residual blocks of the modtransformer) must be an integer >= 1, "
                             f"got {self.layers!r}")
        if self.layer_norm not in LAYER_NORMS:
            raise ValueError(f"layer_norm must be one of {LAYER_NORMS}, got {self.layer_norm!r}")
        if self.arch != "modtransformer":
            for name, default in (("layers", 1), ("layer_norm", "none")):
                if getattr(self, name) != default:
                    raise ValueError(f"{name} applies to arch='modtransformer' only; leave it at {default!r} "
                                     f"for arch={self.arch!r}, got {getattr(self, name)!r}")

    @property
    def resolved_width(self) -> int:
        return int(self.width) if self.width is not None else _DEFAULT_WIDTH[self.arch]

    @property
    def resolved_init_scale(self) -> float:
        return float(self.init_scale) if self.init_scale is not None else _DEFAULT_INIT_SCALE[self.arch]

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)

    @property
    def has_batchnorm(self) -> bool:
        return self.arch == "resnet18"

    def build(self) -> nn.Module:
        """A fresh module with PyTorch default initialisation from the current global RNG (no large init)."""
        if self.arch == "mlp":
            return MLP(self.input_dim, self.resolved_width, self.depth, self.num_classes)
        if self.arch == "cnn":
            return SmallCNN(self.input_shape, self.num_classes, self.resolved_width, self.hidden_features, self.padding)
        if self.arch == "transformer":
            return PatchTransformer(
                self.input_shape, self.num_classes, self.resolved_width, self.heads, self.ff_width, self.patch_size
            )
        if self.arch == "modtransformer":
            return SequenceTransformer(
                self.input_shape, self.num_classes, self.resolved_width, self.heads, self.ff_width,
                layers=self.layers, layer_norm=self.layer_norm,
            )
        return ResNet18(self.input_shape[0], self.num_classes, self.resolved_width)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)


# --------------------------------------------------------------------------------------------------
# Plain modules


class MLP(nn.Module):
    """``depth`` linear layers with ReLU between them; flattens its input."""

    def __init__(self, input_dim: int, width: int, depth: int, num_classes: int):
        super().__init__()
        dims = [input_dim] + [width] * (depth - 1) + [num_classes]
        self.linears = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:]))

    @property
    def head(self) -> nn.Linear:
        return self.linears[-1]

    def large_init_modules(self) -> list[nn.Module]:
        return list(self.linears)

    def forward(self, x: Tensor, with_representation: bool = False):
        h = x.flatten(1)
        for layer in self.linears[:-1]:
            h = torch.relu(layer(h))
        out = self.linears[-1](h)
        return (out, h) if with_representation else out


class SmallCNN(nn.Module):
    """conv3x3(c) - ReLU - conv3x3(2c) - ReLU - maxpool 2 - linear(hidden) - ReLU - linear(K)."""

    def __init__(self, input_shape, num_classes: int, channels: int, hidden: int, padding: int):
        super().__init__()
        in_ch, h, w = input_shape
        if in_ch == 3:
            channels *= 2
        self.conv1 = nn.Conv2d(in_ch, channels, 3, padding=padding)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=padding)
        shrink = 4 * (1 - padding)
        feat = 2 * channels * ((h - shrink) // 2) * ((w - shrink) // 2)
        self.fc1 = nn.Linear(feat, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    @property
    def head(self) -> nn.Linear:
        return self.fc2

    def large_init_modules(self) -> list[nn.Module]:
        return [self.fc1, self.fc2]

    def forward(self, x: Tensor, with_representation: bool = False):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        h = F.max_pool2d(h, 2).flatten(1)
        h = torch.relu(self.fc1(h))
        out = self.fc2(h)
        return (out, h) if with_representation else out


class _SelfAttention(nn.Module):
    """Multi-head self-attention; ``causal``: position i attends to positions <= i only."""

    def __init__(self, width: int, heads: int, *, causal: bool = False):
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        if self.causal:
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class PatchTransformer(nn.Module):
    """Patch embedding + class token + positional embedding, one post-norm encoder layer, head on the class token."""

    def __init__(self, input_shape, num_classes: int, width: int, heads: int, ff_width: int, patch: int):
        super().__init__()
        in_ch, h, w = input_shape
        tokens = (h // patch) * (w // patch) + 1
        self.embed = nn.Conv2d(in_ch, width, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.empty(1, 1, width))
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens, width))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embedding, std=0.02)
        self.attn = _SelfAttention(width, heads)
        self.norm1 = nn.LayerNorm(width)
        self.linear1 = nn.Linear(width, ff_width)
        self.linear2 = nn.Linear(ff_width, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, num_classes)

    @property
    def head(self) -> nn.Linear:
        return self.fc

    def large_init_modules(self) -> list[nn.Module]:
        return [self.linear1, self.linear2, self.fc]

    def forward(self, x: Tensor, with_representation: bool = False):
        z = self.embed(x).flatten(2).transpose(1, 2)
        z = torch.cat([self.cls_token.expand(z.shape[0], -1, -1), z], dim=1) + self.pos_embedding
        z = self.norm1(z + self.attn(z))
        z = self.norm2(z + self.linear2(torch.relu(self.linear1(z))))
        rep = z[:, 0]
        out = self.fc(rep)
        return (out, rep) if with_representation else out


def _add_block(owner: nn.Module, width: int, heads: int, ff_width: int, layer_norm: str) -> None:
    """Register one residual block's modules on ``owner`` (attention, MLP, LayerNorms if ``"post"``)."""
    owner.attn = _SelfAttention(width, heads, causal=True)
    owner.linear1 = nn.Linear(width, ff_width)
    owner.linear2 = nn.Linear(ff_width, width)
    owner.post_norm = layer_norm == "post"
    if owner.post_norm:
        owner.norm1 = nn.LayerNorm(width)
        owner.norm2 = nn.LayerNorm(width)


def _run_block(block: nn.Module, z: Tensor) -> Tensor:
    """The residual stream after the block registered on ``block`` by `_add_block`."""
    z = z + block.attn(z)
    if block.post_norm:
        z = block.norm1(z)
    z = z + block.linear2(torch.relu(block.linear1(z)))
    return block.norm2(z) if block.post_norm else z


class _ResidualBlock(nn.Module):
    """Blocks 2, 3, ... of `SequenceTransformer` (block 1 lives on the transformer itself)."""

    def __init__(self, width: int, heads: int, ff_width: int, layer_norm: str):
        super().__init__()
        _add_block(self, width, heads, ff_width, layer_norm)

    def forward(self, z: Tensor) -> Tensor:
        return _run_block(self, z)


class SequenceTransformer(nn.Module):
    """Decoder-only transformer on token sequences: embed + position, ``layers`` causal residual blocks
    (LayerNorm after each residual sum if ``layer_norm="post"``), unembedding of the residual stream at
    the last position (g(x)). ``layers=1`` without LayerNorm is Nanda et al.'s; see the module docstring."""

    def __init__(self, input_shape, num_classes: int, width: int, heads: int, ff_width: int, *,
                 layers: int = 1, layer_norm: str = "none"):
        super().__init__()
        length, vocabulary = input_shape
        self.embed = nn.Linear(vocabulary, width, bias=False)
        self.pos_embedding = nn.Parameter(torch.empty(1, length, width))
        nn.init.normal_(self.pos_embedding, std=0.02)
        _add_block(self, width, heads, ff_width, layer_norm)  # block 1 keeps the 1-layer model's names
        self.later_blocks = nn.ModuleList(
            _ResidualBlock(width, heads, ff_width, layer_norm) for _ in range(layers - 1)
        )
        self.unembed = nn.Linear(width, num_classes)

    @property
    def head(self) -> nn.Linear:
        return self.unembed

    def large_init_modules(self) -> list[nn.Module]:
        return [self]

    def forward(self, x: Tensor, with_representation: bool = False):
        z = _run_block(self, self.embed(x) + self.pos_embedding)
        for block in self.later_blocks:
            z = block(z)
        rep = z[:, -1]
        out = self.unembed(rep)
        return (out, rep) if with_representation else out


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3x3 stem, no max-pool, [2, 2, 2, 2] BasicBlocks, global average pool, linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks = []
        cin = width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            blocks += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def head(self) -> nn.Linear:
        return self.fc

    def large_init_modules(self) -> list[nn.Module]:
        return [self.fc]

    def forward(self, x: Tensor, with_representation: bool = False):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.blocks(h)
        rep = F.adaptive_avg_pool2d(h, 1).flatten(1)
        out = self.fc(rep)
        return (out, rep) if with_representation else out


# --------------------------------------------------------------------------------------------------
# Initialisation


def large_init_parameter_names(spec: ModelSpec, module: nn.Module | None = None) -> list[str]:
    """Names (as in ``module.named_parameters()``) of the parameters the large-init rule multiplies."""
    module = spec.build() if module is None else module
    ids = {id(p) for m in module.large_init_modules() for p in m.parameters()}
    return [name for name, p in module.named_parameters() if id(p) in ids]


def apply_large_init(module: nn.Module, spec: ModelSpec) -> nn.Module:
    """Multiply the architecture's large-init parameters by ``spec.resolved_init_scale`` in place."""
    scale = spec.resolved_init_scale
    if scale != 1.0:
        with torch.no_grad():
            for m in module.large_init_modules():
                for p in m.parameters():
                    p.mul_(scale)
    return module


def build_module(
    spec: ModelSpec, seed: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> nn.Module:
    """Run ``seed``'s initial network: ``torch.manual_seed(seed)``, ``spec.build()`` (CPU, float32),
    cast to ``dtype``/``device``, multiply the large-init parameters by the init scale.

    The global RNG state is saved and restored, so calling this has no side effect on it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        module = spec.build()
    module = module.to(device=device, dtype=dtype)
    return apply_large_init(module, spec)


# --------------------------------------------------------------------------------------------------
# Batched (stacked-parameter) forms


def stack_modules(modules: list[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Stack the parameters and buffers of identically built modules along a new leading run axis."""
    names = [n for n, _ in modules[0].named_parameters()]
    bnames = [n for n, _ in modules[0].named_buffers()]
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in modules]).contiguous() for n in names}
    buffers = {n: torch.stack([dict(m.named_buffers())[n].detach() for m in modules]).contiguous() for n in bnames}
    return params, buffers


def linear_parameter_names(module: nn.Module) -> list[tuple[str, str]]:
    """``(weight_name, bias_name)`` of every ``nn.Linear`` in module order (bias name may be '')."""
    out = []
    for prefix, m in module.named_modules():
        if isinstance(m, nn.Linear):
            pre = f"{prefix}." if prefix else ""
            out.append((pre + "weight", pre + "bias" if m.bias is not None else ""))
    return out


def functional_forward(
    skeleton: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor
) -> tuple[Tensor, Tensor]:
    """``(logits (R, N, K), representation (R, N, p))`` of R stacked networks on a shared input ``x``
    (N, ...), via ``torch.func.vmap`` over ``torch.func.functional_call``. Uses the skeleton's mode
    (train/eval); BatchNorm in train mode is not supported here (use a loop over runs)."""

    def one(p, b, inp):
        return torch.func.functional_call(skeleton, (p, b), (inp,), {"with_representation": True})

    return torch.func.vmap(one, in_dims=(0, 0, None))(params, buffers, x)
