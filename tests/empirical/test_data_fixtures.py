"""Synthetic data files in the real on-disk formats, shared by the ``test_data*.py`` files, and tests
that the fixtures are what they claim (so a passing data test cannot rest on a wrong fixture).

Everything is written byte by byte here, independently of ``ncgrok.empirical.data``: IDX headers with
big-endian dimensions, gzip via the standard library, CIFAR-10 batches as pickled dicts with bytes keys
(including a Python-2-style pickle like the original files), tar archives laid out like the npm
tarball and the CIFAR-10 archive, and hostile pickles. Their md5 sums cannot match the published
ones, so tests pass ``verify=False``, their own ``checksums=`` table computed here with hashlib, or
substitute a record with :func:`use_checksums` for the duration of one test.

Other test files load this one by path (tests run with ``--import-mode=importlib``).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

IDX_FILE_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                  "t10k-labels-idx1-ubyte")
CIFAR_BATCH_NAMES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


# --------------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.tobytes(order="C")


def idx_header(dims, type_code: int = 0x08) -> bytes:
    """An IDX header announcing ``dims`` (whatever follows it)."""
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)


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


def use_checksums(monkeypatch, data, name: str, md5) -> None:
    """Make ``md5`` the published sums of data set ``name`` for the rest of the test."""
    monkeypatch.setitem(data.RECORDS, name, data.RECORDS[name].with_checksums(md5))


def npm_like_tarball(path: Path, files: dict[str, bytes], extra: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in {**{f"package/data/{k}": v for k, v in files.items()}, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return path


# --------------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------------

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
    for name in CIFAR_BATCH_NAMES:
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


# Hostile pickles: each creates ``marker`` when loaded by an unrestricted unpickler.

def malicious_pickle(marker: Path) -> bytes:
    """Protocol 0: GLOBAL os.system, called with a shell command."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


def eval_pickle(marker: Path) -> bytes:
    """GLOBAL builtins.eval, called on an expression that opens ``marker`` for writing."""
    expression = f"open({str(marker)!r}, 'w').close()"
    return b"cbuiltins\neval\n(V" + expression.encode() + b"\ntR."


def getattr_pickle(marker: Path) -> bytes:
    """GLOBAL builtins.getattr fetching ``system`` from ``__import__('os')``, then calling it."""
    return (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(Vtouch "
            + str(marker).encode() + b"\ntR.")


HOSTILE_PICKLES = {"os.system": malicious_pickle, "builtins.eval": eval_pickle, "builtins.getattr": getattr_pickle}


def run_cli(argv):
    from ncgrok import cli

    return cli.main(argv, modules=(cli.data,))


# --------------------------------------------------------------------------------------------------
# The fixtures are what they claim
# --------------------------------------------------------------------------------------------------

def test_idx_writer_matches_the_format_byte_by_byte():
    array = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    assert idx_bytes(array) == b"\x00\x00\x08\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03" + bytes(range(1, 7))
    assert idx_header((10 ** 9, 7)) == b"\x00\x00\x08\x02" + (10 ** 9).to_bytes(4, "big") + b"\x00\x00\x00\x07"


def test_python2_style_pickle_uses_binstring_and_loads_back():
    batch = cifar_batches(per_batch=2)["test_batch"]
    content = py2_style_pickle(batch)
    assert pickle.SHORT_BINSTRING + bytes([len(b"labels")]) + b"labels" in content
    loaded = pickle.loads(content, encoding="bytes")
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])


def test_hostile_pickles_really_run_code_when_unpickled_without_restriction(tmp_path):
    # A positive control, in a child process: the plain unpickler creates each marker, so a test that
    # finds no marker after the restricted one has read the same bytes shows a real refusal.
    for kind, make in HOSTILE_PICKLES.items():
        marker = tmp_path / f"{kind}.marker"
        payload = make(marker)
        subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                       input=payload, check=True, timeout=60)
        assert marker.exists(), kind
