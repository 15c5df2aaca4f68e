"""Composition root: builds the bot, dispatcher, sender, scheduler and HTTP API from settings.

Nothing is built at import time; tests and the demo call these factories with their own
settings and database, exactly as `stockbot run` does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.memory import MemoryStorage

from bot.delivery.sender import Sender
from bot.delivery.telegram import TelegramTransport
from bot.events import Reaction, process_events
from bot.handlers.middlewares import CommitBeforeTelegram, Throttle
from bot.models import StockEventKind
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


def reactions() -> Mapping[StockEventKind, Sequence[Reaction]]:
    """What happens on each stock event: purchasing and recovery each add theirs."""
    from bot.inventory import reorder
    from bot.recovery.reactions import RECOVERY_REACTIONS

    table: dict[StockEventKind, list[Reaction]] = {kind: [] for kind in StockEventKind}
    table[StockEventKind.LOW_STOCK].append(reorder.on_low_stock)
    table[StockEventKind.RECOVERED].append(
        lambda session, services, event: reorder.on_recovered(session, event.product_id)
    )
    for kind, handlers in RECOVERY_REACTIONS.items():
        table[kind].extend(handlers)
    return table


@dataclass(slots=True)
class Runtime:
    """A running bot's parts, so tests and the demo can drive them step by step."""

    services: Services
    bot: Bot
    dispatcher: Dispatcher
    sender: Sender
    reactions: Mapping[StockEventKind, Sequence[Reaction]] = field(default_factory=dict)

    async def process_events(self) -> int:
        total = 0
        while handled := await process_events(self.services, self.reactions):
            total += handled
        return total

    async def settle(self, timeout: float = 30.0) -> None:
        """Handle every pending event and deliver everything due now."""
        await self.process_events()
        await self.sender.drain(timeout)


def create_runtime(services: Services, bot: Bot, *, throttle: Throttle | None = None) -> Runtime:
    sender = Sender(
        services.db, TelegramTransport(bot), rate=services.settings.SEND_RATE, gate=services.gate
    )
    services.wake_sender = sender.wake
    bot.session.middleware(CommitBeforeTelegram())
    return Runtime(services, bot, create_dispatcher(services, throttle=throttle), sender, reactions())


async def run_forever(settings: Settings, *, webhook: bool = False) -> int:
    from bot.runner import run

    return await run(settings, webhook=webhook)
