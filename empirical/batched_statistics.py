"""Per-class statistics of many runs' features at once, chunk by chunk over a fixed data set.

``measure_runs`` streams each data set in chunks; every chunk gives, for each of R runs, the
``theory.collapse.ClassStatistics`` of its features (accumulated in float64, centred within each
class before squaring), and the chunks are merged exactly with ``ClassStatistics.merge``. The labels
of a chunk never change between logged steps, so everything they determine (one-hot matrix, class
counts, the rows of each class) is a `ChunkClasses` computed once per data set and reused at every
log (`LabelChunks`), and the float64 work arrays of a chunk live in buffers reused from chunk to
chunk and log to log (a ``empirical.buffers.Workspace``, which says why).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ncgrok.empirical.buffers import Workspace
from ncgrok.theory.collapse import ClassStatistics


@dataclass(frozen=True)
class ChunkClasses:
    """What the integer labels (n,) of one chunk determine, on the features' device.

    ``onehot`` (n, K) float64; ``counts`` (K,) float64 (also as ``counts_numpy``); ``divisor``
    (1, K, 1) the counts clamped at 1 (the denominator of the class means); ``rows[c]`` the
    positions of class ``c`` in the chunk, in order.
    """

    labels: torch.Tensor
    onehot: torch.Tensor
    counts: torch.Tensor
    counts_numpy: np.ndarray
    divisor: torch.Tensor
    rows: tuple[torch.Tensor, ...]

    @classmethod
    def of(cls, labels: torch.Tensor, num_classes: int, device: torch.device | str) -> "ChunkClasses":
        labels = labels.to(device, torch.long)
        onehot = torch.nn.functional.one_hot(labels, num_classes).to(torch.float64)
        counts = onehot.sum(0)
        return cls(
            labels=labels,
            onehot=onehot,
            counts=counts,
            counts_numpy=counts.cpu().numpy(),
            divisor=counts.clamp(min=1.0)[None, :, None],
            rows=tuple(torch.nonzero(labels == c).flatten() for c in range(num_classes)),
        )

    @property
    def num_classes(self) -> int:
        return self.onehot.shape[1]


class LabelChunks:
    """`ChunkClasses` of every chunk of a label tensor, kept while the tensor is unchanged.

    ``get(labels, num_classes, chunk_size, device)`` returns the cached list when it was built from
    this very tensor (same object, same in-place version counter) with the same settings, and
    rebuilds it otherwise.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[torch.Tensor, int, tuple, list[ChunkClasses]]] = {}

    def get(self, name: str, labels: torch.Tensor, num_classes: int, chunk_size: int,
            device: torch.device | str) -> list[ChunkClasses]:
        settings = (num_classes, chunk_size, str(device))
        entry = self._entries.get(name)
        if entry is not None and entry[0] is labels and entry[1] == labels._version and entry[2] == settings:
            return entry[3]
        chunks = [ChunkClasses.of(labels[start : start + chunk_size], num_classes, device)
                  for start in range(0, labels.shape[0], chunk_size)]
        self._entries[name] = (labels, labels._version, settings, chunks)
        return chunks


def sample_major(workspace: Workspace, name: str, like: torch.Tensor) -> torch.Tensor:
    """A float64 (R, n, p) buffer shaped like ``like`` but stored sample-major, as (n, R, p):
    ``einsum("nk,rnp->rkp", ...)`` then reads it as one (n, R p) matrix without copying it."""
    runs, samples, dim = like.shape
    return workspace.take(name, (samples, runs, dim), torch.float64, like.device).permute(1, 0, 2)


def chunk_statistics(
    values: torch.Tensor, classes: ChunkClasses, *, covariance: bool = True, workspace: Workspace | None = None,
    slot: str = "",
) -> tuple[list[ClassStatistics], torch.Tensor]:
    """Per-run ``ClassStatistics`` of float64 features ``values`` (R, n, p) of one chunk, and the
    feature norms (R, n) (the clipping of held-out features reuses them).

    ``workspace`` holds the (R, n, p) work arrays (fresh ones without it) and the scatter matrices,
    stored class-major as (K, R, p, p) in its buffer ``scatter_matrix<slot>``, so that each class's
    batched product writes its (R, p, p) block in place: the returned statistics' scatter matrices
    are views of it and stay valid only until that buffer is taken again (a stream names its slots
    after itself and alternates two of them, merging each chunk into a new total before the next).
    """
    workspace = workspace if workspace is not None else Workspace()
    runs, _, dim = values.shape
    num_classes, labels, onehot = classes.num_classes, classes.labels, classes.onehot
    sums = torch.einsum("nk,rnp->rkp", onehot, values)
    means = sums / classes.divisor
    centred = torch.index_select(means, 1, labels, out=workspace.take("centred", values.shape, torch.float64, values.device))
    centred = torch.sub(values, centred, out=centred)
    squares = torch.mul(centred, centred, out=workspace.take("squares", values.shape, torch.float64, values.device))
    scatter = squares.sum(-1) @ onehot
    norms = values.norm(dim=-1)
    norm_sums = norms @ onehot
    norm_max = torch.zeros(runs, num_classes, dtype=torch.float64, device=values.device)
    norm_max = norm_max.scatter_reduce(1, labels.expand_as(norms), norms, reduce="amax", include_self=True)
    scatter_matrix = None
    if covariance:  # every class's block is written (an absent class gets zeros), so no zero fill
        by_class = workspace.take(f"scatter_matrix{slot}", (num_classes, runs, dim, dim), torch.float64, values.device)
        for c, rows in enumerate(classes.rows):
            block = workspace.take("class_block", (runs, rows.shape[0], dim), centred.dtype, values.device)
            block = torch.index_select(centred, 1, rows, out=block)
            torch.bmm(block.transpose(1, 2), block, out=by_class[c])
        scatter_matrix = by_class.cpu().numpy().swapaxes(0, 1)  # (R, K, p, p) views
    sums_np, scatter_np = sums.cpu().numpy(), scatter.cpu().numpy()
    norm_sums_np, norm_max_np = norm_sums.cpu().numpy(), norm_max.cpu().numpy()
    stats = [
        ClassStatistics(
            counts=classes.counts_numpy.copy(),
            sums=sums_np[r],
            scatter=scatter_np[r],
            norm_sums=norm_sums_np[r],
            norm_max=norm_max_np[r],
            scatter_matrix=None if scatter_matrix is None else scatter_matrix[r],
        )
        for r in range(runs)
    ]
    return stats, norms


def batched_class_statistics(
    features: torch.Tensor, labels: torch.Tensor, *, num_classes: int, covariance: bool = True
) -> list[ClassStatistics]:
    """Per-run ``ClassStatistics`` of stacked features (R, N, p) sharing integer labels (N,).

    Accumulates in float64 on the features' device and centres within each class before squaring,
    so the result equals ``ClassStatistics.from_features`` on each run's array (tested).
    """
    if features.ndim != 3:
        raise ValueError(f"features must have shape (runs, samples, dim), got {tuple(features.shape)}")
    if labels.ndim != 1 or labels.shape[0] != features.shape[1]:
        raise ValueError(f"labels must have shape ({features.shape[1]},), got {tuple(labels.shape)}")
    classes = ChunkClasses.of(labels, num_classes, features.device)
    workspace = Workspace()
    values = sample_major(workspace, "values", features).copy_(features.detach())
    return chunk_statistics(values, classes, covariance=covariance, workspace=workspace)[0]
