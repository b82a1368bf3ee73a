"""Information-bottleneck bounds (Thm. 3.4) and the fitting phase (Prop. 3.3) of arXiv:2509.20829.

**Thm. 3.4 (published).** Make the representation stochastic, ``Z = g(X) + B_g E`` with
``E ~ N(0, sigma^2 I_p)`` independent of ``(X, Y)``. Dividing by ``B_g`` does not change any mutual
information, so everything here is in units of the rescaled features ``g~ = g / B_g``:
``Z / B_g = g~(X) + E``. With ``C_c = Cov[g~(X) | Y=c]`` and the Markov chain ``Y -> X -> Z``,

    I(Z;X) - I(Z;Y) = I(Z;X|Y) <= (1/2) sum_c p_c log det(I + C_c / sigma^2)   (log-det form)
                                <= V / (2 sigma^2),  V = sum_c p_c Tr C_c        (trace form),

with equality in the first step when ``g(X) | Y=c`` is Gaussian. All values are in **nats**.
If you hold covariances of the unscaled ``g``, divide them by ``B_g^2`` first.

**Prop. 3.3 (reconstructed).** The paper states that, when the initial representation carries little
information, training must first *increase* ``I(Z;Y)`` and ``I(Z;X)``. Its exact hypotheses and
constants were not recovered; this module encodes a correct statement with that content: by Fano's
inequality a predictor of ``Y`` from ``Z`` with error ``P_e`` needs
``I(Z;Y) >= H(Y) - h_b(P_e) - P_e log(K - 1)``, and ``I(Z;X) >= I(Z;Y)`` by data processing.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import entr

from ._validation import as_array, as_count, as_priors, as_psd_stack, as_scalar

__all__ = [
    "ib_bound_trace",
    "ib_bound_logdet",
    "gaussian_conditional_information",
    "fano_information_lower_bound",
    "required_information_rise",
]


def _sigma(sigma: Any) -> float:
    if sigma is None:
        raise ValueError("sigma (the noise standard deviation, > 0) is required")
    return as_scalar("sigma", sigma, positive=True)


def _covariance_stack(covariances: Any) -> np.ndarray:
    covariances = as_psd_stack("covariances", covariances)
    if covariances.shape[0] < 1:
        raise ValueError("covariances must hold at least one class matrix, got none")
    return 0.5 * (covariances + np.swapaxes(covariances, 1, 2))


def _entropy_nats(probabilities: np.ndarray) -> float:
    return float(np.sum(entr(probabilities)))


def _binary_entropy_nats(probability: float) -> float:
    return float(entr(probability) + entr(1.0 - probability))


def ib_bound_trace(
    *, sigma: Any, variances: Any = None, covariances: Any = None, priors: Any = None
) -> float:
    """Trace form of the IB bound, ``V / (2 sigma^2)`` nats (Thm. 3.4, **published**).

    Upper bound on ``I(Z;X) - I(Z;Y) = I(Z;X|Y)`` for ``Z = g(X) + B_g E``, ``E ~ N(0, sigma^2 I)``,
    valid for any distribution of the features (it follows from the log-det form through
    ``log det(I + A) <= Tr A``). ``V = sum_c p_c V_c`` is the class-averaged within-class variance of
    ``g~ = g / B_g`` (Def. 3.1), so a collapsing representation (``V -> 0``) is forced towards the
    information-bottleneck optimum.

    Args:
        sigma: noise standard deviation in ``g~`` units (> 0).
        variances: (K,) within-class variances ``V_c`` of ``g~``; give this or ``covariances``.
        covariances: (K, p, p) PSD class covariances of ``g~``; ``V_c`` is their trace.
        priors: (K,) class priors summing to 1; uniform by default.

    Returns:
        The bound in nats.
    """
    sigma = _sigma(sigma)
    if variances is not None and covariances is not None:
        raise ValueError("give variances or covariances, not both (variances are the traces of the covariances)")
    if variances is None and covariances is None:
        raise ValueError("ib_bound_trace needs variances (K,) or covariances (K, p, p)")
    if covariances is not None:
        class_variances = np.maximum(np.trace(_covariance_stack(covariances), axis1=1, axis2=2), 0.0)
    else:
        class_variances = as_array("variances", variances, ndim=1, nonnegative=True)
        if class_variances.size < 1:
            raise ValueError("variances must hold at least one class, got an empty array")
    priors = as_priors(priors, class_variances.size)
    return float(priors @ class_variances) / (2.0 * sigma**2)


def ib_bound_logdet(covariances: Any, *, sigma: Any, priors: Any = None) -> float:
    """Log-det form of the IB bound, ``(1/2) sum_c p_c log det(I + C_c / sigma^2)`` nats (Thm. 3.4).

    Status **published**. Upper bound on ``I(Z;X|Y) = I(Z;X) - I(Z;Y)`` for
    ``Z = g(X) + B_g E``, ``E ~ N(0, sigma^2 I)``: among all feature distributions with class
    covariance ``C_c`` the Gaussian maximizes ``h(Z | Y=c)``. Equality holds when ``g(X) | Y=c`` is
    Gaussian. Never larger than :func:`ib_bound_trace`; non-decreasing in every eigenvalue of every
    ``C_c``. Computed from the eigenvalues (clipped at 0) with ``log1p`` for accuracy.

    Args:
        covariances: (K, p, p) PSD class covariances of ``g~ = g / B_g``.
        sigma: noise standard deviation in ``g~`` units (> 0).
        priors: (K,) class priors; uniform by default.
    """
    sigma = _sigma(sigma)
    covariances = _covariance_stack(covariances)
    priors = as_priors(priors, covariances.shape[0])
    eigenvalues = np.maximum(np.linalg.eigvalsh(covariances), 0.0)
    per_class = 0.5 * np.sum(np.log1p(eigenvalues / sigma**2), axis=1)
    return float(priors @ per_class)


def gaussian_conditional_information(covariances: Any, *, sigma: Any, priors: Any = None) -> float:
    """Exact ``I(Z;X|Y)`` in nats when each ``g~(X) | Y=c`` is Gaussian (Thm. 3.4, equality case).

    Status **published** (the equality case of Thm. 3.4). Computed from the definition
    ``I(Z;X|Y) = h(Z|Y) - h(Z|X)`` with Gaussian differential entropies
    ``h(N(m, S)) = (1/2) log((2 pi e)^p det S)``: given ``Y=c``, ``Z = g~ + E`` is
    ``N(mu_c, C_c + sigma^2 I)``; given ``X``, ``Z`` is ``N(g~(X), sigma^2 I)``. The determinants are
    taken with a Cholesky factorization, a different route from :func:`ib_bound_logdet`, which it must
    equal up to rounding.

    Assumptions: ``g~(X) | Y=c ~ N(mu_c, C_c)`` for every class (e.g. a linear ``g`` on a Gaussian
    mixture); for other distributions this value is the log-det *upper bound*, not the truth.

    Args:
        covariances: (K, p, p) PSD class covariances of ``g~ = g / B_g``.
        sigma: noise standard deviation in ``g~`` units (> 0).
        priors: (K,) class priors; uniform by default.
    """
    sigma = _sigma(sigma)
    covariances = _covariance_stack(covariances)
    num_classes, dim = covariances.shape[:2]
    priors = as_priors(priors, num_classes)
    gaussian_constant = dim * math.log(2.0 * math.pi * math.e)

    try:
        cholesky = np.linalg.cholesky(covariances + sigma**2 * np.eye(dim))
    except np.linalg.LinAlgError:
        # Rounding made some C_c slightly indefinite and sigma is tiny: project onto the PSD cone.
        eigenvalues, eigenvectors = np.linalg.eigh(covariances)
        projected = (eigenvectors * np.maximum(eigenvalues, 0.0)[:, None, :]) @ np.swapaxes(eigenvectors, 1, 2)
        cholesky = np.linalg.cholesky(projected + sigma**2 * np.eye(dim))
    log_determinants = 2.0 * np.sum(np.log(np.diagonal(cholesky, axis1=1, axis2=2)), axis=1)
    entropy_given_class = 0.5 * (gaussian_constant + log_determinants)  # h(Z | Y=c)
    entropy_given_input = 0.5 * (gaussian_constant + dim * math.log(sigma**2))  # h(Z | X)
    return float(priors @ entropy_given_class) - entropy_given_input


def _fano_error(error: Any, num_classes: int) -> float:
    error = as_scalar("error", error, closed_unit=True)
    chance = 1.0 - 1.0 / num_classes
    if error > chance + 1e-12:
        raise ValueError(
            f"error must lie in [0, 1 - 1/K] = [0, {chance:.6g}] for K = {num_classes}, got {error:g}; "
            "for a predictor worse than chance, pass min(error, 1 - 1/K) (the Fano bound for "
            "'error at most P_e')"
        )
    return min(error, chance)


def fano_information_lower_bound(*, num_classes: Any, error: Any, priors: Any = None) -> float:
    """Fano's lower bound ``H(Y) - h_b(P_e) - P_e log(K - 1)`` on ``I(Z;Y)``, in nats (Prop. 3.3).

    Status **reconstructed**: the paper's Prop. 3.3 (phase 1 of the IB dynamics: a representation that
    starts with little information must first gain it) is encoded through Fano's inequality, which is
    the precise form used here, not necessarily the paper's. Any predictor ``Y^ = phi(Z)`` with
    ``P[Y^ != Y] = P_e`` satisfies ``I(Z;Y) >= I(Y;Y^) >= H(Y) - h_b(P_e) - P_e log(K - 1)``.

    Domain: ``error`` must lie in ``[0, 1 - 1/K]``. On that interval the right-hand side is
    non-increasing in ``P_e``, so the value bounds every predictor with error *at most* ``P_e``.
    Larger errors (worse than uniform guessing) raise ``ValueError``.

    The **raw** value is returned: with non-uniform priors it can be negative (e.g. always predicting
    the majority class has error ``1 - max_c p_c`` and needs no information), in which case the bound
    is vacuous because ``I >= 0`` anyway. :func:`required_information_rise` clips at 0.

    Args:
        num_classes: ``K >= 2``.
        error: the error ``P_e`` of the predictor, in ``[0, 1 - 1/K]``.
        priors: (K,) class priors (for ``H(Y)``); uniform by default.
    """
    num_classes = as_count("num_classes", num_classes, minimum=2)
    error = _fano_error(error, num_classes)
    priors = as_priors(priors, num_classes)
    label_entropy = _entropy_nats(priors)
    return label_entropy - _binary_entropy_nats(error) - error * math.log(num_classes - 1)


def required_information_rise(
    *, initial_information: Any, num_classes: Any, error: Any, priors: Any = None
) -> float:
    """Minimal rise of ``I(Z;Y)`` and of ``I(Z;X)`` needed to reach error ``P_e`` (Prop. 3.3).

    Status **reconstructed** (see :func:`fano_information_lower_bound`). Returns
    ``max(0, F - I_0)`` with ``F`` Fano's lower bound for error ``P_e`` and ``I_0`` the information at
    initialization. Because ``I(Z;X) >= I(Z;Y) >= F`` at the end of training (data processing, then
    Fano), both informations must rise by at least this much if they start at or below ``I_0``: pass
    ``initial_information = I(Z_0;X)``, which bounds ``I(Z_0;Y)`` too. A positive value is the
    fitting phase the paper predicts.

    Args:
        initial_information: information at initialization in nats (>= 0).
        num_classes: ``K >= 2``.
        error: final error ``P_e`` in ``[0, 1 - 1/K]``.
        priors: (K,) class priors; uniform by default.
    """
    initial_information = as_scalar("initial_information", initial_information, nonnegative=True)
    bound = fano_information_lower_bound(num_classes=num_classes, error=error, priors=priors)
    return max(0.0, bound - initial_information)
