"""Composition root: builds the bot, dispatcher, sender, scheduler and HTTP API from settings.

Nothing is built at import time; tests and the demo call these factories with their own
settings and database, exactly as `stockbot run` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.memory import MemoryStorage

from bot.db import FIRST_LOW, OUTBOX, STOCK_EVENTS
from bot.delivery.sender import Sender
from bot.delivery.shared_rate import create_rate_gate
from bot.delivery.telegram import TelegramTransport
from bot.events import BeforePass, EventConsumer, Reaction, merge_reactions
from bot.handlers import build_routers
from bot.handlers.errors import on_error
from bot.handlers.flood import WaitOutFloodControl
from bot.handlers.fsm_storage import DatabaseStorage
from bot.handlers.flows import FlowExpiry
from bot.handlers.middlewares import CommitBeforeTelegram, Throttle, UnitOfWork
from bot.models import StockEventKind
from bot.planning.prompts import reorder_reactions, sweep_low_stock
from bot.recovery.hold import weigh_batches
from bot.recovery.reactions import recovery_reactions
from bot.services import Services
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
    storage = MemoryStorage() if services.db.is_sqlite else DatabaseStorage(services.db)
    dispatcher = Dispatcher(storage=storage, services=services)
    throttle = throttle or Throttle()
    unit_of_work = UnitOfWork(services)
    flow_expiry = FlowExpiry()
    for observer in (dispatcher.message, dispatcher.callback_query, dispatcher.inline_query,
                     dispatcher.edited_message):
        observer.outer_middleware(throttle)
        observer.outer_middleware(unit_of_work)
    for observer in (dispatcher.message, dispatcher.callback_query):
        observer.outer_middleware(flow_expiry)
    dispatcher.include_routers(*build_routers())
    dispatcher.errors.register(on_error)
    return dispatcher


def reactions(services: Services) -> dict[StockEventKind, list[Reaction]]:
    """What happens on each stock event: each package declares its own reactions beside its code,
    given the parts of `services` they use."""
    return merge_reactions(reorder_reactions(services.settings, services.templates),
                           recovery_reactions(services.recovery))


def first_day_duties(services: Services, wake: Callable[[], None]) -> tuple[BeforePass, BeforePass]:
    """The event worker's work besides reacting: weigh import and API batches against
    MASS_CONTACT_LIMIT before each pass, and prompt every product at or below its reorder
    point after each import, after a first level this process wrote low (a chat count, an API
    event, a connector) and at start."""
    first_low = asyncio.Event()

    def first_level_written_low() -> None:
        first_low.set()
        wake()

    services.db.on_commit(FIRST_LOW, first_level_written_low)

    async def sweep() -> int:
        first_low.clear()
        async with services.db.transaction() as session:
            return await sweep_low_stock(session, services.settings, services.templates)

    async def before_pass() -> int:
        weighed = await weigh_batches(services.db, services.settings, services.templates)
        if any(batch.from_import for batch in weighed) or first_low.is_set():
            return len(weighed) + await sweep()
        return len(weighed)

    return before_pass, sweep


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
    sender = Sender(
        services.db, TelegramTransport(bot), rate=services.settings.SEND_RATE, gate=services.gate,
        rate_gate=create_rate_gate(services.settings, services.db),  # shared by all processes on PostgreSQL
    )
    # The duties wake the consumer they are handed to: bound late, as it is built with them.
    before_pass, at_start = first_day_duties(services, lambda: consumer.wake())
    consumer = EventConsumer(services.db, services.catalog, reactions(services), before_pass=before_pass,
                             at_start=at_start)
    # Woken after the commit that wrote their work, never before (it would not be visible yet).
    services.db.on_commit(OUTBOX, sender.wake)
    services.db.on_commit(STOCK_EVENTS, consumer.wake)
    bot.session.middleware(CommitBeforeTelegram())
    bot.session.middleware(WaitOutFloodControl(on_flood=sender.flood_control))
    return Runtime(services, bot, create_dispatcher(services, throttle=throttle), sender, consumer)
