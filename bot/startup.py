"""What the commands that open the database or ask Telegram who the bot is need before any work:
the database opened and migrated, the token checked. Light at import (no aiogram, no alembic):
`db upgrade`, `import` and `customers invite` load it (tests/test_cli.py).

A database that cannot be opened, a token the Bot API refuses and a Bot API server that cannot be
reached are settings problems: each becomes a `SettingsError` naming the setting (one line, exit
2), checked before anything starts, instead of a traceback from deep inside a library.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

from aiohttp import ClientError
from sqlalchemy.exc import ArgumentError, DBAPIError

from bot.db import Database, create_database
from bot.migrate import at_head, upgrade
from bot.settings import Settings, SettingsError

if TYPE_CHECKING:  # aiogram takes seconds to import: `db upgrade` and `import` never need it
    from aiogram import Bot
    from aiogram.types import User

log = logging.getLogger("bot.run")

START_CHECK_TIMEOUT = 15  # seconds for each start-up check: a silent server is as bad as a refusal


def _url_problem(exc: Exception) -> str:
    # ArgumentError's message repeats the URL, password included.
    return "it cannot be parsed" if isinstance(exc, ArgumentError) else _reason(exc)


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = (str(cause).strip().splitlines() or [""])[0] or type(cause).__name__
    return text[:200]


async def open_database(settings: Settings, *, migrate_in_child: bool = False) -> Database:
    """The database, migrated to the newest schema (by a child process if `migrate_in_child`)."""
    try:
        db = create_database(settings)
    except (ValueError, ArgumentError) as exc:  # the settings check parses it too; this is the backstop
        raise SettingsError("DATABASE_URL", f"is not a valid database URL: {_url_problem(exc)}") from None
    try:
        # Connect on its own first, so that only a failure to open counts as a settings problem;
        # a failing migration is a bug and keeps its traceback.
        async with asyncio.timeout(START_CHECK_TIMEOUT), db.engine.connect():
            pass
    except TypeError as exc:  # the driver's connect() refused a query parameter of the URL
        await db.dispose()
        raise SettingsError("DATABASE_URL", f"the database driver refused an option: {_reason(exc)}") from None
    except (OSError, DBAPIError, TimeoutError, *_driver_errors()) as exc:
        await db.dispose()
        raise SettingsError("DATABASE_URL", f"cannot open the database: {_reason(exc)}") from None
    try:
        if not await at_head(db):  # the usual start reads one row and loads no alembic
            if migrate_in_child:
                await _upgrade_in_child(settings)
            await upgrade(db)  # nothing to do after the child; else migrates here, with a full traceback
    except BaseException:  # a failed migration, or a stop while migrating
        await db.dispose()
        raise
    return db


async def _upgrade_in_child(settings: Settings) -> None:
    """`stockbot run` stays up for weeks: migrating in a short-lived `stockbot db upgrade` keeps
    alembic (with mako and pygments, ~12 MB) out of it. Should the child fail, the migration is
    tried again in this process, so the error is raised where the operator sees it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "db", "upgrade", env={**os.environ, "DATABASE_URL": settings.DATABASE_URL},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, errors = await child.communicate()
    except asyncio.CancelledError:
        # A stop while migrating lets the child finish: a migration cut off halfway could
        # leave SQLite's schema between two versions.
        await child.wait()
        raise
    if child.returncode != 0:
        log.warning("migrating in a child process failed (exit %s); migrating here: %s",
                    child.returncode, errors.decode(errors="replace").strip()[-500:])


def _driver_errors() -> tuple[type[BaseException], ...]:
    try:  # deferred (heavy, optional): only PostgreSQL needs asyncpg; a SQLite run never loads it
        from asyncpg import PostgresError
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return ()
    return (PostgresError,)


async def check_bot(bot: Bot, settings: Settings) -> User:
    """Who the token belongs to, asking the Bot API server the settings name."""
    # Deferred (CLI start path): this module must not import aiogram, see TYPE_CHECKING above.
    from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError

    try:
        return await bot.get_me(request_timeout=START_CHECK_TIMEOUT)
    except TelegramUnauthorizedError:
        raise SettingsError("BOT_TOKEN", "the Bot API server refused this token (401 Unauthorized)") from None
    except (TelegramNetworkError, ClientError, OSError, TimeoutError):
        raise SettingsError("TELEGRAM_API_URL", f"cannot reach a Bot API server at {settings.TELEGRAM_API_URL}") from None
    except TelegramAPIError as exc:
        raise SettingsError("TELEGRAM_API_URL", f"{settings.TELEGRAM_API_URL} answered getMe with an error "
                                                f"({type(exc).__name__}); is it a Bot API server?") from None


async def bot_username(settings: Settings, command: str) -> str:
    from bot.app import create_bot  # deferred (CLI start path): bot.app imports aiogram

    settings.require_token(command)
    bot = create_bot(settings)
    try:
        me = await check_bot(bot, settings)
    finally:
        await bot.session.close()
    return me.username or ""
