"""The executors table does not grow for ever: rows of processes taken over long ago are pruned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from callcheck.providers.elevenlabs.sandbox import SandboxServer
from callcheck.store.executors import ADOPTED, ALIVE, ExecutorStore
from callcheck.store.tables import executors
from tests.conftest import settings_for

DAY = 24 * 3600.0


async def test_only_rows_taken_over_longer_ago_than_the_bound_are_pruned(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    engine = api.callcheck_app.state.services.store.engine  # type: ignore[attr-defined]
    store = ExecutorStore(engine)
    for name in ("old-adopted", "new-adopted", "old-alive"):
        await store.register(name, "server", "host", 1, 10.0)
    async with engine.begin() as conn:
        now = float((await conn.execute(sa.select(store._now()))).scalar_one())
        for name, state, age in (
            ("old-adopted", ADOPTED, 2 * DAY),
            ("new-adopted", ADOPTED, 60),
            ("old-alive", ALIVE, 2 * DAY),
        ):
            await conn.execute(
                sa.update(executors).where(executors.c.id == name).values(state=state, heartbeat_at=now - age)
            )
    assert await store.prune(DAY) == 1
    async with engine.connect() as conn:
        kept = set((await conn.execute(sa.select(executors.c.id))).scalars())
    assert {"new-adopted", "old-alive"} <= kept and "old-adopted" not in kept
    assert await store.prune(DAY) == 0
