"""Full-batch GD and AdamW for the mixture network, as explicit state plus a pure step.

Both apply weight decay to ``W1, W2, W3`` in the decoupled form ``W <- (1 - lr lambda) W - lr u``
with ``u`` computed from the gradient ``G`` of the data term only: ``u = G`` for GD (the update of
Thm. 4.3; identical to GD on the loss with the ``(lambda/2)||W||^2`` term), ``u = m^/(sqrt(v^) +
eps)`` for AdamW (bias-corrected moments). The factor ``1 - lr lambda`` is
:func:`ncgrok.theory.timescales.decoupled_decay`. Usage, in the style of optax::

    optimizer = Optimizer(kind="gd", lr=0.1, weight_decay=1e-2)
    state = optimizer.init(network)
    network, state = optimizer.step(network, grads, state)
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from ncgrok.simulate.gmm.network import DECAYED_PARAMETERS, PARAMETER_NAMES, Network
from ncgrok.theory.timescales import decoupled_decay

__all__ = ["OPTIMIZERS", "Optimizer", "OptimizerState"]

OPTIMIZERS = ("gd", "adamw")


class OptimizerState(NamedTuple):
    """``count``: steps taken; ``first``/``second``: AdamW's moment estimates per parameter name
    (``None`` for GD)."""

    count: int
    first: dict[str, np.ndarray] | None
    second: dict[str, np.ndarray] | None


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """Settings of full-batch GD (``kind="gd"``) or AdamW (``kind="adamw"``); ``betas`` and ``eps``
    are used by AdamW only. :meth:`init` makes the state, :meth:`step` applies one update."""

    kind: str
    lr: float
    weight_decay: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.kind not in OPTIMIZERS:
            raise ValueError(f"kind must be one of {OPTIMIZERS}, got {self.kind!r}")

    def init(self, network: Network) -> OptimizerState:
        """The state before the first step (zero moments for AdamW)."""
        if self.kind == "gd":
            return OptimizerState(count=0, first=None, second=None)
        zeros = lambda: {name: np.zeros_like(value) for name, value in network.parameters().items()}  # noqa: E731
        return OptimizerState(count=0, first=zeros(), second=zeros())

    def step(self, network: Network, grads: dict[str, np.ndarray],
             state: OptimizerState) -> tuple[Network, OptimizerState]:
        """One update from the data-term gradients ``grads``; returns the new network and state
        (neither argument is modified)."""
        count = state.count + 1
        decay = decoupled_decay(self.lr, self.weight_decay)
        beta1, beta2 = self.betas
        first = None if state.first is None else dict(state.first)
        second = None if state.second is None else dict(state.second)
        updated = {}
        for name in PARAMETER_NAMES:
            weight = getattr(network, name)
            grad = grads[name]
            if self.kind == "gd":
                update = grad
            else:
                first[name] = beta1 * first[name] + (1.0 - beta1) * grad
                second[name] = beta2 * second[name] + (1.0 - beta2) * grad * grad
                first_hat = first[name] / (1.0 - beta1**count)
                second_hat = second[name] / (1.0 - beta2**count)
                update = first_hat / (np.sqrt(second_hat) + self.eps)
            if name in DECAYED_PARAMETERS:
                weight = decay * weight
            updated[name] = weight - self.lr * update
        return dataclasses.replace(network, **updated), OptimizerState(count=count, first=first, second=second)
