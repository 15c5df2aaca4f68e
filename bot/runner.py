"""`stockbot run`: check the settings against the world, then serve until SIGINT or SIGTERM.

A database that cannot be opened, a token the Bot API refuses and a Bot API server that cannot be
reached are settings problems: each becomes a `SettingsError` naming the setting (one line, exit
2), checked before anything starts, instead of a traceback from deep inside a library.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import secrets
import signal
import sys
from contextlib import suppress

from typing import TYPE_CHECKING

from aiohttp import ClientError, web
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError

from bot.db import Database, create_database
from bot.leadership import poll_updates
from bot.migrate import at_head, upgrade
from bot.settings import Settings, SettingsError

if TYPE_CHECKING:  # aiogram takes seconds to import: `db upgrade` and `import` never need it
    from aiogram import Bot
    from aiogram.types import User

log = logging.getLogger("bot.run")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_M_ARENA_MAX = -8  # mallopt() parameter, from glibc's malloc.h
START_CHECK_TIMEOUT = 15  # seconds for each start-up check: a silent server is as bad as a refusal


def with_webhook_secret(settings: Settings) -> Settings:
    """The settings with a TELEGRAM_SECRET_TOKEN, made up for this run when none is set.

    Without one, anyone who finds the webhook path can post updates as any user (a forged
    `/grant` from an admin's id). `token_urlsafe` uses only A-Z a-z 0-9 _ -, as Telegram requires.
    """
    if settings.TELEGRAM_SECRET_TOKEN is not None:
        return settings
    return settings.model_copy(update={"TELEGRAM_SECRET_TOKEN": SecretStr(secrets.token_urlsafe(32))})


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = (str(cause).strip().splitlines() or [""])[0] or type(cause).__name__
    return text[:200]


async def open_database(settings: Settings, *, migrate_in_child: bool = False) -> Database:
    """The database, migrated to the newest schema (by a child process if `migrate_in_child`)."""
    db = create_database(settings)
    try:
        # Connect on its own first, so that only a failure to open counts as a settings problem;
        # a failing migration is a bug and keeps its traceback.
        async with asyncio.timeout(START_CHECK_TIMEOUT), db.engine.connect():
            pass
    except (OSError, DBAPIError, TimeoutError, *_driver_errors()) as exc:
        await db.dispose()
        raise SettingsError("DATABASE_URL", f"cannot open the database: {_reason(exc)}") from None
    if migrate_in_child and not await at_head(db):
        await _upgrade_in_child(settings)
    await upgrade(db)  # nothing to do after the child; else migrates here, with a full traceback
    return db


async def _upgrade_in_child(settings: Settings) -> None:
    """`stockbot run` stays up for weeks: migrating in a short-lived `stockbot db upgrade` keeps
    alembic (with mako and pygments, ~12 MB) out of it. Should the child fail, the migration is
    tried again in this process, so the error is raised where the operator sees it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "db", "upgrade", env={**os.environ, "DATABASE_URL": settings.DATABASE_URL},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await child.communicate()
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


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own heap (up to 8 per core), and the database
    threads (one per pooled SQLite connection) and `to_thread` workers each fill and fragment
    one. Two are enough for one event loop: the 100k shop's RSS after its imports went from 355
    to 323 MB (docs/benchmarks.md). Only new heaps are affected, so this runs before the threads
    start; elsewhere than glibc it does nothing."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):  # not glibc: its allocator has no such setting
        pass


async def run(settings: Settings, *, webhook: bool = False) -> int:
    # Deferred (CLI start path): the bot, its handlers, jobs and services import aiogram, the
    # scheduler, numpy and the catalog; `db upgrade` and `import` load this module and need none.
    from bot.app import create_bot, create_runtime
    from bot.handlers.commands import publish_default_commands
    from bot.jobs import create_scheduler
    from bot.services import build_services

    db = await open_database(settings, migrate_in_child=True)
    bot = create_bot(settings)
    try:
        me = await check_bot(bot, settings)
    except SettingsError:
        await bot.session.close()
        await db.dispose()
        raise
    log.info("running as @%s", me.username)
    services = build_services(settings, db)
    # The catalog indexes load in the event worker's first pass, while polling starts: a large
    # catalog no longer holds up start-up.
    runtime = create_runtime(services, bot)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await publish_default_commands(bot, services)
    scheduler = create_scheduler(runtime)
    scheduler.start()
    sender_task = asyncio.create_task(runtime.sender.run(stop), name="sender")
    consumer_task = asyncio.create_task(runtime.consumer.run(stop), name="stock-events")
    app = web.Application()
    _add_api(app, settings, db)
    if webhook:
        await _add_webhook(app, runtime, settings)
    # No access log: raw paths carry coupon codes; the API logs each request by route pattern.
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.API_HOST, settings.API_PORT)
    await site.start()
    log.info("HTTP API on http://%s:%s", settings.API_HOST, settings.API_PORT)
    polling = None
    if not webhook:
        await bot.delete_webhook(drop_pending_updates=False)
        # One poller among the processes sharing a PostgreSQL database (bot/leadership.py).
        polling = asyncio.create_task(poll_updates(runtime.dispatcher, bot, settings.DATABASE_URL, stop))
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if polling is not None:
            with suppress(RuntimeError):
                await runtime.dispatcher.stop_polling()
            await polling
        # Side by side, so shutdown takes the longest of them, not their sum: each has seen
        # `stop`, and what any of them leaves undone is in the database for the next start.
        for outcome in await asyncio.gather(scheduler.stop(), consumer_task, sender_task, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("stopping failed", exc_info=outcome)
        log.info("delivery: %s", runtime.sender.stats)  # each process's share, when there are several
        await runner.cleanup()
        await bot.session.close()
        await db.dispose()
    return 0


def _add_api(app: web.Application, settings: Settings, db: Database) -> None:
    from bot.api.app import add_api_routes  # deferred (CLI start path): only `run` serves the API

    add_api_routes(app, settings, db)


async def _add_webhook(app: web.Application, runtime, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler  # deferred (CLI start path): aiogram

    class SecretCheckedHandler(SimpleRequestHandler):
        """Refuses (403) any update whose secret-token header is missing or wrong."""

        async def handle(self, request: web.Request) -> web.Response:
            if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
                return web.Response(status=403, text="Forbidden")
            return await super().handle(request)

    if settings.TELEGRAM_SECRET_TOKEN is None:
        raise SettingsError("TELEGRAM_SECRET_TOKEN", "is needed by `stockbot run --webhook`")  # see with_webhook_secret
    secret = settings.TELEGRAM_SECRET_TOKEN.get_secret_value()
    SecretCheckedHandler(runtime.dispatcher, runtime.bot, secret_token=secret).register(
        app, path=settings.WEBHOOK_PATH
    )
    await runtime.bot.set_webhook(
        settings.WEBHOOK_URL + settings.WEBHOOK_PATH, secret_token=secret, drop_pending_updates=False
    )
