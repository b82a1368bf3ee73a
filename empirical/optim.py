"""AdamW and SGD for many runs stacked along a leading axis, as explicit state and step functions.

Every parameter tensor has shape (R, ...): run r's parameters are the slices ``[r]``. Each run has
its own learning rate and weight decay; betas, eps and momentum are shared by all runs. The model is
optax's ``init``/``update``: `adamw_init` (`sgd_init`) builds the state once, with everything that
does not change between steps (hyperparameters, per-run views, decay factors, scratch buffers), and
`adamw_update(params, grads, state)` (`sgd_update`) performs one step and returns the next state.
Unlike optax, the step is written **in place** into the parameters and the optimizer buffers (the
returned state holds the same tensors with ``count`` advanced): a copy of the ~10^7 numbers of a
sweep per step would cost as much as the update itself. A state is therefore bound to the parameter
and gradient tensors it was initialised with, and the gradient tensors may be overwritten (SGD adds
the weight decay term into them).

Semantics (bit for bit the torch optimizers given the same gradients; tests/empirical/test_optim.py)
    AdamW, ``impl="fused"``: the kernel behind ``torch.optim.AdamW(fused=True)``, called once per
    `RunGroup` (runs sharing lr and weight decay) with a list of tensors. The kernel rounds the
    second moment of elements in vector registers and in scalar tails differently, so a tensor
    spanning several runs is only passed where that cannot move a run boundary into a tail: for
    consecutive runs, a parameter whose per-run size is a multiple of `MERGE_UNIT` elements is one
    (k, ...) slice (every element of every run then goes through the vector code, as it does for the
    run alone); every other parameter is one view per run. On the paper's MLP that turns 240
    tensor passes per step into 60 weight slices and 120 bias views (about 1 ms of 7 at R = 30,
    2-core AMD EPYC). While any run is frozen, and off the CPU (where asking whether one is would
    stop the device queue), the kernel is called once per run instead, each run with its own skip flag.
    ``impl="foreach"``: the operations of ``torch.optim.AdamW(foreach=False)`` in its order on the
    stacked tensors, per-run factors broadcast as (R, 1, ...) tensors: decoupled decay
    ``p *= decoupled_decay(lr, wd)``; ``m.lerp_(g, 1 - beta1)``; ``v = beta2 v + (1 - beta2) g^2``;
    ``denom = sqrt(v) / sqrt(1 - beta2^t) + eps``; ``p += (-lr / (1 - beta1^t)) * m / denom``.
    SGD: ``torch.optim.SGD`` (coupled L2 decay ``g += wd p``; heavy-ball momentum, the buffer set to
    the first gradient, no dampening, no Nesterov). ``impl="fused"`` (momentum 0 only): torch's fused
    SGD kernel once per run, which then equals the default ``torch.optim.SGD``; ``"foreach"``: its
    operations as foreach calls, one set per `RunGroup` of runs sharing (lr, weight decay) (a
    (k, ...) slice when they are consecutive; these elementwise operations round alike everywhere).
    ``impl="auto"`` is fused where torch has the kernel for the device (CPU, CUDA) and it applies.

Frozen runs (``frozen``, an (R,) bool tensor on the parameters' device)
    A run with ``frozen[r]`` true keeps its parameters and optimizer buffers exactly at this step;
    the other runs are updated exactly as without the mask. The mask is read on the device, never
    by the host: a fused kernel receives it as its ``found_inf`` flag (the kernel returns without
    touching that run, the mechanism of torch's GradScaler), so masking costs nothing there; the
    foreach implementations copy the tensors they change before the step and put the frozen runs'
    values back with ``torch.where``. Measured per update on 30 paper MLPs (one thread, shared
    machine), without -> with a mask: fused AdamW 5.8 -> 5.5 ms, fused SGD 3.4 -> 3.5 ms (the
    foreach SGD it replaces for momentum 0: 6.2 ms unmasked), foreach SGD with momentum 11 -> 29 ms,
    foreach AdamW 27 -> 78 ms.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ncgrok.theory.timescales import decoupled_decay

__all__ = [
    "RunGroup",
    "group_runs",
    "AdamWState",
    "adamw_init",
    "adamw_update",
    "SGDState",
    "sgd_init",
    "sgd_update",
    "restore_frozen_runs",
    "MERGE_UNIT",
]

# Elements: a multiple of every x86 float32/float64 vector width of ATen's kernels (8 or 16; 4 or 8)
# and of the fused kernels' 64-byte work unit, so a slice of runs each this many elements long has
# no scalar tail inside it or at its end.
MERGE_UNIT = 16


# ------------------------------------------------------------------------------------ run groups


class RunGroup(NamedTuple):
    """Runs sharing a learning rate and a weight decay, by index (ascending)."""

    lr: float
    weight_decay: float
    runs: tuple[int, ...]


def group_runs(lrs: Sequence[float], weight_decays: Sequence[float]) -> tuple[RunGroup, ...]:
    """Runs grouped by (lr, weight decay), groups in order of their first run."""
    groups: dict[tuple[float, float], list[int]] = {}
    for run, key in enumerate(zip(lrs, weight_decays)):
        groups.setdefault(key, []).append(run)
    return tuple(RunGroup(lr, wd, tuple(runs)) for (lr, wd), runs in groups.items())


def _group_views(tensors: list[Tensor], runs: tuple[int, ...]) -> list[Tensor]:
    """One (k, ...) slice per tensor for consecutive runs, else one view per run and tensor."""
    if runs == tuple(range(runs[0], runs[-1] + 1)):
        return [t[runs[0] : runs[-1] + 1] for t in tensors]
    return [t[r] for r in runs for t in tensors]


def _checked_inputs(params: list[Tensor], grads: list[Tensor], lrs: Sequence[float], weight_decays: Sequence[float]):
    """Per-run lrs and weight decays as float tuples, after checking them against the stacked tensors."""
    if not params:
        raise ValueError("params must be a non-empty list of (R, ...) tensors")
    num_runs = params[0].shape[0] if params[0].dim() > 0 else 0
    if num_runs < 1 or any(p.dim() == 0 or p.shape[0] != num_runs for p in params):
        raise ValueError("params must all have the same leading (run) dimension R >= 1")
    if len(grads) != len(params) or any(g.shape != p.shape for g, p in zip(grads, params)):
        raise ValueError("grads must have the shapes of params")
    lrs, weight_decays = tuple(float(v) for v in lrs), tuple(float(v) for v in weight_decays)
    for name, values in (("lrs", lrs), ("weight_decays", weight_decays)):
        if len(values) != num_runs:
            raise ValueError(f"{name} must have one entry per run ({num_runs}), got {len(values)}")
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"{name} must be finite numbers >= 0, got {list(values)}")
    return lrs, weight_decays


def _check_bound(bound: tuple[list[Tensor], list[Tensor]], params: list[Tensor], grads: list[Tensor]) -> None:
    for name, given, expected in (("params", params, bound[0]), ("grads", grads, bound[1])):
        if len(given) != len(expected) or any(a is not b for a, b in zip(given, expected)):
            raise ValueError(f"{name} must be the tensors the state was initialised with (the update is in place)")


def _broadcast(mask: Tensor, like: Tensor) -> Tensor:
    """(R,) -> (R, 1, ..., 1) broadcasting against ``like`` (R, ...)."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


def restore_frozen_runs(tensors: list[Tensor], saved: list[Tensor], frozen: Tensor) -> None:
    """Put back ``saved`` values (like ``tensors``, (R, ...)) for the runs with ``frozen[r]``, in place."""
    for t, s in zip(tensors, saved):
        torch.where(_broadcast(frozen, t), s, t, out=t)


def _resolve_impl(impl: str, kernel: str, device: torch.device, *, fused_allowed: bool = True, why_not: str = "") -> str:
    """``"auto"`` -> ``"fused"`` where torch has ``kernel`` for the device (and it is allowed), else ``"foreach"``."""
    if impl not in ("auto", "fused", "foreach"):
        raise ValueError(f"optimizer_impl must be 'auto', 'fused' or 'foreach', got {impl!r}")
    available = hasattr(torch, kernel) and torch.device(device).type in ("cpu", "cuda")
    if impl == "auto":
        return "fused" if available and fused_allowed else "foreach"
    if impl == "fused" and not available:
        raise ValueError(f"optimizer_impl='fused' needs a torch with {kernel} for this device; use 'foreach'")
    if impl == "fused" and not fused_allowed:
        raise ValueError(f"optimizer_impl='fused' {why_not}; use 'foreach'")
    return impl


class _PerRunCalls(NamedTuple):
    """For a fused kernel called once per run: each run's views of some tensor lists, and its skip flag."""

    views: tuple[tuple[list[Tensor], ...], ...]  # views[r][k]: run r's slices of the k-th list
    skip: Tensor  # (R,) float32 0/1, the kernel's found_inf flag of each run
    skip_views: tuple[Tensor, ...]

    def flags(self, frozen: Tensor | None) -> list[Tensor | None]:
        """The per-run found_inf arguments for this step (None everywhere without a mask)."""
        if frozen is None:
            return [None] * len(self.views)
        self.skip.copy_(frozen)
        return list(self.skip_views)


def _per_run_calls(*tensor_lists: list[Tensor]) -> _PerRunCalls:
    first = tensor_lists[0][0]
    num_runs = first.shape[0]
    skip = torch.zeros(num_runs, dtype=torch.float32, device=first.device)
    views = tuple(tuple([t[r] for t in tensors] for tensors in tensor_lists) for r in range(num_runs))
    return _PerRunCalls(views, skip, tuple(skip[r] for r in range(num_runs)))


# ------------------------------------------------------------------------------------ AdamW


class _GroupCall(NamedTuple):
    """One fused-kernel call for the runs of a `RunGroup`: lists of tensors (params, grads, moments)."""

    lr: float
    weight_decay: float
    tensors: tuple[list[Tensor], ...]


class _GroupedCalls(NamedTuple):
    """Fused calls per run group (used while no run is frozen, on the CPU) and per run (otherwise)."""

    groups: tuple[_GroupCall, ...]
    per_run: _PerRunCalls


def _group_calls(groups: tuple[RunGroup, ...], *tensor_lists: list[Tensor]) -> tuple[_GroupCall, ...]:
    """Per group, each tensor as one slice of consecutive runs when its per-run size is a multiple of
    `MERGE_UNIT`, else as one view per run (see the module docstring)."""
    calls = []
    for group in groups:
        first, last = group.runs[0], group.runs[-1]
        consecutive = group.runs == tuple(range(first, last + 1))
        lists: tuple[list[Tensor], ...] = tuple([] for _ in tensor_lists)
        for index in range(len(tensor_lists[0])):
            per_run = tensor_lists[0][index][0].numel()
            for out, tensors in zip(lists, tensor_lists):
                if consecutive and per_run % MERGE_UNIT == 0:
                    out.append(tensors[index][first : last + 1])
                else:
                    out.extend(tensors[index][r] for r in group.runs)
        calls.append(_GroupCall(group.lr, group.weight_decay, lists))
    return tuple(calls)


class _ForeachAdamW(NamedTuple):
    decay: list[Tensor] | None  # per parameter, (R, 1, ...) decoupled_decay(lr, wd); None without decay
    denom: list[Tensor]
    update: list[Tensor]
    saved: list[Tensor]  # copies of parameters and moments for the frozen runs


class AdamWPlan(NamedTuple):
    """What `adamw_init` fixes once: hyperparameters, the bound tensors, per-run views and scratch."""

    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    betas: tuple[float, float]
    eps: float
    impl: str
    bound: tuple[list[Tensor], list[Tensor]]
    step: Tensor  # 0-dim float32: the step number the fused kernel reads for its bias corrections
    work: _GroupedCalls | _ForeachAdamW


class AdamWState(NamedTuple):
    """First and second moments (each like the parameters), completed steps, and the fixed plan."""

    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]
    count: int
    plan: AdamWPlan

    @property
    def buffers(self) -> dict[str, list[Tensor]]:
        """The optimizer buffers by the names ``torch.optim.AdamW`` gives them."""
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}


def adamw_init(
    params: list[Tensor],
    grads: list[Tensor],
    *,
    lrs: Sequence[float],
    weight_decays: Sequence[float],
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    impl: str = "auto",
) -> AdamWState:
    """Zero moments and the plan for stacked ``params`` (R, ...) with per-run ``lrs`` and ``weight_decays``.

    ``grads`` are the tensors (like ``params``) the gradients will be written into before each
    `adamw_update`; every parameter-sized buffer the update needs is allocated here.
    """
    lrs, weight_decays = _checked_inputs(params, grads, lrs, weight_decays)
    if not (len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    device, dtype = params[0].device, params[0].dtype
    impl = _resolve_impl(impl, "_fused_adamw_", device)
    exp_avg = [torch.zeros_like(p) for p in params]
    exp_avg_sq = [torch.zeros_like(p) for p in params]
    if impl == "fused":
        tensors = (params, grads, exp_avg, exp_avg_sq)
        groups = _group_calls(group_runs(lrs, weight_decays), *tensors) if device.type == "cpu" else ()
        work: _GroupedCalls | _ForeachAdamW = _GroupedCalls(groups, _per_run_calls(*tensors))
    else:
        # decoupled_decay in Python doubles, as torch.optim.AdamW computes it, then cast once
        factors = torch.tensor([decoupled_decay(lr, wd) for lr, wd in zip(lrs, weight_decays)], dtype=dtype, device=device)
        work = _ForeachAdamW(
            decay=[_broadcast(factors, p) for p in params] if any(wd != 0 for wd in weight_decays) else None,
            denom=[torch.empty_like(p) for p in params],
            update=[torch.empty_like(p) for p in params],
            saved=[torch.empty_like(p) for p in params + exp_avg + exp_avg_sq],
        )
    step = torch.zeros((), dtype=torch.float32, device=device)
    plan = AdamWPlan(lrs, weight_decays, (float(betas[0]), float(betas[1])), float(eps), impl, (list(params), list(grads)), step, work)
    return AdamWState(exp_avg, exp_avg_sq, 0, plan)


def adamw_update(params: list[Tensor], grads: list[Tensor], state: AdamWState, *, frozen: Tensor | None = None) -> AdamWState:
    """One AdamW step of every run not ``frozen``, in place; returns the state with ``count + 1``."""
    plan = state.plan
    _check_bound(plan.bound, params, grads)
    beta1, beta2 = plan.betas
    t = state.count + 1
    work = plan.work
    if isinstance(work, _GroupedCalls):
        plan.step.fill_(t)
        options = dict(beta1=beta1, beta2=beta2, eps=plan.eps, amsgrad=False, maximize=False)
        if work.groups and (frozen is None or not bool(frozen.any())):
            for call in work.groups:
                p, g, m, v = call.tensors
                torch._fused_adamw_(p, g, m, v, [], [plan.step] * len(p), lr=call.lr, weight_decay=call.weight_decay,
                                    **options)
            return state._replace(count=t)
        steps = [plan.step] * len(params)
        for r, ((p, g, m, v), skip) in enumerate(zip(work.per_run.views, work.per_run.flags(frozen))):
            torch._fused_adamw_(p, g, m, v, [], steps, lr=plan.lrs[r], weight_decay=plan.weight_decays[r],
                                found_inf=skip, **options)
        return state._replace(count=t)
    exp_avg, exp_avg_sq = state.exp_avg, state.exp_avg_sq
    changed = params + exp_avg + exp_avg_sq
    if frozen is not None:
        torch._foreach_copy_(work.saved, changed)
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    if work.decay is not None:
        torch._foreach_mul_(params, work.decay)
    torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sq, beta2)
    torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
    for d, v in zip(work.denom, exp_avg_sq):
        torch.sqrt(v, out=d)
    torch._foreach_div_(work.denom, bias_correction2**0.5)
    torch._foreach_add_(work.denom, plan.eps)
    # -(lr / bias_correction1) in Python doubles per run, rounded once to the parameters' dtype
    step_size = torch.tensor([-(lr / bias_correction1) for lr in plan.lrs], dtype=params[0].dtype, device=params[0].device)
    for u, m in zip(work.update, exp_avg):
        torch.mul(m, _broadcast(step_size, m), out=u)
    torch._foreach_div_(work.update, work.denom)
    torch._foreach_add_(params, work.update)
    if frozen is not None:
        restore_frozen_runs(changed, work.saved, frozen)
    return state._replace(count=t)


# ------------------------------------------------------------------------------------ SGD


class _SGDGroup(NamedTuple):
    lr: float
    weight_decay: float
    params: list[Tensor]
    grads: list[Tensor]
    momentum_buffer: list[Tensor]


class _ForeachSGD(NamedTuple):
    groups: tuple[_SGDGroup, ...]
    saved: list[Tensor]  # copies of parameters (and momentum buffers) for the frozen runs


class SGDPlan(NamedTuple):
    """What `sgd_init` fixes once: hyperparameters, the bound tensors, per-run or per-group views, scratch."""

    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    momentum: float
    impl: str
    bound: tuple[list[Tensor], list[Tensor]]
    work: _PerRunCalls | _ForeachSGD


class SGDState(NamedTuple):
    """Momentum buffers (like the parameters; allocated even for momentum 0), completed steps, the plan."""

    momentum_buffer: list[Tensor]
    count: int
    plan: SGDPlan

    @property
    def buffers(self) -> dict[str, list[Tensor]]:
        """The optimizer buffers by the name ``torch.optim.SGD`` gives them."""
        return {"momentum_buffer": self.momentum_buffer}


def sgd_init(
    params: list[Tensor],
    grads: list[Tensor],
    *,
    lrs: Sequence[float],
    weight_decays: Sequence[float],
    momentum: float = 0.0,
    impl: str = "auto",
) -> SGDState:
    """Zero momentum buffers and the plan for stacked ``params`` with per-run ``lrs`` and ``weight_decays``.

    ``impl="fused"`` (``"auto"`` where available) needs momentum 0: the fused SGD kernel then equals
    the default ``torch.optim.SGD`` bit for bit, while with momentum it rounds the buffer update
    differently.
    """
    lrs, weight_decays = _checked_inputs(params, grads, lrs, weight_decays)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    impl = _resolve_impl(impl, "_fused_sgd_", params[0].device, fused_allowed=momentum == 0,
                         why_not="for sgd needs momentum 0 (with momentum the fused kernel is not torch.optim.SGD's default)")
    buffers = [torch.zeros_like(p) for p in params]
    if impl == "fused":
        work: _PerRunCalls | _ForeachSGD = _per_run_calls(params, grads)
    else:
        groups = tuple(
            _SGDGroup(g.lr, g.weight_decay, *(_group_views(t, g.runs) for t in (params, grads, buffers)))
            for g in group_runs(lrs, weight_decays)
        )
        changed = params + buffers if momentum != 0 else params
        work = _ForeachSGD(groups, [torch.empty_like(t) for t in changed])
    plan = SGDPlan(lrs, weight_decays, float(momentum), impl, (list(params), list(grads)), work)
    return SGDState(buffers, 0, plan)


def sgd_update(params: list[Tensor], grads: list[Tensor], state: SGDState, *, frozen: Tensor | None = None) -> SGDState:
    """One SGD step of every run not ``frozen``, in place (``grads`` may receive the decay term)."""
    plan = state.plan
    _check_bound(plan.bound, params, grads)
    work = plan.work
    if isinstance(work, _PerRunCalls):
        for r, ((p, g), skip) in enumerate(zip(work.views, work.flags(frozen))):
            torch._fused_sgd_(
                p, g, [], weight_decay=plan.weight_decays[r], momentum=0.0, lr=plan.lrs[r], dampening=0.0,
                nesterov=False, maximize=False, is_first_step=state.count == 0, found_inf=skip,
            )
        return state._replace(count=state.count + 1)
    changed = params + state.momentum_buffer if plan.momentum != 0 else params
    if frozen is not None:
        torch._foreach_copy_(work.saved, changed)
    for group in work.groups:
        step = group.grads
        if group.weight_decay != 0:
            torch._foreach_add_(step, group.params, alpha=group.weight_decay)
        if plan.momentum != 0:
            if state.count == 0:
                torch._foreach_copy_(group.momentum_buffer, step)
            else:
                torch._foreach_mul_(group.momentum_buffer, plan.momentum)
                torch._foreach_add_(group.momentum_buffer, step)
            step = group.momentum_buffer
        torch._foreach_add_(group.params, step, alpha=-group.lr)
    if frozen is not None:
        restore_frozen_runs(changed, work.saved, frozen)
    return state._replace(count=state.count + 1)
