"""Normalized HSIC (the NOCCO statistic of Fukumizu et al.), the paper's kernel route to Fig. 4.

For one batch of ``m`` paired samples,

    nHSIC(A;B) = Tr(R_A R_B),   R = K~ (K~ + eps m I)^-1,   K~ = H K H,   H = I - (1/m) 1 1^T,

with ``K`` the Gram matrix of a kernel. Centring on one side (``K H``) or on both (``H K H``) gives
the same nHSIC exactly: with ``f(M) = M (M + c I)^-1`` one has ``H f(K H) = f(H K H)`` and
``f(K H) 1 = 0`` (so ``f(K H) H = f(K H)``), hence ``Tr(f(H K_A H) f(H K_B H)) = Tr(H R_A H R_B) =
Tr(R_A H R_B) = Tr(R_A R_B) - (1/m) 1^T R_B R_A 1 = Tr(R_A R_B)`` with ``R = f(K H)``. ``H K H`` is
symmetric positive semi-definite and commutes with ``(H K H + c I)^-1``, so ``R`` is symmetric PSD with
eigenvalues ``l / (l + c)`` in ``[0, 1)``; ``Tr(R_A R_B)`` is the elementwise sum of ``R_A * R_B`` and
lies in ``[0, m - 1]``. The tests check this against a slow loop over the literal ``K H`` form.

Kernels: Gaussian ``exp(-||a - a'||^2 / (2 sigma^2 D))`` with ``D`` the number of columns of that
argument (``sigma = 5`` in the paper), and the linear kernel, which on one-hot labels is
``K_ij = 1[y_i = y_j]``. ``eps = 1e-5``, ``m = 100``, averaged over shuffled test-set batches and
3 passes (:meth:`NormalizedHSIC.estimate`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ncgrok.theory._validation import as_array, as_count, as_scalar

__all__ = ["NormalizedHSIC"]

_KERNELS = ("gaussian", "linear")


def _as_tensor(name: str, value: Any, device: Any) -> torch.Tensor:
    """Float64 tensor of ``value`` on ``device`` (a tensor keeps its own device when ``device`` is None)."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if device is not None:
            tensor = tensor.to(device)
        if not (tensor.is_floating_point() or tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)):
            raise ValueError(f"{name} must be a real numeric tensor, got dtype {tensor.dtype}")
        tensor = tensor.to(torch.float64)
        if tensor.numel() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} contains NaN or infinite values; remove or fix them")
        return tensor
    array = as_array(name, value)
    return torch.from_numpy(np.ascontiguousarray(array)).to(device or "cpu")


class _single_thread_on_cpu:
    """Context manager: ``torch.set_num_threads(1)`` while inside, on CPU devices only."""

    def __init__(self, device: Any) -> None:
        self.active = torch.device(device).type == "cpu"

    def __enter__(self) -> None:
        if self.active:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(1)

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            torch.set_num_threads(self.saved)


class NormalizedHSIC:
    """Normalized HSIC ``nHSIC(A;B) = Tr(R_A R_B)`` (the NOCCO form used in the paper's Fig. 4).

    ``R = K~ (K~ + eps m I)^-1`` with ``K~ = H K H`` the doubly centred Gram matrix (equal, for the
    trace, to the spec's ``K H``; see the module docstring) and ``m`` the batch size. Computed in
    float64 as ``R = I - eps m (K~ + eps m I)^-1`` (the same matrix, since ``K~`` commutes with the
    inverse) from a Cholesky factorisation of the positive-definite system (``torch.linalg.inv`` is
    the fallback if it fails), batched over many batches at once, on the device of the inputs (or
    ``device``); on the CPU the factorisation runs single-threaded, which was 10-30x faster here.

    Args:
        sigma: Gaussian kernel width (> 0); the kernel is ``exp(-||a - a'||^2 / (2 sigma^2 D))``.
        eps: ridge ``eps`` (> 0); the regulariser is ``eps * m``.
        kernel_x: kernel of the **first** argument ``a``: ``"gaussian"`` or ``"linear"``.
        kernel_y: kernel of the **second** argument ``b``: ``"gaussian"`` or ``"linear"``
            (``"linear"`` for labels).
        device: torch device for the computation; default: the input tensor's device, else CPU.

    With the linear kernel a 1-D argument is read as integer class labels and one-hot encoded, which
    gives ``K_ij = 1[y_i = y_j]``; a 2-D argument (e.g. one-hot rows) gives ``K = B B^T``. With the
    Gaussian kernel a 1-D argument is one feature (``D = 1``).
    """

    def __init__(
        self,
        sigma: float = 5.0,
        eps: float = 1e-5,
        kernel_x: str = "gaussian",
        kernel_y: str = "gaussian",
        *,
        device: Any = None,
    ) -> None:
        self.sigma = as_scalar("sigma", sigma, positive=True)
        self.eps = as_scalar("eps", eps, positive=True)
        for name, kernel in (("kernel_x", kernel_x), ("kernel_y", kernel_y)):
            if kernel not in _KERNELS:
                raise ValueError(f"{name} must be one of {_KERNELS}, got {kernel!r}")
        self.kernel_x = kernel_x
        self.kernel_y = kernel_y
        self.device = device

    def __repr__(self) -> str:
        return (
            f"NormalizedHSIC(sigma={self.sigma:g}, eps={self.eps:g}, kernel_x={self.kernel_x!r}, "
            f"kernel_y={self.kernel_y!r})"
        )

    # -- input handling -------------------------------------------------------------------------

    def _prepare(self, name: str, value: Any, kernel: str) -> torch.Tensor:
        """(N, D) float64 features, or (N,) labels for the linear kernel."""
        tensor = _as_tensor(name, value, self.device)
        if tensor.ndim == 1:
            if kernel == "linear":
                if not bool(torch.all(tensor == torch.round(tensor))):
                    raise ValueError(
                        f"{name}: a 1-D input to the linear kernel is read as integer class labels, "
                        "but it holds non-integers; pass (N, D) features instead"
                    )
                return tensor
            return tensor[:, None]
        if tensor.ndim != 2:
            raise ValueError(f"{name} must have shape (N, D) (or (N,) labels), got {tuple(tensor.shape)}")
        if tensor.shape[1] < 1:
            raise ValueError(f"{name} must have at least one column, got shape {tuple(tensor.shape)}")
        return tensor

    def _pair(self, a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
        a_t = self._prepare("a", a, self.kernel_x)
        b_t = self._prepare("b", b, self.kernel_y)
        if a_t.shape[0] != b_t.shape[0]:
            raise ValueError(f"a and b must hold the same number of samples, got {a_t.shape[0]} and {b_t.shape[0]}")
        if b_t.device != a_t.device:
            b_t = b_t.to(a_t.device)
        return a_t, b_t

    # -- the statistic --------------------------------------------------------------------------

    def _gram(self, values: torch.Tensor, kernel: str) -> torch.Tensor:
        """Gram matrices (B, m, m) of a stack of batches (B, m, D), or (B, m) labels."""
        if values.ndim == 2:  # labels, linear kernel on their one-hot encoding
            return (values[:, :, None] == values[:, None, :]).to(torch.float64)
        if kernel == "linear":
            return values @ values.transpose(1, 2)
        squared_norms = (values * values).sum(dim=2)
        distances = squared_norms[:, :, None] + squared_norms[:, None, :] - 2.0 * (values @ values.transpose(1, 2))
        distances = distances.clamp_min(0.0)
        distances.diagonal(dim1=1, dim2=2).zero_()
        return torch.exp(-distances / (2.0 * self.sigma**2 * values.shape[2]))

    def _resolvent(self, gram: torch.Tensor) -> torch.Tensor:
        """``R = K~ (K~ + eps m I)^-1`` with ``K~ = H K H`` for a stack (B, m, m); symmetric."""
        m = gram.shape[1]
        centred = gram - gram.mean(dim=1, keepdim=True) - gram.mean(dim=2, keepdim=True) + gram.mean(dim=(1, 2), keepdim=True)
        centred = 0.5 * (centred + centred.transpose(1, 2))
        ridge = self.eps * m
        identity = torch.eye(m, dtype=torch.float64, device=gram.device)
        system = centred + ridge * identity
        # R = K~ (K~ + cI)^-1 = I - c (K~ + cI)^-1: one inverse, no right-hand side. On the CPU the
        # batched LAPACK calls run on one thread: with torch's default thread pool they were 10-30x
        # slower here (batched small factorisations oversubscribe the cores).
        with _single_thread_on_cpu(gram.device):
            factor, info = torch.linalg.cholesky_ex(system)
            if bool((info == 0).all()):
                inverse = torch.cholesky_inverse(factor)
            else:  # not numerically positive definite (should not happen for eps > 0): general solver
                inverse = torch.linalg.inv(system)
        resolvent = identity - ridge * inverse
        return 0.5 * (resolvent + resolvent.transpose(1, 2))

    def _stack(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """nHSIC of each batch of the stacks ``a`` (B, m, ...) and ``b`` (B, m, ...); shape (B,)."""
        r_a = self._resolvent(self._gram(a, self.kernel_x))
        r_b = self._resolvent(self._gram(b, self.kernel_y))
        return (r_a * r_b).sum(dim=(1, 2))

    def __call__(self, a: Any, b: Any) -> float:
        """nHSIC of one batch: ``a`` (m, D_a), ``b`` (m, D_b) (or (m,) labels), numpy or torch."""
        a_t, b_t = self._pair(a, b)
        if a_t.shape[0] < 2:
            raise ValueError(f"a and b need at least 2 samples for a centred Gram matrix, got {a_t.shape[0]}")
        return float(self._stack(a_t[None], b_t[None])[0])

    def batch_values(
        self,
        a: Any,
        b: Any,
        *,
        batch_size: int = 100,
        passes: int = 3,
        seed: int = 0,
        chunk: int = 32,
    ) -> np.ndarray:
        """nHSIC of every batch: array (passes, N // batch_size).

        Each pass draws a fresh permutation of the ``N`` samples (``numpy.random.default_rng(seed)``,
        so the same ``seed`` gives the same batches for any ``a, b`` of the same length, e.g.
        ``nHSIC(Z;X)`` and ``nHSIC(Z;Y)`` on identical batches) and cuts it into
        ``N // batch_size`` batches; the last ``N % batch_size`` samples of that pass are left out.
        ``chunk`` batches are evaluated at a time (memory ~ ``chunk * batch_size * D`` floats).
        """
        a_t, b_t = self._pair(a, b)
        batch_size = as_count("batch_size", batch_size, minimum=2)
        passes = as_count("passes", passes)
        chunk = as_count("chunk", chunk)
        count = a_t.shape[0]
        if count < batch_size:
            raise ValueError(f"batch_size ({batch_size}) must not exceed the number of samples ({count})")
        num_batches = count // batch_size
        rng = np.random.default_rng(seed)
        values = np.empty((passes, num_batches))
        for pass_index in range(passes):
            order = torch.from_numpy(rng.permutation(count)[: num_batches * batch_size]).to(a_t.device)
            order = order.reshape(num_batches, batch_size)
            for start in range(0, num_batches, chunk):
                rows = order[start : start + chunk]
                values[pass_index, start : start + rows.shape[0]] = self._stack(a_t[rows], b_t[rows]).cpu().numpy()
        return values

    def estimate(self, a: Any, b: Any, *, batch_size: int = 100, passes: int = 3, seed: int = 0) -> float:
        """Mean nHSIC over shuffled batches and passes (the paper: test set, ``m = 100``, 3 passes).

        See :meth:`batch_values` for how batches are drawn.
        """
        return float(self.batch_values(a, b, batch_size=batch_size, passes=passes, seed=seed).mean())
