"""The input autoencoder of the compressed-MI route: trained once per data set, cached on disk."""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ncgrok.files import atomic_write_bytes
from ncgrok.theory._validation import as_array, as_count, as_scalar

__all__ = ["AutoencoderConfig", "InputAutoencoder", "fit_or_load"]


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyperparameters of :class:`InputAutoencoder`; their hash (with the data's) names the cache file.

    ``hidden`` are the encoder's hidden widths (the decoder mirrors them); ReLU between layers, linear
    code and linear reconstruction; mean-squared reconstruction error, Adam (betas 0.9, 0.999, eps
    1e-8; written out in :meth:`InputAutoencoder.fit` because constructing a ``torch.optim`` optimizer
    imports ``torch._dynamo``, several seconds), minibatches shuffled with a generator seeded by
    ``seed`` (initialisation uses the same seed, without touching the global torch RNG). Training is
    on CPU float32.
    """

    latent_dim: int = 4
    hidden: tuple[int, ...] = (256, 64)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        as_count("latent_dim", self.latent_dim)
        if not isinstance(self.hidden, tuple) or not all(isinstance(w, int) and w >= 1 for w in self.hidden):
            raise ValueError(f"hidden must be a tuple of positive ints, got {self.hidden!r}")
        as_count("epochs", self.epochs, minimum=0)
        as_count("batch_size", self.batch_size)
        as_scalar("lr", self.lr, positive=True)
        as_count("seed", self.seed, minimum=0)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["hidden"] = list(self.hidden)
        return values


def _data_fingerprint(x: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(repr(x.shape).encode())
    digest.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _flat_inputs(x: Any) -> np.ndarray:
    array = as_array("x", x, dtype=np.float32)
    if array.ndim < 2:
        raise ValueError(f"x must have shape (N, ...) with at least 2 dimensions, got {array.shape}")
    return array.reshape(array.shape[0], -1)


class InputAutoencoder(torch.nn.Module):
    """Small MLP autoencoder compressing flattened inputs to ``latent_dim`` codes (compressed MI of X).

    Build it with :meth:`fit_or_load`, which trains once per (data set, config) and caches the weights
    on disk. ``from_cache`` says whether this instance was loaded (``True``) or trained (``False``);
    ``train_losses`` holds the mean reconstruction loss of each epoch.
    """

    def __init__(self, input_dim: int, config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.input_dim = as_count("input_dim", input_dim)
        widths = [self.input_dim, *self.config.hidden, self.config.latent_dim]
        self.encoder = self._mlp(widths)
        self.decoder = self._mlp(widths[::-1])
        self.from_cache = False
        self.train_losses: list[float] = []

    @staticmethod
    def _mlp(widths: list[int]) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(torch.nn.Linear(fan_in, fan_out))
            if index < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    @torch.no_grad()
    def encode(self, x: Any, *, batch_size: int = 4096) -> np.ndarray:
        """Codes (N, latent_dim) of inputs ``x`` (N, ...) (flattened), as a float64 numpy array."""
        flat = _flat_inputs(x)
        if flat.shape[1] != self.input_dim:
            raise ValueError(f"x has {flat.shape[1]} features per sample, this autoencoder expects {self.input_dim}")
        was_training = self.training
        self.eval()
        parts = [self.encoder(torch.from_numpy(flat[i : i + batch_size])) for i in range(0, flat.shape[0], batch_size)]
        self.train(was_training)
        return torch.cat(parts).double().numpy()

    def fit(self, x: Any) -> list[float]:
        """Train on ``x`` (N, ...) for ``config.epochs`` epochs, deterministically; returns epoch losses."""
        flat = torch.from_numpy(_flat_inputs(x))
        if flat.shape[1] != self.input_dim:
            raise ValueError(f"x has {flat.shape[1]} features per sample, this autoencoder expects {self.input_dim}")
        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        parameters = [p for p in self.parameters() if p.requires_grad]
        first_moments = [torch.zeros_like(p) for p in parameters]
        second_moments = [torch.zeros_like(p) for p in parameters]
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
        self.train()
        losses = []
        step = 0
        for _ in range(config.epochs):
            order = torch.randperm(flat.shape[0], generator=generator)
            total = 0.0
            for start in range(0, flat.shape[0], config.batch_size):
                batch = flat[order[start : start + config.batch_size]]
                loss = torch.nn.functional.mse_loss(self(batch), batch)
                gradients = torch.autograd.grad(loss, parameters)
                step += 1
                with torch.no_grad():  # Adam with bias correction (as torch.optim.Adam, no weight decay)
                    for parameter, grad, first, second in zip(parameters, gradients, first_moments, second_moments):
                        first.mul_(beta1).add_(grad, alpha=1 - beta1)
                        second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                        denominator = (second / (1 - beta2**step)).sqrt_().add_(adam_eps)
                        parameter.addcdiv_(first, denominator, value=-config.lr / (1 - beta1**step))
                total += loss.item() * batch.shape[0]
            losses.append(total / flat.shape[0])
        self.eval()
        self.train_losses = losses
        return losses

    @classmethod
    def cache_path(cls, x: Any, cache_dir: str | os.PathLike, config: AutoencoderConfig | None = None) -> Path:
        """File that :meth:`fit_or_load` uses for this data set and config."""
        config = config or AutoencoderConfig()
        return cls._cache_file(Path(cache_dir), config, _data_fingerprint(_flat_inputs(x)))

    @staticmethod
    def _cache_file(cache_dir: Path, config: AutoencoderConfig, fingerprint: str) -> Path:
        key = json.dumps({"config": config.as_dict(), "data": fingerprint}, sort_keys=True)
        return cache_dir / f"autoencoder-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"

    @classmethod
    def fit_or_load(
        cls, x: Any, cache_dir: str | os.PathLike, config: AutoencoderConfig | None = None
    ) -> "InputAutoencoder":
        """Load the autoencoder cached for (``x``, ``config``) from ``cache_dir``, or train and cache it.

        The cache file is named by the SHA-256 of the config and of the data (shape and float32
        bytes), so a different data set or any changed hyperparameter trains a new model. The file is
        written atomically (temporary file, then ``os.replace``) and read with
        ``torch.load(weights_only=True)``; a file whose stored config or fingerprint does not match is
        ignored and overwritten. Initialisation and shuffling are seeded by ``config.seed``.
        """
        config = config or AutoencoderConfig()
        if not isinstance(config, AutoencoderConfig):
            raise ValueError(f"config must be an AutoencoderConfig, got {type(config).__name__}")
        flat = _flat_inputs(x)
        fingerprint = _data_fingerprint(flat)
        cache_dir = Path(cache_dir)
        path = cls._cache_file(cache_dir, config, fingerprint)
        if path.exists():
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("config") == config.as_dict() and stored.get("data") == fingerprint:
                model = cls(int(stored["input_dim"]), config)
                model.load_state_dict(stored["state_dict"])
                model.eval()
                model.from_cache = True
                model.train_losses = [float(v) for v in stored.get("train_losses", [])]
                return model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = cls(flat.shape[1], config)
        model.fit(flat)
        payload = {
            "state_dict": model.state_dict(),
            "config": config.as_dict(),
            "data": fingerprint,
            "input_dim": flat.shape[1],
            "train_losses": model.train_losses,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return model


def fit_or_load(x: Any, cache_dir: str | os.PathLike, config: AutoencoderConfig | None = None) -> InputAutoencoder:
    """Same as :meth:`InputAutoencoder.fit_or_load`."""
    return InputAutoencoder.fit_or_load(x, cache_dir, config)

