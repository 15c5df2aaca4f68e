"""Purchasers: the low-stock digest's button for the rest of the list, a page at a time."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.callbacks import LowRest
from bot.handlers.filters import HasRole
from bot.handlers.middlewares import Texts
from bot.models import Role
from bot.planning.prompts import most_urgent

PAGE = 30
MAX_OFFSET = 10_000_000  # forged callback data: anything beyond is an empty page anyway


def create_router() -> Router:
    router = Router(name="low_digest")
    router.callback_query.filter(HasRole(Role.PURCHASER))
    router.callback_query.register(rest_pressed, LowRest.filter())
    return router


async def rest_pressed(query: CallbackQuery, callback_data: LowRest, session: AsyncSession, texts: Texts) -> None:
    offset = min(max(callback_data.offset, 0), MAX_OFFSET)
    total, products = await most_urgent(session, offset=offset, limit=PAGE)
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if not products:
        await query.message.answer(texts("low_rest_none"))
        return
    following = total - offset - len(products)
    markup = None
    if following > 0:
        markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
            text=texts.plain("btn_low_more", count=min(following, PAGE)),
            callback_data=LowRest(offset=offset + len(products)).pack(),
        )]])
    await query.message.answer(
        texts.render("low_rest", products=products, first=offset + 1, last=offset + len(products), total=total),
        reply_markup=markup,
    )
