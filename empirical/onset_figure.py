"""The onset law figure: observed grokking delays against the weight decay and the R6 predictions.

R6 (from Thm. 4.3; rates published, the exact onset form reconstructed): the delay
``t_grok - t_fit`` scales as ``1 / lambda`` (slope ``-1`` on log-log axes) and equals
``C / (eta lambda)`` with ``C`` calibrated on one weight decay. :func:`onset_figure` draws an
:class:`empirical.onset_analysis.OnsetAnalysis` (``ncgrok onset --figure``, ``ncgrok figures``).
"""
from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from ncgrok.empirical.onset import ADAMW_CAVEAT
from ncgrok.empirical.onset_analysis import OnsetAnalysis
from ncgrok.empirical.plotting import PAPER, has_positive_data, plain_log_ticks, pyplot, save_figure

__all__ = ["onset_figure"]


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
    plt = pyplot()

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
            if row.num_censored:
                missing.append(f"{row.num_censored} censored")
            if row.num_never_grokked:
                missing.append(f"{row.num_never_grokked} never grokked")
            if row.num_no_gap:
                missing.append(f"{row.num_no_gap} no gap")
            if missing:
                counts_text.append(f"\u03bb = {row.weight_decay:g}{suffix}: {', '.join(missing)} of {row.num_runs}")
        # Right panel: times per weight decay (means over grokked seeds; RNC1 drop over seeds with one).
        decays = [row.weight_decay for row in summary.rows]
        fit_means = [row.fit_mean for row in summary.rows]
        onset_means = [row.onset_mean for row in summary.rows]
        drop_means = [analysis.rnc1_drop_means.get((lr, decay), math.nan) for decay in decays]
        right.plot(decays, fit_means, "s-", color=colour, alpha=0.6, label=f"fit step (train acc \u2265 "
                   f"{analysis.fit_threshold:g}){suffix}")
        right.plot(decays, onset_means, "o-", color=colour, lw=1.8, label=f"grokking onset (observed){suffix}")
        right.plot(decays, drop_means, "^:", color=colour, ms=7, label=f"RNC1 drop to {analysis.rnc1_fraction:g}\u00d7 "
                   f"its value at fit{suffix}")
        right.plot(decays, [row.predicted_onset for row in summary.rows], "x--", color="k", ms=8,
                   label=f"predicted onset t_fit + C/(\u03b7\u03bb){suffix}")
    if counts_text:
        left.text(0.02, 0.02, "not in the fit:\n" + "\n".join(counts_text), transform=left.transAxes, fontsize=8,
                  va="bottom", ha="left", bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    for ax in (left, right):
        if not has_positive_data(ax):
            ax.text(0.5, 0.5, "no run grokked with a positive delay: nothing to draw", transform=ax.transAxes,
                    ha="center", color="0.3")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_ticks(ax, sorted({item.weight_decay for item in analysis.runs if item.weight_decay > 0}))
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
        figure.text(0.01, -0.01, textwrap.fill(ADAMW_CAVEAT, 180), fontsize=8, ha="left", va="top", color="0.3")
    figure.tight_layout()
    return save_figure(figure, path, formats)
