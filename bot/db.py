"""Engine and session factories.

SQLite is the embedded default: WAL so readers never wait for the writer, foreign keys on, a busy
timeout, and write transactions that start with `BEGIN IMMEDIATE` so that two writers queue for
the lock up front instead of one failing with "database is locked" halfway through its work; a
process's own writers queue in order (bot/write_turns.py).
PostgreSQL needs none of this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

from sqlalchemy import ColumnElement, event, select, text, true
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session

from bot.settings import Settings
from bot.sqlite_driver import one_trip_dbapi
from bot.write_turns import WriteTurns

log = logging.getLogger("bot.db")

# How long work waits, in order: a statement waits up to LOCK_WAIT_S for a lock (SQLite's write
# lock, a PostgreSQL row lock) and then fails, which frees its connection; only after that does a
# caller waiting for a pooled connection give up (POOL_TIMEOUT_S). The other way round, the
# holders of every connection sit waiting on a lock while everyone else times out on the pool,
# and the error people see is "QueuePool limit reached" instead of the lock that caused it. The
# lock wait stays long: the bot's own work (stock events, jobs, the sender) should wait out a big
# import rather than fail; the API sheds load earlier, at its own queue (bot/api/integration.py).
LOCK_WAIT_S = 30
SQLITE_BUSY_TIMEOUT_MS = LOCK_WAIT_S * 1000
POOL_TIMEOUT_S = 40
# Connections kept open, and extra ones opened under load. The integration API uses at most half
# of POOL_SIZE at once (bot/api/integration.py), so a burst of API requests never takes the connections
# the bot's own work (stock events, the sender, chat updates, jobs) needs to finish what it holds.
POOL_SIZE = 10
POOL_OVERFLOW = 10
# Keys per IN list. An IN list of n keys is its own prepared statement for every n, and SQLite's
# compiled form of one takes ~170 bytes a key: at 5,000 keys ~0.85 MB, and a connection's cache
# of 16 held up to 13 MB of them. The cover job's runs after the 100k shop's imports each
# left a few such statements behind (the last chunk's n differs every time), so the idle bot
# grew ~25 MiB in the minutes after its imports (issue 20). At 500 keys a cached statement is
# ~85 KB, and 100,000 keys are looked up as fast (141 ms against 171 ms in chunks of 5,000).
IN_CHUNK = 500
# Prepared statements each SQLite connection keeps (Python's default is 128). After a big
# import the caches of a full pool held tens of MB (issue 9: 13 cover runs over the 100k
# shop's stock import grew RSS by 33 MB with 128, 10 MB with 16). The statements the bot
# repeats are few, and re-preparing one costs microseconds. asyncpg skips large statements.
SQLITE_CACHED_STATEMENTS = 16
# Pages each SQLite connection keeps in its own cache (SQLite's default is 2,000 KiB). A pool's
# worth of connections each filled theirs after a big import; pages evicted from here are still
# in the operating system's cache, a read call away.
SQLITE_PAGE_CACHE_KIB = 512
_BEGIN_OPTION = "stockbot_sqlite_begin"


def create_engine(database_url: str, *, echo: bool = False) -> AsyncEngine:
    url = make_url(database_url)
    # LIFO: the connection returned last is handed out next, so light work (the jobs every few
    # seconds, a chat command) keeps reusing one or two and the others stay cold. FIFO rotated
    # every job run through all ten, and each filled its own SQLite page and statement caches.
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_timeout": POOL_TIMEOUT_S,
            "pool_use_lifo": True}
    if url.get_backend_name() != "sqlite":
        # lock_timeout: a row lock held too long fails the waiter (SQLSTATE 55P03) instead of
        # holding its connection indefinitely; the API answers that with 503 and Retry-After.
        server_settings = {"lock_timeout": f"{LOCK_WAIT_S * 1000}"}
        return create_async_engine(
            url, echo=echo, pool_pre_ping=True, connect_args={"server_settings": server_settings}, **pool
        )
    if url.database in (None, "", ":memory:"):
        pool = {}  # an in-memory database lives in one connection; the pool options do not apply
    engine = create_async_engine(
        url, echo=echo, **pool, module=one_trip_dbapi(),  # a statement is one trip to its thread, not four
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "cached_statements": SQLITE_CACHED_STATEMENTS},
    )
    _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control away from the driver so the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode across process crashes
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_PAGE_CACHE_KIB}")
        cursor.close()

    turns = WriteTurns(LOCK_WAIT_S)  # this process's writers queue in order (bot/write_turns.py)
    turns.hold_on(engine.sync_engine)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        dbapi_connection = connection.connection.dbapi_connection
        if mode == "IMMEDIATE":
            turns.take(dbapi_connection)
        try:
            connection.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            turns.give_back(dbapi_connection)
            raise


# --- after-commit signals ------------------------------------------------------------------------
# A worker in this process (the sender, the event consumer) is told that a transaction wrote work
# for it only once that transaction has committed: told earlier, it could look before the rows
# are visible and go back to sleep. Code that writes such rows marks its session; the listeners
# run where every transaction ends, here.

OUTBOX = "outbox"  # notifications were queued
STOCK_EVENTS = "stock_events"  # threshold crossings were written
FIRST_LOW = "first_low"  # a first stock level at or below its reorder point was written
_TOPICS = "stockbot_after_commit"
_LISTENERS = "stockbot_listeners"


def signal_after_commit(session: AsyncSession | Session, topic: str) -> None:
    """Have `topic`'s listeners run once the session's current transaction commits."""
    session.info.setdefault(_TOPICS, set()).add(topic)


@event.listens_for(Session, "after_commit")
def _run_listeners(session: Session) -> None:
    topics = session.info.pop(_TOPICS, None)
    listeners: dict[str, list[Callable[[], None]]] = session.info.get(_LISTENERS) or {}
    for topic in topics or ():
        for listener in listeners.get(topic, ()):
            listener()


@event.listens_for(Session, "after_rollback")
def _forget_topics(session: Session) -> None:
    session.info.pop(_TOPICS, None)


# --- database trouble ------------------------------------------------------------------------------
# A database that cannot be reached (PostgreSQL restarting, the network) or written (a full disk)
# is a spell, not an error per request: the API answers 503 with Retry-After, health says
# unavailable, the workers wait and try again, and the log gets one line when it starts and one
# when it ends. What counts is told apart from a bad request or a bug by the error itself.

_FULL = ("database or disk is full", "disk i/o error", "unable to open database file",
         "attempt to write a readonly database")
# SQLSTATE classes and codes: 08 connection exception, 53 insufficient resources (53100 disk
# full), 57P01-57P03 the server shutting down or starting, 58 system error.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "58")
_WROTE = "stockbot_wrote"


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database cannot take work now, or None when `exc` is anything else."""
    if isinstance(exc, DBAPIError):
        message = str(exc.orig).lower()
        if exc.connection_invalidated or ("connection" in message and "closed" in message):
            return "the connection to the database was lost"
        if any(reason in message for reason in _FULL):
            return f"the database cannot be written: {str(exc.orig)[:120]}"
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return f"the database is unavailable (SQLSTATE {sqlstate})"
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return unavailable_reason(cause) if isinstance(cause, OSError) else None
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):  # refused, reset, no route
        return f"the database cannot be reached: {exc.strerror or type(exc).__name__}"
    return None


class DatabaseTrouble:
    """The current spell of database trouble, shared by everything that uses one `Database`."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.since = 0.0
        self.failures = 0

    @property
    def unavailable(self) -> bool:
        return self.reason is not None

    def note(self, exc: BaseException) -> bool:
        """Record `exc` if it means the database is unavailable (logged once per spell); True
        then, so the caller answers 503 or waits, and logs nothing of its own."""
        reason = unavailable_reason(exc)
        if reason is None:
            return False
        if self.reason is None:
            self.since = time.monotonic()
            self.failures = 0
            log.error("%s; logged once until it is back (the API answers 503 meanwhile)", reason)
        self.reason = reason
        self.failures += 1
        return True

    def recovered(self) -> None:
        if self.reason is not None:
            log.warning("the database is available again after %.1f s (%d failed attempts)",
                        time.monotonic() - self.since, self.failures)
            self.reason = None


@event.listens_for(Session, "do_orm_execute")
def _note_writes(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context) -> None:  # type: ignore[no-untyped-def]
    session.info[_WROTE] = True


@dataclass(frozen=True, slots=True)
class Database:
    """The engine with its two session factories: one for writes, one for read-only work."""

    engine: AsyncEngine
    session: async_sessionmaker[AsyncSession]
    read_session: async_sessionmaker[AsyncSession]
    listeners: dict[str, list[Callable[[], None]]] = field(default_factory=dict)
    trouble: DatabaseTrouble = field(default_factory=DatabaseTrouble)

    def on_commit(self, topic: str, listener: Callable[[], None]) -> None:
        """Call `listener` (on the event loop, without blocking) after each commit that signalled
        `topic` through this database's sessions."""
        self.listeners.setdefault(topic, []).append(listener)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any exception. A write that
        commits ends a spell of database trouble; a failure that means one starts it."""
        try:
            async with self.session() as session, session.begin():
                session.info.pop(_WROTE, None)
                yield session
        except Exception as exc:
            self.trouble.note(exc)
            raise
        if session.info.pop(_WROTE, False):
            self.trouble.recovered()

    async def probe(self, *, write: bool) -> None:
        """Raise unless the database answers (and, with `write`, takes a write): for health."""
        if write:
            async with self.transaction() as session:
                # Rewrites one row in place: a database that cannot be written refuses it.
                await session.execute(text("UPDATE alembic_version SET version_num = version_num"))
                session.info[_WROTE] = True
            return
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_database(settings: Settings | str) -> Database:
    url = settings if isinstance(settings, str) else settings.DATABASE_URL
    engine = create_engine(url)
    # Reads take no write lock on SQLite, so lookups never queue behind a long import.
    reader = engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
    listeners: dict[str, list[Callable[[], None]]] = {}
    info = {_LISTENERS: listeners}
    return Database(
        engine=engine,
        session=async_sessionmaker(engine, expire_on_commit=False, info=info),
        read_session=async_sessionmaker(reader, expire_on_commit=False, info=info),
        listeners=listeners,
    )


def dialect_insert(session: AsyncSession, table):  # type: ignore[no-untyped-def]
    """`INSERT` with `ON CONFLICT` support for the session's dialect (SQLite or PostgreSQL)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(table)


T = TypeVar("T")


def chunked(items: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items: the one place key lists are cut for IN."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def id_chunks(ids: Iterable[int] | None) -> Iterator[list[int] | None]:
    """`ids` in driver-sized chunks; None (everything) once when `ids` is None."""
    if ids is None:
        yield None
        return
    yield from chunked(sorted(set(ids)))


def within(column: ColumnElement[int], chunk: list[int] | None) -> ColumnElement[bool]:
    return true() if chunk is None else column.in_(chunk)


def id_filters(column: ColumnElement[int], ids: Iterable[int] | None) -> Iterator[ColumnElement[bool]]:
    """`column IN (...)` conditions over `ids` in driver-sized chunks; everything when None."""
    for chunk in id_chunks(ids):
        yield within(column, chunk)


async def ids_by_key(session: AsyncSession, key_column, id_column, keys: Iterable[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Map unique keys (SKUs, external ids) to row ids, in chunks that fit any driver's limits."""
    found: dict[str, int] = {}
    for batch in chunked(sorted(set(keys))):
        rows = await session.execute(select(key_column, id_column).where(key_column.in_(batch)))
        found.update({key: row_id for key, row_id in rows})
    return found
