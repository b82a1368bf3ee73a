"""Figures of the UFM simulations (Thm. 4.3): trajectories, time-scale separation, tau2 scaling.

Every function takes computed results (or computes them, for :func:`make_figures`) and writes one
PNG with matplotlib's Agg backend (no display needed); each returns the path it wrote. Files are
written atomically (temporary file, then ``os.replace``).

:func:`make_figures` regenerates the committed figures in ``figures/``
(``ncgrok simulate figures --out figures/``):

* ``ufm_timescales.png``: relative training loss and RNC1 against the step for several weight
  decays (log axes): the loss falls at a time independent of ``lambda``; RNC1 falls only after
  about ``1/(eta lambda)`` steps -- the separation of time scales behind grokking.
* ``ufm_tau2_scaling.png``: measured ``tau2`` and ``tau2 - tau1`` against ``1/(eta lambda)``, log-log,
  with the prediction ``tau1 + log(RNC1(tau1)/eps2) / (2 eta lambda)`` and the fitted slope.

The Gaussian-mixture figures are generated as well (unless ``include_mixture=False``), through
``ncgrok.simulate.gmm.make_figures(out_dir)``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ncgrok.simulate.plotting import pyplot, save_png
from ncgrok.simulate.trajectories import TimeScales, auto_horizon, collapse_scaling, rnc1_column, sweep_ufm, time_scales
from ncgrok.simulate.ufm import UFMConfig, UFMResult, simulate_ufm
from ncgrok.theory.timescales import decoupled_decay

__all__ = [
    "plot_trajectory",
    "plot_timescale_separation",
    "plot_tau2_scaling",
    "make_figures",
    "FIGURE_WEIGHT_DECAYS",
    "FIGURE_SECOND_LR",
]

# Weight decays of the committed figures (one and a half decades at lr = 0.1), and the second
# learning rate of the scaling figure.
FIGURE_WEIGHT_DECAYS = (1e-3, 2e-3, 5e-3, 1e-2, 3e-2)
FIGURE_SECOND_LR = 0.2


def _save(figure: Any, path: str | os.PathLike) -> Path:
    return save_png(figure, path, dpi=120, bbox_inches="tight")


def _positive_steps(result: UFMResult) -> np.ndarray:
    return result["step"] > 0


def _describe(config: UFMConfig) -> str:
    counts = config.class_counts
    samples = f"n_c={counts[0]}" if len(set(counts)) == 1 else f"n_c={list(counts)}"
    return f"K={config.num_classes}, {samples}, p={config.feature_dim}, init {config.init_scale:g}"


def plot_trajectory(
    result: UFMResult, path: str | os.PathLike, *, scales: TimeScales | None = None
) -> Path:
    """One run: relative loss, RNC1, the within-class spread in the row / null space of ``W`` and
    the imbalance ``||W^T W - H H^T||_F`` against the step (log axes), with ``tau1``, ``tau2``
    (measured, solid) and the ``tau2`` prediction (dotted) marked."""
    plt = pyplot()
    config = result.config
    scales = time_scales(result) if scales is None else scales
    keep = _positive_steps(result)
    steps = result["step"][keep]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    left, right = axes
    left.plot(steps, result["loss_relative"][keep], label="loss / loss(0)", color="tab:blue")
    column = rnc1_column(scales.scale)
    left.plot(steps, result[column][keep], label=f"RNC1 ({scales.scale} scale)", color="tab:red")
    left.axhline(scales.eps1, color="tab:blue", lw=0.8, ls=":")
    left.axhline(scales.eps2, color="tab:red", lw=0.8, ls=":")
    right.plot(steps, _floor(result["spread_row"][keep]), label="spread in row space of W", color="tab:green")
    right.plot(steps, _floor(result["spread_null"][keep]), label="spread in null space of W", color="tab:purple")
    right.plot(steps, _floor(result["imbalance"][keep]), label="||W^T W - H H^T||_F", color="tab:gray")
    if config.weight_decay > 0 and math.isfinite(scales.tau1):
        start = float(np.interp(scales.tau1, result["step"], result["spread_null"]))
        grid = steps[steps >= scales.tau1]
        decay = decoupled_decay(config.lr, config.weight_decay) ** (2.0 * (grid - scales.tau1))
        right.plot(grid, start * decay, color="black", lw=0.8, ls="--", label="(1 - eta lambda)^(2(t - tau1))")
    for axis in axes:
        for value, style, label in (
            (scales.tau1, "-", "tau1"),
            (scales.tau2, "-", "tau2"),
            (scales.tau2_predicted, ":", "tau2 predicted"),
        ):
            if math.isfinite(value) and value > 0:
                axis.axvline(value, color="black", lw=0.7, ls=style, alpha=0.6)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(fontsize=8, loc="lower left")
    left.set_title("fit and collapse (vertical: tau1, tau2; dotted: predicted tau2)", fontsize=9)
    right.set_title("within-class spread split by the classifier's row / null space", fontsize=9)
    figure.suptitle(
        f"UFM, GD with lr={config.lr:g}, weight decay={config.weight_decay:g} ({_describe(config)})", fontsize=10
    )
    return _save(figure, path)


def _floor(values: np.ndarray) -> np.ndarray:
    """Values with exact zeros (or rounding-level negatives) hidden from a log axis."""
    values = np.asarray(values, dtype=float).copy()
    values[values <= 0] = np.nan
    return values


def plot_timescale_separation(results: Sequence[UFMResult], path: str | os.PathLike) -> Path:
    """Several weight decays: relative training loss (left) and RNC1 (right) against the step,
    log axes, with each run's measured ``tau1`` / ``tau2`` marked."""
    plt = pyplot()
    if not results:
        raise ValueError("results must hold at least one UFMResult")
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(results)))
    for result, colour in zip(results, colours):
        config = result.config
        scales = time_scales(result)
        keep = _positive_steps(result)
        steps = result["step"][keep]
        label = f"lambda={config.weight_decay:g}"
        left.plot(steps, result["loss_relative"][keep], color=colour, label=label)
        right.plot(steps, result[rnc1_column(scales.scale)][keep], color=colour, label=label)
        if math.isfinite(scales.tau1):
            left.plot([scales.tau1], [scales.eps1], "o", color=colour, ms=4)
        if math.isfinite(scales.tau2):
            right.plot([scales.tau2], [scales.eps2], "o", color=colour, ms=4)
    first = results[0].config
    # Below ~1e-6 eps2 the curves only continue the same geometric decay down to float64 rounding.
    lowest = min(float(np.nanmin(result[rnc1_column(first.scale)])) for result in results)
    highest = max(float(np.nanmax(result[rnc1_column(first.scale)])) for result in results)
    right.set_ylim(max(lowest / 2, first.eps2 * 1e-6), highest * 3)
    left.axhline(first.eps1, color="black", lw=0.7, ls=":")
    right.axhline(first.eps2, color="black", lw=0.7, ls=":")
    left.set_ylabel("training loss / initial loss")
    right.set_ylabel(f"RNC1 ({first.scale} scale)")
    left.set_title(f"fit: tau1 (dots, loss <= {first.eps1:g}) does not depend on lambda", fontsize=9)
    right.set_title(f"collapse: tau2 (dots, RNC1 <= {first.eps2:g}) grows like 1/(eta lambda)", fontsize=9)
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(fontsize=8, loc="lower left")
    figure.suptitle(
        f"Time-scale separation in the unconstrained features model (Thm. 4.3), GD lr={first.lr:g}, "
        f"{_describe(first)}",
        fontsize=10,
    )
    return _save(figure, path)


def plot_tau2_scaling(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Measured ``tau2`` and ``tau2 - tau1`` against ``1/(eta lambda)`` (log-log) for sweep rows
    (from :func:`simulate.trajectories.sweep_ufm`), with the predicted ``tau2`` as a line and the
    fitted log-log slope of ``tau2 - tau1`` against ``lambda`` per learning rate in the legend."""
    plt = pyplot()
    rows = [row for row in rows if math.isfinite(row["tau2"])]
    if not rows:
        raise ValueError("no sweep row reached eps2; nothing to plot (lengthen the runs)")
    figure, axis = plt.subplots(figsize=(6.4, 4.8))
    rates = sorted({row["lr"] for row in rows})
    markers = "osD^v<>"
    for index, lr in enumerate(rates):
        chosen = sorted((row for row in rows if row["lr"] == lr), key=lambda row: row["weight_decay"], reverse=True)
        x = np.array([1.0 / (row["lr"] * row["weight_decay"]) for row in chosen])
        marker = markers[index % len(markers)]
        try:
            fit = collapse_scaling(chosen, quantity="delay", lr=lr)
            slope = f", slope of tau2-tau1 vs lambda {fit.slope:+.3f}"
        except ValueError:
            slope = ""
        axis.plot(x, [row["tau2"] for row in chosen], marker, ms=8, mfc="none", mew=1.5, color=f"C{index}",
                  label=f"tau2 measured, lr={lr:g}{slope}")
        axis.plot(x, [row["delay"] for row in chosen], "x", ms=5, color=f"C{index}",
                  label=f"tau2 - tau1 measured, lr={lr:g}")
        axis.plot(x, [row["tau2_predicted"] for row in chosen], "-", lw=1, color=f"C{index}",
                  label=f"predicted tau1 + log(RNC1(tau1)/eps2) / (2 eta lambda), lr={lr:g}")
    all_x = np.array([1.0 / (row["lr"] * row["weight_decay"]) for row in rows])
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlim(all_x.min() / 1.5, all_x.max() * 1.5)
    axis.set_xlabel("1 / (eta lambda)")
    axis.set_ylabel("steps")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")
    axis.set_title(
        f"UFM collapse time vs weight decay (Thm. 4.3; RNC1 <= {rows[0]['eps2']:g}, {rows[0]['scale']} scale)",
        fontsize=9,
    )
    return _save(figure, path)


def make_figures(
    out_dir: str | os.PathLike = "figures",
    *,
    config: UFMConfig | None = None,
    weight_decays: Sequence[float] = FIGURE_WEIGHT_DECAYS,
    second_lr: float | None = FIGURE_SECOND_LR,
    progress: Callable[[str], None] | None = None,
    include_mixture: bool = True,
) -> list[Path]:
    """Regenerate the UFM figures (and, unless ``include_mixture=False``, the Gaussian-mixture ones) in ``out_dir``.

    ``config`` (default :class:`UFMConfig`, ``lr = 0.1``) fixes everything but the weight decay. One
    full trajectory per weight decay, all on a common horizon (the predicted collapse time of the
    smallest weight decay counted from ``RNC1 = 1``), feeds both figures; the scaling figure also
    shows a sweep at ``second_lr`` (``None`` to skip) to show that only ``eta * lambda`` matters.
    ``progress(message)`` reports each stage. Returns the paths written.
    """
    base = UFMConfig() if config is None else config
    if not weight_decays:
        raise ValueError("weight_decays must hold at least one value")
    out_dir = Path(out_dir)
    report = progress or (lambda message: None)
    horizon = auto_horizon(base.replace(weight_decay=min(weight_decays)), margin=1.0)
    results = []
    for decay in weight_decays:
        report(f"trajectory for weight decay {decay:g} ({horizon} steps)")
        results.append(simulate_ufm(base.replace(weight_decay=decay, steps=horizon)))
    rows = [time_scales(result).to_dict() for result in results]
    if second_lr is not None and second_lr != base.lr:
        report(f"sweep at lr {second_lr:g}")
        rows.extend(sweep_ufm(base, weight_decays=list(weight_decays), lrs=[second_lr]))
    written = [
        plot_timescale_separation(results, out_dir / "ufm_timescales.png"),
        plot_tau2_scaling(rows, out_dir / "ufm_tau2_scaling.png"),
    ]
    report(f"wrote {written[0]} and {written[1]}")
    if include_mixture:
        written.extend(_mixture_figures(out_dir, report))
    return written


def _mixture_figures(out_dir: Path, report: Callable[[str], None]) -> list[Path]:
    """The Gaussian-mixture figures, ``ncgrok.simulate.gmm.make_figures(out_dir)``; returns the paths written."""
    from ncgrok.simulate import gmm  # lazy: the UFM figures alone do not need it

    report("Gaussian-mixture figures (ncgrok.simulate.gmm.make_figures)")
    return [Path(path) for path in gmm.make_figures(out_dir)]
