"""SQLAlchemy's aiosqlite driver with one trip to the database thread per statement, not four.

aiosqlite runs each SQLite connection in a thread of its own, and every call is a trip there and
back: a queue put, the thread's wake-up, a future resolved through the event loop's self-pipe,
a greenlet switch. SQLAlchemy's adapter makes four such trips per statement (open a cursor,
execute, fetch all, close), so an API request of eleven statements made ~44, and at 50 requests a
second the trips, not SQLite, were most of the event loop's work (issue 26: p99 over 500 ms). Here
a statement's cursor is opened, executed, read to the end and closed in one function run on the
connection's thread; commits, rollbacks and everything else stay aiosqlite's.

Installed through `create_async_engine(module=...)`, so the URL stays `sqlite+aiosqlite://` and the
dialect, its type handling and its error translation are SQLAlchemy's own.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_


class _Done:
    """What a finished statement leaves for SQLAlchemy to read, as a sqlite3 cursor would."""

    __slots__ = ("description", "rowcount", "lastrowid", "arraysize")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self.arraysize = cursor.arraysize


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple[_Done, list[Any]]:
    """On the connection's thread: the whole statement, its rows included."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return _Done(cursor), rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def _aenter_cursor(self, cursor: Any) -> Any:
        return None  # nothing opened yet: each statement opens and closes its own

    def _make_new_cursor(self, connection: Any) -> Any:
        return None

    async def _async_soft_close(self) -> None:
        return None  # already closed on the database thread

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._one_trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._one_trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            done, rows = await connection._execute(_run, connection._conn, operation, parameters, many)
        self._cursor = done  # type: ignore[assignment]  # description, rowcount, lastrowid
        self._rows = deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def one_trip_dbapi() -> OneTripDBAPI:
    """The `module` for `create_async_engine` on a `sqlite+aiosqlite` URL."""
    return OneTripDBAPI(aiosqlite, sqlite3)
