"""Figures of a sweep directory in the style of the paper's Figs. 2-4, the onset law and bound checks.

Sakamoto & Sato (arXiv:2509.20829). Every function takes already computed data and a path, writes
the figure with matplotlib's Agg backend (no display) atomically (temporary file, then
``os.replace``, with the umask's permissions) and returns the paths it wrote; nothing here prints.
A path's suffix chooses the format (``.png`` when it has none); ``formats=("png", "pdf")`` writes one
file per format instead.

* :func:`dynamics_figure` (Fig. 3): test (solid) and train (dashed) accuracy, RNC1 (log y) and NC2
  against the step (log x, from step 1), one colour per weight decay, mean over seeds with a band.
* :func:`information_figure` (Fig. 4): ``I(Z;X) - I(Z;Y)``, ``nHSIC(Z;X) - nHSIC(Z;Y)`` and RNC1
  against the step; beside them the Thm. 3.4 upper bounds when they were logged.
* :func:`bound_figure`: R1 (Thm. 3.2) Cantelli bound against the test error, and R4 (Thm. 4.1) the
  held-out population estimate with its radius against the training RNC1, along each run.
* :func:`margin_figure` (Fig. 2): signed distances of training and unseen examples of a class pair
  to the last layer's pairwise boundary at two snapshot steps.
* :func:`onset_figure`: observed ``t_grok - t_fit`` against the weight decay on log-log axes, the
  fitted slope, and the calibrated R6 prediction ``C / (eta lambda)`` (slope ``-1``).
* :func:`make_figures`: all of the above for one sweep directory (``ncgrok figures``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ncgrok.empirical.analysis import (
    IB_BOUND_COLUMNS,
    INFORMATION_COLUMNS,
    BoundCheck,
    MarginData,
    OnsetAnalysis,
    Run,
    analyze_onsets,
    check_bounds,
    group_runs,
    has_columns,
    load_sweep,
    margin_data,
    seed_band,
    snapshot_steps,
)
from ncgrok.files import atomic_savefig

__all__ = [
    "FORMATS",
    "PAPER",
    "dynamics_figure",
    "information_figure",
    "bound_figure",
    "margin_figure",
    "onset_figure",
    "FigureReport",
    "make_figures",
]

FORMATS = ("png", "pdf", "svg")
PAPER = "Sakamoto & Sato, arXiv:2509.20829"
_ADAMW_FOOTNOTE = (
    "AdamW: the 1/(\u03b7\u03bb) law is exact for decoupled decay's shrink factor (1 \u2212 \u03b7\u03bb) per step; "
    "the balancedness identities behind Thm. 4.3 are not exact under Adam's preconditioning."
)


# ---------------------------------------------------------------------------------------------
# Saving


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _targets(path: str | os.PathLike, formats: Sequence[str] | None) -> list[Path]:
    path = Path(path)
    if formats is None:
        suffix = path.suffix.lower().lstrip(".")
        if not suffix:
            return [path.with_suffix(".png")]
        if suffix not in FORMATS:
            raise ValueError(f"figure path {path} has suffix .{suffix}; use one of {', '.join('.' + f for f in FORMATS)}")
        return [path]
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty list from {FORMATS}, got {formats}")
    stem = path.with_suffix("") if path.suffix.lower().lstrip(".") in FORMATS else path
    return [stem.parent / f"{stem.name}.{f}" for f in dict.fromkeys(formats)]


def _save(figure: Any, path: str | os.PathLike, formats: Sequence[str] | None) -> list[Path]:
    written = []
    try:
        for target in _targets(path, formats):
            written.append(atomic_savefig(figure, target, dpi=130, format=target.suffix.lstrip(".").lower(),
                                          bbox_inches="tight"))
    finally:
        _pyplot().close(figure)
    return written


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _colours(count: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["plasma"]
    if count == 1:
        return [cmap(0.1)]
    return [cmap(0.05 + 0.8 * i / (count - 1)) for i in range(count)]


def _lambda_label(weight_decay: float) -> str:
    return f"\u03bb = {weight_decay:g}"


def _band_text(band: str) -> str:
    return "band = min\u2013max over seeds" if band == "minmax" else "band = \u00b1 1 std over seeds"


def _plot_band(ax: Any, runs: Sequence[Run], column: str, *, colour: Any, style: str = "-", band: str = "minmax",
               positive: bool = False, transform: Callable[[Run], np.ndarray] | None = None,
               alpha: float = 0.18, label: str | None = None) -> bool:
    """Mean over seeds (line) with a band, on steps >= 1; returns whether anything was drawn."""
    curve = seed_band(runs, column, band=band, transform=transform)
    keep = (curve.steps >= 1) & np.isfinite(curve.mean)
    if positive:
        keep &= curve.mean > 0
    if not np.any(keep):
        return False
    steps, mean = curve.steps[keep], curve.mean[keep]
    low, high = curve.low[keep], curve.high[keep]
    if positive:
        floor = mean.min() * 1e-3
        low = np.maximum(low, floor)
    ax.plot(steps, mean, style, color=colour, lw=1.6, label=label)
    if np.any(curve.count[keep] > 1):
        ax.fill_between(steps, low, high, color=colour, alpha=alpha, lw=0)
    return True


def _single_lr(runs: Sequence[Run]) -> float:
    lrs = sorted({run.lr for run in runs})
    if len(lrs) != 1:
        raise ValueError(f"pass the runs of one learning rate per figure, got learning rates {lrs}")
    return lrs[0]


def _optimizers(runs: Sequence[Run]) -> str:
    names = sorted({run.optimizer for run in runs})
    return "/".join({"adamw": "AdamW", "sgd": "SGD"}.get(name, name) for name in names)


def _mean_onsets(onsets: OnsetAnalysis | None, lr: float) -> dict[float, float]:
    if onsets is None:
        return {}
    for rate, summary in onsets.summaries:
        if rate == lr:
            return {row.weight_decay: row.onset_mean for row in summary.rows if math.isfinite(row.onset_mean)}
    return {}


def _legend_outside(figure: Any, handles: list[Any], labels: list[str], *, title: str | None = None) -> None:
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title=title)


# ---------------------------------------------------------------------------------------------
# Fig. 3


def _finish_step_figure(figure: Any, axes: Sequence[Any], title: str, handles: list[Any], labels: list[str],
                        path: str | os.PathLike, formats: Sequence[str] | None) -> list[Path]:
    """Shared ending of the per-step figures: log step axes, grids, readable log ticks, title, legend, save."""
    for ax in axes:
        _step_axis(ax)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_yscale() == "log" and _has_positive_data(ax):
            _plain_log_ticks(ax)
    figure.suptitle(title, fontsize=11)
    _legend_outside(figure, handles, labels)
    figure.tight_layout()
    return _save(figure, path, formats)


def dynamics_figure(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    formats: Sequence[str] | None = None,
    band: str = "minmax",
    onsets: OnsetAnalysis | None = None,
) -> list[Path]:
    """Fig. 3 style: accuracy, RNC1 and NC2 against the step for each weight decay (one learning rate).

    Lines are means over seeds on the union of logged steps (``seed_band``); the band is min-max or
    +/- one std (``band``). Steps start at 1 on the log axis (the step-0 log is not drawn). With
    ``onsets`` (from :func:`empirical.analysis.analyze_onsets`) the mean onset of each weight decay is
    marked by a dotted vertical line in every panel.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    runs = list(runs)
    lr = _single_lr(runs)
    groups = group_runs(runs)
    decays = [decay for _, decay in groups]
    colours = _colours(len(decays))
    marks = _mean_onsets(onsets, lr)
    figure, axes = plt.subplots(1, 3, figsize=(16.5, 4.6))
    handles, labels = [], []
    for ((_, decay), group), colour in zip(groups.items(), colours):
        _plot_band(axes[0], group, "test_acc", colour=colour, band=band)
        _plot_band(axes[0], group, "train_acc", colour=colour, style="--", band=band, alpha=0.08)
        _plot_band(axes[1], group, "rnc1", colour=colour, band=band, positive=True)
        _plot_band(axes[2], group, "nc2", colour=colour, band=band, positive=True)
        if decay in marks:
            for ax in axes:
                ax.axvline(marks[decay], color=colour, ls=":", lw=1.0, alpha=0.9)
        handles.append(Line2D([], [], color=colour, lw=2))
        labels.append(f"{_lambda_label(decay)} ({len(group)} seed{'s' if len(group) > 1 else ''})")
    handles += [Line2D([], [], color="0.3", lw=1.6), Line2D([], [], color="0.3", lw=1.6, ls="--")]
    labels += ["test accuracy", "train accuracy"]
    if marks:
        handles.append(Line2D([], [], color="0.3", lw=1.0, ls=":"))
        labels.append("mean grokking onset")
    axes[0].set_ylabel("accuracy")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_title("(a) accuracy: test (solid), train (dashed)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("RNC1 = Tr \u03a3_W / B\u00b2  (training set)")
    axes[1].set_title("(b) relative within-class variance RNC1")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("NC2 = \u03c3_max / \u03c3_min of class means")
    axes[2].set_title("(c) NC2 (\u2192 1 for equal-norm orthogonal means)")
    title = (f"Fig. 3 of {PAPER}: grokking dynamics per weight decay (lr {lr:g}, {_optimizers(runs)}); "
             f"mean over seeds, {_band_text(band)}")
    return _finish_step_figure(figure, axes, title, handles, labels, path, formats)


# ---------------------------------------------------------------------------------------------
# Fig. 4


def information_figure(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    formats: Sequence[str] | None = None,
    band: str = "minmax",
) -> list[Path]:
    """Fig. 4 style: ``I(Z;X) - I(Z;Y)``, ``nHSIC(Z;X) - nHSIC(Z;Y)`` and RNC1 against the step.

    Needs the ``--measure-ib`` columns (``mi_zx, mi_zy, nhsic_zx, nhsic_zy``); raises ``ValueError``
    otherwise. When ``ib_bound_trace`` / ``ib_bound_logdet`` were logged, a fourth panel shows the
    Thm. 3.4 upper bounds on ``I(Z;X|Y) = I(Z;X) - I(Z;Y)`` for the noisy representation
    ``Z = g(X) + B_g E``; the MI estimate concerns the deterministic ``g(X)``, so compare trends.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    runs = list(runs)
    if not has_columns(runs, INFORMATION_COLUMNS):
        raise ValueError(f"the runs lack the information columns {list(INFORMATION_COLUMNS)} (train with --measure-ib)")
    lr = _single_lr(runs)
    with_bounds = has_columns(runs, IB_BOUND_COLUMNS)
    groups = group_runs(runs)
    colours = _colours(len(groups))
    panels = 4 if with_bounds else 3
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels + 0.5, 4.6))
    handles, labels = [], []
    for ((_, decay), group), colour in zip(groups.items(), colours):
        _plot_band(axes[0], group, "mi_difference", colour=colour, band=band,
                   transform=lambda run: run.column("mi_zx") - run.column("mi_zy"))
        _plot_band(axes[1], group, "nhsic_difference", colour=colour, band=band,
                   transform=lambda run: run.column("nhsic_zx") - run.column("nhsic_zy"))
        _plot_band(axes[2], group, "rnc1", colour=colour, band=band, positive=True)
        if with_bounds:
            _plot_band(axes[3], group, "ib_bound_logdet", colour=colour, band=band, positive=True)
            _plot_band(axes[3], group, "ib_bound_trace", colour=colour, style="--", band=band, positive=True, alpha=0.08)
        handles.append(Line2D([], [], color=colour, lw=2))
        labels.append(f"{_lambda_label(decay)} ({len(group)} seed{'s' if len(group) > 1 else ''})")
    axes[0].set_title("(a) I(Z;X) \u2212 I(Z;Y), compressed MI")
    axes[0].set_ylabel("nats (the estimate can be negative)")
    axes[0].axhline(0.0, color="0.6", lw=0.8)
    axes[1].set_title("(b) nHSIC(Z;X) \u2212 nHSIC(Z;Y)")
    axes[1].set_ylabel("normalized HSIC difference")
    axes[2].set_title("(c) RNC1 (training set)")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("RNC1")
    if with_bounds:
        axes[3].set_title("(d) Thm. 3.4 bounds on I(Z;X|Y) for noisy Z")
        axes[3].set_yscale("log")
        axes[3].set_ylabel("nats")
        handles += [Line2D([], [], color="0.3", lw=1.6), Line2D([], [], color="0.3", lw=1.6, ls="--")]
        labels += ["log-det bound (d)", "trace bound V/(2\u03c3\u00b2) (d)"]
    title = (f"Fig. 4 of {PAPER}: information-plane compression with neural collapse (lr {lr:g}, "
             f"{_optimizers(runs)}); mean over seeds, {_band_text(band)}")
    return _finish_step_figure(figure, axes, title, handles, labels, path, formats)


# ---------------------------------------------------------------------------------------------
# Bound checks (R1, R4)


def bound_figure(
    runs: Sequence[Run],
    path: str | os.PathLike,
    *,
    formats: Sequence[str] | None = None,
    checks: Sequence[BoundCheck] | None = None,
) -> list[Path]:
    """R1 and R4 along each run: one column per (learning rate, weight decay), one line per seed.

    Top row (R1, Thm. 3.2): ``cantelli_bound`` (solid) against the test error ``1 - test_acc``
    (dashed); the bound must lie above. Bottom row (R4, Thm. 4.1 held-out form): the held-out
    estimate ``heldout_within_var_sup`` (dashed) with its ``1 - delta`` radius as a band, against the
    training ``rnc1_sup`` (solid). Steps from 1, log axes. ``checks`` (from
    :func:`empirical.analysis.check_bounds`) adds each seed's R1 verdict to the legend.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    runs = list(runs)
    if not runs:
        raise ValueError("bound_figure needs at least one run")
    groups = group_runs(runs)
    verdicts = {check.name: check for check in checks or ()}
    several_lrs = len({lr for lr, _ in groups}) > 1
    columns = len(groups)
    figure, axes = plt.subplots(2, columns, figsize=(3.6 * columns + 1.0, 7.2), squeeze=False, sharex=True)
    seed_colours = plt.get_cmap("tab10")
    for column, ((lr, decay), group) in enumerate(groups.items()):
        top, bottom = axes[0, column], axes[1, column]
        for index, run in enumerate(group):
            colour = seed_colours(index % 10)
            steps = run.steps
            keep = steps >= 1
            bound = run.metrics.get("cantelli_bound", np.full(steps.shape, np.nan))
            error = 1.0 - run.column("test_acc")
            check = verdicts.get(run.name)
            verdict = ""
            if check is not None and check.r1_holds is not None:
                verdict = " (R1 holds)" if check.r1_holds else f" (R1 fails at {check.r1_violations})"
            top.plot(steps[keep], np.where(bound[keep] > 0, bound[keep], np.nan), "-", color=colour, lw=1.4,
                     label=f"seed {run.seed}{verdict}")
            top.plot(steps[keep], np.where(error[keep] > 0, error[keep], np.nan), "--", color=colour, lw=1.2)
            train = run.metrics.get("rnc1_sup", np.full(steps.shape, np.nan))
            heldout = run.metrics.get("heldout_within_var_sup", np.full(steps.shape, np.nan))
            radius = run.metrics.get("heldout_radius", np.full(steps.shape, np.nan))
            positive = np.where(train[keep] > 0, train[keep], np.nan)
            bottom.plot(steps[keep], positive, "-", color=colour, lw=1.4)
            bottom.plot(steps[keep], np.where(heldout[keep] > 0, heldout[keep], np.nan), "--", color=colour, lw=1.2)
            finite = np.isfinite(heldout[keep]) & np.isfinite(radius[keep])
            if np.any(finite):
                centre, half = heldout[keep][finite], radius[keep][finite]
                floor = 0.3 * np.nanmin(np.concatenate([positive, np.where(centre > 0, centre, np.nan)]))
                floor = floor if np.isfinite(floor) else 1e-6
                bottom.fill_between(steps[keep][finite], np.maximum(centre - half, floor), centre + half,
                                    color=colour, alpha=0.10, lw=0)
        top.axhline(1.0, color="0.5", lw=0.8, ls=":")
        name = f"lr {lr:g}, {_lambda_label(decay)}" if several_lrs else _lambda_label(decay)
        top.set_title(name)
        for ax in (top, bottom):
            ax.set_yscale("log")
            _step_axis(ax)
            ax.grid(True, which="major", alpha=0.3)
        top.set_xlabel("")
        top.legend(fontsize=7, loc="lower left", frameon=False)
        for ax in (top, bottom):
            if _has_positive_data(ax):
                _plain_log_ticks(ax)
    axes[0, 0].set_ylabel("R1: bound (solid) vs test error (dashed)")
    axes[1, 0].set_ylabel("R4: train rnc1_sup (solid) vs held-out\nV estimate (dashed) \u00b1 radius (band)")
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="0.3", lw=1.4), Line2D([], [], color="0.3", lw=1.2, ls="--"),
               Line2D([], [], color="0.5", lw=0.8, ls=":"),
               Line2D([], [], color="0.3", lw=1.4), Line2D([], [], color="0.3", lw=1.2, ls="--"),
               Patch(color="0.3", alpha=0.2)]
    labels = ["R1: Cantelli bound (Thm. 3.2, held-out plug-in)", "R1: test error 1 \u2212 test acc",
              "R1: trivial level 1",
              "R4: training rnc1_sup = Tr \u03a3_W / max\u2016g\u2016\u00b2",
              "R4: held-out unbiased estimate of the population V",
              "R4: held-out estimate \u00b1 Thm. 4.1 radius (cut at the bottom where \u2264 0)"]
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.06), ncol=2, frameon=False, fontsize=9)
    figure.suptitle(
        f"Bound checks along training ({PAPER}), one line per seed\n"
        "top: R1 \u2014 is the Thm. 3.2 Cantelli bound above the test error?   bottom: R4 \u2014 training RNC1 "
        "against the Thm. 4.1 held-out band for the population within-class variance",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(figure, path, formats)


# ---------------------------------------------------------------------------------------------
# Fig. 2


def margin_figure(data: MarginData, path: str | os.PathLike, *, formats: Sequence[str] | None = None) -> list[Path]:
    """Fig. 2 style: histograms of the pairwise signed distance, training (top) vs unseen (bottom).

    One column per snapshot step, both classes of the pair in each panel (class ``a`` should sit at
    positive distances, class ``b`` at negative ones); bins are shared within a column. Panel titles
    give the loaded network's accuracy on all training and all unseen examples at that step.
    """
    plt = _pyplot()
    a, b = data.classes
    columns = len(data.steps)
    figure, axes = plt.subplots(2, columns, figsize=(5.0 * columns + 0.5, 6.6), squeeze=False)
    class_colours = {a: "tab:blue", b: "tab:orange"}
    for column, step in enumerate(data.steps):
        values = np.concatenate([data.get(step, split, label) for split in ("train", "unseen") for label in (a, b)])
        values = values[np.isfinite(values)]
        edges = np.histogram_bin_edges(values, bins=40) if values.size else np.linspace(-1, 1, 41)
        accuracy = data.accuracy.get(step, {})
        for row, split in enumerate(("train", "unseen")):
            ax = axes[row, column]
            for label in (a, b):
                d = data.get(step, split, label)
                own = (d > 0) if label == a else (d < 0)
                ax.hist(d, bins=edges, color=class_colours[label], alpha=0.55,
                        label=f"class {label} (n={d.size}, {100 * own.mean():.0f}% on its side)" if d.size else f"class {label}")
            ax.axvline(0.0, color="k", lw=1.0, ls="--")
            ax.legend(fontsize=8, frameon=False, loc="upper left")
            ax.grid(True, alpha=0.3)
            if row == 0:
                ax.set_title(
                    f"step {step}: train acc {100 * accuracy.get('train', math.nan):.1f}%, "
                    f"unseen acc {100 * accuracy.get('unseen', math.nan):.1f}%",
                    fontsize=10,
                )
            if row == 1:
                ax.set_xlabel(f"signed distance to the class {a} / class {b} boundary  (> 0: class {a} side)")
            if column == 0:
                ax.set_ylabel("training examples\ncount" if split == "train" else "unseen (test) examples\ncount")
    figure.suptitle(
        f"Fig. 2 of {PAPER}: per-example margins (\u27e8w_{a} \u2212 w_{b}, g(x)\u27e9 + b_{a} \u2212 b_{b}) / "
        f"\u2016w_{a} \u2212 w_{b}\u2016, run {data.run_name}",
        fontsize=11,
    )
    figure.tight_layout()
    return _save(figure, path, formats)


# ---------------------------------------------------------------------------------------------
# Onset law (R6)


def onset_figure(
    analysis: OnsetAnalysis,
    path: str | os.PathLike,
    *,
    formats: Sequence[str] | None = None,
) -> list[Path]:
    """Observed delay ``t_grok - t_fit`` vs weight decay (log-log) against the R6 predictions.

    Left: each grokked seed (small dots), the mean over seeds with min-max error bars, the fitted
    power law (dashed, slope with its confidence interval) and the calibrated prediction
    ``C / (eta lambda)`` (solid, slope ``-1``; ring = calibration weight decay). Runs that never fitted or
    never grokked are counted in the text box. Right: mean fit step, mean onset, mean RNC1 drop step and
    the predicted onset ``t_fit + C / (eta lambda)`` per weight decay.
    """
    plt = _pyplot()

    figure, (left, right) = plt.subplots(1, 2, figsize=(13.5, 5.0))
    palette = plt.get_cmap("tab10")
    counts_text = []
    for index, (lr, summary) in enumerate(analysis.summaries):
        colour = palette(index % 10)
        suffix = f" (lr {lr:g})" if len(analysis.summaries) > 1 else ""
        members = [item for item in analysis.runs if item.lr == lr and item.weight_decay > 0]
        per_seed = [(item.weight_decay, item.delay) for item in members if item.delay is not None and item.delay > 0]
        if per_seed:
            left.plot([d for d, _ in per_seed], [t for _, t in per_seed], "o", color=colour, ms=3.5, alpha=0.45,
                      label=f"per seed{suffix}")
        rows = [row for row in summary.rows if math.isfinite(row.delay_mean) and row.delay_mean > 0]
        if rows:
            decays = np.array([row.weight_decay for row in rows])
            means = np.array([row.delay_mean for row in rows])
            lower = means - np.array([row.delay_min for row in rows])
            upper = np.array([row.delay_max for row in rows]) - means
            left.errorbar(decays, means, yerr=[np.maximum(lower, 0), np.maximum(upper, 0)], fmt="s", color=colour,
                          ms=6, capsize=4, lw=1.4, label=f"mean over seeds, bars = min\u2013max{suffix}")
        span = np.array([row.weight_decay for row in summary.rows])
        grid = np.geomspace(span.min() / 1.5, span.max() * 1.5, 50) if span.size else np.array([])
        fit = summary.slope_fit
        if fit is not None and grid.size:
            ci = "" if not math.isfinite(fit.slope_ci[0]) else f" [{fit.slope_ci[0]:.2f}, {fit.slope_ci[1]:.2f}]"
            left.plot(grid, np.exp(fit.intercept) * grid**fit.slope, "--", color=colour, lw=1.8, zorder=4,
                      label=f"fit: slope {fit.slope:.2f}{ci} ({100 * fit.confidence:.0f}% CI){suffix}")
        if summary.onset_constant is not None and grid.size:
            constant = summary.onset_constant
            left.plot(grid, constant / (lr * grid), "-", color="k" if len(analysis.summaries) == 1 else colour, lw=1.2,
                      label=f"R6: C/(\u03b7\u03bb), slope \u22121, C = {constant:.3g} fitted at "
                            f"\u03bb = {summary.calibration_weight_decay:g}{suffix}")
            calibration = [row for row in rows if row.weight_decay == summary.calibration_weight_decay]
            if calibration:
                left.plot([calibration[0].weight_decay], [calibration[0].delay_mean], "o", ms=14, mfc="none",
                          mec="k", mew=1.2)
        for row in summary.rows:
            missing = []
            if row.num_never_fit:
                missing.append(f"{row.num_never_fit} never fit")
            if row.num_never_grokked:
                missing.append(f"{row.num_never_grokked} never grokked")
            if row.num_no_gap:
                missing.append(f"{row.num_no_gap} no gap")
            if missing:
                counts_text.append(f"\u03bb = {row.weight_decay:g}{suffix}: {', '.join(missing)} of {row.num_runs}")
        # Right panel: times per weight decay.
        table = {}
        for item in members:
            table.setdefault(item.weight_decay, []).append(item)
        decays = sorted(table)
        fit_means = [_mean([i.result.fit_step for i in table[d] if i.result.status == "grokked"]) for d in decays]
        onset_means = [_mean([i.result.onset_step for i in table[d] if i.result.status == "grokked"]) for d in decays]
        drop_means = [_mean([i.rnc1_drop_step for i in table[d]]) for d in decays]
        predicted = {row.weight_decay: row.predicted_onset for row in summary.rows}
        right.plot(decays, fit_means, "s-", color=colour, alpha=0.6, label=f"fit step (train acc \u2265 "
                   f"{analysis.fit_threshold:g}){suffix}")
        right.plot(decays, onset_means, "o-", color=colour, lw=1.8, label=f"grokking onset (observed){suffix}")
        right.plot(decays, drop_means, "^:", color=colour, ms=7, label=f"RNC1 drop to {analysis.rnc1_fraction:g}\u00d7 "
                   f"its value at fit{suffix}")
        right.plot(decays, [predicted.get(d, math.nan) for d in decays], "x--", color="k", ms=8,
                   label=f"predicted onset t_fit + C/(\u03b7\u03bb){suffix}")
    if counts_text:
        left.text(0.02, 0.02, "not in the fit:\n" + "\n".join(counts_text), transform=left.transAxes, fontsize=8,
                  va="bottom", ha="left", bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    for ax in (left, right):
        if not _has_positive_data(ax):
            ax.text(0.5, 0.5, "no run grokked with a positive delay: nothing to draw", transform=ax.transAxes,
                    ha="center", color="0.3")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax, sorted({item.weight_decay for item in analysis.runs if item.weight_decay > 0}))
        ax.set_xlabel("weight decay \u03bb")
        ax.grid(True, which="both", alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper right", frameon=False)
    left.set_ylabel("t_grok \u2212 t_fit  (steps)")
    left.set_title("(a) grokking delay vs \u03bb: observed and R6 (Thm. 4.3)")
    right.set_ylabel("step")
    right.set_title("(b) fit, onset, RNC1 drop and predicted onset")
    figure.suptitle(f"Grokking onset scaling ({PAPER}): t_grok \u2248 t_fit + C/(\u03b7\u03bb)", fontsize=11)
    if "adamw" in analysis.optimizers:
        figure.text(0.01, -0.01, _ADAMW_FOOTNOTE, fontsize=8, ha="left", va="top", color="0.3")
    figure.tight_layout()
    return _save(figure, path, formats)


def _plain_log_ticks(ax: Any, x_ticks: Sequence[float] = ()) -> None:
    """Label the x axis at ``x_ticks`` only (if given), and the log y axis with plain numbers at
    1, 2, 5 x 10^k when it spans less than two decades (else at powers of ten); no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    if x_ticks:
        ax.set_xticks(list(x_ticks))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_ylim()
    narrow = low > 0 and high / low < 100
    ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
    ax.yaxis.set_major_formatter(plain if narrow else FuncFormatter(lambda value, _: _power_label(value)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _step_axis(ax: Any) -> None:
    """Log x axis of training steps labelled with plain numbers at 1, 2, 5 x 10^k when it spans
    less than two decades (powers of ten otherwise), without minor labels (they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    narrow = low > 0 and high / low < 100
    ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}" if narrow else _power_label(value)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training step")


def _power_label(value: float) -> str:
    exponent = math.log10(value) if value > 0 else math.nan
    if math.isfinite(exponent) and abs(exponent - round(exponent)) < 1e-9:
        return f"$10^{{{int(round(exponent))}}}$"
    return f"{value:g}"


def _has_positive_data(ax: Any) -> bool:
    for line in ax.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if np.any((x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)):
            return True
    return False


def _mean(values: Sequence[Any]) -> float:
    values = [float(v) for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


# ---------------------------------------------------------------------------------------------
# Everything for one sweep


@dataclass
class FigureReport:
    """What :func:`make_figures` wrote and found: paths, skip notes, bound checks, margins, onsets."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bound_checks: list[BoundCheck] = field(default_factory=list)
    margins: MarginData | None = None
    onsets: OnsetAnalysis | None = None


from ncgrok.empirical.runs import load_run_split as _default_split  # noqa: E402 (moved to empirical.runs)


def make_figures(
    sweep_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    formats: Sequence[str] = ("png",),
    band: str = "minmax",
    split: Any = None,
    data_dir: str | os.PathLike | None = None,
    margin_run: str | None = None,
    margin_classes: tuple[int, int] = (0, 1),
    margin_steps: Sequence[int] | None = None,
) -> FigureReport:
    """Write every figure of a sweep directory into ``out_dir``; returns a :class:`FigureReport`.

    Files (``<name>.<format>``; with several learning rates the per-lr figures get ``_lr<lr>``):
    ``fig3_dynamics``, ``fig4_information`` (only with ``--measure-ib`` columns), ``bounds_r1_r4``,
    ``onset_scaling`` and ``fig2_margins`` (only when some run has two snapshots and the data can be
    loaded: ``split`` if given -- it must be the split the sweep was trained on -- else
    :func:`empirical.data.paper_split` from the run's ``config.json``, ``data_dir`` overriding its
    data directory). Figures that cannot be drawn are skipped with a note in ``report.notes``.
    """
    runs = load_sweep(sweep_dir)
    out_dir = Path(out_dir)
    report = FigureReport()
    # Check the Fig. 2 choices before writing anything.
    candidates = [run for run in runs if len(snapshot_steps(run)) >= 2]
    if margin_run is not None:
        candidates = [run for run in runs if run.name == margin_run]
        if not candidates:
            raise ValueError(f"--margin-run {margin_run!r} is not a run of {sweep_dir}: {[run.name for run in runs]}")
    if margin_steps is not None and candidates:
        missing = sorted(set(int(step) for step in margin_steps) - set(snapshot_steps(candidates[0])))
        if missing:
            raise ValueError(f"{candidates[0].name} has no snapshot at step(s) {missing}; "
                             f"available: {snapshot_steps(candidates[0]) or 'none'}")
    lrs = sorted({run.lr for run in runs})

    def name(base: str, lr: float) -> Path:
        return out_dir / (f"{base}_lr{lr:g}" if len(lrs) > 1 else base)

    try:
        report.onsets = analyze_onsets(runs)
    except ValueError as error:  # e.g. curves too short for the onset definitions
        report.notes.append(f"onsets not computed: {error}")
    for lr in lrs:
        members = [run for run in runs if run.lr == lr]
        report.paths += dynamics_figure(members, name("fig3_dynamics", lr), formats=formats, band=band,
                                        onsets=report.onsets)
        if has_columns(members, INFORMATION_COLUMNS):
            report.paths += information_figure(members, name("fig4_information", lr), formats=formats, band=band)
        else:
            report.notes.append(
                f"Fig. 4 skipped{f' for lr {lr:g}' if len(lrs) > 1 else ''}: the metrics have no "
                f"{', '.join(INFORMATION_COLUMNS)} columns (train with --measure-ib)"
            )
    report.bound_checks = [check_bounds(run) for run in runs]
    report.paths += bound_figure(runs, out_dir / "bounds_r1_r4", formats=formats, checks=report.bound_checks)
    if report.onsets is not None:
        report.paths += onset_figure(report.onsets, out_dir / "onset_scaling", formats=formats)

    # Fig. 2 needs snapshots and the data.
    if not candidates:
        report.notes.append("Fig. 2 skipped: no run has two model snapshots (train with --snapshot-steps A B)")
        return report
    run = candidates[0]
    if split is None:
        try:
            split = _default_split(run, data_dir)
        except (FileNotFoundError, ValueError) as error:
            report.notes.append(f"Fig. 2 skipped: the data of {run.name} could not be loaded ({str(error).splitlines()[0]})")
            return report
    report.margins = margin_data(run, split, steps=margin_steps, classes=margin_classes)
    report.paths += margin_figure(report.margins, out_dir / "fig2_margins", formats=formats)
    return report
