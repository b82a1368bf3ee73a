"""What is measured at each logged step of a Gaussian-mixture run (one trajectory row).

Conventions (columns of :data:`TRAJECTORY_COLUMNS`)
---------------------------------------------------
* **Scale.** ``B_g`` (column ``feature_scale``) is the ``"sup"`` estimator on the *training set*,
  ``max_i ||g(x_i)||`` (``theory.collapse.feature_scale``), re-measured at every logged step;
  ``g~ = g / B_g``. It is an estimate of ``sup_x ||g(x)||``: fresh samples may exceed it (columns
  ``population_norm_ratio`` and ``heldout_norm_ratio`` report ``max ||g|| / B_g`` on those samples).
  The Cantelli bound does not depend on the scale; the IB quantities and variances are in ``g~`` units.
  For Gaussian inputs the true ``sup_x ||g(x)||`` is infinite for any non-constant network, so the
  theory's ``B_g`` can only be an empirical scale here; the held-out radius of Thm. 4.1 formally needs
  ``||g~|| <= 1`` on the held-out sample, i.e. ``heldout_norm_ratio <= 1``.
* **Population moments** (class means and covariances of ``g``). Linear network: exact,
  ``E[g | c] = W2 (W1 m_c + b1)``, ``Cov[g | c] = A S_c A^T`` with ``A = W2 W1``
  (:func:`exact_linear_moments`). Otherwise: from a fixed fresh sample of ``n_population`` points
  per class (unbiased covariances).
* **Population within-class variance** ``V = sum_c p_c Tr Cov[g~ | c]`` (Def. 3.1) from those
  moments (column ``population_variance``); ``population_variance_sample`` is always the
  large-sample value computed by ``theory.collapse.population_within_class_variance``.
* **Test error**: on a fixed fresh sample of ``n_test`` points per class, ``sum_c p_c e_c`` with ties
  counted as errors (the event Thm. 3.2 bounds), with its binomial standard error.
* **Training collapse** from ``theory.collapse.collapse_measures`` on the training features:
  ``train_rnc1`` (sup scale, i.e. the training value of ``V`` in ``g~`` units) and
  ``train_rnc1_mean`` (mean-norm scale, the paper's plots).
* **Held-out (Thm. 4.1)**: unbiased within-class variance of ``g~`` on ``n_heldout`` fresh points
  per class (never used for training), with the radius ``theory.concentration.heldout_variance_radius``
  at level ``delta``; ``heldout_covered`` is 1 if every class's population variance lies within its
  own radius, and ``heldout_radius`` is the prior-weighted average of the per-class radii (which
  bounds ``|heldout_variance - population_variance|`` for the class-averaged values). The guarantee
  is per logged step (no union over steps) and assumes ``||g~|| <= 1`` on the held-out sample (see
  ``heldout_norm_ratio``).
* **I(Z;X|Y)** in nats, ``Z / B_g = g~(X) + E``. Linear network: ``mi_exact`` from
  ``theory.information.gaussian_conditional_information`` (it equals the log-det bound). Always: the
  Monte Carlo estimate of :func:`conditional_information_monte_carlo` (``mi_estimate``, biased
  *upwards*; ``mi_lower`` is biased *downwards*; see there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncgrok.simulate.gmm.config import GMMConfig
from ncgrok.simulate.gmm.network import Network, loss_and_gradients
from ncgrok.simulate.gmm.population import GaussianMixture
from ncgrok.theory._validation import as_array, as_priors, as_scalar
from ncgrok.theory.collapse import (
    ClassStatistics,
    class_covariances,
    class_variances,
    collapse_measures,
    feature_scale,
    population_within_class_variance,
)
from ncgrok.theory.concentration import complexity_ratio, heldout_variance_radius
from ncgrok.theory.generalization import cantelli_bound
from ncgrok.theory.information import gaussian_conditional_information, ib_bound_logdet, ib_bound_trace
from ncgrok.theory.timescales import imbalance

__all__ = [
    "TRAJECTORY_COLUMNS",
    "InformationEstimate",
    "Samples",
    "conditional_information_monte_carlo",
    "draw_samples",
    "exact_linear_moments",
    "measure",
]

# Columns of the trajectory, in CSV order.
TRAJECTORY_COLUMNS = (
    "step",
    "train_loss",
    "train_error",
    "train_rnc1",
    "train_rnc1_mean",
    "train_nc1",
    "feature_scale",
    "test_error",
    "test_error_se",
    "cantelli_bound",
    "cantelli_directional",
    "population_variance",
    "population_variance_sample",
    "heldout_variance",
    "heldout_radius",
    "heldout_covered",
    "ib_trace",
    "ib_logdet",
    "mi_estimate",
    "mi_se",
    "mi_lower",
    "mi_bias_estimate",
    "mi_exact",
    "population_norm_ratio",
    "heldout_norm_ratio",
    "complexity_ratio",
    "imbalance_norm",
)



def exact_linear_moments(network: Network, mixture: GaussianMixture) -> tuple[np.ndarray, np.ndarray]:
    """Exact class means (K, p) and covariances (K, p, p) of ``g(X) | Y=c`` for a linear network.

    With ``phi = identity``, ``g(x) = A x + W2 b1`` with ``A = W2 W1``, so ``g(X) | Y=c`` is Gaussian
    with mean ``A m_c + W2 b1`` and covariance ``A S_c A^T``.
    """
    if not network.is_linear:
        raise ValueError(
            f"exact moments need a linear network (activation='identity'), got activation={network.activation!r}"
        )
    product = network.W2 @ network.W1
    means = mixture.means @ product.T + network.W2 @ network.b1
    covariances = np.einsum("pd,cde,qe->cpq", product, mixture.covariances, product)
    return means, 0.5 * (covariances + np.swapaxes(covariances, 1, 2))


@dataclass(frozen=True)
class InformationEstimate:
    """Monte Carlo estimate of ``I(Z;X|Y)`` in nats (see :func:`conditional_information_monte_carlo`).

    Attributes:
        estimate: the estimator with an independent inner sample; biased **upwards** (its
            expectation is ``>= I``), bias ``O(1/M)``.
        standard_error: delta-method standard error of ``estimate`` from both the outer and the inner
            sample (it does not include the bias).
        lower: the same with each outer point's own source added to its inner sample; biased
            **downwards** (expectation ``<= I``), so ``[lower, estimate]`` brackets ``I`` up to noise.
        bias_estimate: second-order estimate of the upward bias of ``estimate``,
            ``mean_j Var_m(w_jm) / (2M)`` with ``w_jm`` the normalized kernel weights.
        class_estimates: (K,) per-class values of ``estimate``.
    """

    estimate: float
    standard_error: float
    lower: float
    bias_estimate: float
    class_estimates: np.ndarray


def conditional_information_monte_carlo(
    outer_features: list[np.ndarray],
    noise: list[np.ndarray],
    inner_features: list[np.ndarray],
    *,
    sigma: float,
    priors: Any = None,
) -> InformationEstimate:
    """Monte Carlo estimate of ``I(Z;X|Y)`` for ``Z = g~(X) + E``, ``E ~ N(0, sigma^2 I_p)`` (Thm. 3.4).

    The quantity bounded by Thm. 3.4 (**published**), estimated from its definition
    ``I(Z;X|Y) = sum_c p_c [h(Z|Y=c)] - h(Z|X)`` for a known input distribution:

    * ``h(Z|X) = (p/2) log(2 pi e sigma^2)`` exactly; here it enters through its unbiased per-sample
      form ``-log N(z_j; g~(x_j), sigma^2 I)`` (same expectation, and it cancels most of the noise in
      the other term, a control variate);
    * ``h(Z|Y=c) = -E log p(z|c)`` with the mixture density ``p(z|c) = E_{x~c} N(z; g~(x), sigma^2 I)``,
      estimated for each outer point ``z_j = g~(x_j) + e_j`` by the log-mean-exp of the Gaussian
      kernel over an independent inner sample ``u_1..u_M = g~(x'_1..x'_M)`` of the same class.

    **Bias.** ``log`` of an average is concave, so ``E log p^(z) <= log p(z)`` (Jensen): ``estimate``
    overestimates ``I`` on average, by about ``E[Var_x N(z; g~(x)) / p(z)^2] / (2M)``
    (``bias_estimate``). The bias is small once ``M`` is large compared with that variance ratio, which
    grows as ``sigma`` shrinks relative to the within-class spread of ``g~`` (roughly like
    ``prod_i (1 + lambda_i/sigma^2)`` over the eigenvalues of ``C_c``); raise ``M`` when
    ``bias_estimate`` is not small against the standard error. ``lower`` includes ``u = g~(x_j)``
    itself in the average over ``M + 1`` points: that is the InfoNCE-type estimator, whose expectation
    is ``<= I`` (Poole et al., 2019), so the pair brackets the truth.

    Args:
        outer_features: per class, ``(J_c, p)`` array of ``g~(x_j)`` for the outer points.
        noise: per class, ``(J_c, p)`` array of noise draws ``e_j ~ N(0, sigma^2 I)``.
        inner_features: per class, ``(M_c, p)`` array of ``g~`` on independent draws of the class.
        sigma: the noise standard deviation (> 0), in ``g~`` units.
        priors: class priors, uniform by default.
    """
    sigma = as_scalar("sigma", sigma, positive=True)
    num_classes = len(outer_features)
    if num_classes < 1 or len(noise) != num_classes or len(inner_features) != num_classes:
        raise ValueError("outer_features, noise and inner_features must hold one array per class (same K)")
    priors = as_priors(priors, num_classes)
    estimates = np.zeros(num_classes)
    lowers = np.zeros(num_classes)
    variances = np.zeros(num_classes)
    biases = np.zeros(num_classes)
    for c in range(num_classes):
        outer = as_array(f"outer_features[{c}]", outer_features[c], ndim=2)
        eps = as_array(f"noise[{c}]", noise[c], shape=outer.shape)
        inner = as_array(f"inner_features[{c}]", inner_features[c], ndim=2)
        if inner.shape[1] != outer.shape[1]:
            raise ValueError(f"inner_features[{c}] must have {outer.shape[1]} columns, got {inner.shape[1]}")
        outer_count, inner_count = outer.shape[0], inner.shape[0]
        if outer_count < 2 or inner_count < 2:
            raise ValueError(f"class {c} needs at least 2 outer and 2 inner points")
        z = outer + eps
        # log N(z_j; u_m, sigma^2 I) = const - ||z_j||^2/(2 sigma^2) + [z_j.u_m - ||u_m||^2/2] / sigma^2.
        # The row term -||z_j||^2/(2 sigma^2) is added back after the log-mean-exp (it cancels in the
        # max-shift), which saves two passes over the J x M matrix.
        log_kernel = z @ (inner / sigma**2).T
        log_kernel -= np.einsum("mp,mp->m", inner, inner) / (2.0 * sigma**2)
        row_max = log_kernel.max(axis=1)
        log_kernel -= row_max[:, None]
        kernel = np.exp(log_kernel, out=log_kernel)                          # in place: one exp pass
        row_sum = kernel.sum(axis=1)
        log_mean = (row_max + np.log(row_sum) - math.log(inner_count)
                    - np.einsum("jp,jp->j", z, z) / (2.0 * sigma**2))       # log p^(z_j | c) + const
        log_own = -np.einsum("jp,jp->j", eps, eps) / (2.0 * sigma**2)       # log N(z_j; g~(x_j)) + const
        difference = log_own - log_mean
        estimates[c] = difference.mean()
        log_mean_with_own = np.logaddexp(log_mean + math.log(inner_count), log_own) - math.log(inner_count + 1)
        lowers[c] = (log_own - log_mean_with_own).mean()
        # Normalized weights w_jm = N(z_j; u_m) / p^(z_j); each row averages to exactly 1.
        normalizer = inner_count / row_sum
        inner_influence = (normalizer / outer_count) @ kernel               # psi_m = mean_j w_jm
        variances[c] = difference.var(ddof=1) / outer_count + inner_influence.var(ddof=1) / inner_count
        row_second_moment = np.einsum("jm,jm->j", kernel, kernel) * normalizer**2 / inner_count
        row_variance = (row_second_moment - 1.0) * inner_count / (inner_count - 1)   # Var_m(w_jm)
        biases[c] = max(float(row_variance.mean()), 0.0) / (2.0 * inner_count)
    return InformationEstimate(
        estimate=float(priors @ estimates),
        standard_error=float(math.sqrt(float(np.sum(priors**2 * variances)))),
        lower=float(priors @ lowers),
        bias_estimate=float(priors @ biases),
        class_estimates=estimates,
    )



@dataclass
class Samples:
    """The fixed samples of a run, drawn once (:func:`draw_samples`): the training set (with one-hot
    targets), the test, population and held-out sets, and per class the outer points, noise and inner
    points of the information estimate."""

    train_x: np.ndarray
    train_y: np.ndarray
    train_targets: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    population_x: np.ndarray
    population_y: np.ndarray
    heldout_x: np.ndarray
    heldout_y: np.ndarray
    mi_outer_x: list[np.ndarray]
    mi_noise: list[np.ndarray]
    mi_inner_x: list[np.ndarray]


def draw_samples(config: GMMConfig, mixture: GaussianMixture, streams: list[np.random.Generator]) -> Samples:
    """Draw every sample of a run from five independent streams (training, test, population,
    held-out, information estimate), in that order."""
    train_rng, test_rng, population_rng, heldout_rng, mi_rng = streams
    train_x, train_y = mixture.sample(config.n_train, train_rng)
    targets = np.eye(config.num_classes)[train_y]
    test_x, test_y = mixture.sample(config.n_test, test_rng)
    population_x, population_y = mixture.sample(config.n_population, population_rng)
    heldout_x, heldout_y = mixture.sample(config.n_heldout, heldout_rng)
    outer, noise, inner = [], [], []
    for c in range(config.num_classes):
        outer.append(mixture.sample_class(c, config.mi_outer, mi_rng))
        noise.append(config.sigma * mi_rng.standard_normal((config.mi_outer, config.feature_dim)))
        inner.append(mixture.sample_class(c, config.mi_inner, mi_rng))
    return Samples(train_x, train_y, targets, test_x, test_y, population_x, population_y,
                    heldout_x, heldout_y, outer, noise, inner)


def _error_rates(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class rate of "some other class scores at least as high" (ties are errors)."""
    own = logits[np.arange(len(labels)), labels]
    others = logits.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    wrong = (others.max(axis=1) >= own).astype(np.float64)
    counts = np.bincount(labels, minlength=num_classes)
    return np.bincount(labels, weights=wrong, minlength=num_classes) / counts


def measure(network: Network, config: GMMConfig, mixture: GaussianMixture, samples: Samples,
            input_bound: float) -> dict[str, float]:
    """One trajectory row (every column of :data:`TRAJECTORY_COLUMNS` but ``step``; see the module
    docstring). ``input_bound`` is the largest training input norm (for ``complexity_ratio``)."""
    K, priors, sigma = config.num_classes, mixture.priors, config.sigma
    row: dict[str, float] = {}

    # Training set: loss, error, collapse measures, and the scale B_g ("sup" estimator).
    train_features = network.features(samples.train_x)
    loss, _ = loss_and_gradients(network, samples.train_x, samples.train_targets, weight_decay=config.weight_decay)
    train_stats = ClassStatistics.from_features(train_features, samples.train_y, num_classes=K, covariance=False)
    measures = collapse_measures(train_stats)
    scale = feature_scale(train_stats, estimator="sup")
    if scale <= 0.0:
        raise ValueError("all training features are zero, so B_g = 0; use a larger init_scale or fewer steps")
    train_counts = np.bincount(samples.train_y, minlength=K)
    row["train_loss"] = loss
    row["train_error"] = float(_error_rates(network.logits(train_features), samples.train_y, K) @ (train_counts / train_counts.sum()))
    row["train_rnc1"] = measures["rnc1_sup"]
    row["train_rnc1_mean"] = measures["rnc1"]
    row["train_nc1"] = measures["nc1"]
    row["feature_scale"] = scale

    # Test error on the fixed fresh sample, weighted by the population priors.
    class_errors = _error_rates(network.logits(network.features(samples.test_x)), samples.test_y, K)
    row["test_error"] = float(priors @ class_errors)
    row["test_error_se"] = float(math.sqrt(float(np.sum(priors**2 * class_errors * (1 - class_errors))) / config.n_test))

    # Population moments of g: exact for the linear network, else from the large fresh sample.
    population_features = network.features(samples.population_x)
    population_stats = ClassStatistics.from_features(population_features, samples.population_y, num_classes=K)
    row["population_variance_sample"] = population_within_class_variance(
        population_stats, scale=scale, priors=priors, unbiased=True)
    if network.is_linear:
        means, covariances = exact_linear_moments(network, mixture)
        class_population_variances = np.trace(covariances, axis1=1, axis2=2) / scale**2
        row["population_variance"] = float(priors @ class_population_variances)
    else:
        means = population_stats.class_means
        covariances = class_covariances(population_stats, unbiased=True)
        class_population_variances = class_variances(population_stats, unbiased=True) / scale**2
        row["population_variance"] = row["population_variance_sample"]
    row["population_norm_ratio"] = feature_scale(population_stats, estimator="sup") / scale

    # Thm. 3.2 with population moments.
    row["cantelli_bound"] = cantelli_bound(means, network.W3, covariances=covariances, priors=priors,
                                           bias=network.b3, scale=scale)
    row["cantelli_directional"] = cantelli_bound(means, network.W3, covariances=covariances, priors=priors,
                                                 bias=network.b3, scale=scale, directional=True)

    # Thm. 4.1 held-out radius.
    heldout_features = network.features(samples.heldout_x)
    heldout_stats = ClassStatistics.from_features(heldout_features, samples.heldout_y, num_classes=K, covariance=False)
    heldout_class_variances = class_variances(heldout_stats, unbiased=True) / scale**2
    radius = heldout_variance_radius(heldout_stats.counts, delta=config.delta)
    row["heldout_variance"] = population_within_class_variance(heldout_stats, scale=scale, priors=priors, unbiased=True)
    row["heldout_radius"] = float(priors @ radius)
    row["heldout_covered"] = float(np.all(np.abs(heldout_class_variances - class_population_variances) <= radius))
    row["heldout_norm_ratio"] = feature_scale(heldout_stats, estimator="sup") / scale

    # Thm. 3.4 in g~ units.
    scaled_covariances = covariances / scale**2
    row["ib_trace"] = ib_bound_trace(sigma=sigma, covariances=scaled_covariances, priors=priors)
    row["ib_logdet"] = ib_bound_logdet(scaled_covariances, sigma=sigma, priors=priors)
    row["mi_exact"] = (gaussian_conditional_information(scaled_covariances, sigma=sigma, priors=priors)
                       if network.is_linear else float("nan"))
    information = conditional_information_monte_carlo(
        [network.features(x) / scale for x in samples.mi_outer_x],
        samples.mi_noise,
        [network.features(x) / scale for x in samples.mi_inner_x],
        sigma=sigma, priors=priors,
    )
    row["mi_estimate"] = information.estimate
    row["mi_se"] = information.standard_error
    row["mi_lower"] = information.lower
    row["mi_bias_estimate"] = information.bias_estimate

    # Shape of the uniform Thm. 4.1 term and the R5 imbalance of the two linear layers.
    row["complexity_ratio"] = complexity_ratio([network.W1, network.W2], input_bound=input_bound, feature_bound=scale)
    row["imbalance_norm"] = float(np.linalg.norm(imbalance(network.W3, network.W2)))
    return row

