"""k-nearest-neighbour information estimators, in nats: Kozachenko-Leonenko entropy, KSG, Ross.

Three estimators share the neighbour searches here (scipy's KD-tree):

* :class:`KNNEntropy`: the Kozachenko-Leonenko differential entropy. Mutual information as
  ``h(A) + h(B) - h(A,B)`` from three of them is the route of the paper (``estimator="kl"``). The
  three biases do not cancel when the joint sample lies near a thin set (a curve in the plane, or a
  representation collapsing onto K points), which is where the paper measures compression.
* :func:`ksg_mutual_information`: Kraskov, Stoegbauer & Grassberger (2004), algorithm 1, with the
  max-norm: one neighbour distance in the joint space per point and *counts* in the marginal spaces,
  so the marginal and joint errors largely cancel (``estimator="ksg"``).
* :func:`mixed_label_mutual_information`: Ross (2014), the same counting idea for a continuous ``Z``
  and discrete labels ``Y``.

:func:`mutual_information` and :func:`label_mutual_information` are the entry points; both whiten
each argument first (an invertible affine map of each, which leaves the true mutual information
unchanged and puts both on one scale, which the max-norm needs). ``validation.py`` measures all of
them on distributions whose mutual information is known in closed form.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from ncgrok.theory._validation import as_array, as_count, as_scalar, to_numpy

__all__ = [
    "ESTIMATORS",
    "KNNEntropy",
    "whiten",
    "ksg_mutual_information",
    "mixed_label_mutual_information",
    "mutual_information",
    "label_mutual_information",
]

ESTIMATORS = ("ksg", "kl")
DEFAULT_ESTIMATOR = "ksg"
_DUPLICATE_RULES = ("jitter", "raise")


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


# ---------------------------------------------------------------------------------------------
# counting estimators


def _strict_counts(points: np.ndarray, radii: np.ndarray, workers: int) -> np.ndarray:
    """For each point, how many *other* points lie strictly closer than its radius (max-norm)."""
    tree = cKDTree(points)
    below = np.nextafter(radii, 0.0)
    return tree.query_ball_point(points, r=below, p=np.inf, return_length=True, workers=workers) - 1


def ksg_mutual_information(a: np.ndarray, b: np.ndarray, *, k: int = 5, workers: int = 1) -> float:
    """KSG estimate (algorithm 1 of Kraskov et al. 2004) of ``I(A;B)`` in nats for continuous samples.

    With ``eps_i`` the max-norm distance from ``(a_i, b_i)`` to its ``k``-th nearest other point in the
    joint space, and ``n_a(i)``, ``n_b(i)`` the numbers of other points strictly within ``eps_i`` in
    each marginal space (max-norm),

        I = psi(k) + psi(N) - mean_i [ psi(n_a(i) + 1) + psi(n_b(i) + 1) ].

    ``a`` (N, d_a) and ``b`` (N, d_b) must already be on comparable scales (see :func:`mutual_information`)
    and free of exact duplicates in the joint space.
    """
    count = a.shape[0]
    joint = np.concatenate([a, b], axis=1)
    distances, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf, workers=workers)
    radius = distances[:, k]
    n_a = _strict_counts(a, radius, workers)
    n_b = _strict_counts(b, radius, workers)
    return float(digamma(k) + digamma(count) - np.mean(digamma(n_a + 1) + digamma(n_b + 1)))


def mixed_label_mutual_information(z: np.ndarray, labels: np.ndarray, *, k: int = 5, workers: int = 1) -> float:
    """Ross (2014) estimate of ``I(Z;Y)`` in nats for continuous ``z`` (N, d) and integer ``labels`` (N,).

    For point ``i`` of class ``y_i`` (``N_{y_i}`` points): ``d_i`` is the max-norm distance to its
    ``k``-th nearest other point *of the same class*, and ``m_i`` the number of other points of any
    class within ``d_i`` (so ``m_i >= k``). Then

        I = psi(N) - mean_i psi(N_{y_i}) + psi(k) - mean_i psi(m_i).

    For well separated classes ``m_i = k`` and the estimate is ``psi(N) - mean psi(N_y)``, about the
    label entropy; for labels independent of ``z``, ``m_i ~ k N / N_{y_i}`` and it is about 0.
    Every class needs more than ``k`` points.
    """
    classes, inverse, class_counts = np.unique(labels, return_inverse=True, return_counts=True)
    if np.any(class_counts <= k):
        small = classes[class_counts <= k]
        raise ValueError(f"y: every class needs more than k = {k} samples; classes {small.tolist()[:10]} have too few")
    radius = np.empty(z.shape[0])
    for label in range(classes.size):
        members = np.flatnonzero(inverse == label)
        distances, _ = cKDTree(z[members]).query(z[members], k=k + 1, p=np.inf, workers=workers)
        radius[members] = distances[:, k]
    within = cKDTree(z).query_ball_point(z, r=radius, p=np.inf, return_length=True, workers=workers) - 1
    return float(digamma(z.shape[0]) - np.mean(digamma(class_counts[inverse])) + digamma(k) - np.mean(digamma(within)))


# ---------------------------------------------------------------------------------------------
# entry points


def _whitened(name: str, value: Any) -> np.ndarray:
    return whiten(_points(name, value), name=name)


def _estimator(estimator: str) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS} ('ksg' the default, 'kl' the paper's route), got {estimator!r}")
    return estimator


def mutual_information(a: Any, b: Any, *, estimator: str = DEFAULT_ESTIMATOR, k: int = 5, jitter: float = 1e-6,
                       seed: int = 0, workers: int = 1) -> float:
    """``I(A;B)`` in nats from paired continuous samples ``a`` (N, d_a) and ``b`` (N, d_b).

    Each argument is whitened (centred, rotated onto principal axes, unit variance); then
    ``estimator="ksg"`` (default) applies :func:`ksg_mutual_information` and ``"kl"`` the paper's
    ``h(A) + h(B) - h(A,B)`` with :class:`KNNEntropy`. Points with ``>= k`` exact copies get the
    ``jitter`` rule of :class:`KNNEntropy` (tiny seeded noise), since both estimators need distinct
    points. Measured bias and spread of both on known-MI families: ``validation.py`` and the README.
    """
    estimator = _estimator(estimator)
    k = as_count("k", k)
    jitter = as_scalar("jitter", jitter, positive=True)
    a_white, b_white = _whitened("a", a), _whitened("b", b)
    if a_white.shape[0] != b_white.shape[0]:
        raise ValueError(f"a and b must hold the same number of samples, got {a_white.shape[0]} and {b_white.shape[0]}")
    if a_white.shape[0] <= k:
        raise ValueError(f"mutual information needs more than k = {k} samples, got {a_white.shape[0]}")
    ties = dict(k=k, rule="jitter", jitter=jitter, seed=seed, workers=workers)
    a_white = _break_ties("a", a_white, **ties)
    b_white = _break_ties("b", b_white, **{**ties, "seed": seed + 1})
    if estimator == "ksg":
        joint = _break_ties("(a, b)", np.concatenate([a_white, b_white], axis=1), **{**ties, "seed": seed + 2})
        return ksg_mutual_information(joint[:, : a_white.shape[1]], joint[:, a_white.shape[1]:], k=k, workers=workers)
    entropy = KNNEntropy(k, jitter=jitter, seed=seed, workers=workers)
    return float(entropy._entropy(a_white) + entropy._entropy(b_white)
                 - entropy._entropy(np.concatenate([a_white, b_white], axis=1)))


def label_mutual_information(z: Any, y: Any, *, estimator: str = DEFAULT_ESTIMATOR, k: int = 5, jitter: float = 1e-6,
                             seed: int = 0, workers: int = 1) -> float:
    """``I(Z;Y)`` in nats for continuous ``z`` (N, d) and discrete labels ``y`` (N,).

    ``z`` is whitened; ``estimator="ksg"`` (default) applies Ross's mixed estimator
    (:func:`mixed_label_mutual_information`), ``"kl"`` the paper's ``h(Z) - sum_y p(y) h(Z | Y=y)``.
    """
    estimator = _estimator(estimator)
    k = as_count("k", k)
    z_white = _break_ties("z", _whitened("z", z), k=k, rule="jitter", jitter=as_scalar("jitter", jitter, positive=True),
                          seed=seed, workers=workers)
    labels = np.asarray(to_numpy(y))
    if labels.ndim != 1 or labels.shape[0] != z_white.shape[0]:
        raise ValueError(f"y must be a 1-D array of {z_white.shape[0]} labels (one per row of z), got shape {labels.shape}")
    if estimator == "ksg":
        return mixed_label_mutual_information(z_white, labels, k=k, workers=workers)
    entropy = KNNEntropy(k, jitter=jitter, seed=seed, workers=workers)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if np.any(counts <= k):
        raise ValueError(f"y: every class needs more than k = {k} samples")
    conditional = sum((c / z_white.shape[0]) * entropy._entropy(z_white[inverse == i]) for i, c in enumerate(counts))
    return float(entropy._entropy(z_white) - conditional)
