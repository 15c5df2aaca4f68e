"""Slow movers as substitutes: when a product runs out, in-stock slow movers of its category rank
a little higher among the substitutes offered (docs/reports.md)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.inventory.catalog import Catalog
from bot.models import DemandForecast, Product, SalesDay
from bot.clock import shop_today
from bot.reports import analysis
from bot.reports.data import rules_of
from bot.settings import Settings

SLOW_MOVER_BOOST = 0.05  # added to a substitute's 0..1 score (bot/inventory/substitutes.py)


async def slow_mover_ids(session: AsyncSession, *, until: date, rules: analysis.Rules) -> set[int]:
    """Products in stock that are slow movers, all warehouses together: no sale in `slow_days`
    days (once the history reaches back that far), or every forecast of it over
    `slow_cover_days` days of cover. (The report also estimates cover without a forecast; this
    cheap query, run for the substitute boost, uses the forecasts only.)"""
    oldest = await session.scalar(select(func.min(SalesDay.day)).where(SalesDay.day < until))
    covered = (
        select(DemandForecast.product_id).group_by(DemandForecast.product_id)
        .having(func.min(DemandForecast.days_of_cover) > rules.slow_cover_days)
    )
    slow = [Product.id.in_(covered)]
    if oldest is not None and (until - oldest).days >= rules.slow_days:
        recent = select(SalesDay.product_id).where(
            SalesDay.sold > 0, SalesDay.day >= until - timedelta(days=rules.slow_days), SalesDay.day < until)
        slow.append(Product.id.not_in(recent))
    return set(await session.scalars(select(Product.id).where(Product.on_hand_total > 0, or_(*slow))))


async def refresh_slow_movers(db: Database, settings: Settings, catalog: Catalog) -> int:
    """The job: when a product runs out, in-stock slow movers of its category rank a little
    higher as substitutes (SLOW_MOVER_BOOST): selling them frees the stock they tie up."""
    async with db.read_session() as session:
        found = await slow_mover_ids(session, until=shop_today(settings.zone), rules=rules_of(settings))
    catalog.substitute_boost = dict.fromkeys(found, SLOW_MOVER_BOOST)
    return len(found)
