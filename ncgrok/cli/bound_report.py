"""Output and file input of ``ncgrok bound``: text or JSON (with LaTeX on request), and the ``.npz``
of class statistics a user names with ``--stats`` for Thm. 3.2 (``cantelli``) and Thm. 3.4 (``ib``)."""
from __future__ import annotations

import argparse
import json
import os
import zipfile
from typing import Any

import numpy as np

from ncgrok.files import json_safe
from ncgrok.theory import generalization, information
from ncgrok.theory._validation import as_array, as_priors, as_scalar


# ------------------------------------------------------------------------------------------------
# Output helpers


def latex_of(names: list[str]) -> dict[str, str]:
    from ncgrok.theory import symbolic  # sympy is imported only when LaTeX is asked for

    return {name: symbolic.latex(name, with_lhs=True) for name in names}


def emit(args: argparse.Namespace, report: dict[str, Any], lines: list[str], formulas: list[str]) -> None:
    """Print ``report`` as JSON (``--json``) or ``lines`` as text, with LaTeX on request."""
    latex = latex_of(formulas) if args.latex else None
    if args.json:
        if latex is not None:
            report["latex"] = latex
        print(json.dumps(json_safe(report), allow_nan=False))
        return
    print("\n".join(lines))
    if latex is not None:
        for name, text in latex.items():
            print(f"LaTeX ({name}): {text}")


def number(value: Any) -> str:
    return f"{float(value):.6g}"


def header(theorem: str, status: str, what: str) -> str:
    return f"{theorem} ({status}): {what}"


# ------------------------------------------------------------------------------------------------
# Input helpers


def load_npz(
    path: str, *, required: list[dict[str, str]], optional: dict[str, str]
) -> dict[str, np.ndarray]:
    """Read an .npz the user named; ``required`` lists alternatives (``{"a": shape, "b": shape}`` = a or b).

    Raises ``ValueError`` naming the path and what the file must contain when the file is missing,
    is not an .npz archive, cannot be read, or lacks a required array.
    """
    def describe(group: dict[str, str]) -> str:
        return " or ".join(f"{key} {shape}" for key, shape in group.items())

    contents = "; ".join(describe(group) for group in required)
    if optional:
        contents += "; optionally " + "; ".join(f"{key} {shape}" for key, shape in optional.items())
    if not os.path.isfile(path):
        raise ValueError(f"--stats {path}: no such file; it must be an .npz holding {contents}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"--stats {path}: not an .npz archive (np.savez output); it must hold {contents}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: np.asarray(archive[key]) for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"--stats {path}: not a readable .npz file ({reason}); it must hold {contents}") from None
    missing = [describe(group) for group in required if not any(key in arrays for key in group)]
    if missing:
        raise ValueError(
            f"--stats {path}: missing {'; '.join(missing)} (found: {', '.join(sorted(arrays)) or 'nothing'}); "
            f"it must hold {contents}"
        )
    return arrays





def cantelli_from_stats(args: argparse.Namespace) -> None:
    """``ncgrok bound cantelli --stats FILE``: Thm. 3.2 from class means, covariances or variances, W and b."""
    arrays = load_npz(
        args.stats,
        required=[{"means": "(K, p)"}, {"W": "(K, p)"}, {"covariances": "(K, p, p)", "variances": "(K,)"}],
        optional={"priors": "(K,)", "b": "(K,)"},
    )
    if "covariances" in arrays and "variances" in arrays:
        raise ValueError(f"--stats {args.stats}: holds both covariances and variances; keep one")
    if args.directional and "covariances" not in arrays:
        raise ValueError(f"--directional needs covariances in {args.stats}, which holds only variances")
    if "priors" in arrays and args.priors is not None:
        raise ValueError(f"--stats {args.stats} already holds priors; drop --priors")
    scale = as_scalar("--scale", args.scale, positive=True)
    try:
        means = as_array("means", arrays["means"], ndim=2)
        priors = arrays["priors"] if "priors" in arrays else (
            None if args.priors is None else as_priors(args.priors, means.shape[0], name="--priors")
        )
        result = generalization.cantelli_bound(
            means,
            arrays["W"],
            variances=arrays.get("variances"),
            covariances=arrays.get("covariances"),
            priors=priors,
            bias=arrays.get("b"),
            scale=scale,
            directional=args.directional,
            clipped=args.clipped,
            return_terms=True,
        )
    except ValueError as error:
        raise ValueError(f"--stats {args.stats}: {error} (weights are the key W, bias the key b)") from None
    num_classes = means.shape[0]
    margins = np.array(result.margins, dtype=float)
    np.fill_diagonal(margins, np.nan)  # not a competitor: reported as null
    report = {
        "command": "bound cantelli",
        "theorem": "Thm. 3.2",
        "status": "published",
        "inputs": {
            "stats": args.stats,
            "classes": num_classes,
            "features": means.shape[1],
            "keys": sorted(arrays),
            "priors": result.priors,
            "scale": scale,
            "clipped": bool(args.clipped),
            "directional": bool(args.directional),
        },
        "results": {
            "bound": result.bound,
            "class_sums": result.class_sums,
            "pair_terms": result.terms,
            "margins": margins,
            "pair_variances": result.pair_variances,
            "vacuous": result.bound >= 1.0,
        },
        "notes": "pair_terms[c][k]: class c against competitor k (diagonal 0); margins diagonal null; "
        "equal weight rows have margin null (-inf) and term 1",
    }
    lines = [
        header("Thm. 3.2", "published", f"error bound from class statistics in {args.stats}"),
        f"  K = {num_classes}, p = {means.shape[1]}, scale B_g = {number(scale)}, "
        f"{'directional s_ck^2' if args.directional else 'plain V_c'}{', clipped' if args.clipped else ''}",
        "  class  prior     sum_(k!=c) term",
    ]
    for c in range(num_classes):
        lines.append(f"  {c:5d}  {number(result.priors[c]):8s}  {number(result.class_sums[c])}")
    lines.append(f"  bound = {number(result.bound)}" + ("  (>= 1: vacuous)" if result.bound >= 1 else ""))
    name = "cantelli_bound_directional" if args.directional else "cantelli_bound"
    emit(args, report, lines, ["cantelli_term", name])


def ib_from_stats(args: argparse.Namespace, *, sigma: float, scale: float) -> None:
    """``ncgrok bound ib --stats FILE``: Thm. 3.4's trace and log-det bounds and the Gaussian value from class covariances."""
    if args.variance is not None:
        raise ValueError("give either --stats FILE or --variance, not both")
    arrays = load_npz(args.stats, required=[{"covariances": "(K, p, p)"}], optional={"priors": "(K,)"})
    if "priors" in arrays and args.priors is not None:
        raise ValueError(f"--stats {args.stats} already holds priors; drop --priors")
    try:
        covariances = as_array("covariances", arrays["covariances"], ndim=3) / scale**2
        if "priors" in arrays:
            priors = as_priors(arrays["priors"], covariances.shape[0])
        else:
            priors = as_priors(args.priors, covariances.shape[0], name="--priors")
        trace = information.ib_bound_trace(sigma=sigma, covariances=covariances, priors=priors)
        logdet = information.ib_bound_logdet(covariances, sigma=sigma, priors=priors)
        exact = information.gaussian_conditional_information(covariances, sigma=sigma, priors=priors)
    except ValueError as error:
        raise ValueError(f"--stats {args.stats}: {error}") from None
    report = {
        "command": "bound ib",
        "theorem": "Thm. 3.4",
        "status": "published",
        "units": "nats",
        "inputs": {"stats": args.stats, "sigma": sigma, "scale": scale, "classes": covariances.shape[0],
                   "features": covariances.shape[1], "priors": priors},
        "results": {"trace_bound": trace, "logdet_bound": logdet, "gaussian_exact": exact},
    }
    lines = [
        header("Thm. 3.4", "published", "I(Z;X) - I(Z;Y) = I(Z;X|Y) for Z = g(X) + B_g N(0, sigma^2 I), in nats"),
        f"  from {args.stats}: K = {covariances.shape[0]}, p = {covariances.shape[1]}, sigma = {number(sigma)}",
        f"  trace form   V / (2 sigma^2)                         = {number(trace)} nats",
        f"  log-det form (1/2) sum_c p_c log det(I + C_c/sigma^2) = {number(logdet)} nats",
        f"  exact value if every class is Gaussian               = {number(exact)} nats",
    ]
    emit(args, report, lines, ["ib_trace", "ib_logdet"])
