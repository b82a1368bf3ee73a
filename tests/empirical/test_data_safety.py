"""Damaged and hostile data files: each is refused with one error that names the file and the fix,
before it can cost memory or run code.

* IDX headers that lie about the size (huge counts, dimensions whose product overflows 64 bits) are
  refused before the payload is read; ``tracemalloc`` bounds the memory the attempt takes.
* CIFAR-10 pickles that call ``os.system``, ``builtins.eval`` or ``builtins.getattr`` are refused by
  the restricted unpickler and their marker file is never created (``test_data_fixtures.py`` shows
  the same bytes do create it under the plain unpickler).
* Wrong md5, truncated files, corrupt gzip: through ``read_dataset`` and through ``ncgrok data``, one
  line on stderr, exit status 2, never a traceback.
"""
from __future__ import annotations

import gzip
import hashlib
import pickle
import tracemalloc
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import numpy as np
import pytest

from ncgrok.empirical import data

_spec = spec_from_file_location("data_fixtures", Path(__file__).with_name("test_data_fixtures.py"))
fx = module_from_spec(_spec)
_spec.loader.exec_module(fx)  # tests run with --import-mode=importlib: load the shared writers by path

MB = 1 << 20


def peak_bytes_while(call) -> tuple[int, BaseException | None]:
    """Peak memory traced while ``call()`` runs, and the exception it raised (if any)."""
    tracemalloc.start()
    try:
        call()
        raised = None
    except Exception as error:  # noqa: BLE001 - returned for the caller to inspect
        raised = error
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, raised


# --------------------------------------------------------------------------------------------------
# IDX headers that lie about the size
# --------------------------------------------------------------------------------------------------

def test_header_claiming_10_to_the_12_items_in_100_bytes(tmp_path):
    path = fx.write_file(tmp_path / "train-images-idx3-ubyte", fx.idx_header((10_000, 10_000, 10_000)) + bytes(84))
    assert path.stat().st_size == 100
    peak, error = peak_bytes_while(lambda: data.read_idx(path))
    assert isinstance(error, ValueError)
    message = str(error)
    assert str(path) in message and "truncated" in message and "(10000, 10000, 10000)" in message
    assert "1000000000016 bytes" in message and "holds 100 bytes" in message
    assert peak < MB, peak


def test_lying_header_is_refused_before_the_payload_is_read(tmp_path):
    # 8 MB of payload behind a header claiming 10^12 bytes: reading the payload would show in the peak.
    path = fx.write_file(tmp_path / "x-idx3-ubyte", fx.idx_header((10_000, 10_000, 10_000)) + bytes(8 * MB))
    peak, error = peak_bytes_while(lambda: data.read_idx(path))
    assert isinstance(error, ValueError) and str(path) in str(error)
    assert peak < MB, peak


@pytest.mark.parametrize("dims", [
    (65536, 65536, 65536, 65536),  # product 2**64: wraps to 0 in 64-bit arithmetic
    (4294967295,) * 4,             # product about 3.4e38
    (65536, 65536, 65536, 65536, 0),  # exact product 0, but numpy cannot hold the other dimensions
])
def test_dimension_products_are_exact(tmp_path, dims):
    path = fx.write_file(tmp_path / "x", fx.idx_header(dims))
    peak, error = peak_bytes_while(lambda: data.read_idx(path))
    assert isinstance(error, ValueError), error
    says = "too large to represent" if 0 in dims else "truncated"
    assert str(path) in str(error) and says in str(error) and str(dims) in str(error)
    assert peak < MB, peak


def test_an_empty_file_of_ordinary_dimensions_is_valid(tmp_path):
    path = fx.write_file(tmp_path / "x", fx.idx_header((0, 28, 28)))
    assert data.read_idx(path).shape == (0, 28, 28)


def test_gzip_whose_header_claims_more_than_it_can_expand_to(tmp_path):
    path = fx.write_file(tmp_path / "x-idx3-ubyte", fx.idx_header((10_000, 10_000, 10_000)) + bytes(100), gz=True)
    peak, error = peak_bytes_while(lambda: data.read_idx(path))
    assert isinstance(error, ValueError)
    assert str(path) in str(error) and "more than a gzip file of" in str(error)
    assert peak < MB, peak


def test_gzip_with_a_plausible_lie_allocates_only_what_it_holds(tmp_path):
    # 1 MB of incompressible payload (so a 1 MB file) behind a header claiming 512 MB, within what
    # 1 MB of gzip could expand to: the reader must stop at the real end, holding about 1 MB.
    payload = np.random.default_rng(0).integers(0, 256, size=MB, dtype=np.uint8).tobytes()
    path = fx.write_file(tmp_path / "x-idx3-ubyte", fx.idx_header((512, 1024, 1024)) + payload, gz=True)
    peak, error = peak_bytes_while(lambda: data.read_idx(path))
    assert isinstance(error, ValueError)
    assert str(path) in str(error) and "truncated" in str(error) and f"holds {MB + 16} bytes" in str(error)
    assert peak < 8 * MB, peak  # the lie would be 512 MB; the data present is 1 MB


def test_an_honest_file_is_read_without_a_second_copy(tmp_path):
    # The control for the bounds above: tracemalloc does see the payload (at least 4 MB), and a truthful
    # 4 MB file needs its own size plus one read chunk and the buffer's growth margin, not a second copy.
    array = np.random.default_rng(1).integers(0, 256, size=(64, 256, 256), dtype=np.uint8)
    path = fx.write_file(tmp_path / "x", fx.idx_bytes(array))
    result = {}
    peak, error = peak_bytes_while(lambda: result.setdefault("array", data.read_idx(path)))
    assert error is None
    np.testing.assert_array_equal(result["array"], array)
    assert 4 * MB <= peak < 7 * MB, peak


# --------------------------------------------------------------------------------------------------
# Hostile CIFAR-10 pickles
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(fx.HOSTILE_PICKLES))
def test_hostile_pickles_are_refused_and_run_nothing(tmp_path, kind, capsys):
    marker = tmp_path / "pwned"
    evil = fx.HOSTILE_PICKLES[kind](marker)
    with pytest.raises(pickle.UnpicklingError, match=kind.replace(".", r"\.") + "|posix.system"):
        data.restricted_loads(evil)
    folder = fx.write_cifar_folder(tmp_path / "folder", {"test_batch": evil})
    with pytest.raises(ValueError, match="refused to unpickle") as error:
        data.read_dataset("cifar10", data_dir=folder, split="test")
    assert str(folder / "test_batch") in str(error.value)
    archive = fx.write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", {"test_batch": evil})
    with pytest.raises(ValueError, match="refused to unpickle"):
        data.read_dataset("cifar10", data_dir=archive, split="test")
    assert fx.run_cli(["data", "info", "cifar10", "--split", "test", "--data-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused to unpickle" in err and "--data-dir" in err
    statuses = data.check(cifar10=archive, datasets=["cifar10"])
    assert [s.valid for s in statuses if s.file == "test_batch"] == [False]
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"),
                                          ("numpy", "load"), ("_codecs", "decode"), ("os", "system")])
def test_restricted_unpickler_refuses_other_globals(module, name):
    content = f"c{module}\n{name}\n(S'1'\ntR.".encode()
    with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name}"):
        data.restricted_loads(content)


def test_codecs_encode_only_latin1():
    content = b"c_codecs\nencode\n(Vabc\nVrot13\ntR."
    with pytest.raises(pickle.UnpicklingError):
        data.restricted_loads(content)


# --------------------------------------------------------------------------------------------------
# Damaged IDX files: one line naming the file and the fix
# --------------------------------------------------------------------------------------------------

def _wrong_md5(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF  # same length and structure: only the md5 can tell
    path.write_bytes(bytes(content))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _truncated_gzip(path: Path) -> None:
    path.write_bytes(gzip.compress(path.read_bytes())[:-40])


def _corrupt_gzip(path: Path) -> None:
    compressed = bytearray(gzip.compress(path.read_bytes()))
    compressed[len(compressed) // 2] ^= 0xFF
    path.write_bytes(bytes(compressed))


def _lying_header(path: Path) -> None:
    path.write_bytes(fx.idx_header((4294967295, 28, 28)) + path.read_bytes()[16:])


DAMAGES = {
    "wrong md5": (_wrong_md5, "md5 of the uncompressed content"),
    "truncated": (_truncated, "truncated"),
    "truncated gzip": (_truncated_gzip, "gzip stream ends early"),
    "corrupt gzip": (_corrupt_gzip, "gzip"),
    "lying header": (_lying_header, "truncated"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_file_is_one_clear_error(tmp_path, monkeypatch, capsys, damage):
    _, md5 = fx.synthetic_idx_set(tmp_path / "mnist", n_train=30, n_test=10)
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    spoil, says = DAMAGES[damage]
    spoil(path)
    if damage.endswith("gzip"):  # the reader recognises gzip by content, under the raw name too
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    with pytest.raises(ValueError) as error:
        data.read_dataset("mnist", data_dir=tmp_path, split="test")
    message = str(error.value)
    assert message.startswith(f"{path}: ") and says in message
    assert "ncgrok data fetch mnist" in message and "--data-dir" in message

    status = fx.run_cli(["data", "info", "mnist", "--split", "test", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("ncgrok data: error: ") and str(path) in err
    assert "Traceback" not in err

    assert fx.run_cli(["data", "check", "--dataset", "mnist", "--data-dir", str(tmp_path)]) == 1
    table = capsys.readouterr().out
    assert "INVALID" in table and str(path) in table


def test_paper_split_reports_a_damaged_file_the_same_way(tmp_path, monkeypatch):
    _, md5 = fx.synthetic_idx_set(tmp_path / "mnist", n_train=30, n_test=10)
    fx.use_checksums(monkeypatch, data, "mnist", md5)
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    _wrong_md5(path)
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError) as error:
        data.paper_split("mnist", train_size=10, heldout_size=5, data_dir=tmp_path)
    assert str(error.value).startswith(f"{path}: ") and actual in str(error.value) and md5[path.name] in str(error.value)
