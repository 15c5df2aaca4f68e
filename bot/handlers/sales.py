"""Sales reps (and purchasers, admins): /stock and inline search."""

from __future__ import annotations

import hashlib

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import InlineQuery, InlineQueryResultArticle, InputTextMessageContent, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.filters import HasRole
from bot.handlers.middlewares import Texts
from bot.inventory.catalog import stock_views
from bot.inventory.substitutes import PriceBand
from bot.models import Role
from bot.planning.cover import ProductCover, product_cover
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


def _band(services: Services) -> PriceBand:
    return PriceBand.from_settings(services.settings)


async def stock_command(
    message: Message, command: CommandObject, session: AsyncSession, texts: Texts, services: Services
) -> None:
    query = (command.args or "").strip()
    if not query:
        await message.answer(texts("usage_stock"))
        return
    hits = await services.catalog.search.search_async(query[:MAX_QUERY], HITS)
    if not hits:
        await message.answer(texts("stock_nothing", query=query[:60]))
        return
    views = await stock_views(session, services.catalog, [hit.product_id for hit in hits], band=_band(services))
    covers = await _covers(session, services, [hit.product_id for hit in hits])
    await message.answer(texts.render("stock_hits", views=views, query=query[:60], covers=covers))


async def _covers(session: AsyncSession, services: Services, product_ids: list[int]) -> dict[int, ProductCover]:
    """Forecast demand and days of cover: staff only (every route here is staff's)."""
    return await product_cover(session, product_ids, services.settings.zone)


async def inline_stock(query: InlineQuery, session: AsyncSession, texts: Texts, services: Services) -> None:
    text = query.query.strip()[:MAX_QUERY]
    hits = await services.catalog.search.search_async(text, HITS) if text else []
    views = await stock_views(session, services.catalog, [hit.product_id for hit in hits], band=_band(services))
    covers = await _covers(session, services, [hit.product_id for hit in hits])
    results = [
        InlineQueryResultArticle(
            id=hashlib.sha1(f"{view.product.id}:{text}".encode()).hexdigest()[:32],
            title=f"{view.product.name} ({view.product.sku})",
            description=texts.plain("inline_available", available=view.available),
            input_message_content=InputTextMessageContent(
                message_text=texts.render("stock_hits", views=[view], query=text[:60], covers=covers)
            ),
        )
        for view in views
    ]
    await query.answer(results, cache_time=5, is_personal=True)
