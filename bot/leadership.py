"""One long-polling process at a time, when several `run` processes share a PostgreSQL database.

Telegram lets one getUpdates consumer per bot poll; a second one ends the first with 409
Conflict, and the two keep knocking each other off. So the processes elect a poller: the one
holding a session-level `pg_try_advisory_lock` on a dedicated connection long-polls, and the
others serve the API, run the jobs and deliver the outbox, trying for the lock every second. The
lock lives as long as that connection: when the poller dies (even by `kill -9`) its server
process sees the socket close and drops the lock, and a standby takes over at its next try.
A poller whose connection breaks stops polling at its next check, so there are never two.

On SQLite there is one process, and in webhook mode Telegram posts each update once to any
process behind the load balancer: neither needs an election.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:  # aiogram takes seconds to import, and `bot.serve` (so the CLI) imports this
    from aiogram import Bot, Dispatcher

log = logging.getLogger(__name__)

POLLING_LOCK = 0x53544B42_504F4C4C  # any bigint the bot uses for nothing else ("STKBPOLL")


class Leadership:
    """A session-level advisory lock held on a connection of its own, outside the pool."""

    def __init__(self, database_url: str, key: int = POLLING_LOCK) -> None:
        self.key = key
        # Its own engine: the pool must never hand this connection (and the lock) to other work.
        self._engine = create_async_engine(database_url, poolclass=NullPool)
        self._connection: AsyncConnection | None = None
        self.held = False

    async def try_acquire(self) -> bool:
        try:
            if self._connection is None:
                connection = await self._engine.connect()
                # Autocommit: an idle leader must not sit "idle in transaction" for hours.
                self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            self.held = bool(await self._connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}))
        except Exception as exc:  # the database is away: stand by and try again
            log.warning("cannot reach the database for the polling lock: %s", type(exc).__name__)
            await self._drop()
        return self.held

    async def still_held(self) -> bool:
        """True while the lock's connection is alive (the lock cannot go while it is)."""
        try:
            assert self._connection is not None
            await asyncio.wait_for(self._connection.scalar(text("SELECT 1")), 10)
        except Exception:
            await self._drop()
        return self.held

    async def release(self) -> None:
        if self.held and self._connection is not None:
            with suppress(Exception):
                await self._connection.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        self.held = False

    async def close(self) -> None:
        await self.release()
        await self._drop()
        await self._engine.dispose()

    async def _drop(self) -> None:
        self.held = False
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):
                await connection.invalidate()
                await connection.close()


async def poll_updates(
    dispatcher: Dispatcher, bot: Bot, database_url: str, stop: asyncio.Event,
    *, retry: float = 1.0, check: float = 2.0,
) -> None:
    """Long-poll Telegram until `stop`; on PostgreSQL only while this process holds the lock."""
    if database_url.startswith("sqlite"):
        await dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
        return
    leadership = Leadership(database_url)
    try:
        while not stop.is_set():
            if not await leadership.try_acquire():
                await _wait(stop, retry)
                continue
            log.info("this process now long-polls Telegram; the others stand by for it")
            polling = asyncio.create_task(
                dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
            )
            while not stop.is_set() and not polling.done() and await leadership.still_held():
                await _wait(stop, check, polling)
            if not polling.done():
                with suppress(RuntimeError):
                    await dispatcher.stop_polling()
            try:
                await polling
            except Exception:
                log.exception("long polling stopped with an error")
            await leadership.release()
            if not stop.is_set():
                log.warning("no longer the long-polling process; standing by")
                await _wait(stop, retry)
    finally:
        await leadership.close()


async def _wait(stop: asyncio.Event, seconds: float, task: asyncio.Task[None] | None = None) -> None:
    waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
    if task is not None:
        waiters.append(task)  # type: ignore[arg-type]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiters[0].cancel()
