"""Faults of the world around the bot, for tests and benchmarks: a database connection that is cut
(a PostgreSQL restart, a network failure) and a database disk that fills up."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class CuttableLink:
    """A TCP relay to `host:port` on a local port of its own: `cut()` drops every connection and
    refuses new ones, as a database server that went away; `mend()` lets them through again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a polite close: as when the server dies
        self._writers.clear()

    async def mend(self) -> None:
        await self.start()  # on the same port: the database URL stays as it was

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer),
                             return_exceptions=True)
        for end in (writer, upstream_writer):
            self._writers.discard(end)
            end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


_READS = ("SELECT", "PRAGMA", "BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def sqlite_disk_full(engine: AsyncEngine) -> Iterator[None]:
    """Every statement that would write to the SQLite database fails as on a full disk (SQLite's
    own error, raised where the driver raises it); reads work. The real thing (a full file system)
    needs a mount a test cannot make; PRAGMA max_page_count comes close but lets rewrites of
    existing pages through."""

    def refuse(conn, cursor, statement: str, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(_READS):
            raise sqlite3.OperationalError("database or disk is full")

    event.listen(engine.sync_engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", refuse)
