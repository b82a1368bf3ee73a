"""Information estimators of the paper's information-plane measurements (Fig. 4 of arXiv:2509.20829).

Two families, both computed on held-out (test-set) data of a trained network's representation
``Z = g(X)``, the flattened input ``X`` and the labels ``Y``:

**Normalized HSIC** (:class:`NormalizedHSIC`; the NOCCO statistic of Fukumizu et al.). For one batch
of ``m`` paired samples,

    nHSIC(A;B) = Tr(R_A R_B),   R = K~ (K~ + eps m I)^-1,   K~ = H K H,   H = I - (1/m) 1 1^T,

with ``K`` the Gram matrix of a kernel. The spec says "Gram matrix times the centering matrix",
i.e. ``K H``; we centre on both sides, ``H K H``. **The two give the same nHSIC exactly**:
with ``f(M) = M (M + c I)^-1`` one has ``H f(K H) = f(H K H)`` and ``f(K H) 1 = 0`` (so
``f(K H) H = f(K H)``), hence ``Tr(f(H K_A H) f(H K_B H)) = Tr(H R_A H R_B) = Tr(R_A H R_B)
= Tr(R_A R_B) - (1/m) 1^T R_B R_A 1 = Tr(R_A R_B)`` with ``R = f(K H)``. ``H K H`` is symmetric
positive semi-definite and commutes with ``(H K H + c I)^-1``, so ``R`` is symmetric PSD with
eigenvalues ``l / (l + c)`` in ``[0, 1)``; ``Tr(R_A R_B)`` is then the elementwise sum of
``R_A * R_B`` and lies in ``[0, m - 1]``. The tests check this against a slow loop implementation of
the literal ``K H`` form.

Kernels: Gaussian ``exp(-||a - a'||^2 / (2 sigma^2 D))`` with ``D`` the number of columns of that
argument (``sigma = 5`` in the paper), and the linear kernel, which on one-hot labels is
``K_ij = 1[y_i = y_j]``. ``eps = 1e-5``, ``m = 100``, averaged over shuffled test-set batches and
3 passes (:meth:`NormalizedHSIC.estimate`).

**Compressed mutual information** (:class:`CompressedMutualInformation`; after Butakov et al.,
ICLR 2024). ``X`` is compressed by an autoencoder (:class:`InputAutoencoder`, latent dimension 4,
trained once per data set and cached on disk), ``Z`` by PCA to 4 dimensions; both are whitened, and
differential entropies are estimated with the Kozachenko-Leonenko ``k``-nearest-neighbour estimator
(:class:`KNNEntropy`, ``k = 5``):

    I(Z;X) = h(Z) + h(X) - h(Z,X),     I(Z;Y) = h(Z) - sum_y p(y) h(Z | Y=y).

All information values are in **nats**. The compressed-MI estimate can be negative (estimator bias);
that is expected and reported as is.

These are measurement tools, not results of the paper: the paper *uses* them to show the late
compression predicted by Thm. 3.4 (``I(Z;X) - I(Z;Y)`` falls as the within-class variance falls).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from ncgrok.files import atomic_write_bytes
from ncgrok.theory._validation import as_array, as_count, as_scalar, to_numpy

__all__ = [
    "NormalizedHSIC",
    "KNNEntropy",
    "CompressedMutualInformation",
    "CompressedInformation",
    "AutoencoderConfig",
    "InputAutoencoder",
    "fit_or_load",
    "whiten",
]

_KERNELS = ("gaussian", "linear")
_DUPLICATE_RULES = ("jitter", "raise")


# =============================================================================================
# Normalized HSIC


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


# =============================================================================================
# Kozachenko-Leonenko entropy


def _points(name: str, value: Any) -> np.ndarray:
    points = as_array(name, value, ndim=(1, 2))
    if points.ndim == 1:
        points = points[:, None]
    if points.shape[1] < 1:
        raise ValueError(f"{name} must have at least one column, got shape {points.shape}")
    return points


def _kth_neighbour_distances(points: np.ndarray, k: int, workers: int) -> np.ndarray:
    """Euclidean distance from each point to its ``k``-th nearest *other* point."""
    tree = cKDTree(points)
    distances, _ = tree.query(points, k=k + 1, p=2, workers=workers)
    return distances[:, k]  # column 0 is the point itself (or a duplicate of it, also at 0)


def _break_ties(
    name: str, points: np.ndarray, *, k: int, rule: str, jitter: float, seed: int, workers: int
) -> np.ndarray:
    """Apply the duplicate rule when some point has ``>= k`` exact copies (k-th distance 0)."""
    if np.all(_kth_neighbour_distances(points, k, workers) > 0):
        return points
    if rule == "raise":
        raise ValueError(
            f"{name} has points with at least k = {k} exact duplicates (k-th neighbour distance 0); its "
            "differential entropy is -inf. Use duplicates='jitter' or remove the duplicates"
        )
    spread = float(np.sqrt(np.mean(np.var(points, axis=0))))
    scale = jitter * (spread if spread > 0 else 1.0)
    rng = np.random.default_rng(seed)
    return points + scale * rng.standard_normal(points.shape)


class KNNEntropy:
    """Kozachenko-Leonenko k-nearest-neighbour estimate of differential entropy, in nats.

    With ``N`` points in ``d`` dimensions and ``eps_i`` the **Euclidean** distance from point ``i`` to
    its ``k``-th nearest other point,

        h = psi(N) - psi(k) + log c_d + (d / N) sum_i log eps_i,   c_d = pi^(d/2) / Gamma(d/2 + 1),

    ``c_d`` the volume of the Euclidean unit ball. The Euclidean norm (rather than the max-norm) makes
    the estimate invariant under rotations, so after whitening (defined only up to a rotation) the
    compressed-MI estimates do not depend on the whitening chosen, and are invariant under invertible
    affine maps of either argument (up to rounding).

    Accuracy: consistent for densities bounded away from pathological tails; the bias at fixed ``N``
    grows with ``d`` and with sharp boundaries or strong correlations; the standard deviation is about
    ``sqrt((psi'(k) + Var[log p(X)]) / N)`` (for a Gaussian, ``Var[log p] = d/2``).

    **Duplicates.** If some point has ``>= k`` exact copies its ``eps_i`` is 0 and the estimate is
    ``-inf`` (a distribution with an atom). ``duplicates="raise"`` raises ``ValueError``;
    ``duplicates="jitter"`` (default) then adds i.i.d. ``N(0, (jitter * s)^2)`` noise to every
    coordinate of every point, ``s`` the root-mean-square per-column standard deviation of the data
    (1 if that is 0), with ``numpy.random.default_rng(seed)``, and estimates the entropy of the jittered
    sample. Data without such duplicates are never changed. The jittered value is dominated by
    ``d log(jitter)`` for the duplicated mass: read it as "very negative", not as a number.

    Args:
        k: neighbour order (``>= 1``); the paper uses 5.
        duplicates: ``"jitter"`` or ``"raise"``, see above.
        jitter: relative noise scale for ``duplicates="jitter"`` (> 0).
        seed: seed of the jitter noise.
        workers: threads for the KD-tree query (``-1``: all cores).
    """

    def __init__(
        self, k: int = 5, *, duplicates: str = "jitter", jitter: float = 1e-6, seed: int = 0, workers: int = 1
    ) -> None:
        self.k = as_count("k", k)
        if duplicates not in _DUPLICATE_RULES:
            raise ValueError(f"duplicates must be one of {_DUPLICATE_RULES}, got {duplicates!r}")
        self.duplicates = duplicates
        self.jitter = as_scalar("jitter", jitter, positive=True)
        self.seed = int(seed)
        self.workers = int(workers)

    def __repr__(self) -> str:
        return f"KNNEntropy(k={self.k}, duplicates={self.duplicates!r}, jitter={self.jitter:g})"

    def _checked(self, name: str, value: Any) -> np.ndarray:
        points = _points(name, value)
        if points.shape[0] <= self.k:
            raise ValueError(f"{name} needs more than k = {self.k} samples, got {points.shape[0]}")
        return points

    def __call__(self, x: Any, *, name: str = "x") -> float:
        """Differential entropy (nats) of the sample ``x`` of shape (N, d) (or (N,) for d = 1)."""
        points = self._checked(name, x)
        points = _break_ties(
            name, points, k=self.k, rule=self.duplicates, jitter=self.jitter, seed=self.seed, workers=self.workers
        )
        return self._entropy(points)

    def _entropy(self, points: np.ndarray) -> float:
        count, dim = points.shape
        distances = _kth_neighbour_distances(points, self.k, self.workers)
        log_unit_ball = 0.5 * dim * math.log(math.pi) - gammaln(0.5 * dim + 1.0)
        return float(digamma(count) - digamma(self.k) + log_unit_ball + dim * np.mean(np.log(distances)))


# =============================================================================================
# Whitening and compressed mutual information


def whiten(values: Any, *, max_dim: int | None = None, rank_tol: float = 1e-9, name: str = "values") -> np.ndarray:
    """PCA-whiten ``values`` (N, D): centre, rotate onto principal axes, divide by their std.

    Keeps the ``max_dim`` leading principal components (all when ``None``), dropping components whose
    variance is ``<= rank_tol`` times the largest (numerically constant directions, which cannot be
    whitened). The result has identity sample covariance (``ddof = 1``). Any other whitening differs
    from this one by a rotation. Raises ``ValueError`` if ``values`` is constant.
    """
    points = _points(name, values)
    if points.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples to be whitened, got {points.shape[0]}")
    centred = points - points.mean(axis=0)
    covariance = centred.T @ centred / (points.shape[0] - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    if not eigenvalues[0] > 0:
        raise ValueError(f"{name} is constant (zero variance); its information cannot be estimated")
    keep = eigenvalues > rank_tol * eigenvalues[0]
    if max_dim is not None:
        keep[max_dim:] = False
    return centred @ (eigenvectors[:, keep] / np.sqrt(eigenvalues[keep]))


@dataclass(frozen=True)
class CompressedInformation:
    """Compressed-MI estimates on one data set, in nats (``conditional = i_zx - i_zy``, Thm. 3.4's target)."""

    i_zx: float
    i_zy: float
    conditional: float


class CompressedMutualInformation:
    """Compressed mutual information ``I(Z;X)`` and ``I(Z;Y)`` with the Kozachenko-Leonenko estimator.

    Pipeline (Butakov et al., ICLR 2024, as used in the paper's Fig. 4):

    * ``Z`` (N, p): PCA to ``latent_dim`` components (all of them when ``p <= latent_dim``), then
      whitened (:func:`whiten`).
    * ``X``: mapped to codes by ``encoder`` if one was given (e.g. an :class:`InputAutoencoder` or
      any callable returning (N, latent_dim)), else taken as already-compressed codes; then whitened.
      Codes wider than ``latent_dim`` are refused (a k-NN estimate on raw pixels is meaningless).
    * ``I(Z;X) = h(Z) + h(X) - h(Z,X)`` and ``I(Z;Y) = h(Z) - sum_y p(y) h(Z | Y=y)``, ``p(y)``
      the empirical class frequencies; the conditional entropies use the same (global) whitening.

    Whitening each argument separately is a block-diagonal affine map of ``(Z, X)``, which leaves the
    true mutual information unchanged; with the Euclidean k-NN estimator it also leaves the estimate
    unchanged whatever invertible affine map was applied to ``Z`` or ``X`` beforehand (when no PCA
    truncation happens). Duplicate points follow the ``duplicates`` rule of :class:`KNNEntropy`,
    applied once to the whitened ``Z`` and ``X`` before any entropy is taken, so that all three
    entropies see the same points.

    Args:
        latent_dim: PCA dimension of ``Z`` and maximal code dimension of ``X`` (paper: 4).
        k: neighbour order of the entropy estimator (paper: 5).
        encoder: optional callable (or object with ``.encode``) mapping raw inputs to codes.
        duplicates, jitter, seed, workers: see :class:`KNNEntropy`.
        rank_tol: relative variance below which a principal direction is dropped before whitening.
    """

    def __init__(
        self,
        latent_dim: int = 4,
        k: int = 5,
        *,
        encoder: Any = None,
        duplicates: str = "jitter",
        jitter: float = 1e-6,
        seed: int = 0,
        workers: int = 1,
        rank_tol: float = 1e-9,
    ) -> None:
        self.latent_dim = as_count("latent_dim", latent_dim)
        self.entropy = KNNEntropy(k, duplicates=duplicates, jitter=jitter, seed=seed, workers=workers)
        if encoder is not None and not callable(encoder) and not hasattr(encoder, "encode"):
            raise ValueError("encoder must be a callable or an object with an .encode(x) method")
        self.encoder = encoder
        self.rank_tol = as_scalar("rank_tol", rank_tol, nonnegative=True)

    @property
    def k(self) -> int:
        return self.entropy.k

    def _ties(self, name: str, points: np.ndarray) -> np.ndarray:
        e = self.entropy
        return _break_ties(name, points, k=e.k, rule=e.duplicates, jitter=e.jitter, seed=e.seed, workers=e.workers)

    def compress_representation(self, z: Any) -> np.ndarray:
        """``Z`` reduced by PCA to at most ``latent_dim`` dimensions and whitened, (N, <= latent_dim)."""
        points = self.entropy._checked("z", z)
        return whiten(points, max_dim=self.latent_dim, rank_tol=self.rank_tol, name="z")

    def compress_input(self, x: Any) -> np.ndarray:
        """Codes of ``X`` (through ``encoder`` when given), whitened, (N, <= latent_dim)."""
        if self.encoder is not None:
            encode = self.encoder.encode if hasattr(self.encoder, "encode") else self.encoder
            x = to_numpy(encode(x))
        codes = self.entropy._checked("x", x)
        if codes.shape[1] > self.latent_dim:
            raise ValueError(
                f"x has {codes.shape[1]} columns, more than latent_dim = {self.latent_dim}: pass "
                "already-compressed codes, or give an encoder (e.g. InputAutoencoder.fit_or_load(...))"
            )
        return whiten(codes, rank_tol=self.rank_tol, name="x")

    def _labels(self, y: Any, count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.asarray(to_numpy(y))
        if labels.ndim != 1 or labels.shape[0] != count:
            raise ValueError(f"y must be a 1-D array of {count} labels (one per row of z), got shape {labels.shape}")
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if np.any(counts <= self.k):
            small = classes[counts <= self.k]
            raise ValueError(
                f"y: every class needs more than k = {self.k} samples for h(Z | Y=y); classes "
                f"{small.tolist()[:10]} have too few"
            )
        return inverse, counts

    def _mi_zx(self, z_white: np.ndarray, x_white: np.ndarray) -> float:
        joint = np.concatenate([z_white, x_white], axis=1)
        e = self.entropy
        return float(e._entropy(z_white) + e._entropy(x_white) - e._entropy(joint))

    def _mi_zy(self, z_white: np.ndarray, inverse: np.ndarray, counts: np.ndarray) -> float:
        e = self.entropy
        conditional = sum(
            (count / z_white.shape[0]) * e._entropy(z_white[inverse == label]) for label, count in enumerate(counts)
        )
        return float(e._entropy(z_white) - conditional)

    def _both(self, z: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
        z_white = self._ties("z", self.compress_representation(z))
        x_white = self._ties("x", self.compress_input(x))
        if z_white.shape[0] != x_white.shape[0]:
            raise ValueError(f"z and x must hold the same number of samples, got {z_white.shape[0]} and {x_white.shape[0]}")
        return z_white, x_white

    def mi(self, z: Any, x: Any) -> float:
        """``I(Z;X) = h(Z) + h(X) - h(Z,X)`` in nats, ``z`` (N, p) representation, ``x`` inputs or codes."""
        return self._mi_zx(*self._both(z, x))

    def mi_with_labels(self, z: Any, y: Any) -> float:
        """``I(Z;Y) = h(Z) - sum_y p(y) h(Z | Y=y)`` in nats; ``y`` (N,) class labels."""
        z_white = self._ties("z", self.compress_representation(z))
        inverse, counts = self._labels(y, z_white.shape[0])
        return self._mi_zy(z_white, inverse, counts)

    def estimate(self, z: Any, x: Any, y: Any) -> CompressedInformation:
        """Both estimates on the same compressed ``Z`` and their difference ``I(Z;X) - I(Z;Y)``."""
        z_white, x_white = self._both(z, x)
        inverse, counts = self._labels(y, z_white.shape[0])
        i_zx = self._mi_zx(z_white, x_white)
        i_zy = self._mi_zy(z_white, inverse, counts)
        return CompressedInformation(i_zx=i_zx, i_zy=i_zy, conditional=i_zx - i_zy)


# =============================================================================================
# Input autoencoder with an on-disk cache


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyperparameters of :class:`InputAutoencoder`; their hash (with the data's) names the cache file.

    ``hidden`` are the encoder's hidden widths (the decoder mirrors them); ReLU between layers, linear
    code and linear reconstruction; mean-squared reconstruction error, Adam (betas 0.9, 0.999, eps
    1e-8; written out in :meth:`InputAutoencoder.fit` because constructing a ``torch.optim`` optimizer
    imports ``torch._dynamo``, several seconds), minibatches shuffled with a generator seeded by
    ``seed`` (initialisation uses the same seed, without touching the global torch RNG). Training is
    on CPU float32.
    """

    latent_dim: int = 4
    hidden: tuple[int, ...] = (256, 64)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        as_count("latent_dim", self.latent_dim)
        if not isinstance(self.hidden, tuple) or not all(isinstance(w, int) and w >= 1 for w in self.hidden):
            raise ValueError(f"hidden must be a tuple of positive ints, got {self.hidden!r}")
        as_count("epochs", self.epochs, minimum=0)
        as_count("batch_size", self.batch_size)
        as_scalar("lr", self.lr, positive=True)
        as_count("seed", self.seed, minimum=0)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["hidden"] = list(self.hidden)
        return values


def _data_fingerprint(x: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(repr(x.shape).encode())
    digest.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _flat_inputs(x: Any) -> np.ndarray:
    array = as_array("x", x, dtype=np.float32)
    if array.ndim < 2:
        raise ValueError(f"x must have shape (N, ...) with at least 2 dimensions, got {array.shape}")
    return array.reshape(array.shape[0], -1)


class InputAutoencoder(torch.nn.Module):
    """Small MLP autoencoder compressing flattened inputs to ``latent_dim`` codes (compressed MI of X).

    Build it with :meth:`fit_or_load`, which trains once per (data set, config) and caches the weights
    on disk. ``from_cache`` says whether this instance was loaded (``True``) or trained (``False``);
    ``train_losses`` holds the mean reconstruction loss of each epoch.
    """

    def __init__(self, input_dim: int, config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.input_dim = as_count("input_dim", input_dim)
        widths = [self.input_dim, *self.config.hidden, self.config.latent_dim]
        self.encoder = self._mlp(widths)
        self.decoder = self._mlp(widths[::-1])
        self.from_cache = False
        self.train_losses: list[float] = []

    @staticmethod
    def _mlp(widths: list[int]) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(torch.nn.Linear(fan_in, fan_out))
            if index < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    @torch.no_grad()
    def encode(self, x: Any, *, batch_size: int = 4096) -> np.ndarray:
        """Codes (N, latent_dim) of inputs ``x`` (N, ...) (flattened), as a float64 numpy array."""
        flat = _flat_inputs(x)
        if flat.shape[1] != self.input_dim:
            raise ValueError(f"x has {flat.shape[1]} features per sample, this autoencoder expects {self.input_dim}")
        was_training = self.training
        self.eval()
        parts = [self.encoder(torch.from_numpy(flat[i : i + batch_size])) for i in range(0, flat.shape[0], batch_size)]
        self.train(was_training)
        return torch.cat(parts).double().numpy()

    def fit(self, x: Any) -> list[float]:
        """Train on ``x`` (N, ...) for ``config.epochs`` epochs, deterministically; returns epoch losses."""
        flat = torch.from_numpy(_flat_inputs(x))
        if flat.shape[1] != self.input_dim:
            raise ValueError(f"x has {flat.shape[1]} features per sample, this autoencoder expects {self.input_dim}")
        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        parameters = [p for p in self.parameters() if p.requires_grad]
        first_moments = [torch.zeros_like(p) for p in parameters]
        second_moments = [torch.zeros_like(p) for p in parameters]
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
        self.train()
        losses = []
        step = 0
        for _ in range(config.epochs):
            order = torch.randperm(flat.shape[0], generator=generator)
            total = 0.0
            for start in range(0, flat.shape[0], config.batch_size):
                batch = flat[order[start : start + config.batch_size]]
                loss = torch.nn.functional.mse_loss(self(batch), batch)
                gradients = torch.autograd.grad(loss, parameters)
                step += 1
                with torch.no_grad():  # Adam with bias correction (as torch.optim.Adam, no weight decay)
                    for parameter, grad, first, second in zip(parameters, gradients, first_moments, second_moments):
                        first.mul_(beta1).add_(grad, alpha=1 - beta1)
                        second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                        denominator = (second / (1 - beta2**step)).sqrt_().add_(adam_eps)
                        parameter.addcdiv_(first, denominator, value=-config.lr / (1 - beta1**step))
                total += loss.item() * batch.shape[0]
            losses.append(total / flat.shape[0])
        self.eval()
        self.train_losses = losses
        return losses

    @classmethod
    def cache_path(cls, x: Any, cache_dir: str | os.PathLike, config: AutoencoderConfig | None = None) -> Path:
        """File that :meth:`fit_or_load` uses for this data set and config."""
        config = config or AutoencoderConfig()
        return cls._cache_file(Path(cache_dir), config, _data_fingerprint(_flat_inputs(x)))

    @staticmethod
    def _cache_file(cache_dir: Path, config: AutoencoderConfig, fingerprint: str) -> Path:
        key = json.dumps({"config": config.as_dict(), "data": fingerprint}, sort_keys=True)
        return cache_dir / f"autoencoder-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"

    @classmethod
    def fit_or_load(
        cls, x: Any, cache_dir: str | os.PathLike, config: AutoencoderConfig | None = None
    ) -> "InputAutoencoder":
        """Load the autoencoder cached for (``x``, ``config``) from ``cache_dir``, or train and cache it.

        The cache file is named by the SHA-256 of the config and of the data (shape and float32
        bytes), so a different data set or any changed hyperparameter trains a new model. The file is
        written atomically (temporary file, then ``os.replace``) and read with
        ``torch.load(weights_only=True)``; a file whose stored config or fingerprint does not match is
        ignored and overwritten. Initialisation and shuffling are seeded by ``config.seed``.
        """
        config = config or AutoencoderConfig()
        if not isinstance(config, AutoencoderConfig):
            raise ValueError(f"config must be an AutoencoderConfig, got {type(config).__name__}")
        flat = _flat_inputs(x)
        fingerprint = _data_fingerprint(flat)
        cache_dir = Path(cache_dir)
        path = cls._cache_file(cache_dir, config, fingerprint)
        if path.exists():
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("config") == config.as_dict() and stored.get("data") == fingerprint:
                model = cls(int(stored["input_dim"]), config)
                model.load_state_dict(stored["state_dict"])
                model.eval()
                model.from_cache = True
                model.train_losses = [float(v) for v in stored.get("train_losses", [])]
                return model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = cls(flat.shape[1], config)
        model.fit(flat)
        payload = {
            "state_dict": model.state_dict(),
            "config": config.as_dict(),
            "data": fingerprint,
            "input_dim": flat.shape[1],
            "train_losses": model.train_losses,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return model


def fit_or_load(x: Any, cache_dir: str | os.PathLike, config: AutoencoderConfig | None = None) -> InputAutoencoder:
    """Same as :meth:`InputAutoencoder.fit_or_load`."""
    return InputAutoencoder.fit_or_load(x, cache_dir, config)
