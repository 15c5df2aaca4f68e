"""What a reorder prompt suggests ordering of one product, and why (the numbers it shows)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.inventory.cards import pack_size
from bot.models import (
    Customer,
    CustomerTier,
    Product,
    StockLevel,
    WaitlistEntry,
    WaitStatus,
)
from bot.planning.cover import product_cover
from bot.planning.history import units_sold
from bot.planning.suggestions import Action, Line, suggestions
from bot.settings import Settings


@dataclass(frozen=True, slots=True)
class Suggestion:
    qty: int
    available: int
    incoming: int
    reorder_point: int
    supplier: str | None
    lead_time_days: int  # learned from this supplier's receipts where measured, else the catalog's
    waiting: int
    vip_waiting: int
    floor_applied: bool  # lifted to just above the reorder point
    # From the demand forecast; None until the product has one.
    daily_demand: float | None = None
    days_of_cover: float | None = None
    stockout_date: date | None = None
    pack_size: int = 1
    transfer: Line | None = None  # another warehouse can spare units: move them first
    # Without a forecast: recent sales (the daily history, then the ledger) over the lead time.
    safety_stock: int = 0
    sold: int = 0
    window_days: int = 0
    lead_demand: int = 0

    @property
    def forecast(self) -> bool:
        return self.daily_demand is not None


async def suggest(session: AsyncSession, product: Product, settings: Settings) -> Suggestion:
    """What to order: from the forecast's policy where the product has one (transfers first),
    else from recent sales (the same demand the history records) over the lead time plus the
    waitlist. Either way at least enough to lift it above its reorder point."""
    incoming = int(
        await session.scalar(select(func.coalesce(func.sum(StockLevel.incoming), 0)).where(StockLevel.product_id == product.id))
        or 0
    )
    waiting, vip = await waitlist_counts(session, product.id)
    available = product.available
    cover = (await product_cover(session, [product.id], settings.zone)).get(product.id)
    if cover is not None:
        lines = await suggestions(session, [product.id])
        moving = next((line for line in lines if line.action is Action.TRANSFER), None)
        bought = sum(line.qty for line in lines if line.action is Action.BUY)
        floor = product.reorder_point + 1 - available - incoming - (moving.qty if moving else 0)
        return Suggestion(
            qty=max(bought, floor, 0), available=available, incoming=incoming, reorder_point=product.reorder_point,
            supplier=product.supplier, lead_time_days=math.ceil(cover.lead_time_days), waiting=waiting,
            vip_waiting=vip, floor_applied=floor > bought and floor > 0, daily_demand=cover.daily_demand,
            days_of_cover=cover.days_of_cover, stockout_date=cover.stockout_date,
            pack_size=pack_size(product.attributes), transfer=moving,
        )
    days = settings.DEMAND_DAYS
    sold = await units_sold(session, product.id, days, settings.zone)
    lead_demand = math.ceil(sold * product.lead_time_days / days)
    qty = product.safety_stock + lead_demand + waiting - max(available, 0) - incoming
    floor = product.reorder_point + 1 - available - incoming
    return Suggestion(
        qty=max(qty, floor, 0), available=available, incoming=incoming, reorder_point=product.reorder_point,
        supplier=product.supplier, lead_time_days=product.lead_time_days, waiting=waiting, vip_waiting=vip,
        floor_applied=qty < floor and floor > 0, safety_stock=product.safety_stock, sold=sold, window_days=days,
        lead_demand=lead_demand,
    )


async def waitlist_counts(session: AsyncSession, product_id: int) -> tuple[int, int]:
    rows = await session.execute(
        select(Customer.tier, func.count())
        .join(WaitlistEntry, WaitlistEntry.customer_id == Customer.id)
        .where(WaitlistEntry.product_id == product_id, WaitlistEntry.status == WaitStatus.WAITING.value)
        .group_by(Customer.tier)
    )
    counts = dict(rows.all())
    return sum(counts.values()), counts.get(CustomerTier.VIP, 0)
