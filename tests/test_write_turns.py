"""On SQLite the bot's own writers get the write lock in the order they asked for it.

With SQLite's busy handler alone, a waiter polls every 100 ms once it has waited a while, the
lock lies unused between a commit and the next poll, and the newest waiter (still on the short
first sleeps) often goes before the oldest: under the soak's load, API writes waited seconds behind
transactions that held the lock for milliseconds (issue 26).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import bot.db
from bot.db import Database, create_database

TOUCH = text("UPDATE alembic_version SET version_num = version_num")  # a write that changes nothing


@pytest.fixture
async def short_wait_db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Database]:
    """A database whose writers give up after 2 s in the queue, not LOCK_WAIT_S: a turn that was
    never given back shows as "database is locked", not as a test that hangs."""
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL locks rows; there is no one write lock to queue for")
    monkeypatch.setattr(bot.db, "LOCK_WAIT_S", 2)
    database = create_database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


async def _hold_the_lock(db: Database, holding: asyncio.Event, release: asyncio.Event) -> None:
    async with db.transaction() as session:
        await session.execute(TOUCH)
        holding.set()
        await release.wait()


async def test_writers_take_the_database_in_the_order_they_asked(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("PostgreSQL locks rows; there is no one write lock to queue for")
    async with db.read_session() as s1, db.read_session() as s2, db.read_session() as s3:
        for session in (s1, s2, s3):  # connections open before the race: none waits on a connect
            await session.execute(text("SELECT 1"))
    holding, release, order = asyncio.Event(), asyncio.Event(), []

    async def writer(name: str) -> None:
        async with db.transaction() as session:
            await session.execute(TOUCH)  # BEGIN IMMEDIATE is done once this returns
            order.append(name)

    holder = asyncio.create_task(_hold_the_lock(db, holding, release))
    await holding.wait()
    waiters = []
    for name in ("first", "second", "third", "fourth"):
        waiters.append(asyncio.create_task(writer(name)))
        await asyncio.sleep(0.25)  # long enough for each to be waiting before the next asks
    release.set()
    await asyncio.gather(holder, *waiters)
    assert order == ["first", "second", "third", "fourth"]


async def test_a_cancelled_writer_gives_its_turn_back(short_wait_db: Database) -> None:
    holding, never = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_the_lock(short_wait_db, holding, never))
    await holding.wait()
    holder.cancel()  # a request whose client went away mid-transaction
    with pytest.raises(asyncio.CancelledError):
        await holder
    async with short_wait_db.transaction() as session:  # "database is locked" if the turn leaked
        await session.execute(TOUCH)


async def test_a_writer_that_waits_too_long_hears_the_database_is_locked(short_wait_db: Database) -> None:
    holding, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_the_lock(short_wait_db, holding, release))
    await holding.wait()
    try:
        with pytest.raises(DBAPIError, match="database is locked"):  # what the API answers 503 to
            async with short_wait_db.transaction() as session:
                await session.execute(TOUCH)
    finally:
        release.set()
        await holder
    async with short_wait_db.transaction() as session:  # and the queue still works
        await session.execute(TOUCH)
