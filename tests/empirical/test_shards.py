"""Sharded sweeps: the partition into shards, shards run one after another equal the unsharded sweep
byte for byte, per-shard resume and locks, and refusals that name the fix.

Everything trains a tiny MLP on three Gaussian classes of 1x6x6 inputs (no data files) with one
torch thread, in this process or, for the executors, in child processes that load the same split
(``SITECUSTOMIZE``). The submitit tests need the optional package (``ncgrok[cluster]``).
"""
from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ncgrok.cli
from ncgrok.empirical.engine import select_device
from ncgrok.empirical.progress import sweep_progress
from ncgrok.empirical.runs import SESSION_KEY, RunDirectoryError, SweepDirectory, load_sweep
from ncgrok.empirical.shards import (
    ClusterOptions,
    Shard,
    device_slots,
    group_cost,
    partition_by_cost,
    shard_groups,
    submit_shards,
    visible_gpus,
    wait_for_jobs,
)
from ncgrok.empirical.sweep import prepare_shards, run_sweep
from ncgrok.empirical.sweep_config import SweepConfig, run_name
from ncgrok.files import DirectoryLock


def gaussian_split(seed: int = 3, *, spread: float = 1.0, noise: float = 0.8, heldout: int = 24) -> SimpleNamespace:
    """Three Gaussian classes of 1x6x6 inputs (centres ``spread`` apart in scale) for train, test and held-out."""
    rng = np.random.default_rng(seed)
    centres = spread * rng.normal(size=(3, 1, 6, 6))
    arrays = {}
    for prefix, n in (("train", 30), ("test", 45), ("heldout", heldout)):
        labels = np.arange(n) % 3
        arrays[f"{prefix}_x"] = (centres[labels] + noise * rng.normal(size=(n, 1, 6, 6))).astype(np.float32)
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


def test_analysis_commands_read_the_union_of_the_shards(split, unsharded, tmp_path, capsys):
    out = tmp_path / "s"
    for index in (1, 2, 3):
        run_sweep(tiny_config(), out, split=split, shard=Shard(index, 3))
    reports = []
    for path in (out, unsharded):
        assert ncgrok.cli.main(["onset", str(path), "--json"]) == 0
        reports.append({k: v for k, v in json.loads(capsys.readouterr().out).items() if k != "path"})
    assert reports[0] == reports[1] and len(json.dumps(reports[0])) > 1000


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


# ------------------------------------------------------------------------------------------ executors

# Child processes (ours and submitit's) load the synthetic split instead of data files: this
# sitecustomize, on their PYTHONPATH, patches SweepConfig.load_split when NCGROK_TEST_SPLIT is set
# (except in submitit's job controllers, which train nothing and need not import torch);
# NCGROK_TEST_SLOW makes every training call sleep (a job long enough to be interrupted).
SITECUSTOMIZE = r"""
import os, sys
if os.environ.get("NCGROK_TEST_SPLIT") and "submitit.local._local" not in sys.orig_argv:  # not in job controllers
    import time
    from types import SimpleNamespace
    import numpy as np
    import torch
    from ncgrok.empirical.engine import BatchedTrainer
    from ncgrok.empirical.sweep_config import SweepConfig

    torch.set_num_threads(1)
    _arrays = dict(np.load(os.environ["NCGROK_TEST_SPLIT"]))
    SweepConfig.load_split = lambda self, data_dir=None: SimpleNamespace(num_classes=3, **_arrays)
    _train = BatchedTrainer.train

    def _slow_train(self, steps):
        time.sleep(float(os.environ.get("NCGROK_TEST_SLOW", "0")))
        _train(self, steps)

    BatchedTrainer.train = _slow_train
"""

FLAGS = ["--train-size", "30", "--batch-size", "10", "--steps", "12", "--log-every", "4", "--depth", "3",
         "--width", "8", "--init-scale", "2", "--lr", "0.01", "--weight-decay", "0.1", "0.03", "0.01",
         "--seeds", "0", "1", "--snapshot-steps", "8", "--device", "cpu", "--checkpoint-seconds", "0",
         "--group-size", "2", "--quiet"]


@pytest.fixture(scope="module")
def children(split, tmp_path_factory):
    """The environment for child processes: the split saved to a file, the sitecustomize above."""
    folder = tmp_path_factory.mktemp("children")
    np.savez(folder / "split.npz", **{k: v for k, v in vars(split).items() if k != "num_classes"})
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join([str(folder)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return {"PYTHONPATH": path, "NCGROK_TEST_SPLIT": str(folder / "split.npz"), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def cli(split, monkeypatch):
    """``ncgrok.main`` in this process, loading the synthetic split."""
    monkeypatch.setattr(SweepConfig, "load_split", lambda self, data_dir=None: split)
    return ncgrok.cli.main


@pytest.fixture(scope="module")
def cli_reference(split, tmp_path_factory) -> Path:
    """The unsharded sweep of FLAGS, through the command line."""
    out = tmp_path_factory.mktemp("cli") / "sweep"
    original = SweepConfig.load_split
    SweepConfig.load_split = lambda self, data_dir=None: split
    try:
        assert ncgrok.cli.main(["sweep", *FLAGS, "--out", str(out)]) == 0
    finally:
        SweepConfig.load_split = original
    return out


def test_cli_shards_one_after_another(cli, cli_reference, tmp_path, capsys):
    out = tmp_path / "s"
    for index in (3, 1, 2):
        assert cli(["sweep", *FLAGS, "--shard", f"{index}/3", "--out", str(out)]) == 0
    assert run_files(out) == run_files(cli_reference)
    capsys.readouterr()
    assert cli(["sweep", *FLAGS, "--shard", "4/3", "--out", str(tmp_path / "t")]) == 2
    assert cli(["sweep", *FLAGS, "--shard", "1/3", "--executor", "local", "--out", str(tmp_path / "t")]) == 2
    assert cli(["sweep", *FLAGS, "--jobs", "2", "--out", str(tmp_path / "t")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and "1 <= K <= N" in errors[0] and "give one of the two" in errors[1]
    assert "--jobs only apply with --executor local" in errors[2]
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_local_executor_equals_the_unsharded_sweep(cli, cli_reference, children, tmp_path, monkeypatch, capsys):
    """Three shards: shard 1 trained here first; then the executor runs shards 2 and 3 as
    subprocesses at once, shard 2 fails (a file where it writes a run directory) and shard 3 is kept;
    --resume then runs shard 2 alone."""
    for name, value in children.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "s"
    loud = [flag for flag in FLAGS if flag != "--quiet"]  # the launcher reports each shard
    argv = ["sweep", *loud, "--executor", "local", "--shards", "3", "--jobs", "2", "--out", str(out)]
    blocked = out / run_name(tiny_config().groups()[1][0])
    assert cli(argv[:-2] + ["--shards", "4", "--out", str(tmp_path / "t")]) == 2  # 3 groups only
    assert "--group-size 1 or less" in capsys.readouterr().err and not (tmp_path / "t").exists()
    assert cli(["sweep", *FLAGS, "--shard", "1/3", "--out", str(out)]) == 0
    blocked.write_text("a file where shard 2 needs its run directory")
    assert cli(argv) == 2 and "pass --resume" in capsys.readouterr().err  # shard 1 has started
    assert cli(argv + ["--resume"]) == 1
    err = capsys.readouterr().err
    assert "1 of 3 shards are already completed" in err and "shard 3/3 done" in err
    assert "shard 2/3 failed:" in err and str(blocked) in err and "--resume" in err
    assert [json.loads((out / "shards" / f"{k}-of-3" / "summary.json").read_text())["status"] for k in (1, 3)] == \
        ["completed"] * 2
    blocked.unlink()
    assert cli(argv + ["--resume", "--json"]) == 0
    captured = capsys.readouterr()
    assert "2 of 3 shards are already completed" not in captured.err  # --json is quiet
    assert [run["name"] for run in json.loads(captured.out)["runs"]] == [run_name(r) for r in tiny_config().runs()]
    assert run_files(out) == run_files(cli_reference)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["1-of-3", "2-of-3", "3-of-3"]


def test_gpu_slots_follow_the_visible_devices(monkeypatch):
    assert device_slots("auto", None, ["3", "5"]) == [{"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "5"}]
    assert device_slots("auto", 1, ["3", "5"]) == [{"CUDA_VISIBLE_DEVICES": "3"}]
    assert device_slots("cuda:1", 2, ["3", "5"]) == [{}, {}]  # an explicit device is the user's choice
    assert device_slots("auto", None, ["0"]) == [{}] and device_slots("cpu", 3, []) == [{}, {}, {}]
    with pytest.raises(ValueError, match="--jobs"):
        device_slots("cpu", 0, [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6,2")
    assert visible_gpus() == ["6", "2"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ["0", "1"]
    # --device auto takes the first visible GPU, i.e. the one the scheduler (or run_local) gave
    assert select_device("auto") == torch.device("cuda")


def test_submitit_options_and_a_missing_package_are_refused_before_writing(cli, tmp_path, monkeypatch, capsys):
    argv = ["sweep", *FLAGS, "--executor", "submitit", "--out", str(tmp_path / "s")]
    for extra, message in ((["--gpus-per-shard", "2"], "argument --gpus-per-shard"),
                           (["--timeout", "0"], "argument --timeout"), (["--jobs", "2"], "--jobs only apply")):
        assert cli(argv + extra) == 2 and message in capsys.readouterr().err
    for options, message in (({"gpus_per_shard": 2}, "--gpus-per-shard must be 0 or 1"),
                             ({"timeout_min": 0}, "--timeout must be > 0"), ({"cluster": "pbs"}, "--cluster must be")):
        with pytest.raises(ValueError, match=message):
            ClusterOptions(**options)
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed
    assert cli(argv) == 2 and "pip install 'ncgrok[cluster]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    assert ClusterOptions(partition="gpu", gpus_per_shard=1, timeout_min=60).parameters("n") == \
        {"name": "n", "timeout_min": 60, "gpus_per_node": 1, "slurm_partition": "gpu"}


def test_submitit_debug_executor_through_the_cli(cli, cli_reference, tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "s"
    status = cli(["sweep", *FLAGS, "--executor", "submitit", "--cluster", "debug", "--shards", "2", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    assert run_files(out) == run_files(cli_reference)
    assert "wd0.01_lr0.01_seed1" in capsys.readouterr().out


@pytest.mark.slow
def test_submitit_local_jobs_requeue_after_a_timeout_signal_and_equal_the_unsharded_sweep(
        cli_reference, children, tmp_path, monkeypatch):
    """Three shards as a submitit job array on this machine. After shard 2's step-4 checkpoint its
    job gets the signal submitit's controller (or SLURM) sends before a time limit or preemption:
    submitit calls ShardJob.checkpoint, requeues the job, and the job resumes from that checkpoint."""
    pytest.importorskip("submitit")
    from submitit.local.local import LocalJobEnvironment

    for name, value in {**children, "NCGROK_TEST_SLOW": "0.5"}.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "s"
    config = SweepConfig.from_dict(json.loads((cli_reference / "sweep.json").read_text())["config"])
    shards = prepare_shards(config, out, 3)
    jobs = submit_shards(config, out, shards, ClusterOptions(cluster="local", timeout_min=5))
    state = out / "shards" / "2-of-3" / "summary.json"
    deadline = time.monotonic() + 60
    while not (state.is_file() and json.loads(state.read_text())["runs"][0]["final"]["step"] >= 4):
        assert time.monotonic() < deadline, "shard 2 logged no step 4 within 60 s"
        time.sleep(0.02)
    controller = jobs[1]._process.pid  # the job's own process is the controller's child
    (task,) = map(int, Path(f"/proc/{controller}/task/{controller}/children").read_text().split())
    os.kill(task, LocalJobEnvironment._usr_sig())
    outcomes = wait_for_jobs(jobs, shards)
    assert [outcome.error for outcome in outcomes] == [None, None, None]
    assert run_files(out) == run_files(cli_reference)
    resumed = json.loads((out / run_name(config.groups()[1][0]) / "summary.json").read_text())[SESSION_KEY]
    assert resumed["resumed_from"] >= 4  # the requeued job continued from its checkpoint
    assert "Requeued" in jobs[1].stderr() or "Requeued" in jobs[1].stdout()


def test_slurm_submission_up_to_sbatch(cli, tmp_path, monkeypatch, capsys):
    """No cluster here: stand-ins for ``sbatch`` and ``srun`` on PATH; ``sbatch`` records the script
    submitit's SLURM executor hands it (one job array, the partition, GPU, time, memory, the signal
    before the time limit that makes jobs requeue) and answers like SLURM; nothing runs."""
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncat "$1" > {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit only checks that it exists
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "s"
    argv = ["sweep", *FLAGS, "--executor", "submitit", "--cluster", "slurm", "--shards", "3", "--partition", "gpu",
            "--gpus-per-shard", "1", "--timeout", "90", "--mem", "8", "--out", str(out)]
    assert cli([flag for flag in argv if flag != "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "submitted 3 shard job(s) to slurm: 4242_0, 4242_1, 4242_2" in captured.err
    assert f"ncgrok status {out}" in captured.out
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --array=0-2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=90",
                 "#SBATCH --mem=8GB", "#SBATCH --signal=USR2@", "#SBATCH --job-name=ncgrok-s"):
        assert line in script, line
    assert SweepDirectory(out).read_manifest().shards == 3
    assert [shard.status for shard in sweep_progress(out).shards] == ["pending"] * 3
