"""What `ncgrok.empirical.engine.BatchedTrainer` is given, checked before anything is built.

A run (`RunConfig`), the device (`select_device`), the training settings
(`check_trainer_settings`), the backend (`resolve_backend`), the training data
(`training_tensors`) and the input of an evaluation (`check_eval_input`). Every bad value raises a
``ValueError`` that names the argument and what it must be; nothing here changes state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ncgrok.empirical.losses import check_loss
from ncgrok.empirical.models import ModelSpec


@dataclass(frozen=True)
class RunConfig:
    """One run: ``seed`` (initialisation and batch order), learning rate, weight decay."""

    seed: int
    lr: float
    weight_decay: float

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or not 0 <= int(self.seed) < 2**63:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        # plain Python numbers (numpy scalars would not survive torch.load(weights_only=True))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "weight_decay", float(self.weight_decay))


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA if available, else Apple MPS if available, else CPU; otherwise ``torch.device(device)``."""
    if isinstance(device, torch.device):
        return device
    if device != "auto":
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:i]' or 'mps', got {device!r}") from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_trainer_settings(
    model_spec: ModelSpec,
    runs: list[RunConfig],
    *,
    optimizer: str,
    loss: str,
    loss_reduction: str,
    dtype: torch.dtype,
    device: str | torch.device,
    betas: tuple[float, float],
    eps: float,
    momentum: float,
    divergence_factor: float,
) -> tuple[list[RunConfig], torch.device]:
    """The runs as a list and the resolved device, once every setting has been checked (in the
    order of ``BatchedTrainer``'s signature, so the first bad one is the one reported)."""
    if not isinstance(model_spec, ModelSpec):
        raise ValueError("model_spec must be an empirical.models.ModelSpec")
    runs = list(runs)
    if not runs or not all(isinstance(r, RunConfig) for r in runs):
        raise ValueError("runs must be a non-empty list of RunConfig")
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
    check_loss(loss, loss_reduction)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if not (len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if not divergence_factor >= 1.0:
        raise ValueError(f"divergence_factor must be >= 1 (math.inf: only non-finite losses), got {divergence_factor!r}")
    resolved = select_device(device)
    if resolved.type == "mps" and dtype == torch.float64:
        raise ValueError("dtype float64 is not supported on MPS; use dtype=torch.float32 or device='cpu'")
    return runs, resolved


def resolve_backend(backend: str, model_spec: ModelSpec) -> str:
    """``"auto"``: ``"mlp"`` for the MLP, ``"loop"`` with BatchNorm, else ``"vmap"``; an explicit
    backend is checked against the architecture."""
    if backend == "auto":
        backend = "mlp" if model_spec.arch == "mlp" else ("loop" if model_spec.has_batchnorm else "vmap")
    if backend not in ("mlp", "vmap", "loop"):
        raise ValueError(f"backend must be 'auto', 'mlp', 'vmap' or 'loop', got {backend!r}")
    if backend == "mlp" and model_spec.arch != "mlp":
        raise ValueError(f"backend='mlp' needs arch='mlp', got arch={model_spec.arch!r}")
    if backend == "vmap" and model_spec.has_batchnorm:
        raise ValueError("backend='vmap' cannot train BatchNorm models; use backend='loop'")
    return backend


def training_tensors(
    spec: ModelSpec, train_x: Tensor, train_y: Tensor, batch_size: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """The checked training set on ``device`` in ``dtype``: inputs (N, ...) (flattened to
    (N, input_dim) for the MLP; contiguous) and one-hot targets (N, K)."""
    if not isinstance(train_x, Tensor) or not isinstance(train_y, Tensor):
        raise ValueError("train_x and train_y must be torch tensors")
    n = train_x.shape[0] if train_x.dim() > 0 else 0
    if spec.arch == "mlp":
        if train_x.dim() < 2 or math.prod(train_x.shape[1:]) != spec.input_dim:
            raise ValueError(
                f"train_x must have shape (N, ...) with {spec.input_dim} entries per example, got {tuple(train_x.shape)}"
            )
        x = train_x.reshape(n, spec.input_dim)
    else:
        if tuple(train_x.shape[1:]) != spec.input_shape:
            raise ValueError(f"train_x must have shape (N, {spec.input_shape}), got {tuple(train_x.shape)}")
        x = train_x
    if train_y.shape != (n,) or train_y.dtype.is_floating_point or train_y.dtype == torch.bool:
        raise ValueError(f"train_y must be an integer tensor of shape ({n},), got {train_y.dtype} {tuple(train_y.shape)}")
    if n > 0 and (int(train_y.min()) < 0 or int(train_y.max()) >= spec.num_classes):
        raise ValueError(f"train_y labels must lie in [0, {spec.num_classes}), the spec's num_classes")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be between 1 and the number of examples ({n}), got {batch_size}")
    onehot = F.one_hot(train_y.long().cpu(), spec.num_classes).to(device=device, dtype=dtype)
    return x.to(device=device, dtype=dtype).contiguous(), onehot


def check_eval_input(spec: ModelSpec, x: Tensor) -> None:
    """An evaluation input x (N, ...) must have the spec's example shape (any shape of
    ``spec.input_dim`` entries per example for the MLP)."""
    if spec.arch == "mlp":
        if x.dim() < 2 or math.prod(x.shape[1:]) != spec.input_dim:
            raise ValueError(f"x must have shape (N, ...) with {spec.input_dim} entries per example, got {tuple(x.shape)}")
    elif tuple(x.shape[1:]) != spec.input_shape:
        raise ValueError(f"x must have shape (N, {spec.input_shape}), got {tuple(x.shape)}")
