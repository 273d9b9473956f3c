"""callcheck's files are its owner's only: the data directory 0700; the databases, their WAL and shared-memory
files, the cookie key and the recordings 0600. Created that way, and tightened at start when found looser (a data
directory from an older callcheck, a file copied in with the default umask)."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
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


# What callcheck keeps in its data directory: only these are tightened, whatever else shares the directory (it may
# be set to a directory holding other things).
KEPT_FILES = ("callcheck.db*", "callcheck-dbos.sqlite*", "secret_key", ".secret_key.*")
RECORDINGS = "recordings"
RECORDING_FILES = ("*.mp3", "*.part")


def tighten_data_dir(root: Path) -> None:
    """The data directory 0700, and callcheck's own files in it 0600, where looser (blocking)."""
    if not root.is_dir():
        return
    _tighten(root, DIR_MODE)
    for pattern in KEPT_FILES:
        for path in root.glob(pattern):
            _tighten(path, FILE_MODE)
    recordings = root / RECORDINGS
    if recordings.is_dir() and not recordings.is_symlink():
        _tighten(recordings, DIR_MODE)
        for pattern in RECORDING_FILES:
            for path in recordings.glob(pattern):
                _tighten(path, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            return  # never follow a link out of the data directory
        if current & 0o077:
            path.chmod(current & mode)
    except FileNotFoundError:
        pass


SECRET_KEY_FILE = "secret_key"


def kept_secret_key(data_dir: Path) -> tuple[Path, str]:
    """The cookie-signing key kept in the data directory, generated there first when absent; (its path, the key).

    Blocking file I/O; OSError when it cannot be kept. The file appears whole or not at all (written aside, then
    linked into place), so a process starting alongside never reads it half-written.
    """
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        private_dir(data_dir)
        fd, aside = tempfile.mkstemp(dir=data_dir, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
                fh.flush()
                os.fsync(fh.fileno())
            # link, not rename: when two processes race, the first key stays and both read it.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        finally:
            os.unlink(aside)
    if path.stat().st_mode & 0o077:
        path.chmod(FILE_MODE)  # readable only by its owner, whoever loosened it
    return path, path.read_text().strip()
