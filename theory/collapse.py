"""Neural-collapse measures from per-class sufficient statistics.

Every collapse measure in ncgrok is computed here and only here. A measure is a function of a
:class:`ClassStatistics` object, which holds, per class ``c``:

* ``counts[c]``            the number of samples ``n_c``;
* ``sums[c]``              ``sum_i h_i`` over the class (so the class mean is ``sums[c] / n_c``);
* ``scatter[c]``           ``sum_i ||h_i - mean_c||^2`` (the centred second moment, a scalar);
* ``scatter_matrix[c]``    ``sum_i (h_i - mean_c)(h_i - mean_c)^T`` (optional, ``p x p``);
* ``norm_sums[c]``, ``norm_max[c]``  the sum and the maximum of ``||h_i||``.

The scatter is stored centred (not as a raw sum of squared norms) and merged with the pairwise
update of Chan, Golub & LeVeque, so that streaming over batches gives the same numbers as one pass
over the concatenated array, without the cancellation that ``E||h||^2 - ||E h||^2`` suffers once the
within-class variance is many orders of magnitude below the squared feature norm (exactly the regime
of late-phase collapse). Statistics accumulated elsewhere as raw moments (for instance in float64 on
a GPU) enter through :meth:`ClassStatistics.from_raw_moments`.

Definitions (Sakamoto & Sato, arXiv:2509.20829, Sec. 3; status **published** as used in the paper's
plots), with ``N = sum_c n_c``, ``mu_c`` the class means and ``mu_G`` the global mean:

* ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``; within-class variance ``Tr Sigma_W``.
* ``Sigma_B = sum_c (n_c/N)(mu_c - mu_G)(mu_c - mu_G)^T``; between-class variance ``Tr Sigma_B``.
* ``NC1 = Tr Sigma_W / Tr Sigma_B`` (the paper's trace ratio).
* ``NC1_pinv = (1/K) Tr(Sigma_W Sigma_B^+)`` (Papyan, Han & Donoho's form).
* ``RNC1 = Tr Sigma_W / B^2`` with ``B`` the feature scale, ``"sup"`` (largest norm, the theory's
  ``B_g``) or ``"mean"`` (mean norm, the paper's plots). This is the empirical counterpart of the
  population within-class variance of Def. 3.1, ``V = sum_c p_c E||g~(X) - mu_c||^2``.
* ``NC2 = sigma_max(M) / sigma_min(M)``, ``M`` the ``K x p`` matrix of *uncentred* class means (the
  paper's condition-number form; needs ``K <= p``).
* ``etf_deviation``: distance of the Gram matrix of the centred, unit-normalised class means from the
  simplex-ETF Gram matrix (1 on the diagonal, ``-1/(K-1)`` off it), relative to the latter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal

import numpy as np

from ncgrok.theory._validation import as_array, as_count, as_priors, as_scalar, to_numpy

ScaleEstimator = Literal["sup", "mean"]
SCALE_ESTIMATORS = ("sup", "mean")

# Keys of collapse_measures(), in order; also the metrics.csv / trajectory column names.
COLLAPSE_MEASURES = (
    "nc1",
    "nc1_pinv",
    "rnc1",
    "rnc1_sup",
    "nc2",
    "etf_deviation",
    "within_var",
    "between_var",
    "feature_norm_mean",
    "feature_norm_max",
)


@dataclass(frozen=True)
class ClassStatistics:
    """Per-class sufficient statistics of a feature sample (see the module docstring).

    Build one with :meth:`from_features` (a feature array and labels), :meth:`from_raw_moments`
    (moments accumulated elsewhere) or :meth:`empty`, and combine with :meth:`merge` or
    :meth:`update`. Instances are immutable; all arrays are float64.
    """

    counts: np.ndarray
    sums: np.ndarray
    scatter: np.ndarray
    norm_sums: np.ndarray
    norm_max: np.ndarray
    scatter_matrix: np.ndarray | None = None

    # ----------------------------------------------------------------- construction
    @classmethod
    def empty(cls, num_classes: int, dim: int, *, covariance: bool = True) -> "ClassStatistics":
        """Statistics of an empty sample, the identity of :meth:`merge`."""
        num_classes = as_count("num_classes", num_classes, minimum=1)
        dim = as_count("dim", dim, minimum=1)
        return cls(
            counts=np.zeros(num_classes),
            sums=np.zeros((num_classes, dim)),
            scatter=np.zeros(num_classes),
            norm_sums=np.zeros(num_classes),
            norm_max=np.zeros(num_classes),
            scatter_matrix=np.zeros((num_classes, dim, dim)) if covariance else None,
        )

    @classmethod
    def from_features(
        cls, features: Any, labels: Any, *, num_classes: int, covariance: bool = True
    ) -> "ClassStatistics":
        """Statistics of ``features`` (N x p) with integer ``labels`` in ``[0, num_classes)``.

        ``covariance=False`` skips the per-class ``p x p`` scatter matrices (they are needed only by
        ``nc1_pinv``, class covariances and the directional Cantelli bound).
        """
        num_classes = as_count("num_classes", num_classes, minimum=1)
        features = as_array("features", features, ndim=2)
        labels = _as_labels(labels, len(features), num_classes)
        count_dim = features.shape[1]
        if count_dim < 1:
            raise ValueError("features must have at least one column (feature dimension p >= 1)")
        counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
        onehot = np.zeros((len(labels), num_classes))
        onehot[np.arange(len(labels)), labels] = 1.0
        sums = onehot.T @ features
        means = np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=counts[:, None] > 0)
        centred = features - means[labels]
        scatter = np.bincount(labels, weights=np.einsum("ij,ij->i", centred, centred), minlength=num_classes)
        norms = np.sqrt(np.einsum("ij,ij->i", features, features))
        norm_sums = np.bincount(labels, weights=norms, minlength=num_classes)
        norm_max = np.zeros(num_classes)
        np.maximum.at(norm_max, labels, norms)
        scatter_matrix = None
        if covariance:
            scatter_matrix = np.zeros((num_classes, count_dim, count_dim))
            for c in range(num_classes):
                block = centred[labels == c]
                scatter_matrix[c] = block.T @ block
        return cls(counts, sums, scatter, norm_sums, norm_max, scatter_matrix)

    @classmethod
    def from_raw_moments(
        cls,
        *,
        counts: Any,
        sums: Any,
        squared_norm_sums: Any,
        norm_sums: Any,
        norm_max: Any,
        outer_sums: Any | None = None,
    ) -> "ClassStatistics":
        """Statistics from raw per-class moments accumulated elsewhere.

        ``squared_norm_sums[c] = sum_i ||h_i||^2`` and ``outer_sums[c] = sum_i h_i h_i^T`` over class
        ``c``. Centring happens here in float64; accumulate the raw moments in float64 as well, since
        their difference loses about ``log10(||h||^2 / variance)`` digits.
        """
        counts = as_array("counts", counts, ndim=1, nonnegative=True)
        num_classes = len(counts)
        sums = as_array("sums", sums, ndim=2)
        if sums.shape[0] != num_classes:
            raise ValueError(f"sums must have one row per class ({num_classes}), got shape {sums.shape}")
        dim = sums.shape[1]
        squared_norm_sums = as_array("squared_norm_sums", squared_norm_sums, shape=(num_classes,), nonnegative=True)
        norm_sums = as_array("norm_sums", norm_sums, shape=(num_classes,), nonnegative=True)
        norm_max = as_array("norm_max", norm_max, shape=(num_classes,), nonnegative=True)
        safe = np.where(counts > 0, counts, 1.0)
        scatter = np.maximum(squared_norm_sums - np.einsum("kp,kp->k", sums, sums) / safe, 0.0)
        scatter_matrix = None
        if outer_sums is not None:
            outer_sums = as_array("outer_sums", outer_sums, shape=(num_classes, dim, dim))
            scatter_matrix = outer_sums - np.einsum("kp,kq->kpq", sums, sums) / safe[:, None, None]
            scatter_matrix = 0.5 * (scatter_matrix + np.swapaxes(scatter_matrix, 1, 2))
        return cls(counts, sums, scatter, norm_sums, norm_max, scatter_matrix)

    # ----------------------------------------------------------------- combination
    def merge(self, other: "ClassStatistics") -> "ClassStatistics":
        """Statistics of the union of the two samples (exact, order-independent up to rounding)."""
        if not isinstance(other, ClassStatistics):
            raise ValueError(f"can only merge ClassStatistics, got {type(other).__name__}")
        if other.sums.shape != self.sums.shape:
            raise ValueError(
                f"cannot merge statistics of shape (K, p) = {self.sums.shape} with {other.sums.shape}"
            )
        counts = self.counts + other.counts
        safe = np.where(counts > 0, counts, 1.0)
        mean_self = _safe_means(self.sums, self.counts)
        mean_other = _safe_means(other.sums, other.counts)
        delta = mean_other - mean_self
        weight = self.counts * other.counts / safe
        scatter = self.scatter + other.scatter + weight * np.einsum("kp,kp->k", delta, delta)
        scatter_matrix = None
        if self.scatter_matrix is not None and other.scatter_matrix is not None:
            scatter_matrix = (
                self.scatter_matrix
                + other.scatter_matrix
                + weight[:, None, None] * np.einsum("kp,kq->kpq", delta, delta)
            )
        return ClassStatistics(
            counts=counts,
            sums=self.sums + other.sums,
            scatter=scatter,
            norm_sums=self.norm_sums + other.norm_sums,
            norm_max=np.maximum(self.norm_max, other.norm_max),
            scatter_matrix=scatter_matrix,
        )

    def update(self, features: Any, labels: Any) -> "ClassStatistics":
        """These statistics merged with those of a new batch (accumulator style)."""
        batch = ClassStatistics.from_features(
            features, labels, num_classes=self.num_classes, covariance=self.scatter_matrix is not None
        )
        return self.merge(batch)

    @staticmethod
    def merge_all(parts: Iterable["ClassStatistics"]) -> "ClassStatistics":
        """Merge a non-empty sequence of statistics."""
        parts = list(parts)
        if not parts:
            raise ValueError("merge_all needs at least one ClassStatistics")
        total = parts[0]
        for part in parts[1:]:
            total = total.merge(part)
        return total

    # ----------------------------------------------------------------- derived quantities
    @property
    def num_classes(self) -> int:
        return int(self.sums.shape[0])

    @property
    def dim(self) -> int:
        return int(self.sums.shape[1])

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    @property
    def priors(self) -> np.ndarray:
        """Empirical class frequencies ``n_c / N``."""
        return self.counts / _require_samples(self)

    @property
    def class_means(self) -> np.ndarray:
        """``mu_c`` (K x p); raises if a class has no samples."""
        _require_all_classes(self, "class means")
        return self.sums / self.counts[:, None]

    @property
    def global_mean(self) -> np.ndarray:
        return self.sums.sum(axis=0) / _require_samples(self)


# --------------------------------------------------------------------------- helpers
def _as_labels(labels: Any, length: int, num_classes: int) -> np.ndarray:
    raw = np.asarray(to_numpy(labels))
    if raw.ndim != 1 or len(raw) != length:
        raise ValueError(f"labels must be a 1-D array with one entry per feature row ({length}), got shape {raw.shape}")
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            raise ValueError("labels must be integers (class indices)")
    labels = raw.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, num_classes={num_classes}), got range [{labels.min()}, {labels.max()}]"
        )
    return labels


def _safe_means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=counts[:, None] > 0)


def _require_samples(stats: ClassStatistics) -> float:
    total = stats.total
    if total <= 0:
        raise ValueError("the statistics hold no samples; accumulate some features first")
    return total


def _require_all_classes(stats: ClassStatistics, what: str) -> None:
    empty = np.flatnonzero(stats.counts == 0)
    if empty.size:
        raise ValueError(
            f"{what} need every class to have samples; classes {empty.tolist()} have none "
            "(use a larger or stratified sample)"
        )


def _require_covariance(stats: ClassStatistics, what: str) -> np.ndarray:
    if stats.scatter_matrix is None:
        raise ValueError(f"{what} needs the per-class scatter matrices; build the statistics with covariance=True")
    return stats.scatter_matrix


def _check_stats(stats: Any) -> ClassStatistics:
    if not isinstance(stats, ClassStatistics):
        raise ValueError(
            f"expected ClassStatistics (see ClassStatistics.from_features), got {type(stats).__name__}"
        )
    return stats


# --------------------------------------------------------------------------- per-class quantities
def class_variances(stats: ClassStatistics, *, unbiased: bool = False) -> np.ndarray:
    """Per-class variances ``V_c = Tr C_c`` (K,), unscaled.

    ``unbiased=True`` divides the scatter by ``n_c - 1`` (the U-statistic used by the held-out
    bound of Thm. 4.1); classes with too few samples give NaN.
    """
    stats = _check_stats(stats)
    denominator = stats.counts - (1.0 if unbiased else 0.0)
    return np.divide(stats.scatter, denominator, out=np.full(stats.num_classes, np.nan), where=denominator > 0)


def class_covariances(stats: ClassStatistics, *, unbiased: bool = False) -> np.ndarray:
    """Per-class covariance matrices ``C_c`` (K, p, p), unscaled."""
    stats = _check_stats(stats)
    scatter_matrix = _require_covariance(stats, "class_covariances")
    denominator = stats.counts - (1.0 if unbiased else 0.0)
    out = np.full_like(scatter_matrix, np.nan)
    np.divide(scatter_matrix, denominator[:, None, None], out=out, where=denominator[:, None, None] > 0)
    return out


def feature_scale(stats: ClassStatistics, *, estimator: ScaleEstimator = "sup") -> float:
    """The feature scale ``B``: ``"sup"`` = largest ``||h_i||`` (the theory's ``B_g``), ``"mean"`` =
    mean ``||h_i||`` (the scale of the paper's RNC1 plots)."""
    stats = _check_stats(stats)
    if estimator == "sup":
        _require_samples(stats)
        return float(stats.norm_max.max())
    if estimator == "mean":
        return float(stats.norm_sums.sum() / _require_samples(stats))
    raise ValueError(f"estimator must be one of {SCALE_ESTIMATORS}, got {estimator!r}")


# --------------------------------------------------------------------------- class-averaged measures
def within_class_covariance(stats: ClassStatistics) -> np.ndarray:
    """``Sigma_W`` (p x p)."""
    stats = _check_stats(stats)
    return _require_covariance(stats, "within_class_covariance").sum(axis=0) / _require_samples(stats)


def between_class_covariance(stats: ClassStatistics) -> np.ndarray:
    """``Sigma_B`` (p x p)."""
    centred = _weighted_centred_means(stats)
    return centred.T @ centred


def within_class_variance(stats: ClassStatistics) -> float:
    """``Tr Sigma_W = (1/N) sum_c sum_i ||h_i - mu_c||^2``, unscaled."""
    stats = _check_stats(stats)
    return float(stats.scatter.sum() / _require_samples(stats))


def between_class_variance(stats: ClassStatistics) -> float:
    """``Tr Sigma_B = sum_c (n_c/N) ||mu_c - mu_G||^2``, unscaled."""
    centred = _weighted_centred_means(stats)
    return float(np.einsum("kp,kp->", centred, centred))


def _weighted_centred_means(stats: ClassStatistics) -> np.ndarray:
    """Rows ``sqrt(n_c/N) (mu_c - mu_G)`` so that ``Sigma_B = A^T A``."""
    stats = _check_stats(stats)
    means = stats.class_means
    return np.sqrt(stats.priors)[:, None] * (means - stats.global_mean)


def population_within_class_variance(
    stats: ClassStatistics,
    *,
    scale: float,
    priors: Any | None = None,
    unbiased: bool = False,
) -> float:
    """Estimate of Def. 3.1's ``V = sum_c p_c E||g~(X) - mu_c||^2`` with ``g~ = g / scale``.

    Status: published definition. ``priors`` default to the sample's class frequencies (then, with
    ``unbiased=False``, this equals ``RNC1`` at the same scale). On held-out data pass the scale
    measured on the training set and ``unbiased=True`` (the estimator covered by Thm. 4.1's
    held-out radius).
    """
    stats = _check_stats(stats)
    scale = as_scalar("scale", scale, positive=True)
    weights = stats.priors if priors is None else as_priors(priors, stats.num_classes)
    variances = class_variances(stats, unbiased=unbiased)
    used = weights > 0
    if np.any(np.isnan(variances[used])):
        short = np.flatnonzero(used & np.isnan(variances)).tolist()
        raise ValueError(f"classes {short} have too few samples for a variance estimate (need 2 or more)")
    return float(np.sum(weights[used] * variances[used]) / scale**2)


def nc1(stats: ClassStatistics) -> float:
    """Trace-ratio NC1 ``Tr Sigma_W / Tr Sigma_B`` (the paper's choice); ``inf`` if the class means
    coincide while the within-class variance is positive."""
    within = within_class_variance(stats)
    between = between_class_variance(stats)
    if between == 0.0:
        return 0.0 if within == 0.0 else float("inf")
    return within / between


def nc1_pinv(stats: ClassStatistics, *, rcond: float = 1e-10) -> float:
    """Papyan's NC1 ``(1/K) Tr(Sigma_W Sigma_B^+)``.

    ``Sigma_B^+`` is taken on the span of the centred class means; directions with singular value
    below ``rcond`` times the largest are dropped (``Sigma_B`` has rank at most ``K - 1``).
    """
    stats = _check_stats(stats)
    sigma_w = within_class_covariance(stats)
    _, singular, right = np.linalg.svd(_weighted_centred_means(stats), full_matrices=False)
    if singular.size == 0 or singular[0] == 0.0:
        return 0.0 if np.trace(sigma_w) == 0.0 else float("inf")
    keep = singular > rcond * singular[0]
    directions = right[keep]
    projected = np.einsum("jp,pq,jq->j", directions, sigma_w, directions)
    return float(np.sum(projected / singular[keep] ** 2) / stats.num_classes)


def rnc1(stats: ClassStatistics, *, scale: ScaleEstimator = "mean") -> float:
    """Rescaled NC1 ``Tr Sigma_W / B^2`` with ``B = feature_scale(stats, estimator=scale)``."""
    bound = feature_scale(stats, estimator=scale)
    if bound == 0.0:
        raise ValueError("all features are zero, so the feature scale is 0 and RNC1 is undefined")
    return within_class_variance(stats) / bound**2


def nc2(stats: ClassStatistics) -> float:
    """The paper's NC2: condition number ``sigma_max(M) / sigma_min(M)`` of the K x p matrix of
    uncentred class means. Needs ``K <= p``; ``inf`` if the means are linearly dependent."""
    stats = _check_stats(stats)
    if stats.num_classes > stats.dim:
        raise ValueError(
            f"nc2 needs K <= p (number of classes <= feature dimension), got K={stats.num_classes}, p={stats.dim}"
        )
    singular = np.linalg.svd(stats.class_means, compute_uv=False)
    if singular[-1] == 0.0:
        return float("inf")
    return float(singular[0] / singular[-1])


def simplex_etf_gram(num_classes: int) -> np.ndarray:
    """Gram matrix of a K-class simplex equiangular tight frame of unit vectors."""
    num_classes = as_count("num_classes", num_classes, minimum=2)
    return (num_classes * np.eye(num_classes) - np.ones((num_classes, num_classes))) / (num_classes - 1)


def etf_deviation(stats: ClassStatistics) -> float:
    """``||G - G_ETF||_F / ||G_ETF||_F`` where ``G`` is the Gram matrix of the centred class means
    ``mu_c - mu_G``, each normalised to unit length; 0 exactly for a simplex ETF."""
    stats = _check_stats(stats)
    if stats.num_classes < 2:
        raise ValueError("etf_deviation needs at least 2 classes")
    centred = stats.class_means - stats.global_mean
    lengths = np.linalg.norm(centred, axis=1)
    if np.any(lengths == 0.0):
        raise ValueError("a class mean coincides with the global mean, so its direction is undefined")
    unit = centred / lengths[:, None]
    target = simplex_etf_gram(stats.num_classes)
    return float(np.linalg.norm(unit @ unit.T - target) / np.linalg.norm(target))


def collapse_measures(stats: ClassStatistics) -> dict[str, float]:
    """Every collapse measure at once, keyed by ``COLLAPSE_MEASURES`` (the ``metrics.csv`` column names).

    ``nc1_pinv`` is NaN without scatter matrices; ``nc2`` is NaN when ``K > p``.
    """
    stats = _check_stats(stats)
    within = within_class_variance(stats)
    between = between_class_variance(stats)
    scale_mean = feature_scale(stats, estimator="mean")
    scale_sup = feature_scale(stats, estimator="sup")
    return {
        "nc1": nc1(stats),
        "nc1_pinv": nc1_pinv(stats) if stats.scatter_matrix is not None else float("nan"),
        "rnc1": within / scale_mean**2 if scale_mean > 0 else float("nan"),
        "rnc1_sup": within / scale_sup**2 if scale_sup > 0 else float("nan"),
        "nc2": nc2(stats) if stats.num_classes <= stats.dim else float("nan"),
        "etf_deviation": etf_deviation(stats) if between > 0 else float("nan"),
        "within_var": within,
        "between_var": between,
        "feature_norm_mean": scale_mean,
        "feature_norm_max": scale_sup,
    }
