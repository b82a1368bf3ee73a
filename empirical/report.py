"""Analyse a sweep directory once: everything the figures draw and the commands print.

:func:`analyze_sweep` reads the runs below a directory and derives, in one pass,

* the onset of every run and the R6 comparison per learning rate (``empirical.onset_analysis``;
  Thm. 4.3, exact form reconstructed),
* the seed bands of the curves of the paper's Figs. 3 and 4 per (learning rate, weight decay)
  (``empirical.bands``),
* the claims ledger (``empirical.ledger``: every checked claim with a verdict that can fail) and the
  curves behind the R1/R4 claims (``empirical.bound_checks``; Thms. 3.2, 4.1),
* the Fig. 2 margins of one run with two model snapshots (``empirical.margins``; this loads the data
  and rebuilds the network, so it can be switched off),

into a :class:`SweepReport`: plain dataclasses and numpy arrays, independent of the directory once
built. ``empirical.figures.make_figures`` draws a report; ``ncgrok onset``, ``ncgrok figures`` and
``ncgrok grok`` print it; :meth:`SweepReport.to_json` is its JSON form.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ncgrok.empirical.runs import Run, load_run_split, load_sweep, snapshot_steps
from ncgrok.empirical.bands import SeedBand, group_runs, has_columns, seed_band
from ncgrok.empirical.bound_checks import BoundCurves, bound_curves
from ncgrok.empirical.ledger.core import ClaimResult, RunCurves
from ncgrok.empirical.ledger.runner import run_checks
from ncgrok.empirical.margins import MarginData, margin_data
from ncgrok.empirical.onset import FIT_THRESHOLD, RNC1_FRACTION
from ncgrok.empirical.onset_analysis import OnsetAnalysis, analyze_onsets, onset_analysis_dict
from ncgrok.files import json_safe

__all__ = [
    "DYNAMICS_CURVES",
    "INFORMATION_DIFFERENCES",
    "FIG4_COLUMNS",
    "IB_BOUND_CURVES",
    "WeightDecayCurves",
    "LearningRateCurves",
    "SweepReport",
    "analyze_sweep",
]

# The curves the figures draw, averaged over seeds. Fig. 3: logged columns (each where every run of
# a cell logged it). Fig. 4: differences of two ``--measure-ib`` columns, named by the curve, drawn
# when every run of a learning rate logged FIG4_COLUMNS; beside them the Thm. 3.4 bounds if logged.
DYNAMICS_CURVES = ("test_acc", "train_acc", "rnc1", "nc2")
INFORMATION_DIFFERENCES = {"mi_difference": ("mi_zx", "mi_zy"), "nhsic_difference": ("nhsic_zx", "nhsic_zy")}
FIG4_COLUMNS = tuple(column for pair in INFORMATION_DIFFERENCES.values() for column in pair)
# the same difference by KSG / Ross on the same codes, drawn beside the paper's route when logged
KSG_DIFFERENCE = ("mi_difference_ksg", ("mi_zx_ksg", "mi_zy_ksg"))
IB_BOUND_CURVES = ("ib_bound_trace", "ib_bound_logdet")


@dataclass(frozen=True)
class WeightDecayCurves:
    """Seed bands of one (learning rate, weight decay) cell, by curve name.

    ``bands`` holds the :data:`DYNAMICS_CURVES` the cell's runs logged; with the ``--measure-ib``
    estimates also the :data:`INFORMATION_DIFFERENCES` (``mi_difference = mi_zx - mi_zy`` and
    ``nhsic_difference``), and with the Thm. 3.4 bounds the :data:`IB_BOUND_CURVES`.
    """

    weight_decay: float
    seeds: tuple[int, ...]
    bands: Mapping[str, SeedBand]


@dataclass(frozen=True)
class LearningRateCurves:
    """The cells of one learning rate (ascending weight decay) and what its runs measured:
    ``information`` when every run logged the ``--measure-ib`` estimates (Fig. 4 can be drawn),
    ``ib_bounds`` when every run also logged the Thm. 3.4 bounds."""

    lr: float
    optimizers: tuple[str, ...]
    information: bool
    ib_bounds: bool
    cells: tuple[WeightDecayCurves, ...]


@dataclass(frozen=True)
class SweepReport:
    """Everything derived from one sweep directory (see the module docstring).

    ``onsets`` is ``None`` when the onset definitions could not be applied (``onset_error`` says
    why). ``bound_curves`` are per run, ordered by (lr, weight decay, seed); ``claims`` is the ledger.
    ``margins`` is ``None`` when Fig. 2 was not computed. ``notes`` say what was skipped and why.
    """

    path: str
    learning_rates: tuple[LearningRateCurves, ...]
    onsets: OnsetAnalysis | None
    onset_error: str | None
    bound_curves: tuple[BoundCurves, ...]
    claims: tuple[ClaimResult, ...]
    margins: MarginData | None
    notes: tuple[str, ...]

    def require_onsets(self) -> OnsetAnalysis:
        """The onset analysis, or the ``ValueError`` that prevented it."""
        if self.onsets is None:
            raise ValueError(self.onset_error or "no onsets were computed")
        return self.onsets

    def to_json(self, *, arrays: bool = False) -> dict[str, Any]:
        """The report as data ``json.dumps(..., allow_nan=False)`` accepts (NaN and infinities as
        ``None``). Numbers and verdicts always; with ``arrays`` also what only the figures draw: the
        seed bands, each run's bound curves and every margin distance."""
        learning_rates = []
        for curves in self.learning_rates:
            cells = []
            for cell in curves.cells:
                entry: dict[str, Any] = {"weight_decay": cell.weight_decay, "seeds": list(cell.seeds)}
                if arrays:
                    entry["bands"] = {name: dataclasses.asdict(band) for name, band in cell.bands.items()}
                cells.append(entry)
            learning_rates.append({"lr": curves.lr, "optimizers": list(curves.optimizers),
                                   "information": curves.information, "ib_bounds": curves.ib_bounds,
                                   "weight_decays": cells})
        data: dict[str, Any] = {
            "path": self.path,
            "learning_rates": learning_rates,
            "onsets": None if self.onsets is None else onset_analysis_dict(self.onsets),
            "onset_error": self.onset_error,
            "claims": [claim.to_json() for claim in self.claims],
            "margins": None if self.margins is None else _margins_json(self.margins, arrays=arrays),
            "notes": list(self.notes),
        }
        if arrays:
            data["bound_curves"] = [dataclasses.asdict(curves) for curves in self.bound_curves]
        return json_safe(data)


def _margins_json(margins: MarginData, *, arrays: bool) -> dict[str, Any]:
    data = {
        "run": margins.run_name,
        "classes": list(margins.classes),
        "steps": list(margins.steps),
        "accuracy": {str(step): value for step, value in margins.accuracy.items()},
        "summary": margins.summary(),
    }
    if arrays:
        data["distances"] = [dataclasses.asdict(item) for item in margins.sets]
    return data


# ---------------------------------------------------------------------------------------------
# Analysis


def _difference(first: str, second: str) -> Any:
    return lambda run: run.column(first) - run.column(second)


def _cell_curves(runs: Sequence[Run], *, information: bool, ib_bounds: bool) -> WeightDecayCurves:
    bands = {column: seed_band(runs, column) for column in DYNAMICS_CURVES if has_columns(runs, (column,))}
    if information:
        bands.update({name: seed_band(runs, name, transform=_difference(*pair))
                      for name, pair in INFORMATION_DIFFERENCES.items()})
        if has_columns(runs, KSG_DIFFERENCE[1]):  # runs logged before the KSG columns lack them
            bands[KSG_DIFFERENCE[0]] = seed_band(runs, KSG_DIFFERENCE[0], transform=_difference(*KSG_DIFFERENCE[1]))
    if ib_bounds:
        bands.update({column: seed_band(runs, column) for column in IB_BOUND_CURVES})
    return WeightDecayCurves(runs[0].weight_decay, tuple(run.seed for run in runs), bands)


def _learning_rate_curves(runs: Sequence[Run]) -> tuple[LearningRateCurves, ...]:
    out = []
    for lr in sorted({run.lr for run in runs}):
        members = [run for run in runs if run.lr == lr]
        information = has_columns(members, FIG4_COLUMNS)
        ib_bounds = information and has_columns(members, IB_BOUND_CURVES)
        cells = tuple(_cell_curves(group, information=information, ib_bounds=ib_bounds)
                      for group in group_runs(members).values())
        out.append(LearningRateCurves(lr, tuple(sorted({run.optimizer for run in members})), information,
                                      ib_bounds, cells))
    return tuple(out)


def _margin_candidate(runs: Sequence[Run], path: Any, run_name: str | None, steps: Sequence[int] | None) -> Run | None:
    """The run whose snapshots Fig. 2 uses (``None``: no run has two), after checking the user's choices."""
    candidates = [run for run in runs if len(snapshot_steps(run)) >= 2]
    if run_name is not None:
        candidates = [run for run in runs if run.name == run_name]
        if not candidates:
            raise ValueError(f"--margin-run {run_name!r} is not a run of {path}: {[run.name for run in runs]}")
    if steps is not None and candidates:
        available = snapshot_steps(candidates[0])
        missing = sorted(set(int(step) for step in steps) - set(available))
        if missing:
            raise ValueError(f"{candidates[0].name} has no snapshot at step(s) {missing}; available: {available or 'none'}")
    return candidates[0] if candidates else None


def analyze_sweep(
    path: str | os.PathLike,
    *,
    fit_threshold: float = FIT_THRESHOLD,
    rnc1_fraction: float = RNC1_FRACTION,
    calibrate_on: float | None = None,
    confidence: float = 0.95,
    margins: bool = True,
    split: Any = None,
    data_dir: str | os.PathLike | None = None,
    margin_run: str | None = None,
    margin_classes: tuple[int, int] = (0, 1),
    margin_steps: Sequence[int] | None = None,
) -> SweepReport:
    """Analyse every run at or below ``path`` once; returns a :class:`SweepReport`.

    Onsets use ``fit_threshold``, ``rnc1_fraction``, ``calibrate_on`` and ``confidence`` (see
    :func:`empirical.onset_analysis.analyze_onsets`); if they cannot be computed the report keeps
    the reason (:meth:`SweepReport.require_onsets` raises it). With ``margins``, Fig. 2 uses
    ``margin_run`` (default: the first run with two snapshots), its snapshots ``margin_steps``
    (default: first and last) and the class pair ``margin_classes``, on ``split`` if given (it must be
    the split the sweep was trained on) or else the data named in the run's ``config.json``
    (``data_dir`` overriding its data directory); a run or step that does not exist raises
    ``ValueError``, data that cannot be loaded skips Fig. 2 with a note.
    """
    runs = load_sweep(path)
    candidate = _margin_candidate(runs, path, margin_run, margin_steps) if margins else None
    notes = []
    onsets, onset_error = None, None
    try:
        onsets = analyze_onsets(runs, fit_threshold=fit_threshold, rnc1_fraction=rnc1_fraction,
                                calibrate_on=calibrate_on, confidence=confidence)
    except ValueError as error:  # e.g. curves too short for the onset definitions, an unknown calibrate_on
        onset_error = str(error)
        notes.append(f"onsets not computed: {error}")
    diverged = [run.name for run in runs if getattr(run, "status", None) == "diverged"]
    if diverged:
        notes.append(f"{len(diverged)} of {len(runs)} run(s) diverged in training (their curves stop there): "
                     f"{', '.join(diverged)}")
    learning_rates = _learning_rate_curves(runs)
    for curves in learning_rates:
        if not curves.information:
            where = f" for lr {curves.lr:g}" if len(learning_rates) > 1 else ""
            notes.append(f"Fig. 4 skipped{where}: the metrics have no {', '.join(FIG4_COLUMNS)} "
                         "columns (train with --measure-ib)")
    ordered = [run for group in group_runs(runs).values() for run in group]
    margin = None
    if margins:
        margin = _margins(candidate, split=split, data_dir=data_dir, classes=margin_classes, steps=margin_steps,
                          notes=notes)
    return SweepReport(
        path=str(path),
        learning_rates=learning_rates,
        onsets=onsets,
        onset_error=onset_error,
        bound_curves=tuple(bound_curves(run) for run in ordered),
        claims=tuple(run_checks([RunCurves.from_run(run) for run in runs])),
        margins=margin,
        notes=tuple(notes),
    )


def _margins(run: Run | None, *, split: Any, data_dir: Any, classes: tuple[int, int], steps: Sequence[int] | None,
             notes: list[str]) -> MarginData | None:
    if run is None:
        notes.append("Fig. 2 skipped: no run has two model snapshots (train with --snapshot-steps A B)")
        return None
    if split is None:
        try:
            split = load_run_split(run, data_dir)
        except (FileNotFoundError, ValueError) as error:
            notes.append(f"Fig. 2 skipped: the data of {run.name} could not be loaded ({str(error).splitlines()[0]})")
            return None
    return margin_data(run, split, steps=steps, classes=classes)
