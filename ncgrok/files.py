"""Writing result files: atomic replacement and JSON-safe values, shared by every package.

A long run writes its results as it goes, so a reader (or a crash, or Ctrl-C) must never see a
half-written file. Every writer here writes to a temporary file in the target's directory (same file
system, so the rename is atomic), then moves it over the target with ``os.replace``; if anything
fails the temporary file is removed and the old target, if any, is left as it was. Missing parent
directories are created. The new file gets the permissions a plain ``open(path, "w")`` would give
(``0o666`` minus the umask), not the ``0o600`` of :func:`tempfile.mkstemp`.

JSON has no NaN or infinity; :func:`json_safe` maps them to ``None`` (``null``) and turns numpy
scalars and arrays, tensors, tuples and paths into plain Python values, so the output is strict JSON.

Nothing here imports ``numpy``, ``torch`` or ``matplotlib``: values and figures are handled through
their own methods (``tolist``, ``savefig``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = [
    "atomic_savefig",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "default_file_mode",
    "json_safe",
]


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
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
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
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    return path


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
