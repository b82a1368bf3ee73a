"""Small networks trained on a known Gaussian mixture, measured against Thm. 3.2, 3.4 and 4.1.

The point of a Gaussian mixture is that the *population* is known and can be sampled freely, so
every population quantity the theory talks about (class means and covariances of the features, the
test error, the conditional information ``I(Z;X|Y)``) can be measured as precisely as one likes and
set next to the bounds of Sakamoto & Sato (arXiv:2509.20829):

* **Thm. 3.2** (published): the Cantelli bound on the test error from class means and within-class
  variances (``theory.generalization.cantelli_bound``, plain and directional);
* **Thm. 3.4** (published): the trace and log-det bounds on ``I(Z;X|Y) = I(Z;X) - I(Z;Y)`` for the
  noisy representation ``Z = g(X) + B_g E``, ``E ~ N(0, sigma^2 I_p)``
  (``theory.information``), against the exact value (linear network) or a Monte Carlo estimate
  (:func:`conditional_information_monte_carlo`);
* **Thm. 4.1** (reconstructed): the held-out radius of ``theory.concentration`` around the held-out
  within-class variance, checked against the population variance.

Model
-----
Population: ``K`` Gaussian classes in ``R^d``, ``X | Y=c ~ N(m_c, S_c)``, priors ``p_c``
(:class:`GaussianMixture`; :meth:`GaussianMixture.random` draws a default one from a seed).

Network (:class:`Network`), whose last two layers are linear so that the balancedness identity of
Thm. 4.3 holds exactly under plain GD::

    a = W1 x + b1                      (hidden pre-activation, width m)
    g(x) = W2 phi(a)                   (representation in R^p, no bias: a bias here would break
                                        balancedness of (W2, W3))
    f(x) = W3 g(x) + b3                (logits, K x p classifier with bias)

``phi`` is ``"smooth_leaky_relu"`` (``alpha a + (1 - alpha) softplus(beta a) / beta``: a leaky ReLU
with slope ``alpha`` whose kink is smoothed at scale ``1/beta``), ``"relu"`` or ``"identity"`` (the
*linear network*: then ``g`` is affine in ``x`` and ``g(X) | Y=c`` is exactly Gaussian).

Training: full-batch GD or AdamW on ``L = (1/(2N)) sum_i ||f(x_i) - e_{y_i}||^2 + (lambda/2)
(||W1||^2 + ||W2||^2 + ||W3||^2)`` over ``n_train`` samples per class (biases are not decayed).
GD is ``W <- (1 - lr lambda) W - lr G`` with ``G`` the gradient of the data term, the update of
Thm. 4.3; AdamW uses decoupled decay ``W <- (1 - lr lambda) W - lr m^/(sqrt(v^) + eps)``.
Backward passes are written by hand in float64 and checked against finite differences in the tests.

Conventions of the measurements (one row per logged step)
--------------------------------------------------------
* **Scale.** ``B_g`` (column ``feature_scale``) is the ``"sup"`` estimator on the *training set*,
  ``max_i ||g(x_i)||`` (``theory.collapse.feature_scale``), re-measured at every logged step;
  ``g~ = g / B_g``. It is an estimate of ``sup_x ||g(x)||``: fresh samples may exceed it (columns
  ``population_norm_ratio`` and ``heldout_norm_ratio`` report ``max ||g|| / B_g`` on those samples).
  The Cantelli bound does not depend on the scale; the IB quantities and variances are in ``g~`` units.
  For Gaussian inputs the true ``sup_x ||g(x)||`` is infinite for any non-constant network, so the
  theory's ``B_g`` can only be an empirical scale here; the held-out radius of Thm. 4.1 formally needs
  ``||g~|| <= 1`` on the held-out sample, i.e. ``heldout_norm_ratio <= 1``.
* **Population moments** (class means and covariances of ``g``). Linear network: exact,
  ``E[g | c] = W2 (W1 m_c + b1)``, ``Cov[g | c] = A S_c A^T`` with ``A = W2 W1``. Otherwise: from a
  fixed fresh sample of ``n_population`` points per class (unbiased covariances).
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
  bounds ``|heldout_variance - population_variance|`` for the class-averaged values). The guarantee is per logged step (no union over steps) and assumes ``||g~|| <= 1`` on the
  held-out sample (see ``heldout_norm_ratio``).
* **I(Z;X|Y)** in nats, ``Z / B_g = g~(X) + E``. Linear network: ``mi_exact`` from
  ``theory.information.gaussian_conditional_information`` (it equals the log-det bound). Always: the
  Monte Carlo estimate of :func:`conditional_information_monte_carlo` (``mi_estimate``, biased
  *upwards*; ``mi_lower`` is biased *downwards*; see there).

Regenerate the committed figures ``figures/gmm_bounds.png`` (default run) and
``figures/gmm_linear_bounds.png`` (the same with ``activation="identity"``) with
``ncgrok simulate figures`` (which calls :func:`make_figures`), or one of them with, e.g.::

    ncgrok simulate gmm --activation identity --out runs/gmm_linear --figure figures/gmm_linear_bounds.png

(``python -m ncgrok.cli.simulate_gmm`` takes the same options.)
"""
from __future__ import annotations

import contextlib
import csv
import ctypes
import functools
import io
import math
import os
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import numpy as np
from scipy.special import expit

from ncgrok.files import atomic_savefig, atomic_write_text
from ncgrok.theory._validation import as_array, as_count, as_priors, as_psd_stack, as_scalar
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
    "ACTIVATIONS",
    "OPTIMIZERS",
    "TRAJECTORY_COLUMNS",
    "GaussianMixture",
    "Network",
    "GMMConfig",
    "GMMResult",
    "InformationEstimate",
    "Optimizer",
    "init_network",
    "loss_and_gradients",
    "logged_steps",
    "exact_linear_moments",
    "conditional_information_monte_carlo",
    "run_gmm",
    "write_trajectory_csv",
    "bound_figure",
    "make_figures",
]

ACTIVATIONS = ("smooth_leaky_relu", "relu", "identity")
OPTIMIZERS = ("gd", "adamw")
PARAMETER_NAMES = ("W1", "b1", "W2", "W3", "b3")
DECAYED_PARAMETERS = ("W1", "W2", "W3")

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


# =============================================================================== the population
@dataclass(frozen=True)
class GaussianMixture:
    """A known Gaussian mixture: ``X | Y=c ~ N(means[c], covariances[c])``, ``P(Y=c) = priors[c]``.

    Covariances may be singular (PSD). Build a random one with :meth:`random`.
    """

    means: np.ndarray
    covariances: np.ndarray
    priors: np.ndarray
    _factors: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        means = as_array("means", self.means, ndim=2)
        num_classes, dim = means.shape
        if num_classes < 2:
            raise ValueError(f"means must hold at least 2 classes (one row per class), got {num_classes}")
        if dim < 1:
            raise ValueError("means must have at least one column (input dimension d >= 1)")
        covariances = as_psd_stack("covariances", self.covariances, num_classes=num_classes)
        if covariances.shape[1] != dim:
            raise ValueError(f"covariances must have shape ({num_classes}, {dim}, {dim}), got {covariances.shape}")
        covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2))
        priors = as_priors(self.priors, num_classes)
        eigenvalues, eigenvectors = np.linalg.eigh(covariances)
        factors = eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))[:, None, :]  # S_c = F F^T
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", covariances)
        object.__setattr__(self, "priors", priors)
        object.__setattr__(self, "_factors", factors)

    @property
    def num_classes(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @classmethod
    def random(
        cls,
        num_classes: int,
        dim: int,
        *,
        separation: float = 2.0,
        noise: float = 1.0,
        priors: Any = None,
        seed: Any = 0,
    ) -> "GaussianMixture":
        """A random mixture: means ``separation * v_c`` with ``v_c`` independent uniform unit vectors
        (so class means are about ``separation * sqrt(2)`` apart), covariances ``noise^2 Q diag(s) Q^T``
        with a random rotation ``Q`` per class and eigenvalues ``s`` log-uniform in ``[e^-1, e]``."""
        num_classes = as_count("num_classes", num_classes, minimum=2)
        dim = as_count("dim", dim, minimum=1)
        separation = as_scalar("separation", separation, positive=True)
        noise = as_scalar("noise", noise, positive=True)
        rng = _generator(seed)
        directions = rng.standard_normal((num_classes, dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        covariances = np.empty((num_classes, dim, dim))
        for c in range(num_classes):
            rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
            spectrum = np.exp(rng.uniform(-1.0, 1.0, size=dim))
            covariances[c] = noise**2 * (rotation * spectrum) @ rotation.T
        return cls(means=separation * directions, covariances=covariances, priors=as_priors(priors, num_classes))

    def sample_class(self, label: int, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` i.i.d. draws of ``X | Y=label`` (count x d)."""
        return self.means[label] + rng.standard_normal((count, self.dim)) @ self._factors[label].T

    def sample(self, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A stratified sample: ``per_class`` draws of every class, sorted by class. Returns
        ``(x, y)`` with ``x`` of shape ``(K * per_class, d)`` and integer labels ``y``."""
        per_class = as_count("per_class", per_class, minimum=1)
        x = np.concatenate([self.sample_class(c, per_class, rng) for c in range(self.num_classes)])
        y = np.repeat(np.arange(self.num_classes), per_class)
        return x, y


# =============================================================================== the network
@dataclass
class Network:
    """``f(x) = W3 W2 phi(W1 x + b1) + b3`` with ``g(x) = W2 phi(W1 x + b1)`` (see module docstring).

    Shapes: ``W1`` (m, d), ``b1`` (m,), ``W2`` (p, m), ``W3`` (K, p), ``b3`` (K,).
    """

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    W3: np.ndarray
    b3: np.ndarray
    activation: str = "smooth_leaky_relu"
    leaky_slope: float = 0.1
    sharpness: float = 4.0

    def parameters(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in PARAMETER_NAMES}

    def copy(self) -> "Network":
        return Network(**{name: value.copy() for name, value in self.parameters().items()},
                       activation=self.activation, leaky_slope=self.leaky_slope, sharpness=self.sharpness)

    @property
    def is_linear(self) -> bool:
        return self.activation == "identity"

    def _activate(self, pre: np.ndarray, *, derivative: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``phi(pre)`` and (if asked, and not the identity) its derivative ``phi'(pre)``."""
        if self.activation == "identity":
            return pre, None
        if self.activation == "relu":
            return np.maximum(pre, 0.0), (pre > 0).astype(np.float64) if derivative else None
        alpha, beta = self.leaky_slope, self.sharpness
        value = alpha * pre + (1.0 - alpha) * np.logaddexp(0.0, beta * pre) / beta
        return value, alpha + (1.0 - alpha) * expit(beta * pre) if derivative else None

    def hidden(self, x: np.ndarray) -> np.ndarray:
        return self._activate(x @ self.W1.T + self.b1, derivative=False)[0]

    def features(self, x: np.ndarray) -> np.ndarray:
        """The representation ``g(x)`` (N x p)."""
        return self.hidden(x) @ self.W2.T

    def logits(self, features: np.ndarray) -> np.ndarray:
        """``f = W3 g + b3`` from features (N x K)."""
        return features @ self.W3.T + self.b3


def init_network(
    input_dim: int,
    hidden_dim: int,
    feature_dim: int,
    num_classes: int,
    *,
    activation: str = "smooth_leaky_relu",
    leaky_slope: float = 0.1,
    sharpness: float = 4.0,
    init_scale: float = 1.0,
    seed: Any = 0,
) -> Network:
    """Gaussian initialization with variance ``init_scale^2 / fan_in`` for every weight, zero biases."""
    rng = _generator(seed)
    return Network(
        W1=init_scale * rng.standard_normal((hidden_dim, input_dim)) / math.sqrt(input_dim),
        b1=np.zeros(hidden_dim),
        W2=init_scale * rng.standard_normal((feature_dim, hidden_dim)) / math.sqrt(hidden_dim),
        W3=init_scale * rng.standard_normal((num_classes, feature_dim)) / math.sqrt(feature_dim),
        b3=np.zeros(num_classes),
        activation=activation,
        leaky_slope=leaky_slope,
        sharpness=sharpness,
    )


def loss_and_gradients(
    network: Network, x: np.ndarray, targets: np.ndarray, *, weight_decay: float = 0.0
) -> tuple[float, dict[str, np.ndarray]]:
    """``L = (1/(2N)) ||f(X) - T||_F^2 + (weight_decay/2) (||W1||^2 + ||W2||^2 + ||W3||^2)`` and its
    gradient with respect to every parameter (hand-written backward pass, float64).

    ``targets`` is ``N x K`` (one-hot for classification). Biases are not decayed.
    """
    pre = x @ network.W1.T + network.b1
    hidden, derivative = network._activate(pre)
    features = hidden @ network.W2.T
    residual = features @ network.W3.T + network.b3 - targets
    count = x.shape[0]
    loss = 0.5 * float(np.einsum("ik,ik->", residual, residual)) / count
    delta = residual / count                        # dL/df
    grad_features = delta @ network.W3              # dL/dg
    grad_hidden = grad_features @ network.W2        # dL/dphi
    grad_pre = grad_hidden if derivative is None else grad_hidden * derivative
    grads = {
        "W1": grad_pre.T @ x,
        "b1": grad_pre.sum(axis=0),
        "W2": grad_features.T @ hidden,
        "W3": delta.T @ features,
        "b3": delta.sum(axis=0),
    }
    if weight_decay:
        for name in DECAYED_PARAMETERS:
            weight = getattr(network, name)
            loss += 0.5 * weight_decay * float(np.einsum("ij,ij->", weight, weight))
            grads[name] = grads[name] + weight_decay * weight
    return loss, grads


class Optimizer:
    """Full-batch GD (``kind="gd"``) or AdamW (``kind="adamw"``), both with weight decay on ``W1, W2, W3`` in the form
    ``W <- (1 - lr lambda) W - lr * step(G)`` (``G`` = gradient of the data term)."""

    def __init__(self, network: Network, *, kind: str, lr: float, weight_decay: float,
                 betas: tuple[float, float], eps: float) -> None:
        self.kind, self.lr, self.weight_decay = kind, lr, weight_decay
        self.betas, self.eps, self.count = betas, eps, 0
        if kind == "adamw":
            self.first = {name: np.zeros_like(value) for name, value in network.parameters().items()}
            self.second = {name: np.zeros_like(value) for name, value in network.parameters().items()}

    def step(self, network: Network, grads: dict[str, np.ndarray]) -> None:
        self.count += 1
        decay = 1.0 - self.lr * self.weight_decay
        beta1, beta2 = self.betas
        for name in PARAMETER_NAMES:
            weight = getattr(network, name)
            grad = grads[name]
            if self.kind == "gd":
                update = grad
            else:
                self.first[name] = beta1 * self.first[name] + (1.0 - beta1) * grad
                self.second[name] = beta2 * self.second[name] + (1.0 - beta2) * grad * grad
                first = self.first[name] / (1.0 - beta1**self.count)
                second = self.second[name] / (1.0 - beta2**self.count)
                update = first / (np.sqrt(second) + self.eps)
            if name in DECAYED_PARAMETERS:
                weight = decay * weight
            setattr(network, name, weight - self.lr * update)


# =============================================================================== measurements
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


# =============================================================================== configuration
@dataclass(frozen=True)
class GMMConfig:
    """Everything a Gaussian-mixture run depends on (validated on construction).

    Population: ``num_classes`` (K >= 2) classes in ``R^input_dim``; ``means`` (K, d),
    ``covariances`` (K, d, d) and ``priors`` (K,) override the random default
    (:meth:`GaussianMixture.random` with ``separation``, ``noise`` and ``mixture_seed``, which
    defaults to ``seed``). Network: ``hidden_dim`` (m), ``feature_dim`` (p), ``activation`` in
    :data:`ACTIVATIONS`, ``leaky_slope`` and ``sharpness`` of the smooth leaky ReLU, ``init_scale``.
    Training: ``optimizer`` in :data:`OPTIMIZERS`, ``lr``, ``weight_decay`` (lambda), ``steps``,
    ``n_train`` per class, ``adam_betas``, ``adam_eps``. Measurement: ``n_test``, ``n_population``
    and ``n_heldout`` per class, ``sigma`` (noise of Thm. 3.4 in ``g~`` units), ``mi_outer`` (J) and
    ``mi_inner`` (M) points per class for the information estimate, ``delta`` for the held-out
    radius, at most ``num_logs`` logged steps (log-spaced and rounded to distinct integers, including 0 and ``steps``).
    """

    num_classes: int = 3
    input_dim: int = 8
    hidden_dim: int = 32
    feature_dim: int = 6
    activation: str = "smooth_leaky_relu"
    leaky_slope: float = 0.1
    sharpness: float = 4.0
    init_scale: float = 1.0
    optimizer: str = "gd"
    lr: float = 0.1
    weight_decay: float = 1e-2
    steps: int = 3000
    n_train: int = 100
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    sigma: float = 0.1
    n_test: int = 10000
    n_population: int = 10000
    n_heldout: int = 1000
    mi_outer: int = 1000
    mi_inner: int = 2000
    delta: float = 0.05
    num_logs: int = 20
    separation: float = 4.0
    noise: float = 1.0
    means: Any = None
    covariances: Any = None
    priors: Any = None
    seed: int = 0
    mixture_seed: int | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name, minimum in (("num_classes", 2), ("input_dim", 1), ("hidden_dim", 1), ("feature_dim", 1),
                              ("steps", 1), ("n_train", 2), ("n_test", 1), ("n_population", 2),
                              ("n_heldout", 2), ("mi_outer", 2), ("mi_inner", 2), ("num_logs", 2),
                              ("seed", 0)):
            set_(name, as_count(name, getattr(self, name), minimum=minimum))
        if self.mixture_seed is not None:
            set_("mixture_seed", as_count("mixture_seed", self.mixture_seed, minimum=0))
        for name in ("lr", "sharpness", "init_scale", "adam_eps", "sigma", "separation", "noise"):
            set_(name, as_scalar(name, getattr(self, name), positive=True))
        set_("weight_decay", as_scalar("weight_decay", self.weight_decay, nonnegative=True))
        set_("leaky_slope", as_scalar("leaky_slope", self.leaky_slope, closed_unit=True))
        set_("delta", as_scalar("delta", self.delta, open_unit=True))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        betas = tuple(as_scalar("adam_betas", beta) for beta in _pair_of("adam_betas", self.adam_betas))
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"adam_betas must lie in [0, 1), got {betas}")
        set_("adam_betas", betas)
        if self.lr * self.weight_decay >= 1.0:
            raise ValueError(
                f"lr * weight_decay must be < 1 (the decay factor 1 - lr*weight_decay must stay positive), "
                f"got lr={self.lr:g}, weight_decay={self.weight_decay:g}"
            )
        shape = (self.num_classes, self.input_dim)
        if self.means is not None:
            means = as_array("means", self.means, ndim=2)
            if means.shape != shape:
                raise ValueError(f"means must have shape (num_classes, input_dim) = {shape}, got {means.shape}")
            set_("means", means)
        if self.covariances is not None:
            covariances = as_psd_stack("covariances", self.covariances, num_classes=self.num_classes)
            if covariances.shape[1:] != (self.input_dim, self.input_dim):
                raise ValueError(
                    f"covariances must have shape (num_classes, input_dim, input_dim) = "
                    f"{(self.num_classes, self.input_dim, self.input_dim)}, got {covariances.shape}"
                )
            set_("covariances", covariances)
        if self.priors is not None:
            set_("priors", as_priors(self.priors, self.num_classes))

    def mixture(self) -> GaussianMixture:
        """The population: the given means/covariances/priors, random ones where not given."""
        seed = self.seed if self.mixture_seed is None else self.mixture_seed
        default = GaussianMixture.random(self.num_classes, self.input_dim, separation=self.separation,
                                         noise=self.noise, priors=self.priors, seed=seed)
        return GaussianMixture(
            means=default.means if self.means is None else self.means,
            covariances=default.covariances if self.covariances is None else self.covariances,
            priors=default.priors,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready echo of the configuration (arrays as nested lists)."""
        out = {}
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = value.tolist() if isinstance(value, np.ndarray) else (
                list(value) if isinstance(value, tuple) else value)
        return out


def _pair_of(name: str, value: Any) -> tuple[Any, Any]:
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}") from None
    if len(items) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}")
    return items


def _generator(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    return np.random.default_rng(as_count("seed", seed, minimum=0))


@functools.lru_cache(maxsize=1)
def _openblas_thread_controls() -> tuple[tuple[Any, Any], ...]:
    """(setter, getter) pairs for every OpenBLAS loaded in this process (Linux only; else empty)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line and ".so" in line})
    except OSError:
        return ()
    controls = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for setter_name, getter_name in (
            ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("openblas_set_num_threads", "openblas_get_num_threads"),
        ):
            setter = getattr(library, setter_name, None)
            getter = getattr(library, getter_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                controls.append((setter, getter))
                break
    return tuple(controls)


@contextlib.contextmanager
def _single_threaded_blas():
    """Run the block with OpenBLAS limited to one thread, then restore the previous setting.

    Every product in these runs is tall and thin (``N x 8 @ 8 x 32`` and the like), where OpenBLAS's
    threads only add synchronisation; on a loaded 2-core machine that made products ~15x slower
    (measured). Best effort: without a recognisable OpenBLAS this does nothing.
    """
    controls = _openblas_thread_controls()
    previous = [getter() for _, getter in controls]
    for setter, _ in controls:
        setter(1)
    try:
        yield
    finally:
        for (setter, _), count in zip(controls, previous):
            setter(count)


def logged_steps(steps: int, num_logs: int) -> np.ndarray:
    """Roughly log-spaced steps from 0 to ``steps`` (both included), at most ``num_logs`` of them."""
    steps = as_count("steps", steps, minimum=1)
    num_logs = as_count("num_logs", num_logs, minimum=2)
    if num_logs == 2:  # geomspace with one point would give [1], not the last step
        return np.array([0, steps], dtype=np.int64)
    positive = np.unique(np.round(np.geomspace(1, steps, num_logs - 1)).astype(np.int64))
    return np.concatenate([[0], positive])


# =============================================================================== the run
@dataclass(frozen=True)
class GMMResult:
    """A Gaussian-mixture run.

    Attributes:
        config: the :class:`GMMConfig`.
        mixture: the population.
        trajectory: column name -> array over logged steps (columns :data:`TRAJECTORY_COLUMNS`).
        summary: final-step values, whether each bound held at every logged step, run time.
        network: the trained network (final step).
        initial_network: the network at step 0.
    """

    config: GMMConfig
    mixture: GaussianMixture
    trajectory: dict[str, np.ndarray]
    summary: dict[str, Any]
    network: Network
    initial_network: Network

    @property
    def steps(self) -> np.ndarray:
        return self.trajectory["step"]

    def rows(self) -> list[dict[str, float]]:
        """The trajectory as one dict per logged step."""
        return [{name: _plain(self.trajectory[name][i]) for name in TRAJECTORY_COLUMNS}
                for i in range(len(self.steps))]


@dataclass
class _Samples:
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


def _draw_samples(config: GMMConfig, mixture: GaussianMixture, streams: list[np.random.Generator]) -> _Samples:
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
    return _Samples(train_x, train_y, targets, test_x, test_y, population_x, population_y,
                    heldout_x, heldout_y, outer, noise, inner)


def _error_rates(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class rate of "some other class scores at least as high" (ties are errors)."""
    own = logits[np.arange(len(labels)), labels]
    others = logits.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    wrong = (others.max(axis=1) >= own).astype(np.float64)
    counts = np.bincount(labels, minlength=num_classes)
    return np.bincount(labels, weights=wrong, minlength=num_classes) / counts


def _measure(network: Network, config: GMMConfig, mixture: GaussianMixture, samples: _Samples,
             input_bound: float) -> dict[str, float]:
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


# Tolerance (in standard errors) used when a bound is compared with a Monte Carlo truth.
MONTE_CARLO_SE = 4.0


def _summarize(config: GMMConfig, trajectory: dict[str, np.ndarray], runtime: float) -> dict[str, Any]:
    t = trajectory
    final = {name: _plain(t[name][-1]) for name in TRAJECTORY_COLUMNS}
    linear = config.activation == "identity"
    information_truth = t["mi_exact"] if linear else t["mi_estimate"]
    information_slack = 1e-9 * np.maximum(1.0, np.abs(information_truth)) if linear else MONTE_CARLO_SE * t["mi_se"]
    held = {
        # R1: bound >= measured test error, raw and with the Monte Carlo allowance.
        "cantelli_bound": bool(np.all(t["cantelli_bound"] >= t["test_error"])),
        "cantelli_directional": bool(np.all(t["cantelli_directional"] >= t["test_error"])),
        "cantelli_bound_within_mc": bool(np.all(t["cantelli_bound"] >= t["test_error"] - MONTE_CARLO_SE * t["test_error_se"])),
        # R2: bounds >= I(Z;X|Y) (exact for the linear network, MC estimate - 4 SE otherwise).
        "ib_logdet": bool(np.all(t["ib_logdet"] >= information_truth - information_slack)),
        "ib_trace": bool(np.all(t["ib_trace"] >= information_truth - information_slack)),
        # R4: every class's population variance inside the held-out radius.
        "heldout_radius": bool(np.all(t["heldout_covered"] == 1.0)),
    }
    return {
        "final": final,
        "held_at_every_step": held,
        "information_truth": "exact (linear network)" if linear else "monte carlo estimate",
        "monte_carlo_tolerance_se": MONTE_CARLO_SE,
        "logged_steps": int(len(t["step"])),
        "runtime_seconds": runtime,
    }


def run_gmm(config: GMMConfig | None = None, *, progress: Callable[[int, dict[str, float]], None] | None = None) -> GMMResult:
    """Train the network of ``config`` on its Gaussian mixture and measure the bounds along the way.

    Samples (training set, test set, population sample, held-out set, information-estimate points)
    are drawn once from independent streams of ``config.seed`` and kept fixed, so the curves are
    smooth in time. ``progress(step, row)`` is called after each logged step. Returns a
    :class:`GMMResult` (see the module docstring for every column).
    """
    config = GMMConfig() if config is None else config
    if not isinstance(config, GMMConfig):
        raise ValueError(f"config must be a GMMConfig, got {type(config).__name__}")
    with _single_threaded_blas():
        return _run(config, progress)


def _run(config: GMMConfig, progress: Callable[[int, dict[str, float]], None] | None) -> GMMResult:
    start = time.perf_counter()
    mixture = config.mixture()
    init_stream, *sample_streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(6)]
    samples = _draw_samples(config, mixture, sample_streams)
    network = init_network(config.input_dim, config.hidden_dim, config.feature_dim, config.num_classes,
                           activation=config.activation, leaky_slope=config.leaky_slope,
                           sharpness=config.sharpness, init_scale=config.init_scale, seed=init_stream)
    initial_network = network.copy()
    optimizer = Optimizer(network, kind=config.optimizer, lr=config.lr, weight_decay=config.weight_decay,
                           betas=config.adam_betas, eps=config.adam_eps)
    input_bound = float(np.sqrt(np.einsum("ij,ij->i", samples.train_x, samples.train_x)).max())
    schedule = logged_steps(config.steps, config.num_logs)
    rows = []
    step = 0
    for target in schedule:
        while step < target:
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                loss, grads = loss_and_gradients(network, samples.train_x, samples.train_targets)
            if not np.isfinite(loss):
                raise ValueError(
                    f"training diverged (non-finite loss) at step {step} with lr={config.lr:g}; "
                    "lower lr or init_scale"
                )
            optimizer.step(network, grads)
            step += 1
        row = {"step": float(step), **_measure(network, config, mixture, samples, input_bound)}
        rows.append(row)
        if progress is not None:
            progress(step, row)
    trajectory = {name: np.array([row[name] for row in rows], dtype=np.float64) for name in TRAJECTORY_COLUMNS}
    summary = _summarize(config, trajectory, time.perf_counter() - start)
    return GMMResult(config=config, mixture=mixture, trajectory=trajectory, summary=summary,
                     network=network, initial_network=initial_network)


# =============================================================================== output
def _plain(value: Any) -> Any:
    """A JSON/CSV-friendly Python scalar (NaN stays float NaN here; JSON writers map it to null)."""
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_trajectory_csv(result: GMMResult, path: Any) -> str:
    """Write the trajectory (one row per logged step, columns :data:`TRAJECTORY_COLUMNS`; the csv
    module's excel dialect, so lines end in CRLF) atomically: to a temporary file in the same
    directory, then ``os.replace``. Returns the path."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(TRAJECTORY_COLUMNS)
    for row in result.rows():
        writer.writerow([int(row[name]) if name == "step" else repr(float(row[name]))
                         for name in TRAJECTORY_COLUMNS])
    path = os.fspath(path)
    atomic_write_text(path, buffer.getvalue())
    return path


def bound_figure(result: GMMResult, path: Any) -> str:
    """Three panels against training step (log axis), saved atomically as PNG at ``path``:

    1. test error (with a 2-SE band) vs the Cantelli bound of Thm. 3.2, plain and directional;
    2. the IB bounds of Thm. 3.4 (trace, log-det) vs ``I(Z;X|Y)`` (exact for a linear network, and the
       Monte Carlo estimate with its 2-SE band and its lower companion);
    3. training RNC1 vs the population within-class variance, with the held-out estimate and its
       Thm. 4.1 radius as a band (clipped at the bottom of the log axis).

    Uses matplotlib's Agg backend (imported here, so importing this module stays light).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.trajectory
    x = t["step"] + 1.0
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.3), constrained_layout=True)

    ax = axes[0]
    ax.plot(x, t["cantelli_bound"], color="C3", label="Cantelli bound (Thm. 3.2)")
    ax.plot(x, t["cantelli_directional"], color="C3", linestyle="--", label="directional variant")
    ax.plot(x, t["test_error"], color="C0", label="test error")
    ax.fill_between(x, t["test_error"] - 2 * t["test_error_se"], t["test_error"] + 2 * t["test_error_se"],
                    color="C0", alpha=0.25, linewidth=0)
    ax.plot(x, t["train_error"], color="C0", linestyle=":", label="train error")
    ax.set_ylim(0.0, max(1.05, float(np.nanmax(t["cantelli_bound"])) * 1.05))
    ax.set_title("error vs Thm. 3.2 (published)")
    ax.set_ylabel("probability")

    ax = axes[1]
    ax.plot(x, t["ib_trace"], color="C3", label="trace bound V/(2σ²)")
    ax.plot(x, t["ib_logdet"], color="C1", label="log-det bound")
    ax.plot(x, t["mi_estimate"], color="C0", label="MC estimate (biased up)")
    ax.fill_between(x, t["mi_estimate"] - 2 * t["mi_se"], t["mi_estimate"] + 2 * t["mi_se"],
                    color="C0", alpha=0.25, linewidth=0)
    ax.plot(x, t["mi_lower"], color="C0", linestyle=":", label="MC lower (biased down)")
    if np.all(np.isfinite(t["mi_exact"])):
        ax.plot(x, t["mi_exact"], color="k", linestyle="--", label="exact (linear net)")
    ax.set_yscale("log")
    ax.set_title(f"I(Z;X|Y) vs Thm. 3.4 (published), σ={result.config.sigma:g}")
    ax.set_ylabel("nats")

    ax = axes[2]
    positive = np.concatenate([t["train_rnc1"], t["population_variance"], t["heldout_variance"]])
    floor = 0.3 * float(np.nanmin(positive[positive > 0])) if np.any(positive > 0) else 1e-6
    ax.fill_between(x, np.maximum(t["heldout_variance"] - t["heldout_radius"], floor),
                    t["heldout_variance"] + t["heldout_radius"], color="C2", alpha=0.2, linewidth=0,
                    label=f"held-out ± radius (Thm. 4.1, δ={result.config.delta:g})")
    ax.plot(x, t["heldout_variance"], color="C2", linestyle=":", label="held-out variance")
    ax.plot(x, t["population_variance"], color="k", label="population variance V")
    ax.plot(x, t["train_rnc1"], color="C4", label="train RNC1 (sup scale)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_title("within-class variance of g/B_g vs Thm. 4.1 (reconstr.)")

    for ax in axes:
        ax.title.set_fontsize(10)
        ax.set_xscale("log")
        ax.set_xlabel("step + 1")
        ax.legend(fontsize=7, loc="best")
    config = result.config
    figure.suptitle(
        f"Gaussian mixture K={config.num_classes}, d={config.input_dim}, p={config.feature_dim}, "
        f"{config.activation}, {config.optimizer} lr={config.lr:g} λ={config.weight_decay:g}, "
        f"n={config.n_train}/class", fontsize=10)

    path = os.fspath(path)
    try:
        atomic_savefig(figure, path, dpi=110, format="png")
    finally:
        plt.close(figure)
    return path


def make_figures(out_dir: Any = "figures", *, progress: Callable[[str], None] | None = None) -> list[str]:
    """Regenerate the committed Gaussian-mixture figures in ``out_dir``: ``gmm_bounds.png`` (default
    :class:`GMMConfig`, smooth leaky-ReLU network) and ``gmm_linear_bounds.png`` (the same with
    ``activation="identity"``, where ``I(Z;X|Y)`` is exact). Returns the paths written."""
    report = progress or (lambda message: None)
    written = []
    for name, config in (("gmm_bounds.png", GMMConfig()), ("gmm_linear_bounds.png", GMMConfig(activation="identity"))):
        report(f"Gaussian-mixture run ({config.activation}) for {name}")
        written.append(bound_figure(run_gmm(config), os.path.join(os.fspath(out_dir), name)))
    return written
