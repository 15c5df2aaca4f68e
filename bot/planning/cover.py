"""Days of cover: how long stock lasts at the forecast demand, per series and per product.

Read by the reorder prompt, /stock and the early warning, and refreshed after every stock change
(`refresh_cover`: demand stays, only days of cover and the stockout date move). The forecast run
(bot/planning/service.py) writes the forecasts these read.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

import numpy as np
from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import id_chunks, id_filters, within
from bot.models import DemandForecast, Product, ReplenishmentPolicy, StockLevel, utcnow
from bot.clock import shop_today
from bot.planning.replenishment import days_of_cover, stockout_dates


@dataclass(frozen=True, slots=True)
class Level:
    """A stock level as cover counts it: what can be sold now and what is on its way."""

    available: int
    incoming: int
    eta: datetime | None


def arriving_within(level: Level | None, lead_days: float, now: datetime) -> int:
    """What is on its way and comes within the lead time (no ETA: assume it does)."""
    if level is None or level.incoming <= 0:
        return 0
    if level.eta is None or level.eta <= now + timedelta(days=lead_days):
        return level.incoming
    return 0


def finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


async def refresh_cover(
    session: AsyncSession, product_ids: Iterable[int], zone: tzinfo, *, now: datetime | None = None
) -> int:
    """Days of cover and stockout dates of these products' forecasts, from their stock now."""
    now = now or utcnow()
    ids = sorted(set(product_ids))
    rows = []
    for condition in id_filters(DemandForecast.product_id, ids):
        rows += (await session.execute(
            select(DemandForecast.product_id, DemandForecast.warehouse_id, DemandForecast.daily_demand,
                   StockLevel.on_hand - StockLevel.reserved, StockLevel.incoming, StockLevel.incoming_eta,
                   ReplenishmentPolicy.lead_time_days)
            .outerjoin(StockLevel, and_(StockLevel.product_id == DemandForecast.product_id,
                                        StockLevel.warehouse_id == DemandForecast.warehouse_id))
            .outerjoin(ReplenishmentPolicy, and_(ReplenishmentPolicy.product_id == DemandForecast.product_id,
                                                 ReplenishmentPolicy.warehouse_id == DemandForecast.warehouse_id))
            .where(condition)
            .order_by(DemandForecast.product_id, DemandForecast.warehouse_id)  # one lock order for all
        )).all()
    if not rows:
        return 0
    today = shop_today(zone, now)
    available = np.array([row[3] or 0 for row in rows], dtype=float)
    arriving = np.array([
        arriving_within(Level(0, row[4] or 0, row[5]), row[6] if row[6] is not None else 0.0, now) for row in rows
    ], dtype=float)
    cover = days_of_cover(available, arriving, np.array([row[2] for row in rows], dtype=float))
    dates = stockout_dates(today, cover)
    await session.execute(
        update(DemandForecast),
        [{"product_id": row[0], "warehouse_id": row[1], "days_of_cover": finite_or_none(cover[i]), "stockout_date": dates[i]}
         for i, row in enumerate(rows)],
    )
    return len(rows)


@dataclass(frozen=True, slots=True)
class ProductCover:
    """A product over all its warehouses: what the reorder prompt and /stock show."""

    product_id: int
    available: int
    reorder_point: int
    daily_demand: float
    days_of_cover: float | None  # None: no demand
    stockout_date: date | None
    lead_time_days: float  # learned where measured, else the catalog's


async def product_cover(
    session: AsyncSession, product_ids: Iterable[int] | None, zone: tzinfo, *, now: datetime | None = None
) -> dict[int, ProductCover]:
    """Cover of whole products that have a forecast: (available + what arrives within the lead
    time) over the forecast daily demand, all warehouses together."""
    now = now or utcnow()
    rows = []
    incoming: dict[int, list[Level]] = defaultdict(list)
    for chunk in id_chunks(product_ids):
        rows += (await session.execute(
            select(Product.id, Product.on_hand_total - Product.reserved_total, Product.reorder_point,
                   Product.lead_time_days, func.sum(DemandForecast.daily_demand),
                   func.max(ReplenishmentPolicy.lead_time_days))
            .join(DemandForecast, DemandForecast.product_id == Product.id)
            .outerjoin(ReplenishmentPolicy, and_(ReplenishmentPolicy.product_id == DemandForecast.product_id,
                                                 ReplenishmentPolicy.warehouse_id == DemandForecast.warehouse_id))
            .where(within(Product.id, chunk))
            .group_by(Product.id, Product.on_hand_total, Product.reserved_total, Product.reorder_point,
                      Product.lead_time_days)
        )).all()
        for p, qty, eta in await session.execute(
            select(StockLevel.product_id, StockLevel.incoming, StockLevel.incoming_eta)
            .where(within(StockLevel.product_id, chunk), StockLevel.incoming > 0)
        ):
            incoming[p].append(Level(0, qty, eta))
    if not rows:
        return {}
    today = shop_today(zone, now)
    lead = np.array([float(row[5]) if row[5] is not None else float(row[3]) for row in rows])
    arriving = np.array([
        sum(arriving_within(level, lead[i], now) for level in incoming.get(row[0], ())) for i, row in enumerate(rows)
    ], dtype=float)
    demand = np.array([float(row[4] or 0.0) for row in rows])
    cover = days_of_cover(np.array([row[1] for row in rows], dtype=float), arriving, demand)
    dates = stockout_dates(today, cover)
    return {
        row[0]: ProductCover(row[0], int(row[1]), row[2], float(demand[i]), finite_or_none(cover[i]), dates[i], float(lead[i]))
        for i, row in enumerate(rows)
    }
