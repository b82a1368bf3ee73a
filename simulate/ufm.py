"""The unconstrained features model (UFM) under gradient descent with weight decay (Thm. 4.3, R5).

What is simulated
-----------------
The features of the ``N`` training samples are free parameters: a ``p x N`` matrix ``H`` whose column
``i`` is ``h_i``. A linear classifier ``W`` (``K x p``) and, optionally, a bias ``b`` (``K``) map them
to outputs ``W H + b 1^T``. The objective is the squared loss to one-hot targets ``Y`` (``K x N``)
plus weight decay on ``W`` and ``H``:

    L(W, H, b) = (1/2) ||W H + b 1^T - Y||_F^2  +  (lambda/2) (||W||_F^2 + ||H||_F^2).

The bias is **not** decayed (as in the usual practice of exempting biases from weight decay); it
enters no identity below, because it sits after ``W`` and so does not change the gradient relation
``W^T G_W = G_H H^T`` on which the balancedness identity rests.

Plain gradient descent with step ``eta`` is

    W <- (1 - eta lambda) W - eta G_W,   H <- (1 - eta lambda) H - eta G_H,   b <- b - eta G_b,

where ``G_W = R H^T``, ``G_H = W^T R`` and ``G_b = R 1`` are the gradients of the *unregularized*
loss, ``R = W H + b 1^T - Y`` the residual; all three use the parameters before the step.

**Gradient flow.** With ``substeps = m > 1`` every nominal step of size ``eta`` is carried out as
``m`` GD steps of size ``eta / m``. The step counter keeps counting nominal steps, so step ``t``
always corresponds to flow time ``t * eta``; as ``m`` grows the trajectory approaches the gradient
flow ``dtheta/ds = -grad L`` at time ``s = t eta`` (the one-step identities below then hold for each
substep, with ``eta / m`` in place of ``eta``).

Facts this simulator is built to exhibit (status: rates **published** in Thm. 4.3 of Sakamoto &
Sato, arXiv:2509.20829; the exact UFM forms are **reconstructed**, see ``theory/timescales.py``):

* two samples of the same class share a target, so their difference obeys
  ``delta' = (I - eta (W^T W + lambda I)) delta`` exactly; its component in the null space of ``W``
  shrinks by exactly ``1 - eta lambda`` per step when ``W`` is held fixed
  (``train_classifier=False``), while the component in the row space of ``W`` shrinks at the fast
  fitting rate. Hence the trajectory records the within-class spread split into the row space of
  the current ``W`` and its orthogonal complement;
* the imbalance ``D = W^T W - H H^T`` obeys the one-step balancedness identity of
  :func:`theory.timescales.balancedness_step` with ``W`` in the role of the last layer and ``H`` in
  the role of the layer before it.

Every collapse measure is computed by :mod:`theory.collapse` from the features ``H^T``; this module
only evolves the parameters and records.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ncgrok.files import atomic_write_text
from ncgrok.simulate.schedule import evenly_spaced_steps, log_spaced_steps
from ncgrok.theory._validation import as_count, as_scalar
from ncgrok.theory.collapse import COLLAPSE_MEASURES, SCALE_ESTIMATORS, ClassStatistics, collapse_measures
from ncgrok.theory.timescales import decoupled_decay, imbalance

__all__ = [
    "UFMConfig",
    "UFMGradients",
    "UFMSimulator",
    "UFMResult",
    "TRAJECTORY_COLUMNS",
    "ufm_gradients",
    "simulate_ufm",
]

# Names of the floating-point types a run can use (``UFMConfig.dtype``).
DTYPE_NAMES = ("float64", "float32")

# Columns of the trajectory, in CSV order.
TRAJECTORY_COLUMNS = (
    "step",                    # nominal GD step t
    "time",                    # flow time t * lr
    "loss",                    # (1/2)||W H + b - Y||_F^2 (unregularized)
    "loss_relative",           # loss / loss at step 0
    "objective",               # loss + (lambda/2)(||W||^2 + ||H||^2)
    "train_accuracy",          # fraction of samples with argmax_k (W h_i + b)_k = y_i
    # every collapse measure but nc1_pinv: the UFM statistics are built without scatter matrices
    *(name for name in COLLAPSE_MEASURES if name != "nc1_pinv"),
    "imbalance",               # ||W^T W - H H^T||_F
    "spread",                  # sum_i ||h_i - mu_{y_i}||^2 (= N * within_var)
    "spread_row",              # spread of the features projected on the row space of the current W
    "spread_null",             # spread of the features projected on the null space of the current W
    "classifier_rank",         # numerical rank of W
    "classifier_norm",         # spectral norm ||W||_2
    "weight_norm",             # Frobenius norm ||W||_F
    "feature_frobenius_norm",  # Frobenius norm ||H||_F
    "step_size_condition",     # 1 if lr (||W||_2^2 + lambda) <= 2 - lr lambda, else 0
)


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class UFMConfig:
    """Settings of one UFM run; validated on construction (``ValueError`` naming the argument).

    * ``num_classes`` ``K >= 2``; ``samples_per_class``: one count for balanced classes or one count
      per class; ``feature_dim`` ``p >= 1`` (``p > K`` leaves ``W`` a null space, the setting of the
      slow ``1/(eta lambda)`` collapse).
    * ``init_scale``: entries of ``W`` and ``H`` start i.i.d. ``N(0, init_scale^2 / p)``, so every
      feature column and classifier row has norm about ``init_scale``; the bias starts at 0.
    * ``lr`` ``eta > 0``, ``weight_decay`` ``lambda >= 0`` with ``eta lambda < 1``; ``steps``
      nominal steps; ``substeps`` (gradient-flow approximation, see the module docstring).
    * ``bias``: learn an undecayed bias; ``train_classifier=False`` freezes ``W`` (and the bias) at
      its initial value, so only the features move.
    * ``log_every``: record every that many steps; otherwise ``log_points`` log-spaced steps (plus
      step 0 and the last step).
    * ``eps1``, ``eps2`` in (0, 1) and ``scale`` (``"mean"`` or ``"sup"``): the thresholds and RNC1
      scale used by the time-scale extraction (:mod:`simulate.trajectories`) and, with
      ``stop_when_collapsed``, to stop the run at the first logged step with relative loss
      ``<= eps1`` and RNC1 ``<= eps2``.
    """

    num_classes: int = 4
    samples_per_class: int | tuple[int, ...] = 8
    feature_dim: int = 16
    init_scale: float = 0.1
    lr: float = 0.1
    weight_decay: float = 1e-2
    steps: int = 20000
    substeps: int = 1
    bias: bool = False
    train_classifier: bool = True
    dtype: str = "float64"
    seed: int = 0
    log_every: int | None = None
    log_points: int = 200
    eps1: float = 1e-3
    eps2: float = 1e-6
    scale: str = "mean"
    stop_when_collapsed: bool = False

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("num_classes", as_count("num_classes", self.num_classes, minimum=2))
        set_("samples_per_class", _samples_per_class(self.samples_per_class, self.num_classes))
        set_("feature_dim", as_count("feature_dim", self.feature_dim, minimum=1))
        set_("init_scale", as_scalar("init_scale", self.init_scale, positive=True))
        set_("lr", as_scalar("lr", self.lr, positive=True))
        set_("weight_decay", as_scalar("weight_decay", self.weight_decay, nonnegative=True))
        if decoupled_decay(self.lr, self.weight_decay) <= 0.0:
            raise ValueError(
                f"lr * weight_decay (--lr x --weight-decay) must be < 1 (the decay factor 1 - lr*weight_decay must "
                f"stay positive), "
                f"got lr={self.lr:g}, weight_decay={self.weight_decay:g}"
            )
        set_("steps", as_count("steps", self.steps, minimum=1))
        set_("substeps", as_count("substeps", self.substeps, minimum=1))
        set_("bias", bool(self.bias))
        set_("train_classifier", bool(self.train_classifier))
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {DTYPE_NAMES}, got {self.dtype!r}")
        set_("seed", as_count("seed", self.seed, minimum=0))
        if self.log_every is not None:
            set_("log_every", as_count("log_every", self.log_every, minimum=1))
        set_("log_points", as_count("log_points", self.log_points, minimum=2))
        set_("eps1", as_scalar("eps1", self.eps1, open_unit=True))
        set_("eps2", as_scalar("eps2", self.eps2, open_unit=True))
        if self.scale not in SCALE_ESTIMATORS:
            raise ValueError(f"scale must be one of {SCALE_ESTIMATORS}, got {self.scale!r}")
        set_("stop_when_collapsed", bool(self.stop_when_collapsed))

    @property
    def class_counts(self) -> tuple[int, ...]:
        """Number of samples of each class."""
        if isinstance(self.samples_per_class, int):
            return (self.samples_per_class,) * self.num_classes
        return tuple(self.samples_per_class)

    @property
    def num_samples(self) -> int:
        return int(sum(self.class_counts))

    def recorded_steps(self) -> np.ndarray:
        """The steps at which a run records: ``0, k, 2k, ...`` with ``log_every=k``, otherwise about
        ``log_points`` log-spaced steps in ``[1, steps]``; always includes 0 and ``steps``."""
        if self.log_every is not None:
            return evenly_spaced_steps(self.steps, self.log_every)
        return log_spaced_steps(self.steps, self.log_points)

    def replace(self, **changes: Any) -> "UFMConfig":
        """A copy with some fields changed (validated again)."""
        values = asdict(self)
        values.update(changes)
        return UFMConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        if isinstance(values["samples_per_class"], tuple):
            values["samples_per_class"] = list(values["samples_per_class"])
        return values


def _samples_per_class(value: Any, num_classes: int) -> int | tuple[int, ...]:
    if isinstance(value, (list, tuple, np.ndarray)):
        counts = tuple(as_count("samples_per_class", item, minimum=1) for item in value)
        if len(counts) != num_classes:
            raise ValueError(
                f"samples_per_class (--samples-per-class) must be one count or one count per class "
                f"(--classes {num_classes}), got {len(counts)}"
            )
        return counts
    return as_count("samples_per_class", value, minimum=1)


# --------------------------------------------------------------------------- gradients
@dataclass(frozen=True)
class UFMGradients:
    """Gradients of the *unregularized* loss ``(1/2)||W H + b - Y||^2`` and that loss's value."""

    weights: np.ndarray  # dL/dW, K x p  (the "last layer" gradient G_L)
    features: np.ndarray  # dL/dH, p x N  (the "previous layer" gradient G_{L-1})
    bias: np.ndarray  # dL/db, K
    residual: np.ndarray  # W H + b - Y, K x N
    loss: float


def ufm_gradients(weights: np.ndarray, features: np.ndarray, bias: np.ndarray | None, targets: np.ndarray) -> UFMGradients:
    """Gradients of ``(1/2)||W H + b 1^T - Y||_F^2`` at ``(W, H, b)`` (``bias=None`` means no bias)."""
    residual = weights @ features
    if bias is not None:
        residual += bias[:, None]
    residual -= targets
    return UFMGradients(
        weights=residual @ features.T,
        features=weights.T @ residual,
        bias=residual.sum(axis=1),
        residual=residual,
        loss=0.5 * float(np.vdot(residual, residual)),
    )


# --------------------------------------------------------------------------- simulator
class UFMSimulator:
    """The state ``(W, H, b)`` of one UFM run and its GD step.

    Attributes ``weights`` (``W``, K x p), ``features`` (``H``, p x N), ``bias`` (K, zeros and never
    updated without ``config.bias``), ``labels`` (N), ``targets`` (``Y``, K x N) and ``step_count``
    (nominal steps taken). :meth:`step` advances; :meth:`measure` records one trajectory row.
    """

    def __init__(self, config: UFMConfig) -> None:
        if not isinstance(config, UFMConfig):
            raise ValueError(f"config must be a UFMConfig, got {type(config).__name__}")
        self.config = config
        dtype = np.dtype(config.dtype)
        rng = np.random.default_rng(config.seed)
        k, p = config.num_classes, config.feature_dim
        self.labels = np.repeat(np.arange(k), config.class_counts)
        n = len(self.labels)
        self.targets = np.zeros((k, n), dtype=dtype)
        self.targets[self.labels, np.arange(n)] = 1.0
        std = config.init_scale / math.sqrt(p)
        self.weights = (std * rng.standard_normal((k, p))).astype(dtype)
        self.features = (std * rng.standard_normal((p, n))).astype(dtype)
        self.bias = np.zeros(k, dtype=dtype)
        self.step_count = 0
        self.initial_loss = self.gradients().loss

    # ------------------------------------------------------------------ dynamics
    def gradients(self) -> UFMGradients:
        """Gradients of the unregularized loss at the current state."""
        return ufm_gradients(self.weights, self.features, self.bias if self.config.bias else None, self.targets)

    def step(self, count: int = 1) -> None:
        """Take ``count`` nominal GD steps (each made of ``config.substeps`` substeps)."""
        config = self.config
        eta = config.lr / config.substeps
        dtype = self.features.dtype
        decay = dtype.type(decoupled_decay(eta, config.weight_decay))
        eta = dtype.type(eta)
        weights, features, bias, targets = self.weights, self.features, self.bias, self.targets
        use_bias, train_classifier = config.bias, config.train_classifier
        for _ in range(count * config.substeps):
            residual = weights @ features
            if use_bias:
                residual += bias[:, None]
            residual -= targets
            grad_features = weights.T @ residual
            if train_classifier:
                grad_weights = residual @ features.T
                weights *= decay
                weights -= eta * grad_weights
                if use_bias:
                    bias -= eta * residual.sum(axis=1)
            features *= decay
            features -= eta * grad_features
        self.step_count += count

    # ------------------------------------------------------------------ measurement
    def classifier_projector(self) -> tuple[np.ndarray, int, float]:
        """Orthonormal basis (rows) of the row space of ``W``, its numerical rank and ``||W||_2``."""
        weights = self.weights.astype(np.float64)
        _, singular, right = np.linalg.svd(weights, full_matrices=False)
        top = float(singular[0]) if singular.size else 0.0
        tolerance = max(weights.shape) * np.finfo(self.weights.dtype).eps * top
        rank = int(np.sum(singular > tolerance))
        return right[:rank], rank, top

    def measure(self) -> dict[str, float]:
        """One trajectory row (the columns of :data:`TRAJECTORY_COLUMNS`), in float64."""
        config = self.config
        weights = self.weights.astype(np.float64)
        features = self.features.astype(np.float64)
        outputs = weights @ features
        if config.bias:
            outputs += self.bias.astype(np.float64)[:, None]
        residual = outputs - self.targets
        loss = 0.5 * float(np.vdot(residual, residual))
        squared_norms = float(np.vdot(weights, weights) + np.vdot(features, features))
        k = config.num_classes
        stats = ClassStatistics.from_features(features.T, self.labels, num_classes=k, covariance=False)
        measures = collapse_measures(stats)
        basis, rank, top = self.classifier_projector()
        row_part = basis.T @ (basis @ features)
        spread_row, spread_null = _split_spread(row_part, features - row_part, self.labels, k)
        row = {
            "step": float(self.step_count),
            "time": self.step_count * config.lr,
            "loss": loss,
            "loss_relative": loss / self.initial_loss if self.initial_loss > 0 else float("nan"),
            "objective": loss + 0.5 * config.weight_decay * squared_norms,
            "train_accuracy": float(np.mean(np.argmax(outputs, axis=0) == self.labels)),
            "imbalance": float(np.linalg.norm(imbalance(weights, features))),
            "spread": measures["within_var"] * stats.total,
            "spread_row": spread_row,
            "spread_null": spread_null,
            "classifier_rank": float(rank),
            "classifier_norm": top,
            "weight_norm": float(np.linalg.norm(weights)),
            "feature_frobenius_norm": float(np.linalg.norm(features)),
            "step_size_condition": float(
                config.lr / config.substeps * (top**2 + config.weight_decay)
                <= 2.0 - config.lr / config.substeps * config.weight_decay
            ),
        }
        for name in ("nc1", "rnc1", "rnc1_sup", "nc2", "etf_deviation", "within_var", "between_var",
                     "feature_norm_mean", "feature_norm_max"):
            row[name] = measures[name]
        return row


def _split_spread(row_part: np.ndarray, null_part: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[float, float]:
    """``sum_i ||P (h_i - mu_{y_i})||^2`` for the two projections, through :mod:`theory.collapse`.

    Projections are linear, so the class-centred spread of the projected features is the projection
    of the spread. Both parts go into one :class:`ClassStatistics` with ``2K`` classes (the null-space
    copies relabelled ``c + K``); its per-class centred scatter gives the two sums.
    """
    stats = ClassStatistics.from_features(
        np.concatenate([row_part.T, null_part.T]),
        np.concatenate([labels, labels + num_classes]),
        num_classes=2 * num_classes,
        covariance=False,
    )
    return float(stats.scatter[:num_classes].sum()), float(stats.scatter[num_classes:].sum())


# --------------------------------------------------------------------------- result
@dataclass
class UFMResult:
    """A UFM trajectory: ``trajectory[name]`` is a float64 array over the logged steps.

    ``result["rnc1"]`` is shorthand for ``result.trajectory["rnc1"]``. ``weights``, ``features`` and
    ``bias`` hold the final state; ``stopped_early`` says whether ``stop_when_collapsed`` ended it.
    """

    config: UFMConfig
    trajectory: dict[str, np.ndarray]
    labels: np.ndarray
    weights: np.ndarray
    features: np.ndarray
    bias: np.ndarray
    initial_loss: float
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.trajectory[name]
        except KeyError:
            raise ValueError(f"no trajectory column {name!r}; columns: {', '.join(self.trajectory)}") from None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.trajectory)

    def __len__(self) -> int:
        return len(self.trajectory["step"])

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the trajectory as CSV (header row, full float precision), atomically."""
        columns = self.columns
        table = np.column_stack([self.trajectory[name] for name in columns])
        lines = [",".join(columns)]
        for values in table:
            lines.append(",".join(_format_number(name, value) for name, value in zip(columns, values)))
        return atomic_write_text(path, "\n".join(lines) + "\n")


def _format_number(name: str, value: float) -> str:
    if name in ("step", "classifier_rank", "step_size_condition") and math.isfinite(value):
        return str(int(value))
    return repr(float(value))


# --------------------------------------------------------------------------- driver
def simulate_ufm(
    config: UFMConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    **overrides: Any,
) -> UFMResult:
    """Run the UFM for ``config.steps`` nominal steps and return its trajectory.

    Keyword ``overrides`` replace config fields (``simulate_ufm(weight_decay=1e-3)``). ``progress``
    is called as ``progress(step, total_steps)`` after every logged step. The run diverging (a
    non-finite loss, e.g. ``lr`` far too large) raises ``ValueError`` naming ``lr``.
    """
    if config is None:
        config = UFMConfig(**overrides)
    elif overrides:
        config = config.replace(**overrides)
    simulator = UFMSimulator(config)
    schedule = config.recorded_steps()
    rows: list[dict[str, float]] = []
    fitted = collapsed = stopped = False
    for target in schedule:
        with np.errstate(over="ignore", invalid="ignore"):
            simulator.step(int(target) - simulator.step_count)
        if not (np.all(np.isfinite(simulator.weights)) and np.all(np.isfinite(simulator.features))):
            raise ValueError(
                f"the run diverged at step {simulator.step_count} (non-finite parameters); lower lr "
                f"(lr={config.lr:g}) so that lr * (||W||_2^2 + weight_decay) stays below 2"
            )
        row = simulator.measure()
        rows.append(row)
        if progress is not None:
            progress(simulator.step_count, config.steps)
        if config.stop_when_collapsed:
            fitted = fitted or row["loss_relative"] <= config.eps1
            collapsed = collapsed or row["rnc1" if config.scale == "mean" else "rnc1_sup"] <= config.eps2
            if fitted and collapsed and simulator.step_count < config.steps:
                stopped = True
                break
    trajectory = {name: np.array([row[name] for row in rows], dtype=np.float64) for name in TRAJECTORY_COLUMNS}
    return UFMResult(
        config=config,
        trajectory=trajectory,
        labels=simulator.labels.copy(),
        weights=simulator.weights.copy(),
        features=simulator.features.copy(),
        bias=simulator.bias.copy(),
        initial_loss=simulator.initial_loss,
        stopped_early=stopped,
    )
