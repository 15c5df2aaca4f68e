"""Dependency injection and flood protection for every update.

`UnitOfWork` opens one database session per update, resolves who is writing (role, customer,
language) and injects `session`, `actor`, `texts` and `services`; it commits when the handler
returns and rolls back when it raises. `CommitBeforeTelegram` commits what the handler has done
so far before each Bot API call the handler makes: a user is told "done" only once it is, and on
SQLite the write lock is not held while Telegram answers. `Throttle` drops a flooding user's
updates before any database work, so one user cannot slow everyone else down.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import CallbackQuery, Message, TelegramObject, User
from aiolimiter import AsyncLimiter
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery.templates import Templates
from bot.services import Services
from bot.shop.staff import resolve_actor

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
# The session of the update being handled in this task (aiogram runs each update in its own).
update_session: ContextVar[AsyncSession | None] = ContextVar("update_session", default=None)


@dataclass(frozen=True, slots=True)
class Texts:
    """The current user's language, bound: `texts("key", n=1)` and `texts.render("name", ...)`."""

    templates: Templates
    locale: str

    def __call__(self, key: str, **context: Any) -> str:
        return self.templates.label(self.locale, key, **context)

    def render(self, name: str, **context: Any) -> str:
        return self.templates.render(self.locale, name, **context)

    def plain(self, key: str, **context: Any) -> str:
        """For buttons, callback answers and alerts, which Telegram shows as plain text."""
        return self.templates.plain(self.locale, key, **context)


class UnitOfWork(BaseMiddleware):
    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or user.is_bot:
            return None  # channel posts and the like: nothing here is for them
        chat = data.get("event_chat")
        settings = self.services.settings
        async with self.services.db.session() as session:
            actor = await resolve_actor(
                session,
                user.id,
                chat.id if chat else user.id,
                admin_ids=settings.ADMIN_IDS,
                telegram_language=user.language_code,
                default_locale=settings.DEFAULT_LOCALE,
                first_name=user.first_name or "",
                username=user.username,
            )
            data.update(
                session=session,
                actor=actor,
                services=self.services,
                texts=Texts(self.services.templates, actor.locale),
            )
            token = update_session.set(session)
            try:
                result = await handler(event, data)
            except Exception:
                await session.rollback()
                raise
            finally:
                update_session.reset(token)
            await session.commit()
            return result


class CommitBeforeTelegram(BaseRequestMiddleware):
    """A Bot API request made while handling an update first commits that update's work."""

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        session = update_session.get()
        if session is not None and session.in_transaction():
            await session.commit()
        return await make_request(bot, method)


class Throttle(BaseMiddleware):
    """At most `rate` updates a second per user, with a small burst; the rest are dropped.

    A dropped message gets one "slow down" reply per flood, not one per message.
    """

    def __init__(self, rate: float = 2.0, burst: int = 5, remember: int = 10_000) -> None:
        self.rate, self.burst, self.remember = rate, burst, remember
        self._limiters: OrderedDict[int, AsyncLimiter] = OrderedDict()
        self._warned: set[int] = set()

    def _limiter(self, user_id: int) -> AsyncLimiter:
        limiter = self._limiters.pop(user_id, None) or AsyncLimiter(self.burst, self.burst / self.rate)
        self._limiters[user_id] = limiter
        if len(self._limiters) > self.remember:
            forgotten, _ = self._limiters.popitem(last=False)
            self._warned.discard(forgotten)  # else a user who flooded once is remembered for ever
        return limiter

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        limiter = self._limiter(user.id)
        if not limiter.has_capacity():
            if user.id not in self._warned:
                self._warned.add(user.id)
                await _tell_slow_down(event)
            return None
        await limiter.acquire()
        self._warned.discard(user.id)
        return await handler(event, data)


async def _tell_slow_down(event: TelegramObject) -> None:
    # Language is not resolved yet (no database work for a flood), so the note is bilingual.
    note = "Too many messages at once; please wait a moment. / 消息太频繁，请稍候。"
    try:
        if isinstance(event, Message):
            await event.answer(note)
        elif isinstance(event, CallbackQuery):
            await event.answer(note)
    except Exception:  # the warning is a courtesy; failing to send it changes nothing
        log.debug("could not send the slow-down note", exc_info=True)
