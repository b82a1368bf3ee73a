"""Measurement of many runs at a logged step: losses, accuracies, collapse measures and bounds.

The model side (features and logits of every run, in one batched pass) comes from the training
engine; this module turns them into per-class sufficient statistics (accumulated in float64 on the
device, centred, batch by batch) and hands those to ``theory``, which owns every formula:
collapse measures (``theory.collapse``), the held-out radius of Thm. 4.1
(``theory.concentration``), the Cantelli bound of Thm. 3.2 (``theory.generalization``) and the
imbalance of Thm. 4.3 (``theory.timescales``).

Columns produced for each run (see ``METRIC_COLUMNS``):

* ``train_loss``, ``test_loss``: squared error to the one-hot target, summed over the outputs and
  averaged over the samples (the paper's summed training loss divided by the number of samples), or
  with ``loss="cross-entropy"`` the softmax cross-entropy averaged over the samples;
  ``train_acc``, ``test_acc``; ``test_size``, the number of test examples (the sample size of
  ``1 - test_acc``, for its sampling error).
* On the training set: ``nc1``, ``nc1_pinv``, ``rnc1`` (mean-norm scale, the paper's plots),
  ``rnc1_sup`` (largest-norm scale, the theory's ``B_g``), ``nc2``, ``etf_deviation``,
  ``within_var``, ``between_var`` (unscaled traces), ``feature_norm_mean``, ``feature_norm_max``.
* On the held-out population sample (training images the network never saw), Def. 3.1's population
  within-class variance estimated without bias:

  - ``heldout_within_var``: rescaled by the training set's mean norm (comparable with ``rnc1``);
  - ``heldout_within_var_clip``: at ``rnc1_sup``'s scale ``B`` = the training set's largest feature
    norm (fixed before the held-out data are seen), after clipping each held-out feature to norm
    ``B`` (``g -> g min(1, B / ||g||)``), so that ``||g / B|| <= 1`` holds by construction and
    ``heldout_radius`` is a valid Thm. 4.1 radius for it. Clipping is the projection onto a ball,
    which never increases distances, so this is never above the unclipped variance at scale ``B``
    (a conservative estimate for "the population variance is large");
  - ``heldout_frac_above_scale``: the fraction of held-out samples whose feature norm exceeds ``B``
    (the samples clipped above; when it is not small, the clipped value and the unclipped one part);
  - ``heldout_within_var_sup``: kept with its old meaning, rescaled by ``B'`` = the largest norm over
    the training *and* held-out samples. ``B'`` is not ``rnc1_sup``'s scale and depends on the
    held-out sample, so this column is not comparable with ``rnc1_sup``; use
    ``heldout_within_var_clip``;
  - ``heldout_radius``: the prior-weighted Thm. 4.1 (reconstructed) radius at ``delta``: rigorous for
    ``heldout_within_var_clip`` (features of norm at most 1 by construction, scale independent of the
    held-out sample), only approximate for ``heldout_within_var_sup``;
  - ``heldout_nc1``: the trace-ratio NC1 of the held-out features (``nc1``'s definition, with the
    held-out class means), scale free; for labels independent of the inputs it stays large
    (the population has no between-class variance) however far the training ``nc1`` falls.
* Thm. 3.2 with held-out class means, unbiased variances and priors (plug-in population statistics),
  to compare with errors on the **test** set, an independent sample. (On the held-out sample itself
  the comparison could not fail: Cantelli's inequality holds for the sample's own distribution.)

  - ``cantelli_bound``: the published sum over classes and competitors, compare with
    ``1 - test_acc``; it can exceed 1 (up to ``K - 1``), and is then vacuous;
  - ``cantelli_bound_clipped``: each class's inner sum capped at 1 (never above 1);
  - ``cantelli_bound_directional_clipped``: the directional variance ``s_ck^2 = u_ck^T C_c u_ck`` in
    place of ``V_c``, class sums capped at 1 (the tightest form). It is computed from the class
    means and covariances of the held-out *logits* with identity weights: the logits are
    ``W g + b``, so the score gap of a pair has the same mean and variance either way (tested);
  - ``cantelli_pair_term``: the largest two-class term ``(1 + max(m_ck, 0)^2 / V_c)^-1`` over ordered
    pairs (true class ``c``, competitor ``k``): at most 1, it bounds the pairwise error
    ``P(z_k >= z_c | Y = c)``; ``cantelli_pair_term_directional`` is the directional term of the
    same pair; ``cantelli_pair_error`` the measured pairwise error of that pair on the test set
    (the fraction of its class-``c`` examples with ``z_k >= z_c``, ties counted as errors) and
    ``cantelli_pair_count`` the number of those class-``c`` test examples.
* ``weight_norm`` (all parameters), ``last_layer_norm`` (last weight matrix and bias),
  ``imbalance_norm``: Frobenius norm of ``W_L^T W_L - W_{L-1} W_{L-1}^T`` for the last two linear
  layers (NaN when the model has fewer than two). A **diagnostic** only: Thm. 4.3's balancedness
  identity concerns two consecutive linear layers with no bias and no nonlinearity between them
  under gradient descent; the paper's networks have a bias and a ReLU there and train with AdamW,
  where the identity does not apply.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from ncgrok.theory.collapse import (
    COLLAPSE_MEASURES,
    ClassStatistics,
    class_covariances,
    class_variances,
    collapse_measures,
    nc1,
    population_within_class_variance,
)
from ncgrok.theory.concentration import heldout_variance_radius
from ncgrok.theory.generalization import cantelli_bound
from ncgrok.theory.timescales import imbalance

from ncgrok.empirical.batched_statistics import (  # noqa: F401 (batched_class_statistics: re-exported)
    LabelChunks,
    batched_class_statistics,
    chunk_statistics,
    sample_major,
)
from ncgrok.empirical.buffers import Workspace
from ncgrok.empirical.engine import EVAL_CHUNK_SIZE
from ncgrok.empirical.losses import per_example_loss

HELDOUT_COLUMNS = (
    "heldout_within_var",
    "heldout_within_var_sup",
    "heldout_within_var_clip",
    "heldout_frac_above_scale",
    "heldout_radius",
    "heldout_nc1",
)
CANTELLI_COLUMNS = (
    "cantelli_bound",
    "cantelli_bound_clipped",
    "cantelli_bound_directional_clipped",
    "cantelli_pair_term",
    "cantelli_pair_term_directional",
    "cantelli_pair_error",
    "cantelli_pair_count",
)
METRIC_COLUMNS = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "test_size",
    *COLLAPSE_MEASURES,
    *HELDOUT_COLUMNS,
    *CANTELLI_COLUMNS,
    "weight_norm",
    "last_layer_norm",
    "imbalance_norm",
)


class BatchedModel(Protocol):
    """What the measurement needs from the training engine (``empirical.engine.BatchedTrainer``).

    A model may also offer ``evaluate_chunk(x) -> (logits, representations)`` whose results are
    valid only until its next call (the engine's, written into reused buffers); the measurement
    then uses it instead of the two ``forward`` methods.
    """

    def forward_with_representation(self, x: torch.Tensor, *, chunk_size: int = ...) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (R, N, K) and representations (R, N, p) of every run."""

    def forward(self, x: torch.Tensor, *, chunk_size: int = ...) -> torch.Tensor:
        """Logits (R, N, K) of every run."""

    def last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked last-layer weights (R, K, p) and biases (R, K)."""

    def linear_weights(self) -> Sequence[torch.Tensor]:
        """Stacked weights (R, out, in) of the linear layers, in order."""

    def weight_norm(self) -> torch.Tensor: ...

    def last_layer_norm(self) -> torch.Tensor: ...


@dataclass
class MeasurementData:
    """Tensors the measurement evaluates on (on the trainer's device). Held-out data are optional."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    heldout_x: torch.Tensor | None = None
    heldout_y: torch.Tensor | None = None
    # what the labels determine, computed at the first log and reused while the labels are unchanged,
    # and the work buffers of the statistics, reused from log to log
    label_chunks: LabelChunks = field(default_factory=LabelChunks, init=False, repr=False, compare=False)
    workspace: Workspace = field(default_factory=Workspace, init=False, repr=False, compare=False)


def _merge(total: list[ClassStatistics] | None, part: list[ClassStatistics]) -> list[ClassStatistics]:
    return part if total is None else [a.merge(b) for a, b in zip(total, part)]


def _add(total: torch.Tensor | None, part: torch.Tensor) -> torch.Tensor:
    return part if total is None else total + part


@dataclass
class _Pass:
    """What one streamed pass over a data set accumulated (fields not asked for stay None).

    ``clipped``: statistics of the features clipped to norm ``clip_scale[r]``; ``above_scale``: (R,)
    number of samples with norm above it; ``logits``: class statistics of the logits (with
    covariances); ``pair_wrong``: (R, K, K) number of class-``c`` samples with ``z_k >= z_c``;
    ``counts``: (K,) samples per class.
    """

    loss: np.ndarray
    accuracy: np.ndarray
    stats: list[ClassStatistics] | None = None
    clipped: list[ClassStatistics] | None = None
    above_scale: np.ndarray | None = None
    logits: list[ClassStatistics] | None = None
    pair_wrong: np.ndarray | None = None
    counts: np.ndarray | None = None


def _stream(
    model: BatchedModel,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    chunk_size: int,
    statistics: bool,
    covariance: bool = True,
    clip_scale: np.ndarray | None = None,
    logit_statistics: bool = False,
    pairwise: bool = False,
    loss: str = "mse",
    label_chunks: tuple[LabelChunks, str] | None = None,
    workspace: Workspace | None = None,
) -> _Pass:
    """Per-run mean loss, accuracy and (as asked) statistics over ``x`` in chunks.

    Loss (``per_example_loss``) averaged over samples.
    Only one chunk of features is held at a time; statistics are merged exactly across chunks.
    ``clip_scale`` (R,) also accumulates statistics of the features clipped to that norm (needs
    ``statistics``); ``logit_statistics`` accumulates class statistics of the logits; ``pairwise``
    counts, per class ``c`` and competitor ``k``, the samples with ``z_k >= z_c``. ``label_chunks``
    (a cache and this data set's name in it) keeps what the labels determine between calls,
    ``workspace`` the work buffers.
    """
    total = x.shape[0]
    if total == 0:
        raise ValueError("cannot measure on an empty data set")
    cache, name = label_chunks if label_chunks is not None else (LabelChunks(), "")
    workspace = workspace if workspace is not None else Workspace()
    loss_sum = accuracy_sum = above = wrong = None
    stats = clipped = logit_stats = None
    clip = None if clip_scale is None else torch.as_tensor(np.asarray(clip_scale, dtype=np.float64))
    counts = np.zeros(num_classes)
    chunks = None
    evaluate_chunk = getattr(model, "evaluate_chunk", None)
    for index, start in enumerate(range(0, total, chunk_size)):
        xs = x[start : start + chunk_size]
        if evaluate_chunk is not None:  # results in reused buffers, consumed before the next chunk
            logits, features = evaluate_chunk(xs)
        elif statistics:
            logits, features = model.forward_with_representation(xs, chunk_size=chunk_size)
        else:
            logits, features = model.forward(xs, chunk_size=chunk_size), None
        if chunks is None:
            chunks = cache.get(name, y, num_classes, chunk_size, logits.device)
        classes = chunks[index]
        counts += classes.counts_numpy
        loss_sum = _add(loss_sum, per_example_loss(loss, logits, classes.onehot.to(logits.dtype)).to(torch.float64).sum(-1))
        accuracy_sum = _add(accuracy_sum, (logits.argmax(-1) == classes.labels).to(torch.float64).sum(-1))
        if statistics:
            values = sample_major(workspace, "values", features).copy_(features.detach())
            part, norms = chunk_statistics(values, classes, covariance=covariance, workspace=workspace,
                                           slot=f".{name}.{index % 2}")
            stats = _merge(stats, part)
            if clip is not None:  # the held-out features clipped to norm clip_scale[r]
                bound = clip.to(values.device)[:, None]
                outside = norms > bound
                chunk_above = outside.to(torch.float64).sum(-1)
                above = _add(above, chunk_above)
                if bool(chunk_above.any()):
                    factor = torch.where(outside, bound / norms, torch.ones_like(norms))
                    clipped_values = torch.mul(values, factor[..., None], out=sample_major(workspace, "clipped", values))
                    part = chunk_statistics(clipped_values, classes, covariance=False, workspace=workspace)[0]
                elif covariance:  # nothing is clipped: the clipped features are these features (factor 1)
                    part = [dataclasses.replace(stats_r, scatter_matrix=None) for stats_r in part]
                clipped = _merge(clipped, part)
        if logit_statistics:
            logit_stats = _merge(logit_stats, chunk_statistics(logits.detach().to(torch.float64), classes)[0])
        if pairwise:
            ys = classes.labels
            own = logits.gather(-1, ys[None, :, None].expand(logits.shape[0], -1, 1))
            competing = (logits >= own).to(torch.float64)  # (R, N, K); k = c counts too, dropped later
            wrong = _add(wrong, torch.einsum("rnk,nc->rck", competing, classes.onehot))
    return _Pass(
        loss=(loss_sum / total).cpu().numpy(),
        accuracy=(accuracy_sum / total).cpu().numpy(),
        stats=stats,
        clipped=clipped,
        above_scale=None if above is None else above.cpu().numpy(),
        logits=logit_stats,
        pair_wrong=None if wrong is None else wrong.cpu().numpy(),
        counts=counts,
    )


def measure_runs(
    model: BatchedModel,
    data: MeasurementData,
    *,
    delta: float = 0.05,
    chunk_size: int = EVAL_CHUNK_SIZE,
    loss: str = "mse",
) -> list[dict[str, float]]:
    """Every column of ``METRIC_COLUMNS`` for every run of ``model`` (one dict per run).

    ``delta`` is the failure probability of the held-out radius (Thm. 4.1); ``chunk_size`` bounds
    how many samples' features are held at once; ``loss`` (``"mse"``, ``"cross-entropy"``) is what
    ``train_loss`` and ``test_loss`` measure.
    """
    num_classes = data.num_classes
    cache = data.label_chunks
    train = _stream(model, data.train_x, data.train_y, num_classes, chunk_size=chunk_size, statistics=True, loss=loss,
                    label_chunks=(cache, "train"), workspace=data.workspace)
    heldout = None
    if data.heldout_x is not None:
        train_sup = np.array([stats.norm_max.max() for stats in train.stats])
        heldout = _stream(model, data.heldout_x, data.heldout_y, num_classes, chunk_size=chunk_size,
                          statistics=True, covariance=False, clip_scale=train_sup, logit_statistics=True,
                          label_chunks=(cache, "heldout"), workspace=data.workspace)
    test = _stream(model, data.test_x, data.test_y, num_classes, chunk_size=chunk_size, statistics=False,
                   pairwise=heldout is not None, loss=loss, label_chunks=(cache, "test"),
                   workspace=data.workspace)

    last_weight, last_bias = (t.detach().to(torch.float64).cpu().numpy() for t in model.last_layer())
    linear = model.linear_weights()
    pair = None
    if len(linear) >= 2:
        pair = (linear[-1].detach().to(torch.float64).cpu().numpy(), linear[-2].detach().to(torch.float64).cpu().numpy())
    weight_norm = model.weight_norm().detach().to(torch.float64).cpu().numpy()
    last_layer_norm = model.last_layer_norm().detach().to(torch.float64).cpu().numpy()

    rows = []
    for r, stats in enumerate(train.stats):
        row = {
            "train_loss": float(train.loss[r]),
            "train_acc": float(train.accuracy[r]),
            "test_loss": float(test.loss[r]),
            "test_acc": float(test.accuracy[r]),
            "test_size": float(data.test_x.shape[0]),
        }
        if _finite_run(stats, heldout, r, last_weight[r], last_bias[r]):
            row.update(collapse_measures(stats))
            row.update(_heldout_columns(stats, heldout, r, delta=delta))
            row.update(_cantelli_columns(heldout, test, r, last_weight[r], last_bias[r]))
        else:  # a diverged run: its statistics are inf/NaN, and an SVD of them would raise
            row.update(dict.fromkeys((*COLLAPSE_MEASURES, *HELDOUT_COLUMNS, *CANTELLI_COLUMNS), float("nan")))
        row["weight_norm"] = float(weight_norm[r])
        row["last_layer_norm"] = float(last_layer_norm[r])
        row["imbalance_norm"] = float(np.linalg.norm(imbalance(pair[0][r], pair[1][r]))) if pair else float("nan")
        rows.append(row)
    return rows


def _finite_run(train: ClassStatistics, heldout: _Pass | None, run: int, weight: np.ndarray, bias: np.ndarray) -> bool:
    """Whether run ``run``'s feature and logit statistics and last layer are all finite (a run whose
    training diverged is not: its collapse and bound columns are then NaN, never an exception)."""
    parts = [train, *(() if heldout is None else (heldout.stats[run], heldout.clipped[run], heldout.logits[run]))]
    arrays = [weight, bias]
    for stats in parts:
        arrays += [stats.sums, stats.scatter, stats.norm_sums, stats.norm_max]
        if stats.scatter_matrix is not None:
            arrays.append(stats.scatter_matrix)
    return all(np.isfinite(array).all() for array in arrays)


def _heldout_columns(train: ClassStatistics, heldout: _Pass | None, run: int, *, delta: float) -> dict[str, float]:
    """``HELDOUT_COLUMNS`` of one run (NaN without held-out data or with a class of fewer than 2)."""
    columns = dict.fromkeys(HELDOUT_COLUMNS, float("nan"))
    if heldout is None or np.any(heldout.counts < 2):
        return columns
    stats, clipped = heldout.stats[run], heldout.clipped[run]
    train_mean_scale = float(train.norm_sums.sum() / train.total)
    train_sup = float(train.norm_max.max())
    joint_sup = float(max(train_sup, stats.norm_max.max()))
    columns["heldout_nc1"] = nc1(stats)
    columns["heldout_frac_above_scale"] = float(heldout.above_scale[run] / stats.total)
    columns["heldout_radius"] = float(stats.priors @ heldout_variance_radius(stats.counts, delta=delta))
    if train_mean_scale == 0.0 or train_sup == 0.0:
        return columns
    columns["heldout_within_var"] = population_within_class_variance(stats, scale=train_mean_scale, unbiased=True)
    columns["heldout_within_var_sup"] = population_within_class_variance(stats, scale=joint_sup, unbiased=True)
    columns["heldout_within_var_clip"] = population_within_class_variance(clipped, scale=train_sup, unbiased=True)
    return columns


def _cantelli_columns(heldout: _Pass | None, test: _Pass, run: int, weight: np.ndarray, bias: np.ndarray) -> dict[str, float]:
    """``CANTELLI_COLUMNS`` of one run: Thm. 3.2 from held-out statistics, pair error on the test set."""
    columns = dict.fromkeys(CANTELLI_COLUMNS, float("nan"))
    if heldout is None or np.any(heldout.counts < 2):
        return columns
    stats, logits = heldout.stats[run], heldout.logits[run]
    common = dict(priors=stats.priors, return_terms=True)
    plain = cantelli_bound(stats.class_means, weight, variances=class_variances(stats, unbiased=True), bias=bias, **common)
    num_classes = stats.num_classes
    directional = cantelli_bound(logits.class_means, np.eye(num_classes), covariances=class_covariances(logits, unbiased=True),
                                 directional=True, clipped=True, **common)
    columns["cantelli_bound"] = plain.bound
    columns["cantelli_bound_clipped"] = float(plain.priors @ np.minimum(plain.class_sums, 1.0))
    columns["cantelli_bound_directional_clipped"] = directional.bound
    competitors = np.where(np.eye(num_classes, dtype=bool), -np.inf, plain.terms)  # a class is not its own competitor
    c, k = np.unravel_index(int(np.argmax(competitors)), competitors.shape)
    columns["cantelli_pair_term"] = float(plain.terms[c, k])
    columns["cantelli_pair_term_directional"] = float(directional.terms[c, k])
    columns["cantelli_pair_count"] = float(test.counts[c])
    if test.counts[c] > 0:
        columns["cantelli_pair_error"] = float(test.pair_wrong[run, c, k] / test.counts[c])
    return columns


def as_measurement_data(split: Any, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MeasurementData:
    """Tensors on ``device`` from a ``empirical.data.Split``-like object (numpy arrays)."""

    def tensor(array: Any, *, labels: bool = False) -> torch.Tensor | None:
        if array is None:
            return None
        return torch.as_tensor(np.asarray(array), dtype=torch.long if labels else dtype, device=device)

    return MeasurementData(
        train_x=tensor(split.train_x),
        train_y=tensor(split.train_y, labels=True),
        test_x=tensor(split.test_x),
        test_y=tensor(split.test_y, labels=True),
        num_classes=int(split.num_classes),
        heldout_x=tensor(getattr(split, "heldout_x", None)),
        heldout_y=tensor(getattr(split, "heldout_y", None), labels=True),
    )
