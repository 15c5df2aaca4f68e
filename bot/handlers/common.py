"""For everyone: /start (with an invite token, or by sharing a phone number), /help, /language."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers import keyboards
from bot.handlers.callbacks import LanguagePick
from bot.handlers.commands import COMMANDS, publish_commands_for
from bot.handlers.middlewares import Texts
from bot.models import Customer
from bot.services import Services
from bot.shop import customers as customer_service
from bot.shop.phones import BadPhone, telegram_contact_e164
from bot.shop.staff import Actor, set_locale


def create_router() -> Router:
    router = Router(name="common")
    router.message.register(start, CommandStart())
    router.message.register(contact_shared, F.contact)
    router.message.register(help_command, Command("help"))
    router.message.register(language_command, Command("language"))
    router.callback_query.register(language_picked, LanguagePick.filter())
    return router


async def start(
    message: Message, command: CommandObject, session: AsyncSession, actor: Actor, texts: Texts,
    services: Services, bot: Bot,
) -> None:
    token = (command.args or "").strip()
    if token:
        try:
            customer = await customer_service.link_by_token(session, token, actor.user_id, message.chat.id)
        except customer_service.LinkRefused as refused:
            await message.answer(texts(refused.reason))
            return
        await _welcome_customer(message, customer, texts, services, bot)
        return
    if actor.role is not None:
        await message.answer(texts("welcome_staff", role=texts(f"role_{actor.role.value}")))
        return
    if actor.customer is not None:
        customer = await session.get(Customer, actor.customer.id)
        assert customer is not None
        was_out = customer.opted_out
        customer.opted_out = False
        await message.answer(texts("opted_in" if was_out else "welcome_back", name=customer.name))
        return
    await message.answer(texts("welcome_stranger"), reply_markup=keyboards.share_phone(texts))


async def contact_shared(
    message: Message, session: AsyncSession, actor: Actor, texts: Texts, services: Services, bot: Bot
) -> None:
    contact = message.contact
    assert contact is not None
    if contact.user_id != actor.user_id:
        await message.answer(texts("contact_not_yours"), reply_markup=ReplyKeyboardRemove())
        return
    try:
        phone = telegram_contact_e164(contact.phone_number)
        customer = await customer_service.link_by_phone(session, phone, actor.user_id, message.chat.id)
    except BadPhone:
        await message.answer(texts("phone_unknown"), reply_markup=ReplyKeyboardRemove())
        return
    except customer_service.LinkRefused as refused:
        await message.answer(texts(refused.reason), reply_markup=ReplyKeyboardRemove())
        return
    await _welcome_customer(message, customer, texts, services, bot)


async def _welcome_customer(message: Message, customer: Customer, texts: Texts, services: Services, bot: Bot) -> None:
    texts = Texts(texts.templates, customer.locale or texts.locale)
    await message.answer(texts("linked", name=customer.name), reply_markup=ReplyKeyboardRemove())
    await publish_commands_for(bot, services, message.chat.id, "customer")


async def help_command(message: Message, actor: Actor, texts: Texts) -> None:
    await message.answer(texts.render("help", commands=COMMANDS[actor.kind], kind=actor.kind))


async def language_command(message: Message, texts: Texts) -> None:
    await message.answer(texts("choose_language"), reply_markup=keyboards.languages())


async def language_picked(
    query: CallbackQuery, callback_data: LanguagePick, session: AsyncSession, actor: Actor, services: Services
) -> None:
    locale = services.templates.locale(callback_data.locale, "")
    if not locale:
        await query.answer()
        return
    await set_locale(session, actor, locale)
    texts = Texts(services.templates, locale)
    await query.answer(texts("language_set"))
    if isinstance(query.message, Message):
        await query.message.edit_text(texts("language_set"))
