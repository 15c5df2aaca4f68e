"""The bot the page talks to: Stockbot's own runtime on the sandbox, with everything `run` starts.

`running_bot` (bot/conversation.py) gives the real dispatcher polling the sandbox; this adds what
`stockbot run` adds around it, so the page shows the bot as it behaves in production: the stock
event worker and the sender woken by each commit, the scheduler's jobs, the command menus, and
the integration HTTP API (on a port of its own on 127.0.0.1, with a key made up for this run),
which the page's stock panel calls signed, as a shop's system would.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select

from bot.api.app import create_api_app
from bot.api.signing import signed_headers
from bot.conversation import Conversation, running_bot
from bot.db import Database
from bot.handlers.commands import publish_default_commands
from bot.jobs import create_scheduler
from bot.models import Product, StockLevel, Warehouse
from bot.play.people import Person
from bot.play.render import chat_entries
from bot.sandbox import BotApiSandbox, ButtonNotFound, StoredFile
from bot.settings import Settings

STOCK_EVENTS_PATH = "/api/v1/stock-events"
MIME_TYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}

Setup = Callable[["Play"], Awaitable[None]]


class NotPressable(LookupError):
    """The button is not on the message as it is now (pressed and replaced, or never there)."""


@dataclass
class Play:
    conversation: Conversation
    people: tuple[Person, ...]
    api_url: str
    api_secret: str
    http: aiohttp.ClientSession

    @property
    def sandbox(self) -> BotApiSandbox:
        return self.conversation.sandbox

    def person(self, user_id: int) -> Person:
        for person in self.people:
            if person.user_id == user_id:
                return person
        raise KeyError(user_id)

    # what a person sees ------------------------------------------------------------------------

    def chat(self, person: Person) -> dict[str, Any]:
        sandbox = self.sandbox
        answers = [
            {"id": answer.callback_query_id, "text": answer.text, "alert": answer.show_alert}
            for answer in sandbox.callback_answers(user_id=person.user_id) if answer.text
        ]
        return {
            "person": person.user_id,
            "entries": chat_entries(sandbox.messages(person.user_id), sandbox.user_messages(person.user_id)),
            "answers": answers,
            "commands": self._commands(person),
            "counts": {str(p.user_id): len(sandbox.messages(p.user_id)) for p in self.people},
        }

    def _commands(self, person: Person) -> list[dict[str, str]]:
        default_locale = self.conversation.services.settings.DEFAULT_LOCALE
        language = "" if person.language == default_locale else person.language
        scope = {"type": "chat", "chat_id": person.user_id}
        for where, code in ((scope, language), (scope, ""), ("default", language), ("default", "")):
            if found := self.sandbox.commands(where, code):
                return [{"command": c["command"], "description": c["description"]} for c in found]
        return []

    def file(self, file_id: str) -> StoredFile:
        return self.sandbox.file(file_id)

    async def stock(self) -> list[dict[str, Any]]:
        """Every product and warehouse with a stock row, for the panel to pick from."""
        async with self.conversation.db.transaction() as session:
            rows = await session.execute(
                select(Product.sku, Product.name, Warehouse.code, StockLevel.on_hand)
                .join(StockLevel, StockLevel.product_id == Product.id)
                .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
                .order_by(Product.sku, Warehouse.code)
            )
            return [{"sku": sku, "name": name, "warehouse": code, "on_hand": on_hand}
                    for sku, name, code, on_hand in rows]

    # what a person does ------------------------------------------------------------------------

    def say(self, person: Person, text: str) -> None:
        self.sandbox.send_text(person.user_id, text, first_name=person.first_name, language_code=person.language)

    def press(self, person: Person, message_id: int, index: int) -> None:
        try:
            message = self.sandbox.message(person.user_id, message_id)
        except LookupError:
            raise NotPressable(f"no message {message_id}") from None
        buttons = [] if message.deleted else message.buttons()
        if not 0 <= index < len(buttons):
            raise NotPressable("that button is gone")
        button = buttons[index]
        if button.request_contact:
            raise NotPressable("the page cannot share a phone number; customers link by invite link here")
        if not button.inline:  # a reply keyboard's button sends its text
            self.say(person, button.text)
        elif button.callback_data is None:
            raise NotPressable("that button opens a link")
        else:
            try:
                self.sandbox.press_button(person.user_id, message, button.callback_data, first_name=person.first_name)
            except ButtonNotFound:
                raise NotPressable("that button is gone") from None

    def send_file(self, person: Person, filename: str, content: bytes, caption: str | None) -> None:
        suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        self.sandbox.send_document(
            person.user_id, filename, content, caption=caption or None,
            mime_type=MIME_TYPES.get(suffix, "application/octet-stream"), first_name=person.first_name,
        )

    async def stock_events(self, events: list[dict[str, Any]]) -> tuple[int, Any]:
        """One batch of stock events through the signed integration API, as a shop's system sends it."""
        batch = [{"event_id": f"play-{uuid.uuid4().hex}", **event} for event in events]
        body = json.dumps({"events": batch}).encode()
        headers = {"Content-Type": "application/json",
                   **signed_headers(self.api_secret, "POST", STOCK_EVENTS_PATH, body)}
        async with self.http.post(self.api_url + STOCK_EVENTS_PATH, data=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)


@asynccontextmanager
async def playing(
    settings: Settings, db: Database, people: tuple[Person, ...], *, setup: Setup | None = None
) -> AsyncIterator[Play]:
    """The running bot, its workers and its API; `setup` plays the first steps before anyone watches."""
    api_secret = secrets.token_hex(32)  # only the page's own panel calls this API
    settings = settings.model_copy(update={"WEBHOOK_SECRET": SecretStr(api_secret)})
    # Workers and the API stop first: the sender needs the bot's session, which running_bot closes.
    async with running_bot(settings, db) as conversation, AsyncExitStack() as running:
        runtime = conversation.runtime
        await publish_default_commands(runtime.bot, runtime.services)
        stop = asyncio.Event()
        scheduler = create_scheduler(runtime)
        scheduler.start()
        workers = [asyncio.create_task(runtime.sender.run(stop), name="play-sender"),
                   asyncio.create_task(runtime.consumer.run(stop), name="play-stock-events")]

        async def stop_workers() -> None:
            stop.set()
            await asyncio.gather(scheduler.stop(), *workers, return_exceptions=True)

        running.push_async_callback(stop_workers)
        api_url = await _serve_api(settings, db, running)
        http = await running.enter_async_context(aiohttp.ClientSession())
        play = Play(conversation, people, api_url, api_secret, http)
        if setup is not None:
            await setup(play)
        yield play


async def _serve_api(settings: Settings, db: Database, running: AsyncExitStack) -> str:
    runner = web.AppRunner(create_api_app(settings, db), access_log=None)
    await runner.setup()
    running.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"
