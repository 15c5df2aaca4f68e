"""Write turns on SQLite: the process's own writers take the database's write lock in order.

SQLite has one write lock. A writer that finds it taken sleeps in SQLite's busy handler and tries
again, after 1, 2, 5, ... ms and then every 100 ms, and nobody is told when the lock comes free: after
each commit the lock may lie unused for up to 100 ms while every waiter sleeps, and the newest
waiters (still on the short sleeps) take it before the oldest. In the 30-minute soak (50 API
requests a second beside the jobs, the event worker and the sender) transactions held the lock for
a few ms each while `BEGIN IMMEDIATE` waited 0.2-2.5 s in steps of 100 ms, and the API's p99 climbed
to seconds as the load on the lock grew (issue 26).

The writers of one process are tasks of one event loop, so they queue on an `asyncio.Lock`
instead: first come, first served, and the next writer begins as soon as the last one is done.
SQLite's busy handler still settles it between processes (a CLI import beside `stockbot run`).

The turn is taken in SQLAlchemy's `begin` event, from inside the greenlet that runs the session's
synchronous code, and given back at commit or rollback, or whenever the pool takes the connection
back: a transaction that never ended (a cancelled task) cannot keep the turn.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.util.concurrency import await_only, in_greenlet


async def _acquire(lock: asyncio.Lock, wait_s: float) -> None:
    async with asyncio.timeout(wait_s):
        await lock.acquire()


class WriteTurns:
    """One queue of write transactions per event loop, over one SQLite database's engine."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._holding: dict[int, asyncio.Lock] = {}  # id of a DBAPI connection: the turn it holds

    def take(self, dbapi_connection: Any) -> None:
        """Wait for this transaction's turn. Without a running loop's greenlet (synchronous use of
        the engine) there is no queue to join, and SQLite's busy handler decides as before."""
        if not in_greenlet() or id(dbapi_connection) in self._holding:
            return
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = asyncio.Lock()
        try:
            await_only(_acquire(queue, self.wait_s))
        except TimeoutError:
            # What SQLite itself says when its busy timeout runs out, so callers treat both alike
            # (the API answers 503 with Retry-After).
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")) from None
        self._holding[id(dbapi_connection)] = queue

    def give_back(self, dbapi_connection: Any) -> None:
        queue = self._holding.pop(id(dbapi_connection), None)
        if queue is not None:
            queue.release()

    def hold_on(self, engine: Engine) -> None:
        """Give the turn back wherever a transaction or its connection ends."""

        def after_transaction(connection: Connection) -> None:
            # An invalidated connection (a statement cancelled mid-way, a lost connection) cannot
            # be asked for its DBAPI connection; the pool's "invalidate" event gave the turn back.
            if not connection.invalidated:
                self.give_back(connection.connection.dbapi_connection)

        def pool_took_it_back(dbapi_connection: Any, *_: Any) -> None:
            self.give_back(dbapi_connection)

        event.listen(engine, "commit", after_transaction)
        event.listen(engine, "rollback", after_transaction)
        for name in ("reset", "checkin", "invalidate", "close"):
            event.listen(engine.pool, name, pool_took_it_back)
