"""Exact population statistics of a network trained on modular arithmetic.

On an image task the population within-class variance of Def. 3.1,
``V = sum_c p_c E||g~(X) - mu_c||^2`` with ``g~ = g / B``, can only be estimated from a sample
(Thm. 4.1 bounds the estimate's error). On ``(a + b) mod p`` (or ``a / b mod p``) the data
distribution is the uniform distribution on the ``p**2`` (``p (p - 1)``) pairs, so evaluating the
representation on every pair gives ``V`` exactly (up to floating-point rounding): each class holds
exactly ``p`` (``p - 1``) pairs, the priors are exactly ``1/p``, the class means are the true
conditional means and the class variances plain means over the class (no ``n_c - 1``). Restricted to
the test pairs (the pairs never trained on) the same computation gives the exact within-class
variance of the unseen part of the population, again with no sampling error.

A sweep on a modular data set logs, besides the training-set and held-out columns of
``empirical.measure``, :data:`POPULATION_COLUMNS` (:class:`PopulationMeasurement`):

* ``population_within_var``: the exact ``V`` at the scale ``B`` = the training set's mean feature
  norm, the scale of ``rnc1`` and ``heldout_within_var`` (so ``population_within_var - rnc1`` is the
  exact gap between the population's and the training set's within-class variance, which the
  held-out columns estimate with the Thm. 4.1 radius);
* ``population_within_var_sup``: the exact ``V`` at ``B`` = the training set's largest feature norm,
  the scale of ``rnc1_sup`` and ``heldout_within_var_clip`` (the theory's ``B_g``; not clipped: no
  concentration radius is needed for an exact value);
* ``population_acc``: the accuracy over every pair of the population.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ncgrok.empirical.data.modular import encode_pairs, pair_labels, population_pairs
from ncgrok.empirical.engine import EVAL_CHUNK_SIZE
from ncgrok.empirical.measure import batched_class_statistics
from ncgrok.theory.collapse import ClassStatistics, population_within_class_variance

__all__ = ["POPULATION_COLUMNS", "PopulationMeasurement", "exact_population_variance", "population_class_statistics"]

POPULATION_COLUMNS = ("population_within_var", "population_within_var_sup", "population_acc")


def _check_model(trainer: Any, modulus: int) -> None:
    spec = trainer.spec
    if spec.arch != "modtransformer" or spec.num_classes != modulus or spec.input_shape != (3, modulus + 1):
        raise ValueError(
            f"trainer must train arch='modtransformer' with num_classes={modulus} and input_shape=(3, {modulus + 1}) "
            f"for modulus={modulus}, got arch={spec.arch!r}, num_classes={spec.num_classes}, input_shape={spec.input_shape}"
        )


def _evaluate(model: Any, x: torch.Tensor, y: torch.Tensor, num_classes: int,
              chunk_size: int) -> tuple[list[ClassStatistics], np.ndarray]:
    """Per run, the class statistics of g(x) (no covariances) and the accuracy, ``chunk_size``
    examples at a time (the statistics merge exactly across chunks)."""
    stats, correct = None, None
    for start in range(0, x.shape[0], chunk_size):
        logits, features = model.forward_with_representation(x[start : start + chunk_size], chunk_size=chunk_size)
        labels = y[start : start + chunk_size].to(logits.device)
        part = batched_class_statistics(features, labels, num_classes=num_classes, covariance=False)
        stats = part if stats is None else [a.merge(b) for a, b in zip(stats, part)]
        hits = (logits.argmax(-1) == labels).to(torch.float64).sum(-1)
        correct = hits if correct is None else correct + hits
    return stats, (correct / x.shape[0]).cpu().numpy()


def _pairs_and_labels(modulus: int, operation: str, pairs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    pairs = population_pairs(modulus, operation) if pairs is None else np.asarray(pairs)
    return pairs, pair_labels(pairs, modulus, operation)


def population_class_statistics(trainer: Any, modulus: int, pairs: np.ndarray | None = None, *,
                                operation: str = "addition") -> list[ClassStatistics]:
    """Per run, the :class:`ClassStatistics` of g(x) (the residual stream at the last token) over
    ``pairs`` ((n, 2) residues; default the whole population of ``operation``), labelled by
    ``operation``. ``trainer`` is a `BatchedTrainer` of a ``modtransformer`` with ``num_classes = p``."""
    _check_model(trainer, modulus)
    pairs, labels = _pairs_and_labels(modulus, operation, pairs)
    x = torch.from_numpy(encode_pairs(pairs, modulus))
    return _evaluate(trainer, x, torch.from_numpy(labels), modulus, EVAL_CHUNK_SIZE)[0]


def exact_population_variance(
    trainer: Any, modulus: int, *, scale: Any = 1.0, pairs: np.ndarray | None = None, operation: str = "addition"
) -> np.ndarray:
    """(R,) the exact ``V`` of Def. 3.1 per run: ``sum_c p_c (1/n_c) sum_{y(x)=c} ||g(x)/B - mu_c||^2``
    over ``pairs`` (default: the whole population, where ``p_c = 1/p`` exactly).

    ``scale`` is ``B``, one number or one per run (for instance the training set's largest feature
    norm, the theory's ``B_g``); 1 gives the unscaled ``Tr Sigma_W``. The class variances are the
    plain means over the class (no ``n_c - 1``): nothing is estimated.
    """
    stats = population_class_statistics(trainer, modulus, pairs, operation=operation)
    scales = np.broadcast_to(np.asarray(scale, dtype=np.float64), (len(stats),))
    return np.array([population_within_class_variance(s, scale=b) for s, b in zip(stats, scales)])


def _variance(stats: ClassStatistics, scale: float) -> float:
    """The exact ``V`` at ``scale``, NaN for a diverged run (non-finite statistics or scale)."""
    finite = all(np.isfinite(array).all() for array in (stats.sums, stats.scatter))
    if not (finite and np.isfinite(scale) and scale > 0):
        return float("nan")
    return population_within_class_variance(stats, scale=scale)


class PopulationMeasurement:
    """:data:`POPULATION_COLUMNS` of every run, from one pass over the whole population of
    ``operation`` mod ``modulus`` (inputs built once, on ``device`` in ``dtype``)."""

    def __init__(self, modulus: int, operation: str, *, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, chunk_size: int = EVAL_CHUNK_SIZE):
        pairs, labels = _pairs_and_labels(modulus, operation, None)
        self.modulus = int(modulus)
        self.chunk_size = int(chunk_size)
        self.x = torch.as_tensor(encode_pairs(pairs, modulus), dtype=dtype, device=device)
        self.y = torch.as_tensor(labels, dtype=torch.long, device=device)

    def __call__(self, model: Any, mean_scales: Sequence[float], sup_scales: Sequence[float]) -> list[dict[str, float]]:
        """One row per run; ``mean_scales``/``sup_scales`` (R,) are the training set's mean and largest
        feature norms of each run (``feature_norm_mean``/``feature_norm_max``)."""
        _check_model(model, self.modulus)
        stats, accuracy = _evaluate(model, self.x, self.y, self.modulus, self.chunk_size)
        return [
            {
                "population_within_var": _variance(s, float(mean)),
                "population_within_var_sup": _variance(s, float(sup)),
                "population_acc": float(acc),
            }
            for s, mean, sup, acc in zip(stats, mean_scales, sup_scales, accuracy)
        ]
