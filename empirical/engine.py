"""Train many runs of one network at once (seeds x weight decays x learning rates) in one process.

A *run* is one network with its own seed (initialisation and batch order), learning rate and
weight decay; `BatchedTrainer` keeps the parameters of R runs stacked along a leading axis and
advances all of them with one batched computation per step.

Exactness contract
    Run i starts from `models.build_module(spec, seed_i)` (``torch.manual_seed(seed_i)``, default
    init, large init) and sees the batches below, so it follows the same trajectory
    (up to floating-point reassociation in the matrix products) as a plain ``nn.Module`` trained
    alone with ``torch.optim.AdamW`` / ``torch.optim.SGD`` on those batches.

Batch order (`ncgrok.empirical.batch_order`)
    Run i's batches are those of a ``DataLoader(shuffle=True, drop_last=True)`` seeded with seed_i;
    the init uses the global RNG, the batch order only that run's generator.

Optimizers (per-run ``lr`` and ``weight_decay``; shared betas/eps/momentum)
    `ncgrok.empirical.optim`: ``adamw`` is ``torch.optim.AdamW`` and ``sgd`` ``torch.optim.SGD``
    (coupled L2 decay, heavy-ball momentum), bit for bit given the gradients; ``optimizer_impl``
    ``"fused"`` (torch's fused kernel once per run; SGD only without momentum), ``"foreach"`` (the
    operations on the stacked tensors) or ``"auto"`` (fused where available).

Divergence (`ncgrok.empirical.divergence`)
    Each step the per-run batch losses are checked on the device, before the update: a run whose
    loss is not finite or exceeds ``divergence_factor`` times its first batch loss is frozen from
    that step on (the optimizer leaves its parameters and buffers unchanged, so they stay finite at
    their last accepted values) and the other runs continue bit for bit as if it had never been in
    the batch (every run has its own ``bmm`` slices and optimizer calls or rows). ``train()`` reads
    the flags once when it returns; `BatchedTrainer.diverged` lists the frozen runs. A frozen run is
    still carried through the forward and backward passes (its results are discarded).

Backends
    ``"mlp"``: hand-written batched forward/backward with ``baddbmm``/``bmm`` (`batched_mlp.BatchedMLP`),
    gradients written into preallocated tensors. Measured faster than autograd over the same ``bmm``
    graph (see ``benchmarks/engine_throughput.py``). ``"vmap"``: ``torch.func.vmap(grad(...))`` over
    ``functional_call`` (cnn, transformer). ``"loop"``: a Python loop over runs with autograd, needed for
    BatchNorm in training mode (resnet18). ``"auto"`` picks in that order.

Threads and performance (measured with ``benchmarks/engine_throughput.py`` on 2 cores)
    The torch default thread count (``torch.get_num_threads()``, one per core) is used and not
    changed. At R = 30 paper MLPs one step is ~25 ms of ``bmm`` (3.4 GFLOP at ~135 GFLOP/s, about
    0.7 of a large ``torch.mm``), ~4 ms of fused AdamW and ~1 ms of everything else. Tried and not
    adopted: autograd over the same ``bmm`` graph (~33 ms vs ~25 ms for the hand-written backward);
    the foreach AdamW (~26 ms vs ~4 ms fused; kept as ``optimizer_impl="foreach"``);
    ``torch.compile`` of the forward/backward (22 s to compile, no measurable gain: the time is in
    the BLAS calls, which inductor leaves alone); two Python worker threads with single-threaded
    kernels, each owning half the runs (+4-7 % at R = 30, worse at R = 6: not worth the complexity).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from ncgrok.empirical.batch_order import BatchOrder
from ncgrok.empirical.batched_mlp import BatchedMLP
from ncgrok.empirical.buffers import Workspace
from ncgrok.empirical.divergence import (
    DIVERGENCE_FACTOR,
    Divergence,
    divergence_init,
    divergence_load,
    divergence_observe,
    divergence_report,
    divergence_state_dict,
)
from ncgrok.empirical.losses import batch_loss, gradient_scale
from ncgrok.empirical.models import (
    ModelSpec,
    build_module,
    functional_forward,
    linear_parameter_names,
    stack_modules,
)
from ncgrok.empirical.optim import adamw_init, adamw_update, restore_frozen_runs, sgd_init, sgd_update
from ncgrok.empirical.trainer_inputs import (
    RunConfig,
    check_eval_input,
    check_trainer_settings,
    resolve_backend,
    select_device,
    training_tensors,
)

# RunConfig, select_device and the checks of the trainer's arguments live in empirical.trainer_inputs.
__all__ = ["EVAL_CHUNK_SIZE", "RunConfig", "BatchedTrainer", "Divergence", "log_schedule", "select_device"]

_STATE_FORMAT = "ncgrok.empirical.BatchedTrainer/1"
# Evaluation chunk: 512 examples keep every (runs, chunk, width) activation of a 30-run MLP sweep
# near 12 MB, under glibc's 32 MB mmap ceiling, so buffers are reused from the heap instead of
# being mapped and page-faulted afresh per chunk (2048 measured 1.5x slower per example, 2 cores).
EVAL_CHUNK_SIZE = 512


def log_schedule(total_steps: int) -> list[int]:
    """Steps (counted as completed optimizer steps) at which the paper measures.

    Every t with t < 30; every t that is a multiple of 10 with 30 <= t < 150; every t >= 150 that is
    a multiple of ``total_steps // 150``; plus 0 and ``total_steps``; all t <= total_steps. For
    100,000 steps: 0..29, 30..140 by 10, 666..99,900 by 666, and 100,000 (193 entries).
    """
    if isinstance(total_steps, bool) or int(total_steps) != total_steps or total_steps < 0:
        raise ValueError(f"total_steps must be an int >= 0, got {total_steps!r}")
    total = int(total_steps)
    steps = list(range(min(total + 1, 30)))
    steps += range(30, min(total + 1, 150), 10)
    interval = total // 150
    if interval >= 1:
        first = -(-150 // interval) * interval
        steps += range(first, total + 1, interval)
    if steps[-1] != total:
        steps.append(total)
    return steps


class BatchedTrainer:
    """R runs of one architecture trained together; see the module docstring for the exact semantics.

    ``train_x`` (N, *spec.input_shape) (for the MLP any shape with N rows and ``spec.input_dim``
    entries per row), ``train_y`` (N,) integer labels. ``loss`` (`ncgrok.empirical.losses`):
    ``"mse"``, squared error between the logits and one-hot targets, summed over batch and outputs
    (``loss_reduction="sum"``, the paper) or averaged over both (``"mean"``, like ``nn.MSELoss()``);
    ``"cross-entropy"``, softmax cross-entropy of the logits, averaged over the batch (``"mean"``,
    like ``nn.CrossEntropyLoss()``; Power et al. 2022, Nanda et al. 2023) or summed (``"sum"``).
    ``betas``: AdamW's (default torch's (0.9, 0.999); Nanda et al. use (0.9, 0.98)). ``divergence_factor`` (>= 1, ``math.inf`` for
    non-finite losses only): a run whose batch loss exceeds this multiple of its first batch loss is
    frozen (see `ncgrok.empirical.divergence.DIVERGENCE_FACTOR` for the measured default).
    """

    def __init__(
        self,
        model_spec: ModelSpec,
        runs: list[RunConfig],
        train_x: Tensor,
        train_y: Tensor,
        *,
        optimizer: str = "adamw",
        batch_size: int = 100,
        loss_reduction: str = "sum",
        loss: str = "mse",
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "auto",
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        momentum: float = 0.0,
        backend: str = "auto",
        optimizer_impl: str = "auto",
        divergence_factor: float = DIVERGENCE_FACTOR,
    ):
        runs, self.device = check_trainer_settings(
            model_spec, runs, optimizer=optimizer, loss=loss, loss_reduction=loss_reduction, dtype=dtype, device=device,
            betas=betas, eps=eps, momentum=momentum, divergence_factor=divergence_factor,
        )
        self.spec = model_spec
        self.runs = runs
        self.optimizer = optimizer
        self.batch_size = int(batch_size)
        self.loss_reduction = loss_reduction
        self.loss = loss
        self.dtype = dtype
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.divergence_factor = float(divergence_factor)
        self.step = 0

        self.backend = resolve_backend(backend, model_spec)
        self._x, self._onehot = training_tensors(model_spec, train_x, train_y, self.batch_size, self.device, dtype)
        self.num_examples = self._x.shape[0]

        # parameters: run i = build_module(spec, seed_i), stacked along dim 0
        modules = [build_module(model_spec, r.seed, dtype=dtype, device=self.device) for r in runs]
        params, buffers = stack_modules(modules)
        self._skeleton = modules[0]
        for p in self._skeleton.parameters():
            p.requires_grad_(False)
        del modules
        self.param_names = list(params)
        self.buffer_names = list(buffers)
        self._params = [params[n] for n in self.param_names]
        self._buffers = [buffers[n] for n in self.buffer_names]
        self._grads = [torch.zeros_like(p) for p in self._params]
        lrs, decays = [r.lr for r in runs], [r.weight_decay for r in runs]
        if optimizer == "adamw":
            self._optimizer_state = adamw_init(
                self._params, self._grads, lrs=lrs, weight_decays=decays, betas=self.betas, eps=self.eps, impl=optimizer_impl
            )
            self._update = adamw_update
        else:
            self._optimizer_state = sgd_init(
                self._params, self._grads, lrs=lrs, weight_decays=decays, momentum=self.momentum, impl=optimizer_impl
            )
            self._update = sgd_update
        self.optimizer_impl = self._optimizer_state.plan.impl
        self._losses = torch.zeros(len(runs), dtype=dtype, device=self.device)
        self._divergence = divergence_init(len(runs), self.device, dtype)
        self._diverged: dict[int, Divergence] = {}
        # the loop backend's BatchNorm updates its running statistics in the forward pass
        self._saved_buffers = [torch.empty_like(b) for b in self._buffers] if self.backend == "loop" else []
        self._linear_names = linear_parameter_names(self._skeleton)
        head_w, head_b = self._linear_names[-1]
        self._head_index = (self.param_names.index(head_w), self.param_names.index(head_b))
        if self.backend == "mlp":
            self._mlp = BatchedMLP(self._params[0::2], self._params[1::2])
            self._mlp_grads = (self._grads[0::2], self._grads[1::2])
            self._eval_workspace = Workspace()  # evaluate_chunk's results (see BatchedMLP.forward)

        self._batch_order = BatchOrder([r.seed for r in runs], self.num_examples, self.batch_size, self.device)
        r_count, b = len(runs), self.batch_size
        self._xb = torch.empty((r_count, b) + tuple(self._x.shape[1:]), dtype=dtype, device=self.device)
        self._yb = torch.empty((r_count, b, model_spec.num_classes), dtype=dtype, device=self.device)

    # ------------------------------------------------------------------ training

    @property
    def num_runs(self) -> int:
        return len(self.runs)

    def _next_indices(self) -> Tensor:
        return self._batch_order.next()

    def train(self, num_steps: int) -> None:
        """Advance every run by ``num_steps`` optimizer steps (``self.step`` increases by that much)."""
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 0:
            raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")
        r_count, b = self.num_runs, self.batch_size
        xb_flat = self._xb.view((r_count * b,) + tuple(self._x.shape[1:]))
        yb_flat = self._yb.view(r_count * b, -1)
        with torch.no_grad():
            for _ in range(int(num_steps)):
                idx = self._next_indices()
                torch.index_select(self._x, 0, idx, out=xb_flat)
                torch.index_select(self._onehot, 0, idx, out=yb_flat)
                if self._saved_buffers:
                    torch._foreach_copy_(self._saved_buffers, self._buffers)
                self._compute_gradients()
                self._divergence = divergence_observe(self._divergence, self._losses, self.step, self.divergence_factor)
                if self._saved_buffers:
                    restore_frozen_runs(self._buffers, self._saved_buffers, self._divergence.frozen)
                self._apply_update()
                self.step += 1
        self._diverged = divergence_report(self._divergence)

    def _apply_update(self) -> None:
        """One optimizer step of every run that is not frozen, from the gradients in ``self._grads``."""
        self._optimizer_state = self._update(self._params, self._grads, self._optimizer_state, frozen=self._divergence.frozen)

    @property
    def diverged(self) -> dict[int, Divergence]:
        """The frozen runs by index (as of the last ``train()`` return or checkpoint load)."""
        return dict(self._diverged)

    def _compute_gradients(self) -> None:
        """Gradients of every run's batch loss into ``self._grads``, the losses (R,) into ``self._losses``."""
        if self.backend == "mlp":
            scale = gradient_scale(self.loss, self.loss_reduction, self.batch_size, self.spec.num_classes)
            self._mlp.forward_backward(
                self._xb, self._yb, self._mlp_grads[0], self._mlp_grads[1], loss_scale=scale, losses=self._losses, loss=self.loss
            )
            return
        skeleton = self._skeleton
        skeleton.train()
        names, bnames = self.param_names, self.buffer_names
        if self.backend == "vmap":

            def loss_fn(p, b, x, y):
                out = torch.func.functional_call(skeleton, (p, b), (x,))
                return batch_loss(self.loss, self.loss_reduction, out, y)

            params = dict(zip(names, self._params))
            buffers = dict(zip(bnames, self._buffers))
            grads, losses = torch.func.vmap(torch.func.grad_and_value(loss_fn))(params, buffers, self._xb, self._yb)
            torch._foreach_copy_(self._grads, [grads[n] for n in names])
            self._losses.copy_(losses)
            return
        for r in range(self.num_runs):  # loop backend (BatchNorm): buffers are updated in place
            with torch.enable_grad():
                p_r = {n: p[r].detach().requires_grad_(True) for n, p in zip(names, self._params)}
                b_r = {n: b[r] for n, b in zip(bnames, self._buffers)}
                out = torch.func.functional_call(skeleton, (p_r, b_r), (self._xb[r],))
                loss = batch_loss(self.loss, self.loss_reduction, out, self._yb[r])
                grads = torch.autograd.grad(loss, list(p_r.values()))
            torch._foreach_copy_([g[r] for g in self._grads], list(grads))
            self._losses[r] = loss.detach()

    # ------------------------------------------------------------------ evaluation

    def _eval_chunk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.backend == "mlp":
            return self._mlp.forward(x)
        skeleton = self._skeleton
        skeleton.eval()
        if self.backend == "vmap":
            params = dict(zip(self.param_names, self._params))
            buffers = dict(zip(self.buffer_names, self._buffers))
            return functional_forward(skeleton, params, buffers, x)
        outs, reps = [], []
        for r in range(self.num_runs):
            p_r = {n: p[r] for n, p in zip(self.param_names, self._params)}
            b_r = {n: b[r] for n, b in zip(self.buffer_names, self._buffers)}
            o, h = torch.func.functional_call(skeleton, (p_r, b_r), (x,), {"with_representation": True})
            outs.append(o)
            reps.append(h)
        return torch.stack(outs), torch.stack(reps)

    def _evaluate(self, x: Tensor, chunk_size: int, with_representation: bool) -> tuple[Tensor, Tensor | None]:
        if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        check_eval_input(self.spec, x)
        outs, reps = [], []
        with torch.no_grad():
            if x.shape[0] == 0:
                o, h = self._eval_chunk(torch.zeros((1,) + tuple(x.shape[1:]), device=self.device, dtype=self.dtype))
                return o[:, :0], (h[:, :0] if with_representation else None)
            for start in range(0, x.shape[0], int(chunk_size)):
                xc = x[start : start + int(chunk_size)].to(device=self.device, dtype=self.dtype)
                o, h = self._eval_chunk(xc)
                outs.append(o)
                if with_representation:  # the features of a chunk are dropped as soon as they are not needed
                    reps.append(h)
        if len(outs) == 1:
            return outs[0], (reps[0] if with_representation else None)
        return torch.cat(outs, dim=1), (torch.cat(reps, dim=1) if with_representation else None)

    def forward_with_representation(self, x: Tensor, *, chunk_size: int = EVAL_CHUNK_SIZE) -> tuple[Tensor, Tensor]:
        """Logits (R, N, K) and representation g(x) (R, N, p) of every run on a shared input x (N, ...),
        in eval mode without gradients, computed ``chunk_size`` examples at a time; on the trainer's device."""
        return self._evaluate(x, chunk_size, True)

    def forward(self, x: Tensor, *, chunk_size: int = EVAL_CHUNK_SIZE) -> Tensor:
        """Logits (R, N, K) of every run on a shared input x (N, ...) (eval mode, no grad); the
        representations are never gathered, so this is the cheap path for accuracy on a large set."""
        return self._evaluate(x, chunk_size, False)[0]

    def evaluate_chunk(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (R, n, K) and representations (R, n, p) of one chunk x (n, ...), equal bit for bit
        to ``forward_with_representation(x)`` but, for the MLP, written into buffers this trainer
        reuses: **valid only until its next** ``evaluate_chunk`` **call**. For streaming consumers
        (``empirical.measure``), which would otherwise allocate, and page-fault, tens of MB per
        chunk (see ``empirical.buffers``)."""
        check_eval_input(self.spec, x)
        if self.backend != "mlp" or x.shape[0] == 0:
            return self._evaluate(x, max(1, x.shape[0]), True)
        with torch.no_grad():
            return self._mlp.forward(x.to(device=self.device, dtype=self.dtype), workspace=self._eval_workspace)

    # ------------------------------------------------------------------ parameters

    def named_parameters(self) -> dict[str, Tensor]:
        """Stacked parameters (R, ...) by ``nn.Module`` name; live tensors, do not modify in place."""
        return dict(zip(self.param_names, self._params))

    def last_layer(self) -> tuple[Tensor, Tensor]:
        """Copies of the last linear layer of every run: W (R, K, p), b (R, K)."""
        iw, ib = self._head_index
        return self._params[iw].clone(), self._params[ib].clone()

    def linear_weights(self) -> list[Tensor]:
        """Stacked weights (R, out, in) of every ``nn.Linear`` in module order (live tensors; read only)."""
        params = self.named_parameters()
        return [params[w] for w, _ in self._linear_names]

    def weight_norm(self) -> Tensor:
        """(R,) Frobenius norm of all parameters of each run (weights, biases, norm-layer affines)."""
        total = sum(p.detach().reshape(p.shape[0], -1).square().sum(dim=1) for p in self._params)
        return total.sqrt()

    def last_layer_norm(self) -> Tensor:
        """(R,) Frobenius norm of the last linear layer (weight and bias together) of each run."""
        iw, ib = self._head_index
        w, b = self._params[iw], self._params[ib]
        return (w.reshape(w.shape[0], -1).square().sum(dim=1) + b.square().sum(dim=1)).sqrt()

    def run_module(self, i: int) -> nn.Module:
        """Run i as an independent plain ``nn.Module`` (copied parameters and buffers, train mode)."""
        if not 0 <= i < self.num_runs:
            raise ValueError(f"run index must be in [0, {self.num_runs}), got {i}")
        with torch.random.fork_rng(devices=[]):
            module = self.spec.build()
        module = module.to(device=self.device, dtype=self.dtype)
        with torch.no_grad():
            for name, t in module.named_parameters():
                t.copy_(self._params[self.param_names.index(name)][i])
            for name, t in module.named_buffers():
                t.copy_(self._buffers[self.buffer_names.index(name)][i])
        return module

    # ------------------------------------------------------------------ checkpoints

    def _settings(self) -> dict[str, Any]:
        settings = {
            "optimizer": self.optimizer,
            "batch_size": self.batch_size,
            "loss_reduction": self.loss_reduction,
            "dtype": str(self.dtype),
            "betas": list(self.betas),
            "eps": self.eps,
            "momentum": self.momentum,
            "num_examples": self.num_examples,
        }
        if self.loss != "mse":  # (states saved before the loss was a setting trained the squared error)
            settings["loss"] = self.loss
        return settings

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit: parameters, buffers, optimizer moments, step,
        batch-order generators, chunk and position, divergence flags. Tensors are CPU copies; safe
        for ``torch.save``."""

        def cpu(ts: list[Tensor], names: list[str]) -> dict[str, Tensor]:
            return {n: t.detach().to("cpu", copy=True) for n, t in zip(names, ts)}

        return {
            "format": _STATE_FORMAT,
            "model_spec": self.spec.to_dict(),
            "runs": [dataclasses.asdict(r) for r in self.runs],
            "settings": self._settings(),
            "step": self.step,
            "params": cpu(self._params, self.param_names),
            "buffers": cpu(self._buffers, self.buffer_names),
            "optimizer": {k: cpu(v, self.param_names) for k, v in self._optimizer_state.buffers.items()},
            "batch_order": self._batch_order.state_dict(),
            "divergence": divergence_state_dict(self._divergence),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` taken from a trainer with the same spec, runs, settings and data size.

        A state without divergence flags (saved before they existed) restores no frozen run; each
        run's first batch loss is then the first one after loading."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"state is not a BatchedTrainer state (format {state.get('format')!r})")
        if ModelSpec.from_dict(state["model_spec"]) != self.spec:
            raise ValueError("state was saved for a different model_spec")
        if [RunConfig(**r) for r in state["runs"]] != self.runs:
            raise ValueError("state was saved for different runs (seeds, lrs, weight decays or their order)")
        if state["settings"] != self._settings():
            raise ValueError(f"state was saved with different settings: {state['settings']} vs {self._settings()}")
        with torch.no_grad():
            for names, dst, src in (
                (self.param_names, self._params, state["params"]),
                (self.buffer_names, self._buffers, state["buffers"]),
            ):
                for n, t in zip(names, dst):
                    t.copy_(src[n])
            for k, tensors in self._optimizer_state.buffers.items():
                for n, t in zip(self.param_names, tensors):
                    t.copy_(state["optimizer"][k][n])
        self._batch_order.load_state_dict(state["batch_order"])
        self.step = int(state["step"])
        self._optimizer_state = self._optimizer_state._replace(count=self.step)
        if "divergence" in state:
            self._divergence = divergence_load(
                state["divergence"], self.num_runs, self.device, self.dtype, self.divergence_factor
            )
        else:
            self._divergence = divergence_init(self.num_runs, self.device, self.dtype)
        self._diverged = divergence_report(self._divergence)
