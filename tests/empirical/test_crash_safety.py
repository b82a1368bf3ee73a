"""Crash safety of ``ncgrok sweep`` with real processes: SIGKILL at chosen and at random moments, then
``--resume`` gives the uninterrupted run's files byte for byte; a second writer is refused; corrupt,
mismatched or unwritable files give one clear line and change nothing.

The subprocesses run a small driver (``DRIVER``) that replaces only the data loading by a tiny
synthetic split saved by the test (so no data files are needed) and, when asked through the
``CRASH`` environment variable, kills itself with SIGKILL at a chosen point: in the middle of a
training interval (``train:N``, the N-th call of ``BatchedTrainer.train``), with half of a
checkpoint written to its temporary file (``checkpoint:N``), with half of a ``metrics.csv`` line
appended (``append:N``). ``SLOW=seconds`` makes each training call sleep (a long-running owner for
the lock test); ``WAIT_FOR_LOCK=path`` makes the driver wait until someone holds that lock before
it runs the command.
"""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ncgrok
from ncgrok import files
from ncgrok.empirical.runs import SESSION_KEY, read_metrics_rows
from ncgrok.empirical.sweep_config import SweepConfig

DRIVER = r"""
import os, signal, sys, time
from types import SimpleNamespace
import numpy as np
import torch
torch.set_num_threads(1)
import ncgrok
from ncgrok import files
from ncgrok.empirical.engine import BatchedTrainer
from ncgrok.empirical.sweep_config import SweepConfig

arrays = dict(np.load(os.environ["SPLIT_NPZ"]))
SweepConfig.load_split = lambda self, data_dir=None: SimpleNamespace(num_classes=3, **arrays)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

kind, _, count = os.environ.get("CRASH", "none:0").partition(":")
calls = {"train": 0, "checkpoint": 0, "append": 0}
train, write = BatchedTrainer.train, files._write_synced

def crashing_train(self, steps):
    calls["train"] += 1
    time.sleep(float(os.environ.get("SLOW", "0")))
    if kind == "train" and calls["train"] == int(count):
        train(self, steps // 2)
        die()
    train(self, steps)

def crashing_write(name, data, *, mode):
    key = "append" if mode == "ab" else "checkpoint" if ".checkpoint.pt.partial-" in str(name) else None
    if key is not None:
        calls[key] += 1
        if kind == key and calls[key] == int(count):
            with open(name, mode) as stream:
                stream.write(data[: len(data) // 2])
            die()
    write(name, data, mode=mode)

BatchedTrainer.train, files._write_synced = crashing_train, crashing_write
if os.environ.get("WAIT_FOR_LOCK"):
    deadline = time.monotonic() + 30
    while files.lock_holder(os.environ["WAIT_FOR_LOCK"]) is None:
        if time.monotonic() > deadline:
            sys.exit("driver: nobody took the lock within 30 s")
        time.sleep(0.02)
sys.exit(ncgrok.main(sys.argv[1:]))
"""

STEPS = 200
FLAGS = ["--train-size", "60", "--batch-size", "20", "--steps", str(STEPS), "--log-every", "10", "--depth", "3",
         "--width", "12", "--init-scale", "2", "--lr", "0.01", "--weight-decay", "0.1", "0.01", "--seeds", "0",
         "--device", "cpu", "--checkpoint-seconds", "0", "--quiet"]
RUNS = ("wd0.1_lr0.01_seed0", "wd0.01_lr0.01_seed0")


def gaussian_classes(seed: int = 5, per_set=(60, 90, 45)) -> dict[str, np.ndarray]:
    """Three Gaussian classes of 1x6x6 inputs for train, test and held-out (as in test_sweep.py)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 1, 6, 6))
    arrays = {}
    for prefix, n in zip(("train", "test", "heldout"), per_set):
        labels = np.arange(n) % 3
        arrays[f"{prefix}_x"] = (centres[labels] + 0.8 * rng.normal(size=(n, 1, 6, 6))).astype(np.float32)
        arrays[f"{prefix}_y"] = labels.astype(np.int64)
    return arrays


@pytest.fixture(scope="module")
def split_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("split") / "split.npz"
    np.savez(path, **gaussian_classes())
    return path


class _InProcess:
    """``ncgrok.main`` in this process on the synthetic split, with one torch thread like the driver."""

    def __init__(self, split_file: Path):
        self.arrays = dict(np.load(split_file))

    def __call__(self, argv: list[str]) -> int:
        from types import SimpleNamespace

        threads = torch.get_num_threads()
        original = SweepConfig.load_split
        SweepConfig.load_split = lambda config, data_dir=None: SimpleNamespace(num_classes=3, **self.arrays)
        torch.set_num_threads(1)
        try:
            return ncgrok.main(argv)
        finally:
            SweepConfig.load_split = original
            torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def in_process(split_file) -> _InProcess:
    return _InProcess(split_file)


@pytest.fixture(scope="module")
def reference(in_process, tmp_path_factory) -> Path:
    """The uninterrupted sweep."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    assert in_process(["sweep", "--out", str(out), *FLAGS]) == 0
    return out


def start(split_file: Path, argv: list[str], **env: str) -> subprocess.Popen:
    environment = {**os.environ, "SPLIT_NPZ": str(split_file), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen([sys.executable, "-c", DRIVER, *argv], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, err


def without_session(path: Path) -> dict:
    payload = json.loads(path.read_text())
    payload.pop(SESSION_KEY)
    for run in payload.get("runs", []):
        run.pop(SESSION_KEY)
    return payload


def assert_same_results(resumed: Path, reference: Path) -> None:
    for name in RUNS:
        assert (resumed / name / "metrics.csv").read_bytes() == (reference / name / "metrics.csv").read_bytes()
        assert without_session(resumed / name / "summary.json") == without_session(reference / name / "summary.json")
    assert without_session(resumed / "summary.json") == without_session(reference / "summary.json")
    assert json.loads((resumed / "summary.json").read_text())["status"] == "completed"
    assert not list(resumed.rglob("*.partial-*")), "a resume must delete what interrupted writes left"


def logged_steps(run_dir: Path) -> list[int]:
    return [row["step"] for row in read_metrics_rows(run_dir / "metrics.csv")]


def test_sigkill_in_training_checkpoint_and_append_then_resume_equals_uninterrupted(split_file, reference, tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", "--out", str(out), *FLAGS]
    # 1. killed half-way through the 5th training interval (steps 40 -> 50): last checkpoint at step 40.
    status, _ = finish(start(split_file, argv, CRASH="train:5"))
    assert status == -signal.SIGKILL
    assert logged_steps(out / RUNS[0]) == list(range(0, 41, 10))
    # 2. resumed, then killed with half of the 3rd checkpoint (step 70) written to its temporary file.
    status, _ = finish(start(split_file, argv + ["--resume"], CRASH="checkpoint:3"))
    assert status == -signal.SIGKILL
    assert len(list(out.glob(".checkpoint.pt.partial-*"))) == 1
    assert logged_steps(out / RUNS[0])[-1] == 70  # a row past the checkpoint (step 60)
    # 3. resumed from step 60, then killed half-way through appending the 2nd run's row of step 80.
    status, _ = finish(start(split_file, argv + ["--resume"], CRASH="append:4"))
    assert status == -signal.SIGKILL
    assert not (out / RUNS[1] / "metrics.csv").read_text().endswith("\n")  # the partial line
    assert logged_steps(out / RUNS[0])[-1] == 80 and logged_steps(out / RUNS[1])[-1] == 70
    # 4. resumed to the end.
    status, err = finish(start(split_file, argv + ["--resume"]))
    assert status == 0, err
    assert_same_results(out, reference)
    assert json.loads((out / RUNS[0] / "summary.json").read_text())[SESSION_KEY]["resumed_from"] == 70


def test_second_writer_is_refused_and_a_killed_owner_leaves_no_stale_lock(split_file, reference, in_process, tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", "--out", str(out), *FLAGS]
    owner = start(split_file, argv, SLOW="0.1")  # about 20 x 0.1 s of training
    second = start(split_file, argv + ["--resume"], WAIT_FOR_LOCK=str(out / "lock"))
    try:
        status, err = finish(second)
        assert owner.poll() is None, "the owner must still be running when the second process is refused"
        assert status == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"pid {owner.pid} on host {os.uname().nodename}" in lines[0] and str(out) in lines[0]
        # kill the owner at a random moment of its run
        time.sleep(random.Random().uniform(0.0, 1.0))
        assert owner.poll() is None
        owner.send_signal(signal.SIGKILL)
    finally:
        owner.kill()
        owner.communicate()
    # the kernel released the lock with its owner: a resume takes it and finishes the sweep
    assert files.lock_holder(out / "lock") is None
    assert in_process(argv + ["--resume"]) == 0
    assert_same_results(out, reference)


# ---------------------------------------------------------------------------------------------
# Corrupt, mismatched and unwritable files (in this process: ncgrok.main on the synthetic split)


def tree(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` (but the lock, whose holder record any locking rewrites) and its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != "lock"}


@pytest.fixture
def finished(reference, tmp_path) -> Path:
    """A copy of the finished reference sweep, to damage."""
    import shutil

    return Path(shutil.copytree(reference, tmp_path / "sweep"))


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage" * 40)


def _corrupt_middle_row(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[5] = lines[5].replace(",", ",x", 1)
    path.write_text("".join(lines))


def _drop_last_rows(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-3]))


@pytest.mark.parametrize(
    "file, damage, fix",
    [
        ("checkpoint.pt", _truncate, "delete checkpoint.pt and run again with --resume"),
        ("checkpoint.pt", _garbage, "delete checkpoint.pt and run again with --resume"),
        (f"{RUNS[1]}/metrics.csv", _corrupt_middle_row, "line 6"),
        (f"{RUNS[1]}/metrics.csv", _drop_last_rows, "missing [180, 190, 200]"),
        (f"{RUNS[0]}/config.json", _truncate, "delete it and run again with --resume"),
        ("sweep.json", _truncate, "start over with a new --out"),
        ("sweep.json", lambda path: path.write_text('{"schema": 1, "runs": []}'), "start over with a new --out"),
    ],
)
def test_damaged_file_is_one_line_naming_it_and_nothing_changes(finished, in_process, capsys, file, damage, fix):
    damage(finished / file)
    before = tree(finished)
    assert in_process(["sweep", "--out", str(finished), *FLAGS, "--resume"]) == 2
    message = one_error_line(capsys)
    assert str(finished / file) in message and fix in message, message
    assert tree(finished) == before


def test_partial_last_metrics_line_and_missing_config_are_repaired_silently(finished, reference, in_process):
    with open(finished / RUNS[0] / "metrics.csv", "a") as stream:
        stream.write("210,0.25,0.")  # what a kill in the middle of an append leaves
    (finished / RUNS[1] / "config.json").unlink()
    assert in_process(["sweep", "--out", str(finished), *FLAGS, "--resume"]) == 0
    assert_same_results(finished, reference)
    assert (finished / RUNS[1] / "config.json").read_bytes() == (reference / RUNS[1] / "config.json").read_bytes()


@pytest.mark.parametrize(
    "change, expected",
    [
        (["--steps", "300"], "--steps: stored 200, given 300"),
        (["--lr", "0.02"], "--lr: stored [0.01], given [0.02]"),
        (["--seeds", "0", "1"], "--seed/--seeds: stored [0], given [0, 1]"),
        (["--train-size", "50"], "--train-size: stored 60, given 50"),
    ],
)
def test_resume_with_other_flags_names_the_flag_and_both_values(finished, in_process, capsys, change, expected):
    flags = list(FLAGS)
    index = flags.index(change[0])
    end = next((i for i in range(index + 1, len(flags)) if flags[i].startswith("--")), len(flags))
    flags[index:end] = change
    before = tree(finished)
    assert in_process(["sweep", "--out", str(finished), *flags, "--resume"]) == 2
    message = one_error_line(capsys)
    assert expected in message and str(finished) in message, message
    assert tree(finished) == before


def test_rejected_commands_write_nothing(tmp_path, finished, capsys):
    out = tmp_path / "new"
    for argv in (
        ["--lr", "-1"],
        ["--heldout-size", "-3"],
        ["--batch-size", "100", "--train-size", "60"],
        ["--data-dir", str(tmp_path / "no-data"), "--train-size", "60", "--batch-size", "20"],  # no data files there
    ):
        assert ncgrok.main(["sweep", "--out", str(out), "--steps", "5", "--device", "cpu", "--quiet", *argv]) == 2
        one_error_line(capsys)
        assert not out.exists(), argv
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for target in (foreign, finished, foreign / "notes.txt"):
        before = tree(target.parent)
        assert ncgrok.main(["sweep", "--out", str(target), *FLAGS]) == 2  # no --resume
        assert str(target) in one_error_line(capsys)
        assert tree(target.parent) == before


@pytest.mark.parametrize("code, kind", [(errno.ENOSPC, "checkpoint"), (errno.EROFS, "append")])
def test_failed_write_keeps_the_last_checkpoint_and_resume_recovers(tmp_path, reference, in_process, capsys,
                                                                    monkeypatch, code, kind):
    out = tmp_path / "sweep"
    original = files._write_synced
    checkpoints: list[bytes] = []

    def failing(name, data, *, mode):
        key = "append" if mode == "ab" else "checkpoint" if ".checkpoint.pt.partial-" in str(name) else None
        if key == kind and len(checkpoints) == 6:
            with open(name, mode) as stream:  # part of the data reaches the disk, then the write fails
                stream.write(data[: len(data) // 3])
            raise OSError(code, os.strerror(code))
        original(name, data, mode=mode)
        if key == "checkpoint":
            checkpoints.append(data)

    monkeypatch.setattr(files, "_write_synced", failing)
    assert in_process(["sweep", "--out", str(out), *FLAGS]) == 2
    message = one_error_line(capsys)
    assert os.strerror(code) in message and "--resume" in message and str(out) in message
    assert (out / "checkpoint.pt").read_bytes() == checkpoints[-1]
    monkeypatch.setattr(files, "_write_synced", original)
    assert in_process(["sweep", "--out", str(out), *FLAGS, "--resume"]) == 0
    assert_same_results(out, reference)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A tmpfs mounted at ``tmp_path/disk`` (skips where mounting is not allowed)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()

    def mount(*options: str) -> None:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(mount_point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")

    def remount(*options: str) -> None:
        subprocess.run(["mount", "-o", ",".join(("remount",) + options), str(mount_point)], check=True)

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount("size=4m")
    try:
        yield mount_point, remount
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_full_and_read_only_disk_on_a_real_tmpfs(tiny_tmpfs, reference, in_process, capsys, monkeypatch):
    mount_point, remount = tiny_tmpfs
    page = 4096
    small = sum(-(-p.stat().st_size // page) * page for p in reference.rglob("*")
                if p.is_file() and p.name != "checkpoint.pt")
    checkpoint = (reference / "checkpoint.pt").stat().st_size
    # room for the small files and one and a half checkpoints: the second checkpoint write runs out of space
    remount(f"size={small + checkpoint * 3 // 2 + 2 * page}")
    out = mount_point / "sweep"
    original = files._write_synced
    written: list[bytes] = []

    def recording(name, data, *, mode):
        original(name, data, mode=mode)
        if ".checkpoint.pt.partial-" in str(name):
            written.append(data)

    monkeypatch.setattr(files, "_write_synced", recording)
    assert in_process(["sweep", "--out", str(out), *FLAGS]) == 2
    message = one_error_line(capsys)
    assert os.strerror(errno.ENOSPC) in message and "checkpoint.pt" in message and "--resume" in message, message
    assert written and (out / "checkpoint.pt").read_bytes() == written[-1]
    assert not list(out.rglob("*.partial-*"))

    remount("size=4m")
    assert in_process(["sweep", "--out", str(out), *FLAGS, "--resume"]) == 0
    assert_same_results(out, reference)

    remount("ro")
    before = tree(out)
    assert in_process(["sweep", "--out", str(out), *FLAGS, "--resume"]) == 2
    message = one_error_line(capsys)
    assert os.strerror(errno.EROFS) in message and str(out) in message
    assert tree(out) == before
