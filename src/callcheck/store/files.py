"""callcheck's files are its owner's only: the data directory 0700; the databases, their WAL and shared-memory
files, the cookie key and the recordings 0600. Created that way, and tightened at start when found looser (a data
directory from an older callcheck, a file copied in with the default umask)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# SQLite's companions of a database file (it creates them with the database's own mode).
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) mode 0700, or take group and other access off an existing one."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create an empty `path` mode 0600 unless it exists, and take group and other access off it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    _tighten(path, FILE_MODE)


def private_sqlite(path: Path) -> None:
    """A SQLite database file made 0600 before SQLite opens it (its WAL and SHM files then inherit the mode)."""
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, FILE_MODE)


def tighten_tree(root: Path) -> None:
    """Directories under `root` 0700 and files 0600 where looser (blocking; the data directory is small)."""
    if not root.is_dir():
        return
    _tighten(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            _tighten(Path(dirpath) / name, DIR_MODE)
        for name in filenames:
            _tighten(Path(dirpath) / name, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            return  # never follow a link out of the data directory
        if current & 0o077:
            path.chmod(current & mode)
    except FileNotFoundError:
        pass
