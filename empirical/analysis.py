"""Analysis of run and sweep directories: onsets against R6, bound checks (R1, R4), Fig. 2 margins.

Library code on what ``ncgrok train``/``ncgrok sweep`` wrote (layout in ``empirical.runs``): it
returns data and never prints. The command line (``ncgrok onset``, ``ncgrok figures``) lives in
``empirical.cli_analysis``, the plots in ``empirical.figures``.

* :func:`load_sweep` reads every run below a directory (``config.json`` + ``metrics.csv``).
* :func:`analyze_onsets` applies the definitions of ``empirical.onset`` to every run (fit time,
  sustained midpoint crossing of test accuracy, status, RNC1 drop time) and compares the onsets
  with the two R6 predictions of Thm. 4.3 (scaling law slope ``-1``; calibrated ``C / (eta lambda)``)
  through :func:`empirical.onset.summarize_onsets`, once per learning rate.
* :func:`check_bounds` follows each run along its logged steps: the Cantelli bound of Thm. 3.2
  (column ``cantelli_bound``, evaluated with held-out class statistics) against the measured test
  error ``1 - test_acc`` (R1), and the training ``rnc1_sup`` against the held-out estimate
  ``heldout_within_var_sup`` of the population within-class variance and its Thm. 4.1 radius (R4).
* :func:`margin_data` rebuilds a run's network from two snapshots and computes, for one pair of
  classes, the signed distance of training and unseen examples to the pairwise decision boundary of
  the last layer (the paper's Fig. 2).
* :func:`seed_band` averages a metric over the seeds of one (learning rate, weight decay) cell.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ncgrok.empirical.onset import GrokkingOnset, OnsetRecord, OnsetSummary, grokking_onset, rnc1_drop_time, summarize_onsets
from ncgrok.empirical.runs import find_run_directories, read_json, read_metrics

__all__ = [
    "Run",
    "load_run",
    "load_sweep",
    "RunOnset",
    "OnsetAnalysis",
    "analyze_onsets",
    "onset_analysis_dict",
    "ADAMW_NOTE",
    "BoundCheck",
    "check_bounds",
    "bound_check_lines",
    "SeedBand",
    "seed_band",
    "group_runs",
    "snapshot_steps",
    "load_snapshot",
    "pair_signed_distances",
    "MarginSet",
    "MarginData",
    "margin_data",
    "INFORMATION_COLUMNS",
    "IB_BOUND_COLUMNS",
    "has_columns",
]

# Columns written by ``--measure-ib`` (Fig. 4); the bound columns are optional within them.
INFORMATION_COLUMNS = ("mi_zx", "mi_zy", "nhsic_zx", "nhsic_zy")
IB_BOUND_COLUMNS = ("ib_bound_trace", "ib_bound_logdet")

ADAMW_NOTE = (
    "AdamW: decoupled weight decay multiplies every weight by (1 - eta lambda) per step, so the "
    "1/(eta lambda) time scale of the shrinkage is exact; the balancedness/UFM identities behind "
    "Thm. 4.3 are not exact under Adam's preconditioning, so the R6 law is a prediction tested here, "
    "not a consequence of the theorem."
)
GD_NOTE = (
    "SGD: Thm. 4.3 is stated for full-batch gradient descent; its rates are published, the exact "
    "onset form t_fit + C/(eta lambda) is reconstructed."
)


# ---------------------------------------------------------------------------------------------
# Reading runs


from ncgrok.empirical.runs import Run, load_run, load_sweep  # noqa: E402,F401 (moved to empirical.runs)


def group_runs(runs: Iterable[Run]) -> dict[tuple[float, float], list[Run]]:
    """Runs grouped by ``(lr, weight_decay)``, keys ascending, seeds ascending within a group."""
    groups: dict[tuple[float, float], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.lr, run.weight_decay), []).append(run)
    return {key: sorted(groups[key], key=lambda run: run.seed) for key in sorted(groups)}


def has_columns(runs: Iterable[Run], columns: Sequence[str]) -> bool:
    """Whether every run logged every column of ``columns`` (with at least one finite value each)."""
    runs = list(runs)
    return bool(runs) and all(
        column in run.metrics and np.any(np.isfinite(run.metrics[column])) for run in runs for column in columns
    )


# ---------------------------------------------------------------------------------------------
# Seed averages


@dataclass(frozen=True)
class SeedBand:
    """A metric of one (lr, weight decay) cell on the union of its seeds' logged steps.

    ``mean``, ``low``, ``high`` ignore missing or non-finite values (a seed that logged fewer steps,
    a NaN measurement); ``count`` is the number of finite seed values at each step (``mean`` is NaN
    where it is 0). ``band`` is ``"minmax"`` (low/high = min/max over seeds) or ``"std"`` (mean -/+
    the sample standard deviation, ``ddof = 1``; zero width with a single seed).
    """

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: np.ndarray
    band: str


def seed_band(runs: Sequence[Run], column: str, *, band: str = "minmax", transform: Any = None) -> SeedBand:
    """Mean over seeds and a min-max (or standard-deviation) band of ``column``.

    ``transform`` (optional) maps one run to the array to average instead of the raw column, e.g.
    ``lambda run: run.column("mi_zx") - run.column("mi_zy")``; ``column`` then only names it.
    """
    if band not in ("minmax", "std"):
        raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
    if not runs:
        raise ValueError("seed_band needs at least one run")
    steps = np.unique(np.concatenate([run.steps for run in runs]))
    table = np.full((len(runs), steps.size), np.nan)
    for row, run in enumerate(runs):
        values = np.asarray(transform(run) if transform is not None else run.column(column), dtype=float)
        table[row, np.searchsorted(steps, run.steps)] = values
    finite = np.isfinite(table)
    count = finite.sum(axis=0)
    safe = np.where(finite, table, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, safe.sum(axis=0) / np.maximum(count, 1), np.nan)
        if band == "minmax":
            low = np.where(count > 0, np.where(finite, table, np.inf).min(axis=0), np.nan)
            high = np.where(count > 0, np.where(finite, table, -np.inf).max(axis=0), np.nan)
        else:
            squares = np.where(finite, (table - mean) ** 2, 0.0).sum(axis=0)
            std = np.where(count > 1, np.sqrt(squares / np.maximum(count - 1, 1)), 0.0)
            low, high = mean - std, mean + std
    return SeedBand(steps=steps, mean=mean, low=low, high=high, count=count, band=band)


# ---------------------------------------------------------------------------------------------
# Onsets (R6)


@dataclass(frozen=True)
class RunOnset:
    """Onset quantities of one run (definitions in ``empirical.onset``).

    ``resolution`` is the gap between the onset's logged step and the logged step before it: the
    sustained crossing happened somewhere in that interval (``None`` if the run did not grok).
    ``rnc1_drop_step`` is :func:`empirical.onset.rnc1_drop_time` (first logged step after the fit
    with RNC1 ``<= rnc1_fraction`` x RNC1 at the fit), computed on the logged steps with a finite RNC1.
    """

    name: str
    seed: int
    lr: float
    weight_decay: float
    optimizer: str
    result: GrokkingOnset
    rnc1_drop_step: int | float | None
    resolution: int | float | None

    @property
    def delay(self) -> float | None:
        return self.result.delay


@dataclass(frozen=True)
class OnsetAnalysis:
    """Every run's onset, and one :class:`empirical.onset.OnsetSummary` per learning rate.

    ``summaries`` pairs each learning rate with its summary (ascending). Runs with weight decay 0 have
    no R6 prediction (``C / (eta * 0)`` is infinite): they are listed in ``runs`` and
    ``zero_weight_decay`` but not summarised. ``notes`` are the caveats to print with the numbers.
    """

    runs: tuple[RunOnset, ...]
    summaries: tuple[tuple[float, OnsetSummary], ...]
    zero_weight_decay: tuple[str, ...]
    optimizers: tuple[str, ...]
    fit_threshold: float
    rnc1_fraction: float
    calibrate_on: float | None
    confidence: float
    notes: tuple[str, ...]


def _run_onset(run: Run, *, fit_threshold: float, rnc1_fraction: float) -> RunOnset:
    steps = run.steps
    result = grokking_onset(steps, run.column("train_acc"), run.column("test_acc"), fit_threshold=fit_threshold)
    rnc1 = run.column("rnc1")
    finite = np.isfinite(rnc1)
    drop = None
    if result.fit_step is not None and np.any(finite & (steps >= result.fit_step)):
        drop = rnc1_drop_time(steps[finite], rnc1[finite], fit_step=result.fit_step, fraction=rnc1_fraction)
    resolution = None
    if result.onset_step is not None:
        index = int(np.flatnonzero(steps == result.onset_step)[0])
        resolution = _plain(steps[index] - steps[index - 1]) if index > 0 else 0
    return RunOnset(run.name, run.seed, run.lr, run.weight_decay, run.optimizer, result, drop, resolution)


def _plain(value: Any) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def analyze_onsets(
    runs: Sequence[Run],
    *,
    fit_threshold: float = 0.99,
    rnc1_fraction: float = 0.1,
    calibrate_on: float | None = None,
    confidence: float = 0.95,
) -> OnsetAnalysis:
    """Onset of every run and the R6 comparison per learning rate (Thm. 4.3; exact form reconstructed).

    Per run: :func:`empirical.onset.grokking_onset` (fit step, plateau, final, sustained midpoint
    crossing, status) and :func:`empirical.onset.rnc1_drop_time`. Per learning rate:
    :func:`empirical.onset.summarize_onsets` with ``calibrate_on`` (default: its middle weight decay),
    which counts never-fit / never-grokked / no-gap runs, fits the log-log slope of ``onset - fit``
    on ``lambda`` with a ``confidence`` interval, and predicts ``t_fit + C / (eta lambda)``.
    """
    if not runs:
        raise ValueError("no runs to analyse")
    onsets = [_run_onset(run, fit_threshold=fit_threshold, rnc1_fraction=rnc1_fraction) for run in runs]
    zero = tuple(item.name for item in onsets if item.weight_decay == 0)
    summaries = []
    for lr in sorted({item.lr for item in onsets}):
        records = [
            OnsetRecord(item.weight_decay, item.seed, item.result)
            for item in onsets
            if item.lr == lr and item.weight_decay > 0
        ]
        if records:
            summaries.append((lr, summarize_onsets(records, lr=lr, calibrate_on=calibrate_on, confidence=confidence)))
    optimizers = tuple(sorted({item.optimizer for item in onsets}))
    notes = []
    if "adamw" in optimizers:
        notes.append(ADAMW_NOTE)
    if "sgd" in optimizers:
        notes.append(GD_NOTE)
    if zero:
        notes.append(f"{len(zero)} run(s) with weight decay 0 have no R6 prediction and are left out of the "
                     f"per-weight-decay summary: {', '.join(zero)}")
    for lr, summary in summaries:
        if summary.slope_excluded:
            notes.append(f"lr {lr:g}: {summary.slope_excluded} grokked run(s) with onset at the fit log (delay 0) "
                         "are left out of the slope fit (no logarithm)")
        if summary.slope_fit is None:
            notes.append(f"lr {lr:g}: fewer than two weight decays grokked, so no slope is fitted")
    return OnsetAnalysis(
        runs=tuple(onsets),
        summaries=tuple(summaries),
        zero_weight_decay=zero,
        optimizers=optimizers,
        fit_threshold=float(fit_threshold),
        rnc1_fraction=float(rnc1_fraction),
        calibrate_on=None if calibrate_on is None else float(calibrate_on),
        confidence=float(confidence),
        notes=tuple(notes),
    )


def onset_analysis_dict(analysis: OnsetAnalysis) -> dict[str, Any]:
    """Every number of an :class:`OnsetAnalysis` as plain JSON-able data (NaN kept as float NaN)."""
    runs = []
    for item in analysis.runs:
        runs.append({
            "name": item.name,
            "seed": item.seed,
            "lr": item.lr,
            "weight_decay": item.weight_decay,
            "optimizer": item.optimizer,
            **dataclasses.asdict(item.result),
            "delay": item.delay,
            "onset_resolution": item.resolution,
            "rnc1_drop_step": item.rnc1_drop_step,
            "rnc1_drop_minus_onset": (
                None if item.rnc1_drop_step is None or item.result.onset_step is None
                else item.rnc1_drop_step - item.result.onset_step
            ),
        })
    learning_rates = []
    for lr, summary in analysis.summaries:
        fit = summary.slope_fit
        slope = None
        if fit is not None:
            slope = {
                **dataclasses.asdict(fit),
                "slope_ci": list(fit.slope_ci),
                "predicted_slope": -1.0,
                "consistent_with_prediction": bool(fit.slope_ci[0] <= -1.0 <= fit.slope_ci[1]),
            }
        rows = []
        for row in summary.rows:
            entry = dataclasses.asdict(row)
            entry["seeds"] = list(row.seeds)
            rows.append(entry)
        learning_rates.append({
            "lr": lr,
            "rows": rows,
            "slope_fit": slope,
            "slope_excluded": summary.slope_excluded,
            "calibration_weight_decay": summary.calibration_weight_decay,
            "onset_constant": summary.onset_constant,
        })
    return {
        "definitions": {
            "fit_step": f"first logged step with train accuracy >= {analysis.fit_threshold:g}",
            "onset_step": "first logged step at or after the fit where test accuracy >= plateau + (final - plateau)/2, "
                          "with a strict majority of the 5 logs from there also above (empirical.onset)",
            "plateau": "median test accuracy over the fit log and the next two",
            "final": "median test accuracy over the last 5 logs",
            "status": "grokked if final - plateau >= 0.05; else no_gap (plateau >= 0.8) or never_grokked; never_fit "
                      "if train accuracy never reached the fit threshold",
            "rnc1_drop_step": f"first logged step after the fit with RNC1 <= {analysis.rnc1_fraction:g} x RNC1 at the fit",
            "delay": "onset_step - fit_step",
            "prediction": "t_fit + C / (lr * weight_decay), C fitted on the calibration weight decay (R6, Thm. 4.3)",
        },
        "runs": runs,
        "learning_rates": learning_rates,
        "zero_weight_decay_runs": list(analysis.zero_weight_decay),
        "optimizers": list(analysis.optimizers),
        "notes": list(analysis.notes),
    }


# ---------------------------------------------------------------------------------------------
# Bound checks (R1, R4)


@dataclass(frozen=True)
class BoundCheck:
    """R1 and R4 along one run's logged steps.

    R1 (Thm. 3.2): ``cantelli_bound`` (a plug-in value: the bound evaluated with held-out class means,
    unbiased variances and priors, with the scale ``B`` = largest feature norm on training and
    held-out data) against the test error ``1 - test_acc``. ``r1_steps`` counts steps where both are
    finite; ``r1_violations`` those with bound < error; ``r1_holds`` is ``None`` when nothing was
    measured. ``r1_median_ratio`` is the median of bound / error over measured steps with a nonzero
    error (``r1_zero_error_steps`` have none); ``r1_vacuous_fraction`` the fraction with bound >= 1.

    R4 (Thm. 4.1, held-out form): the training ``rnc1_sup`` (biased within-class variance of the
    training features over the training set's largest norm squared) against the held-out unbiased
    estimate ``heldout_within_var_sup`` of the population value (over ``B^2``, ``B`` from training and
    held-out features) whose ``1 - delta`` radius is ``heldout_radius``. The gap is
    ``rnc1_sup - heldout_within_var_sup``; ``r4_inside_fraction`` is the fraction of measured steps
    with ``|gap| <= radius``; medians of ``|gap|`` and of the radius, and the values at the last
    measured step, are given. The radius covers the held-out estimate's own error about the
    population variance; a training value outside the band differs from the population by more than
    that error allows (the generalisation gap the uniform part of Thm. 4.1 has to pay for).
    """

    name: str
    seed: int
    lr: float
    weight_decay: float
    r1_steps: int
    r1_violations: int
    r1_holds: bool | None
    r1_median_ratio: float
    r1_zero_error_steps: int
    r1_vacuous_fraction: float
    r1_final_bound: float
    r1_final_error: float
    r4_steps: int
    r4_inside_fraction: float
    r4_gap_median: float
    r4_radius_median: float
    r4_final_gap: float
    r4_final_radius: float
    r2_steps: int = 0
    r2_violations: int = 0
    r2_holds: bool | None = None
    r2_trend_correlation: float = math.nan
    r2_final_bound: float = math.nan
    r2_final_estimate: float = math.nan


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by order; enough for trend agreement)."""
    if len(a) < 3:
        return math.nan
    ranks_a = np.argsort(np.argsort(a)).astype(float)
    ranks_b = np.argsort(np.argsort(b)).astype(float)
    if ranks_a.std() == 0 or ranks_b.std() == 0:
        return math.nan
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def _finite(*arrays: np.ndarray) -> np.ndarray:
    mask = np.ones(arrays[0].shape, dtype=bool)
    for array in arrays:
        mask &= np.isfinite(array)
    return mask


def check_bounds(run: Run) -> BoundCheck:
    """R1 and R4 checks along ``run`` (see :class:`BoundCheck` for what is compared exactly)."""
    nan = math.nan
    bound = run.metrics.get("cantelli_bound", np.full(run.steps.shape, np.nan))
    error = 1.0 - run.column("test_acc")
    measured = _finite(bound, error)
    r1_steps = int(measured.sum())
    b, e = bound[measured], error[measured]
    violations = int(np.sum(b < e))
    nonzero = e > 0
    ratio = float(np.median(b[nonzero] / e[nonzero])) if np.any(nonzero) else nan
    vacuous = float(np.mean(b >= 1.0)) if r1_steps else nan

    train = run.metrics.get("rnc1_sup", np.full(run.steps.shape, np.nan))
    heldout = run.metrics.get("heldout_within_var_sup", np.full(run.steps.shape, np.nan))
    radius = run.metrics.get("heldout_radius", np.full(run.steps.shape, np.nan))
    measured4 = _finite(train, heldout, radius)
    gap = (train - heldout)[measured4]
    r = radius[measured4]
    r4_steps = int(measured4.sum())
    return BoundCheck(
        name=run.name,
        seed=run.seed,
        lr=run.lr,
        weight_decay=run.weight_decay,
        r1_steps=r1_steps,
        r1_violations=violations,
        r1_holds=None if r1_steps == 0 else violations == 0,
        r1_median_ratio=ratio,
        r1_zero_error_steps=int(np.sum(~nonzero)),
        r1_vacuous_fraction=vacuous,
        r1_final_bound=float(b[-1]) if r1_steps else nan,
        r1_final_error=float(e[-1]) if r1_steps else nan,
        r4_steps=r4_steps,
        r4_inside_fraction=float(np.mean(np.abs(gap) <= r)) if r4_steps else nan,
        r4_gap_median=float(np.median(np.abs(gap))) if r4_steps else nan,
        r4_radius_median=float(np.median(r)) if r4_steps else nan,
        r4_final_gap=float(gap[-1]) if r4_steps else nan,
        r4_final_radius=float(r[-1]) if r4_steps else nan,
        **_information_check(run),
    )


def _information_check(run: Run) -> dict[str, Any]:
    """R2 (Thm. 3.4) along a ``--measure-ib`` run: the log-det bound on ``I(Z;X|Y)`` of the noisy
    representation against the compressed-MI estimate ``mi_zx - mi_zy`` of the deterministic one.

    The two are not the same quantity (noise level ``--ib-sigma`` versus a k-NN estimate after
    compression), so "holds" is a sanity comparison and the rank correlation over logged steps says
    whether they move together, which is what the paper's Fig. 4 argues.
    """
    if not all(column in run.metrics for column in ("ib_bound_logdet", "mi_zx", "mi_zy")):
        return {}
    bound = run.metrics["ib_bound_logdet"]
    estimate = run.metrics["mi_zx"] - run.metrics["mi_zy"]
    measured = _finite(bound, estimate)
    steps = int(measured.sum())
    if steps == 0:
        return {}
    b, e = bound[measured], estimate[measured]
    violations = int(np.sum(b < e))
    return {
        "r2_steps": steps,
        "r2_violations": violations,
        "r2_holds": violations == 0,
        "r2_trend_correlation": _rank_correlation(b, e),
        "r2_final_bound": float(b[-1]),
        "r2_final_estimate": float(e[-1]),
    }


def bound_check_lines(check: BoundCheck) -> list[str]:
    """Summary lines of one run's checks (R1, R4, and R2 when measured), as the figures command prints them."""
    if check.r1_holds is None:
        r1 = "R1 (Thm. 3.2): not measured (no held-out sample, cantelli_bound is NaN)"
    else:
        r1 = (
            f"R1 holds at every logged step: {'yes' if check.r1_holds else 'no'} "
            f"({check.r1_steps - check.r1_violations}/{check.r1_steps} steps); "
            f"median ratio bound/error {check.r1_median_ratio:.3g}; bound >= 1 (vacuous) at "
            f"{100 * check.r1_vacuous_fraction:.0f}% of steps; last step bound {check.r1_final_bound:.3g} "
            f"vs test error {check.r1_final_error:.3g}"
        )
    if check.r4_steps == 0:
        r4 = "R4 (Thm. 4.1): not measured (no held-out sample)"
    else:
        r4 = (
            f"held-out vs train RNC1 gap vs radius: |rnc1_sup - heldout_within_var_sup| median "
            f"{check.r4_gap_median:.3g} vs radius median {check.r4_radius_median:.3g}; train value inside the "
            f"held-out band at {100 * check.r4_inside_fraction:.0f}% of {check.r4_steps} steps; last step gap "
            f"{check.r4_final_gap:+.3g}, radius {check.r4_final_radius:.3g}"
        )
    lines = [r1, r4]
    if check.r2_holds is not None:
        lines.append(
            f"R2 log-det bound >= estimated I(Z;X) - I(Z;Y) at every logged step: {'yes' if check.r2_holds else 'no'} "
            f"({check.r2_steps - check.r2_violations}/{check.r2_steps}); rank correlation of the two over steps "
            f"{check.r2_trend_correlation:.2f}; last step bound {check.r2_final_bound:.3g} vs estimate "
            f"{check.r2_final_estimate:.3g} nats (bound: noisy Z at --ib-sigma; estimate: compressed g(X))"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Margins from snapshots (Fig. 2)

from ncgrok.empirical.runs import load_snapshot, snapshot_steps  # noqa: E402,F401 (moved to empirical.runs)


def pair_signed_distances(module: Any, x: Any, *, classes: tuple[int, int], chunk_size: int = 2048) -> np.ndarray:
    """Signed distance of each ``g(x)`` to the last layer's boundary between ``classes = (a, b)``.

    ``(<w_a - w_b, g(x)> + b_a - b_b) / ||w_a - w_b||``, with ``g`` the representation (input of the
    last linear layer, ``module.head``): positive on the side the network prefers ``a``. Computed in
    float64 from the features and head weights.
    """
    import torch

    a, b = (int(c) for c in classes)
    head = module.head
    weight = head.weight.detach().to(torch.float64)
    if not (0 <= a < weight.shape[0] and 0 <= b < weight.shape[0]) or a == b:
        raise ValueError(f"classes must be two different labels in 0..{weight.shape[0] - 1}, got {classes}")
    direction = weight[a] - weight[b]
    norm = float(direction.norm())
    if norm == 0.0:
        raise ValueError(f"w_{a} = w_{b}: the last layer does not separate classes {a} and {b}")
    offset = 0.0
    if head.bias is not None:
        bias = head.bias.detach().to(torch.float64)
        offset = float(bias[a] - bias[b])
    x = torch.as_tensor(np.asarray(x), dtype=next(module.parameters()).dtype)
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            _, features = module(x[start : start + chunk_size], with_representation=True)
            out.append(((features.to(torch.float64) @ direction + offset) / norm).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _accuracy(module: Any, x: np.ndarray, y: np.ndarray, chunk_size: int = 2048) -> float:
    import torch

    x = torch.as_tensor(np.asarray(x), dtype=next(module.parameters()).dtype)
    correct = 0
    with torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            logits = module(x[start : start + chunk_size])
            correct += int((logits.argmax(-1).numpy() == np.asarray(y[start : start + chunk_size])).sum())
    return correct / max(int(x.shape[0]), 1)


@dataclass(frozen=True)
class MarginSet:
    """Signed distances of the examples of one class (``label``) from one split at one step."""

    step: int
    split: str  # "train" or "unseen"
    label: int
    distances: np.ndarray


@dataclass(frozen=True)
class MarginData:
    """Fig. 2 data of one run: pairwise signed distances at several snapshot steps.

    ``accuracy[step]`` holds the loaded network's accuracy on all training examples and all unseen
    examples (every class), to tell the steps apart (the paper's Fig. 2 contrasts a step where the
    training set is fitted but test accuracy is low with a late step after grokking).
    """

    run_name: str
    weight_decay: float
    seed: int
    classes: tuple[int, int]
    steps: tuple[int, ...]
    sets: tuple[MarginSet, ...]
    accuracy: dict[int, dict[str, float]]

    def get(self, step: int, split: str, label: int) -> np.ndarray:
        for item in self.sets:
            if item.step == step and item.split == split and item.label == label:
                return item.distances
        raise KeyError((step, split, label))

    def summary(self) -> list[dict[str, Any]]:
        """Per (step, split, class): count, mean and std of the distance, fraction on its own side."""
        first = self.classes[0]
        rows = []
        for item in self.sets:
            d = item.distances
            own = d > 0 if item.label == first else d < 0
            rows.append({
                "step": item.step,
                "split": item.split,
                "class": item.label,
                "count": int(d.size),
                "mean": float(d.mean()) if d.size else math.nan,
                "std": float(d.std()) if d.size else math.nan,
                "correct_side_fraction": float(own.mean()) if d.size else math.nan,
            })
        return rows


def margin_data(
    run: Run,
    split: Any,
    *,
    steps: Sequence[int] | None = None,
    classes: tuple[int, int] = (0, 1),
    max_unseen_per_class: int | None = 1000,
) -> MarginData:
    """Signed distances (see :func:`pair_signed_distances`) for the paper's Fig. 2.

    ``split`` has ``train_x, train_y, test_x, test_y`` and ``num_classes`` (as
    ``empirical.data.paper_split`` returns, or the split a sweep was trained on); the unseen
    examples are the test examples of the two classes, the first ``max_unseen_per_class`` of each in
    data order (``None``: all). ``steps`` default to the first and last snapshot; at least two
    snapshots are needed.
    """
    available = snapshot_steps(run)
    if steps is None:
        if len(available) < 2:
            raise ValueError(f"{run.name} has {len(available)} snapshot(s); Fig. 2 needs two "
                             "(train with --snapshot-steps A B)")
        steps = (available[0], available[-1])
    steps = tuple(int(s) for s in steps)
    missing = [s for s in steps if s not in available]
    if missing:
        raise ValueError(f"{run.name} has no snapshot at step(s) {missing}; available: {available or 'none'}")
    classes = (int(classes[0]), int(classes[1]))
    num_classes = int(split.num_classes)
    if classes[0] == classes[1] or not all(0 <= c < num_classes for c in classes):
        raise ValueError(f"classes must be two different labels in 0..{num_classes - 1}, got {list(classes)}")
    train_x, train_y = np.asarray(split.train_x), np.asarray(split.train_y)
    test_x, test_y = np.asarray(split.test_x), np.asarray(split.test_y)
    chosen = {}
    for label in classes:
        chosen[("train", label)] = np.flatnonzero(train_y == label)
        unseen = np.flatnonzero(test_y == label)
        chosen[("unseen", label)] = unseen if max_unseen_per_class is None else unseen[:max_unseen_per_class]
    sets = []
    accuracy = {}
    for step in steps:
        module = load_snapshot(run, step, input_shape=train_x.shape[1:], num_classes=num_classes)
        accuracy[step] = {"train": _accuracy(module, train_x, train_y), "unseen": _accuracy(module, test_x, test_y)}
        for (name, label), index in chosen.items():
            source = train_x if name == "train" else test_x
            distances = pair_signed_distances(module, source[index], classes=classes)
            sets.append(MarginSet(step, name, label, distances))
    return MarginData(run.name, run.weight_decay, run.seed, classes, steps, tuple(sets), accuracy)
