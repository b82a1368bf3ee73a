"""The IDX file format (MNIST, Fashion-MNIST): reading, raw or gzipped, with the md5 of the content.

An IDX file is two zero bytes, a type code, the number of dimensions, each dimension as a big-endian
uint32, then the values in C order (big-endian for multi-byte types). The header therefore says how
long the file must be, and a file whose header disagrees with its length is refused *before* its
payload is read: the size is computed in exact integer arithmetic (no overflow however large the
dimensions), compared with the file's size on disk (for a gzipped file, with the most that size can
expand to), and the payload is then read in bounded chunks, so a lying header never causes an
allocation larger than the data actually present.

Every error is a ``ValueError`` that names the file and ends with the caller's ``fix``.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

__all__ = ["GZIP_MAGIC", "IdxContent", "IdxHeader", "parse_idx", "read_idx", "read_idx_bytes", "read_idx_file"]

IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
# DEFLATE cannot expand data by more than 1032:1 (a 258-byte match costs at least 2 bits), so a gzip
# file of S bytes holds at most 1032 S bytes of content.
DEFLATE_MAX_EXPANSION = 1032
READ_CHUNK = 1 << 20  # bytes read per call while reading a payload
DEFAULT_FIX = "replace it with an intact copy"


@dataclass(frozen=True)
class IdxHeader:
    """A decoded IDX header: the value type and the array shape it announces."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def header_bytes(self) -> int:
        return 4 + 4 * len(self.shape)

    @property
    def payload_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: exact, never overflows

    @property
    def total_bytes(self) -> int:
        return self.header_bytes + self.payload_bytes


class IdxContent(NamedTuple):
    """A decoded IDX file: the array (writable, native byte order) and the md5 of the uncompressed
    file content (header and payload)."""

    array: np.ndarray
    md5: str


def _size_mismatch(source: str, header: IdxHeader, holds: str, fix: str, *, short: bool) -> ValueError:
    state = "truncated" if short else "has trailing bytes"
    return ValueError(
        f"{source}: {state}: the header promises shape {header.shape} ({header.total_bytes} bytes in all) "
        f"but the file holds {holds}; {fix}"
    )


def _read_up_to(stream: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes (fewer only at the end of the stream), in chunks of at most READ_CHUNK."""
    parts = []
    remaining = count
    while remaining > 0:
        chunk = stream.read(min(READ_CHUNK, remaining))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _read_header(stream: BinaryIO, source: str, fix: str) -> tuple[IdxHeader, bytes]:
    magic = _read_up_to(stream, 4)
    if len(magic) < 4:
        raise ValueError(f"{source}: only {len(magic)} bytes, too short for an IDX header (truncated?); {fix}")
    zero0, zero1, type_code, ndim = magic
    if zero0 != 0 or zero1 != 0 or type_code not in IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{source}: not an IDX file (magic number 0x{magic.hex()}, expected 0x0000 followed by a "
            f"type code such as 08 for unsigned bytes and the number of dimensions); {fix}"
        )
    dims = _read_up_to(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{source}: the IDX header is cut short (truncated file); {fix}")
    shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
    return IdxHeader(IDX_TYPES[type_code], shape), magic + dims


def _read_payload(stream: BinaryIO, header: IdxHeader, digest, source: str, fix: str) -> bytearray:
    """The payload, read in chunks into a buffer that grows only with the bytes actually present; one
    byte beyond the announced length is asked for to detect trailing data."""
    payload = bytearray()
    wanted = header.payload_bytes + 1
    while len(payload) < wanted:
        chunk = stream.read(min(READ_CHUNK, wanted - len(payload)))
        if not chunk:
            break
        payload += chunk
    if len(payload) != header.payload_bytes:
        short = len(payload) < header.payload_bytes
        holds = (f"{header.header_bytes + len(payload)} bytes" if short
                 else f"more than {header.total_bytes} bytes")
        raise _size_mismatch(source, header, holds, fix, short=short)
    digest.update(payload)
    return payload


def read_idx_stream(handle: BinaryIO, size: int, *, source: str, fix: str = DEFAULT_FIX) -> IdxContent:
    """Decode the IDX file in ``handle`` (positioned at its start; ``size`` bytes as stored), gunzipping
    it when it starts with the gzip magic bytes (whatever its name).

    The header is checked against ``size`` before the payload is read: a raw file must be exactly as
    long as its header says; a gzipped one cannot announce more than ``DEFLATE_MAX_EXPANSION * size``
    bytes. The payload is then read in chunks, so memory grows only with the data actually present.
    """
    head = handle.read(2)
    handle.seek(-len(head), io.SEEK_CUR)
    compressed = head == GZIP_MAGIC
    try:
        stream = gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle
        header, header_content = _read_header(stream, source, fix)
        if not compressed and header.total_bytes != size:
            raise _size_mismatch(source, header, f"{size} bytes", fix, short=size < header.total_bytes)
        if compressed and header.total_bytes > DEFLATE_MAX_EXPANSION * size:
            raise ValueError(
                f"{source}: the IDX header promises shape {header.shape} ({header.total_bytes} bytes), more "
                f"than a gzip file of {size} bytes can hold (at most {DEFLATE_MAX_EXPANSION * size}): the "
                f"header is corrupt or the file truncated; {fix}"
            )
        digest = hashlib.md5(header_content)
        payload = _read_payload(stream, header, digest, source, fix)
    except EOFError:
        raise ValueError(f"{source}: the gzip stream ends early (truncated download?); {fix}") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{source}: corrupt gzip data ({error}); {fix}") from None
    try:
        values = np.frombuffer(payload, dtype=header.dtype).reshape(header.shape)
    except ValueError:  # an empty array whose other dimensions overflow numpy's index type
        raise ValueError(f"{source}: the IDX header's shape {header.shape} is too large to represent; {fix}") from None
    if not header.dtype.isnative:
        values = values.astype(header.dtype.newbyteorder("="))
    return IdxContent(values, digest.hexdigest())


def read_idx_file(path: str | os.PathLike, *, fix: str = DEFAULT_FIX) -> IdxContent:
    """Decode the IDX file at ``path`` (see :func:`read_idx_stream`). A missing file raises
    ``FileNotFoundError``; one that cannot be read (permissions, a folder) a ``ValueError``."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return read_idx_stream(handle, os.fstat(handle.fileno()).st_size, source=str(path), fix=fix)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error}); {fix}") from None


def read_idx_bytes(content: bytes, *, source: str = "<bytes>", fix: str = DEFAULT_FIX) -> IdxContent:
    """Decode IDX bytes (raw or gzipped) held in memory, e.g. a member of a package archive."""
    return read_idx_stream(io.BytesIO(content), len(content), source=source, fix=fix)


def parse_idx(content: bytes, *, source: str = "<bytes>", fix: str = DEFAULT_FIX) -> np.ndarray:
    """The array in IDX bytes (see :func:`read_idx_bytes`)."""
    return read_idx_bytes(content, source=source, fix=fix).array


def read_idx(path: str | os.PathLike, *, fix: str = DEFAULT_FIX) -> np.ndarray:
    """The array in the IDX file at ``path``, raw or gzipped (see :func:`read_idx_file`)."""
    return read_idx_file(path, fix=fix).array
