"""Engine and session factories.

SQLite is the embedded default: WAL so readers never wait for the writer, foreign keys on, a busy
timeout, and write transactions that start with `BEGIN IMMEDIATE` so that two writers queue for
the lock up front instead of one failing with "database is locked" halfway through its work.
PostgreSQL needs none of this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

from sqlalchemy import event, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from bot.settings import Settings

# How long work waits, in order: a statement waits up to LOCK_WAIT_S for a lock (SQLite's write
# lock, a PostgreSQL row lock) and then fails, which frees its connection; only after that does a
# caller waiting for a pooled connection give up (POOL_TIMEOUT_S). The other way round, the
# holders of every connection sit waiting on a lock while everyone else times out on the pool,
# and the error people see is "QueuePool limit reached" instead of the lock that caused it. The
# lock wait stays long: the bot's own work (stock events, jobs, the sender) should wait out a big
# import rather than fail; the API sheds load earlier, at its own queue (bot/api/app.py).
LOCK_WAIT_S = 30
SQLITE_BUSY_TIMEOUT_MS = LOCK_WAIT_S * 1000
POOL_TIMEOUT_S = 40
# Connections kept open, and extra ones opened under load. The integration API uses at most half
# of POOL_SIZE at once (bot/api/app.py), so a burst of API requests never takes the connections
# the bot's own work (stock events, the sender, chat updates, jobs) needs to finish what it holds.
POOL_SIZE = 10
POOL_OVERFLOW = 10
IN_CHUNK = 5_000  # keys per IN list: well under SQLite's 32,766 and asyncpg's 32,767 parameters
# Prepared statements each SQLite connection keeps (Python's default is 128). An IN list of
# n keys is its own statement for every n, ~0.8 MB compiled at IN_CHUNK keys, so after a
# big import the caches of a full pool held tens of MB (issue 9: 13 cover runs over the 100k
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
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_timeout": POOL_TIMEOUT_S}
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
        url, echo=echo, **pool,
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

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


# --- after-commit signals ------------------------------------------------------------------------
# A worker in this process (the sender, the event consumer) is told that a transaction wrote work
# for it only once that transaction has committed: told earlier, it could look before the rows
# are visible and go back to sleep. Code that writes such rows marks its session; the listeners
# run where every transaction ends, here.

OUTBOX = "outbox"  # notifications were queued
STOCK_EVENTS = "stock_events"  # threshold crossings were written
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


@dataclass(frozen=True, slots=True)
class Database:
    """The engine with its two session factories: one for writes, one for read-only work."""

    engine: AsyncEngine
    session: async_sessionmaker[AsyncSession]
    read_session: async_sessionmaker[AsyncSession]
    listeners: dict[str, list[Callable[[], None]]] = field(default_factory=dict)

    def on_commit(self, topic: str, listener: Callable[[], None]) -> None:
        """Call `listener` (on the event loop, without blocking) after each commit that signalled
        `topic` through this database's sessions."""
        self.listeners.setdefault(topic, []).append(listener)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any exception."""
        async with self.session() as session, session.begin():
            yield session

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


async def ids_by_key(session: AsyncSession, key_column, id_column, keys: Iterable[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Map unique keys (SKUs, external ids) to row ids, in chunks that fit any driver's limits."""
    found: dict[str, int] = {}
    for batch in chunked(sorted(set(keys))):
        rows = await session.execute(select(key_column, id_column).where(key_column.in_(batch)))
        found.update({key: row_id for key, row_id in rows})
    return found
