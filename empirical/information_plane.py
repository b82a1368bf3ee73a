"""The optional information-plane columns of a logged step (``--measure-ib``; Fig. 4, Thm. 3.4).

On a fixed seeded subset of the test set, for every run: normalized HSIC of the representation with
the inputs and with the labels (the paper's kernel route), compressed mutual information by two
estimators (the paper's Kozachenko-Leonenko route and KSG/Ross), and the Thm. 3.4 bounds of the noisy
representation ``Z = g(X) + B_g E``. Estimators live in ``empirical.information``; the bounds in
``theory.information``. This module stays outside the ``information`` package, whose import is
slow, so that importing the sweep settings stays fast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ncgrok.empirical.measure import BatchedModel
from ncgrok.theory.collapse import ClassStatistics

# mi_zx / mi_zy: the paper's three-entropy route; *_ksg: KSG for I(Z;X) and Ross for I(Z;Y) on the same codes
INFORMATION_COLUMNS = ("nhsic_zx", "nhsic_zy", "mi_zx", "mi_zy", "mi_zx_ksg", "mi_zy_ksg", "ib_bound_trace", "ib_bound_logdet")


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
        self.mutual_information = {
            suffix: CompressedMutualInformation(latent_dim=settings.latent_dim, k=settings.k, seed=settings.seed,
                                                estimator=estimator)
            for suffix, estimator in (("", "kl"), ("_ksg", "ksg"))
        }

    def __call__(self, model: BatchedModel, feature_scales: Sequence[float]) -> list[dict[str, float]]:
        from ncgrok.theory.collapse import class_covariances
        from ncgrok.theory.information import ib_bound_logdet, ib_bound_trace

        settings = self.settings
        _, features = model.forward_with_representation(self.x)
        rows = []
        for r in range(features.shape[0]):
            z = features[r].to(torch.float64)
            if not (bool(torch.isfinite(z).all()) and math.isfinite(float(feature_scales[r]))):  # a diverged run
                rows.append(dict.fromkeys(INFORMATION_COLUMNS, float("nan")))
                continue
            hsic = dict(batch_size=settings.nhsic_batch, passes=settings.nhsic_passes, seed=settings.seed)
            row = {
                "nhsic_zx": self.hsic_inputs.estimate(z, self.flat_x, **hsic),
                "nhsic_zy": self.hsic_labels.estimate(z, self.y, **hsic),
            }
            z_numpy = z.cpu().numpy()
            for suffix, estimator in self.mutual_information.items():
                try:
                    estimate = estimator.estimate(z_numpy, self.codes, self.y_numpy)
                    row[f"mi_zx{suffix}"], row[f"mi_zy{suffix}"] = estimate.i_zx, estimate.i_zy
                except ValueError:  # e.g. a collapsed representation with rank 0: no density to estimate
                    row[f"mi_zx{suffix}"] = row[f"mi_zy{suffix}"] = float("nan")
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
