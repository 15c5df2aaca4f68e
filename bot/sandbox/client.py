"""aiogram wiring for the sandbox, so tests and the demo build their Bot the same way."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.sandbox.server import BotApiSandbox


class SandboxSession(AiohttpSession):
    """AiohttpSession whose close() skips aiogram's 250 ms TLS-drain sleep: the sandbox is plain HTTP.

    The sleep would otherwise dominate a test suite that opens a bot per test.
    """

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def sandbox_session(sandbox: BotApiSandbox, **session_kwargs: Any) -> SandboxSession:
    """A session that can only talk to ``sandbox`` (call after ``start()``, when ``base_url`` is known)."""
    if not sandbox.base_url:
        raise RuntimeError("start the sandbox before creating a session for it")
    return SandboxSession(api=TelegramAPIServer.from_base(sandbox.base_url), **session_kwargs)


def sandbox_bot(sandbox: BotApiSandbox, *, token: str | None = None, **bot_kwargs: Any) -> Bot:
    """An ``aiogram.Bot`` pointed at the sandbox; ``token`` overrides the sandbox's (e.g. to test 401)."""
    return Bot(token or sandbox.token, session=sandbox_session(sandbox), **bot_kwargs)
