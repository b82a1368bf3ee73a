"""Tests for ``ncgrok.files``: atomic writes and JSON-safe values."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from ncgrok import files
from ncgrok.files import atomic_savefig, atomic_write_bytes, atomic_write_json, atomic_write_text, json_safe


@pytest.fixture
def umask_022():
    """Fix the umask so the expected permissions (0o644) are known, and restore it afterwards."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _strict_loads(text: str):
    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


class _FailingFigure:
    """Writes part of a file to the name it is given, then raises (a crash in the middle of savefig)."""

    def __init__(self, error: BaseException):
        self.error = error
        self.names: list[str] = []

    def savefig(self, name, **options):
        self.names.append(name)
        with open(name, "wb") as stream:
            stream.write(b"partial")
        raise self.error


# ------------------------------------------------------------------------------------------ writes


def test_atomic_write_bytes_creates_parents_leaves_only_the_target_with_umask_permissions(tmp_path, umask_022):
    target = tmp_path / "a" / "b" / "data.bin"
    returned = atomic_write_bytes(target, b"\x00\x01payload")
    assert returned == target
    assert target.read_bytes() == b"\x00\x01payload"
    assert os.listdir(target.parent) == ["data.bin"]  # no temporary file left behind
    # mkstemp creates 0o600; the helper gives what open() would under umask 022.
    assert target.stat().st_mode & 0o777 == 0o644
    atomic_write_bytes(str(target), b"second")  # a str path; replaces the existing file
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["data.bin"]


def test_atomic_write_bytes_failure_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")

    def failing_fsync(descriptor):  # the bytes are written, the rename has not happened yet
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_atomic_write_text_is_utf8_without_newline_translation(tmp_path):
    target = tmp_path / "table.csv"
    text = "a,b\r\n1,λ\n"
    atomic_write_text(target, text)
    assert target.read_bytes() == text.encode("utf-8")


def test_atomic_write_json_maps_non_finite_to_null_keeps_order_and_indent(tmp_path):
    target = tmp_path / "summary.json"
    payload = {"z": 1, "nan": float("nan"), "inf": float("inf"), "pair": (1, 2.5)}
    atomic_write_json(target, payload)
    expected = '{\n  "z": 1,\n  "nan": null,\n  "inf": null,\n  "pair": [\n    1,\n    2.5\n  ]\n}\n'
    assert target.read_text() == expected
    assert _strict_loads(target.read_text()) == {"z": 1, "nan": None, "inf": None, "pair": [1, 2.5]}
    atomic_write_json(target, {"a": [1]}, indent=1)
    assert target.read_text() == '{\n "a": [\n  1\n ]\n}\n'
    assert math.isnan(payload["nan"])  # the caller's object is not modified


def test_atomic_write_json_rejects_what_json_cannot_encode_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("{}\n")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"value": object()})
    assert target.read_text() == "{}\n"
    assert os.listdir(tmp_path) == ["summary.json"]


@pytest.mark.parametrize("error", [RuntimeError("savefig failed"), KeyboardInterrupt()])
def test_atomic_savefig_failure_mid_write_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "figure.png"
    target.write_bytes(b"old figure")
    figure = _FailingFigure(error)
    with pytest.raises(type(error)):
        atomic_savefig(figure, target, dpi=50)
    assert len(figure.names) == 1 and Path(figure.names[0]).parent == tmp_path
    assert target.read_bytes() == b"old figure"
    assert os.listdir(tmp_path) == ["figure.png"]


def test_atomic_savefig_writes_the_format_of_the_suffix_or_the_one_given(tmp_path, umask_022):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    try:
        png = atomic_savefig(figure, tmp_path / "plot.png", dpi=20)
        pdf = atomic_savefig(figure, tmp_path / "plot.PDF", dpi=20, bbox_inches="tight")
        no_suffix = atomic_savefig(figure, tmp_path / "plot", dpi=20)
        forced = atomic_savefig(figure, tmp_path / "other.bin", dpi=20, format="pdf")
    finally:
        plt.close(figure)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert no_suffix.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert forced.read_bytes().startswith(b"%PDF")
    assert sorted(os.listdir(tmp_path)) == ["other.bin", "plot", "plot.PDF", "plot.png"]
    assert png.stat().st_mode & 0o777 == 0o644


# -------------------------------------------------------------------- appends, partial writes, lock


def test_append_bytes_grows_an_existing_file_only(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_bytes(b"step\n")
    files.append_bytes(target, b"0\n")
    files.append_bytes(str(target), b"10\n")
    assert target.read_bytes() == b"step\n0\n10\n"
    with pytest.raises(FileNotFoundError, match="only grows an existing file"):
        files.append_bytes(tmp_path / "missing.csv", b"0\n")
    assert os.listdir(tmp_path) == ["metrics.csv"]


def test_a_write_killed_mid_way_leaves_a_partial_file_that_is_recognised_and_removed(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")

    class Killed(BaseException):
        """Stands for SIGKILL: nothing after it runs (the cleanup below is suppressed too)."""

    def killed_mid_write(name, data, *, mode):
        with open(name, mode) as stream:
            stream.write(data[:3])
        raise Killed

    monkeypatch.setattr(files, "_write_synced", killed_mid_write)
    monkeypatch.setattr(files.os, "unlink", lambda path: None)  # a killed process cleans nothing up
    with pytest.raises(Killed):
        atomic_write_bytes(target, b"new content")
    monkeypatch.undo()
    (tmp_path / ".hidden").write_text("not a partial write")
    (tmp_path / "notes.partial-1").write_text("not hidden: not ours")
    [partial] = [name for name in os.listdir(tmp_path) if name.startswith(".checkpoint.pt.partial-")]
    assert (tmp_path / partial).read_bytes() == b"new"
    assert files.remove_partial_writes(tmp_path) == [tmp_path / partial]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "checkpoint.pt", "notes.partial-1"]
    assert target.read_bytes() == b"old"


def test_lock_refuses_a_second_holder_names_the_first_and_is_released(tmp_path):
    import socket

    path = tmp_path / "lock"
    assert files.lock_holder(path) is None and not path.exists()  # probing creates nothing
    assert files.lock_holder(tmp_path / "file" / "lock") is None
    first = files.DirectoryLock(path, purpose="write to DIR")
    with first:
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        holder = f"pid {os.getpid()} on host {socket.gethostname()} since {record['since']}"
        assert files.lock_holder(path) == holder
        with pytest.raises(files.LockHeld) as error:  # a second open file is a second holder, even here
            files.DirectoryLock(path, purpose="write to DIR").acquire()
        assert str(error.value).startswith(f"cannot write to DIR: {path} is locked by {holder}")
        assert isinstance(error.value, ValueError)  # the CLI answers it in one line
    assert not first.held and files.lock_holder(path) is None
    # a record left by an owner that died does not hold anyone back: only the kernel's lock counts
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "2000-01-01T00:00:00+00:00"}))
    with files.DirectoryLock(path, purpose="write") as again:
        assert again.held and json.loads(path.read_text())["pid"] == os.getpid()


# ---------------------------------------------------------------------------------------- json_safe


def test_json_safe_maps_non_finite_numbers_to_none():
    assert json_safe(float("nan")) is None
    assert json_safe(float("inf")) is None
    assert json_safe(-math.inf) is None
    assert json_safe(np.float32("nan")) is None
    assert json_safe(np.float64("-inf")) is None
    assert json_safe(1.5) == 1.5 and json_safe(-0.0) == 0.0


def test_json_safe_turns_numpy_scalars_into_python_numbers_of_the_same_value():
    cases = [(np.int64(-7), int, -7), (np.uint8(200), int, 200), (np.float32(0.5), float, 0.5),
             (np.float64(2.25), float, 2.25), (np.bool_(True), bool, True), (np.bool_(False), bool, False)]
    for value, kind, expected in cases:
        converted = json_safe(value)
        assert type(converted) is kind and converted == expected, value
    # A Python bool stays a bool (not 1), an int an int.
    assert json_safe(True) is True and type(json_safe(3)) is int


def test_json_safe_turns_arrays_tuples_and_paths_into_plain_nested_values():
    value = {
        "matrix": np.array([[1.0, np.nan], [np.inf, -2.0]]),
        "counts": np.arange(3),
        "nested": (1, (2.0, (float("nan"), "text")), [np.int32(4)]),
        "scalar_array": np.array(3.5),
        "path": Path("a") / "b.json",
        3: "int key",
        "none": None,
    }
    converted = json_safe(value)
    assert converted == {
        "matrix": [[1.0, None], [None, -2.0]],
        "counts": [0, 1, 2],
        "nested": [1, [2.0, [None, "text"]], [4]],
        "scalar_array": 3.5,
        "path": os.path.join("a", "b.json"),
        "3": "int key",
        "none": None,
    }
    assert all(type(item) is int for item in converted["counts"])
    assert type(converted["nested"][2][0]) is int
    # The result is strict JSON and reads back to itself.
    assert _strict_loads(json.dumps(converted, allow_nan=False)) == converted
