"""Everything a Gaussian-mixture run depends on: :class:`GMMConfig` (validated on construction)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ncgrok.simulate.gmm.network import ACTIVATIONS
from ncgrok.simulate.gmm.optimizer import OPTIMIZERS
from ncgrok.simulate.gmm.population import GaussianMixture
from ncgrok.simulate.schedule import log_spaced_steps
from ncgrok.theory._validation import as_array, as_count, as_priors, as_psd_stack, as_scalar
from ncgrok.theory.timescales import decoupled_decay

__all__ = ["GMMConfig"]


@dataclass(frozen=True)
class GMMConfig:
    """Everything a Gaussian-mixture run depends on (validated on construction).

    Population: ``num_classes`` (K >= 2) classes in ``R^input_dim``; ``means`` (K, d),
    ``covariances`` (K, d, d) and ``priors`` (K,) override the random default
    (:meth:`GaussianMixture.random` with ``separation``, ``noise`` and ``mixture_seed``, which
    defaults to ``seed``). Network: ``hidden_dim`` (m), ``feature_dim`` (p), ``activation`` in
    :data:`ACTIVATIONS`, ``leaky_slope`` and ``sharpness`` of the smooth leaky ReLU, ``init_scale``.
    Training: ``optimizer`` in :data:`OPTIMIZERS`, ``lr``, ``weight_decay`` (lambda), ``steps``,
    ``n_train`` per class, ``adam_betas``, ``adam_eps``. Measurement: ``n_test``, ``n_population``
    and ``n_heldout`` per class, ``sigma`` (noise of Thm. 3.4 in ``g~`` units), ``mi_outer`` (J) and
    ``mi_inner`` (M) points per class for the information estimate, ``delta`` for the held-out
    radius, at most ``num_logs`` logged steps (:meth:`recorded_steps`).
    """

    num_classes: int = 3
    input_dim: int = 8
    hidden_dim: int = 32
    feature_dim: int = 6
    activation: str = "smooth_leaky_relu"
    leaky_slope: float = 0.1
    sharpness: float = 4.0
    init_scale: float = 1.0
    optimizer: str = "gd"
    lr: float = 0.1
    weight_decay: float = 1e-2
    steps: int = 3000
    n_train: int = 100
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    sigma: float = 0.1
    n_test: int = 10000
    n_population: int = 10000
    n_heldout: int = 1000
    mi_outer: int = 1000
    mi_inner: int = 2000
    delta: float = 0.05
    num_logs: int = 20
    separation: float = 4.0
    noise: float = 1.0
    means: Any = None
    covariances: Any = None
    priors: Any = None
    seed: int = 0
    mixture_seed: int | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name, minimum in (("num_classes", 2), ("input_dim", 1), ("hidden_dim", 1), ("feature_dim", 1),
                              ("steps", 1), ("n_train", 2), ("n_test", 1), ("n_population", 2),
                              ("n_heldout", 2), ("mi_outer", 2), ("mi_inner", 2), ("num_logs", 2),
                              ("seed", 0)):
            set_(name, as_count(name, getattr(self, name), minimum=minimum))
        if self.mixture_seed is not None:
            set_("mixture_seed", as_count("mixture_seed", self.mixture_seed, minimum=0))
        for name in ("lr", "sharpness", "init_scale", "adam_eps", "sigma", "separation", "noise"):
            set_(name, as_scalar(name, getattr(self, name), positive=True))
        set_("weight_decay", as_scalar("weight_decay", self.weight_decay, nonnegative=True))
        set_("leaky_slope", as_scalar("leaky_slope", self.leaky_slope, closed_unit=True))
        set_("delta", as_scalar("delta", self.delta, open_unit=True))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        betas = tuple(as_scalar("adam_betas", beta) for beta in _pair_of("adam_betas", self.adam_betas))
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"adam_betas must lie in [0, 1), got {betas}")
        set_("adam_betas", betas)
        if decoupled_decay(self.lr, self.weight_decay) <= 0.0:
            raise ValueError(
                f"lr * weight_decay must be < 1 (the decay factor 1 - lr*weight_decay must stay positive), "
                f"got lr={self.lr:g}, weight_decay={self.weight_decay:g}"
            )
        shape = (self.num_classes, self.input_dim)
        if self.means is not None:
            means = as_array("means", self.means, ndim=2)
            if means.shape != shape:
                raise ValueError(f"means must have shape (num_classes, input_dim) = {shape}, got {means.shape}")
            set_("means", means)
        if self.covariances is not None:
            covariances = as_psd_stack("covariances", self.covariances, num_classes=self.num_classes)
            if covariances.shape[1:] != (self.input_dim, self.input_dim):
                raise ValueError(
                    f"covariances must have shape (num_classes, input_dim, input_dim) = "
                    f"{(self.num_classes, self.input_dim, self.input_dim)}, got {covariances.shape}"
                )
            set_("covariances", covariances)
        if self.priors is not None:
            set_("priors", as_priors(self.priors, self.num_classes, name="priors (--priors)"))

    def mixture(self) -> GaussianMixture:
        """The population: the given means/covariances/priors, random ones where not given."""
        seed = self.seed if self.mixture_seed is None else self.mixture_seed
        default = GaussianMixture.random(self.num_classes, self.input_dim, separation=self.separation,
                                         noise=self.noise, priors=self.priors, seed=seed)
        return GaussianMixture(
            means=default.means if self.means is None else self.means,
            covariances=default.covariances if self.covariances is None else self.covariances,
            priors=default.priors,
        )

    def recorded_steps(self) -> np.ndarray:
        """The logged steps: 0 and ``num_logs - 1`` log-spaced steps up to ``steps``, rounded to
        distinct integers (so at most ``num_logs`` of them, always including 0 and ``steps``)."""
        return log_spaced_steps(self.steps, self.num_logs - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready echo of the configuration (arrays as nested lists)."""
        out = {}
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = value.tolist() if isinstance(value, np.ndarray) else (
                list(value) if isinstance(value, tuple) else value)
        return out


def _pair_of(name: str, value: Any) -> tuple[Any, Any]:
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}") from None
    if len(items) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}")
    return items
