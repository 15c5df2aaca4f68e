"""`stockbot run`: check the settings against the world (`bot/startup.py`), then serve (polling or
the Telegram webhook, the HTTP API, the workers) until SIGINT or SIGTERM, and stop within 5 s.

The heavy parts (aiogram, the scheduler, the handlers) are imported when `run` starts, so that the
CLI can import this module for `with_webhook_secret` at no cost.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import hmac
import logging
import signal
import socket
from collections.abc import Coroutine
from contextlib import AsyncExitStack, suppress
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import SecretStr

from bot.db import Database
from bot.leadership import poll_updates
from bot.settings import Settings, SettingsError
from bot.startup import check_bot, open_database

if TYPE_CHECKING:  # aiogram takes seconds to import: see the module's docstring
    from aiogram import Bot
    from aiogram.types import User

log = logging.getLogger("bot.run")

# Changing it changes every made-up webhook secret: processes of two versions would disagree.
WEBHOOK_SECRET_LABEL = b"stockbot telegram webhook secret token"
# A stop (SIGTERM) ends the process within 5 s, whatever it was doing: the workers get
# STOP_GRACE_S to finish their transaction, API requests in flight API_SHUTDOWN_S (aiohttp's
# default is a minute; a request waiting on a busy database would hold the stop that long).
STOP_GRACE_S = 2.5
API_SHUTDOWN_S = 0.5


def with_webhook_secret(settings: Settings) -> Settings:
    """The settings with a TELEGRAM_SECRET_TOKEN, made up from BOT_TOKEN when none is set.

    Without one, anyone who finds the webhook path can post updates as any user (a forged
    `/grant` from an admin's id). Each process registers its secret with `setWebhook`, and only
    the last one registered counts: a random secret per process would leave every other process
    refusing Telegram's updates (403). Derived from the token, every process of one bot makes up
    the same secret without talking to the others, and nobody without the token can work it out.
    """
    if settings.TELEGRAM_SECRET_TOKEN is not None:
        return settings
    secret = _secret_from_token(settings.require_token("stockbot run --webhook"))
    return settings.model_copy(update={"TELEGRAM_SECRET_TOKEN": SecretStr(secret)})


def _secret_from_token(token: str) -> str:
    digest = hmac.new(token.encode(), WEBHOOK_SECRET_LABEL, hashlib.sha256).digest()
    # URL-safe base64 without padding: 43 characters of A-Z a-z 0-9 _ -, as Telegram requires.
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _remember_username(db: Database, me: User) -> None:
    from bot.shop.bot_identity import remember_bot  # deferred with the rest of `run`'s start

    if me.username:  # for `stockbot customers invite` run offline later
        async with db.transaction() as session:
            await remember_bot(session, me.id, me.username)


async def run(settings: Settings, *, webhook: bool = False) -> int:
    # From the very start: a stop during start-up (migrations, getMe: up to half a minute) is a
    # clean exit too, not the default action of SIGTERM or a KeyboardInterrupt.
    stop = _stop_on_signals()
    async with AsyncExitStack() as running:  # undoes whatever start-up got to, also when it fails
        if not await _unless_stopped(_start(settings, webhook, stop, running), stop):
            log.info("stopped while starting")
            return 0
        await stop.wait()
        log.info("stopping")
    log.info("stopped")
    return 0


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _unless_stopped(starting: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Whether `starting` finished before `stop` was set; if not, it is cancelled."""
    start = asyncio.ensure_future(starting)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not start.done():
            start.cancel()
    with suppress(asyncio.CancelledError):
        await start  # a start-up error is raised here
    return not start.cancelled()


async def _start(settings: Settings, webhook: bool, stop: asyncio.Event, running: AsyncExitStack) -> None:
    """Check the settings against the world, then start serving; `running` undoes each step."""
    # Deferred (CLI start path): the bot, its handlers, jobs and services import aiogram, the
    # scheduler, numpy and the catalog; `db upgrade` and `import` load this module and need none.
    from bot.app import create_bot, create_runtime
    from bot.doctor import start_warnings
    from bot.handlers.commands import publish_default_commands
    from bot.services import build_services

    db = await open_database(settings, migrate_in_child=True)
    running.push_async_callback(db.dispose)
    bot = create_bot(settings)
    running.push_async_callback(bot.session.close)
    me = await check_bot(bot, settings)
    log.info("running as @%s", me.username)
    await _remember_username(db, me)
    services = build_services(settings, db)
    # The catalog indexes load in the event worker's first pass, while polling starts: a large
    # catalog no longer holds up start-up.
    runtime = create_runtime(services, bot)
    await publish_default_commands(bot, services)
    # Listening comes before the workers: a port in use is a settings problem, reported before
    # anything starts.
    app = web.Application()
    _add_api(app, settings, db)
    if webhook:
        _add_webhook_route(app, runtime, settings)
    await _listen(app, settings, running)
    if webhook:
        await _register_webhook(bot, settings)
    # After the checks that stop a start (one line, exit 2): these only warn.
    for warning in start_warnings(settings):  # what `stockbot doctor` would mark ✗, seen offline
        log.warning("%s", warning)
    _start_workers(runtime, stop, running)
    if not webhook:
        await bot.delete_webhook(drop_pending_updates=False)
        # One poller among the processes sharing a PostgreSQL database (bot/leadership.py).
        polling = asyncio.create_task(poll_updates(runtime.dispatcher, bot, settings.DATABASE_URL, stop))
        running.push_async_callback(_stop_polling, runtime.dispatcher, polling)


async def _listen(app: web.Application, settings: Settings, running: AsyncExitStack) -> None:
    # No access log: raw paths carry coupon codes; the API logs each request by route pattern.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=API_SHUTDOWN_S)
    await runner.setup()
    running.push_async_callback(runner.cleanup)
    try:
        await web.TCPSite(runner, settings.API_HOST, settings.API_PORT).start()
    except OSError as exc:
        raise _listen_error(exc, settings) from None
    log.info("HTTP API on http://%s:%s", settings.API_HOST, settings.API_PORT)


def _listen_error(exc: OSError, settings: Settings) -> SettingsError:
    where = f"{settings.API_HOST}:{settings.API_PORT}"
    # A name that does not resolve, or an address this machine does not have, is the host's fault.
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return SettingsError("API_HOST", f"cannot listen on {where}: {exc.strerror or exc}")
    return SettingsError("API_PORT", f"cannot listen on {where}: {exc.strerror or exc}")


def _start_workers(runtime, stop: asyncio.Event, running: AsyncExitStack) -> None:  # type: ignore[no-untyped-def]
    from bot.jobs import create_scheduler  # deferred (CLI start path): the scheduler

    scheduler = create_scheduler(runtime)
    scheduler.start()
    sender = asyncio.create_task(runtime.sender.run(stop), name="sender")
    consumer = asyncio.create_task(runtime.consumer.run(stop), name="stock-events")

    async def stop_workers() -> None:
        stop.set()  # already, unless a later start-up step failed
        # Side by side, so shutdown takes the longest of them, not their sum: each has seen
        # `stop`, and what any of them leaves undone is in the database for the next start.
        await stop_within([asyncio.ensure_future(scheduler.stop(timeout=STOP_GRACE_S * 0.8)), consumer, sender], STOP_GRACE_S)
        log.info("delivery: %s", runtime.sender.stats)  # each process's share, when there are several

    running.push_async_callback(stop_workers)


async def stop_within(workers: list[asyncio.Future[Any]], grace: float) -> None:
    """Let `workers` (told to stop) finish within `grace` seconds, then cancel the rest: a
    worker stops between transactions, and one that is mid-way rolls back, so nothing is lost and
    a stop never waits for a long batch or a Bot API that does not answer (SIGTERM: exit within
    5 s). Each worker hands back what it held when cancelled (bot/events.py, the sender)."""
    _, late = await asyncio.wait(workers, timeout=grace)
    for worker in late:
        log.warning("stopping: %s did not finish within %s s; cancelled", worker.get_name()
                    if isinstance(worker, asyncio.Task) else "a worker", grace)
        worker.cancel()
    for outcome in await asyncio.gather(*workers, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.error("stopping failed", exc_info=outcome)


async def _stop_polling(dispatcher, polling: asyncio.Task[None]) -> None:  # type: ignore[no-untyped-def]
    with suppress(RuntimeError):
        await dispatcher.stop_polling()
    await polling


def _add_api(app: web.Application, settings: Settings, db: Database) -> None:
    from bot.api.app import add_api_routes  # deferred (see the docstring): only `run` serves the API

    add_api_routes(app, settings, db)


def _add_webhook_route(app: web.Application, runtime, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from bot.webhook import add_webhook_route  # deferred (CLI start path): aiogram

    add_webhook_route(app, runtime.dispatcher, runtime.bot, path=settings.WEBHOOK_PATH,
                      secret_token=_webhook_secret(settings), db=runtime.services.db)


async def _register_webhook(bot: Bot, settings: Settings) -> None:
    from aiogram.exceptions import TelegramAPIError, TelegramNetworkError  # deferred (CLI start path)

    url = settings.WEBHOOK_URL + settings.WEBHOOK_PATH
    try:
        await bot.set_webhook(url, secret_token=_webhook_secret(settings), drop_pending_updates=False)
    except TelegramNetworkError:
        raise SettingsError("TELEGRAM_API_URL", f"cannot reach a Bot API server at {settings.TELEGRAM_API_URL}") from None
    except TelegramAPIError as exc:  # Telegram checks the URL: https, a known port, a resolvable host
        raise SettingsError("WEBHOOK_URL", f"the Bot API refused {url}: {exc.message}") from None


def _webhook_secret(settings: Settings) -> str:
    if settings.TELEGRAM_SECRET_TOKEN is None:
        raise SettingsError("TELEGRAM_SECRET_TOKEN", "is needed by `stockbot run --webhook`")  # see with_webhook_secret
    return settings.TELEGRAM_SECRET_TOKEN.get_secret_value()
