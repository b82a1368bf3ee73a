"""Per-run divergence of a batched training: flagged on the device every step, read by the host rarely.

A run *diverges* at a step when its batch loss there, computed from its parameters before the
update, is not finite or exceeds ``factor`` times its first batch loss (`DIVERGENCE_FACTOR` by
default). From that step on the run is *frozen*: the trainer passes `DivergenceState.frozen` to the
optimizer (`ncgrok.empirical.optim`), which leaves the run's parameters and optimizer buffers
unchanged, so they stay those after its last accepted step, and the other runs continue exactly as
if it had never been in the batch. The flags are combined on the device with a few (R,)-sized
operations per step and never read by the host there; `divergence_report` reads them (one
synchronisation) and is called by the trainer when ``train()`` returns.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "STABLE_SGD_LR",
    "DIVERGENCE_FACTOR",
    "Divergence",
    "DivergenceState",
    "divergence_init",
    "divergence_observe",
    "divergence_report",
    "divergence_state_dict",
    "divergence_load",
]

DIVERGENCE_FACTOR = 1e4
"""Default limit of a run's batch loss, as a multiple of its first batch loss.

Stable SGD step sizes for the paper's initialisation, measured (our scan, not a result of the
paper): the paper's MLP (784-200-200-200-10, init x8, batch 100) on 1000 synthetic examples of 10
Gaussian classes (unit-variance inputs, like normalised MNIST), seeds 0 and 1, 200 steps, no weight
decay. Mean loss (``loss_reduction="mean"``): lr <= 1e-4 stable; 1.5e-4 diverges for one seed of
two; lr >= 2e-4 diverges for both within 3 steps (lr 0.01, the value of issue 18, within 1-2).
Summed loss (the paper's): the same with lr / 1000, as its gradient is B K = 1000 times the mean's:
lr <= 1e-7 stable, lr >= 2e-7 diverges. The first losses are large (mean loss 1.9e4 and 4.3e4).
Choice of 1e4: a stable run's training loss rose at most to 15.3 times its first value (a margin of
650), and every diverging run passed 1e4 times its first loss at least one step before its loss
stopped being finite; with this default the trainer froze every diverging run of the scan within
3 steps with finite parameters and flagged no stable run.
"""

STABLE_SGD_LR = {"mean": 1e-4, "sum": 1e-7}
"""The largest plain-SGD learning rate measured stable for the paper's x8 initialisation, by loss
reduction (the scan above; ours, not the paper's). The divergence message quotes it."""


class Divergence(NamedTuple):
    """A frozen run: its parameters are those after ``step`` optimizer steps.

    ``loss``: the batch loss at step ``step + 1`` that tripped the check (inf or nan when not
    finite); ``last_finite_loss``: the batch loss of its last accepted step (nan if it diverged at
    its first); ``reason``: ``"non-finite loss"`` or ``"loss N times its first batch loss"``.
    """

    step: int
    loss: float
    last_finite_loss: float
    reason: str


class DivergenceState(NamedTuple):
    """Per-run (R,) tensors on the training device (losses in the parameters' dtype)."""

    frozen: Tensor  # bool
    step: Tensor  # int64, completed steps when the run diverged; -1 if it has not
    loss: Tensor  # the batch loss that tripped the check
    last_loss: Tensor  # the batch loss of the last accepted step (nan before the first)
    initial: Tensor | None  # the first batch loss observed; None before the first observation
    limit: Tensor | None  # factor * initial, at most the dtype's largest number (that, if initial is not > 0)


def divergence_init(num_runs: int, device: torch.device, dtype: torch.dtype) -> DivergenceState:
    nan = torch.full((num_runs,), math.nan, dtype=dtype, device=device)
    return DivergenceState(
        frozen=torch.zeros(num_runs, dtype=torch.bool, device=device),
        step=torch.full((num_runs,), -1, dtype=torch.int64, device=device),
        loss=nan.clone(),
        last_loss=nan,
        initial=None,
        limit=None,
    )


def _limit(initial: Tensor, factor: float) -> Tensor:
    largest = torch.finfo(initial.dtype).max
    scaled = torch.clamp(initial * factor, max=largest)  # overflow or factor inf -> only non-finite losses count
    return torch.where(initial > 0, scaled, largest)  # a first loss of 0 (or nan) sets no explosion limit


def divergence_observe(state: DivergenceState, losses: Tensor, step: int, factor: float) -> DivergenceState:
    """Fold in the batch losses (R,) of step ``step + 1`` (``step`` completed); no host synchronisation."""
    if state.initial is None:
        initial = losses.clone()
        state = state._replace(initial=initial, limit=_limit(initial, factor))
    bad = ~(losses <= state.limit)  # nan, +inf and losses above the limit
    newly = bad & ~state.frozen
    frozen = state.frozen | bad
    return state._replace(
        frozen=frozen,
        step=torch.where(newly, step, state.step),
        loss=torch.where(newly, losses, state.loss),
        last_loss=torch.where(frozen, state.last_loss, losses),
    )


def divergence_report(state: DivergenceState) -> dict[int, Divergence]:
    """The frozen runs by index (one host synchronisation)."""
    frozen = state.frozen.tolist()
    if not any(frozen):
        return {}
    steps, losses, lasts = state.step.tolist(), state.loss.tolist(), state.last_loss.tolist()
    initial = state.initial.tolist()
    report = {}
    for run in (r for r, f in enumerate(frozen) if f):
        loss = losses[run]
        if math.isfinite(loss):
            reason = f"loss {loss / initial[run]:.3g} times its first batch loss"
        else:
            reason = "non-finite loss"
        report[run] = Divergence(steps[run], loss, lasts[run], reason)
    return report


def divergence_state_dict(state: DivergenceState) -> dict[str, Any]:
    """CPU copies of the per-run tensors (the limit is rebuilt from the factor on loading)."""
    fields = ("frozen", "step", "loss", "last_loss", "initial")
    return {k: (None if getattr(state, k) is None else getattr(state, k).to("cpu", copy=True)) for k in fields}


def divergence_load(
    saved: dict[str, Any], num_runs: int, device: torch.device, dtype: torch.dtype, factor: float
) -> DivergenceState:
    """The state `divergence_state_dict` saved, on ``device``, its limit from ``factor``."""
    fresh = divergence_init(num_runs, device, dtype)
    tensors = {}
    for key, like in zip(DivergenceState._fields[:4], fresh[:4]):
        value = saved[key]
        if value.shape != like.shape or value.dtype != like.dtype:
            raise ValueError(f"divergence state {key!r} must be {like.dtype} of shape {tuple(like.shape)}")
        tensors[key] = value.to(device)
    initial = None if saved["initial"] is None else saved["initial"].to(device=device, dtype=dtype)
    return DivergenceState(**tensors, initial=initial, limit=None if initial is None else _limit(initial, factor))
