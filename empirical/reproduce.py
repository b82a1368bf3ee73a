"""``ncgrok reproduce``: train a preset's sweeps, check its claims, draw its figures, one result file.

:func:`reproduce` trains each :class:`empirical.presets.Stage` into ``<out>/<label>`` with
``empirical.sweep.run_sweep`` (an interrupted preset resumes where it stopped; a finished stage is
reused), then analyses every stage once (``empirical.report.analyze_sweep``: onsets and the general
claims ledger), adds the preset's own claims (``ledger.preset_claims``), computes the class-pair
margins the preset asks for, draws the figures into ``<out>/figures/<label>`` and writes
``<out>/reproduce.json`` atomically (:func:`result_json` is its schema). Library code: it never prints.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ncgrok.files import atomic_write_json, json_safe

from ncgrok.empirical.ledger.core import ClaimResult, RunCurves
from ncgrok.empirical.presets import Preset, Stage

__all__ = ["RunOutcome", "ReproduceResult", "prepare_stages", "reproduce", "result_json", "RESULT_FILE"]

RESULT_FILE = "reproduce.json"


@dataclass(frozen=True)
class RunOutcome:
    """One run of a preset: ``run`` is ``<stage>/<run name>``."""

    run: str
    fit_step: float | None
    onset_step: float | None
    status: str
    final_train_acc: float | None
    final_test_acc: float | None


@dataclass(frozen=True)
class StageClaim:
    stage: str  # the stage label, or "" for a claim over several stages
    result: ClaimResult


@dataclass
class ReproduceResult:
    preset: Preset
    scale: str
    variant: str | None
    out_dir: Path
    runs: list[RunOutcome]
    claims: list[StageClaim]
    figures: list[Path]
    notes: list[str]
    seconds: float
    train_seconds: float
    measure_seconds: float


def prepare_stages(preset: Preset, scale: str, *, variant: str | None = None, data_dir: str | None = None,
                   device: str = "auto") -> tuple[Stage, ...]:
    """The preset's stages at ``scale`` (and ``variant``) with the machine's data directory and device."""
    return tuple(Stage(stage.label, dataclasses.replace(stage.config, data_dir=data_dir, device=device))
                 for stage in preset.stages_at(scale, variant))


def _check_data(stages: Sequence[Stage]) -> None:
    """Every stage's data is on disk (nothing is downloaded at run time), checked before anything is written."""
    for stage in stages:
        try:
            stage.config.load_split()
        except FileNotFoundError as error:
            first = str(error).splitlines()[0]
            raise ValueError(f"the data of stage {stage.label} ({stage.config.dataset}) is missing: {first}; "
                             f"fetch it first with `ncgrok data fetch {stage.config.dataset}` or pass --data-dir") from None


def _outcomes(label: str, runs: Sequence[Any]) -> list[RunOutcome]:
    from ncgrok.empirical.onset import run_onset

    outcomes = []
    for run in runs:
        onset = run_onset(run)
        train, test = run.column("train_acc"), run.column("test_acc")
        outcomes.append(RunOutcome(f"{label}/{run.name}", onset.fit_step, onset.onset_step, onset.status,
                                   float(train[-1]) if len(train) else None, float(test[-1]) if len(test) else None))
    return outcomes


def _margins(preset: Preset, runs: Sequence[Any], split: Any) -> list[Any]:
    """Margin data for every run with two snapshots and every class pair of the preset."""
    from ncgrok.empirical.margins import margin_data
    from ncgrok.empirical.runs import snapshot_steps

    return [margin_data(run, split, classes=pair) for run in runs if len(snapshot_steps(run)) >= 2
            for pair in preset.margin_pairs]


def reproduce(
    preset: Preset,
    scale: str,
    out_dir: Path | str,
    *,
    variant: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    progress: Callable[[str], Callable[[int, int, list[dict[str, float]]], None] | None] | None = None,
    formats: Sequence[str] = ("png",),
) -> ReproduceResult:
    """Run ``preset`` at ``scale`` into ``out_dir`` (module docstring). ``progress(label)`` returns the
    ``run_sweep`` progress callback of a stage (or None)."""
    from ncgrok.empirical.figures import make_figures, margin_figure
    from ncgrok.empirical.ledger.runner import run_checks
    from ncgrok.empirical.report import analyze_sweep
    from ncgrok.empirical.run_loading import load_run_split, load_sweep
    from ncgrok.empirical.runs import SweepDirectory
    from ncgrok.empirical.sweep import run_sweep

    started = time.perf_counter()
    out_dir = Path(out_dir)
    stages = prepare_stages(preset, scale, variant=variant, data_dir=data_dir, device=device)
    _check_data(stages)
    train_seconds = measure_seconds = 0.0
    for stage in stages:
        directory = out_dir / stage.label
        callback = progress(stage.label) if progress is not None else None
        result = run_sweep(stage.config, directory, resume=SweepDirectory(directory).holds_sweep(), progress=callback)
        train_seconds += result.train_seconds
        measure_seconds += result.measure_seconds

    outcomes, claims, figures, notes = [], [], [], []
    curves: dict[str, list[RunCurves]] = {}
    margins: list[Any] = []
    for stage in stages:
        directory = out_dir / stage.label
        runs = load_sweep(directory)
        outcomes += _outcomes(stage.label, runs)
        report = analyze_sweep(directory, margins=False)
        notes += [f"{stage.label}: {note}" for note in report.notes]
        figures += make_figures(report, out_dir / "figures" / stage.label, formats=formats)
        curves[stage.label] = [RunCurves.from_run(run) for run in runs]
        claims += [StageClaim(stage.label, result) for result in run_checks(curves[stage.label])]
        if preset.margin_pairs:
            stage_margins = _margins(preset, runs, load_run_split(runs[0], data_dir))
            for data in stage_margins:
                pair = f"{data.classes[0]}{data.classes[1]}"
                figures += margin_figure(data, out_dir / "figures" / stage.label / f"margins_{data.run_name}_pair{pair}",
                                         formats=formats)
            margins += stage_margins
    claims += [StageClaim("", result) for result in preset.claims(curves, {"margins": margins})]
    result = ReproduceResult(preset, scale, variant, out_dir, outcomes, claims, figures, notes,
                             time.perf_counter() - started, train_seconds, measure_seconds)
    atomic_write_json(out_dir / RESULT_FILE, result_json(result))
    return result


def result_json(result: ReproduceResult) -> dict[str, Any]:
    """``{"preset", "scale", "runs": [{"run", "fit_step", "onset_step", "status", "final_train_acc",
    "final_test_acc"}], "claims": [{"stage", "id", "verdict", "statistic", "interval", "criterion",
    "source", "claim", "detail"}], "source", "reports", "expected", "figures", "notes", "seconds", ...}``."""
    return json_safe({
        "preset": result.preset.name,
        "scale": result.scale,
        "variant": result.variant,
        "runs": [dataclasses.asdict(run) for run in result.runs],
        "claims": [{"stage": claim.stage, **claim.result.to_json()} for claim in result.claims],
        "source": result.preset.source,
        "reports": result.preset.reports,
        "expected": result.preset.expected,
        "figures": [str(path) for path in result.figures],
        "notes": list(result.notes),
        "seconds": result.seconds,
        "train_seconds": result.train_seconds,
        "measure_seconds": result.measure_seconds,
    })
