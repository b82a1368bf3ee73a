"""Reading chosen members of a tar archive (an npm tarball, a CIFAR-10 archive) without extracting it."""
from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from typing import Collection

from ncgrok.empirical.data.idx import READ_CHUNK

__all__ = ["read_tar_members"]


def read_tar_members(path: str | os.PathLike, wanted: Collection[str], *, fix: str) -> dict[str, bytes]:
    """The regular-file members of the tar archive at ``path`` whose last path component is in
    ``wanted``, keyed by that name (the first occurrence of each wins), in archive order.

    Nothing is written to disk and members are looked up by name only, so absolute paths, ``..``
    components and links in the archive can never place anything anywhere; members with such names
    are skipped. Each member is read in bounded chunks, so a member header announcing an absurd size
    allocates no more than the data actually present. Reading stops once every wanted name is found.
    A damaged archive raises ``ValueError`` naming it and ending with ``fix``.
    """
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                base_name = member.name.rsplit("/", 1)[-1]
                if base_name not in wanted or base_name in found or not member.isfile():
                    continue
                if member.name.startswith("/") or ".." in member.name.split("/"):
                    continue
                extracted = archive.extractfile(member)
                if extracted is None:
                    continue
                parts = []
                while chunk := extracted.read(READ_CHUNK):
                    parts.append(chunk)
                found[base_name] = b"".join(parts)
                if len(found) == len(wanted):
                    break
    except FileNotFoundError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        raise ValueError(f"{path}: not a readable tar archive ({error}); {fix}") from None
    return found
