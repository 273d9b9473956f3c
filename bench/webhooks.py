"""Figures 3 and 4 of issue 13 alone (verdict latency, webhook ingestion), side by side with a git revision.

    .venv/bin/python bench/webhooks.py [--before REV] [--calls 400] [--profile DIR]

The same stand-in and servers as bench/run.py (its functions), without the rest of the harness: for each tree (this
one, then REV's when given, then this one again, so a load change on a shared machine shows as a difference between
the two runs of this tree) a fresh `callcheck serve` on SQLite places `--calls` calls that ring, then measures
figure 3 (60 webhooks one at a time) and figure 4 (a signed webhook for each of the other calls, 20 at once, against
as many `GET /healthz`). With `--profile DIR`, py-spy records this tree's server during its first ingestion
(`DIR/webhooks-<tree>.txt`, raw collapsed stacks of the threads holding the GIL). No test asserts any of these times.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from run import (
    API_BODY,
    CLIENTS,
    VERDICT_SAMPLES,
    extract,
    ingestion,
    load,
    pct,
    serving,
    start_standin,
    upstream_env,
    verdict_latency,
)


def start_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording the server (collapsed stacks, 100 Hz, non-blocking) until sent SIGINT; None without py-spy."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "-p", str(pid), "-r", "100", "-f", "raw", "-o", str(out), "--nonblocking", "--gil"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def one_tree(
    label: str, source: Path | None, env: dict[str, str], standin: str, tmp: Path, calls: int, profile: Path | None
) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        await http.post(f"{standin}/_standin/reset")
    name = "".join(c for c in label if c.isalnum())[:12]  # an agent id (and folder) of its own per tree
    agent = {"ELEVENLABS_AGENT_ID": f"agent_hooks_{name}"}
    with serving({**env, **agent}, tmp / f"hooks-{name}", source=source) as server:
        placed = (await load(server.url, "/api/call", API_BODY, CLIENTS, max(1, calls // CLIENTS), keep=True)).results
        await asyncio.sleep(3)  # the workflows of the placed calls started
        load_avg = os.getloadavg()[0]
        verdicts = await verdict_latency(server, placed[:VERDICT_SAMPLES])
        spy = start_spy(server.process.pid, profile / f"webhooks-{name}.txt") if profile is not None else None
        if spy is not None:
            await asyncio.sleep(1)  # py-spy attached
        ingest = await ingestion(server, placed[VERDICT_SAMPLES:])
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
    figures = {"label": label, "load": load_avg, "verdicts": verdicts, "ingest": ingest}
    print(f"  {label}: {summary(figures)}", file=sys.stderr)
    return figures


def summary(f: dict[str, Any]) -> str:
    v, i = f["verdicts"], f["ingest"]
    return (
        f"| {f['label']} | {f['load']:.1f} | {pct(v['api'], 0.5) * 1000:.0f} / {pct(v['stream'], 0.5) * 1000:.0f} ms "
        f"| {pct(v['api'], 0.99) * 1000:.0f} / {pct(v['stream'], 0.99) * 1000:.0f} ms "
        f"| {pct(v['floor'], 0.99) * 1000:.0f} ms | **{i['per_s']:.0f}/s** | {i['healthz_per_s']:.0f}/s "
        f"| {i['per_s'] / i['healthz_per_s']:.2f} | {i['cpu_ms']:.1f} ms ({i['cpu_pct']:.0f}%) "
        f"| {i['accepted']:.0f} of {i['sent']:.0f} "
        f"| {i['completed']:.0f} |"
    )


async def main(before_rev: str | None, calls: int, profile: Path | None) -> None:
    started = time.monotonic()
    print(
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {os.cpu_count()} CPUs, "
        f"{platform.platform()}, Python {platform.python_version()}; load average at start {os.getloadavg()[0]:.1f}; "
        f"{calls} calls placed per server."
    )
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        trees: list[tuple[str, Path | None]] = [("after", None)]
        if before_rev:
            trees += [(f"before ({before_rev})", extract(before_rev, tmp / "before")), ("after, again", None)]
        standin_process, standin = await asyncio.to_thread(start_standin)
        try:
            env = upstream_env(standin)
            for label, source in trees:
                spy = profile if label != "after, again" else None
                figures = await one_tree(label, source, env, standin, tmp, calls, spy)
                rows.append(summary(figures))
        finally:
            standin_process.terminate()
            standin_process.wait()
    print()
    print(
        "| tree | load avg | verdict p50 API / stream | verdict p99 API / stream | `/healthz` p99 | webhooks/s "
        "| `/healthz`/s | ratio | server CPU per webhook (of a core) | accepted | completed after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="a git revision measured too, between two runs of this tree")
    parser.add_argument("--calls", type=int, default=400, help="calls placed per server (60 go to figure 3)")
    parser.add_argument("--profile", type=Path, help="py-spy this tree's server during ingestion into this folder")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.before, arguments.calls, arguments.profile))
