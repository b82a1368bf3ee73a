"""The settings of a sweep (``SweepConfig``): validation, the grid, the logging schedule, and the
round trip through the files a sweep writes.

A sweep directory stores these settings twice (layout in ``empirical.runs``): ``sweep.json`` holds
:meth:`SweepConfig.to_dict`, and every run's ``config.json`` holds the same plus that run's ``run``
entry (seed, lr, weight decay) and ``name``. :meth:`SweepConfig.from_dict` and
:meth:`SweepConfig.from_run_config` read them back strictly: a missing or unknown key is an error
naming the file, never a silent default, so a network or a data split rebuilt from a run directory
(:meth:`model_spec`, :meth:`load_split`) is the one that was trained. The one exception is a setting
added after files were written without it (:data:`ADDED_SETTINGS`): it reads as the value that
reproduces those files (``group_size`` None: the grid was one batched group).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from ncgrok.empirical.data.splits import DEFAULT_HELDOUT_SIZE, PAPER_TRAIN_SIZE
from ncgrok.empirical.engine import EVAL_CHUNK_SIZE, RunConfig, log_schedule
from ncgrok.empirical.measure import INFORMATION_COLUMNS, METRIC_COLUMNS, InformationSettings
from ncgrok.empirical.models import ModelSpec
from ncgrok.empirical.shards import group_slices

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Settings that may differ on --resume without changing the computation.
RESUMABLE_DIFFERENCES = frozenset({"device", "checkpoint_seconds", "measure_chunk_size", "data_dir"})

# The command-line flag of each setting, where it is not "--" + the name with dashes.
_FLAGS = {"lrs": "--lr", "weight_decays": "--weight-decay", "seeds": "--seed/--seeds"}

# Keys a run's config.json adds to the sweep's settings.
RUN_KEYS = ("run", "name")

# Settings added after sweep directories were first written, with the value that reproduces the files
# written before they existed (read in place of a missing key; never written by default).
ADDED_SETTINGS = {"group_size": None}


def flag_name(setting: str) -> str:
    """The command-line flag that sets ``setting`` (``lrs`` -> ``--lr``, ``train_size`` -> ``--train-size``)."""
    return _FLAGS.get(setting, "--" + setting.replace("_", "-"))


@dataclass
class SweepConfig:
    """Everything that defines a sweep. Defaults are the paper's main MNIST setting
    (Sakamoto & Sato, Figs. 2-4): MLP 784-200-200-200-10, init x8, summed squared loss, AdamW
    lr 1e-3, batch 100 from the first 1000 training images, 100,000 steps, the paper's logging
    schedule. ``heldout_size``: 0 for no held-out sample, ``None`` for every unused training image.
    ``group_size``: the grid is trained in batched groups of at most this many runs (:meth:`groups`),
    ``None`` for one group; a run's numbers depend on the group it was batched with (floating-point
    reassociation), so the groups are part of the settings and shards are made of whole groups."""

    dataset: str = "mnist"
    data_dir: str | None = None
    model: str = "mlp"
    depth: int = 4
    width: int | None = None
    init_scale: float | None = None
    train_size: int = PAPER_TRAIN_SIZE
    heldout_size: int | None = DEFAULT_HELDOUT_SIZE
    heldout_seed: int = 0
    optimizer: str = "adamw"
    lrs: Sequence[float] = (1e-3,)
    weight_decays: Sequence[float] = (0.01,)
    seeds: Sequence[int] = (0,)
    batch_size: int = 100
    steps: int = 100_000
    loss_reduction: str = "sum"
    dtype: str = "float32"
    device: str = "auto"
    momentum: float = 0.0
    log_every: int | None = None
    delta: float = 0.05
    snapshot_steps: Sequence[int] = ()
    checkpoint_seconds: float = 10.0
    measure_chunk_size: int = EVAL_CHUNK_SIZE
    measure_ib: bool = False
    ib_sigma: float = InformationSettings.sigma
    ib_samples: int = 2000
    ib_every: int = 1
    group_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lrs = tuple(float(v) for v in self.lrs)
        self.weight_decays = tuple(float(v) for v in self.weight_decays)
        self.seeds = tuple(int(v) for v in self.seeds)
        self.snapshot_steps = tuple(sorted(int(v) for v in self.snapshot_steps))
        for name, values in (("lr", self.lrs), ("weight_decay", self.weight_decays), ("seeds", self.seeds)):
            if not values:
                raise ValueError(f"{name} needs at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has repeated values {list(values)}; give each once")
        if any(not math.isfinite(v) or v <= 0 for v in self.lrs):
            raise ValueError(f"lr must be > 0, got {list(self.lrs)}")
        if any(not math.isfinite(v) or v < 0 for v in self.weight_decays):
            raise ValueError(f"weight_decay must be >= 0, got {list(self.weight_decays)}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.batch_size > self.train_size:
            raise ValueError(f"{flag_name('batch_size')} ({self.batch_size}) cannot exceed "
                             f"{flag_name('train_size')} ({self.train_size})")
        if self.heldout_size is not None and self.heldout_size < 0:
            raise ValueError(f"heldout_size must be >= 0 (0 = no held-out sample), got {self.heldout_size}")
        if self.log_every is not None and self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {self.loss_reduction!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must lie strictly between 0 and 1, got {self.delta}")
        if not self.checkpoint_seconds >= 0:
            raise ValueError(f"checkpoint_seconds must be >= 0, got {self.checkpoint_seconds}")
        if self.ib_every < 1:
            raise ValueError(f"ib_every must be >= 1, got {self.ib_every}")
        if self.group_size is not None and (not isinstance(self.group_size, int) or isinstance(self.group_size, bool)
                                            or self.group_size < 1):
            raise ValueError(f"group_size (--group-size) must be an integer >= 1, got {self.group_size!r}")
        if self.measure_ib:
            self.information_settings()  # validates ib_sigma and ib_samples
        if any(s < 0 or s > self.steps for s in self.snapshot_steps):
            raise ValueError(f"{flag_name('snapshot_steps')} must lie in [0, {flag_name('steps')} = {self.steps}], "
                             f"got {list(self.snapshot_steps)}")

    # ------------------------------------------------------------------ what the settings imply
    def information_settings(self) -> InformationSettings:
        return InformationSettings(sigma=self.ib_sigma, sample_size=self.ib_samples)

    def columns(self) -> tuple[str, ...]:
        """Column names of every run's metrics.csv."""
        return ("step",) + METRIC_COLUMNS + (INFORMATION_COLUMNS if self.measure_ib else ())

    def information_steps(self) -> set[int]:
        """Logged steps that also carry the --measure-ib columns: every ``ib_every``-th logged step
        of the full schedule, and the last one (the others get NaN there)."""
        schedule = self.schedule()
        return set(schedule[:: self.ib_every]) | {schedule[-1]}

    def runs(self) -> list[RunConfig]:
        """The grid, ordered by weight decay, then learning rate, then seed."""
        return [
            RunConfig(seed=seed, lr=lr, weight_decay=decay)
            for decay in self.weight_decays
            for lr in self.lrs
            for seed in self.seeds
        ]

    def groups(self) -> list[list[RunConfig]]:
        """The grid (:meth:`runs`, in order) cut into consecutive batched groups of ``group_size`` runs
        (the last may be smaller); one group when ``group_size`` is ``None``."""
        runs = self.runs()
        return [[runs[position] for position in positions] for positions in group_slices(len(runs), self.group_size)]

    def schedule(self) -> list[int]:
        """Logged steps: the paper's schedule (or every ``log_every`` steps), plus snapshot steps."""
        if self.log_every is None:
            steps = set(log_schedule(self.steps))
        else:
            steps = set(range(0, self.steps, self.log_every)) | {self.steps}
        return sorted(steps | set(self.snapshot_steps))

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def model_spec(self, input_shape: Sequence[int], num_classes: int) -> ModelSpec:
        """The network of every run, for data with examples of shape ``input_shape``."""
        return ModelSpec(
            arch=self.model,
            input_shape=tuple(int(s) for s in input_shape),
            num_classes=int(num_classes),
            width=self.width,
            depth=self.depth,
            init_scale=self.init_scale,
        )

    def load_split(self, *, data_dir: str | os.PathLike | None = None) -> Any:
        """The data split the sweep trains on (``empirical.data.paper_split``); ``data_dir``
        overrides the stored data directory (the data may have moved since)."""
        from ncgrok.empirical.data import paper_split  # the data layer is needed only here

        return paper_split(
            self.dataset,
            train_size=self.train_size,
            heldout_size=self.heldout_size,
            data_dir=self.data_dir if data_dir is None else data_dir,
            heldout_seed=self.heldout_seed,
        )

    # ------------------------------------------------------------------ round trip
    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (what ``sweep.json`` stores under ``config``)."""
        payload = dataclasses.asdict(self)
        for key in ("lrs", "weight_decays", "seeds", "snapshot_steps"):
            payload[key] = list(payload[key])
        return payload

    def run_config(self, run: RunConfig, name: str) -> dict[str, Any]:
        """A run's ``config.json``: the sweep's settings, its ``run`` entry and its ``name``."""
        return {**self.to_dict(), "run": dataclasses.asdict(run), "name": name}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], *, source: str | os.PathLike = "the settings") -> "SweepConfig":
        """Inverse of :meth:`to_dict`. Every setting must be present (no defaults are filled in) and
        valid; errors name ``source`` (the file the payload came from)."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"{source}: the sweep settings must be a JSON object, got {type(payload).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        payload = {**{k: v for k, v in ADDED_SETTINGS.items() if k not in payload}, **payload}
        unknown = sorted(set(payload) - set(known))
        missing = [name for name in known if name not in payload]
        if unknown or missing:
            parts = ([f"unknown settings {unknown}"] if unknown else []) + ([f"missing settings {missing}"] if missing else [])
            raise ValueError(f"{source}: {'; '.join(parts)} (written by another ncgrok version, or edited by hand)")
        try:
            return cls(**payload)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: invalid settings: {error}") from None

    @classmethod
    def from_run_config(cls, payload: Mapping[str, Any], *, source: str | os.PathLike) -> "SweepConfig":
        """The sweep settings inside a run's ``config.json`` payload (its ``run`` and ``name`` keys removed)."""
        if not isinstance(payload, Mapping) or any(key not in payload for key in RUN_KEYS):
            raise ValueError(f"{source} lacks the {list(RUN_KEYS)} entries of a run written by ncgrok train/sweep")
        return cls.from_dict({k: v for k, v in payload.items() if k not in RUN_KEYS}, source=source)

    def resume_differences(self, stored: "SweepConfig") -> list[str]:
        """The settings that differ from ``stored`` and forbid ``--resume``, one line each:
        ``--steps: stored 40, given 20`` (settings in :data:`RESUMABLE_DIFFERENCES` may differ)."""
        ours, theirs = _as_json(self.to_dict()), _as_json(stored.to_dict())
        return [
            f"{flag_name(key)}: stored {json.dumps(theirs[key])}, given {json.dumps(ours[key])}"
            for key in ours
            if key not in RESUMABLE_DIFFERENCES and ours[key] != theirs[key]
        ]


def _as_json(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(payload))


def run_name(run: RunConfig) -> str:
    """Directory name of a run, e.g. ``wd0.01_lr0.001_seed0``."""
    return f"wd{run.weight_decay:g}_lr{run.lr:g}_seed{run.seed}"
