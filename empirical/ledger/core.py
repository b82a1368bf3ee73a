"""The claims ledger's vocabulary: what a checked claim is, its verdict, and the data it reads.

Every claim ncgrok checks against runs is a named function from a list of :class:`RunCurves` (the
logged columns of ``metrics.csv`` plus each run's settings) to a :class:`ClaimResult`. A result says
which claim was tested and where it comes from (:class:`Source`: the paper's result and whether it is
published, a statement of the paper's text, or our reconstruction), the statistic, the criterion fixed
before looking at the data, an interval that respects how the data were replicated, and a verdict
that could have come out the other way:

* ``holds``: the criterion is met with a statistic that could have failed it;
* ``fails``: the criterion is violated;
* ``inconclusive``: the interval straddles the criterion, or too few runs/levels to decide;
* ``vacuous``: the claim cannot fail on these data (e.g. a probability bound at or above 1);
* ``not_applicable``: the claim's assumptions do not hold for these runs (e.g. a gradient-descent
  theorem on AdamW runs), or the columns it needs were not measured.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ncgrok.files import json_safe

VERDICTS = ("holds", "fails", "inconclusive", "vacuous", "not_applicable")
SOURCE_STATUSES = ("published", "paper-text", "reconstructed")


@dataclass(frozen=True)
class Source:
    """Where a claim comes from: ``result`` (e.g. "Thm. 3.2", "Sec. 5.1, Fig. 3") and its ``status``:
    ``published`` (a theorem as the paper states it), ``paper-text`` (an empirical statement in the
    paper's text) or ``reconstructed`` (our derivation, not a claim of the paper)."""

    result: str
    status: str

    def __post_init__(self) -> None:
        if self.status not in SOURCE_STATUSES:
            raise ValueError(f"source status must be one of {SOURCE_STATUSES}, got {self.status!r}")

    def __str__(self) -> str:
        return f"{self.result} ({self.status})"


@dataclass(frozen=True)
class ClaimResult:
    """One ledger entry. ``interval`` is ``(low, high)`` for ``statistic`` or None where none applies."""

    id: str
    claim: str
    source: Source
    criterion: str
    verdict: str
    statistic: float | None = None
    interval: tuple[float, float] | None = None
    detail: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (non-finite numbers as ``None``)."""
        return json_safe({
            "id": self.id,
            "verdict": self.verdict,
            "statistic": None if self.statistic is None else float(self.statistic),
            "interval": None if self.interval is None else [float(v) for v in self.interval],
            "criterion": self.criterion,
            "source": str(self.source),
            "claim": self.claim,
            "detail": self.detail,
        })


@dataclass(frozen=True)
class RunCurves:
    """One run as the ledger reads it: settings plus logged columns (``step`` and any ``metrics.csv``
    column, each a float array of the same length; missing columns are simply absent).

    ``horizon`` is the number of steps the run was configured for (a rise still under way there is
    censored). ``optimizer`` is ``"adamw"`` or ``"sgd"``. ``status`` is the run's ``summary.json``
    status (``None`` for runs written by other code: taken as completed); a ``"diverged"`` run's
    curves stop at its divergence and the claims leave it out (:func:`check_usable_runs`).
    """

    name: str
    lr: float
    weight_decay: float
    seed: int
    optimizer: str
    horizon: int
    columns: Mapping[str, np.ndarray]
    status: str | None = None

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @classmethod
    def from_run(cls, run: Any) -> "RunCurves":
        """From a loaded run directory (:class:`ncgrok.empirical.runs.Run`). The horizon is the run's
        configured ``steps``; a run written by other code without that setting gets its last logged
        step (a rise still under way there then counts as censored at that step)."""
        metrics = {name: np.asarray(values, dtype=float) for name, values in run.metrics.items()}
        steps = run.config.get("steps")
        horizon = int(steps) if steps is not None else int(metrics["step"][-1])
        return cls(run.name, float(run.lr), float(run.weight_decay), int(run.seed), str(run.optimizer), horizon, metrics,
                   getattr(run, "status", None))

    def has(self, *names: str) -> bool:
        return all(n in self.columns and np.isfinite(self.columns[n]).any() for n in names)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


Check = Callable[[Sequence[RunCurves]], ClaimResult]


def check_usable_runs(check: Check, runs: Sequence[RunCurves], **options: Any) -> ClaimResult:
    """``check`` on the runs whose training did not diverge, its ``detail`` saying how many diverged
    runs were left out (their curves stop at the divergence); ``not_applicable`` when all diverged."""
    usable = [run for run in runs if not run.diverged]
    diverged = [run.name for run in runs if run.diverged]
    if not diverged:
        return check(runs, **options)
    note = f"{len(diverged)} of {len(runs)} run(s) left out: diverged in training ({', '.join(diverged)})"
    if not usable:
        result = check(runs, **options)  # for its id, claim, source and criterion only
        return dataclasses.replace(result, verdict="not_applicable", statistic=None, interval=None,
                                   detail=f"no usable run: {note}", extra={"diverged_runs": diverged})
    result = check(usable, **options)
    detail = f"{result.detail}; {note}" if result.detail else note
    return dataclasses.replace(result, detail=detail, extra={**result.extra, "diverged_runs": diverged})
