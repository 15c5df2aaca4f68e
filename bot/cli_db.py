"""The database for one CLI command: opened (and migrated), then disposed when the command is done.

Commands that only read run their reader in one read session (`read_once`); the others take the
open database (`opened_database`) and their own sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # only names: `stockbot --help` loads no database code (CLI start path)
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.db import Database
    from bot.settings import Settings

T = TypeVar("T")


@asynccontextmanager
async def opened_database(settings: Settings) -> AsyncIterator[Database]:
    from bot.startup import open_database  # deferred (CLI start path)

    db = await open_database(settings)
    try:
        yield db
    finally:
        await db.dispose()


async def read_once(settings: Settings, reader: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with opened_database(settings) as db, db.read_session() as session:
        return await reader(session)
