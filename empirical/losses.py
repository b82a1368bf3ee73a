"""The training losses of the batched engine: squared error (the paper's) and softmax cross-entropy
(the grokking literature's: Power et al. 2022; Nanda et al. 2023), each with its per-run value and its
gradient with respect to the logits.

Both compare logits ``z`` (one row per example, ``K`` outputs) with one-hot targets ``y``:

* ``"mse"``: ``sum_i ||z_i - y_i||^2``; ``reduction="sum"`` is the paper's (summed over batch and
  outputs), ``"mean"`` divides by ``B K`` (``nn.MSELoss()``). d loss / d z = scale (z - y) with
  scale 2 or 2 / (B K).
* ``"cross-entropy"``: ``-sum_i log softmax(z_i)[y_i]``; ``reduction="mean"`` divides by the batch
  size ``B`` (``nn.CrossEntropyLoss()``, Power et al., Nanda et al.), ``"sum"`` does not.
  d loss / d z = scale (softmax(z) - y) with scale 1 / B or 1.

``batch_loss`` is the autograd form (the ``vmap`` and ``loop`` backends differentiate it);
``output_gradient`` writes the loss of every run and the logit gradient in place for the hand-written
MLP backward (``batched_mlp.BatchedMLP.forward_backward``).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["LOSSES", "REDUCTIONS", "batch_loss", "check_loss", "gradient_scale", "output_gradient", "per_example_loss"]

LOSSES = ("mse", "cross-entropy")
REDUCTIONS = ("sum", "mean")


def check_loss(loss: str, reduction: str) -> None:
    """Refuse an unknown loss or reduction (the message names the setting and the choices)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {reduction!r}")


def gradient_scale(loss: str, reduction: str, batch_size: int, num_classes: int) -> float:
    """``scale`` in d loss / d z = scale * (z - y) (mse) or scale * (softmax(z) - y) (cross-entropy)."""
    check_loss(loss, reduction)
    if loss == "mse":
        return 2.0 if reduction == "sum" else 2.0 / (batch_size * num_classes)
    return 1.0 if reduction == "sum" else 1.0 / batch_size


def batch_loss(loss: str, reduction: str, logits: Tensor, targets: Tensor) -> Tensor:
    """The loss of one run's batch: ``logits`` and one-hot ``targets`` of shape (B, K)."""
    if loss == "mse":
        squares = (logits - targets).square()
        return squares.sum() if reduction == "sum" else squares.mean()
    total = -(targets * logits.log_softmax(dim=-1)).sum()
    return total if reduction == "sum" else total / logits.shape[0]


def per_example_loss(loss: str, logits: Tensor, targets: Tensor) -> Tensor:
    """Each example's loss (..., B) from logits and one-hot targets (..., B, K): the squared error summed
    over the outputs, or the cross-entropy ``-log softmax(z)[y]``."""
    if loss == "mse":
        return ((logits - targets) ** 2).sum(-1)
    return -(targets * logits.log_softmax(dim=-1)).sum(-1)


def output_gradient(loss: str, logits: Tensor, targets: Tensor, scale: float, losses: Tensor | None = None) -> Tensor:
    """Overwrite ``logits`` (R, B, K) with d loss / d logits and return it; ``losses`` (R,), if given,
    receives each run's loss first (``scale / 2`` times the summed squared error, or ``scale`` times the
    summed cross-entropy: the batch loss of ``batch_loss`` either way)."""
    if loss == "mse":
        residual = logits.sub_(targets)
        if losses is not None:
            flat = residual.view(residual.shape[0], -1)
            torch.linalg.vecdot(flat, flat, out=losses).mul_(scale / 2)
        return residual.mul_(scale)
    if losses is not None:
        log_probabilities = logits.log_softmax(dim=-1)
        torch.sum(-(targets * log_probabilities), dim=(1, 2), out=losses).mul_(scale)
        probabilities = log_probabilities.exp_()
    else:
        probabilities = logits.softmax(dim=-1)
    logits.copy_(probabilities)
    return logits.sub_(targets).mul_(scale)
