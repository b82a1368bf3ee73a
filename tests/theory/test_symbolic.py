"""Tests for theory/symbolic.py: every sympy closed form equals its numeric twin on random inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from ncgrok.theory import concentration, generalization, information, symbolic, timescales
from ncgrok.theory.symbolic import EXPRESSIONS, formula, lambdify, latex

DRAWS = 25


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _random_priors(rng, k):
    priors = rng.uniform(0.2, 1.0, k)
    return priors / priors.sum()


def _random_covariances(rng, k, dim):
    """Covariances with known eigenvalues: Q diag(lambda) Q^T with random orthogonal Q."""
    eigenvalues = rng.exponential(0.3, size=(k, dim))
    eigenvalues[:, 0] = 0.0  # one flat direction per class
    stack = []
    for c in range(k):
        q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        stack.append(q @ np.diag(eigenvalues[c]) @ q.T)
    return np.array(stack), eigenvalues


# ------------------------------------------------------------------------------------------------
# Registry metadata and LaTeX


EXPECTED_STATUS = {
    "Thm. 3.2": "published",
    "Thm. 3.4": "published",
    "Prop. 3.3": "reconstructed",
    "Thm. 4.1": "reconstructed",
    "Thm. 4.3": "reconstructed",
}


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_registry_entries_are_complete(name):
    entry = EXPRESSIONS[name]
    assert entry.name == name
    assert isinstance(entry.expression, sp.Basic)
    assert EXPECTED_STATUS[entry.theorem] == entry.status
    assert entry.description and entry.lhs
    assert list(entry.symbols) == [argument.name for argument in entry.arguments]
    # every free symbol of the expression is an argument (or its label) or an inferred size
    allowed = set(entry.sizes.values())
    for argument in entry.arguments:
        allowed.add(argument.symbol)
        if isinstance(argument.symbol, sp.IndexedBase):
            allowed.add(argument.symbol.label)
    free = {s for s in entry.expression.free_symbols if not isinstance(s, sp.Indexed)}
    assert free <= allowed, free - allowed


EXPECTED_LATEX = {
    "cantelli_term": [r"\text{for}", "m", "V"],
    "cantelli_bound_equal": ["K - 1", "m"],
    "cantelli_bound": [r"\sum", "{p}_{c}", "{m}_{c,k}", "{V}_{c}"],
    "cantelli_bound_directional": [r"\sum", "{s^{2}}_{c,k}"],
    "ib_trace_variance": [r"\sigma^{2}", "V"],
    "ib_trace": [r"\sum", r"{\lambda}_{c,j}", r"\sigma^{2}"],
    "ib_logdet": [r"\log", r"{\lambda}_{c,j}", r"\sigma^{2}"],
    "fano": [r"\log", "P_{e}", "{p}_{c}", "K - 1"],
    "fano_uniform": [r"\log{\left(K \right)}", "P_{e}"],
    "heldout_variance_radius": [r"\delta", r"\lfloor", "n_c", "K"],
    "uniform_variance_bound": [r"\Pi(g)", r"\sqrt{n_c}", r"\delta"],
    "fit_time": [r"\eta", r"\epsilon_{1}", "L_{0}"],
    "collapse_time": [r"\eta", r"\lambda", r"\epsilon_{2}", "V_{0}"],
    "predicted_onset": [r"t_{\mathrm{fit}}", r"\eta \lambda"],
    "ufm_constant": [r"V(t_{\mathrm{fit}})", r"\epsilon_{2}"],
    "ufm_contraction_factor": [r"\|W\|_2", r"\eta"],
    "gradient_flow_imbalance": ["D(0)", r"e^{- 2 \lambda t}"],
    "balancedness_step": ["G_{L-1}", "G_{L}^{T}", r"\eta"],
}


def test_every_formula_has_latex_expectations():
    assert set(EXPECTED_LATEX) == set(EXPRESSIONS)


@pytest.mark.parametrize("name", list(EXPECTED_LATEX))
def test_latex_contains_expected_symbols(name):
    text = latex(name)
    assert text.strip()
    for piece in EXPECTED_LATEX[name]:
        assert piece in text, (name, piece, text)
    full = latex(name, with_lhs=True)
    assert full.startswith(formula(name).lhs) and full.endswith(text)


def test_unknown_formula_and_bad_calls():
    with pytest.raises(ValueError, match="unknown formula"):
        latex("no_such_formula")
    f = lambdify("fit_time")
    with pytest.raises(ValueError, match="missing"):
        f(lr=0.1)
    with pytest.raises(ValueError, match="no argument"):
        f(lr=0.1, eps1=0.1, initial_loss=1.0, rate=1.0, extra=1)
    g = lambdify("ib_trace")
    with pytest.raises(ValueError, match="along axis"):
        g(eigenvalues=np.ones((3, 2)), sigma=1.0, priors=np.ones(2) / 2)


# ------------------------------------------------------------------------------------------------
# Generalization (Thm. 3.2)


def test_cantelli_term_matches_numeric(rng):
    f = lambdify("cantelli_term")
    margins = np.concatenate([rng.normal(0, 1, 200), [0.0, -0.0, 1.0, 2.0]])
    variances = np.concatenate([rng.exponential(1.0, 200), [0.0, 1.0, 0.0, 3.0]])
    variances[::7] = 0.0
    np.testing.assert_allclose(f(margins, variances), generalization.cantelli_term(margins, variances), rtol=1e-14)
    assert f(margin=2.0, variance=4.0) == pytest.approx(0.5, rel=1e-14)


def test_cantelli_bound_equal_matches_numeric_on_simplex(rng):
    f = lambdify("cantelli_bound_equal")
    for _ in range(DRAWS):
        k = int(rng.integers(2, 8))
        # simplex ETF rows in R^k: unit norm, pairwise inner product -1/(k-1)
        etf = (np.eye(k) - np.ones((k, k)) / k) * math.sqrt(k / (k - 1))
        scale = rng.uniform(0.05, 1.0)
        means = scale * etf
        variance = rng.exponential(0.2)
        # m = <a w_c, (w_c - w_k)/||w_c - w_k||> = a sqrt(k / (2 (k - 1))) by hand
        margin = scale * math.sqrt(k / (2 * (k - 1)))
        numeric = generalization.cantelli_bound(
            means, etf, variances=np.full(k, variance), priors=_random_priors(rng, k)
        )
        assert f(margin=margin, variance=variance, num_classes=k) == pytest.approx(numeric, rel=1e-12)


@pytest.mark.parametrize("directional", [False, True])
def test_cantelli_bound_matches_numeric(rng, directional):
    name = "cantelli_bound_directional" if directional else "cantelli_bound"
    f = lambdify(name)
    for _ in range(DRAWS):
        k, dim = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        means = rng.normal(0, 1, (k, dim))
        weights = rng.normal(0, 1, (k, dim))
        covariances, _ = _random_covariances(rng, k, dim)
        priors = _random_priors(rng, k)
        bias = rng.normal(0, 0.3, k)
        numeric = generalization.cantelli_bound(
            means, weights, covariances=covariances, priors=priors, bias=bias, directional=directional
        )
        # margins and variances by hand, independently of the library
        margins = np.zeros((k, k))
        pair_variances = np.zeros((k, k))
        for c in range(k):
            for j in range(k):
                if c != j:
                    diff = weights[c] - weights[j]
                    norm = np.linalg.norm(diff)
                    margins[c, j] = means[c] @ diff / norm + (bias[c] - bias[j]) / norm
                    pair_variances[c, j] = diff @ covariances[c] @ diff / norm**2
        if directional:
            value = f(margins=margins, pair_variances=pair_variances, priors=priors)
        else:
            value = f(margins=margins, variances=np.trace(covariances, axis1=1, axis2=2), priors=priors)
        assert value == pytest.approx(numeric, rel=1e-10)


# ------------------------------------------------------------------------------------------------
# Information bottleneck (Thm. 3.4) and Fano (Prop. 3.3)


def test_ib_forms_match_numeric(rng):
    trace, logdet = lambdify("ib_trace"), lambdify("ib_logdet")
    trace_variance = lambdify("ib_trace_variance")
    for _ in range(DRAWS):
        k, dim = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        covariances, eigenvalues = _random_covariances(rng, k, dim)
        priors = _random_priors(rng, k)
        sigma = rng.uniform(0.1, 2.0)
        assert trace(eigenvalues, sigma, priors) == pytest.approx(
            information.ib_bound_trace(sigma=sigma, covariances=covariances, priors=priors), rel=1e-10
        )
        assert logdet(eigenvalues=eigenvalues, sigma=sigma, priors=priors) == pytest.approx(
            information.ib_bound_logdet(covariances, sigma=sigma, priors=priors), rel=1e-9, abs=1e-13
        )
        assert logdet(eigenvalues, sigma, priors) == pytest.approx(
            information.gaussian_conditional_information(covariances, sigma=sigma, priors=priors), rel=1e-9, abs=1e-12
        )
        average = float(priors @ eigenvalues.sum(axis=1))
        assert trace_variance(variance=average, sigma=sigma) == pytest.approx(
            information.ib_bound_trace(sigma=sigma, variances=eigenvalues.sum(axis=1), priors=priors), rel=1e-12
        )


def test_fano_matches_numeric(rng):
    general, uniform = lambdify("fano"), lambdify("fano_uniform")
    for _ in range(DRAWS):
        k = int(rng.integers(2, 12))
        error = rng.uniform(1e-6, 1 - 1 / k)
        priors = _random_priors(rng, k)
        assert general(error=error, priors=priors) == pytest.approx(
            information.fano_information_lower_bound(num_classes=k, error=error, priors=priors), rel=1e-10, abs=1e-12
        )
        assert uniform(num_classes=k, error=error) == pytest.approx(
            information.fano_information_lower_bound(num_classes=k, error=error), rel=1e-10, abs=1e-12
        )
    # at chance level the uniform bound is exactly zero
    assert uniform(num_classes=4, error=0.75) == pytest.approx(0.0, abs=1e-14)


# ------------------------------------------------------------------------------------------------
# Concentration (Thm. 4.1)


def test_concentration_forms_match_numeric(rng):
    radius, uniform = lambdify("heldout_variance_radius"), lambdify("uniform_variance_bound")
    for _ in range(DRAWS):
        n = int(rng.integers(2, 5000))
        k = int(rng.integers(1, 100))
        delta = rng.uniform(1e-4, 0.99)
        assert radius(n=n, num_classes=k, delta=delta) == pytest.approx(
            concentration.heldout_variance_radius(n, num_classes=k, delta=delta), rel=1e-13
        )
        kwargs = dict(
            rnc1_train=rng.uniform(0, 1),
            complexity_ratio=rng.uniform(0, 100),
            n=n,
            num_classes=k,
            delta=delta,
            constant=rng.uniform(0, 5),
        )
        assert uniform(**kwargs) == pytest.approx(concentration.uniform_variance_bound(**kwargs), rel=1e-13)
    # vectorized over n
    ns = np.array([2.0, 3.0, 10.0, 11.0])
    expected = [concentration.heldout_variance_radius(n, num_classes=3, delta=0.1) for n in ns]
    np.testing.assert_allclose(radius(ns, 3, 0.1), expected, rtol=1e-13)


# ------------------------------------------------------------------------------------------------
# Time scales (Thm. 4.3)


def test_timescale_forms_match_numeric(rng):
    fit, collapse = lambdify("fit_time"), lambdify("collapse_time")
    onset, ufm_c = lambdify("predicted_onset"), lambdify("ufm_constant")
    contraction, flow = lambdify("ufm_contraction_factor"), lambdify("gradient_flow_imbalance")
    for _ in range(DRAWS):
        lr, decay = 10 ** rng.uniform(-4, 0), 10 ** rng.uniform(-4, 0)
        eps, start = 10 ** rng.uniform(-6, 1), 10 ** rng.uniform(-2, 2)  # sometimes start < eps
        rate = rng.uniform(0.1, 3)
        assert fit(lr=lr, eps1=eps, initial_loss=start, rate=rate) == pytest.approx(
            timescales.fit_time(lr=lr, eps1=eps, initial_loss=start, rate=rate), rel=1e-13
        )
        assert collapse(lr=lr, weight_decay=decay, eps2=eps, initial_variance=start) == pytest.approx(
            timescales.collapse_time(lr=lr, weight_decay=decay, eps2=eps, initial_variance=start), rel=1e-13
        )
        t_fit, constant = rng.uniform(0, 1e4), rng.uniform(0, 10)
        assert onset(weight_decay=decay, lr=lr, fit_time=t_fit, constant=constant) == pytest.approx(
            timescales.predicted_onset(decay, lr=lr, fit_time=t_fit, constant=constant), rel=1e-13
        )
        assert ufm_c(variance_at_fit=start, eps2=eps) == pytest.approx(
            timescales.ufm_constant(variance_at_fit=start, eps2=eps), rel=1e-13, abs=0
        )
        norm = rng.uniform(0, 10)
        assert contraction(lr=lr, weight_decay=decay, classifier_norm=norm) == pytest.approx(
            timescales.ufm_contraction_factor(lr=lr, weight_decay=decay, classifier_norm=norm), rel=1e-13
        )
        d0 = rng.normal(size=(3, 3))
        t = rng.uniform(0, 100)
        np.testing.assert_allclose(
            flow(initial=d0, weight_decay=decay, time=t),
            timescales.gradient_flow_imbalance(d0, weight_decay=decay, time=t),
            rtol=1e-13,
        )


def test_balancedness_step_form_matches_numeric(rng):
    step = lambdify("balancedness_step")
    for _ in range(DRAWS):
        m, r, q = (int(v) for v in rng.integers(1, 5, 3))
        d = rng.normal(size=(r, r))
        grad_last, grad_prev = rng.normal(size=(m, r)), rng.normal(size=(r, q))
        lr, decay = rng.uniform(0, 1), rng.uniform(0, 1)
        np.testing.assert_allclose(
            step(d, grad_last, grad_prev, lr, decay),
            timescales.balancedness_step(d, grad_last=grad_last, grad_prev=grad_prev, lr=lr, weight_decay=decay),
            rtol=1e-12,
            atol=1e-14,
        )
