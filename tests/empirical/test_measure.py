"""Streamed, batched measurement equals a direct per-run computation on the concatenated features.

Every column is compared with an independent numpy computation (pairwise U-statistics, explicit
clipping, the Thm. 3.2 terms written out, the directional bound from feature covariances rather than
logits), and ``imbalance_norm`` with Thm. 4.3's balancedness identity where that identity applies.
"""
import math

import numpy as np
import pytest
import torch

from ncgrok.empirical.measure import METRIC_COLUMNS, MeasurementData, batched_class_statistics, measure_runs
from ncgrok.theory.collapse import ClassStatistics, collapse_measures
from ncgrok.theory.generalization import cantelli_bound
from ncgrok.theory.timescales import balancedness_step, imbalance


class TinyBatchedModel:
    """R two-layer ReLU networks with stacked weights: the interface measure_runs needs."""

    def __init__(self, runs, in_dim, width, num_classes, seed=0, aligned_last_run=False):
        generator = torch.Generator().manual_seed(seed)
        self.first = torch.randn(runs, width, in_dim, generator=generator, dtype=torch.float64)
        self.last = torch.randn(runs, num_classes, width, generator=generator, dtype=torch.float64)
        self.bias = torch.randn(runs, num_classes, generator=generator, dtype=torch.float64)
        if aligned_last_run:
            # a network that classifies make_data's classes well (features = inputs, score k = input k),
            # so the Cantelli terms are strictly between 0 and 1 and the pair error is not trivial
            self.first[-1] = torch.eye(width, in_dim, dtype=torch.float64)
            self.last[-1] = torch.eye(num_classes, width, dtype=torch.float64)
            self.bias[-1] = 0.01 * torch.arange(num_classes, dtype=torch.float64)
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
    """Class c: N(3 e_c, I) in R^in_dim (the aligned network scores class k by ReLU(x_k)); the
    held-out sample is spread 1.5 times as wide, so that some of its features exceed the training set's
    largest norm and the clipping is exercised."""
    rng = np.random.default_rng(seed)

    def split(n, spread=1.0):
        y = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n - num_classes)])
        x = spread * rng.normal(size=(n, in_dim)) + 3.0 * np.eye(in_dim)[y]
        return torch.tensor(x), torch.tensor(y)

    train_x, train_y = split(120)
    test_x, test_y = split(90)
    heldout_x, heldout_y = split(150, spread=1.5)
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
    model = TinyBatchedModel(runs=2, in_dim=5, width=6, num_classes=3, aligned_last_run=True)
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
        assert row["weight_norm"] == pytest.approx(math.sqrt((w1**2).sum() + (w2**2).sum() + (b**2).sum()))

        # Same scale on both sides: B = the training set's largest norm; held-out features clipped to it.
        train_sup = np.linalg.norm(features, axis=1).max()
        held_norms = np.linalg.norm(held, axis=1)
        clipped = held * np.minimum(1.0, train_sup / np.maximum(held_norms, 1e-300))[:, None]
        clipped_u = []
        for c in range(3):
            block = clipped[held_y == c]
            n = len(block)
            clipped_u.append(np.sum((block[:, None, :] - block[None, :, :]) ** 2) / 2 / (n * (n - 1)))
        assert row["heldout_within_var_clip"] == pytest.approx(priors @ np.array(clipped_u) / train_sup**2, rel=1e-9)
        assert row["heldout_frac_above_scale"] == pytest.approx(np.mean(held_norms > train_sup), abs=1e-15)
        within = sum(np.sum((held[held_y == c] - means[c]) ** 2) for c in range(3)) / len(held_y)
        between = priors @ np.sum((means - priors @ means) ** 2, axis=1)
        assert row["heldout_nc1"] == pytest.approx(within / between, rel=1e-9)

        # Thm. 3.2's two-class terms written out; the worst pair; its pairwise error on the test set.
        terms = np.zeros((3, 3))
        for c in range(3):
            for k in range(3):
                if c != k:
                    gap = w2[c] - w2[k]
                    margin = (means[c] @ gap + b[c] - b[k]) / np.linalg.norm(gap)
                    terms[c, k] = 1.0 / (1.0 + max(margin, 0.0) ** 2 / u_stats[c])
        c, k = divmod(int(np.argmax(terms)), 3)
        assert row["cantelli_pair_term"] == pytest.approx(terms[c, k], rel=1e-9)
        assert row["cantelli_bound_clipped"] == pytest.approx(priors @ np.minimum(terms.sum(1), 1.0), rel=1e-9)
        test_y = data.test_y.numpy()
        own = test_logits[np.arange(len(test_y)), test_y]
        wrong = test_logits[test_y == c][:, k] >= own[test_y == c]
        assert row["cantelli_pair_error"] == pytest.approx(np.mean(wrong), abs=1e-15)
        assert row["cantelli_pair_count"] == np.sum(test_y == c) and row["test_size"] == len(test_y)
        # directional form from the features' covariances (measure_runs uses the logits' instead)
        covariances = np.stack([np.cov(held[held_y == c].T, ddof=1) for c in range(3)])
        directional = cantelli_bound(means, w2, covariances=covariances, priors=priors, bias=b,
                                     directional=True, clipped=True, return_terms=True)
        assert row["cantelli_bound_directional_clipped"] == pytest.approx(directional.bound, rel=1e-8, abs=1e-12)
        assert row["cantelli_pair_term_directional"] == pytest.approx(directional.terms[c, k], rel=1e-8, abs=1e-12)
        if r == 1:  # the aligned run: every form is informative and the clipping is exercised
            assert 0.0 < row["cantelli_pair_term_directional"] <= row["cantelli_pair_term"] < 1.0
            assert 0.0 < row["cantelli_bound_directional_clipped"] < row["cantelli_bound_clipped"] <= 1.0
            assert 0.0 < row["heldout_frac_above_scale"] < 0.5
            assert row["heldout_within_var_clip"] < priors @ u_stats / train_sup**2  # clipping shrinks it
    assert any(0.0 < row["cantelli_pair_error"] < 1.0 for row in rows)  # the pair count is exercised


class LinearPair:
    """R networks ``logits = W2 W1 x``: two consecutive linear layers, no bias, no nonlinearity
    (the setting of Thm. 4.3's balancedness identity). The representation is ``W1 x``."""

    def __init__(self, first, last):
        self.first, self.last = first, last

    def forward_with_representation(self, x, *, chunk_size=10**9):
        features = torch.einsum("rwd,nd->rnw", self.first, x.to(torch.float64))
        return torch.einsum("rkw,rnw->rnk", self.last, features), features

    def forward(self, x, *, chunk_size=10**9):
        return self.forward_with_representation(x)[0]

    def last_layer(self):
        return self.last, torch.zeros(self.last.shape[:2], dtype=torch.float64)

    def linear_weights(self):
        return [self.first, self.last]

    def weight_norm(self):
        return torch.sqrt((self.first**2).flatten(1).sum(1) + (self.last**2).flatten(1).sum(1))

    def last_layer_norm(self):
        return torch.sqrt((self.last**2).flatten(1).sum(1))


def _gradient_step(first, last, x, y, *, lr, weight_decay, relu_and_bias=None):
    """One GD step ``W <- (1 - lr wd) W - lr G`` on the summed squared loss, ``G`` its raw gradient."""
    first = first.clone().requires_grad_(True)
    last = last.clone().requires_grad_(True)
    hidden = torch.einsum("rwd,nd->rnw", first, x)
    if relu_and_bias is not None:
        hidden = torch.relu(hidden)
    logits = torch.einsum("rkw,rnw->rnk", last, hidden)
    if relu_and_bias is not None:
        logits = logits + relu_and_bias[:, None, :]
    loss = 0.5 * ((logits - torch.nn.functional.one_hot(y, last.shape[1]).to(logits.dtype)) ** 2).sum()
    grad_first, grad_last = torch.autograd.grad(loss, (first, last))
    decay = 1.0 - lr * weight_decay
    return (decay * first - lr * grad_first).detach(), (decay * last - lr * grad_last).detach(), grad_first, grad_last


def test_imbalance_norm_follows_the_balancedness_identity_where_it_applies():
    """Thm. 4.3's identity D' = (1 - eta lambda)^2 D + eta^2 (G_L^T G_L - G_{L-1} G_{L-1}^T) holds exactly
    for two consecutive linear layers; ``imbalance_norm`` after a real gradient step must equal the
    norm of the identity's prediction (to rounding), and must not on the ReLU + bias network, where
    the column is only a diagnostic (the mismatch is far above rounding there)."""
    data = make_data()
    generator = torch.Generator().manual_seed(3)
    first = torch.randn(2, 4, 5, generator=generator, dtype=torch.float64) * 0.3
    last = torch.randn(2, 3, 4, generator=generator, dtype=torch.float64) * 0.3
    x, y = data.train_x.to(torch.float64), data.train_y
    lr, weight_decay = 1e-3, 0.5
    new_first, new_last, grad_first, grad_last = _gradient_step(first, last, x, y, lr=lr, weight_decay=weight_decay)
    rows = measure_runs(LinearPair(new_first, new_last), data)
    for r, row in enumerate(rows):
        before = imbalance(last[r].numpy(), first[r].numpy())
        predicted = balancedness_step(before, grad_last=grad_last[r].numpy(), grad_prev=grad_first[r].numpy(),
                                      lr=lr, weight_decay=weight_decay)
        assert row["imbalance_norm"] == pytest.approx(np.linalg.norm(predicted), rel=1e-10)
        # and the step did move the imbalance (the comparison is not between two unchanged values)
        assert abs(row["imbalance_norm"] - np.linalg.norm(before)) > 1e-6 * np.linalg.norm(before)

    bias = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    relu_first, relu_last, relu_grad_first, relu_grad_last = _gradient_step(
        first, last, x, y, lr=lr, weight_decay=weight_decay, relu_and_bias=bias)
    model = TinyBatchedModel(2, 5, 4, 3)
    model.first, model.last, model.bias = relu_first, relu_last, bias
    for r, row in enumerate(measure_runs(model, data)):
        before = imbalance(last[r].numpy(), first[r].numpy())
        predicted = balancedness_step(before, grad_last=relu_grad_last[r].numpy(), grad_prev=relu_grad_first[r].numpy(),
                                      lr=lr, weight_decay=weight_decay)
        assert abs(row["imbalance_norm"] - np.linalg.norm(predicted)) > 1e-6 * np.linalg.norm(predicted)


def test_without_heldout_the_heldout_columns_are_nan():
    data = make_data()
    data.heldout_x = data.heldout_y = None
    rows = measure_runs(TinyBatchedModel(1, 5, 6, 3), data)
    from ncgrok.empirical.measure import CANTELLI_COLUMNS, HELDOUT_COLUMNS

    assert all(math.isnan(rows[0][k]) for k in HELDOUT_COLUMNS + CANTELLI_COLUMNS)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="features must have shape"):
        batched_class_statistics(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), num_classes=2)
    with pytest.raises(ValueError, match="labels must have shape"):
        batched_class_statistics(torch.zeros(1, 4, 3), torch.zeros(5, dtype=torch.long), num_classes=2)


def _same(rows_a, rows_b):
    """Every value equal, bit for bit (NaN equal to NaN)."""
    return all(a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)
               for a, b in zip(rows_a, rows_b)) and len(rows_a) == len(rows_b)


def test_label_chunks_are_reused_while_the_labels_are_unchanged_and_rebuilt_when_they_change():
    data = make_data()
    model = TinyBatchedModel(runs=2, in_dim=5, width=6, num_classes=3, aligned_last_run=True)
    first = measure_runs(model, data, chunk_size=64)
    cached = data.label_chunks.get("train", data.train_y, 3, 64, "cpu")
    assert _same(measure_runs(model, data, chunk_size=64), first)  # buffers and label chunks reused
    assert data.label_chunks.get("train", data.train_y, 3, 64, "cpu") is cached

    # labels changed in place (same tensor object): the cache must notice, and so must the results
    data.train_y.copy_(torch.roll(data.train_y, 1))
    changed = measure_runs(model, data, chunk_size=64)
    fresh = make_data()
    fresh.train_y = data.train_y.clone()
    assert _same(changed, measure_runs(model, fresh, chunk_size=64))
    assert not _same(changed, first)
    assert data.label_chunks.get("train", data.train_y, 3, 7, "cpu") is not cached  # another chunk size


def test_workspace_hands_out_one_buffer_per_name_and_grows_it():
    from ncgrok.empirical.batched_statistics import sample_major
    from ncgrok.empirical.buffers import Workspace

    workspace = Workspace()
    a = workspace.take("a", (2, 3), torch.float64, torch.device("cpu"))
    assert a.shape == (2, 3) and a.is_contiguous()
    assert workspace.take("a", (3, 2), torch.float64, torch.device("cpu")).data_ptr() == a.data_ptr()
    assert workspace.take("b", (2, 3), torch.float64, torch.device("cpu")).data_ptr() != a.data_ptr()
    bigger = workspace.take("a", (4, 4), torch.float64, torch.device("cpu"))
    assert bigger.shape == (4, 4) and bigger.data_ptr() != a.data_ptr()
    stored = sample_major(workspace, "v", torch.zeros(2, 5, 3))  # (R, n, p) stored as (n, R, p)
    assert stored.shape == (2, 5, 3) and stored.stride() == (3, 6, 1) and stored.dtype == torch.float64


class _WithoutChunkBuffers:
    """A trainer seen without ``evaluate_chunk``: measure_runs then calls the two forward methods."""

    def __init__(self, trainer):
        self._trainer = trainer

    def __getattr__(self, name):
        if name == "evaluate_chunk":
            raise AttributeError(name)
        return getattr(self._trainer, name)


@pytest.mark.parametrize("depth", [2, 4])
def test_engine_chunk_buffers_give_the_forward_bit_for_bit(depth):
    """``BatchedTrainer.evaluate_chunk`` writes into reused buffers (the same memory at every call)
    and equals ``forward_with_representation`` exactly; measure_runs is the same either way."""
    from ncgrok.empirical.engine import BatchedTrainer, RunConfig
    from ncgrok.empirical.models import ModelSpec

    spec = ModelSpec(arch="mlp", input_shape=(1, 6, 6), width=16, depth=depth, num_classes=4)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 1, 6, 6, generator=generator), torch.randint(0, 4, (120,), generator=generator)
    runs = [RunConfig(seed=s, lr=1e-3, weight_decay=0.1) for s in range(3)]
    trainer = BatchedTrainer(spec, runs, x[:60], y[:60], batch_size=20, device="cpu")
    trainer.train(5)
    logits, features = trainer.evaluate_chunk(x[:50])
    pointers = (logits.data_ptr(), features.data_ptr())
    expected = trainer.forward_with_representation(x[:50])
    assert torch.equal(logits, expected[0]) and torch.equal(features, expected[1])
    again = trainer.evaluate_chunk(x[50:100])
    assert (again[0].data_ptr(), again[1].data_ptr()) == pointers  # reused, not reallocated
    expected = trainer.forward_with_representation(x[50:100])
    assert torch.equal(again[0], expected[0]) and torch.equal(again[1], expected[1])

    data = MeasurementData(x[:60], y[:60], x[60:], y[60:], 4, x[30:90], y[30:90])
    buffered = measure_runs(trainer, data, chunk_size=25)
    assert _same(buffered, measure_runs(_WithoutChunkBuffers(trainer), data, chunk_size=25))
