"""Drive a whole bot in process: the real aiogram Dispatcher and HTTP session against the sandbox.

Polling runs with `handle_as_tasks=False`, so once the sandbox has seen the bot ask for the next
batch of updates, every handler for the previous batch has finished: `act` waits for exactly that.

It lives with the product, not in `bot.sandbox`: the sandbox is the fake Telegram and imports
nothing of the product (a test keeps it so), while this wires the product's own runtime to it.
Its users are `stockbot demo` and the tests' harness.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.app import Runtime, create_bot, create_runtime
from bot.db import Database
from bot.handlers.middlewares import Throttle
from bot.sandbox import BotApiSandbox, SentMessage, sandbox_session
from bot.services import Services, build_services
from bot.settings import Settings

# How long one step (a message, a press) may take before the bot is taken for stuck.
ACT_DEADLINE_S = 60.0


@dataclass
class Conversation:
    sandbox: BotApiSandbox
    runtime: Runtime

    @property
    def services(self) -> Services:
        return self.runtime.services

    @property
    def db(self) -> Database:
        return self.runtime.services.db

    async def act(self, update: dict[str, Any]) -> None:
        """Wait until the bot has handled `update` (already queued by the sandbox call that made
        it). The deadline only tells a bot that stopped polling from a slow one: a chart drawn for
        /stats or /report took 2-6 s at load 8, on top of everything else the step does."""
        await self.sandbox.wait_until_consumed(timeout=ACT_DEADLINE_S)

    async def say(self, user_id: int, text: str, **options: Any) -> list[SentMessage]:
        """Send a text as `user_id`; returns the bot's new messages in that chat."""
        before = len(self.sandbox.messages(user_id))
        await self.act(self.sandbox.send_text(user_id, text, **options))
        return self.sandbox.messages(user_id)[before:]

    async def reply(self, user_id: int, text: str, **options: Any) -> str:
        """The bot's one answer to `text`, as the user reads it."""
        messages = await self.say(user_id, text, **options)
        assert messages, f"the bot did not answer {text!r}"
        return "\n".join(m.plain_text for m in messages)

    async def press(self, user_id: int, message: SentMessage, button_text: str) -> list[SentMessage]:
        before = len(self.sandbox.messages(user_id))
        await self.act(self.sandbox.press_button_with_text(user_id, message, button_text))
        return self.sandbox.messages(user_id)[before:]

    def last(self, chat_id: int) -> SentMessage:
        return self.sandbox.last_message(chat_id)

    def alerts(self, user_id: int) -> list[str]:
        return [answer.text or "" for answer in self.sandbox.callback_answers(user_id=user_id)]

    async def settle(self) -> None:
        await self.runtime.settle()


@asynccontextmanager
async def running_bot(
    settings: Settings, db: Database, *, throttle: Throttle | None = None
) -> AsyncIterator[Conversation]:
    async with BotApiSandbox(token=settings.require_token()) as sandbox:
        settings = settings.model_copy(update={"TELEGRAM_API_URL": sandbox.base_url})
        services = build_services(settings, db)
        await services.catalog.refresh(db)
        bot = create_bot(settings, session=sandbox_session(sandbox))
        # Scripted users type faster than people; the flood guard is tested on its own.
        runtime = create_runtime(services, bot, throttle=throttle or Throttle(rate=1000, burst=1000))
        polling = asyncio.create_task(
            runtime.dispatcher.start_polling(
                bot, handle_signals=False, close_bot_session=False, handle_as_tasks=False, polling_timeout=1
            )
        )
        await sandbox.wait_until_polling()
        try:
            yield Conversation(sandbox, runtime)
        finally:
            await runtime.dispatcher.stop_polling()
            await polling
            await bot.session.close()
