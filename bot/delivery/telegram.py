"""The sender's transport over aiogram: maps aiogram's exceptions to the sender's."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardMarkup

from bot.delivery.transport import Permanent, RetryAfter, Temporary, Unreachable

_GONE = ("chat not found", "user is deactivated", "bot was kicked", "peer_id_invalid")


class TelegramTransport:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None, *, paid: bool = False
    ) -> int:
        markup = InlineKeyboardMarkup.model_validate(reply_markup) if reply_markup else None
        try:
            message = await self.bot.send_message(
                chat_id, text, reply_markup=markup, allow_paid_broadcast=True if paid else None
            )
        except TelegramRetryAfter as exc:
            raise RetryAfter(exc.retry_after) from None
        except TelegramForbiddenError as exc:
            raise Unreachable(exc.message) from None
        except (TelegramBadRequest, TelegramNotFound) as exc:
            if any(reason in exc.message.lower() for reason in _GONE):
                raise Unreachable(exc.message) from None
            raise Permanent(exc.message) from None
        except (TelegramServerError, TelegramNetworkError, asyncio.TimeoutError) as exc:
            raise Temporary(str(exc) or type(exc).__name__) from None
        return message.message_id
