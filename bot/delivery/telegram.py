"""The sender's transport over aiogram: maps aiogram's exceptions to the sender's, and holds a
message back whose send slot is over by the time its request would leave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, InputMediaPhoto
from aiohttp import TraceConfig

from bot.delivery.transport import File, Permanent, RetryAfter, SlotMissed, Temporary, Unreachable

_GONE = ("chat not found", "user is deactivated", "bot was kicked", "peer_id_invalid")


# Set while the sender's transport makes a request: the chat replies' flood-control wait
# (bot/handlers/flood.py) leaves those alone, the sender handles a 429 itself.
_from_outbox: ContextVar[bool] = ContextVar("from_outbox", default=False)


def sending_from_outbox() -> bool:
    return _from_outbox.get()


@contextmanager
def _mapped_errors() -> Iterator[None]:
    token = _from_outbox.set(True)
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
    finally:
        _from_outbox.reset(token)


@dataclass(slots=True)
class _Departure:
    deadline: float
    on_departure: Callable[[], None] | None = None
    checked: bool = False
    missed: bool = False


# The message being sent in this task (and in the task aiohttp starts to write its body).
_departing: ContextVar[_Departure | None] = ContextVar("departing", default=None)


async def _before_the_body_leaves(*_: object) -> None:
    """aiohttp awaits this just before it writes a request's first body bytes (with the headers
    since aiohttp 3.12), with nothing awaited in between: the last moment at which a late slot can
    still be refused with the message unsent. Everything earlier (aiogram building the request,
    the event loop getting to the task that writes it) may take longer than the slot lasts."""
    departure = _departing.get()
    if departure is None or departure.checked:
        return
    departure.checked = True
    if time.monotonic() > departure.deadline:
        departure.missed = True
        raise SlotMissed("the send slot was over before the request left")
    if departure.on_departure is not None:
        departure.on_departure()


_LAST_MOMENT = TraceConfig()
_LAST_MOMENT.on_request_chunk_sent.append(_before_the_body_leaves)
_LAST_MOMENT.freeze()


@contextmanager
def _leaving_by(deadline: float | None, on_departure: Callable[[], None] | None = None) -> Iterator[None]:
    """Raise `SlotMissed` if the request would leave after `deadline`, whatever aiogram and aiohttp
    make of the refusal on the way out; call `on_departure` when it leaves in time."""
    if deadline is None:
        yield
        return
    if time.monotonic() > deadline:
        raise SlotMissed("the send slot was over before the request was made")
    departure = _Departure(deadline, on_departure)
    token = _departing.set(departure)
    try:
        yield
    except Exception:
        if departure.missed:
            raise SlotMissed("the send slot was over before the request left") from None
        raise
    finally:
        _departing.reset(token)


def _upload(file: File) -> BufferedInputFile:
    return BufferedInputFile(file.content, filename=file.filename)


class TelegramTransport:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None, *, paid: bool = False,
        deadline: float | None = None, on_departure: Callable[[], None] | None = None,
    ) -> int:
        markup = InlineKeyboardMarkup.model_validate(reply_markup) if reply_markup else None
        if deadline is not None:
            await self._check_at_the_last_moment()
        with _mapped_errors(), _leaving_by(deadline, on_departure):
            message = await self.bot.send_message(
                chat_id, text, reply_markup=markup, allow_paid_broadcast=True if paid else None
            )
        return message.message_id

    async def _check_at_the_last_moment(self) -> None:
        """Hook the deadline check into the bot's aiohttp session (aiogram makes a new one after a
        close). It acts only on requests made under `_leaving_by`, not on the bot's replies. With
        another kind of session, the check before the request is made is all there is."""
        if isinstance(self.bot.session, AiohttpSession):
            client = await self.bot.session.create_session()
            if _LAST_MOMENT not in client.trace_configs:  # aiohttp reads this list on every request
                client.trace_configs.append(_LAST_MOMENT)

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
