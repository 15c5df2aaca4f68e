"""The data of a report: a period read from the database into dense arrays, and the report math
run over them (`bot.reports.analysis`). Also the period's bounds, shared by /report and
`stockbot report`, and the funnel and control-group figures the report is sent with.

The history is read in chunks of products into dense series x days arrays (`analysis.series_stats`
reduces each chunk), so memory stays bounded however large the catalog. A day without a history
row keeps the stock of the last day before it that has one (the bot records a day when stock
changes); its sales are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from sqlalchemy import and_, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import DemandForecast, Product, SalesDay, StockLevel, Warehouse, utcnow
from bot.recovery import comparison, funnel
from bot.recovery.comparison import Comparison
from bot.recovery.funnel import FunnelReport
from bot.reports import analysis
from bot.settings import Settings

DEFAULT_DAYS = 30
MAX_DAYS = 365
CHUNK_PRODUCTS = 5_000


def parse_days(text: str | None) -> int | None:
    """DAYS of `/report [DAYS]`: 1..365, default 30; None when it is not that."""
    text = (text or "").strip()
    if not text:
        return DEFAULT_DAYS
    if not text.isdecimal() or len(text) > 3:
        return None
    days = int(text)
    return days if 1 <= days <= MAX_DAYS else None


@dataclass(frozen=True, slots=True)
class ReportData:
    """A period's report with what the charts and the CSV need to name things."""

    first: date  # first day of the period (shop days)
    days: int
    skus: Sequence[str]  # per product
    names: Sequence[str]
    warehouses: Sequence[str]  # per series: the warehouse code
    several_warehouses: bool
    prices: np.ndarray  # per product, integer cents
    stock_now: np.ndarray  # per series
    last_sale_age: np.ndarray  # per series, inf: never sold
    report: analysis.Report
    rules: analysis.Rules

    @property
    def last(self) -> date:
        return self.first + timedelta(days=self.days - 1)

    @property
    def empty(self) -> bool:
        return len(self.warehouses) == 0


def rules_of(settings: Settings) -> analysis.Rules:
    return analysis.Rules(
        a_share=settings.ABC_A_SHARE, b_share=settings.ABC_B_SHARE, slow_days=settings.SLOW_MOVER_DAYS,
        slow_cover_days=float(settings.SLOW_MOVER_COVER_DAYS),
    )


def carry_forward(on_hand: np.ndarray) -> np.ndarray:
    """Fill each unknown day with the last known stock before it (NaN before the first)."""
    known = ~np.isnan(on_hand)
    where = np.where(known, np.arange(on_hand.shape[1]), 0)
    np.maximum.accumulate(where, axis=1, out=where)
    filled = np.take_along_axis(on_hand, where, axis=1)
    seen = np.maximum.accumulate(known, axis=1)
    return np.where(seen, filled, np.nan).astype(on_hand.dtype, copy=False)


async def load(session: AsyncSession, *, days: int, until: date, rules: analysis.Rules,
               chunk_products: int = CHUNK_PRODUCTS) -> ReportData:
    """The `days` shop days before `until` (not included)."""
    first = until - timedelta(days=days)
    in_period = and_(SalesDay.day >= first, SalesDay.day < until)
    keys = union(
        select(StockLevel.product_id, StockLevel.warehouse_id),
        select(SalesDay.product_id, SalesDay.warehouse_id).where(in_period),
        select(DemandForecast.product_id, DemandForecast.warehouse_id),
    ).subquery()
    pairs = np.array((await session.execute(select(keys).order_by(*keys.c))).all(), dtype=np.int64).reshape(-1, 2)
    product_ids = np.unique(pairs[:, 0])
    catalogue = {
        pid: (sku, name, price) for pid, sku, name, price in await session.execute(
            select(Product.id, Product.sku, Product.name, Product.price_cents).where(
                Product.id.in_(select(keys.c.product_id)))
        )
    }
    codes = dict((await session.execute(select(Warehouse.id, Warehouse.code))).all())
    index = {(int(p), int(w)): i for i, (p, w) in enumerate(pairs)}
    n = len(pairs)
    product = np.searchsorted(product_ids, pairs[:, 0])
    stock_now = np.zeros(n)
    for pid, wid, on_hand in await session.execute(
        select(StockLevel.product_id, StockLevel.warehouse_id, StockLevel.on_hand)
    ):
        stock_now[index[(pid, wid)]] = on_hand
    forecast = np.full(n, np.nan)
    forecast_cover = np.full(n, np.nan)
    for pid, wid, demand, cover in await session.execute(
        select(DemandForecast.product_id, DemandForecast.warehouse_id, DemandForecast.daily_demand,
               DemandForecast.days_of_cover)
    ):
        i = index[(pid, wid)]
        forecast[i] = demand
        forecast_cover[i] = np.nan if cover is None else cover
    last_sale_age = np.full(n, np.inf)
    for pid, wid, last in await session.execute(
        select(SalesDay.product_id, SalesDay.warehouse_id, func.max(SalesDay.day))
        .where(SalesDay.sold > 0, SalesDay.day < until).group_by(SalesDay.product_id, SalesDay.warehouse_id)
    ):
        if (pid, wid) in index:
            last_sale_age[index[(pid, wid)]] = (until - last).days - 1  # 0: sold on the last day
    oldest = await session.scalar(select(func.min(SalesDay.day)).where(SalesDay.day < until))
    chunks = []
    for start in range(0, len(product_ids), chunk_products):
        ids = product_ids[start : start + chunk_products]
        lo = int(np.searchsorted(pairs[:, 0], ids[0], side="left"))
        hi = int(np.searchsorted(pairs[:, 0], ids[-1], side="right"))
        sold = np.zeros((hi - lo, days), dtype=np.int32)
        on_hand = np.full((hi - lo, days), np.nan, dtype=np.float32)
        rows = (await session.execute(
            select(SalesDay.product_id, SalesDay.warehouse_id, SalesDay.day, SalesDay.sold, SalesDay.on_hand)
            .where(in_period, SalesDay.product_id >= int(ids[0]), SalesDay.product_id <= int(ids[-1]))
        )).all()
        if rows:
            series = np.fromiter((index[(r[0], r[1])] - lo for r in rows), dtype=np.int64, count=len(rows))
            day = np.fromiter(((r[2] - first).days for r in rows), dtype=np.int64, count=len(rows))
            sold[series, day] = np.fromiter((r[3] for r in rows), dtype=np.int32, count=len(rows))
            on_hand[series, day] = np.fromiter((np.nan if r[4] is None else r[4] for r in rows), dtype=np.float32,
                                               count=len(rows))
        chunks.append(analysis.series_stats(sold, carry_forward(on_hand)))
    return assemble(
        first=first, days=days, skus=[catalogue[int(p)][0] for p in product_ids],
        names=[catalogue[int(p)][1] for p in product_ids],
        prices=np.array([catalogue[int(p)][2] for p in product_ids], dtype=np.int64),
        warehouses=[codes[int(w)] for w in pairs[:, 1]], product=product, stats=analysis.concat(chunks),
        forecast=forecast, forecast_cover=forecast_cover, stock_now=stock_now, last_sale_age=last_sale_age,
        rules=rules, history_days=(until - oldest).days if oldest else 0,
    )


def assemble(*, first: date, days: int, skus: Sequence[str], names: Sequence[str], prices: np.ndarray,
             warehouses: Sequence[str], product: np.ndarray, stats: analysis.SeriesStats, forecast: np.ndarray,
             forecast_cover: np.ndarray, stock_now: np.ndarray, last_sale_age: np.ndarray,
             rules: analysis.Rules, history_days: float = np.inf) -> ReportData:
    """The report of loaded (or generated) arrays: products, then one entry per series."""
    report = analysis.build(
        stats, product=product, price_cents=prices, forecast=forecast, forecast_cover=forecast_cover,
        stock_now=stock_now, last_sale_age=last_sale_age, rules=rules, history_days=history_days,
    )
    return ReportData(
        first=first, days=days, skus=skus, names=names, warehouses=warehouses,
        several_warehouses=len(set(warehouses)) > 1, prices=prices, stock_now=stock_now,
        last_sale_age=last_sale_age, report=report, rules=rules,
    )


async def load_funnel(session: AsyncSession, settings: Settings, days: int) -> FunnelReport:
    """The recovery funnel of the last `days` days, drawn with the report."""
    now = utcnow()
    return await funnel.build_report(session, since=now - timedelta(days=days), until=now,
                                     attribution_days=settings.ATTRIBUTION_DAYS)


async def load_comparison(session: AsyncSession, settings: Settings, days: int) -> Comparison:
    """Offered against held out over the last `days` days, for the recovery CSV."""
    now = utcnow()
    return await comparison.build(session, since=now - timedelta(days=days), until=now,
                                  attribution_days=settings.ATTRIBUTION_DAYS, percent=settings.HOLDOUT_PERCENT)

