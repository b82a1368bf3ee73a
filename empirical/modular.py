"""Exact population statistics of a network trained on modular addition.

On an image task the population within-class variance of Def. 3.1,
``V = sum_c p_c E||g~(X) - mu_c||^2`` with ``g~ = g / B``, can only be estimated from a sample
(Thm. 4.1 bounds the estimate's error). On ``(a + b) mod p`` the data distribution is the uniform
distribution on the ``p**2`` pairs, so evaluating the representation on every pair gives ``V``
exactly (up to floating-point rounding): each class holds exactly ``p`` pairs, the priors are exactly
``1/p``, the class means are the true conditional means. Restricted to the test pairs (the pairs
never trained on) the same computation gives the exact within-class variance of the unseen part of
the population, again with no sampling error.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ncgrok.empirical.data.modular import all_pairs, encode_pairs
from ncgrok.theory.collapse import ClassStatistics, population_within_class_variance

__all__ = ["population_class_statistics", "exact_population_variance"]


def population_class_statistics(trainer: Any, modulus: int, pairs: np.ndarray | None = None) -> list[ClassStatistics]:
    """Per run, the :class:`ClassStatistics` of g(x) (the residual stream at the last token) over
    ``pairs`` ((n, 2) residues; default all ``p**2`` pairs, the whole population), labelled
    ``(a + b) mod p``. ``trainer`` is a `BatchedTrainer` of a ``modtransformer`` with ``num_classes = p``."""
    spec = trainer.spec
    if spec.arch != "modtransformer" or spec.num_classes != modulus or spec.input_shape != (3, modulus + 1):
        raise ValueError(
            f"trainer must train arch='modtransformer' with num_classes={modulus} and input_shape=(3, {modulus + 1}) "
            f"for modulus={modulus}, got arch={spec.arch!r}, num_classes={spec.num_classes}, input_shape={spec.input_shape}"
        )
    pairs = all_pairs(modulus) if pairs is None else np.asarray(pairs)
    x = torch.from_numpy(encode_pairs(pairs, modulus))
    labels = (pairs.sum(axis=1) % modulus).astype(np.int64)
    _, reps = trainer.forward_with_representation(x)
    features = reps.detach().to("cpu", torch.float64).numpy()
    return [ClassStatistics.from_features(f, labels, num_classes=modulus, covariance=False) for f in features]


def exact_population_variance(
    trainer: Any, modulus: int, *, scale: Any = 1.0, pairs: np.ndarray | None = None
) -> np.ndarray:
    """(R,) the exact ``V`` of Def. 3.1 per run: ``sum_c p_c (1/n_c) sum_{y(x)=c} ||g(x)/B - mu_c||^2``
    over ``pairs`` (default: all ``p**2`` pairs, where ``p_c = 1/p`` and ``n_c = p`` exactly).

    ``scale`` is ``B``, one number or one per run (for instance the training set's largest feature
    norm, the theory's ``B_g``); 1 gives the unscaled ``Tr Sigma_W``. The class variances are the
    plain means over the class (no ``n_c - 1``): nothing is estimated.
    """
    stats = population_class_statistics(trainer, modulus, pairs)
    scales = np.broadcast_to(np.asarray(scale, dtype=np.float64), (len(stats),))
    return np.array([population_within_class_variance(s, scale=b) for s, b in zip(stats, scales)])
