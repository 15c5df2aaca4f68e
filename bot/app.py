"""Composition root: builds the bot, dispatcher, sender, scheduler and HTTP API from settings.

Nothing is built at import time; tests and the demo call these factories with their own
settings and database, exactly as `stockbot run` does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.memory import MemoryStorage
from aiohttp import web

from bot.db import OUTBOX, STOCK_EVENTS, Database, create_database
from bot.delivery.sender import Sender
from bot.delivery.telegram import TelegramTransport
from bot.events import EventConsumer, Reaction, merge_reactions
from bot.inventory.reorder import REORDER_REACTIONS
from bot.recovery.reactions import RECOVERY_REACTIONS
from bot.handlers.middlewares import CommitBeforeTelegram, Throttle
from bot.models import StockEventKind
from bot.services import Services, build_services
from bot.settings import Settings

log = logging.getLogger(__name__)


def create_bot(settings: Settings, *, session: AiohttpSession | None = None) -> Bot:
    session = session or AiohttpSession(api=TelegramAPIServer.from_base(settings.TELEGRAM_API_URL))
    return Bot(
        settings.require_token(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_dispatcher(services: Services, *, throttle: Throttle | None = None) -> Dispatcher:
    from bot.handlers import build_routers
    from bot.handlers.errors import on_error
    from bot.handlers.fsm_storage import DatabaseStorage
    from bot.handlers.middlewares import UnitOfWork

    storage = MemoryStorage() if services.db.is_sqlite else DatabaseStorage(services.db)
    dispatcher = Dispatcher(storage=storage, services=services)
    throttle = throttle or Throttle()
    unit_of_work = UnitOfWork(services)
    for observer in (dispatcher.message, dispatcher.callback_query, dispatcher.inline_query,
                     dispatcher.edited_message):
        observer.outer_middleware(throttle)
        observer.outer_middleware(unit_of_work)
    dispatcher.include_routers(*build_routers())
    dispatcher.errors.register(on_error)
    return dispatcher


def reactions() -> dict[StockEventKind, list[Reaction]]:
    """What happens on each stock event: each package declares its own reactions beside its code."""
    return merge_reactions(REORDER_REACTIONS, RECOVERY_REACTIONS)


@dataclass(slots=True)
class Runtime:
    """A running bot's parts, so tests and the demo can drive them step by step."""

    services: Services
    bot: Bot
    dispatcher: Dispatcher
    sender: Sender
    consumer: EventConsumer

    async def process_events(self) -> int:
        return await self.consumer.process()

    async def settle(self, timeout: float = 30.0) -> None:
        """Handle every pending event and deliver everything due now."""
        await self.process_events()
        await self.sender.drain(timeout)


def create_runtime(services: Services, bot: Bot, *, throttle: Throttle | None = None) -> Runtime:
    sender = Sender(services.db, TelegramTransport(bot), rate=services.settings.SEND_RATE, gate=services.gate)
    consumer = EventConsumer(services, reactions())
    # Woken after the commit that wrote their work, never before (it would not be visible yet).
    services.db.on_commit(OUTBOX, sender.wake)
    services.db.on_commit(STOCK_EVENTS, consumer.wake)
    bot.session.middleware(CommitBeforeTelegram())
    return Runtime(services, bot, create_dispatcher(services, throttle=throttle), sender, consumer)


async def run_forever(settings: Settings, *, webhook: bool = False) -> int:
    from bot.jobs import create_scheduler
    from bot.migrate import upgrade

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = create_database(settings)
    await upgrade(db)
    services = build_services(settings, db)
    # The catalog indexes load in the event worker's first pass, while polling starts: a large
    # catalog no longer holds up start-up.
    bot = create_bot(settings)
    runtime = create_runtime(services, bot)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    me = await bot.get_me()
    log.info("running as @%s", me.username)
    from bot.handlers.commands import publish_default_commands

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
        polling = asyncio.create_task(
            runtime.dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
        )
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if polling is not None:
            with suppress(RuntimeError):
                await runtime.dispatcher.stop_polling()
            await polling
        await scheduler.stop()
        await consumer_task
        await sender_task
        await runner.cleanup()
        await bot.session.close()
        await db.dispose()
    return 0


def _add_api(app: web.Application, settings: Settings, db: Database) -> None:
    from bot.api.app import add_api_routes

    add_api_routes(app, settings, db)


async def _add_webhook(app: web.Application, runtime: Runtime, settings: Settings) -> None:
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler

    secret = settings.TELEGRAM_SECRET_TOKEN.get_secret_value() if settings.TELEGRAM_SECRET_TOKEN else None
    SimpleRequestHandler(runtime.dispatcher, runtime.bot, secret_token=secret).register(
        app, path=settings.WEBHOOK_PATH
    )
    await runtime.bot.set_webhook(
        settings.WEBHOOK_URL + settings.WEBHOOK_PATH, secret_token=secret, drop_pending_updates=False
    )
