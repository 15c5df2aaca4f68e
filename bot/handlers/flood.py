"""A chat reply refused by Telegram's flood control (429) waits `retry_after` and is sent.

Replies go straight back through aiogram, not through the outbox, so nothing else would ever send
them again. The limit is the bot's, so the outbox holds off too (`on_flood`, the sender's
`flood_control`: every process sharing its rate gate). The outbox's own sends are left to the
sender (bot/delivery/sender.py): it pauses every chat on a 429 and must see the refusal, not wait
inside the request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.delivery.telegram import sending_from_outbox

log = logging.getLogger(__name__)

# Telegram asks for seconds, at most a minute or so in practice; a reply still waiting after a few
# refusals in a row is given up (the user sees nothing, as before) rather than held for ever.
MAX_TRIES = 5


class WaitOutFloodControl(BaseRequestMiddleware):
    def __init__(self, *, max_tries: int = MAX_TRIES,
                 on_flood: Callable[[float], Awaitable[None]] | None = None) -> None:
        self.max_tries = max_tries
        self.on_flood = on_flood

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if sending_from_outbox():
            return await make_request(bot, method)
        for tries in range(1, self.max_tries + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as refused:
                if tries == self.max_tries:
                    raise
                log.warning("flood control from Telegram on a reply (%s): sending it in %s s",
                            type(method).__name__, refused.retry_after)
                if self.on_flood is not None:
                    await self.on_flood(refused.retry_after)
                await asyncio.sleep(refused.retry_after)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
