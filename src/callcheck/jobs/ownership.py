"""Which process a suite run belongs to, and whether that process is gone.

A server (`callcheck serve`) is DBOS executor "local": after a crash it resumes its own calls and runs. A
`callcheck run` process owns only the run it started, under an executor id of its own (`cli-<host>-<pid>`), so
DBOS never resumes its work in another process by itself: when it is killed, the run is not silently continued by
the next, unrelated `callcheck run` (which would dial another suite's numbers). Instead the next process on the same
host that finds the owner gone adopts the run *cancelled*: no new call is placed, the calls already dialed are
followed to their end and reported, and the run says why it stopped.

Liveness is known only on the same host (a pid); a run owned on another host is left alone.
"""

from __future__ import annotations

import os
import socket

CLI_PREFIX = "cli-"


def cli_executor_id() -> str:
    """The executor id of this `callcheck run` process."""
    return f"{CLI_PREFIX}{socket.gethostname()}-{os.getpid()}"


def owner_pid(owner: str) -> int | None:
    """The pid of a `callcheck run` executor id of this host; None for another host's or a malformed id."""
    host_pid = owner.removeprefix(CLI_PREFIX)
    host, _, pid = host_pid.rpartition("-")
    if not owner.startswith(CLI_PREFIX) or host != socket.gethostname() or not pid.isdigit():
        return None
    return int(pid)


def is_gone(owner: str) -> bool:
    """True when `owner` is a `callcheck run` process of this host that no longer exists."""
    pid = owner_pid(owner)
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def stopped_note(owner: str) -> str:
    """Why an adopted run placed no more calls."""
    pid = owner_pid(owner)
    which = f"pid {pid}" if pid is not None else f"executor {owner}"
    return (
        f"The `callcheck run` process that ran this suite ({which}) stopped before the run ended: no further "
        "calls were placed; the calls already dialed were followed to their end."
    )
