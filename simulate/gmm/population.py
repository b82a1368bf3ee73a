"""The population: a known Gaussian mixture that can be sampled freely (:class:`GaussianMixture`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ncgrok.theory._validation import as_array, as_count, as_priors, as_psd_stack, as_scalar

__all__ = ["GaussianMixture", "as_generator"]


def as_generator(seed: Any) -> np.random.Generator:
    """A numpy ``Generator`` from a seed (whole number >= 0), a ``SeedSequence`` or a ``Generator``
    (returned as is, so the caller's stream advances)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    return np.random.default_rng(as_count("seed", seed, minimum=0))


@dataclass(frozen=True)
class GaussianMixture:
    """A known Gaussian mixture: ``X | Y=c ~ N(means[c], covariances[c])``, ``P(Y=c) = priors[c]``.

    Covariances may be singular (PSD). Build a random one with :meth:`random`.
    """

    means: np.ndarray
    covariances: np.ndarray
    priors: np.ndarray
    _factors: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        means = as_array("means", self.means, ndim=2)
        num_classes, dim = means.shape
        if num_classes < 2:
            raise ValueError(f"means must hold at least 2 classes (one row per class), got {num_classes}")
        if dim < 1:
            raise ValueError("means must have at least one column (input dimension d >= 1)")
        covariances = as_psd_stack("covariances", self.covariances, num_classes=num_classes)
        if covariances.shape[1] != dim:
            raise ValueError(f"covariances must have shape ({num_classes}, {dim}, {dim}), got {covariances.shape}")
        covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2))
        priors = as_priors(self.priors, num_classes)
        eigenvalues, eigenvectors = np.linalg.eigh(covariances)
        factors = eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))[:, None, :]  # S_c = F F^T
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", covariances)
        object.__setattr__(self, "priors", priors)
        object.__setattr__(self, "_factors", factors)

    @property
    def num_classes(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @classmethod
    def random(
        cls,
        num_classes: int,
        dim: int,
        *,
        separation: float = 2.0,
        noise: float = 1.0,
        priors: Any = None,
        seed: Any = 0,
    ) -> "GaussianMixture":
        """A random mixture: means ``separation * v_c`` with ``v_c`` independent uniform unit vectors
        (so class means are about ``separation * sqrt(2)`` apart), covariances ``noise^2 Q diag(s) Q^T``
        with a random rotation ``Q`` per class and eigenvalues ``s`` log-uniform in ``[e^-1, e]``."""
        num_classes = as_count("num_classes", num_classes, minimum=2)
        dim = as_count("dim", dim, minimum=1)
        separation = as_scalar("separation", separation, positive=True)
        noise = as_scalar("noise", noise, positive=True)
        rng = as_generator(seed)
        directions = rng.standard_normal((num_classes, dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        covariances = np.empty((num_classes, dim, dim))
        for c in range(num_classes):
            rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
            spectrum = np.exp(rng.uniform(-1.0, 1.0, size=dim))
            covariances[c] = noise**2 * (rotation * spectrum) @ rotation.T
        return cls(means=separation * directions, covariances=covariances, priors=as_priors(priors, num_classes))

    def sample_class(self, label: int, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` i.i.d. draws of ``X | Y=label`` (count x d)."""
        return self.means[label] + rng.standard_normal((count, self.dim)) @ self._factors[label].T

    def sample(self, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A stratified sample: ``per_class`` draws of every class, sorted by class. Returns
        ``(x, y)`` with ``x`` of shape ``(K * per_class, d)`` and integer labels ``y``."""
        per_class = as_count("per_class", per_class, minimum=1)
        x = np.concatenate([self.sample_class(c, per_class, rng) for c in range(self.num_classes)])
        y = np.repeat(np.arange(self.num_classes), per_class)
        return x, y
