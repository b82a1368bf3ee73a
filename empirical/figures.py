"""Figures of an analysed sweep in the style of the paper's Figs. 2-4, the bound checks and the onset law.

Sakamoto & Sato (arXiv:2509.20829). Everything here draws what ``empirical.report.analyze_sweep``
computed: no data is loaded, no network rebuilt, no onset or bound computed, and nothing is
returned but the paths written (saving, formats and the shared pieces: ``empirical.plotting``).

* :func:`dynamics_figure` (Fig. 3): test (solid) and train (dashed) accuracy, RNC1 (log y) and NC2
  against the step (log x, from step 1), one colour per weight decay, mean over seeds with a band.
* :func:`information_figure` (Fig. 4): ``I(Z;X) - I(Z;Y)``, ``nHSIC(Z;X) - nHSIC(Z;Y)`` and RNC1
  against the step; beside them the Thm. 3.4 upper bounds when they were logged.
* :func:`bound_figure`: R1 (Thm. 3.2) Cantelli bound against the test error, and R4 (Thm. 4.1) the
  held-out population estimate with its radius against the training RNC1, along each run.
* :func:`margin_figure` (Fig. 2): signed distances of training and unseen examples of a class pair
  to the last layer's pairwise boundary at two snapshot steps.
* ``empirical.onset_figure.onset_figure``: observed ``t_grok - t_fit`` against the weight decay on
  log-log axes, the fitted slope, and the calibrated R6 prediction ``C / (eta lambda)``.
* ``empirical.forecast_figure.forecast_figure``: each run's forecast onset against the step it was made
  at (its ``forecast.csv``, or a replay), with the observed onset and the fit step.
* :func:`make_figures`: all of the above for one :class:`empirical.report.SweepReport`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ncgrok.empirical.bands import BANDS
from ncgrok.empirical.bound_checks import BoundCurves
from ncgrok.empirical.forecast_figure import ForecastHistory, forecast_figure
from ncgrok.empirical.margins import MarginData
from ncgrok.empirical.onset_analysis import OnsetAnalysis
from ncgrok.empirical.onset_figure import onset_figure
from ncgrok.empirical.plotting import (
    PAPER,
    band_text,
    colours,
    finish_step_figure,
    has_positive_data,
    lambda_label,
    plain_log_ticks,
    plot_band,
    pyplot,
    save_figure,
    step_axis,
)
from ncgrok.empirical.report import FIG4_COLUMNS, LearningRateCurves, SweepReport, WeightDecayCurves

__all__ = ["dynamics_figure", "information_figure", "bound_figure", "margin_figure", "make_figures"]


def _cell_label(cell: WeightDecayCurves) -> str:
    count = len(cell.seeds)
    return f"{lambda_label(cell.weight_decay)} ({count} seed{'s' if count > 1 else ''})"


def _optimizers(curves: LearningRateCurves) -> str:
    return "/".join({"adamw": "AdamW", "sgd": "SGD"}.get(name, name) for name in curves.optimizers)


def _mean_onsets(onsets: OnsetAnalysis | None, lr: float) -> dict[float, float]:
    if onsets is None:
        return {}
    for rate, summary in onsets.summaries:
        if rate == lr:
            return {row.weight_decay: row.onset_mean for row in summary.rows if math.isfinite(row.onset_mean)}
    return {}


# ---------------------------------------------------------------------------------------------
# Fig. 3


def dynamics_figure(
    curves: LearningRateCurves,
    path: str | os.PathLike,
    *,
    formats: Sequence[str] | None = None,
    band: str = "minmax",
    onsets: OnsetAnalysis | None = None,
) -> list[Path]:
    """Fig. 3 style: accuracy, RNC1 and NC2 against the step for each weight decay (one learning rate).

    Lines are the report's means over seeds (``curves``, one learning rate of
    :attr:`empirical.report.SweepReport.learning_rates`); the band is min-max or +/- one std
    (``band``). Steps start at 1 on the log axis (the step-0 log is not drawn). With ``onsets`` the
    mean onset of each weight decay is marked by a dotted vertical line in every panel.
    """
    plt = pyplot()
    from matplotlib.lines import Line2D

    lr = curves.lr
    marks = _mean_onsets(onsets, lr)
    figure, axes = plt.subplots(1, 3, figsize=(16.5, 4.6))
    handles, labels = [], []
    for cell, colour in zip(curves.cells, colours(len(curves.cells))):
        decay, bands = cell.weight_decay, cell.bands
        plot_band(axes[0], bands.get("test_acc"), colour=colour, band=band)
        plot_band(axes[0], bands.get("train_acc"), colour=colour, style="--", band=band, alpha=0.08)
        plot_band(axes[1], bands.get("rnc1"), colour=colour, band=band, positive=True)
        plot_band(axes[2], bands.get("nc2"), colour=colour, band=band, positive=True)
        if decay in marks:
            for ax in axes:
                ax.axvline(marks[decay], color=colour, ls=":", lw=1.0, alpha=0.9)
        handles.append(Line2D([], [], color=colour, lw=2))
        labels.append(_cell_label(cell))
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
    title = (f"Fig. 3 of {PAPER}: grokking dynamics per weight decay (lr {lr:g}, {_optimizers(curves)}); "
             f"mean over seeds, {band_text(band)}")
    return finish_step_figure(figure, axes, title, handles, labels, path, formats)


# ---------------------------------------------------------------------------------------------
# Fig. 4


def information_figure(
    curves: LearningRateCurves,
    path: str | os.PathLike,
    *,
    formats: Sequence[str] | None = None,
    band: str = "minmax",
) -> list[Path]:
    """Fig. 4 style: ``I(Z;X) - I(Z;Y)``, ``nHSIC(Z;X) - nHSIC(Z;Y)`` and RNC1 against the step.

    Needs the ``--measure-ib`` estimates (``curves.information``: ``mi_zx, mi_zy, nhsic_zx, nhsic_zy``
    logged by every run of the learning rate); raises ``ValueError`` otherwise. When ``ib_bound_trace`` / ``ib_bound_logdet`` were logged, a fourth panel shows the
    Thm. 3.4 upper bounds on ``I(Z;X|Y) = I(Z;X) - I(Z;Y)`` for the noisy representation
    ``Z = g(X) + B_g E``; the MI estimate concerns the deterministic ``g(X)``, so compare trends.
    """
    plt = pyplot()
    from matplotlib.lines import Line2D

    if not curves.information:
        raise ValueError(f"the runs lack the information columns {list(FIG4_COLUMNS)} (train with --measure-ib)")
    lr = curves.lr
    with_bounds = curves.ib_bounds
    panels = 4 if with_bounds else 3
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels + 0.5, 4.6))
    handles, labels = [], []
    for cell, colour in zip(curves.cells, colours(len(curves.cells))):
        bands = cell.bands
        plot_band(axes[0], bands["mi_difference"], colour=colour, band=band)
        if "mi_difference_ksg" in bands:  # KSG/Ross route, dashed
            plot_band(axes[0], bands["mi_difference_ksg"], colour=colour, style="--", band=band, alpha=0.08)
        plot_band(axes[1], bands["nhsic_difference"], colour=colour, band=band)
        plot_band(axes[2], bands.get("rnc1"), colour=colour, band=band, positive=True)
        if with_bounds:
            plot_band(axes[3], bands["ib_bound_logdet"], colour=colour, band=band, positive=True)
            plot_band(axes[3], bands["ib_bound_trace"], colour=colour, style="--", band=band, positive=True, alpha=0.08)
        handles.append(Line2D([], [], color=colour, lw=2))
        labels.append(_cell_label(cell))
    axes[0].set_title("(a) I(Z;X) \u2212 I(Z;Y), compressed MI\n(solid: the paper's route; dashed: KSG/Ross)"
                      if any("mi_difference_ksg" in cell.bands for cell in curves.cells)
                      else "(a) I(Z;X) \u2212 I(Z;Y), compressed MI")
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
             f"{_optimizers(curves)}); mean over seeds, {band_text(band)}")
    return finish_step_figure(figure, axes, title, handles, labels, path, formats)


# ---------------------------------------------------------------------------------------------
# Bound checks (R1, R4)


def bound_figure(
    runs: Sequence[BoundCurves],
    path: str | os.PathLike,
    *,
    formats: Sequence[str] | None = None,
) -> list[Path]:
    """R1 and R4 along each run: one column per (learning rate, weight decay), one line per seed.

    Top row (R1, Thm. 3.2, in a form that can fail): the worst pair's two-class Cantelli term
    ``cantelli_pair_term`` (solid, at most 1) against that pair's measured test error (dashed), and
    the per-class clipped bound (dotted) against the test error (dash-dot). Bottom row (R4, Thm. 4.1
    held-out form, one scale): the held-out ``heldout_within_var_clip`` (dashed) with its ``1 - delta``
    radius as a band, against the training ``rnc1_sup`` (solid). Steps from 1, log axes. ``runs`` are
    the report's ``bound_curves``; the verdicts are the ledger's, printed by the commands.
    """
    plt = pyplot()
    from matplotlib.lines import Line2D

    if not runs:
        raise ValueError("bound_figure needs at least one run")
    groups: dict[tuple[float, float], list[BoundCurves]] = {}
    for run in sorted(runs, key=lambda run: (run.lr, run.weight_decay, run.seed)):
        groups.setdefault((run.lr, run.weight_decay), []).append(run)
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
            for values, style, width in ((run.cantelli_pair_term, "-", 1.4), (run.cantelli_pair_error, "--", 1.2),
                                         (run.cantelli_bound_clipped, ":", 1.2), (run.test_error, "-.", 1.0)):
                top.plot(steps[keep], np.where(values[keep] > 0, values[keep], np.nan), style, color=colour, lw=width,
                         label=f"seed {run.seed}" if style == "-" else None)
            train, heldout, radius = run.rnc1_sup, run.heldout_within_var_clip, run.heldout_radius
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
        name = f"lr {lr:g}, {lambda_label(decay)}" if several_lrs else lambda_label(decay)
        top.set_title(name)
        for ax in (top, bottom):
            ax.set_yscale("log")
            step_axis(ax)
            ax.grid(True, which="major", alpha=0.3)
        top.set_xlabel("")
        top.legend(fontsize=7, loc="lower left", frameon=False)
        for ax in (top, bottom):
            if has_positive_data(ax):
                plain_log_ticks(ax)
    axes[0, 0].set_ylabel("R1: pair term (solid) vs pair error (dashed);\nclipped bound (dotted) vs test error")
    axes[1, 0].set_ylabel("R4: train rnc1_sup (solid) vs held-out\nV estimate (dashed) \u00b1 radius (band)")
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="0.3", lw=1.4), Line2D([], [], color="0.3", lw=1.2, ls="--"),
               Line2D([], [], color="0.3", lw=1.2, ls=":"), Line2D([], [], color="0.3", lw=1.0, ls="-."),
               Line2D([], [], color="0.3", lw=1.4), Line2D([], [], color="0.3", lw=1.2, ls="--"),
               Patch(color="0.3", alpha=0.2)]
    labels = ["R1: worst pair's two-class Cantelli term (Thm. 3.2, \u2264 1)", "R1: that pair's test error",
              "R1: Cantelli bound, each class capped at 1", "R1: test error 1 \u2212 test acc",
              "R4: training rnc1_sup = Tr \u03a3_W / max\u2016g\u2016\u00b2",
              "R4: held-out population V on the same scale (clipped to norm \u2264 B)",
              "R4: held-out estimate \u00b1 Thm. 4.1 radius (cut at the bottom where \u2264 0)"]
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.06), ncol=2, frameon=False, fontsize=9)
    figure.suptitle(
        f"Bound checks along training ({PAPER}), one line per seed\n"
        "top: R1 \u2014 is the non-vacuous Thm. 3.2 bound above the error it bounds?   bottom: R4 \u2014 training RNC1 "
        "against the Thm. 4.1 held-out band for the population within-class variance",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(figure, path, formats)


# ---------------------------------------------------------------------------------------------
# Fig. 2


def margin_figure(data: MarginData, path: str | os.PathLike, *, formats: Sequence[str] | None = None) -> list[Path]:
    """Fig. 2 style: histograms of the pairwise signed distance, training (top) vs unseen (bottom).

    One column per snapshot step, both classes of the pair in each panel (class ``a`` should sit at
    positive distances, class ``b`` at negative ones); bins are shared within a column. Panel titles
    give the loaded network's accuracy on all training and all unseen examples at that step.
    """
    plt = pyplot()
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
    return save_figure(figure, path, formats)


# ---------------------------------------------------------------------------------------------
# Everything for one report


def make_figures(
    report: SweepReport,
    out_dir: str | os.PathLike,
    *,
    formats: Sequence[str] = ("png",),
    band: str = "minmax",
    forecasts: Sequence[ForecastHistory] = (),
) -> list[Path]:
    """Draw every figure of ``report`` (and of ``forecasts``, computed by
    ``empirical.forecast_figure.forecast_histories``) into ``out_dir``; returns the paths written.

    Files (``<name>.<format>``; with several learning rates the per-lr figures get ``_lr<lr>``):
    ``fig3_dynamics``, ``fig4_information`` (only with the ``--measure-ib`` columns),
    ``bounds_r1_r4``, ``onset_scaling`` (only when the onsets were computed) and ``fig2_margins``
    (only when the report holds margins), ``forecast_history`` (only with ``forecasts``). What was
    skipped and why is in ``report.notes``.
    """
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    out_dir = Path(out_dir)
    several = len(report.learning_rates) > 1

    def name(base: str, lr: float) -> Path:
        return out_dir / (f"{base}_lr{lr:g}" if several else base)

    paths = []
    for curves in report.learning_rates:
        paths += dynamics_figure(curves, name("fig3_dynamics", curves.lr), formats=formats, band=band,
                                 onsets=report.onsets)
        if curves.information:
            paths += information_figure(curves, name("fig4_information", curves.lr), formats=formats, band=band)
    paths += bound_figure(report.bound_curves, out_dir / "bounds_r1_r4", formats=formats)
    if report.onsets is not None:
        paths += onset_figure(report.onsets, out_dir / "onset_scaling", formats=formats)
    if report.margins is not None:
        paths += margin_figure(report.margins, out_dir / "fig2_margins", formats=formats)
    if forecasts:
        paths += forecast_figure(forecasts, out_dir / "forecast_history", formats=formats)
    return paths
