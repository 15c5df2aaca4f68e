"""Each role's commands: for /help and for Telegram's command menu (setMyCommands per chat)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from sqlalchemy import select

from bot.models import Role, StaffMember
from bot.services import Services

log = logging.getLogger(__name__)

EVERYONE = ("start", "help", "language", "whoami", "cancel")
COMMANDS: dict[str, tuple[str, ...]] = {
    "stranger": EVERYONE,
    "customer": (*EVERYONE, "notify", "waitlist", "stop"),
    Role.SALES.value: (*EVERYONE, "stock"),
    Role.PURCHASER.value: (*EVERYONE, "stock", "lowstock", "plan", "receive", "count", "report"),
    Role.ADMIN.value: (*EVERYONE, "stock", "lowstock", "plan", "receive", "count", "report", "grant", "revoke", "stats"),
}


def menu(services: Services, kind: str, locale: str) -> list[BotCommand]:
    label = services.templates.label
    return [BotCommand(command=name, description=label(locale, f"cmd_{name}")) for name in COMMANDS[kind]]


async def publish_commands_for(bot: Bot, services: Services, chat_id: int, kind: str) -> None:
    """Show this chat only its own commands, in both languages."""
    scope = BotCommandScopeChat(chat_id=chat_id)
    try:
        for locale in services.templates.locales:
            language = "" if locale == services.settings.DEFAULT_LOCALE else locale
            await bot.set_my_commands(menu(services, kind, locale), scope=scope, language_code=language or None)
    except TelegramAPIError:  # the menu is a convenience; /help always answers
        log.warning("could not set the command menu for chat %s", chat_id, exc_info=True)


async def publish_default_commands(bot: Bot, services: Services) -> None:
    for locale in services.templates.locales:
        language = "" if locale == services.settings.DEFAULT_LOCALE else locale
        await bot.set_my_commands(
            menu(services, "stranger", locale), scope=BotCommandScopeDefault(), language_code=language or None
        )
    async with services.db.read_session() as session:
        staff = list(await session.execute(select(StaffMember.telegram_user_id, StaffMember.role)))
    roles = {user_id: role for user_id, role in staff}
    roles.update({admin: Role.ADMIN.value for admin in services.settings.ADMIN_IDS})
    # Customers get theirs when they link (a start-up call per customer would not scale).
    for user_id, role in roles.items():
        await publish_commands_for(bot, services, user_id, role)
