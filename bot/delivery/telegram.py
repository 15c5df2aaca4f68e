"""The sender's transport over aiogram: maps aiogram's exceptions to the sender's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, InputMediaPhoto

from bot.delivery.transport import File, Permanent, RetryAfter, Temporary, Unreachable

_GONE = ("chat not found", "user is deactivated", "bot was kicked", "peer_id_invalid")


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
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


def _upload(file: File) -> BufferedInputFile:
    return BufferedInputFile(file.content, filename=file.filename)


class TelegramTransport:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: int, text: str, reply_markup: dict[str, Any] | None) -> int:
        markup = InlineKeyboardMarkup.model_validate(reply_markup) if reply_markup else None
        with _mapped_errors():
            message = await self.bot.send_message(chat_id, text, reply_markup=markup)
        return message.message_id

    async def send_album(self, chat_id: int, photos: Sequence[File], caption: str | None) -> int:
        with _mapped_errors():
            if len(photos) == 1:  # an album needs two to ten
                return (await self.bot.send_photo(chat_id, _upload(photos[0]), caption=caption)).message_id
            media = [
                InputMediaPhoto(media=_upload(photo), caption=caption if i == 0 else None)
                for i, photo in enumerate(photos)
            ]
            return (await self.bot.send_media_group(chat_id, media))[0].message_id

    async def send_document(self, chat_id: int, document: File, caption: str | None) -> int:
        with _mapped_errors():
            return (await self.bot.send_document(chat_id, _upload(document), caption=caption)).message_id
