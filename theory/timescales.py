"""Time scales of fitting and collapse (Thm. 4.3; R5) and our reconstructed onset law (R6).

Thm. 4.3 of Sakamoto & Sato: for gradient descent with step ``eta`` on the squared loss with weight
decay ``lambda``, ``L(theta) = (1/2)||f(X) - Y||_F^2 + (lambda/2) sum_l ||W_l||_F^2``, the training
loss reaches ``eps1`` after ``tau1 = Omega(eta^-1 log(1/eps1))`` steps, independently of ``lambda``,
and RNC1 (the within-class variability) reaches ``eps2`` only after a further
``tau2 = Omega((eta lambda)^-1 log(1/eps2))`` steps. These are **lower bounds** on the steps until
the loss, and RNC1, are small; the **rates are published**. The exact forms used here (constants,
initial values, the balancedness and UFM arguments) are **reconstructed**: they are our own
derivations with the published shape, each stated with its assumptions.

The theorem says nothing directly about test accuracy. The grokking-onset law
``t_grok = t_fit + C / (eta lambda)`` (:func:`predicted_onset`, :func:`fit_onset_constant`,
:func:`ufm_constant`) and its log-log slope ``-1`` (:func:`fit_loglog_slope`) are **our
reconstruction (R6)** built on the theorem's time scale, not predictions of the theorem or claims of
the paper; the paper's own statements about onsets are qualitative (stronger weight decay makes
grokking earlier and the gap shorter; RNC1 falls with the rise of test accuracy, Sec. 5.1, Fig. 3).

Exact identities this module encodes (checked to machine precision by the tests):

* **Balancedness** (:func:`imbalance`, :func:`balancedness_step`, :func:`gradient_flow_imbalance`).
  For ``f = W_L W_{L-1} h`` with ``h`` not depending on ``W_L, W_{L-1}`` and no bias or
  nonlinearity between the two layers, the gradients of *any* unregularized loss satisfy
  ``W_L^T G_L = G_{L-1} W_{L-1}^T`` (both equal ``W_L^T Delta h^T W_{L-1}^T`` summed over samples,
  ``Delta = dloss/df``). One GD step with weight decay, ``W <- (1 - eta lambda) W - eta G``, then
  gives for ``D = W_L^T W_L - W_{L-1} W_{L-1}^T``

      D' = (1 - eta lambda)^2 D
           - eta (1 - eta lambda) [ (W_L^T G_L - G_{L-1} W_{L-1}^T) + (...)^T ]
           + eta^2 (G_L^T G_L - G_{L-1} G_{L-1}^T),

  and the bracket (the cross terms) vanishes **only because of that gradient relation**, leaving
  ``D' = (1 - eta lambda)^2 D + eta^2 (G_L^T G_L - G_{L-1} G_{L-1}^T)``. Under gradient flow
  ``dW/dt = -G - lambda W`` the same cancellation gives ``dD/dt = -2 lambda D``, so
  ``D(t) = exp(-2 lambda t) D(0)`` (``t`` is flow time; ``t / eta`` GD steps).
* **Unconstrained features model** (:func:`ufm_contraction_factor`,
  :func:`ufm_step_size_condition`, :func:`ufm_variance_bound`). With free features ``H`` and
  ``L = (1/2)||W H - Y||^2 + (lambda/2)(||W||^2 + ||H||^2)``, two samples of the same class have
  the same target, so their difference obeys ``delta' = (I - eta (W^T W + lambda I)) delta`` exactly.

**AdamW.** Under AdamW these identities are not exact: Adam's per-coordinate preconditioning of the
gradient breaks the relation the cancellation relies on and the linear UFM update. Only decoupled
weight decay's factor ``(1 - eta lambda)`` per step is exact, which is why the same ``1/(eta lambda)``
time scale is carried over to AdamW runs as a hypothesis to test there, not a theorem.

Nothing here does I/O or imports torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncgrok.theory._validation import as_array, as_scalar

__all__ = [
    "decoupled_decay",
    "fit_time",
    "collapse_time",
    "imbalance",
    "balancedness_step",
    "gradient_flow_imbalance",
    "ufm_contraction_factor",
    "ufm_step_size_condition",
    "ufm_variance_bound",
    "ufm_constant",
    "predicted_onset",
    "fit_onset_constant",
    "LogLogFit",
    "fit_loglog_slope",
]

# ---------------------------------------------------------------------------------------------
# the slow rate


def decoupled_decay(lr: Any, weight_decay: Any) -> Any:
    """Thm. 4.3's per-step shrinkage ``1 - eta lambda`` of every weight under weight decay.

    Gradient descent on ``L + (lambda/2)||W||^2`` and AdamW's decoupled decay both multiply each
    weight by this factor every step (before the data term's update); its powers
    ``(1 - eta lambda)^t`` set the ``1/(eta lambda)`` time scale of collapse. Computed in double
    precision exactly as ``torch.optim.AdamW`` computes it (``1 - lr * weight_decay``), so an
    optimizer built on it stays bit-for-bit equal to torch's. Works on scalars and numpy arrays.
    """
    return 1.0 - lr * weight_decay


# ---------------------------------------------------------------------------------------------
# tau1 and tau2


def fit_time(*, lr: float, eps1: float, initial_loss: float = 1.0, rate: float = 1.0) -> float:
    """Predicted number of steps to fit, ``tau1 = log(L0 / eps1) / (rate * lr)`` (Thm. 4.3).

    Status: the rate ``eta^-1 log(1/eps1)`` is **published**; this exact form is **reconstructed**:
    if the unregularized loss contracts linearly, ``L(t) <= (1 - rate*lr)^t L0`` (e.g. a
    Polyak-Lojasiewicz constant ``rate``), then ``L(t) <= eps1`` once ``t >= log(L0/eps1)/(rate*lr)``
    to first order in ``rate*lr``. It does not depend on the weight decay (for small ``lambda``).
    Returns 0 when ``initial_loss <= eps1`` (already fitted).
    Under AdamW this is a heuristic time scale only (the contraction argument is for plain GD).
    """
    lr = as_scalar("lr", lr, positive=True)
    eps1 = as_scalar("eps1", eps1, positive=True)
    initial_loss = as_scalar("initial_loss", initial_loss, positive=True)
    rate = as_scalar("rate", rate, positive=True)
    return max(0.0, math.log(initial_loss / eps1)) / (rate * lr)


def collapse_time(
    *, lr: float, weight_decay: float, eps2: float, initial_variance: float = 1.0
) -> float:
    """Reconstructed time scale for the within-class variance to reach ``eps2`` (Thm. 4.3's ``tau2``).

    Thm. 4.3 bounds this time from below by ``Omega((eta lambda)^-1 log(1/eps2))``; this function
    gives the reconstructed form with a constant,
    ``tau2 = log(V0 / eps2) / (2 lr weight_decay)``: the within-class variance decays at
    least like ``(1 - eta lambda)^(2t)`` and, in the null space of the classifier, no faster (UFM
    argument, see the module docstring), so ``V(t) <= eps2`` after about this many steps *counted
    from the time the variance equals* ``initial_variance`` (use ``V(tau1)`` to get the delay
    after fitting). Status: rate **published**, exact form **reconstructed**. Returns 0 when
    ``initial_variance <= eps2``. ``weight_decay`` must be > 0: without weight decay this argument
    predicts no collapse at all (infinite time).
    Under AdamW only the ``(1 - eta lambda)`` decay factor is exact; the time scale is a prediction.
    """
    lr = as_scalar("lr", lr, positive=True)
    weight_decay = _weight_decay(weight_decay)
    eps2 = as_scalar("eps2", eps2, positive=True)
    initial_variance = as_scalar("initial_variance", initial_variance, positive=True)
    return max(0.0, math.log(initial_variance / eps2)) / (2.0 * lr * weight_decay)


def _weight_decay(value: Any) -> float:
    number = as_scalar("weight_decay", value, nonnegative=True)
    if number == 0:
        raise ValueError(
            "weight_decay must be > 0; with no weight decay Thm. 4.3 predicts no collapse (infinite time)"
        )
    return number


# ---------------------------------------------------------------------------------------------
# Balancedness of two consecutive linear layers


def _pair(last: Any, prev: Any, last_name: str = "last", prev_name: str = "prev") -> tuple[np.ndarray, np.ndarray]:
    last = as_array(last_name, last, ndim=2)
    prev = as_array(prev_name, prev, ndim=2)
    if last.shape[1] != prev.shape[0]:
        raise ValueError(
            f"{last_name} (W_L, shape {last.shape}) and {prev_name} (W_(L-1), shape {prev.shape}) do not "
            f"compose: W_L needs as many columns as W_(L-1) has rows"
        )
    return last, prev


def imbalance(last: Any, prev: Any) -> np.ndarray:
    """Imbalance ``D = W_L^T W_L - W_{L-1} W_{L-1}^T`` of two consecutive linear layers (Thm. 4.3).

    ``last`` is ``W_L`` (shape ``(m, r)``), ``prev`` is ``W_{L-1}`` (shape ``(r, q)``); ``D`` is
    ``r x r``. Part of the reconstructed proof of Thm. 4.3: weight decay drives ``D`` to zero.
    """
    last, prev = _pair(last, prev)
    return last.T @ last - prev @ prev.T


def balancedness_step(
    imbalance: Any,
    *,
    grad_last: Any,
    grad_prev: Any,
    lr: float,
    weight_decay: float,
    last: Any = None,
    prev: Any = None,
) -> np.ndarray:
    """Imbalance after one GD step with weight decay (Thm. 4.3, **reconstructed** derivation).

    Returns ``(1 - eta lambda)^2 D + eta^2 (G_L^T G_L - G_{L-1} G_{L-1}^T)`` where
    ``D = imbalance``, ``G_L = grad_last`` and ``G_{L-1} = grad_prev`` are the gradients of the
    **unregularized** loss (weight decay enters only through the factor), for the update
    ``W <- (1 - eta lambda) W - eta G``.

    This is exact when ``W_L^T G_L = G_{L-1} W_{L-1}^T``, which holds for the gradients of any loss
    of ``f = W_L W_{L-1} h`` (``h`` independent of both layers, no bias or nonlinearity between
    them). If ``last`` (``W_L``) and ``prev`` (``W_{L-1}``) are passed, the cross term
    ``-eta (1 - eta lambda) (X + X^T)`` with ``X = W_L^T G_L - G_{L-1} W_{L-1}^T`` is added, which makes
    the result exact for arbitrary matrices (and changes nothing, up to rounding, in the case above).

    Under AdamW the update is not ``(1 - eta lambda) W - eta G`` with the raw gradient, so the
    identity does not hold; only the ``(1 - eta lambda)^2`` decay of the first term carries over.
    """
    lr = as_scalar("lr", lr, positive=True)
    weight_decay = as_scalar("weight_decay", weight_decay, nonnegative=True)
    grad_last, grad_prev = _pair(grad_last, grad_prev, "grad_last", "grad_prev")
    width = grad_last.shape[1]
    current = as_array("imbalance", imbalance, shape=(width, width))
    decay = 1.0 - lr * weight_decay
    result = decay**2 * current + lr**2 * (grad_last.T @ grad_last - grad_prev @ grad_prev.T)
    if (last is None) != (prev is None):
        raise ValueError("pass both last (W_L) and prev (W_(L-1)) to include the cross term, or neither")
    if last is not None:
        last, prev = _pair(last, prev)
        if last.shape != grad_last.shape or prev.shape != grad_prev.shape:
            raise ValueError(
                f"last/prev shapes {last.shape}/{prev.shape} must equal grad_last/grad_prev shapes "
                f"{grad_last.shape}/{grad_prev.shape}"
            )
        cross = last.T @ grad_last - grad_prev @ prev.T
        result = result - lr * decay * (cross + cross.T)
    return result


def gradient_flow_imbalance(initial: Any, *, weight_decay: float, time: float) -> np.ndarray:
    """Imbalance under gradient flow with weight decay: ``D(t) = exp(-2 lambda t) D(0)`` (Thm. 4.3).

    Exact for ``dW/dt = -G - lambda W`` on two consecutive linear layers (the cross terms cancel as
    in :func:`balancedness_step`); ``t`` is flow time, which ``t / eta`` GD steps approximate to
    first order in ``eta``. **Reconstructed** derivation. Not exact for AdamW.
    """
    initial = as_array("initial", initial, ndim=2)
    if initial.shape[0] != initial.shape[1]:
        raise ValueError(f"initial must be a square imbalance matrix, got shape {initial.shape}")
    weight_decay = as_scalar("weight_decay", weight_decay, nonnegative=True)
    time = as_scalar("time", time, nonnegative=True)
    return math.exp(-2.0 * weight_decay * time) * initial


# ---------------------------------------------------------------------------------------------
# Unconstrained features model


def ufm_contraction_factor(*, lr: float, weight_decay: float, classifier_norm: float) -> float:
    """Per-step contraction of a same-class feature difference in the UFM (Thm. 4.3, reconstructed).

    In the unconstrained features model ``delta' = (I - eta (W^T W + lambda I)) delta`` for the
    difference of two same-class features. The eigenvalues of ``W^T W`` lie in ``[0, ||W||_2^2]``,
    so ``||delta'|| <= q ||delta||`` with

        q = max(|1 - eta lambda|, |1 - eta (||W||_2^2 + lambda)|),

    which is exactly the operator norm of the update when ``W`` has a non-trivial null space
    (``p > rank W``, e.g. ``p > K``). ``q = 1 - eta lambda`` precisely when
    :func:`ufm_step_size_condition` holds and ``eta lambda <= 1``. ``classifier_norm`` is
    ``||W||_2`` (the spectral norm, ``>= 0``). Not exact under AdamW.
    """
    lr = as_scalar("lr", lr, positive=True)
    weight_decay = as_scalar("weight_decay", weight_decay, nonnegative=True)
    classifier_norm = as_scalar("classifier_norm", classifier_norm, nonnegative=True)
    return max(abs(1.0 - lr * weight_decay), abs(1.0 - lr * (classifier_norm**2 + weight_decay)))


def ufm_step_size_condition(*, lr: float, weight_decay: float, classifier_norm: float) -> bool:
    """Whether ``eta (||W||_2^2 + lambda) <= 2 - eta lambda`` (Thm. 4.3, reconstructed UFM argument).

    Under this condition (and ``eta lambda <= 1``) every same-class feature difference contracts by
    at least ``1 - eta lambda`` per GD step in the UFM; see :func:`ufm_contraction_factor`.
    """
    lr = as_scalar("lr", lr, positive=True)
    weight_decay = as_scalar("weight_decay", weight_decay, nonnegative=True)
    classifier_norm = as_scalar("classifier_norm", classifier_norm, nonnegative=True)
    return lr * (classifier_norm**2 + weight_decay) <= 2.0 - lr * weight_decay


def ufm_variance_bound(initial_variance: Any, *, lr: float, weight_decay: float, steps: Any) -> Any:
    """Upper bound ``(1 - eta lambda)^(2 t) V0`` on the UFM within-class variance after ``t`` steps.

    Valid when :func:`ufm_step_size_condition` holds at every step taken (with the classifier norm of
    that step) and ``eta lambda <= 1``; the within-class variance is an average of squared same-class
    differences, each contracting by ``1 - eta lambda``. **Reconstructed** (Thm. 4.3).
    ``steps`` may be an array. Not exact under AdamW.
    """
    initial_variance = as_scalar("initial_variance", initial_variance, nonnegative=True)
    lr = as_scalar("lr", lr, positive=True)
    weight_decay = as_scalar("weight_decay", weight_decay, nonnegative=True)
    if lr * weight_decay > 1:
        raise ValueError(f"lr * weight_decay must be <= 1 for this bound, got {lr * weight_decay:g}")
    steps_array = as_array("steps", steps, ndim=(0, 1), nonnegative=True)
    value = (1.0 - lr * weight_decay) ** (2.0 * steps_array) * initial_variance
    return float(value) if steps_array.ndim == 0 else value


def ufm_constant(*, variance_at_fit: float, eps2: float) -> float:
    """The UFM onset constant ``C = (1/2) log(V(t_fit) / eps2)`` (R6, reconstructed).

    With it, :func:`predicted_onset` gives ``t_fit + C / (eta lambda)``, the time at which the
    within-class variance, starting from ``V(t_fit)`` and decaying like ``(1 - eta lambda)^(2t)``,
    reaches ``eps2``. Returns 0 if ``variance_at_fit <= eps2``.
    """
    variance_at_fit = as_scalar("variance_at_fit", variance_at_fit, positive=True)
    eps2 = as_scalar("eps2", eps2, positive=True)
    return 0.5 * max(0.0, math.log(variance_at_fit / eps2))


# ---------------------------------------------------------------------------------------------
# The reconstructed grokking-onset law (R6)


def _weight_decays(value: Any) -> np.ndarray:
    array = as_array("weight_decays", value, ndim=(0, 1))
    if array.size and np.any(array <= 0):
        raise ValueError(f"weight decays must be > 0, got minimum {array.min():.6g}")
    return array


def predicted_onset(weight_decay: Any, *, lr: float, fit_time: Any, constant: float) -> Any:
    """Onset law ``t_fit + C / (eta lambda)`` (R6: our reconstruction on Thm. 4.3's time scale).

    Thm. 4.3 is a lower bound on the steps until RNC1 is small and says nothing directly about test
    accuracy; equating the grokking onset with that time scale is our hypothesis, not the paper's.

    ``weight_decay`` may be a number or an array (``> 0``); ``fit_time`` is ``t_fit`` in steps (a
    number, or an array broadcasting with ``weight_decay``); ``constant`` is ``C >= 0`` (fit it with
    :func:`fit_onset_constant`, or take :func:`ufm_constant`). For AdamW runs this is the predicted
    time scale, not an exact consequence of the theory.
    """
    decays = _weight_decays(weight_decay)
    lr = as_scalar("lr", lr, positive=True)
    fit = as_array("fit_time", fit_time, ndim=(0, 1), nonnegative=True)
    constant = as_scalar("constant", constant, nonnegative=True)
    try:
        value = fit + constant / (lr * decays)
    except ValueError:
        raise ValueError(f"fit_time (shape {fit.shape}) must match weight_decay (shape {decays.shape})") from None
    return float(value) if value.ndim == 0 else value


def fit_onset_constant(weight_decays: Any, onsets: Any, *, lr: float, fit_times: Any) -> float:
    """Least-squares ``C`` in ``onset = t_fit + C / (eta lambda)`` (R6, reconstructed).

    Minimises ``sum_i (onset_i - t_fit_i - C x_i)^2`` with ``x_i = 1/(eta lambda_i)``, i.e.
    ``C = sum x_i y_i / sum x_i^2`` with ``y_i = onset_i - t_fit_i``. With a single weight decay it
    returns ``(onset - t_fit) eta lambda`` (calibrate on one ``lambda``, predict the others with
    :func:`predicted_onset`). ``fit_times`` is one number or one per weight decay.
    """
    decays = np.atleast_1d(_weight_decays(weight_decays))
    if decays.size == 0:
        raise ValueError("weight_decays must hold at least one value")
    onsets = np.atleast_1d(as_array("onsets", onsets, ndim=(0, 1), nonnegative=True))
    if onsets.shape != decays.shape:
        raise ValueError(f"onsets ({onsets.size} values) must pair with weight_decays ({decays.size} values)")
    lr = as_scalar("lr", lr, positive=True)
    fits = as_array("fit_times", fit_times, ndim=(0, 1), nonnegative=True)
    if fits.ndim == 1 and fits.shape != decays.shape:
        raise ValueError(f"fit_times must be one number or {decays.size} values, got {fits.size}")
    x = 1.0 / (lr * decays)
    y = onsets - fits
    return float(np.dot(x, y) / np.dot(x, x))


@dataclass(frozen=True)
class LogLogFit:
    """Ordinary least squares of ``log(delay)`` on ``log(weight_decay)`` (R6 scaling law, reconstructed).

    ``slope_ci`` is the two-sided ``confidence`` interval of the slope from the t-distribution with
    ``num_points - 2`` degrees of freedom; with exactly two points it is ``(-inf, inf)``.
    """

    slope: float
    intercept: float
    slope_ci: tuple[float, float]
    slope_stderr: float
    num_points: int
    confidence: float


def fit_loglog_slope(weight_decays: Any, delays: Any, *, confidence: float = 0.95) -> LogLogFit:
    """Fit ``log(t_grok - t_fit) = slope * log(lambda) + intercept`` (R6, reconstructed: slope -1 if
    the onset follows :func:`predicted_onset`; not a prediction of Thm. 4.3 or of the paper).

    ``delays`` are ``t_grok - t_fit`` (``> 0``), one per weight decay (``> 0``); natural logarithms.
    Needs at least two distinct weight decays. The confidence interval assumes independent Gaussian
    errors in ``log(delay)``: pass one summary per weight decay. Seeds of one weight decay passed as
    repeated points are not independent evidence about the law and make the interval too narrow; the
    claims ledger's ``r6-scaling`` check resamples seeds within levels instead.
    """
    decays = np.atleast_1d(_weight_decays(weight_decays))
    delays = np.atleast_1d(as_array("delays", delays, ndim=(0, 1)))
    if delays.shape != decays.shape:
        raise ValueError(f"delays ({delays.size} values) must pair with weight_decays ({decays.size} values)")
    if np.any(delays <= 0):
        raise ValueError(f"delays (t_grok - t_fit) must be > 0 to take logs, got minimum {delays.min():.6g}")
    confidence = as_scalar("confidence", confidence, open_unit=True)
    x, y = np.log(decays), np.log(delays)
    n = x.size
    if n < 2 or np.ptp(x) == 0:
        raise ValueError("need at least two distinct weight decays to fit a slope")
    x_mean, y_mean = x.mean(), y.mean()
    sxx = float(np.sum((x - x_mean) ** 2))
    slope = float(np.sum((x - x_mean) * (y - y_mean)) / sxx)
    intercept = float(y_mean - slope * x_mean)
    if n == 2:
        stderr, interval = math.inf, (-math.inf, math.inf)
    else:
        residuals = y - (intercept + slope * x)
        variance = float(np.sum(residuals**2)) / (n - 2)
        stderr = math.sqrt(variance / sxx)
        from scipy import stats  # imported here: scipy.stats costs ~0.5 s at CLI start-up

        half = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 2)) * stderr
        interval = (slope - half, slope + half)
    return LogLogFit(
        slope=slope,
        intercept=intercept,
        slope_ci=interval,
        slope_stderr=stderr,
        num_points=n,
        confidence=confidence,
    )
