"""``ncgrok bound``: evaluate the theory's closed-form bounds from the command line.

Subcommands (each prints human-readable lines, or one JSON object with ``--json``; ``--latex`` adds
the LaTeX of the formula used):

* ``cantelli``      Thm. 3.2 (published)      error bound from within-class variance
* ``ib``            Thm. 3.4 (published)      information-bottleneck bound, nats
* ``fano``          Prop. 3.3 (reconstructed) Fano lower bound on I(Z;Y), nats
* ``concentration`` Thm. 4.1 (reconstructed)  held-out radius for the within-class variance
* ``timescales``    Thm. 4.3 (rates published, exact form reconstructed) tau1, tau2

User mistakes raise ``ValueError`` (``ncgrok.main`` prints one line and exits with status 2). Output
and the ``--stats`` file route live in :mod:`ncgrok.cli.bound_report`; ``ncgrok.theory`` reads no files.
"""
from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from ncgrok.cli import options
from ncgrok.cli.bound_report import cantelli_from_stats, emit, header, ib_from_stats, number
from ncgrok.theory import concentration, generalization, information, timescales
from ncgrok.theory._validation import as_count, as_priors, as_scalar

_ADAMW_NOTE = (
    "AdamW: only decoupled weight decay's (1 - eta lambda) factor is exact there; these times are then "
    "a prediction, not a consequence of Thm. 4.3"
)


def _priors_option(args: argparse.Namespace, num_classes: int) -> np.ndarray:
    return as_priors(args.priors, num_classes, name="--priors")


def _classes(value: Any) -> int:
    return as_count("--classes", value, minimum=2)


# ------------------------------------------------------------------------------------------------
# cantelli (Thm. 3.2)


def _cantelli(args: argparse.Namespace) -> None:
    scalar_given = [name for name in ("margin", "variance", "classes") if getattr(args, name) is not None]
    if args.stats is not None:
        if scalar_given:
            raise ValueError("give either --stats FILE or --margin/--variance/--classes, not both")
        return cantelli_from_stats(args)
    if len(scalar_given) < 3:
        raise ValueError("cantelli needs --margin, --variance and --classes (or --stats FILE.npz)")
    if args.directional:
        raise ValueError("--directional needs per-class covariances: use --stats FILE.npz holding covariances")
    scale = as_scalar("--scale", args.scale, positive=True)
    margin = as_scalar("--margin", args.margin) / scale
    variance = as_scalar("--variance", args.variance, nonnegative=True) / scale**2
    num_classes = _classes(args.classes)
    priors = _priors_option(args, num_classes)
    term = generalization.cantelli_term(margin, variance)
    class_sum = (num_classes - 1) * term
    if args.clipped:
        class_sum = min(class_sum, 1.0)
    bound = float(class_sum)  # sum_c p_c * class_sum, and the priors sum to 1
    report = {
        "command": "bound cantelli",
        "theorem": "Thm. 3.2",
        "status": "published",
        "inputs": {
            "margin": args.margin,
            "variance": args.variance,
            "classes": num_classes,
            "priors": priors,
            "scale": scale,
            "clipped": bool(args.clipped),
            "directional": False,
        },
        "results": {
            "rescaled_margin": margin,
            "rescaled_variance": variance,
            "pair_term": term,
            "class_sum": class_sum,
            "bound": bound,
            "vacuous": bound >= 1.0,
        },
    }
    lines = [
        header("Thm. 3.2", "published", "error bound from within-class variance (every class: same margin and variance)"),
        f"  margin m = {number(margin)}, variance V = {number(variance)} (units of g~ = g / {number(scale)}), K = {num_classes}",
        f"  per-pair Cantelli term (1 + max(m,0)^2/V)^-1 = {number(term)}",
        f"  bound sum_c p_c sum_(k!=c) term{' (class sums capped at 1)' if args.clipped else ''} = {number(bound)}",
    ]
    if bound >= 1.0:
        lines.append("  (the bound is >= 1: vacuous)")
    emit(args, report, lines, ["cantelli_term", "cantelli_bound_equal"])


# ------------------------------------------------------------------------------------------------
# ib (Thm. 3.4)


def _ib(args: argparse.Namespace) -> None:
    sigma = as_scalar("--sigma", args.sigma, positive=True)
    scale = as_scalar("--scale", args.scale, positive=True)
    if args.stats is not None:
        return ib_from_stats(args, sigma=sigma, scale=scale)
    if args.variance is None:
        raise ValueError("ib needs --variance V (class-averaged within-class variance) or --stats FILE.npz")
    if args.priors is not None:
        raise ValueError("--priors only applies with --stats (--variance is already class-averaged)")
    variance = as_scalar("--variance", args.variance, nonnegative=True) / scale**2
    trace = information.ib_bound_trace(sigma=sigma, variances=[variance])
    report = {
        "command": "bound ib",
        "theorem": "Thm. 3.4",
        "status": "published",
        "units": "nats",
        "inputs": {"variance": args.variance, "sigma": sigma, "scale": scale},
        "results": {"rescaled_variance": variance, "trace_bound": trace},
    }
    lines = [
        header("Thm. 3.4", "published", "I(Z;X) - I(Z;Y) = I(Z;X|Y) for Z = g(X) + B_g N(0, sigma^2 I)"),
        f"  V = {number(variance)} (units of g~), sigma = {number(sigma)}",
        f"  trace form V / (2 sigma^2) = {number(trace)} nats",
    ]
    emit(args, report, lines, ["ib_trace_variance"])


# ------------------------------------------------------------------------------------------------
# fano (Prop. 3.3)


def _fano(args: argparse.Namespace) -> None:
    num_classes = _classes(args.classes)
    error = as_scalar("--error", args.error, closed_unit=True)
    priors = _priors_option(args, num_classes)
    lower = information.fano_information_lower_bound(num_classes=num_classes, error=error, priors=priors)
    results: dict[str, Any] = {"information_lower_bound": lower, "label_entropy": float(-np.sum(
        priors[priors > 0] * np.log(priors[priors > 0])))}
    lines = [
        header("Prop. 3.3", "reconstructed", "Fano lower bound H(Y) - h_b(P_e) - P_e log(K-1), in nats"),
        f"  K = {num_classes}, P_e = {number(error)}{', uniform priors' if args.priors is None else ''}",
        f"  I(Z;Y) >= {number(lower)} nats (so I(Z;X) >= this too, by data processing)",
    ]
    if args.initial_information is not None:
        initial = as_scalar("--initial-information", args.initial_information, nonnegative=True)
        rise = information.required_information_rise(
            initial_information=initial, num_classes=num_classes, error=error, priors=priors
        )
        results["required_rise"] = rise
        lines.append(f"  required rise from I_0 = {number(initial)} nats: {number(rise)} nats")
    report = {
        "command": "bound fano",
        "theorem": "Prop. 3.3",
        "status": "reconstructed",
        "units": "nats",
        "inputs": {"classes": num_classes, "error": error, "priors": priors,
                   "initial_information": args.initial_information},
        "results": results,
    }
    emit(args, report, lines, ["fano_uniform" if args.priors is None else "fano"])


# ------------------------------------------------------------------------------------------------
# concentration (Thm. 4.1)


def _concentration(args: argparse.Namespace) -> None:
    counts = [as_count("--n", value, minimum=2) for value in args.n]
    delta = as_scalar("--delta", args.delta, open_unit=True)
    if len(counts) == 1:
        if args.classes is None:
            raise ValueError("concentration needs --classes K with a single --n (or one --n per class)")
        num_classes = _classes(args.classes)
        radius: Any = concentration.heldout_variance_radius(counts[0], num_classes=num_classes, delta=delta)
    else:
        num_classes = _classes(args.classes if args.classes is not None else len(counts))
        if num_classes != len(counts):
            raise ValueError(f"--classes {num_classes} does not match the {len(counts)} per-class counts given to --n")
        radius = concentration.heldout_variance_radius(counts, delta=delta)
    results: dict[str, Any] = {"radius": radius}
    lines = [
        header("Thm. 4.1", "reconstructed", "held-out radius for the within-class variance of rescaled features"),
        f"  with probability >= 1 - {number(delta)}, for all K = {num_classes} classes at once,",
        "  |V^_c - V_c| <= 2 sqrt(log(2K/delta) / (2 floor(n_c/2)))  (g fixed, held-out data, ||g~|| <= 1)",
    ]
    if len(counts) == 1:
        lines.append(f"  n_c = {counts[0]}: radius = {number(radius)}")
    else:
        lines.extend(f"  class {c}: n_c = {n}: radius = {number(r)}" for c, (n, r) in enumerate(zip(counts, radius)))
    formulas = ["heldout_variance_radius"]
    shape_options = (args.rnc1_train, args.complexity_ratio, args.constant)
    if any(option is not None for option in shape_options):
        if any(option is None for option in shape_options):
            raise ValueError("the uniform bound shape needs all of --rnc1-train, --complexity-ratio and --constant")
        shape = concentration.uniform_variance_bound(
            rnc1_train=args.rnc1_train,
            complexity_ratio=args.complexity_ratio,
            n=np.array(counts) if len(counts) > 1 else counts[0],
            num_classes=num_classes,
            delta=delta,
            constant=args.constant,
        )
        results["uniform_bound_shape"] = shape
        lines.append(
            "  uniform (training-set) bound SHAPE, constant C explicit: "
            "RNC1_train + C ratio / sqrt(n_c) + sqrt(log(K/delta)/n_c) = "
            + (number(shape) if np.ndim(shape) == 0 else ", ".join(number(v) for v in shape))
        )
        formulas.append("uniform_variance_bound")
    report = {
        "command": "bound concentration",
        "theorem": "Thm. 4.1",
        "status": "reconstructed",
        "inputs": {"n": counts if len(counts) > 1 else counts[0], "classes": num_classes, "delta": delta,
                   "rnc1_train": args.rnc1_train, "complexity_ratio": args.complexity_ratio,
                   "constant": args.constant},
        "results": results,
    }
    emit(args, report, lines, formulas)


# ------------------------------------------------------------------------------------------------
# timescales (Thm. 4.3)


def _timescales(args: argparse.Namespace) -> None:
    for option in ("lr", "weight_decay", "eps1", "eps2", "initial_loss", "initial_variance", "rate"):
        as_scalar("--" + option.replace("_", "-"), getattr(args, option), positive=True)
    tau1 = timescales.fit_time(lr=args.lr, eps1=args.eps1, initial_loss=args.initial_loss, rate=args.rate)
    tau2 = timescales.collapse_time(
        lr=args.lr, weight_decay=args.weight_decay, eps2=args.eps2, initial_variance=args.initial_variance
    )
    ratio = tau2 / tau1 if tau1 > 0 else math.inf
    onset = tau1 + tau2
    report = {
        "command": "bound timescales",
        "theorem": "Thm. 4.3",
        "status": "rates published, exact form reconstructed",
        "inputs": {"lr": args.lr, "weight_decay": args.weight_decay, "eps1": args.eps1, "eps2": args.eps2,
                   "initial_loss": args.initial_loss, "initial_variance": args.initial_variance, "rate": args.rate},
        "results": {"tau1": tau1, "tau2": tau2, "ratio": ratio, "predicted_onset": onset},
        "notes": "ratio is null when tau1 = 0. predicted_onset = tau1 + tau2 = t_fit + C/(eta lambda) with "
        "C = (1/2) log(V0/eps2). " + _ADAMW_NOTE,
    }
    lines = [
        header("Thm. 4.3", "rates published, exact form reconstructed", "time scales of fitting and collapse (GD steps)"),
        f"  tau1 = log(L0/eps1) / (rate eta)      = {number(tau1)} steps (independent of weight decay)",
        f"  tau2 = log(V0/eps2) / (2 eta lambda)  = {number(tau2)} steps after fitting",
        f"  tau2 / tau1 = {number(ratio) if math.isfinite(ratio) else 'inf (already fitted)'}",
        f"  predicted onset tau1 + tau2 = {number(onset)} steps",
        f"  note: {_ADAMW_NOTE}",
    ]
    emit(args, report, lines, ["fit_time", "collapse_time", "predicted_onset"])


# ------------------------------------------------------------------------------------------------
# Parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object (inputs echoed, every number)")
    parser.add_argument("--latex", action="store_true", help="also print the LaTeX of the formula(s) used")


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ncgrok bound`` and its subcommands."""
    parser = subparsers.add_parser(
        "bound",
        help="evaluate the theory's bounds and time scales (Thm. 3.2, 3.4, Prop. 3.3, Thm. 4.1, 4.3)",
        description=(
            "Closed-form results of Sakamoto & Sato (arXiv:2509.20829). Each subcommand says which result "
            "it evaluates and its status: 'published' is the paper's formula; 'reconstructed' is a correct "
            "derivation with the paper's shape whose exact constants were not recovered."
        ),
    )
    parser.set_defaults(func=lambda args: _print_help(parser))
    commands = parser.add_subparsers(dest="bound_command", metavar="BOUND")

    cantelli = commands.add_parser(
        "cantelli",
        help="Thm. 3.2 (published): error bound from within-class variance",
        description=(
            "Thm. 3.2 (published). P[error] <= sum_c p_c sum_(k!=c) (1 + max(m_ck,0)^2 / V_c)^-1, from the "
            "class means, the within-class variances and the last layer (Cantelli's inequality plus a union "
            "bound). Either give one margin and variance shared by every class (--margin --variance --classes; "
            "the bound is then sum_c p_c (K-1) term) or --stats FILE.npz holding means (K,p), W (K,p), "
            "covariances (K,p,p) or variances (K,), and optionally priors (K,) and b (K,)."
        ),
    )
    cantelli.add_argument("--margin", type=options.finite_number, help="margin m shared by every pair (units of g, see --scale)")
    cantelli.add_argument("--variance", type=options.non_negative_number, help="within-class variance V shared by every class (>= 0)")
    cantelli.add_argument("--classes", type=options.count(2), help="number of classes K >= 2")
    cantelli.add_argument("--priors", type=options.fraction, nargs="+", metavar="P", help="K class priors (default uniform)")
    cantelli.add_argument("--stats", type=options.path_text, metavar="FILE.npz", help="class statistics: means, W, covariances or variances, "
                          "optional priors, b")
    cantelli.add_argument("--directional", action="store_true",
                          help="use s_ck^2 = u_ck^T C_c u_ck instead of V_c (needs covariances; never looser)")
    cantelli.add_argument("--clipped", action="store_true", help="cap each class's inner sum at 1 (never looser)")
    cantelli.add_argument("--scale", type=options.positive_number, default=1.0,
                          help="B_g: statistics are of g and are rescaled to g~ = g / B_g (default 1: already g~)")
    _common(cantelli)
    cantelli.set_defaults(func=_cantelli)

    ib = commands.add_parser(
        "ib",
        help="Thm. 3.4 (published): information-bottleneck bound V / (2 sigma^2), in nats",
        description=(
            "Thm. 3.4 (published). For Z = g(X) + B_g N(0, sigma^2 I): I(Z;X) - I(Z;Y) <= (1/2) sum_c p_c "
            "log det(I + C_c/sigma^2) <= V / (2 sigma^2), in nats. --variance gives the trace form; --stats "
            "FILE.npz holding covariances (K,p,p) and optionally priors (K,) gives the trace form, the log-det "
            "form and the exact value when the classes are Gaussian."
        ),
    )
    ib.add_argument("--variance", type=options.non_negative_number, help="class-averaged within-class variance V of g~ (>= 0)")
    ib.add_argument("--sigma", type=options.positive_number, required=True, help="noise standard deviation in units of g~ (> 0)")
    ib.add_argument("--stats", type=options.path_text, metavar="FILE.npz", help="per-class covariances (K,p,p), optional priors (K,)")
    ib.add_argument("--priors", type=options.fraction, nargs="+", metavar="P", help="K class priors with --stats (default uniform)")
    ib.add_argument("--scale", type=options.positive_number, default=1.0, help="B_g: divide variances/covariances by B_g^2 (default 1)")
    _common(ib)
    ib.set_defaults(func=_ib)

    fano = commands.add_parser(
        "fano",
        help="Prop. 3.3 (reconstructed): Fano lower bound on I(Z;Y), in nats",
        description=(
            "Prop. 3.3 (reconstructed: the paper's fitting-phase statement, encoded through Fano's inequality). "
            "Any predictor of Y from Z with error P_e needs I(Z;Y) >= H(Y) - h_b(P_e) - P_e log(K-1) nats, and "
            "I(Z;X) >= I(Z;Y). With --initial-information I0, prints the rise both informations need."
        ),
    )
    fano.add_argument("--classes", type=options.count(2), required=True, help="number of classes K >= 2")
    fano.add_argument("--error", type=options.fraction, required=True, help="error P_e in [0, 1 - 1/K]")
    fano.add_argument("--priors", type=options.fraction, nargs="+", metavar="P", help="K class priors (default uniform)")
    fano.add_argument("--initial-information", type=options.non_negative_number, help="I(Z_0;X) at initialization, nats (>= 0)")
    _common(fano)
    fano.set_defaults(func=_fano)

    conc = commands.add_parser(
        "concentration",
        help="Thm. 4.1 (reconstructed): held-out radius 2 sqrt(log(2K/delta) / (2 floor(n/2)))",
        description=(
            "Thm. 4.1 (reconstructed; the held-out radius is a rigorous Hoeffding bound derived here, the "
            "paper's constants were not recovered). For g fixed and n_c held-out samples of rescaled features "
            "(||g~|| <= 1), with probability >= 1 - delta for all K classes at once, the unbiased within-class "
            "variance is within 2 sqrt(log(2K/delta) / (2 floor(n_c/2))) of its population value. With "
            "--rnc1-train, --complexity-ratio and --constant also prints the uniform bound SHAPE "
            "RNC1_train + C ratio/sqrt(n_c) + sqrt(log(K/delta)/n_c) (C is explicit: not a guarantee)."
        ),
    )
    conc.add_argument("--n", type=options.count(2), nargs="+", required=True,
                      help="held-out samples per class (one number, or one per class), each >= 2")
    conc.add_argument("--classes", type=options.count(2), help="number of classes K >= 2 (default: the number of --n values)")
    conc.add_argument("--delta", type=options.probability, required=True, help="failure probability in (0, 1)")
    conc.add_argument("--rnc1-train", type=options.non_negative_number, help="training within-class variance of g~ (uniform shape)")
    conc.add_argument("--complexity-ratio", type=options.non_negative_number, help="Pi(g) B_x / B_g (uniform shape)")
    conc.add_argument("--constant", type=options.non_negative_number, help="explicit constant C (uniform shape)")
    _common(conc)
    conc.set_defaults(func=_concentration)

    times = commands.add_parser(
        "timescales",
        help="Thm. 4.3 (rates published, exact form reconstructed): tau1, tau2 and their ratio",
        description=(
            "Thm. 4.3 (rates published, exact form reconstructed). GD steps to fit, tau1 = log(L0/eps1) / "
            "(rate eta), independent of weight decay, and further steps for the within-class variance to reach "
            "eps2, tau2 = log(V0/eps2) / (2 eta lambda); their ratio; predicted onset tau1 + tau2. "
            + _ADAMW_NOTE + "."
        ),
    )
    times.add_argument("--lr", type=options.positive_number, required=True, help="step size eta (> 0)")
    times.add_argument("--weight-decay", type=options.positive_number, required=True, help="weight decay lambda (> 0)")
    times.add_argument("--eps1", type=options.positive_number, required=True, help="target training loss (> 0)")
    times.add_argument("--eps2", type=options.positive_number, required=True, help="target within-class variance (> 0)")
    times.add_argument("--initial-loss", type=options.positive_number, default=1.0, help="loss L0 at the start (default 1)")
    times.add_argument("--initial-variance", type=options.positive_number, default=1.0,
                       help="within-class variance V0 when fitting ends (default 1)")
    times.add_argument("--rate", type=options.positive_number, default=1.0, help="loss contraction rate per unit step size (default 1)")
    _common(times)
    times.set_defaults(func=_timescales)
