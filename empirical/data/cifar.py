"""CIFAR-10: its pickled batches, read with an unpickler that can build numpy arrays and nothing else.

The standard ``cifar-10-python.tar.gz`` holds ``data_batch_1`` .. ``data_batch_5`` (training) and
``test_batch``, each a pickled dict with ``data`` (N x 3072 uint8, channel-major rows) and ``labels``.
No registry ships it, so the user gives the archive or its extracted folder. A pickle can run any
code when loaded; :class:`RestrictedUnpickler` resolves only the few numpy globals an array needs, so
a tampered batch is refused before anything it names can be called.
"""
from __future__ import annotations

import importlib
import io
import os
import pickle
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ncgrok.empirical.data.archives import read_tar_members
from ncgrok.empirical.data.locate import resolve_data_dir
from ncgrok.empirical.data.records import DatasetRecord

__all__ = ["RestrictedUnpickler", "batch_location", "cifar_source", "decode_batch", "load_cifar", "read_batches", "restricted_loads"]


def _numpy_attribute(modules: tuple[str, ...], attribute: str) -> Any:
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
    ``builtins.eval``, ``builtins.getattr``, ...) raises ``pickle.UnpicklingError`` before it can be
    called.
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


def _fix(record: DatasetRecord) -> str:
    return (f"replace it with an intact copy of {record.manual.archive_name}, or point --data-dir at "
            f"an intact copy")


def decode_batch(record: DatasetRecord, content: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of one pickled batch; a refused or
    malformed pickle raises ``ValueError`` naming ``source``."""
    fix = _fix(record)
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
    row = int(np.prod(record.image_shape))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        shape = getattr(data, "shape", None)
        raise ValueError(f"{source}: 'data' must be a uint8 array of shape (N, {row}), got {type(data).__name__} {shape}; {fix}")
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: 'labels' is not a list of integers; {fix}") from None
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{source}: expected {data.shape[0]} integer labels, got {labels.dtype} {labels.shape}; {fix}"
        )
    labels = labels.astype(np.int64)
    record.check_labels(labels, source)
    images = np.ascontiguousarray(data.reshape((data.shape[0],) + record.image_shape))
    return images, labels


def cifar_source(record: DatasetRecord, data_dir: str | os.PathLike | None) -> Path:
    """The CIFAR-10 archive or batch folder that ``data_dir`` designates: the archive itself, a batch
    folder, or a folder holding either (directly or under one of ``record.folder_names``)."""
    archive = record.manual
    explicit = data_dir is not None and str(data_dir) != ""
    base = resolve_data_dir(data_dir)
    how = (
        f"CIFAR-10 needs the path of {archive.archive_name} or its extracted {archive.folder_name}/ folder: "
        f"pass it as data_dir= / --data-dir (no registry ships CIFAR-10; download the archive yourself)"
    )
    if base.is_file():
        return base
    if not base.is_dir():
        if explicit:
            raise FileNotFoundError(f"{base} does not exist; {how}")
        raise FileNotFoundError(f"{how}; nothing found in the default data directory {base}")
    if any((base / file.name).is_file() for file in record.files):
        return base
    for folder in (base, *(base / name for name in record.folder_names)):
        if (folder / archive.folder_name).is_dir():
            return folder / archive.folder_name
        if (folder / archive.archive_name).is_file():
            return folder / archive.archive_name
    raise FileNotFoundError(f"no {archive.archive_name} or {archive.folder_name}/ in {base}; {how}")


def batch_location(source: Path, name: str) -> str:
    """How messages name batch ``name`` of ``source``: a path in a folder, ``archive:name`` in an archive."""
    return str(source / name) if source.is_dir() else f"{source}:{name}"


def read_batches(record: DatasetRecord, source: Path, names: Iterable[str]) -> dict[str, bytes]:
    """Raw bytes of the wanted batch files found in ``source`` (folder or tar archive); missing ones
    are absent from the result."""
    if not source.is_dir():
        return read_tar_members(source, names, fix=_fix(record))
    found = {}
    for name in names:
        path = source / name
        try:
            if path.is_file():
                found[name] = path.read_bytes()
        except OSError as error:
            raise ValueError(f"{path}: cannot be read ({error.strerror or error}); {_fix(record)}") from None
    return found


def load_cifar(record: DatasetRecord, data_dir: str | os.PathLike | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All batches of ``split``, concatenated in file order."""
    source = cifar_source(record, data_dir)
    names = [file.name for file in record.split_files(split)]
    members = read_batches(record, source, names)
    missing = [name for name in names if name not in members]
    if missing:
        raise FileNotFoundError(
            f"{source} lacks the CIFAR-10 batch file(s) {', '.join(missing)}; pass the complete "
            f"{record.manual.archive_name} or {record.manual.folder_name}/ folder as data_dir / --data-dir"
        )
    parts = [decode_batch(record, members[name], batch_location(source, name)) for name in names]
    images = np.concatenate([part[0] for part in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([part[1] for part in parts]) if len(parts) > 1 else parts[0][1]
    return images, labels
