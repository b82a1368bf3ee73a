"""Streamed, batched measurement equals a direct per-run computation on the concatenated features."""
import math

import numpy as np
import pytest
import torch

from ncgrok.empirical.measure import METRIC_COLUMNS, MeasurementData, batched_class_statistics, measure_runs
from ncgrok.theory.collapse import ClassStatistics, collapse_measures
from ncgrok.theory.generalization import cantelli_bound


class TinyBatchedModel:
    """R two-layer ReLU networks with stacked weights: the interface measure_runs needs."""

    def __init__(self, runs, in_dim, width, num_classes, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.first = torch.randn(runs, width, in_dim, generator=generator, dtype=torch.float64)
        self.last = torch.randn(runs, num_classes, width, generator=generator, dtype=torch.float64)
        self.bias = torch.randn(runs, num_classes, generator=generator, dtype=torch.float64)
        self.calls = []

    def forward_with_representation(self, x, *, chunk_size=10**9):
        self.calls.append(x.shape[0])
        features = torch.relu(torch.einsum("rwd,nd->rnw", self.first, x.to(torch.float64)))
        logits = torch.einsum("rkw,rnw->rnk", self.last, features) + self.bias[:, None, :]
        return logits, features

    def forward(self, x, *, chunk_size=10**9):
        return self.forward_with_representation(x, chunk_size=chunk_size)[0]

    def last_layer(self):
        return self.last, self.bias

    def linear_weights(self):
        return [self.first, self.last]

    def weight_norm(self):
        return torch.sqrt(sum((p**2).flatten(1).sum(1) for p in (self.first, self.last, self.bias)))

    def last_layer_norm(self):
        return torch.sqrt((self.last**2).flatten(1).sum(1) + (self.bias**2).sum(1))


def make_data(seed=0, num_classes=3, in_dim=5):
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n - num_classes)])
        x = rng.normal(size=(n, in_dim)) + y[:, None]
        return torch.tensor(x), torch.tensor(y)

    train_x, train_y = split(120)
    test_x, test_y = split(90)
    heldout_x, heldout_y = split(150)
    return MeasurementData(train_x, train_y, test_x, test_y, num_classes, heldout_x, heldout_y)


def test_batched_statistics_equal_per_run_statistics():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(3, 50, 4)) * 10 + 100
    labels = rng.integers(0, 3, 50)
    labels[:3] = [0, 1, 2]
    batched = batched_class_statistics(torch.tensor(features), torch.tensor(labels), num_classes=3)
    for r in range(3):
        direct = ClassStatistics.from_features(features[r], labels, num_classes=3)
        for name in ("counts", "sums", "scatter", "norm_sums", "norm_max", "scatter_matrix"):
            np.testing.assert_allclose(getattr(batched[r], name), getattr(direct, name), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("chunk_size", [7, 64, 4096])
def test_measure_runs_matches_direct_computation(chunk_size):
    data = make_data()
    model = TinyBatchedModel(runs=2, in_dim=5, width=6, num_classes=3)
    rows = measure_runs(model, data, delta=0.1, chunk_size=chunk_size)
    assert len(rows) == 2 and set(METRIC_COLUMNS) <= set(rows[0])
    if chunk_size == 7:
        assert max(model.calls) <= 7  # really streamed
    for r, row in enumerate(rows):
        w1, w2, b = (t[r].numpy() for t in (model.first, model.last, model.bias))

        def net(x):
            features = np.maximum(x.numpy() @ w1.T, 0)
            return features @ w2.T + b, features

        logits, features = net(data.train_x)
        y = data.train_y.numpy()
        target = np.eye(3)[y]
        assert row["train_loss"] == pytest.approx(np.mean(np.sum((logits - target) ** 2, 1)), rel=1e-12)
        assert row["train_acc"] == pytest.approx(np.mean(logits.argmax(1) == y))
        test_logits, _ = net(data.test_x)
        assert row["test_acc"] == pytest.approx(np.mean(test_logits.argmax(1) == data.test_y.numpy()))
        for key, value in collapse_measures(ClassStatistics.from_features(features, y, num_classes=3)).items():
            assert row[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key

        # Held-out population variance: mean over pairs of ||h_i - h_j||^2 / 2 (the U-statistic).
        _, held = net(data.heldout_x)
        held_y = data.heldout_y.numpy()
        scale_sup = max(np.linalg.norm(features, axis=1).max(), np.linalg.norm(held, axis=1).max())
        scale_mean = np.linalg.norm(features, axis=1).mean()
        priors = np.bincount(held_y, minlength=3) / len(held_y)
        u_stats = []
        for c in range(3):
            block = held[held_y == c]
            diffs = block[:, None, :] - block[None, :, :]
            n = len(block)
            u_stats.append(np.sum(diffs**2) / 2 / (n * (n - 1)))
        u_stats = np.array(u_stats)
        assert row["heldout_within_var"] == pytest.approx(priors @ u_stats / scale_mean**2, rel=1e-9)
        assert row["heldout_within_var_sup"] == pytest.approx(priors @ u_stats / scale_sup**2, rel=1e-9)
        counts = np.bincount(held_y, minlength=3)
        radius = 2 * np.sqrt(np.log(2 * 3 / 0.1) / (2 * (counts // 2)))
        assert row["heldout_radius"] == pytest.approx(priors @ radius, rel=1e-12)
        means = np.stack([held[held_y == c].mean(0) for c in range(3)])
        assert row["cantelli_bound"] == pytest.approx(
            cantelli_bound(means, w2, variances=u_stats, priors=priors, bias=b, scale=scale_sup), rel=1e-9
        )
        imbalance = w2.T @ w2 - w1 @ w1.T
        assert row["imbalance_norm"] == pytest.approx(np.linalg.norm(imbalance), rel=1e-12)
        assert row["weight_norm"] == pytest.approx(math.sqrt((w1**2).sum() + (w2**2).sum() + (b**2).sum()))


def test_without_heldout_the_heldout_columns_are_nan():
    data = make_data()
    data.heldout_x = data.heldout_y = None
    rows = measure_runs(TinyBatchedModel(1, 5, 6, 3), data)
    assert all(math.isnan(rows[0][k]) for k in ("heldout_within_var", "heldout_radius", "cantelli_bound"))


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="features must have shape"):
        batched_class_statistics(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), num_classes=2)
    with pytest.raises(ValueError, match="labels must have shape"):
        batched_class_statistics(torch.zeros(1, 4, 3), torch.zeros(5, dtype=torch.long), num_classes=2)
