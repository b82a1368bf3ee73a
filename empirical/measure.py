"""Measurement of many runs at a logged step: losses, accuracies, collapse measures and bounds.

The model side (features and logits of every run, in one batched pass) comes from the training
engine; this module turns them into per-class sufficient statistics (accumulated in float64 on the
device, centred, batch by batch) and hands those to ``theory``, which owns every formula:
collapse measures (``theory.collapse``), the held-out radius of Thm. 4.1
(``theory.concentration``), the Cantelli bound of Thm. 3.2 (``theory.generalization``) and the
imbalance of Thm. 4.3 (``theory.timescales``).

Columns produced for each run (see ``METRIC_COLUMNS``):

* ``train_loss``, ``test_loss``: squared error to the one-hot target, summed over the outputs and
  averaged over the samples (the paper's summed training loss divided by the number of samples);
  ``train_acc``, ``test_acc``.
* On the training set: ``nc1``, ``nc1_pinv``, ``rnc1`` (mean-norm scale, the paper's plots),
  ``rnc1_sup`` (largest-norm scale, the theory's ``B_g``), ``nc2``, ``etf_deviation``,
  ``within_var``, ``between_var`` (unscaled traces), ``feature_norm_mean``, ``feature_norm_max``.
* On the held-out population sample (training images the network never saw):
  ``heldout_within_var``, the unbiased estimate of Def. 3.1's population within-class variance
  rescaled by the training set's mean norm (comparable with ``rnc1``); ``heldout_within_var_sup``,
  the same rescaled by ``B`` = the largest feature norm over the training and held-out samples
  (comparable with ``rnc1_sup``); ``heldout_radius``, the prior-weighted Thm. 4.1 radius at
  ``delta`` for ``heldout_within_var_sup`` (valid because held-out data are independent of the
  network and no held-out feature exceeds ``B``); ``cantelli_bound``, Thm. 3.2 evaluated with the
  held-out class means, unbiased variances and priors, to compare with ``1 - test_acc``.
* ``weight_norm`` (all parameters), ``last_layer_norm`` (last weight matrix and bias),
  ``imbalance_norm``: Frobenius norm of ``W_L^T W_L - W_{L-1} W_{L-1}^T`` for the last two linear
  layers (NaN when the model has fewer than two).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from ncgrok.theory.collapse import (
    COLLAPSE_MEASURES,
    ClassStatistics,
    class_variances,
    collapse_measures,
    population_within_class_variance,
)
from ncgrok.theory.concentration import heldout_variance_radius
from ncgrok.theory.generalization import cantelli_bound
from ncgrok.theory.timescales import imbalance

from ncgrok.empirical.engine import EVAL_CHUNK_SIZE

METRIC_COLUMNS = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    *COLLAPSE_MEASURES,
    "heldout_within_var",
    "heldout_within_var_sup",
    "heldout_radius",
    "cantelli_bound",
    "weight_norm",
    "last_layer_norm",
    "imbalance_norm",
)


class BatchedModel(Protocol):
    """What the measurement needs from the training engine (``empirical.engine.BatchedTrainer``)."""

    def forward_with_representation(self, x: torch.Tensor, *, chunk_size: int = ...) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (R, N, K) and representations (R, N, p) of every run."""

    def forward(self, x: torch.Tensor, *, chunk_size: int = ...) -> torch.Tensor:
        """Logits (R, N, K) of every run."""

    def last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked last-layer weights (R, K, p) and biases (R, K)."""

    def linear_weights(self) -> Sequence[torch.Tensor]:
        """Stacked weights (R, out, in) of the linear layers, in order."""

    def weight_norm(self) -> torch.Tensor: ...

    def last_layer_norm(self) -> torch.Tensor: ...


@dataclass
class MeasurementData:
    """Tensors the measurement evaluates on (on the trainer's device). Held-out data are optional."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    heldout_x: torch.Tensor | None = None
    heldout_y: torch.Tensor | None = None


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
    values = features.detach().to(torch.float64)
    labels = labels.to(values.device, torch.long)
    onehot = torch.nn.functional.one_hot(labels, num_classes).to(torch.float64)  # (N, K)
    counts = onehot.sum(0)
    sums = torch.einsum("nk,rnp->rkp", onehot, values)
    means = sums / counts.clamp(min=1.0)[None, :, None]
    centred = values - means[:, labels, :]
    scatter = (centred * centred).sum(-1) @ onehot
    norms = values.norm(dim=-1)
    norm_sums = norms @ onehot
    norm_max = torch.zeros(values.shape[0], num_classes, dtype=torch.float64, device=values.device)
    norm_max = norm_max.scatter_reduce(1, labels.expand_as(norms), norms, reduce="amax", include_self=True)
    scatter_matrix = None
    if covariance:
        dim = values.shape[2]
        scatter_matrix = torch.zeros(values.shape[0], num_classes, dim, dim, dtype=torch.float64, device=values.device)
        for c in range(num_classes):
            block = centred[:, labels == c, :]
            scatter_matrix[:, c] = block.transpose(1, 2) @ block
        scatter_matrix = scatter_matrix.cpu().numpy()
    counts_np, sums_np, scatter_np = counts.cpu().numpy(), sums.cpu().numpy(), scatter.cpu().numpy()
    norm_sums_np, norm_max_np = norm_sums.cpu().numpy(), norm_max.cpu().numpy()
    return [
        ClassStatistics(
            counts=counts_np.copy(),
            sums=sums_np[r],
            scatter=scatter_np[r],
            norm_sums=norm_sums_np[r],
            norm_max=norm_max_np[r],
            scatter_matrix=None if scatter_matrix is None else scatter_matrix[r],
        )
        for r in range(values.shape[0])
    ]


def _stream(
    model: BatchedModel,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    chunk_size: int,
    statistics: bool,
    covariance: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[ClassStatistics] | None]:
    """Per-run mean loss, accuracy and (optionally) class statistics over ``x`` in chunks.

    Loss is the squared error to the one-hot target summed over outputs, averaged over samples.
    Only one chunk of features is held at a time; statistics are merged exactly across chunks.
    """
    total = x.shape[0]
    if total == 0:
        raise ValueError("cannot measure on an empty data set")
    loss_sum = accuracy_sum = None
    stats: list[ClassStatistics] | None = None
    for start in range(0, total, chunk_size):
        xs, ys = x[start : start + chunk_size], y[start : start + chunk_size].to(torch.long)
        if statistics:
            logits, features = model.forward_with_representation(xs, chunk_size=chunk_size)
        else:
            logits, features = model.forward(xs, chunk_size=chunk_size), None
        ys = ys.to(logits.device)
        target = torch.nn.functional.one_hot(ys, num_classes).to(logits.dtype)
        chunk_loss = ((logits - target) ** 2).sum(-1).to(torch.float64).sum(-1)
        chunk_correct = (logits.argmax(-1) == ys).to(torch.float64).sum(-1)
        loss_sum = chunk_loss if loss_sum is None else loss_sum + chunk_loss
        accuracy_sum = chunk_correct if accuracy_sum is None else accuracy_sum + chunk_correct
        if statistics:
            part = batched_class_statistics(features, ys, num_classes=num_classes, covariance=covariance)
            stats = part if stats is None else [a.merge(b) for a, b in zip(stats, part)]
    return (loss_sum / total).cpu().numpy(), (accuracy_sum / total).cpu().numpy(), stats


def measure_runs(
    model: BatchedModel,
    data: MeasurementData,
    *,
    delta: float = 0.05,
    chunk_size: int = EVAL_CHUNK_SIZE,
) -> list[dict[str, float]]:
    """Every column of ``METRIC_COLUMNS`` for every run of ``model`` (one dict per run).

    ``delta`` is the failure probability of the held-out radius (Thm. 4.1); ``chunk_size`` bounds
    how many samples' features are held at once.
    """
    num_classes = data.num_classes
    train_loss, train_acc, train_stats = _stream(
        model, data.train_x, data.train_y, num_classes, chunk_size=chunk_size, statistics=True
    )
    test_loss, test_acc, _ = _stream(model, data.test_x, data.test_y, num_classes, chunk_size=chunk_size, statistics=False)
    heldout_stats = None
    if data.heldout_x is not None:
        _, _, heldout_stats = _stream(
            model, data.heldout_x, data.heldout_y, num_classes, chunk_size=chunk_size, statistics=True, covariance=False
        )

    last_weight, last_bias = (t.detach().to(torch.float64).cpu().numpy() for t in model.last_layer())
    linear = model.linear_weights()
    pair = None
    if len(linear) >= 2:
        pair = (linear[-1].detach().to(torch.float64).cpu().numpy(), linear[-2].detach().to(torch.float64).cpu().numpy())
    weight_norm = model.weight_norm().detach().to(torch.float64).cpu().numpy()
    last_layer_norm = model.last_layer_norm().detach().to(torch.float64).cpu().numpy()

    rows = []
    for r, stats in enumerate(train_stats):
        row = {
            "train_loss": float(train_loss[r]),
            "train_acc": float(train_acc[r]),
            "test_loss": float(test_loss[r]),
            "test_acc": float(test_acc[r]),
        }
        row.update(collapse_measures(stats))
        row.update(_heldout_columns(stats, None if heldout_stats is None else heldout_stats[r],
                                    last_weight[r], last_bias[r], delta=delta))
        row["weight_norm"] = float(weight_norm[r])
        row["last_layer_norm"] = float(last_layer_norm[r])
        row["imbalance_norm"] = float(np.linalg.norm(imbalance(pair[0][r], pair[1][r]))) if pair else float("nan")
        rows.append(row)
    return rows


def _heldout_columns(
    train: ClassStatistics,
    heldout: ClassStatistics | None,
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    delta: float,
) -> dict[str, float]:
    nan = float("nan")
    columns = dict.fromkeys(("heldout_within_var", "heldout_within_var_sup", "heldout_radius", "cantelli_bound"), nan)
    if heldout is None or np.any(heldout.counts < 2):
        return columns
    train_scale = float(train.norm_sums.sum() / train.total)
    sup_scale = float(max(train.norm_max.max(), heldout.norm_max.max()))
    if train_scale == 0.0 or sup_scale == 0.0:
        return columns
    columns["heldout_within_var"] = population_within_class_variance(heldout, scale=train_scale, unbiased=True)
    columns["heldout_within_var_sup"] = population_within_class_variance(heldout, scale=sup_scale, unbiased=True)
    radius = heldout_variance_radius(heldout.counts, delta=delta)
    columns["heldout_radius"] = float(heldout.priors @ radius)
    columns["cantelli_bound"] = cantelli_bound(
        heldout.class_means,
        weight,
        variances=class_variances(heldout, unbiased=True),
        priors=heldout.priors,
        bias=bias,
        scale=sup_scale,
    )
    return columns


def as_measurement_data(split: Any, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MeasurementData:
    """Tensors on ``device`` from a ``empirical.data.Split``-like object (numpy arrays)."""

    def tensor(array: Any, *, labels: bool = False) -> torch.Tensor | None:
        if array is None:
            return None
        return torch.as_tensor(np.asarray(array), dtype=torch.long if labels else dtype, device=device)

    return MeasurementData(
        train_x=tensor(split.train_x),
        train_y=tensor(split.train_y, labels=True),
        test_x=tensor(split.test_x),
        test_y=tensor(split.test_y, labels=True),
        num_classes=int(split.num_classes),
        heldout_x=tensor(getattr(split, "heldout_x", None)),
        heldout_y=tensor(getattr(split, "heldout_y", None), labels=True),
    )


# --------------------------------------------------------------------------- information plane
INFORMATION_COLUMNS = ("nhsic_zx", "nhsic_zy", "mi_zx", "mi_zy", "ib_bound_trace", "ib_bound_logdet")


@dataclass
class InformationSettings:
    """Settings of the optional information-plane measurement (``--measure-ib``).

    ``sigma``: noise level of the stochastic representation ``Z = g(X) + B_g E``,
    ``E ~ N(0, sigma^2 I)``, for the Thm. 3.4 bounds (``ib_bound_trace``, ``ib_bound_logdet``), in
    units of the rescaled features ``g~ = g / B_g`` with ``B_g`` the training set's largest feature
    norm. ``sample_size`` test examples (a fixed seeded subset) carry every estimate;
    ``nhsic_sigma`` and ``nhsic_batch`` are the paper's nHSIC settings (5, 100; 3 passes);
    ``latent_dim`` and ``k`` those of the compressed MI (4, 5).
    """

    sigma: float = 0.1
    sample_size: int = 2000
    nhsic_sigma: float = 5.0
    nhsic_batch: int = 100
    nhsic_passes: int = 3
    latent_dim: int = 4
    k: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"ib sigma must be > 0, got {self.sigma}")
        if self.sample_size < max(self.nhsic_batch, 10 * self.k):
            raise ValueError(
                f"ib sample_size must be at least max(nhsic batch {self.nhsic_batch}, 10 k = {10 * self.k}), "
                f"got {self.sample_size}"
            )


class InformationMeasurement:
    """nHSIC, compressed MI and the Thm. 3.4 bounds of every run on a fixed test subset.

    The input codes for the compressed MI come from ``encoder`` (an ``InputAutoencoder`` fitted once
    per data set and cached; see ``empirical.information.fit_or_load``), computed once here. The
    estimates concern the deterministic representation ``g(X)``, the bounds the noisy ``Z``: compare
    their trends, not their values.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, encoder: Any, settings: InformationSettings, num_classes: int):
        from ncgrok.empirical.information import CompressedMutualInformation, NormalizedHSIC

        self.settings = settings
        self.num_classes = num_classes
        count = min(settings.sample_size, x.shape[0])
        order = np.sort(np.random.default_rng(settings.seed).permutation(x.shape[0])[:count])
        index = torch.as_tensor(order, device=x.device)
        self.x = x[index]
        self.y = y[index].to(torch.long)
        self.flat_x = self.x.reshape(count, -1).to(torch.float64)
        self.y_numpy = self.y.cpu().numpy()
        self.codes = np.asarray(encoder.encode(self.x.reshape(count, -1).cpu().numpy()))
        self.hsic_inputs = NormalizedHSIC(sigma=settings.nhsic_sigma, kernel_x="gaussian", kernel_y="gaussian")
        self.hsic_labels = NormalizedHSIC(sigma=settings.nhsic_sigma, kernel_x="gaussian", kernel_y="linear")
        self.mutual_information = CompressedMutualInformation(latent_dim=settings.latent_dim, k=settings.k,
                                                              seed=settings.seed)

    def __call__(self, model: BatchedModel, feature_scales: Sequence[float]) -> list[dict[str, float]]:
        from ncgrok.theory.collapse import class_covariances
        from ncgrok.theory.information import ib_bound_logdet, ib_bound_trace

        settings = self.settings
        _, features = model.forward_with_representation(self.x)
        rows = []
        for r in range(features.shape[0]):
            z = features[r].to(torch.float64)
            hsic = dict(batch_size=settings.nhsic_batch, passes=settings.nhsic_passes, seed=settings.seed)
            row = {
                "nhsic_zx": self.hsic_inputs.estimate(z, self.flat_x, **hsic),
                "nhsic_zy": self.hsic_labels.estimate(z, self.y, **hsic),
            }
            z_numpy = z.cpu().numpy()
            try:
                estimate = self.mutual_information.estimate(z_numpy, self.codes, self.y_numpy)
                row["mi_zx"], row["mi_zy"] = estimate.i_zx, estimate.i_zy
            except ValueError:  # e.g. a collapsed representation with rank 0: no density to estimate
                row["mi_zx"] = row["mi_zy"] = float("nan")
            stats = ClassStatistics.from_features(z_numpy, self.y_numpy, num_classes=self.num_classes)
            scale = float(feature_scales[r])
            if scale > 0 and np.all(stats.counts >= 1):
                covariances = class_covariances(stats) / scale**2
                row["ib_bound_trace"] = ib_bound_trace(sigma=settings.sigma, covariances=covariances, priors=stats.priors)
                row["ib_bound_logdet"] = ib_bound_logdet(covariances, sigma=settings.sigma, priors=stats.priors)
            else:
                row["ib_bound_trace"] = row["ib_bound_logdet"] = float("nan")
            rows.append(row)
        return rows
