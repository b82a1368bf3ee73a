"""Fig. 2 margins: per-example signed distances to the last layer's pairwise decision boundary.

:func:`margin_data` rebuilds a run's network from two saved snapshots and computes, for one pair of
classes, the signed distance of training and unseen examples to the boundary between them
(:func:`pair_signed_distances`), with the network's accuracy at each snapshot. The paper's Fig. 2
contrasts a step where the training set is fitted but test accuracy is low with a step after
grokking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ncgrok.empirical.runs import Run, load_snapshot, snapshot_steps

__all__ = ["pair_signed_distances", "MarginSet", "MarginData", "margin_data"]


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
