"""Modular arithmetic: the data splits (addition, division), the 1-layer transformer in the batched engine,
exact population statistics."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ncgrok.empirical.data import (
    Split,
    modular_addition_split,
    modular_division_split,
    population_pairs,
    population_split,
)
from ncgrok.empirical.engine import BatchedTrainer, RunConfig
from ncgrok.empirical.modular import PopulationMeasurement, exact_population_variance
from ncgrok.empirical.models import ModelSpec, build_module

# ----------------------------------------------------------------------------- data


@pytest.mark.parametrize("modulus, fraction, seed", [(11, 0.3, 0), (7, 0.5, 3), (13, 0.9, 1)])
def test_every_pair_appears_exactly_once(modulus, fraction, seed):
    split = modular_addition_split(modulus, fraction, seed=seed)
    seen = [tuple(r) for r in split.train_pairs.tolist()] + [tuple(r) for r in split.test_pairs.tolist()]
    assert sorted(seen) == list(itertools.product(range(modulus), repeat=2))
    assert len(split.train_pairs) == round(fraction * modulus**2)


def test_labels_and_encoding_against_direct_construction():
    p = 11
    split = modular_addition_split(p, 0.4, seed=5)
    for pairs, x, y in ((split.train_pairs, split.train_x, split.train_y), (split.test_pairs, split.test_x, split.test_y)):
        for (a, b), xi, yi in zip(pairs.tolist(), x, y.tolist()):
            # label by counting b steps from a around the circle of p residues
            label = a
            for _ in range(b):
                label = 0 if label == p - 1 else label + 1
            assert yi == label
            expected = np.zeros((3, p + 1), dtype=np.float32)
            expected[0, a] = expected[1, b] = expected[2, p] = 1.0
            assert np.array_equal(xi, expected)


def test_split_is_seeded():
    a, b, c = (modular_addition_split(11, 0.3, seed=s) for s in (2, 2, 3))
    assert np.array_equal(a.train_pairs, b.train_pairs)
    assert not np.array_equal(a.train_pairs, c.train_pairs)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 0.001, float("nan"), 1.5])
def test_bad_fraction_is_refused(fraction):
    with pytest.raises(ValueError, match="train_fraction"):
        modular_addition_split(11, fraction)


@pytest.mark.parametrize("modulus, fraction, seed", [(11, 0.3, 0), (7, 0.5, 3), (13, 0.9, 1), (2, 0.5, 0)])
def test_division_every_pair_with_nonzero_divisor_appears_exactly_once(modulus, fraction, seed):
    split = modular_division_split(modulus, fraction, seed=seed)
    seen = [tuple(r) for r in split.train_pairs.tolist()] + [tuple(r) for r in split.test_pairs.tolist()]
    assert sorted(seen) == [(a, b) for a in range(modulus) for b in range(1, modulus)]
    assert len(split.train_pairs) == round(fraction * modulus * (modulus - 1))


def test_division_labels_against_brute_force_search():
    p = 13
    split = modular_division_split(p, 0.4, seed=2)
    for pairs, x, y in ((split.train_pairs, split.train_x, split.train_y), (split.test_pairs, split.test_x, split.test_y)):
        for (a, b), xi, yi in zip(pairs.tolist(), x, y.tolist()):
            assert [c for c in range(p) if (c * b) % p == a] == [yi]  # the one c with c * b = a mod p
            expected = np.zeros((3, p + 1), dtype=np.float32)
            expected[0, a] = expected[1, b] = expected[2, p] = 1.0
            assert np.array_equal(xi, expected)
    labels = np.concatenate([split.train_y, split.test_y])
    assert np.bincount(labels, minlength=p).tolist() == [p - 1] * p  # every class p - 1 times: exact priors 1/p


@pytest.mark.parametrize("modulus, match", [(12, "prime"), (1, ">= 2"), (263, "at most 257")])
def test_division_refuses_a_bad_modulus(modulus, match):
    with pytest.raises(ValueError, match=match):
        modular_division_split(modulus, 0.5)


@pytest.mark.parametrize("make, operation", [(modular_addition_split, "addition"), (modular_division_split, "division")])
def test_population_split_is_train_and_every_unseen_pair_twice(make, operation):
    split = make(7, 0.4, seed=1)
    as_split = population_split(split, f"modular-{operation}")
    assert isinstance(as_split, Split) and as_split.num_classes == 7 and as_split.name == f"modular-{operation}"
    assert as_split.train_x is split.train_x and as_split.train_size == len(split.train_pairs)
    for x, y in ((as_split.test_x, as_split.test_y), (as_split.heldout_x, as_split.heldout_y)):
        assert np.array_equal(x, split.test_x) and np.array_equal(y, split.test_y)
    assert np.array_equal(population_pairs(7, operation)[as_split.heldout_indices], split.test_pairs)


# ----------------------------------------------------------------------------- model and engine

P = 7
SMALL = ModelSpec(arch="modtransformer", input_shape=(3, P + 1), num_classes=P, width=16, heads=4, ff_width=32)


def test_forward_against_hand_written_transformer():
    """Nanda et al.'s block written out with plain tensor operations from the module's parameters."""
    module = build_module(SMALL, 4, dtype=torch.float64)
    split = modular_addition_split(P, 0.5, seed=0)
    x = torch.from_numpy(split.test_x[:9]).double()
    w = dict(module.named_parameters())
    h = x @ w["embed.weight"].T + w["pos_embedding"][0]
    q, k, v = (h @ w["attn.qkv.weight"].T + w["attn.qkv.bias"]).split(16, dim=-1)
    heads = []
    for i in range(4):
        sl = slice(4 * i, 4 * i + 4)
        att = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
        heads.append(att @ v[..., sl])
    h = h + torch.cat(heads, dim=-1) @ w["attn.proj.weight"].T + w["attn.proj.bias"]
    h = h + torch.relu(h @ w["linear1.weight"].T + w["linear1.bias"]) @ w["linear2.weight"].T + w["linear2.bias"]
    rep = h[:, -1]
    logits = rep @ w["unembed.weight"].T + w["unembed.bias"]
    out, got_rep = module(x, with_representation=True)
    torch.testing.assert_close(got_rep, rep, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(out, logits, atol=1e-12, rtol=1e-12)
    assert module.embed.bias is None and not any(isinstance(m, torch.nn.LayerNorm) for m in module.modules())


def test_nanda_shapes():
    spec = ModelSpec(arch="modtransformer", input_shape=(3, 114), num_classes=113, ff_width=512)
    shapes = {n: tuple(t.shape) for n, t in build_module(spec, 0).named_parameters()}
    assert shapes == {
        "embed.weight": (128, 114),
        "pos_embedding": (1, 3, 128),
        "attn.qkv.weight": (384, 128),
        "attn.qkv.bias": (384,),
        "attn.proj.weight": (128, 128),
        "attn.proj.bias": (128,),
        "linear1.weight": (512, 128),
        "linear1.bias": (512,),
        "linear2.weight": (128, 512),
        "linear2.bias": (128,),
        "unembed.weight": (113, 128),
        "unembed.bias": (113,),
    }


def _train_alone(spec, run, x, y, steps, betas):
    """One run trained alone: full batch, torch.optim.AdamW, summed squared error to one-hot."""
    model = build_module(spec, run.seed, dtype=torch.float64)
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=run.weight_decay, betas=betas)
    target = F.one_hot(y, spec.num_classes).double()
    for _ in range(steps):
        loss = F.mse_loss(model(x.double()), target, reduction="sum")
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.cpu_kernels
def test_vmap_batched_equals_alone_float64():
    split = modular_addition_split(P, 0.5, seed=0)
    x, y = torch.from_numpy(split.train_x), torch.from_numpy(split.train_y)
    runs = [RunConfig(seed=s, lr=1e-3 * (s + 1), weight_decay=wd) for s, wd in ((0, 1.0), (1, 0.1), (2, 1.0))]
    betas = (0.9, 0.98)
    trainer = BatchedTrainer(SMALL, runs, x, y, batch_size=len(y), betas=betas, dtype=torch.float64, device="cpu")
    assert trainer.backend == "vmap"
    trainer.train(10)
    stacked = trainer.named_parameters()
    for r, run in enumerate(runs):
        ref = _train_alone(SMALL, run, x, y, 10, betas)
        for name, want in ref.named_parameters():
            got, want = stacked[name][r].clone(), want.detach().clone()
            if name == "attn.qkv.bias":
                # the key bias has gradient exactly 0 in exact arithmetic (softmax ignores a constant per
                # query), so rounding noise ~1e-14 becomes Adam steps of lr * noise / eps: compare loosely
                torch.testing.assert_close(got[16:32], want[16:32], atol=1e-6, rtol=0)
                got[16:32] = want[16:32]
            torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10, msg=f"run {r} {name}")


# ----------------------------------------------------------------------------- exact population variance


def _direct_outputs(module, p, pairs):
    """Logits and representation of a plain module on pairs encoded by hand."""
    x = np.zeros((len(pairs), 3, p + 1))
    for i, (a, b) in enumerate(pairs):
        x[i, 0, a] = x[i, 1, b] = x[i, 2, p] = 1.0
    with torch.no_grad():
        logits, rep = module.eval()(torch.from_numpy(x), with_representation=True)
    return logits.numpy(), rep.numpy()


def _direct_variance(module, p, pairs, scale, labels=None):
    """Def. 3.1 by hand: numpy, class by class, from a plain module's representation."""
    g = _direct_outputs(module, p, pairs)[1] / scale
    labels = np.array([(a + b) % p for a, b in pairs]) if labels is None else np.asarray(labels)
    total, classes = 0.0, sorted(set(labels.tolist()))
    for c in classes:
        block = g[labels == c]
        total += (np.sum(labels == c) / len(labels)) * np.mean(np.sum((block - block.mean(axis=0)) ** 2, axis=1))
    return total


def test_exact_population_variance_against_numpy():
    split = modular_addition_split(P, 0.5, seed=0)
    x, y = torch.from_numpy(split.train_x), torch.from_numpy(split.train_y)
    runs = [RunConfig(seed=s, lr=1e-2, weight_decay=1.0) for s in (0, 1)]
    trainer = BatchedTrainer(SMALL, runs, x, y, batch_size=len(y), betas=(0.9, 0.98), dtype=torch.float64, device="cpu")
    trainer.train(5)
    scales = np.array([2.0, 0.5])
    everything = [(a, b) for a in range(P) for b in range(P)]
    got = exact_population_variance(trainer, P, scale=scales)
    got_test = exact_population_variance(trainer, P, scale=scales, pairs=split.test_pairs)
    for r in range(2):
        module = trainer.run_module(r)
        assert got[r] == pytest.approx(_direct_variance(module, P, everything, scales[r]), rel=1e-10)
        assert got_test[r] == pytest.approx(_direct_variance(module, P, split.test_pairs.tolist(), scales[r]), rel=1e-10)
    assert got[0] != pytest.approx(got[1], rel=1e-3)


@pytest.mark.parametrize("operation", ["addition", "division"])
def test_population_measurement_against_numpy(operation):
    """The sweep's exact population columns against numpy on pairs enumerated and labelled by hand
    (division labels by searching c with c * b = a mod p); float64, so 1e-10 is rounding only."""
    split = modular_division_split(P, 0.5, seed=0) if operation == "division" else modular_addition_split(P, 0.5, seed=0)
    x, y = torch.from_numpy(split.train_x), torch.from_numpy(split.train_y)
    runs = [RunConfig(seed=s, lr=1e-2, weight_decay=1.0) for s in (0, 1)]
    trainer = BatchedTrainer(SMALL, runs, x, y, batch_size=len(y), dtype=torch.float64, device="cpu")
    trainer.train(5)
    means, sups = [1.5, 0.7], [3.0, float("nan")]  # a NaN scale: a diverged run's column is NaN
    measure = PopulationMeasurement(P, operation, dtype=torch.float64, chunk_size=10)  # 10: merged across chunks
    rows = measure(trainer, means, sups)
    pairs = [(a, b) for a in range(P) for b in range(P) if operation == "addition" or b != 0]
    if operation == "addition":
        labels = [(a + b) % P for a, b in pairs]
    else:
        labels = [next(c for c in range(P) if (c * b) % P == a) for a, b in pairs]
    for r, row in enumerate(rows):
        module = trainer.run_module(r)
        assert row["population_within_var"] == pytest.approx(_direct_variance(module, P, pairs, means[r], labels), rel=1e-10)
        logits = _direct_outputs(module, P, pairs)[0]
        assert row["population_acc"] == np.mean(logits.argmax(axis=1) == np.array(labels))
    assert rows[0]["population_within_var_sup"] == pytest.approx(
        _direct_variance(trainer.run_module(0), P, pairs, 3.0, labels), rel=1e-10)
    assert np.isnan(rows[1]["population_within_var_sup"])


def test_population_variance_refuses_other_models():
    spec = ModelSpec(arch="mlp", input_shape=(3 * (P + 1),), num_classes=P, width=8, depth=2)
    split = modular_addition_split(P, 0.5, seed=0)
    trainer = BatchedTrainer(
        spec, [RunConfig(0, 1e-3, 0.0)], torch.from_numpy(split.train_x), torch.from_numpy(split.train_y), batch_size=4, device="cpu"
    )
    with pytest.raises(ValueError, match="modtransformer"):
        exact_population_variance(trainer, P)


# ----------------------------------------------------------------------------- a tiny grokking run


@pytest.mark.slow
def test_tiny_modular_run_generalises_beyond_commuted_pairs():
    """p = 11, 80 % of the pairs, width 32 (a reduced Nanda model), full-batch AdamW lr 1e-2, betas
    (0.9, 0.98), weight decay 3, summed squared error, 1500 steps, seed 1 (~15 s on the shared 2-core machine).

    Test accuracy alone is a weak check here: the model is nearly symmetric in a and b (the positional
    embedding starts at N(0, 0.02^2)), so a memorising network already answers the test pairs whose
    swap (b, a) was trained (16 of the 24 test pairs for this split; seeds 0-5 all reach test
    accuracy >= 0.62 against chance 1/11 except seed 2, which does not fit). The claim checked is
    generalisation to the 8 test pairs whose swap is also unseen: seed 1 answers all 8 (measured with
    seeds 0-5 at this budget: 1/8, 8/8, 0/8, 3/8, 6/8, 2/8 -- this is a seed-specific margin, not a
    property of every seed; the threshold 6/8 is what the seed must keep). The trajectory is chaotic in
    float32 (other kernels give other parameters after 300 steps), so the claim was checked on five
    distinct trajectories of this run on one AMD EPYC: native AVX2 kernels, ATEN_CPU_CAPABILITY=default,
    MKL_CBWR=COMPATIBLE, one thread, and default with COMPATIBLE; it held on all five.
    """
    p = 11
    split = modular_addition_split(p, 0.8, seed=0)
    spec = ModelSpec(arch="modtransformer", input_shape=(3, p + 1), num_classes=p, width=32, heads=4, ff_width=128)
    x, y = torch.from_numpy(split.train_x), torch.from_numpy(split.train_y)
    trainer = BatchedTrainer(
        spec, [RunConfig(seed=1, lr=1e-2, weight_decay=3.0)], x, y, batch_size=len(y), betas=(0.9, 0.98), device="cpu"
    )
    trainer.train(1500)
    train_acc = float((trainer.forward(x)[0].argmax(-1) == y).double().mean())
    correct = trainer.forward(torch.from_numpy(split.test_x))[0].argmax(-1) == torch.from_numpy(split.test_y)
    trained = set(map(tuple, split.train_pairs.tolist()))
    unseen_swap = torch.tensor([(b, a) not in trained for a, b in split.test_pairs.tolist()])
    assert int(unseen_swap.sum()) == 8
    assert train_acc == 1.0
    assert float(correct.double().mean()) >= 0.9 > 1 / p
    assert int(correct[unseen_swap].sum()) >= 6
