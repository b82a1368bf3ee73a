"""The closed forms of the theory as sympy expressions (Thm. 3.2, 3.4, 4.1, 4.3; Prop. 3.3).

One registry, :data:`EXPRESSIONS`, maps a name to a :class:`Formula`: the sympy expression, its
arguments (in call order, each with a meaning and a shape), the result it encodes and its status
(**published** or **reconstructed**, as in the numeric modules). Use it to

* print a formula: :func:`latex` (``latex("collapse_time", with_lhs=True)``);
* evaluate it numerically: :func:`lambdify` returns a numpy function taking the arguments by name
  (or position); array arguments (per-class priors, margins, eigenvalues) are passed as ordinary
  0-based numpy arrays and their sizes (``K``, ``d``) are read from the shapes.

The expressions are written independently of the numeric functions (``theory.generalization``,
``theory.information``, ``theory.concentration``, ``theory.timescales``); the tests check that the
two agree on random inputs, which is the point of keeping both.

Notation: sums over classes run ``c = 1..K`` and over feature directions ``j = 1..d``; ``d`` is the
feature dimension (``p`` in the spec, renamed here because ``p_c`` are the class priors).
Information is in nats (natural logarithms) throughout.

A sympy caveat handled here: ``Sum`` folds a ``Piecewise`` in its summand outwards, which is wrong
when the conditions depend on an inner summation index; the Cantelli bounds are therefore written
as one double sum over ``(c, k)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import sympy as sp

from ncgrok.theory._validation import as_array

__all__ = ["Argument", "Formula", "EXPRESSIONS", "formula", "latex", "lambdify", "names"]

PUBLISHED = "published"
RECONSTRUCTED = "reconstructed"


@dataclass(frozen=True)
class Argument:
    """One argument of a formula: its call name, sympy object, meaning and shape.

    ``shape`` is ``()`` for a number, or a tuple of size symbols such as ``("K",)`` or ``("K", "d")``
    for an array (indexed ``1..K`` in the expression, passed 0-based to the lambdified function), or
    a tuple of size-symbol names for a sympy matrix symbol (then ``matrix`` is True).
    """

    name: str
    symbol: sp.Basic
    meaning: str
    shape: tuple[str, ...] = ()
    matrix: bool = False


@dataclass(frozen=True)
class Formula:
    """A closed form of the theory with its provenance."""

    name: str
    expression: sp.Basic
    arguments: tuple[Argument, ...]
    theorem: str
    status: str
    description: str
    lhs: str = ""
    latex_names: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)  # size name -> sympy Symbol, inferred from shapes

    @property
    def symbols(self) -> dict[str, sp.Basic]:
        """Argument name -> sympy object, in call order."""
        return {argument.name: argument.symbol for argument in self.arguments}


# ------------------------------------------------------------------------------------------------
# Symbols


def _positive(name: str) -> sp.Symbol:
    return sp.Symbol(name, positive=True)


_K = sp.Symbol("K", integer=True, positive=True)
_d = sp.Symbol("d", integer=True, positive=True)
_c, _k, _j = sp.symbols("c k j", integer=True, positive=True)

_margin = sp.Symbol("m", real=True)
_variance = sp.Symbol("V", nonnegative=True)
_priors = sp.IndexedBase("p")
_margins = sp.IndexedBase("m")
_class_variances = sp.IndexedBase("V")
_pair_variances = sp.IndexedBase("s^{2}")
_eigenvalues = sp.IndexedBase("lambda")
_sigma = _positive("sigma")
_error = _positive("P_e")
_n = _positive("n")
_delta = _positive("delta")
_eta = _positive("eta")
_weight_decay = _positive("lambda")
_eps1, _eps2 = _positive("epsilon_1"), _positive("epsilon_2")
_initial_loss, _initial_variance = _positive("L_0"), _positive("V_0")
_rate = _positive("r")
_fit_time = sp.Symbol("t_fit", nonnegative=True)
_constant = sp.Symbol("C", nonnegative=True)
_time = sp.Symbol("t", nonnegative=True)
_rnc1 = sp.Symbol("RNC1_train", nonnegative=True)
_ratio = sp.Symbol("rho", nonnegative=True)
_norm = sp.Symbol("s_W", nonnegative=True)
_initial_imbalance = sp.Symbol("D_0", real=True)
_rows, _width, _cols = sp.symbols("n_L r n_0", integer=True, positive=True)
_imbalance = sp.MatrixSymbol("D", _width, _width)
_grad_last = sp.MatrixSymbol("G_L", _rows, _width)
_grad_prev = sp.MatrixSymbol("G_prev", _width, _cols)


def _cantelli(margin: sp.Basic, variance: sp.Basic) -> sp.Piecewise:
    """``(1 + max(m, 0)^2 / V)^(-1)`` written so that ``V = 0, m > 0`` gives 0 and ``m <= 0`` gives 1."""
    return sp.Piecewise((1, margin <= 0), (variance / (variance + margin**2), True))


def _binary_entropy(probability: sp.Basic) -> sp.Basic:
    return -probability * sp.log(probability) - (1 - probability) * sp.log(1 - probability)


def _cantelli_bound_expression(pair_variance: sp.Basic) -> sp.Basic:
    term = sp.Piecewise(
        (0, sp.Eq(_c, _k)),
        (_priors[_c], _margins[_c, _k] <= 0),
        (_priors[_c] * pair_variance / (pair_variance + _margins[_c, _k] ** 2), True),
    )
    return sp.Sum(term, (_k, 1, _K), (_c, 1, _K))


_PRIORS = Argument("priors", _priors, "class priors p_c (sum to 1)", ("K",))
_SIGMA = Argument("sigma", _sigma, "noise standard deviation in units of g~ (> 0)")
_EIGENVALUES = Argument(
    "eigenvalues", _eigenvalues, "eigenvalues lambda_cj >= 0 of each class covariance C_c of g~", ("K", "d")
)


def _registry() -> dict[str, Formula]:
    entries = [
        Formula(
            name="cantelli_term",
            expression=_cantelli(_margin, _variance),
            arguments=(
                Argument("margin", _margin, "margin m_ck = <mu_c, u_ck> (+ bias term), in units of g~"),
                Argument("variance", _variance, "variance bound V_c (or s_ck^2) in units of g~, >= 0"),
            ),
            theorem="Thm. 3.2",
            status=PUBLISHED,
            description="Cantelli's one-sided bound on one pairwise confusion P[score_k >= score_c | Y=c]",
            lhs=r"P\left[\langle u_{ck}, \tilde g(X)\rangle \le 0 \mid Y=c\right] \le",
        ),
        Formula(
            name="cantelli_bound_equal",
            expression=(_K - 1) * _cantelli(_margin, _variance),
            arguments=(
                Argument("margin", _margin, "common margin m of every pair (c, k), in units of g~"),
                Argument("variance", _variance, "common within-class variance V of every class, >= 0"),
                Argument("num_classes", _K, "number of classes K >= 2"),
            ),
            theorem="Thm. 3.2",
            status=PUBLISHED,
            description="the error bound sum_c p_c sum_{k != c} term when every pair has the same margin "
            "and every class the same variance (the priors then sum out)",
            lhs=r"P[\hat Y \ne Y] \le",
        ),
        Formula(
            name="cantelli_bound",
            expression=_cantelli_bound_expression(_class_variances[_c]),
            arguments=(
                Argument("margins", _margins, "(K, K) margins m_ck; the diagonal is ignored", ("K", "K")),
                Argument("variances", _class_variances, "(K,) within-class variances V_c of g~", ("K",)),
                _PRIORS,
            ),
            theorem="Thm. 3.2",
            status=PUBLISHED,
            description="error bound from class means and within-class variances (plain variant)",
            lhs=r"P[\hat Y \ne Y] \le",
        ),
        Formula(
            name="cantelli_bound_directional",
            expression=_cantelli_bound_expression(_pair_variances[_c, _k]),
            arguments=(
                Argument("margins", _margins, "(K, K) margins m_ck; the diagonal is ignored", ("K", "K")),
                Argument(
                    "pair_variances", _pair_variances, "(K, K) directional variances s_ck^2 = u_ck^T C_c u_ck",
                    ("K", "K"),
                ),
                _PRIORS,
            ),
            theorem="Thm. 3.2",
            status=PUBLISHED,
            description="directional tightening of the error bound: s_ck^2 replaces V_c",
            lhs=r"P[\hat Y \ne Y] \le",
        ),
        Formula(
            name="ib_trace_variance",
            expression=_variance / (2 * _sigma**2),
            arguments=(
                Argument("variance", _variance, "class-averaged within-class variance V = sum_c p_c Tr C_c of g~"),
                _SIGMA,
            ),
            theorem="Thm. 3.4",
            status=PUBLISHED,
            description="trace form of the information-bottleneck bound, in nats",
            lhs=r"I(Z;X) - I(Z;Y) \le",
        ),
        Formula(
            name="ib_trace",
            expression=sp.Sum(_priors[_c] * _eigenvalues[_c, _j], (_j, 1, _d), (_c, 1, _K)) / (2 * _sigma**2),
            arguments=(_EIGENVALUES, _SIGMA, _PRIORS),
            theorem="Thm. 3.4",
            status=PUBLISHED,
            description="trace form of the IB bound in the eigenvalues of the class covariances, in nats",
            lhs=r"I(Z;X) - I(Z;Y) \le",
        ),
        Formula(
            name="ib_logdet",
            expression=sp.Sum(
                _priors[_c] * sp.log(1 + _eigenvalues[_c, _j] / _sigma**2), (_j, 1, _d), (_c, 1, _K)
            )
            / 2,
            arguments=(_EIGENVALUES, _SIGMA, _PRIORS),
            theorem="Thm. 3.4",
            status=PUBLISHED,
            description="log-det form of the IB bound (exact for Gaussian classes), in nats",
            lhs=r"I(Z;X) - I(Z;Y) \le",
        ),
        Formula(
            name="fano",
            expression=-sp.Sum(_priors[_c] * sp.log(_priors[_c]), (_c, 1, _K))
            - _binary_entropy(_error)
            - _error * sp.log(_K - 1),
            arguments=(
                Argument("error", _error, "error P_e of the predictor, in (0, 1 - 1/K]"),
                Argument("priors", _priors, "class priors p_c > 0 (sum to 1)", ("K",)),
            ),
            theorem="Prop. 3.3",
            status=RECONSTRUCTED,
            description="Fano's lower bound on I(Z;Y) in nats, H(Y) - h_b(P_e) - P_e log(K-1)",
            lhs=r"I(Z;Y) \ge",
        ),
        Formula(
            name="fano_uniform",
            expression=sp.log(_K) - _binary_entropy(_error) - _error * sp.log(_K - 1),
            arguments=(
                Argument("num_classes", _K, "number of classes K >= 2 (uniform priors)"),
                Argument("error", _error, "error P_e of the predictor, in (0, 1 - 1/K]"),
            ),
            theorem="Prop. 3.3",
            status=RECONSTRUCTED,
            description="Fano's lower bound on I(Z;Y) in nats with uniform priors, log K - h_b(P_e) - P_e log(K-1)",
            lhs=r"I(Z;Y) \ge",
        ),
        Formula(
            name="heldout_variance_radius",
            expression=2 * sp.sqrt(sp.log(2 * _K / _delta) / (2 * sp.floor(_n / 2))),
            arguments=(
                Argument("n", _n, "held-out samples n_c of the class (>= 2)"),
                Argument("num_classes", _K, "number of classes K (union bound)"),
                Argument("delta", _delta, "failure probability in (0, 1)"),
            ),
            theorem="Thm. 4.1",
            status=RECONSTRUCTED,
            description="Hoeffding radius for the unbiased within-class variance of rescaled features "
            "on held-out data, all classes at once with probability 1 - delta",
            lhs=r"|\hat V_c - V_c| \le",
            latex_names={_n: "n_c"},
        ),
        Formula(
            name="uniform_variance_bound",
            expression=_rnc1 + _constant * _ratio / sp.sqrt(_n) + sp.sqrt(sp.log(_K / _delta) / _n),
            arguments=(
                Argument("rnc1_train", _rnc1, "within-class variance of rescaled features on the training set"),
                Argument("complexity_ratio", _ratio, "Pi(g) B_x / B_g"),
                Argument("n", _n, "per-class sample count n_c"),
                Argument("num_classes", _K, "number of classes K"),
                Argument("delta", _delta, "failure probability in (0, 1)"),
                Argument("constant", _constant, "the unrecovered constant C, explicit"),
            ),
            theorem="Thm. 4.1",
            status=RECONSTRUCTED,
            description="shape of the uniform (training-set) bound on the population within-class variance",
            lhs=r"V \lesssim",
            latex_names={_rnc1: r"\mathrm{RNC1}_{\mathrm{train}}", _ratio: r"\frac{\Pi(g) B_x}{B_g}", _n: "n_c"},
        ),
        Formula(
            name="fit_time",
            expression=sp.Max(0, sp.log(_initial_loss / _eps1)) / (_rate * _eta),
            arguments=(
                Argument("lr", _eta, "step size eta"),
                Argument("eps1", _eps1, "target training loss epsilon_1"),
                Argument("initial_loss", _initial_loss, "loss L_0 at the start"),
                Argument("rate", _rate, "linear convergence rate per unit step size"),
            ),
            theorem="Thm. 4.3",
            status=RECONSTRUCTED,
            description="steps to fit, tau_1 (rate published, exact form reconstructed); independent of lambda",
            lhs=r"\tau_1 \approx",
        ),
        Formula(
            name="collapse_time",
            expression=sp.Max(0, sp.log(_initial_variance / _eps2)) / (2 * _eta * _weight_decay),
            arguments=(
                Argument("lr", _eta, "step size eta"),
                Argument("weight_decay", _weight_decay, "weight decay lambda > 0"),
                Argument("eps2", _eps2, "target within-class variance epsilon_2"),
                Argument("initial_variance", _initial_variance, "within-class variance V_0 at the start"),
            ),
            theorem="Thm. 4.3",
            status=RECONSTRUCTED,
            description="steps for the within-class variance to collapse, tau_2 (rate published, exact "
            "form reconstructed)",
            lhs=r"\tau_2 \approx",
        ),
        Formula(
            name="predicted_onset",
            expression=_fit_time + _constant / (_eta * _weight_decay),
            arguments=(
                Argument("weight_decay", _weight_decay, "weight decay lambda > 0"),
                Argument("lr", _eta, "step size eta"),
                Argument("fit_time", _fit_time, "train-fit time t_fit in steps"),
                Argument("constant", _constant, "onset constant C"),
            ),
            theorem="Thm. 4.3",
            status=RECONSTRUCTED,
            description="predicted grokking onset t_fit + C / (eta lambda)",
            lhs=r"t_{\mathrm{grok}} \approx",
            latex_names={_fit_time: r"t_{\mathrm{fit}}"},
        ),
        Formula(
            name="ufm_constant",
            expression=sp.Max(0, sp.log(_initial_variance / _eps2)) / 2,
            arguments=(
                Argument("variance_at_fit", _initial_variance, "within-class variance V(t_fit)"),
                Argument("eps2", _eps2, "target within-class variance epsilon_2"),
            ),
            theorem="Thm. 4.3",
            status=RECONSTRUCTED,
            description="onset constant from the UFM argument",
            lhs=r"C =",
            latex_names={_initial_variance: r"V(t_{\mathrm{fit}})"},
        ),
        Formula(
            name="ufm_contraction_factor",
            expression=sp.Max(sp.Abs(1 - _eta * _weight_decay), sp.Abs(1 - _eta * (_norm**2 + _weight_decay))),
            arguments=(
                Argument("lr", _eta, "step size eta"),
                Argument("weight_decay", _weight_decay, "weight decay lambda"),
                Argument("classifier_norm", _norm, "spectral norm ||W||_2 of the classifier"),
            ),
            theorem="Thm. 4.3",
            status=RECONSTRUCTED,
            description="per-step contraction of same-class feature differences in the UFM",
            lhs=r"\frac{\|\delta(t+1)\|}{\|\delta(t)\|} \le",
            latex_names={_norm: r"\|W\|_2"},
        ),
        Formula(
            name="gradient_flow_imbalance",
            expression=sp.exp(-2 * _weight_decay * _time) * _initial_imbalance,
            arguments=(
                Argument("initial", _initial_imbalance, "an entry of the initial imbalance D(0)"),
                Argument("weight_decay", _weight_decay, "weight decay lambda"),
                Argument("time", _time, "gradient-flow time t"),
            ),
            theorem="Thm. 4.3",
            status=RECONSTRUCTED,
            description="imbalance W_L^T W_L - W_{L-1} W_{L-1}^T under gradient flow with weight decay",
            lhs=r"D(t) =",
            latex_names={_initial_imbalance: "D(0)"},
        ),
        Formula(
            name="balancedness_step",
            expression=(1 - _eta * _weight_decay) ** 2 * _imbalance
            + _eta**2 * (_grad_last.T * _grad_last - _grad_prev * _grad_prev.T),
            arguments=(
                Argument("imbalance", _imbalance, "(r, r) imbalance D(t)", ("r", "r"), matrix=True),
                Argument("grad_last", _grad_last, "gradient G_L of the unregularized loss", ("n_L", "r"), matrix=True),
                Argument("grad_prev", _grad_prev, "gradient G_{L-1}", ("r", "n_0"), matrix=True),
                Argument("lr", _eta, "step size eta"),
                Argument("weight_decay", _weight_decay, "weight decay lambda"),
            ),
            theorem="Thm. 4.3",
            status=RECONSTRUCTED,
            description="imbalance after one GD step with weight decay (exact when W_L^T G_L = G_{L-1} W_{L-1}^T)",
            lhs=r"D(t+1) =",
            latex_names={_grad_prev: "G_{L-1}"},
        ),
    ]
    sizes = {"K": _K, "d": _d}
    registry = {}
    for entry in entries:
        used = {size for argument in entry.arguments if not argument.matrix for size in argument.shape}
        object.__setattr__(entry, "sizes", {size: sizes[size] for size in sorted(used)})
        registry[entry.name] = entry
    return registry


EXPRESSIONS: dict[str, Formula] = _registry()


def names() -> list[str]:
    """Names of all registered formulas."""
    return list(EXPRESSIONS)


def formula(name: str) -> Formula:
    """The registered :class:`Formula` called ``name`` (``ValueError`` listing the names otherwise)."""
    try:
        return EXPRESSIONS[name]
    except KeyError:
        raise ValueError(f"unknown formula {name!r}; choose one of: {', '.join(EXPRESSIONS)}") from None


def latex(name: str, *, with_lhs: bool = False) -> str:
    """LaTeX of the formula ``name``; with ``with_lhs`` prefixed by what it equals or bounds."""
    entry = formula(name)
    body = sp.latex(entry.expression, symbol_names=dict(entry.latex_names))
    return f"{entry.lhs} {body}" if with_lhs and entry.lhs else body


def lambdify(name: str) -> Callable[..., Any]:
    """A numpy function evaluating the formula ``name``.

    Call it with the formula's arguments (see ``formula(name).arguments``) by keyword or in order.
    Numbers broadcast like numpy arrays; array arguments (shape ``("K",)``, ``("K", "K")``,
    ``("K", "d")``) are ordinary 0-based arrays and the sizes ``K``, ``d`` are read from them.
    Returns a float for scalar results.
    """
    entry = formula(name)
    size_symbols = list(entry.sizes.values())
    compiled = sp.lambdify(
        [argument.symbol for argument in entry.arguments] + size_symbols, entry.expression, modules="numpy"
    )
    order = [argument.name for argument in entry.arguments]

    def evaluate(*positional: Any, **keywords: Any) -> Any:
        if len(positional) > len(order):
            raise ValueError(f"{name} takes {len(order)} arguments ({', '.join(order)}), got {len(positional)}")
        values = dict(zip(order, positional))
        for key, value in keywords.items():
            if key not in order:
                raise ValueError(f"{name} has no argument {key!r}; its arguments are {', '.join(order)}")
            if key in values:
                raise ValueError(f"{name} got argument {key!r} twice")
            values[key] = value
        missing = [key for key in order if key not in values]
        if missing:
            raise ValueError(f"{name} is missing argument(s): {', '.join(missing)}")
        sizes: dict[str, int] = {}
        call = []
        for argument in entry.arguments:
            value = values[argument.name]
            if argument.matrix:
                call.append(as_array(argument.name, value, ndim=2))
            elif argument.shape:
                array = as_array(argument.name, value, ndim=len(argument.shape), finite=False)
                for axis, size in enumerate(argument.shape):
                    if sizes.setdefault(size, array.shape[axis]) != array.shape[axis]:
                        raise ValueError(
                            f"{argument.name} has length {array.shape[axis]} along axis {axis}, but {size} = "
                            f"{sizes[size]} from another argument"
                        )
                # the expression indexes from 1: put a NaN in front of every axis
                call.append(np.pad(array, [(1, 0)] * array.ndim, constant_values=np.nan))
            else:
                call.append(np.asarray(value, dtype=np.float64) if not isinstance(value, (int, float)) else value)
        call.extend(sizes[size] for size in entry.sizes)
        with np.errstate(all="ignore"):
            result = compiled(*call)
        result = np.asarray(result, dtype=np.float64)
        return float(result) if result.ndim == 0 else result

    evaluate.__name__ = f"lambdified_{name}"
    evaluate.__doc__ = f"{entry.description} ({entry.theorem}, {entry.status}). Arguments: {', '.join(order)}."
    return evaluate
