"""Writing result files: atomic replacement and JSON-safe values, shared by every package.

A long run writes its results as it goes, so a reader (or a crash, or Ctrl-C) must never see a
half-written file. Every writer here writes to a temporary file in the target's directory (same file
system, so the rename is atomic), then moves it over the target with ``os.replace``; if anything
fails the temporary file is removed and the old target, if any, is left as it was. Missing parent
directories are created. The new file gets the permissions a plain ``open(path, "w")`` would give
(``0o666`` minus the umask), not the ``0o600`` of :func:`tempfile.mkstemp`.

JSON has no NaN or infinity; :func:`json_safe` maps them to ``None`` (``null``) and turns numpy
scalars and arrays, tensors, tuples and paths into plain Python values, so the output is strict JSON.

A writer killed mid-write (``kill -9``, power loss) can leave its temporary file behind; those are
named ``.<target name>.partial-<random><suffix>`` and :func:`remove_partial_writes` deletes them.
:func:`append_bytes` grows a file by whole records (``metrics.csv`` rows), flushed to disk.

:class:`DirectoryLock` is an advisory, exclusive lock on a lock file (``fcntl.flock``): the kernel
releases it when its owner exits or is killed, so a crash never leaves a stale lock, and the file
records who holds it (pid, host, since when) for the refusal message. ``flock`` locks are local to
one machine (not reliable on network file systems shared by several hosts).

Nothing here imports ``numpy``, ``torch`` or ``matplotlib``: values and figures are handled through
their own methods (``tolist``, ``savefig``).
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import math
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = [
    "DirectoryLock",
    "LockHeld",
    "append_bytes",
    "agg_pyplot",
    "atomic_savefig",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "default_file_mode",
    "is_partial_write",
    "json_safe",
    "lock_holder",
    "remove_partial_writes",
]

# Temporary files of an interrupted write are named ".<target>.partial-<random><suffix>".
_PARTIAL = ".partial-"


def default_file_mode() -> int:
    """Permissions of a file newly created under the current umask: ``0o666 & ~umask``."""
    mask = os.umask(0)  # the umask can only be read by setting it; restore it at once
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def _replacing(path: Path, *, suffix: str) -> Iterator[str]:
    """Yield the name of a new, empty file beside ``path``; on normal exit give it the default
    permissions and rename it over ``path``, on an exception (any, including KeyboardInterrupt)
    remove it and re-raise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{_PARTIAL}", suffix=suffix)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` by a file holding ``data``, atomically, flushed to disk (``fsync``) before
    the rename. Returns ``path`` as a :class:`~pathlib.Path`."""
    path = Path(path)
    with _replacing(path, suffix=".tmp") as temporary:
        _write_synced(temporary, data, mode="wb")
    return path


def _write_synced(name: str | os.PathLike, data: bytes, *, mode: str) -> None:
    """Write ``data`` to the file ``name`` opened with ``mode`` ("wb" or "ab") and ``fsync`` it.
    Every byte this module writes goes through here (tests inject disk-full errors at this point)."""
    with open(name, mode) as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def append_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Append ``data`` to the existing file ``path`` and ``fsync`` it. Not atomic: a crash can leave
    a prefix of ``data`` at the end, so callers append whole records and drop a partial last one
    when they read (``metrics.csv`` rows end in a newline). Returns ``path`` as a Path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (append_bytes only grows an existing file)")
    _write_synced(path, data, mode="ab")
    return path


def remove_partial_writes(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writes interrupted by a crash left in ``directory`` (not
    below it); returns their paths. Call it only while no other process writes there (hold the
    directory's :class:`DirectoryLock`)."""
    removed = []
    for path in sorted(Path(directory).iterdir()):
        if is_partial_write(path) and path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def is_partial_write(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like the temporary file of an atomic write (``.<name>.partial-*``)."""
    name = Path(path).name
    return name.startswith(".") and _PARTIAL in name


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` by a file holding ``text`` encoded as UTF-8, atomically. Line endings are
    written as they are in ``text`` (no newline translation). Returns ``path`` as a Path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, payload: Mapping[str, Any], *, indent: int | None = 2) -> Path:
    """Replace ``path`` by ``payload`` as a JSON object (passed through :func:`json_safe`, so NaN
    and infinities become ``null``), indented by ``indent``, keys in the order given, with a final
    newline; atomically. Returns ``path`` as a Path."""
    text = json.dumps(json_safe(dict(payload)), indent=indent, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def agg_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display), imported on first use so that importing a
    module that draws does not import matplotlib. Every figure ncgrok writes is drawn through it."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def atomic_savefig(
    figure: Any, path: str | os.PathLike, *, dpi: float | str | None = None, format: str | None = None,
    **savefig_options: Any,
) -> Path:
    """Save a matplotlib ``figure`` to ``path`` atomically: ``figure.savefig`` into a temporary file
    beside ``path``, then rename. ``format`` defaults to the suffix of ``path`` (``png`` when it has
    none); ``dpi=None`` uses matplotlib's ``savefig.dpi`` setting; other keywords (``bbox_inches``,
    ...) go to ``savefig``. The figure is not closed. Returns ``path`` as a Path."""
    path = Path(path)
    format = (format or path.suffix.lstrip(".") or "png").lower()
    with _replacing(path, suffix="." + format) as temporary:
        figure.savefig(temporary, dpi=dpi, format=format, **savefig_options)
    return path


def json_safe(value: Any) -> Any:
    """A copy of ``value`` made of plain Python values that ``json.dumps(..., allow_nan=False)``
    accepts: NaN and +-inf become ``None``; numpy scalars and arrays (and anything else with a
    ``tolist`` method, such as torch tensors) become Python numbers and nested lists; tuples become
    lists; paths become strings; dictionary keys become strings. Dicts, lists and tuples are copied
    recursively (the input is not modified); any other value is returned as it is, so
    ``json.dumps`` still rejects what it cannot encode."""
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        number = float(value)  # also a numpy float64, which subclasses float
        return number if math.isfinite(number) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy scalar or array, torch tensor
        return json_safe(value.tolist())
    return value


# ---------------------------------------------------------------------------------------------
# Advisory directory lock


class LockHeld(ValueError):
    """Another live process holds the lock; the message names it (pid, host, since when)."""


def _holder_record() -> bytes:
    since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return (json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}) + "\n").encode()


def _describe_holder(descriptor: int) -> str:
    """``pid P on host H since T`` from the lock file's record (written by the holder after it
    locked; it can be missing for an instant, or stale from an owner that died)."""
    os.lseek(descriptor, 0, os.SEEK_SET)
    text = os.read(descriptor, 4096).decode("utf-8", errors="replace")
    try:
        record = json.loads(text)
        return f"pid {record['pid']} on host {record['host']} since {record['since']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not recorded itself yet"


def lock_holder(path: str | os.PathLike) -> str | None:
    """Who holds the lock file ``path`` (``"pid P on host H since T"``), or ``None`` when no live
    process does. Read-only: it creates nothing (a missing file means unlocked)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe_holder(descriptor)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


class DirectoryLock:
    """Exclusive advisory lock on the file ``path`` (created if missing, never deleted).

    ``with DirectoryLock(path, purpose="write the sweep in DIR"):`` takes the lock at once or raises
    :class:`LockHeld` naming the holder; the lock is released on exit, and by the kernel if the
    process dies, so it is never stale. While held, the file records ``{"pid", "host", "since"}``.
    The lock belongs to this open file: a second ``DirectoryLock`` on the same path in the same
    process is refused too.
    """

    def __init__(self, path: str | os.PathLike, *, purpose: str):
        self.path = Path(path)
        self.purpose = purpose
        self._descriptor: int | None = None

    def acquire(self) -> None:
        if self._descriptor is not None:
            raise RuntimeError(f"{self.path} is already locked by this DirectoryLock")
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, default_file_mode())
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(descriptor)
            os.close(descriptor)
            raise LockHeld(
                f"cannot {self.purpose}: {self.path} is locked by {holder}; wait for that process to finish "
                f"(or stop it), or choose another output directory"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, _holder_record(), 0)
        except BaseException:
            os.close(descriptor)  # closing releases the lock
            raise
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            os.close(descriptor)  # closing the only descriptor releases the flock

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def __enter__(self) -> "DirectoryLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()
