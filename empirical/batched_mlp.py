"""The paper's MLP as R stacked networks evaluated and differentiated with batched matrix products.

`BatchedMLP` is the training engine's fast path for ``arch="mlp"`` (`ncgrok.empirical.engine`):
run i's layer l is ``weights[l][i]``, ``biases[l][i]`` of the plain `ncgrok.empirical.models.MLP`
stacked along a leading run axis, so one ``baddbmm``/``bmm`` serves every run. The backward pass is
written by hand (the gradient of the loss at the logits from `ncgrok.empirical.losses`, then the
chain rule through the linear layers and ReLUs) into preallocated tensors, with no autograd graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ncgrok.empirical.buffers import Workspace
from ncgrok.empirical.losses import output_gradient


class BatchedMLP:
    """The MLP as R stacked networks: weights ``(R, out, in)`` and biases ``(R, out)``.

    The tensors are used, not copied, so an optimizer updating them in place is seen here.
    ``forward`` evaluates a shared input; ``forward_backward`` computes the gradients of the squared
    error or the cross-entropy to one-hot targets for per-run batches with a hand-written backward
    pass (``bmm`` into preallocated gradient tensors; no autograd graph), the training fast path.
    """

    def __init__(self, weights: list[Tensor], biases: list[Tensor]):
        if len(weights) != len(biases) or not weights:
            raise ValueError("weights and biases must be non-empty lists of equal length")
        self.weights = weights
        self.biases = biases

    @property
    def num_runs(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: Tensor, workspace: Workspace | None = None) -> tuple[Tensor, Tensor]:
        """Logits (R, N, K) and representation (R, N, p) for a shared input x (N, ...).

        Every run's first layer is one GEMM, ``(N, D) @ (D, R*out)``, whose (R, N, out) view gets
        the bias; then ReLU in place and one ``baddbmm`` per later layer. Without ``workspace`` the
        results are fresh tensors (the first layer's keep the GEMM's sample-major memory layout).
        With a `ncgrok.empirical.buffers.Workspace` every layer writes into a contiguous buffer
        taken from it (``first``, ``z0``, ``z1``, ``logits``; the bias is added while laying the
        first layer out run-major), no allocation once the buffers have grown, and the results are
        **valid only until the next forward with that workspace**. Both give the same numbers bit
        for bit (tested; only where the values are stored differs). For depth 1 the representation
        is a view of the flattened input.
        """
        x = x.reshape(x.shape[0], -1)
        r, n = self.num_runs, x.shape[0]
        w0, b0 = self.weights[0], self.biases[0]
        width = w0.shape[1]

        def buffer(name: str, shape: tuple[int, ...]) -> Tensor | None:
            return None if workspace is None else workspace.take(name, shape, x.dtype, x.device)

        first = torch.mm(x, w0.reshape(r * width, w0.shape[2]).t(), out=buffer("first", (n, r * width)))
        z = torch.add(first.view(n, r, width).transpose(0, 1), b0.unsqueeze(1), out=buffer("z0", (r, n, width)))
        h = x.unsqueeze(0).expand(r, n, x.shape[1])
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights[1:], self.biases[1:]), start=1):
            h = z.relu_()  # z is this call's own tensor; layer i + 1 writes into the other buffer
            out = buffer("logits" if i == last else f"z{i % 2}", (r, n, w.shape[1]))
            z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), out=out)
        return z, h

    def forward_backward(
        self,
        x: Tensor,
        targets: Tensor,
        grad_weights: list[Tensor],
        grad_biases: list[Tensor],
        *,
        loss_scale: float = 2.0,
        losses: Tensor | None = None,
        loss: str = "mse",
    ) -> None:
        """Write the gradients of each run's batch loss into the given tensors.

        ``x`` (R, B, D) per-run inputs, ``targets`` (R, B, K) one-hot. ``loss="mse"``: the loss is
        ``sum((f(x) - targets)^2) * loss_scale / 2`` (``loss_scale = 2`` the summed squared loss,
        ``2 / (B K)`` its mean); ``loss="cross-entropy"``: ``loss_scale`` times the summed softmax
        cross-entropy (1 summed, ``1 / B`` the batch mean), whose logit gradient is
        ``loss_scale * (softmax(f(x)) - targets)`` (`ncgrok.empirical.losses`). ``losses`` (R,), if
        given, receives each run's loss (before the backward pass).
        """
        work = self._workspace(x)
        hs = [x]
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), out=work["z"][i])
            if i < last:
                h = z.relu_()
                hs.append(h)
        delta = output_gradient(loss, z, targets, loss_scale, losses)
        for i in range(last, -1, -1):
            torch.bmm(delta.transpose(1, 2), hs[i], out=grad_weights[i])
            torch.sum(delta, dim=1, out=grad_biases[i])
            if i > 0:
                upstream = torch.bmm(delta, self.weights[i], out=work["upstream"][i])
                # ReLU backward in place: keep the upstream gradient where the unit was active
                delta = torch.ops.aten.threshold_backward.grad_input(upstream, hs[i], 0, grad_input=upstream)

    def _workspace(self, x: Tensor) -> dict[str, list]:
        """Activation buffers reused across steps (fresh multi-MB tensors every step cost page faults)."""
        key = (tuple(x.shape), x.dtype, x.device)
        if getattr(self, "_work_key", None) != key:
            r, b = x.shape[0], x.shape[1]
            outs = [w.shape[1] for w in self.weights]
            ins = [w.shape[2] for w in self.weights]
            self._work = {
                "z": [x.new_empty(r, b, o) for o in outs],
                "upstream": [None] + [x.new_empty(r, b, i) for i in ins[1:]],
            }
            self._work_key = key
        return self._work
