"""Sharded sweeps: the partition into shards, shards run one after another equal the unsharded sweep
byte for byte, per-shard resume and locks, and refusals that name the fix.

Everything trains a tiny MLP on three Gaussian classes of 1x6x6 inputs (no data files), in this
process with one torch thread; the executors (subprocesses, submitit) are tested in
``test_shard_executors.py``.
"""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ncgrok.empirical.runs import SESSION_KEY, RunDirectoryError, SweepDirectory, load_sweep
from ncgrok.empirical.shards import Shard, group_cost, partition_by_cost, shard_groups
from ncgrok.empirical.sweep import run_sweep
from ncgrok.empirical.sweep_config import SweepConfig, run_name
from ncgrok.files import DirectoryLock


def gaussian_split(seed: int = 3) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 1, 6, 6))
    arrays = {}
    for prefix, n in (("train", 30), ("test", 45), ("heldout", 24)):
        labels = np.arange(n) % 3
        arrays[f"{prefix}_x"] = (centres[labels] + 0.8 * rng.normal(size=(n, 1, 6, 6))).astype(np.float32)
        arrays[f"{prefix}_y"] = labels.astype(np.int64)
    return SimpleNamespace(num_classes=3, **arrays)


def tiny_config(**changes) -> SweepConfig:
    """Six runs (3 weight decays x 2 seeds) in three batched groups of two."""
    settings = dict(model="mlp", depth=3, width=8, init_scale=2.0, train_size=30, batch_size=10, steps=12,
                    log_every=4, weight_decays=(0.1, 0.03, 0.01), seeds=(0, 1), lrs=(1e-2,), device="cpu",
                    checkpoint_seconds=0.0, snapshot_steps=(8,), group_size=2)
    settings.update(changes)
    return SweepConfig(**settings)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def split() -> SimpleNamespace:
    return gaussian_split()


@pytest.fixture(scope="module")
def unsharded(split, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unsharded") / "sweep"
    run_sweep(tiny_config(), out, split=split)
    return out


def run_files(out: Path) -> dict[str, bytes]:
    """Every file of every run directory, ``summary.json`` without its session timings."""
    files = {}
    for path in sorted(out.glob("wd*/**/*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "summary.json":
                payload = json.loads(data)
                payload.pop(SESSION_KEY)
                data = json.dumps(payload, sort_keys=True).encode()
            files[str(path.relative_to(out))] = data
    return files


# ------------------------------------------------------------------------------------------ partition


def test_shard_text_parses_and_bad_values_name_the_flag():
    assert Shard.parse("2/3") == Shard(2, 3) and str(Shard.parse(" 1 / 4 ")) == "1/4"
    for text in ("3", "0/3", "4/3", "a/b", "2/0", "-1/3"):
        with pytest.raises(ValueError, match="--shard"):
            Shard.parse(text)


def test_partition_example_by_hand():
    # group sizes 2, 2, 2, 1 cost 3, 3, 3, 2: longest first gives 0 -> A, 1 -> B, 2 -> A (tie), 3 -> B
    assert partition_by_cost([3, 3, 3, 2], 2) == [[0, 2], [1, 3]]
    assert partition_by_cost([1, 5, 1, 1, 1, 1], 2) == [[1], [0, 2, 3, 4, 5]]
    with pytest.raises(ValueError, match="into 3 shards"):
        partition_by_cost([1.0, 2.0], 3)


def test_partition_is_within_grahams_bound_of_the_best_split():
    """Against an exhaustive search over every assignment: the largest part is at most 4/3 of the
    optimum (LPT's guarantee), every item is used once and no part is empty."""
    rng = random.Random(7)
    for _ in range(40):
        costs = [rng.choice([1.5, 2, 3, 4, 5, 7]) for _ in range(rng.randint(2, 7))]
        count = rng.randint(1, min(3, len(costs)))
        parts = partition_by_cost(costs, count)
        assert sorted(i for part in parts for i in part) == list(range(len(costs)))
        assert all(parts)
        best = min(max(sum(c for c, p in zip(costs, labels) if p == part) for part in range(count))
                   for labels in itertools.product(range(count), repeat=len(costs)) if len(set(labels)) == count)
        assert max(sum(costs[i] for i in part) for part in parts) <= 4 / 3 * best + 1e-9


def test_shard_groups_are_whole_groups_and_too_many_shards_name_the_fix():
    config = tiny_config(group_size=4)  # groups of 4 and 2 runs
    assert [len(group) for group in config.groups()] == [4, 2]
    assert group_cost(4) > group_cost(2)
    assert [shard_groups(config, Shard(k, 2)) for k in (1, 2)] == [[0], [1]]
    with pytest.raises(ValueError, match=r"--group-size 2 or less"):
        shard_groups(config, Shard(1, 3))
    with pytest.raises(ValueError, match="one group of all runs"):
        shard_groups(tiny_config(group_size=None), Shard(1, 2))
    with pytest.raises(ValueError, match="group_size"):
        tiny_config(group_size=0)


def test_settings_written_before_group_size_existed_read_as_one_group():
    payload = tiny_config(group_size=None).to_dict()
    del payload["group_size"]
    assert SweepConfig.from_dict(payload).groups() == [tiny_config().runs()]


# ------------------------------------------------------------------------------------------ shards on disk


def test_shards_one_after_another_equal_the_unsharded_sweep(split, unsharded, tmp_path):
    for count in (3, 2):  # one group per shard; and a shard of two groups
        out = tmp_path / f"in{count}"
        for index in range(1, count + 1):
            result = run_sweep(tiny_config(), out, split=split, shard=Shard(index, count))
            assert len(result.summaries) == len(result.run_dirs) > 0
        assert run_files(out) == run_files(unsharded)
        assert len(run_files(out)) == 6 * 4  # config, metrics, summary, one snapshot per run
        manifest = SweepDirectory(out).read_manifest()
        assert manifest.shards == count and len(manifest.runs) == 6
        summaries = [json.loads((out / "shards" / f"{k}-of-{count}" / "summary.json").read_text())
                     for k in range(1, count + 1)]
        assert all(s["status"] == "completed" for s in summaries)
        assert sorted(r["name"] for s in summaries for r in s["runs"]) == sorted(run_name(r) for r in tiny_config().runs())
        assert {run.name for run in load_sweep(out)} == {run.name for run in load_sweep(unsharded)}


def test_the_comparison_sees_a_different_batching(split, unsharded, tmp_path):
    """The byte-for-byte check above can fail: the same grid batched as one group of six gives other bytes."""
    run_sweep(tiny_config(group_size=None), tmp_path / "one", split=split)
    ours, theirs = run_files(tmp_path / "one"), run_files(unsharded)
    assert ours.keys() == theirs.keys() and ours != theirs


def test_a_shard_resumes_alone(split, unsharded, tmp_path):
    out = tmp_path / "s"
    stopped = run_sweep(tiny_config(), out, split=split, shard=Shard(2, 2), stop_after_step=4)
    assert stopped.summaries == []
    state = json.loads((out / "shards" / "2-of-2" / "summary.json").read_text())
    assert state["status"] == "running" and state["shard"] == {"index": 2, "count": 2, "groups": [1]}
    with pytest.raises(RunDirectoryError, match="shard 2/2 .* pass --resume"):
        run_sweep(tiny_config(), out, split=split, shard=Shard(2, 2))
    run_sweep(tiny_config(), out, split=split, shard=Shard(1, 2))  # the other shard needs no --resume
    resumed = run_sweep(tiny_config(), out, split=split, shard=Shard(2, 2), resume=True)
    assert resumed.resumed_from == 4
    assert run_files(out) == run_files(unsharded)


def test_a_shard_of_two_groups_resumes_in_its_second_group(split, unsharded, tmp_path):
    out = tmp_path / "s"
    shard = Shard(1, 2)  # groups 0 and 2
    run_sweep(tiny_config(), out, split=split, shard=shard, stop_after_step=8)
    # group 0 continues from 8 to its end (12: the last step never stops), group 2 stops at 4
    second = run_sweep(tiny_config(), out, split=split, shard=shard, resume=True, stop_after_step=4)
    assert second.summaries == [] and second.resumed_from == 8
    state = json.loads((out / "shards" / "1-of-2" / "summary.json").read_text())
    assert [(run["name"][:6], run["status"]) for run in state["runs"]] == \
        [("wd0.1_", "completed")] * 2 + [("wd0.01", "running")] * 2
    run_sweep(tiny_config(), out, split=split, shard=Shard(2, 2))
    third = run_sweep(tiny_config(), out, split=split, shard=shard, resume=True)
    assert third.resumed_from == 4 and len(third.summaries) == 4
    assert run_files(out) == run_files(unsharded)


def test_lock_is_per_shard(split, tmp_path):
    out = tmp_path / "s"
    holder = DirectoryLock(SweepDirectory(out).shard(1, 3).lock_path, purpose="test")
    (out / "shards" / "1-of-3").mkdir(parents=True)
    with holder:
        with pytest.raises(RunDirectoryError, match=r"being written by pid \d+"):
            run_sweep(tiny_config(), out, split=split, shard=Shard(1, 3))
        run_sweep(tiny_config(), out, split=split, shard=Shard(2, 3))  # another shard runs meanwhile
    assert not (out / run_name(tiny_config().groups()[0][0])).exists()
    run_sweep(tiny_config(), out, split=split, shard=Shard(1, 3))


def test_another_split_of_the_same_directory_is_refused(split, tmp_path):
    out = tmp_path / "s"
    run_sweep(tiny_config(), out, split=split, shard=Shard(3, 3))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    for shard, resume in ((Shard(1, 2), False), (Shard(1, 2), True), (Shard(), True)):
        with pytest.raises(RunDirectoryError, match=r"split into 3 shard\(s\).*--shard K/3"):
            run_sweep(tiny_config(), out, split=split, shard=shard, resume=resume)
    with pytest.raises(RunDirectoryError, match="--steps: stored 12, given 8"):
        run_sweep(tiny_config(steps=8), out, split=split, shard=Shard(1, 3))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # refused before writing anything


def test_manifest_is_created_once_and_kept(tmp_path):
    directory = SweepDirectory(tmp_path / "s")
    assert directory.create_manifest({"a": 1}, ["r"], 2) is True
    text = directory.sweep_path.read_text()
    assert directory.create_manifest({"a": 2}, ["q"], 3) is False
    assert directory.sweep_path.read_text() == text
    assert directory.read_manifest() == ({"a": 1}, ["r"], 2)
    assert [p.name for p in directory.path.iterdir()] == ["sweep.json"]  # no temporary file left
