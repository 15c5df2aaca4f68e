"""What nobody else handled: a short refusal or a hint, never data."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, InlineQuery, Message

from bot.handlers.commands import COMMANDS
from bot.handlers.middlewares import Texts
from bot.shop.staff import Actor

_ALL_COMMANDS = {name for names in COMMANDS.values() for name in names}


def create_router() -> Router:
    router = Router(name="fallback")
    router.message.register(command_refused, F.text.startswith("/"))
    router.message.register(text_not_understood, F.text)
    router.message.register(not_text)
    router.callback_query.register(button_refused)
    router.inline_query.register(inline_refused)
    return router


def _command_name(text: str) -> str:
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""


async def command_refused(message: Message, actor: Actor, texts: Texts) -> None:
    name = _command_name(message.text or "")
    if name in _ALL_COMMANDS and name not in COMMANDS[actor.kind]:
        key = "not_linked" if actor.kind == "stranger" else "not_allowed"
    else:
        key = "unknown_command"
    await message.answer(texts(key))


async def text_not_understood(message: Message, actor: Actor, texts: Texts) -> None:
    await message.answer(texts("not_linked" if actor.kind == "stranger" else "use_commands"))


async def not_text(message: Message, texts: Texts) -> None:
    await message.answer(texts("only_text"))


async def button_refused(query: CallbackQuery, texts: Texts) -> None:
    await query.answer(texts("button_refused"), show_alert=True)


async def inline_refused(query: InlineQuery) -> None:
    await query.answer([], cache_time=5, is_personal=True)
