"""After a burst, light work keeps to one pooled connection: each connection warms caches of its own
(SQLite's pages and prepared statements), so rotating through all of them grows an idle bot."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from bot.db import Database


async def _connection_of(db: Database, holding: list[int] | None = None, hold: asyncio.Event | None = None) -> int:
    async with db.read_session() as session:
        await session.execute(text("SELECT 1"))
        raw = await (await session.connection()).get_raw_connection()
        if holding is not None and hold is not None:
            holding.append(id(raw.driver_connection))
            await hold.wait()
        return id(raw.driver_connection)


async def test_light_work_after_a_burst_reuses_one_connection(db: Database) -> None:
    hold, holding = asyncio.Event(), []
    burst = [asyncio.create_task(_connection_of(db, holding, hold)) for _ in range(4)]
    async with asyncio.timeout(30):
        while len(holding) < 4:  # all four checked out at once
            await asyncio.sleep(0.01)
    hold.set()
    assert len(set(await asyncio.gather(*burst))) == 4  # the burst opened four at once

    one_job_after_another = {await _connection_of(db) for _ in range(8)}
    assert len(one_job_after_another) == 1
