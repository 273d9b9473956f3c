"""Where `callcheck serve`'s start-up goes (issue 13, figure 6: ready, GET /healthz 200, in ≤ 2 s).

    .venv/bin/python bench/startup.py [--runs 3] [--tree DIR ...] [--case sqlite-fresh ...] [--old-poller]

Each case is started `--runs` times, each on fresh state: a new data directory (SQLite), a new database (PostgreSQL,
127.0.0.1:5432, user postgres); "migrated" cases are migrated by a first start that is stopped and not counted. With
several `--tree`s (a git worktree or an extracted revision: its `src/` is put first on PYTHONPATH), the trees take
turns within each round, so they see the same load.

The server runs under a small bootstrap (BOOT below) that writes wall-clock timestamps of its phases to a file:
the interpreter up, the CLI imported, the app's modules imported, the app built (its routers), each migration check,
uvicorn started, the lifespan (DBOS launch within it), the socket bound; the client polls /healthz as bench/run.py
does (`wait_healthy`: one client, every 20 ms). `--old-poller` also starts each tree polled as bench/run.py did until
session 12 (a new httpx client per poll): the same start, and the CPU that poller took beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import NO_LIMITS, PYTHON, cpu_seconds, free_port, fresh_postgres, wait_healthy

ROOT = Path(__file__).resolve().parent.parent

# Runs as `python -c BOOT serve ...`: records its phases, then is `callcheck serve`. Patches are applied right after
# the module that holds them is imported (a finder wraps the loader), so the import order is the server's own.
BOOT = r"""
import json, os, sys, time
_out = open(os.environ["STARTUP_PHASES"], "a")
def mark(name):
    _out.write(json.dumps([name, time.time()]) + "\n"); _out.flush()
mark("python up")
import functools, importlib.abc, importlib.util

def timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        mark(name + " start")
        try:
            return fn(*a, **k)
        finally:
            mark(name + " end")
    return wrapper

def atimed(name, fn):
    @functools.wraps(fn)
    async def wrapper(*a, **k):
        mark(name + " start")
        try:
            return await fn(*a, **k)
        finally:
            mark(name + " end")
    return wrapper

def patch_app(m):
    m.create_app = timed("create_app", m.create_app)
def patch_db(m):
    m.upgrade = timed("upgrade", m.upgrade)
def patch_uvicorn(m):
    m.run = timed("uvicorn.run", m.run)
def patch_lifespan(m):
    m.LifespanOn.startup = atimed("lifespan", m.LifespanOn.startup)
def patch_server(m):
    startup = atimed("uvicorn startup", m.Server.startup)
    async def profiled(*a, **k):
        try:
            return await startup(*a, **k)
        finally:
            if PROFILER is not None:
                PROFILER.stop()
                with open(os.environ["STARTUP_PROFILE"], "w") as out:
                    out.write(PROFILER.output_text(unicode=True, show_all=False))
    m.Server.startup = profiled
def patch_dbos(m):
    launch = m.DBOS.launch.__func__
    m.DBOS.launch = classmethod(timed("DBOS.launch", launch))
HOOKS = {"callcheck.app": patch_app, "callcheck.store.db": patch_db, "uvicorn": patch_uvicorn,
         "uvicorn.lifespan.on": patch_lifespan, "uvicorn.server": patch_server, "dbos._dbos": patch_dbos}

class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        original = loader.exec_module
        def exec_module(module):
            original(module)
            HOOKS[name](module)
            mark("imported " + name)
        loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Finder())
PROFILER = None
if os.environ.get("STARTUP_PROFILE"):
    from pyinstrument import Profiler
    PROFILER = Profiler(interval=0.001, async_mode="disabled")
    PROFILER.start()
from callcheck.cli import main
mark("cli imported")
sys.argv[0] = "callcheck"
main()
"""

PROFILES: list[Path] = []  # --profile's directory
CASES = ("sqlite-fresh", "sqlite-migrated", "postgres-fresh", "postgres-migrated")


Poller = Callable[[str, "subprocess.Popen[bytes]"], float]


def polled_the_old_way(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> float:
    """bench/run.py's wait_healthy until session 12: `httpx.get`, a new client (and SSL context) for every poll."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.02)
    raise RuntimeError(f"{url} never became healthy")


def start(tree: Path, data: Path, database: str | None, poll: Poller = wait_healthy) -> dict[str, float]:
    """One `serve` start until /healthz answers; its phases (seconds since the process was started), its CPU and the
    poller's."""
    data.mkdir(parents=True, exist_ok=True)
    phases_file = data / "phases.jsonl"
    phases_file.unlink(missing_ok=True)
    env = {**os.environ, **NO_LIMITS, "CALLCHECK_DATA_DIR": str(data), "STARTUP_PHASES": str(phases_file)}
    env["CALLCHECK_SECRET_KEY"] = "bench-secret-key-0123456789-abcdefghij"
    env["PYTHONPATH"] = str(tree / "src")
    if database:
        env["CALLCHECK_DATABASE_URL"] = database
    if PROFILES:
        env["STARTUP_PROFILE"] = str(PROFILES[0] / f"{data.name}.txt")  # the counted start, which comes last
    port = free_port()
    command = [PYTHON, "-c", BOOT, "serve", "--port", str(port), "--log-level", "warning"]
    with (data / "serve.log").open("ab") as log:
        t0 = time.time()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data)
    try:
        polling = time.process_time()
        poll(f"http://127.0.0.1:{port}", process)
        ready = time.time()
        cpu = cpu_seconds(process.pid)
        poller_cpu = time.process_time() - polling
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    marks: dict[str, float] = {}
    for line in phases_file.read_text().splitlines():
        name, at = json.loads(line)
        if name in marks:  # the second migration check (the lifespan's): "upgrade 2 start", "upgrade 2 end"
            name = name.replace("upgrade", "upgrade 2")
        marks.setdefault(name, at - t0)
    marks["ready"] = ready - t0
    marks["cpu"] = cpu
    marks["poller cpu"] = poller_cpu
    return marks


def phases(m: dict[str, float]) -> dict[str, float]:
    """The marks as durations, in the order a start goes through them."""
    u1, u1e = m.get("upgrade start", 0.0), m.get("upgrade end", 0.0)
    return {
        "interpreter": m["python up"],
        "import CLI": m["cli imported"] - m["python up"],
        "import app, settings": m["create_app start"] - m["cli imported"],
        "create_app (routers)": m["create_app end"] - m["create_app start"],
        "migrate (serve's check)": u1e - u1,
        "to uvicorn.run": m["uvicorn.run start"] - u1e,
        "uvicorn to lifespan": m["lifespan start"] - m["uvicorn.run start"],
        "lifespan: re-check": m.get("upgrade 2 end", 0.0) - m.get("upgrade 2 start", 0.0),
        "lifespan: DBOS.launch": m.get("DBOS.launch end", 0.0) - m.get("DBOS.launch start", 0.0),
        "lifespan: the rest": (m["lifespan end"] - m["lifespan start"])
        - (m.get("upgrade 2 end", 0.0) - m.get("upgrade 2 start", 0.0))
        - (m.get("DBOS.launch end", 0.0) - m.get("DBOS.launch start", 0.0)),
        "bind, first 200": m["ready"] - m["lifespan end"],
        "ready (wall)": m["ready"],
        "CPU at ready": m["cpu"],
        "the poller's CPU": m["poller cpu"],
    }


def one(case: str, tree: Path, poll: Poller, data: Path) -> dict[str, float]:
    database = fresh_postgres() if case.startswith("postgres") else None
    if case.endswith("migrated"):
        start(tree, data, database)  # migrates (and launches DBOS once); not counted
    return phases(start(tree, data, database, poll))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", help="a source tree (default: this one)")
    parser.add_argument("--case", action="append", choices=CASES)
    parser.add_argument("--profile", type=Path, help="write pyinstrument's profile of each start (to its ready) here")
    parser.add_argument("--old-poller", action="store_true", help="each tree polled the old way too (run.py until 12)")
    arguments = parser.parse_args()
    trees: list[Path] = arguments.tree or [ROOT]
    cases: list[str] = arguments.case or list(CASES)
    if arguments.profile:
        arguments.profile.mkdir(parents=True, exist_ok=True)
        PROFILES.append(arguments.profile)
    variants: list[tuple[str, Path, Poller]] = [(tree.name, tree, wait_healthy) for tree in trees]
    if arguments.old_poller:
        variants += [(f"{tree.name}, old poller", tree, polled_the_old_way) for tree in trees]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as name:
        for n in range(arguments.runs):
            for case in cases:
                for label, tree, poll in variants if n % 2 == 0 else list(reversed(variants)):
                    loads.append(os.getloadavg()[0])
                    got = one(case, tree, poll, Path(name) / f"{case}-{len(loads)}")
                    results.setdefault((case, label), []).append(got)
                    print(
                        f"  {case} {label}: {got['ready (wall)']:.2f} s, CPU {got['CPU at ready']:.2f} s "
                        f"(load {loads[-1]:.1f})",
                        file=sys.stderr,
                    )
    print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}; median of {arguments.runs}")
    labels = [label for label, _, _ in variants]
    for case in cases:
        print(f"\n{case}")
        print("| phase | " + " | ".join(labels) + " |")
        print("|---|" + "---|" * len(labels))
        for phase in results[(case, labels[0])][0]:
            cells = [statistics.median(r[phase] for r in results[(case, label)]) for label in labels]
            print(f"| {phase} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
