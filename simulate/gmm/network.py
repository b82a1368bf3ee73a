"""The network trained on the mixture, with its loss and hand-written backward pass.

::

    a = W1 x + b1                      (hidden pre-activation, width m)
    g(x) = W2 phi(a)                   (representation in R^p, no bias: a bias here would break
                                        balancedness of (W2, W3))
    f(x) = W3 g(x) + b3                (logits, K x p classifier with bias)

The last two layers are linear so that the balancedness identity of Thm. 4.3 holds exactly under
plain GD. ``phi`` is ``"smooth_leaky_relu"`` (``alpha a + (1 - alpha) softplus(beta a) / beta``: a
leaky ReLU with slope ``alpha`` whose kink is smoothed at scale ``1/beta``), ``"relu"`` or
``"identity"`` (the *linear network*: then ``g`` is affine in ``x`` and ``g(X) | Y=c`` is exactly
Gaussian).

The loss is ``L = (1/(2N)) sum_i ||f(x_i) - e_{y_i}||^2 + (lambda/2) (||W1||^2 + ||W2||^2 +
||W3||^2)`` (biases are not decayed). The backward pass is written by hand in float64 and checked
against finite differences in the tests; the optimizers are in :mod:`ncgrok.simulate.gmm.optimizer`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from ncgrok.simulate.gmm.population import as_generator

__all__ = [
    "ACTIVATIONS",
    "DECAYED_PARAMETERS",
    "PARAMETER_NAMES",
    "Network",
    "init_network",
    "loss_and_gradients",
]

ACTIVATIONS = ("smooth_leaky_relu", "relu", "identity")
PARAMETER_NAMES = ("W1", "b1", "W2", "W3", "b3")
DECAYED_PARAMETERS = ("W1", "W2", "W3")


@dataclass
class Network:
    """``f(x) = W3 W2 phi(W1 x + b1) + b3`` with ``g(x) = W2 phi(W1 x + b1)`` (see the module docstring).

    Shapes: ``W1`` (m, d), ``b1`` (m,), ``W2`` (p, m), ``W3`` (K, p), ``b3`` (K,).
    """

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    W3: np.ndarray
    b3: np.ndarray
    activation: str = "smooth_leaky_relu"
    leaky_slope: float = 0.1
    sharpness: float = 4.0

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in PARAMETER_NAMES}

    def copy(self) -> "Network":
        return Network(**{name: value.copy() for name, value in self.parameters().items()},
                       activation=self.activation, leaky_slope=self.leaky_slope, sharpness=self.sharpness)

    @property
    def is_linear(self) -> bool:
        return self.activation == "identity"

    def _activate(self, pre: np.ndarray, *, derivative: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``phi(pre)`` and (if asked, and not the identity) its derivative ``phi'(pre)``."""
        if self.activation == "identity":
            return pre, None
        if self.activation == "relu":
            return np.maximum(pre, 0.0), (pre > 0).astype(np.float64) if derivative else None
        alpha, beta = self.leaky_slope, self.sharpness
        value = alpha * pre + (1.0 - alpha) * np.logaddexp(0.0, beta * pre) / beta
        return value, alpha + (1.0 - alpha) * expit(beta * pre) if derivative else None

    def hidden(self, x: np.ndarray) -> np.ndarray:
        return self._activate(x @ self.W1.T + self.b1, derivative=False)[0]

    def features(self, x: np.ndarray) -> np.ndarray:
        """The representation ``g(x)`` (N x p)."""
        return self.hidden(x) @ self.W2.T

    def logits(self, features: np.ndarray) -> np.ndarray:
        """``f = W3 g + b3`` from features (N x K)."""
        return features @ self.W3.T + self.b3


def init_network(
    input_dim: int,
    hidden_dim: int,
    feature_dim: int,
    num_classes: int,
    *,
    activation: str = "smooth_leaky_relu",
    leaky_slope: float = 0.1,
    sharpness: float = 4.0,
    init_scale: float = 1.0,
    seed: Any = 0,
) -> Network:
    """Gaussian initialization with variance ``init_scale^2 / fan_in`` for every weight, zero biases."""
    rng = as_generator(seed)
    return Network(
        W1=init_scale * rng.standard_normal((hidden_dim, input_dim)) / math.sqrt(input_dim),
        b1=np.zeros(hidden_dim),
        W2=init_scale * rng.standard_normal((feature_dim, hidden_dim)) / math.sqrt(hidden_dim),
        W3=init_scale * rng.standard_normal((num_classes, feature_dim)) / math.sqrt(feature_dim),
        b3=np.zeros(num_classes),
        activation=activation,
        leaky_slope=leaky_slope,
        sharpness=sharpness,
    )


def loss_and_gradients(
    network: Network, x: np.ndarray, targets: np.ndarray, *, weight_decay: float = 0.0
) -> tuple[float, dict[str, np.ndarray]]:
    """``L = (1/(2N)) ||f(X) - T||_F^2 + (weight_decay/2) (||W1||^2 + ||W2||^2 + ||W3||^2)`` and its
    gradient with respect to every parameter (hand-written backward pass, float64).

    ``targets`` is ``N x K`` (one-hot for classification). Biases are not decayed.
    """
    pre = x @ network.W1.T + network.b1
    hidden, derivative = network._activate(pre)
    features = hidden @ network.W2.T
    residual = features @ network.W3.T + network.b3 - targets
    count = x.shape[0]
    loss = 0.5 * float(np.einsum("ik,ik->", residual, residual)) / count
    delta = residual / count                        # dL/df
    grad_features = delta @ network.W3              # dL/dg
    grad_hidden = grad_features @ network.W2        # dL/dphi
    grad_pre = grad_hidden if derivative is None else grad_hidden * derivative
    grads = {
        "W1": grad_pre.T @ x,
        "b1": grad_pre.sum(axis=0),
        "W2": grad_features.T @ hidden,
        "W3": delta.T @ features,
        "b3": delta.sum(axis=0),
    }
    if weight_decay:
        for name in DECAYED_PARAMETERS:
            weight = getattr(network, name)
            loss += 0.5 * weight_decay * float(np.einsum("ij,ij->", weight, weight))
            grads[name] = grads[name] + weight_decay * weight
    return loss, grads
