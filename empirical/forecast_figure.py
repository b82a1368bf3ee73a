"""Forecast against step: how each run's predicted grokking onset moved while it trained.

Analyse once, then draw. :func:`forecast_histories` computes, per run, the forecasts made at its
logged steps: from the run's ``forecast.csv`` when it was trained with ``--forecast`` (what the live
forecast said, with the calibration it had then), else by replaying the forecasters at every logged
step with the final leave-one-run-out calibration of the sweep (the other runs, completed). With
each run's observed fit and onset (``empirical.onset.grokking_onset``). :func:`forecast_figure` only
draws a list of them: per run, each forecaster's predicted onset against the step the forecast was
made at, the 80% interval of the lead forecaster (``variance-crossing``) as a band, the diagonal
(a forecast on it says "now"), the observed onset as a horizontal line and the fit step as a vertical
one. A forecaster that works draws a flat line on the observed onset from early on.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ncgrok.empirical.forecast import FORECASTERS, ForecastSettings, calibrate
from ncgrok.empirical.forecast_live import LEAD, forecast_rows
from ncgrok.empirical.ledger.load import load_curves
from ncgrok.empirical.onset import grokking_onset
from ncgrok.empirical.plotting import PAPER, pyplot, save_figure
from ncgrok.empirical.runs import RunDirectory, find_run_directories

__all__ = ["ForecastSeries", "ForecastHistory", "forecast_histories", "draw_forecast_histories", "forecast_figure"]

LIVE, REPLAY = "forecast.csv", "replay"


@dataclass(frozen=True)
class ForecastSeries:
    """One forecaster's forecasts along a run: the steps at which its status was ``forecast``, the
    predicted onsets and interval bounds there, and how many rows ended in each status."""

    forecaster: str
    steps: np.ndarray
    predicted: np.ndarray
    low: np.ndarray
    high: np.ndarray
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ForecastHistory:
    """One run: where its forecasts come from (``forecast.csv`` or ``replay``), its observed fit and
    onset (``None`` when it did not fit / grok; ``onset_status`` says which), its last logged step and
    one :class:`ForecastSeries` per forecaster."""

    run: str
    source: str
    fit_step: float | None
    onset_step: float | None
    onset_status: str
    last_step: float
    series: tuple[ForecastSeries, ...]


def _series(rows: Sequence[dict[str, Any]], forecaster: str) -> ForecastSeries:
    mine = [row for row in rows if row["forecaster"] == forecaster]
    made = [row for row in mine if row["status"] == "forecast"]
    statuses: dict[str, int] = {}
    for row in mine:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1

    def column(name: str) -> np.ndarray:
        return np.array([float(row[name]) for row in made], dtype=float)

    return ForecastSeries(forecaster, column("step"), column("predicted_onset"), column("low"), column("high"), statuses)


def forecast_histories(path: Path | str, *, settings: ForecastSettings = ForecastSettings()) -> list[ForecastHistory]:
    """The forecast history of every run at or below ``path`` (see the module docstring), by run name."""
    directories = find_run_directories(path)
    runs = [load_curves(directory)[0] for directory in directories]
    calibration = None  # computed once, only if a run needs a replay
    histories = []
    for directory, run in zip(directories, runs):
        rows = RunDirectory(directory).forecast().rows()
        source = LIVE
        if not rows:
            calibration = calibrate(runs, settings.signal) if calibration is None else calibration
            own = calibration.without(run.name)
            source = REPLAY
            rows = [row for step in run.columns["step"] for row in forecast_rows(run, own, int(step), settings)]
        columns = run.columns
        onset = grokking_onset(columns["step"], columns["train_acc"], columns["test_acc"])
        histories.append(ForecastHistory(
            run.name, source, None if onset.fit_step is None else float(onset.fit_step),
            None if onset.onset_step is None or onset.status != "grokked" else float(onset.onset_step),
            "diverged" if run.diverged else onset.status, float(columns["step"][-1]),
            tuple(_series(rows, name) for name in FORECASTERS)))
    return histories


# ---------------------------------------------------------------------------------------------- drawing

_STYLE = {"variance-crossing": dict(color="tab:blue", marker="o", ms=3, lw=1.4, ls="-"),
          "r6-law": dict(color="tab:orange", marker="s", ms=2.5, lw=1.1, ls="--")}


def _panel(ax: Any, history: ForecastHistory) -> None:
    top = max(history.last_step, history.onset_step or 0.0)
    for series in history.series:
        style = _STYLE.get(series.forecaster, {})
        ax.plot(series.steps, series.predicted, label=f"{series.forecaster}: predicted onset",
                gid=f"{history.run}|{series.forecaster}|predicted", **style)
        if series.forecaster == LEAD and series.steps.size:
            ax.fill_between(series.steps, series.low, series.high, color=style["color"], alpha=0.18, lw=0,
                            label=f"{LEAD}: 80% interval")
            for bound in ("low", "high"):
                ax.plot(series.steps, getattr(series, bound), color=style["color"], lw=0.5, alpha=0.6,
                        gid=f"{history.run}|{series.forecaster}|{bound}")
    ax.plot([0, top], [0, top], ":", color="0.5", lw=1, label="forecast = step (onset now)", gid=f"{history.run}|diagonal")
    if history.onset_step is not None:
        ax.axhline(history.onset_step, color="k", lw=1.3, label="observed onset", gid=f"{history.run}|onset")
    if history.fit_step is not None:
        ax.axvline(history.fit_step, color="0.4", ls="--", lw=1, label="fit step", gid=f"{history.run}|fit")
    lead = next(series for series in history.series if series.forecaster == LEAD)
    others = [f"{status} {count}" for status, count in lead.statuses.items() if status != "forecast"]
    onset = [] if history.onset_step is not None else [f"observed: {history.onset_status}"]
    ax.text(0.02, 0.98, "\n".join(onset + [f"{LEAD} rows not forecast:"] + (others or ["none"])),
            transform=ax.transAxes, fontsize=7, va="top", color="0.25")
    ax.set_xlim(0, history.last_step * 1.02)
    ax.set_ylim(0, 2.0 * top)  # far extrapolations are cut here; the lines keep every value
    source = "live forecast.csv" if history.source == LIVE else "replay, final calibration"
    ax.set_title(f"{history.run} ({source})", fontsize=9)
    ax.set_xlabel("step of the forecast")
    ax.set_ylabel("predicted onset (step)")
    ax.grid(True, alpha=0.25)


def draw_forecast_histories(histories: Sequence[ForecastHistory]) -> Any:
    """The figure (a matplotlib Figure, not saved) with one panel per run."""
    if not histories:
        raise ValueError("no run to draw: forecast_histories found none")
    plt = pyplot()
    columns = min(4, len(histories))
    rows = math.ceil(len(histories) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax, history in zip(axes.flat, histories):
        _panel(ax, history)
    for ax in list(axes.flat)[len(histories):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    figure.suptitle(f"Grokking onset forecast vs step, without the test set ({PAPER}; forecasters: ours and the "
                    "reconstructed R6 law)", fontsize=10)
    figure.tight_layout()
    return figure


def forecast_figure(histories: Sequence[ForecastHistory], path: str | os.PathLike, *,
                    formats: Sequence[str] | None = None) -> list[Path]:
    """Draw :func:`draw_forecast_histories` to ``path`` (formats as in ``empirical.plotting``); the paths written."""
    return save_figure(draw_forecast_histories(histories), path, formats)
