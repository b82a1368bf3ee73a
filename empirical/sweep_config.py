"""The settings of a sweep (``SweepConfig``): validation, the grid, the logging schedule, and the
round trip through the files a sweep writes.

A sweep directory stores these settings twice (layout in ``empirical.runs``): ``sweep.json`` holds
:meth:`SweepConfig.to_dict`, and every run's ``config.json`` holds the same plus that run's ``run``
entry (seed, lr, weight decay) and ``name``. :meth:`SweepConfig.from_dict` and
:meth:`SweepConfig.from_run_config` read them back strictly: a missing or unknown key is an error
naming the file, never a silent default, so a network or a data split rebuilt from a run directory
(:meth:`model_spec`, :meth:`load_split`) is the one that was trained. The one exception is a setting
added after files were written without it (:data:`ADDED_SETTINGS`): it reads as the value that
reproduces those files (``group_size`` None: the grid was one batched group; ``loss`` "mse";
``betas`` torch's (0.9, 0.999); no ``modulus``/``train_fraction``; ``heads`` 4 and ``ff_width`` None,
the transformer's 4 heads and feed-forward 256; ``layers`` 1 and ``layer_norm`` "none", the 1-layer
modtransformer without LayerNorm; ``test_size`` None, the whole test set).

Data sets: the image sets of ``empirical.data`` (``mnist``, ``fashion-mnist``, ``cifar10``) and the
modular-arithmetic tasks ``modular-addition`` (``a + b mod p``) and ``modular-division``
(``a / b mod p``, ``b != 0``, ``p`` prime), whose population of pairs is finite (``empirical.data.modular``).
Settings left at ``None`` (and ``heldout_size`` left out) take their data set's default, resolved
when the config is made, so the files always hold the values used:

=================  ==============================  ==========================================
setting            image data sets                 modular data sets
=================  ==============================  ==========================================
``model``          ``mlp``                         ``modtransformer`` (the only one allowed)
``modulus``        (must stay None)                97 (Power et al.; Nanda et al. use 113)
``train_fraction`` (must stay None)                0.3
``train_size``     1000 (the first N images)       derived: ``round(train_fraction * n)`` of the
                                                   ``n`` pairs; another value is refused
``heldout_size``   5000 (None: every unused image) None = every unseen pair (0: no held-out set)
``batch_size``     100 (0: the whole training set) the whole training set (full batch, Nanda et
                                                   al.); 0 also means full batch
``ff_width``       256 (the transformer's)         512 (Nanda et al.)
``test_size``      None (the whole test set)       None (must stay None: every unseen pair)
``loss_reduction`` ``sum`` for ``mse`` (the paper's), ``mean`` for ``cross-entropy`` (Power et al.)
=================  ==============================  ==========================================

On a modular data set the pair permutation that splits train from test is seeded by
``heldout_seed``; the held-out set is the test set (every unseen pair) and metrics.csv gains the
exact population columns of ``empirical.modular`` (:data:`POPULATION_COLUMNS`).

``test_size`` N measures an image data set's test accuracy and loss (and the pair errors, margins and
--measure-ib, which read the test set) on a fixed subset of N test images instead of all of them: the
subset of ``empirical.data.splits.fixed_test_subset``, the same at every logged step, for every run
and every sweep, whatever the seeds; metrics.csv's ``test_size`` column then reads N.
``layers`` and ``layer_norm`` describe the modtransformer (``empirical.models``: 1 and "none" is Nanda
et al.'s, 2 and "post" Power et al.'s) and must stay at 1 and "none" for the other models.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from ncgrok.empirical.data.modular import MODULAR_DATASETS, training_pair_count
from ncgrok.empirical.data.records import DATASETS
from ncgrok.empirical.data.splits import DEFAULT_HELDOUT_SIZE, PAPER_TRAIN_SIZE
from ncgrok.empirical.engine import EVAL_CHUNK_SIZE, RunConfig, log_schedule
from ncgrok.empirical.losses import LOSSES, check_loss
from ncgrok.empirical.information_plane import INFORMATION_COLUMNS, InformationSettings
from ncgrok.empirical.measure import METRIC_COLUMNS
from ncgrok.empirical.models import LAYER_NORMS, ModelSpec
from ncgrok.empirical.modular import POPULATION_COLUMNS
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
ADDED_SETTINGS = {"group_size": None, "loss": "mse", "betas": [0.9, 0.999], "modulus": None, "train_fraction": None,
                  "heads": 4, "ff_width": None, "layers": 1, "layer_norm": "none", "test_size": None}

# Defaults of the modular data sets (Power et al. 2022; Nanda et al. 2023 use p = 113).
DEFAULT_MODULUS = 97
DEFAULT_TRAIN_FRACTION = 0.3
DEFAULT_BATCH_SIZE = 100  # of the image data sets (the paper's)
TORCH_BETAS = (0.9, 0.999)
NANDA_FF_WIDTH = 512


class _DatasetDefault:
    """The value of a setting left to its data set's default (resolved when the config is made,
    never stored): for ``heldout_size``, whose ``None`` already means "every unused example"."""

    def __repr__(self) -> str:
        return "<the data set's default>"


DATASET_DEFAULT = _DatasetDefault()


def flag_name(setting: str) -> str:
    """The command-line flag that sets ``setting`` (``lrs`` -> ``--lr``, ``train_size`` -> ``--train-size``)."""
    return _FLAGS.get(setting, "--" + setting.replace("_", "-"))


@dataclass
class SweepConfig:
    """Everything that defines a sweep. Defaults are the paper's main MNIST setting
    (Sakamoto & Sato, Figs. 2-4): MLP 784-200-200-200-10, init x8, summed squared loss, AdamW
    lr 1e-3, batch 100 from the first 1000 training images, 100,000 steps, the paper's logging
    schedule; the data-set dependent defaults are in the module docstring's table.
    ``heldout_size``: 0 for no held-out sample, ``None`` for every unused training image.
    ``group_size``: the grid is trained in batched groups of at most this many runs (:meth:`groups`),
    ``None`` for one group; a run's numbers depend on the group it was batched with (floating-point
    reassociation), so the groups are part of the settings and shards are made of whole groups.
    ``loss``: ``"mse"`` (squared error to one-hot, the paper's) or ``"cross-entropy"`` (softmax,
    Power et al.; Nanda et al.); ``betas``: AdamW's (Nanda et al.: (0.9, 0.98)). ``heads`` and
    ``ff_width``: attention heads and feed-forward width of the transformers; ``layers`` and
    ``layer_norm``: blocks of the modtransformer and where it normalises. ``test_size``: measure on a
    fixed subset of this many test images (None: all of them; see the module docstring)."""

    dataset: str = "mnist"
    data_dir: str | None = None
    modulus: int | None = None
    train_fraction: float | None = None
    model: str | None = None
    depth: int = 4
    width: int | None = None
    heads: int = 4
    ff_width: int | None = None
    layers: int = 1
    layer_norm: str = "none"
    init_scale: float | None = None
    train_size: int | None = None
    heldout_size: int | None | _DatasetDefault = DATASET_DEFAULT
    heldout_seed: int = 0
    test_size: int | None = None
    optimizer: str = "adamw"
    lrs: Sequence[float] = (1e-3,)
    weight_decays: Sequence[float] = (0.01,)
    seeds: Sequence[int] = (0,)
    batch_size: int | None = None
    steps: int = 100_000
    loss: str = "mse"
    loss_reduction: str | None = None
    dtype: str = "float32"
    device: str = "auto"
    momentum: float = 0.0
    betas: Sequence[float] = TORCH_BETAS
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
        self._resolve_data_settings()
        self._check_model_settings()
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
        if self.heldout_size is not None and self.heldout_size < 0:
            raise ValueError(f"heldout_size must be >= 0 (0 = no held-out sample), got {self.heldout_size}")
        if self.log_every is not None and self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss (--loss) must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.loss_reduction is None:
            self.loss_reduction = "sum" if self.loss == "mse" else "mean"
        check_loss(self.loss, self.loss_reduction)
        self.betas = _betas(self.betas)
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

    def _resolve_data_settings(self) -> None:
        """Check the data set and fill in its defaults: ``modulus``, ``train_fraction``, ``model``,
        ``train_size``, ``heldout_size`` and ``batch_size`` (see the module docstring's table)."""
        if self.dataset not in DATASETS and self.dataset not in MODULAR_DATASETS:
            names = ", ".join((*DATASETS, *MODULAR_DATASETS))
            raise ValueError(f"dataset (--dataset) must be one of {names}, got {self.dataset!r}")
        if self.is_modular:
            self._resolve_modular_settings()
        else:
            for name in ("modulus", "train_fraction"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{flag_name(name)} applies to --dataset modular-addition or modular-division "
                                     f"only, not {self.dataset}; leave it out")
            if self.model == "modtransformer":
                raise ValueError(f"--model modtransformer reads token pairs: it needs --dataset modular-addition or "
                                 f"modular-division, not {self.dataset}")
            self.model = "mlp" if self.model is None else self.model
            self.train_size = PAPER_TRAIN_SIZE if self.train_size is None else self.train_size
            if self.heldout_size is DATASET_DEFAULT:
                self.heldout_size = DEFAULT_HELDOUT_SIZE
            self.batch_size = DEFAULT_BATCH_SIZE if self.batch_size is None else self.batch_size
            if self.test_size is not None and not _whole(self.test_size, 1):
                raise ValueError(f"{flag_name('test_size')} must be a whole number >= 1 (a fixed subset of that many "
                                 f"test images; leave it out for the whole test set), got {self.test_size!r}")
        if not _whole(self.train_size, 1):
            raise ValueError(f"{flag_name('train_size')} must be a whole number >= 1, got {self.train_size!r}")
        self.train_size = int(self.train_size)
        if self.batch_size == 0:  # full batch
            self.batch_size = self.train_size
        if not _whole(self.batch_size, 1):
            raise ValueError(f"{flag_name('batch_size')} must be a whole number >= 1 (0: full batch), "
                             f"got {self.batch_size!r}")
        self.batch_size = int(self.batch_size)
        if self.batch_size > self.train_size:
            limit = (f"the {self.train_size} training pairs ({flag_name('modulus')} {self.modulus}, "
                     f"{flag_name('train_fraction')} {self.train_fraction})" if self.is_modular
                     else f"{flag_name('train_size')} ({self.train_size})")
            raise ValueError(f"{flag_name('batch_size')} ({self.batch_size}) cannot exceed {limit}; "
                             f"{flag_name('batch_size')} 0 trains on the full batch")

    def _resolve_modular_settings(self) -> None:
        if self.model not in (None, "modtransformer"):
            raise ValueError(f"--dataset {self.dataset} needs --model modtransformer (the transformer on token "
                             f"pairs), got --model {self.model}")
        self.model = "modtransformer"
        self.modulus = DEFAULT_MODULUS if self.modulus is None else self.modulus
        if not _whole(self.modulus, 2):
            raise ValueError(f"{flag_name('modulus')} must be a whole number >= 2, got {self.modulus!r}")
        self.modulus = int(self.modulus)
        if self.train_fraction is None:
            self.train_fraction = DEFAULT_TRAIN_FRACTION
        if isinstance(self.train_fraction, bool) or not isinstance(self.train_fraction, (int, float)):
            raise ValueError(f"{flag_name('train_fraction')} must be a number in (0, 1), got {self.train_fraction!r}")
        self.train_fraction = float(self.train_fraction)
        pairs = training_pair_count(self.modulus, self.train_fraction, self.operation)
        if self.train_size is not None and self.train_size != pairs:
            raise ValueError(f"{flag_name('train_size')} is derived for --dataset {self.dataset}: {flag_name('modulus')} "
                             f"{self.modulus} and {flag_name('train_fraction')} {self.train_fraction} give {pairs} "
                             f"training pairs, not {self.train_size}; leave {flag_name('train_size')} out")
        self.train_size = pairs
        if self.heldout_size is DATASET_DEFAULT:
            self.heldout_size = None
        if self.heldout_size not in (None, 0):
            raise ValueError(f"{flag_name('heldout_size')}: the held-out set of --dataset {self.dataset} is every unseen "
                             f"pair; leave {flag_name('heldout_size')} out (or give 0 for none), got {self.heldout_size!r}")
        self.batch_size = pairs if self.batch_size is None else self.batch_size
        if self.test_size is not None:
            raise ValueError(f"{flag_name('test_size')}: the test set of --dataset {self.dataset} is every unseen pair, "
                             f"measured exactly (the population is finite); leave {flag_name('test_size')} out, "
                             f"got {self.test_size!r}")

    def _check_model_settings(self) -> None:
        if not _whole(self.heads, 1):
            raise ValueError(f"{flag_name('heads')} must be a whole number >= 1, got {self.heads!r}")
        if self.ff_width is not None and not _whole(self.ff_width, 1):
            raise ValueError(f"{flag_name('ff_width')} must be a whole number >= 1, got {self.ff_width!r}")
        if not _whole(self.layers, 1):
            raise ValueError(f"{flag_name('layers')} must be a whole number >= 1, got {self.layers!r}")
        if self.layer_norm not in LAYER_NORMS:
            raise ValueError(f"{flag_name('layer_norm')} must be one of {', '.join(LAYER_NORMS)}, "
                             f"got {self.layer_norm!r}")
        for name, default in (("layers", 1), ("layer_norm", "none")):
            if self.model != "modtransformer" and getattr(self, name) != default:
                raise ValueError(f"{flag_name(name)} applies to --model modtransformer (the modular data sets) only, "
                                 f"not --model {self.model}; leave it out")

    # ------------------------------------------------------------------ what the settings imply
    @property
    def is_modular(self) -> bool:
        """Whether the data set is a modular-arithmetic task (a finite, enumerable population)."""
        return self.dataset in MODULAR_DATASETS

    @property
    def operation(self) -> str | None:
        """``"addition"`` or ``"division"`` for a modular data set, else None."""
        return MODULAR_DATASETS.get(self.dataset)

    def information_settings(self) -> InformationSettings:
        return InformationSettings(sigma=self.ib_sigma, sample_size=self.ib_samples)

    def columns(self) -> tuple[str, ...]:
        """Column names of every run's metrics.csv."""
        return (("step",) + METRIC_COLUMNS + (POPULATION_COLUMNS if self.is_modular else ())
                + (INFORMATION_COLUMNS if self.measure_ib else ()))

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
        ff_width = self.ff_width
        if ff_width is None:
            ff_width = NANDA_FF_WIDTH if self.model == "modtransformer" else ModelSpec.ff_width
        return ModelSpec(
            arch=self.model,
            input_shape=tuple(int(s) for s in input_shape),
            num_classes=int(num_classes),
            width=self.width,
            depth=self.depth,
            init_scale=self.init_scale,
            heads=self.heads,
            ff_width=ff_width,
            layers=self.layers,
            layer_norm=self.layer_norm,
        )

    def load_split(self, *, data_dir: str | os.PathLike | None = None) -> Any:
        """The data split the sweep trains on (``empirical.data.paper_split``, its test set cut to the
        ``test_size`` subset if one is set, or for a modular data set
        ``empirical.data.population_split`` of its pairs split with ``heldout_seed``); ``data_dir``
        overrides the stored data directory (the data may have moved since)."""
        from ncgrok.empirical.data import modular_split, paper_split, population_split  # needed only here

        if self.is_modular:
            split = population_split(modular_split(self.operation, self.modulus, self.train_fraction,
                                                   seed=self.heldout_seed), self.dataset)
            if self.heldout_size == 0:
                split = dataclasses.replace(split, heldout_x=split.heldout_x[:0], heldout_y=split.heldout_y[:0],
                                            heldout_indices=split.heldout_indices[:0])
            return split
        return paper_split(
            self.dataset,
            train_size=self.train_size,
            heldout_size=self.heldout_size,
            data_dir=self.data_dir if data_dir is None else data_dir,
            heldout_seed=self.heldout_seed,
            test_size=self.test_size,
        )

    # ------------------------------------------------------------------ round trip
    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (what ``sweep.json`` stores under ``config``)."""
        payload = dataclasses.asdict(self)
        for key in ("lrs", "weight_decays", "seeds", "snapshot_steps", "betas"):
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


def _whole(value: Any, minimum: int) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``minimum``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _betas(value: Any) -> tuple[float, float]:
    """AdamW's betas as two floats in [0, 1)."""
    try:
        betas = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        betas = ()
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas (--betas) must be two numbers in [0, 1), got {value!r}")
    return betas


def _as_json(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(payload))


def run_name(run: RunConfig) -> str:
    """Directory name of a run, e.g. ``wd0.01_lr0.001_seed0``."""
    return f"wd{run.weight_decay:g}_lr{run.lr:g}_seed{run.seed}"
