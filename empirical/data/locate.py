"""Where a data set's files are looked for: the data directory and the folders searched under it."""
from __future__ import annotations

import os
from pathlib import Path

from ncgrok.empirical.data.records import DatasetRecord

__all__ = ["SYSTEM_ROOT", "candidate_folders", "locate_file", "not_found", "resolve_data_dir"]

# Root under which a Debian package's files are installed (tests point it at a temporary folder).
SYSTEM_ROOT = Path("/")


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


def installed_folder(record: DatasetRecord) -> Path | None:
    """Where the record's Debian package installs its files, if a Debian package ships it."""
    return SYSTEM_ROOT / record.debian.folder if record.debian is not None else None


def candidate_folders(record: DatasetRecord, data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders searched, in order, for a data set's raw files: ``<dir>/<name>/``, ``<dir>/<name>/raw/``,
    the other layouts of ``record.folder_names`` (``raw/`` first), ``<dir>/`` itself, and, when no
    data directory is given, the folder the Debian package installs."""
    base = resolve_data_dir(data_dir)
    names = record.folder_names
    folders = [base / names[0], base / names[0] / "raw"]
    for other in names[1:]:
        folders += [base / other / "raw", base / other]
    folders.append(base)
    system = installed_folder(record)
    if data_dir is None and system is not None:
        folders.append(system)
    return list(dict.fromkeys(folders))


def locate_file(record: DatasetRecord, file: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Every existing ``file`` or ``file.gz`` in the candidate folders, in search order."""
    found = []
    for folder in candidate_folders(record, data_dir):
        for candidate in (folder / file, folder / (file + ".gz")):
            if candidate.is_file():
                found.append(candidate)
    return found


def _is_under(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base)
    except ValueError:
        return False
    return True


def not_found(record: DatasetRecord, file: str, data_dir: str | os.PathLike | None, skipped: str = "") -> FileNotFoundError:
    """The error for a file found in none of the candidate folders, listing them and the fix."""
    base = resolve_data_dir(data_dir)
    searched = ", ".join(
        (str(folder.relative_to(base)) + "/" if folder != base else "./") if _is_under(folder, base)
        else str(folder) + "/"
        for folder in candidate_folders(record, data_dir)
    )
    return FileNotFoundError(
        f"{record.display_name} file {file}[.gz] not found under {base} (searched {searched}{skipped}); "
        f"{record.fetch_hint}, or point --data-dir / data_dir / $NCGROK_DATA at a folder that "
        f"holds the raw IDX files (a torchvision cache such as {record.folder_names[1]}/raw/ works)"
    )
