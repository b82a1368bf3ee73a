"""Drawing helpers shared by the sweep figures (``empirical.figures``, ``empirical.onset_figure``).

Figures are drawn with matplotlib's Agg backend (no display) and written atomically (temporary
file, then ``os.replace``, with the umask's permissions; :func:`ncgrok.files.atomic_savefig`). A
path's suffix chooses the format (``.png`` when it has none); ``formats=("png", "pdf")`` writes one
file per format instead.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ncgrok.empirical.bands import SeedBand
from ncgrok.files import agg_pyplot, atomic_savefig

__all__ = [
    "FORMATS",
    "PAPER",
    "pyplot",
    "save_figure",
    "colours",
    "lambda_label",
    "band_text",
    "plot_band",
    "legend_outside",
    "finish_step_figure",
    "plain_log_ticks",
    "step_axis",
    "has_positive_data",
]

FORMATS = ("png", "pdf", "svg")
PAPER = "Sakamoto & Sato, arXiv:2509.20829"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (:func:`ncgrok.files.agg_pyplot`)."""
    return agg_pyplot()


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


def save_figure(figure: Any, path: str | os.PathLike, formats: Sequence[str] | None) -> list[Path]:
    """Write ``figure`` to ``path`` (one file per format, see the module docstring), close it, and
    return the paths written."""
    written = []
    try:
        for target in _targets(path, formats):
            written.append(atomic_savefig(figure, target, dpi=130, format=target.suffix.lstrip(".").lower(),
                                          bbox_inches="tight"))
    finally:
        pyplot().close(figure)
    return written


def colours(count: int) -> list[Any]:
    """``count`` colours of the plasma map, dark to light (one per weight decay)."""
    import matplotlib

    cmap = matplotlib.colormaps["plasma"]
    if count == 1:
        return [cmap(0.1)]
    return [cmap(0.05 + 0.8 * i / (count - 1)) for i in range(count)]


def lambda_label(weight_decay: float) -> str:
    return f"\u03bb = {weight_decay:g}"


def band_text(band: str) -> str:
    return "band = min\u2013max over seeds" if band == "minmax" else "band = \u00b1 1 std over seeds"


def plot_band(ax: Any, curve: SeedBand | None, *, colour: Any, style: str = "-", band: str = "minmax",
              positive: bool = False, alpha: float = 0.18, label: str | None = None) -> bool:
    """The mean over seeds (line) with its band, on steps >= 1 (``positive``: only where the mean is
    > 0, the band cut at 1e-3 x the smallest mean, for log axes); returns whether anything was drawn."""
    if curve is None:
        return False
    keep = (curve.steps >= 1) & np.isfinite(curve.mean)
    if positive:
        keep &= curve.mean > 0
    if not np.any(keep):
        return False
    low, high = curve.interval(band)
    steps, mean = curve.steps[keep], curve.mean[keep]
    low, high = low[keep], high[keep]
    if positive:
        floor = mean.min() * 1e-3
        low = np.maximum(low, floor)
    ax.plot(steps, mean, style, color=colour, lw=1.6, label=label)
    if np.any(curve.count[keep] > 1):
        ax.fill_between(steps, low, high, color=colour, alpha=alpha, lw=0)
    return True


def legend_outside(figure: Any, handles: list[Any], labels: list[str], *, title: str | None = None) -> None:
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title=title)


def finish_step_figure(figure: Any, axes: Sequence[Any], title: str, handles: list[Any], labels: list[str],
                       path: str | os.PathLike, formats: Sequence[str] | None) -> list[Path]:
    """Shared ending of the per-step figures: log step axes, grids, readable log ticks, title, legend, save."""
    for ax in axes:
        step_axis(ax)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_yscale() == "log" and has_positive_data(ax):
            plain_log_ticks(ax)
    figure.suptitle(title, fontsize=11)
    legend_outside(figure, handles, labels)
    figure.tight_layout()
    return save_figure(figure, path, formats)


def plain_log_ticks(ax: Any, x_ticks: Sequence[float] = ()) -> None:
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


def step_axis(ax: Any) -> None:
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


def has_positive_data(ax: Any) -> bool:
    """Whether any line of ``ax`` has a point with both coordinates finite and > 0 (log axes can show it)."""
    for line in ax.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if np.any((x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)):
            return True
    return False
