"""Tests of empirical.batched_mlp.BatchedMLP.forward: one implementation for fresh tensors and for
workspace buffers, bit for bit equal to the two forwards it replaced (copied below, as they were
before they were merged), and the workspace's buffers reused from call to call."""

import pytest
import torch

from ncgrok.empirical.batched_mlp import BatchedMLP
from ncgrok.empirical.buffers import Workspace
from ncgrok.empirical.models import ModelSpec, build_module, stack_modules

pytestmark = pytest.mark.usefixtures("single_thread")


def _fresh_forward_before_merge(weights, biases, x):
    """``BatchedMLP.forward`` before it took a workspace (every result a fresh tensor)."""
    x = x.reshape(x.shape[0], -1)
    r, n = weights[0].shape[0], x.shape[0]
    w0, b0 = weights[0], biases[0]
    z = (x @ w0.reshape(r * w0.shape[1], w0.shape[2]).t()).reshape(n, r, w0.shape[1]).transpose(0, 1)
    z = z + b0.unsqueeze(1)
    h = x.unsqueeze(0).expand(r, n, x.shape[1])
    for w, b in zip(weights[1:], biases[1:]):
        h = torch.relu(z)
        z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
    return z, h


def _buffered_forward_before_merge(weights, biases, x):
    """``BatchedTrainer._mlp_eval_into_buffers`` before the merge (depth >= 2), in fresh contiguous
    buffers: the same operations into the same layouts."""
    x = x.reshape(x.shape[0], -1)
    r, n = weights[0].shape[0], x.shape[0]
    w0, b0 = weights[0], biases[0]
    width = w0.shape[1]
    first = torch.mm(x, w0.reshape(r * width, w0.shape[2]).t(), out=x.new_empty(n, r * width))
    z = torch.add(first.view(n, r, width).transpose(0, 1), b0.unsqueeze(1), out=x.new_empty(r, n, width))
    for w, b in zip(weights[1:], biases[1:]):
        h = z.relu_()
        z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), out=x.new_empty(r, n, w.shape[1]))
    return z, h


def _stacked_mlp(depth, runs, dtype, input_dim=30, width=24, classes=5):
    spec = ModelSpec(arch="mlp", input_shape=(input_dim,), width=width, depth=depth, num_classes=classes)
    params, _ = stack_modules([build_module(spec, seed, dtype=dtype) for seed in range(runs)])
    weights = [params[f"linears.{i}.weight"] for i in range(depth)]
    biases = [params[f"linears.{i}.bias"] for i in range(depth)]
    return weights, biases


def _layout(t):
    """The strides that matter: those of dimensions longer than 1."""
    return [stride for size, stride in zip(t.shape, t.stride()) if size > 1]


CASES = [(depth, runs, dtype) for depth in (1, 2, 3, 4) for runs in (1, 3) for dtype in (torch.float32, torch.float64)]


@pytest.mark.parametrize("depth, runs, dtype", CASES)
def test_forward_without_workspace_is_the_fresh_forward_before_the_merge(depth, runs, dtype):
    weights, biases = _stacked_mlp(depth, runs, dtype)
    x = torch.randn(37, 30, generator=torch.Generator().manual_seed(depth), dtype=dtype)
    logits, features = BatchedMLP(weights, biases).forward(x)
    expected = _fresh_forward_before_merge(weights, biases, x)
    for got, want in zip((logits, features), expected):
        assert torch.equal(got, want)
        assert _layout(got) == _layout(want)  # the same memory layout, not only the same numbers


@pytest.mark.parametrize("depth, runs, dtype", CASES)
def test_forward_into_a_workspace_equals_both_forwards_before_the_merge(depth, runs, dtype):
    weights, biases = _stacked_mlp(depth, runs, dtype)
    mlp, workspace = BatchedMLP(weights, biases), Workspace()
    generator = torch.Generator().manual_seed(10 + depth)
    pointers = None
    for n in (37, 37, 5):  # a second call of the same size and a smaller one reuse the buffers
        x = torch.randn(n, 30, generator=generator, dtype=dtype)
        logits, features = mlp.forward(x, workspace=workspace)
        fresh = _fresh_forward_before_merge(weights, biases, x)
        assert torch.equal(logits, fresh[0]) and torch.equal(features, fresh[1])
        if depth >= 2:  # (the buffered forward before the merge served depth >= 2 only)
            buffered = _buffered_forward_before_merge(weights, biases, x)
            assert torch.equal(logits, buffered[0]) and torch.equal(features, buffered[1])
            assert logits.is_contiguous() and features.is_contiguous()
            if pointers is not None:
                assert (logits.data_ptr(), features.data_ptr()) == pointers
            pointers = (logits.data_ptr(), features.data_ptr())
            assert pointers[0] != pointers[1]


def test_forward_equals_the_plain_modules_in_float64():
    """Independent reference: each run's own ``nn.Module`` (float64; the products differ from the
    batched ones only by summation order, far below the tolerance)."""
    spec = ModelSpec(arch="mlp", input_shape=(30,), width=24, depth=3, num_classes=5)
    modules = [build_module(spec, seed, dtype=torch.float64) for seed in range(3)]
    params, _ = stack_modules(modules)
    mlp = BatchedMLP([params[f"linears.{i}.weight"] for i in range(3)], [params[f"linears.{i}.bias"] for i in range(3)])
    x = torch.randn(11, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for workspace in (None, Workspace()):
        logits, features = mlp.forward(x, workspace=workspace)
        for r, module in enumerate(modules):
            want_logits, want_features = module(x, with_representation=True)
            torch.testing.assert_close(logits[r], want_logits, rtol=1e-12, atol=1e-9)
            torch.testing.assert_close(features[r], want_features, rtol=1e-12, atol=1e-9)
