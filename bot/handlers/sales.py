"""Sales reps (and purchasers, admins): /stock and inline search."""

from __future__ import annotations

import hashlib

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import InlineQuery, InlineQueryResultArticle, InputTextMessageContent, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.filters import HasRole
from bot.handlers.middlewares import Texts
from bot.models import Role
from bot.planning.stock_answer import StockAnswer, stock_answer
from bot.services import Services

MAX_QUERY = 200
HITS = 5


def create_router() -> Router:
    router = Router(name="sales")
    router.message.filter(HasRole(Role.SALES))
    router.inline_query.filter(HasRole(Role.SALES))
    router.message.register(stock_command, Command("stock"))
    router.inline_query.register(inline_stock)
    return router


async def stock_command(
    message: Message, command: CommandObject, session: AsyncSession, texts: Texts, services: Services
) -> None:
    query = (command.args or "").strip()
    if not query:
        await message.answer(texts("usage_stock"))
        return
    answer = await _answer(session, services, query[:MAX_QUERY])
    if not answer.product_ids:
        await message.answer(texts("stock_nothing", query=query[:60]))
        return
    await message.answer(texts.render("stock_hits", views=answer.views, query=query[:60], covers=answer.covers))


async def _answer(session: AsyncSession, services: Services, words: str) -> StockAnswer:
    """Every route here is staff's, so the answer carries the forecast's cover."""
    return await stock_answer(
        session, services.catalog, services.price_band, services.settings.zone, words, limit=HITS
    )


async def inline_stock(query: InlineQuery, session: AsyncSession, texts: Texts, services: Services) -> None:
    text = query.query.strip()[:MAX_QUERY]
    answer = await _answer(session, services, text)
    results = [
        InlineQueryResultArticle(
            id=hashlib.sha1(f"{view.product.id}:{text}".encode()).hexdigest()[:32],
            title=f"{view.product.name} ({view.product.sku})",
            description=texts.plain("inline_available", available=view.available),
            input_message_content=InputTextMessageContent(
                message_text=texts.render("stock_hits", views=[view], query=text[:60], covers=answer.covers)
            ),
        )
        for view in answer.views
    ]
    await query.answer(results, cache_time=5, is_personal=True)
