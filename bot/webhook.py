"""`stockbot run --webhook`: Telegram's updates taken over HTTP, checked before any is handled.

In order: the secret-token header (403 when missing or wrong, whatever bytes it holds), the body
(400 when it is not JSON, nests too deep, or is not an Update: never 500, and nothing reaches
the dispatcher), then the update_id: Telegram delivers again what it thinks was not received,
and several processes may share the webhook's address, so an update_id any process took before
is answered 200 and not handled again. Only then is the update handled, in the background, as
aiogram's own handler does (Telegram waits for no answer).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from pydantic import ValidationError

from bot.db import Database
from bot.models import utcnow
from bot.seen_once import UPDATES, SeenOnceStore

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

log = logging.getLogger("bot.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram numbers updates in sequence, but starts at a random number after a week without any:
# an update_id remembered for longer than that can never come back.
REMEMBER_UPDATES = timedelta(days=8)
RETRY_AFTER_S = 2


class WebhookReceiver(SimpleRequestHandler):
    """aiogram's webhook handler with the checks above; `db` holds the update_ids taken."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str, db: Database) -> None:
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret_token)
        self.db = db
        self._updates = SeenOnceStore(UPDATES)

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        # Bytes, not str: compare_digest raises TypeError on non-ASCII str (a 500 for any header
        # a client cares to send).
        given = telegram_secret_token.encode("utf-8", "surrogateescape")
        return bool(self.secret_token) and hmac.compare_digest(given, (self.secret_token or "").encode())

    async def close(self) -> None:
        """Nothing: the bot's session belongs to whoever made the bot (`stockbot run` closes it
        last), not to this route."""

    async def handle(self, request: web.Request) -> web.Response:
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            return web.Response(status=403, text="Forbidden")
        update = _update_of(await request.read(), self.bot)
        if update is None:
            return web.json_response({"error": "not a Telegram update"}, status=400)
        try:
            first = await self._updates.claim(self.db, str(update.update_id), utcnow() + REMEMBER_UPDATES)
        except Exception:  # the database: Telegram delivers again after a non-2xx answer
            log.warning("webhook: could not record update %s; answered 503", update.update_id, exc_info=True)
            return web.json_response({"error": "busy"}, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        if first:
            task = asyncio.create_task(self._feed(update))
            self._background_feed_update_tasks.add(task)
            task.add_done_callback(self._background_feed_update_tasks.discard)
        else:
            log.info("webhook: update %s was taken before; not handled again", update.update_id)
        return web.json_response({})

    async def _feed(self, update: Update) -> None:
        try:
            result = await self.dispatcher.feed_update(self.bot, update, **self.data)
            if isinstance(result, TelegramMethod):  # a handler's answer given as its return value
                await self.dispatcher.silent_call_request(self.bot, result)
        except Exception:  # logged here, not as "Task exception was never retrieved"
            log.exception("webhook: update %s failed", update.update_id)


def _update_of(body: bytes, bot: Bot) -> Update | None:
    """The body as an Update, or None when it is not one."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        return None
    if not isinstance(data, dict) or type(data.get("update_id")) is not int:
        return None
    try:
        return Update.model_validate(data, context={"bot": bot})
    except (ValidationError, RecursionError, ValueError, TypeError):
        return None


def add_webhook_route(app: web.Application, dispatcher: Dispatcher, bot: Bot, *, path: str, secret_token: str,
                      db: Database) -> WebhookReceiver:
    receiver = WebhookReceiver(dispatcher, bot, secret_token=secret_token, db=db)
    receiver.register(app, path=path)
    return receiver
