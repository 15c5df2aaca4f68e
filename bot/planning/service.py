"""The forecast, wired to the database: load the history as matrices, forecast, store.

`refresh_forecasts` is the whole run (nightly, and for the products a history import touched):
one streamed query fills the products x days matrices, the numpy engine forecasts and sets each
series' policy, and the results are upserted in bulk, then the early warnings are checked.
`refresh_cover` (bot/planning/cover.py) is the cheap path after a stock change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import chain

import numpy as np
from sqlalchemy import ColumnElement, Integer, and_, case, cast, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, chunked, dialect_insert, id_filters
from bot.delivery.templates import Templates
from bot.models import (
    DemandForecast,
    Product,
    ReplenishmentPolicy,
    SalesDay,
    StockLevel,
    WaitlistEntry,
    utcnow,
)
from bot.planning.abc import abc_classes
from bot.planning.cover import Level, arriving_within, finite_or_none
from bot.planning.forecast import History, forecast
from bot.clock import shop_today
from bot.planning.leadtimes import supplier_samples
from bot.planning.replenishment import days_of_cover, policy, stockout_dates
from bot.planning.warnings import check_cover
from bot.settings import Settings
from bot.waiting import off_the_loop

WINDOW_DAYS = 182  # history the forecast reads: half a year shows trend and weekday pattern
_PARTITION = 50_000  # history rows per fetch while streaming
_ROWS_PER_WRITE = 1_000  # forecast and policy rows built and written at a time, a transaction each
_KEY_SHIFT = 21  # (product, warehouse) packed in one int64: room for 2M warehouses


def service_levels(settings: Settings) -> dict[str, float]:
    return {"A": settings.SERVICE_LEVEL_A, "B": settings.SERVICE_LEVEL_B, "C": settings.SERVICE_LEVEL_C}


def _pack(products: np.ndarray, warehouses: np.ndarray) -> np.ndarray:
    return (products.astype(np.int64) << _KEY_SHIFT) | warehouses.astype(np.int64)


@dataclass(frozen=True)
class Loaded:
    """The history matrices and which (product, warehouse) each row is."""

    product_ids: np.ndarray  # (S,)
    warehouse_ids: np.ndarray  # (S,)
    history: History


async def load_history(
    session: AsyncSession, end: date, *, product_ids: Sequence[int] | None = None, days: int = WINDOW_DAYS
) -> Loaded:
    """Every series (a stock level, or a product sold in a warehouse within the window) with its
    daily sales and in-stock flags up to `end`, from one streamed query: rows go straight into
    numpy, never through ORM objects.

    A day is in stock unless it ended with nothing on hand (its sales do not show the demand) or
    comes before the series' first row (before its life).
    """
    start = end - timedelta(days=days - 1)
    pairs: set[tuple[int, int]] = set()
    for condition in id_filters(StockLevel.product_id, product_ids):
        pairs.update(await session.execute(select(StockLevel.product_id, StockLevel.warehouse_id).where(condition)))
    for condition in id_filters(SalesDay.product_id, product_ids):
        pairs.update(await session.execute(
            select(SalesDay.product_id, SalesDay.warehouse_id).where(condition, SalesDay.day >= start).distinct()
        ))
    ordered = sorted(pairs)
    pids = np.array([p for p, _ in ordered], dtype=np.int64)
    wids = np.array([w for _, w in ordered], dtype=np.int64)
    keys = _pack(pids, wids)  # sorted, as the pairs are
    size = len(ordered)
    sold = np.zeros((size, days), dtype=np.float64)
    seen = np.zeros((size, days), dtype=bool)
    out = np.zeros((size, days), dtype=bool)
    for condition in id_filters(SalesDay.product_id, product_ids):
        # Integers only (the day as its column, a stockout as 0/1): no date or Row-to-object work
        # per row, and each fetched block becomes one flat int64 array.
        result = await session.stream(
            select(SalesDay.product_id, SalesDay.warehouse_id, _day_column(session, start), SalesDay.sold,
                   case((SalesDay.on_hand == 0, 1), else_=0))
            .where(condition, SalesDay.day >= start, SalesDay.day <= end)
        )
        async for part in result.partitions(_PARTITION):
            block = np.fromiter(chain.from_iterable(part), dtype=np.int64, count=5 * len(part)).reshape(-1, 5)
            rows = np.searchsorted(keys, _pack(block[:, 0], block[:, 1]))
            cols = block[:, 2]
            sold[rows, cols] = block[:, 3]
            seen[rows, cols] = True
            out[rows, cols] = block[:, 4] == 1
    has_any = seen.any(axis=1)
    first_day = np.where(has_any, seen.argmax(axis=1), days)
    alive = np.arange(days)[None, :] >= first_day[:, None]
    categories = await _categories(session, np.unique(pids).tolist())
    codes = np.unique([categories.get(int(p), "") for p in pids], return_inverse=True)[1] if size else np.zeros(0, int)
    history = History(
        sold=sold, in_stock=alive & ~out, first_day=first_day.astype(np.int64),
        category=np.asarray(codes, dtype=np.int64), end=end,
    )
    return Loaded(pids, wids, history)


def _day_column(session: AsyncSession, start: date) -> ColumnElement[int]:
    """The day as days since `start`, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(SalesDay.day - start, Integer)
    return cast(func.julianday(SalesDay.day) - func.julianday(start.isoformat()), Integer)


async def _categories(session: AsyncSession, product_ids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for condition in id_filters(Product.id, product_ids):
        found.update(dict((await session.execute(select(Product.id, Product.category).where(condition))).all()))
    return found


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the policy needs of a product besides its history."""

    price_cents: int
    lead_time_days: int
    supplier: str | None
    reorder_point: int


async def _facts(session: AsyncSession, product_ids: list[int]) -> dict[int, _Facts]:
    found: dict[int, _Facts] = {}
    for condition in id_filters(Product.id, product_ids):
        rows = await session.execute(
            select(Product.id, Product.price_cents, Product.lead_time_days, Product.supplier, Product.reorder_point)
            .where(condition)
        )
        found.update({row.id: _Facts(row.price_cents, row.lead_time_days, row.supplier, row.reorder_point) for row in rows})
    return found


async def abc_by_product(session: AsyncSession, since: date) -> dict[int, str]:
    """ABC class of every product, by its revenue over the history since `since`."""
    rows = (await session.execute(
        select(SalesDay.product_id, func.sum(SalesDay.sold) * Product.price_cents)
        .join(Product, Product.id == SalesDay.product_id)
        .where(SalesDay.day >= since)
        .group_by(SalesDay.product_id, Product.price_cents)
    )).all()
    if not rows:
        return {}
    classes = abc_classes(np.array([float(revenue or 0) for _, revenue in rows]))
    return {product_id: str(cls) for (product_id, _), cls in zip(rows, classes, strict=True)}


async def waitlist_demand(session: AsyncSession, product_ids: Sequence[int] | None, days: int) -> dict[int, float]:
    """Sign-ups per day over the last `days`: demand the shelf could not serve."""
    found: dict[int, float] = {}
    since = utcnow() - timedelta(days=days)
    for condition in id_filters(WaitlistEntry.product_id, product_ids):
        rows = await session.execute(
            select(WaitlistEntry.product_id, func.count())
            .where(condition, WaitlistEntry.joined_at >= since)
            .group_by(WaitlistEntry.product_id)
        )
        found.update({product_id: count / days for product_id, count in rows})
    return found


async def _levels(session: AsyncSession, product_ids: Sequence[int] | None) -> dict[tuple[int, int], Level]:
    found: dict[tuple[int, int], Level] = {}
    for condition in id_filters(StockLevel.product_id, product_ids):
        rows = await session.execute(
            select(StockLevel.product_id, StockLevel.warehouse_id, StockLevel.on_hand - StockLevel.reserved,
                   StockLevel.incoming, StockLevel.incoming_eta).where(condition)
        )
        found.update({(p, w): Level(int(a), int(i), eta) for p, w, a, i, eta in rows})
    return found


async def refresh_forecasts(
    db: Database, settings: Settings, templates: Templates, product_ids: Sequence[int] | None = None
) -> int:
    """Forecast every series (or those of `product_ids`), store forecasts and policies, and raise
    early warnings (which is what the templates are for); returns the number of series. Reads in
    one session, computes off the event loop, writes in one transaction."""
    now = utcnow()
    today = shop_today(settings.zone, now)
    end = today - timedelta(days=1)  # the last finished shop day
    async with db.read_session() as session:
        loaded = await load_history(session, end, product_ids=product_ids)
        unique = np.unique(loaded.product_ids).tolist()
        facts = await _facts(session, unique)
        abc = await abc_by_product(session, end - timedelta(days=WINDOW_DAYS - 1))
        waiting = await waitlist_demand(session, product_ids, settings.DEMAND_DAYS)
        levels = await _levels(session, product_ids)
        suppliers = await supplier_samples(session, settings.zone, {f.supplier for f in facts.values()})
    if not len(loaded.product_ids):
        return 0
    pids, wids = loaded.product_ids, loaded.warehouse_ids
    series_of = defaultdict(int)
    for p in pids.tolist():
        series_of[p] += 1
    # The waitlist is per product: spread it over the warehouses the product is kept in.
    extra = np.array([waiting.get(p, 0.0) / series_of[p] for p in pids.tolist()])
    lead = np.array([suppliers.lead_time(facts[p].supplier, facts[p].lead_time_days) for p in pids.tolist()])
    classes = np.array([abc.get(p, "C") for p in pids.tolist()])
    levels_now = [levels.get(key) for key in zip(pids.tolist(), wids.tolist(), strict=True)]
    available = np.array([level.available if level else 0 for level in levels_now], dtype=float)
    arriving = np.array([arriving_within(level, d, now) for level, d in zip(levels_now, lead, strict=True)], dtype=float)

    def compute():  # type: ignore[no-untyped-def]
        fc = forecast(loaded.history, extra_daily=extra)
        return fc, policy(fc, lead, classes, service_levels=service_levels(settings)), days_of_cover(
            available, arriving, fc.daily_demand
        )

    fc, pol, cover = await off_the_loop(compute)
    dates = stockout_dates(today, cover)
    series = list(zip(pids.tolist(), wids.tolist(), strict=True))

    def forecast_rows(part: list[int]) -> list[dict[str, object]]:
        return [{"product_id": series[i][0], "warehouse_id": series[i][1], "daily_demand": float(fc.daily_demand[i]),
                 "demand_class": str(fc.demand_class[i]), "days_of_cover": finite_or_none(cover[i]),
                 "stockout_date": dates[i], "computed_at": now} for i in part]

    def policy_rows(part: list[int]) -> list[dict[str, object]]:
        return [{"product_id": series[i][0], "warehouse_id": series[i][1], "abc": str(classes[i]),
                 "lead_time_days": float(lead[i]), "safety_stock": float(pol.safety_stock[i]),
                 "reorder_point": float(pol.reorder_point[i]), "order_up_to": float(pol.order_up_to[i]),
                 "computed_at": now} for i in part]

    # Rows a part at a time: a dict per series for the 250,000 series of a 100k shop held ~250 MB.
    # And a transaction per part: on SQLite a write transaction holds the database's one write
    # lock, and the whole run in one held it while every API write waited (the soak's requests
    # stalled 1.3 s behind the first forecast of 9,000 series, issue 26). Each row is whole on
    # its own; a run cut short leaves the rest at the last forecast, which the next run redoes.
    for part in chunked(range(len(series)), _ROWS_PER_WRITE):
        async with db.transaction() as session:
            await _upsert(session, DemandForecast, forecast_rows(part), ["daily_demand", "demand_class",
                                                                         "days_of_cover", "stockout_date", "computed_at"])
            await _upsert(session, ReplenishmentPolicy, policy_rows(part), ["abc", "lead_time_days", "safety_stock",
                                                                            "reorder_point", "order_up_to", "computed_at"])
    async with db.transaction() as session:
        await check_cover(session, settings, templates, unique)
    return len(series)


async def _upsert(session: AsyncSession, model: type, rows: list[dict[str, object]], columns: list[str]) -> None:
    insert = dialect_insert(session, model.__table__)
    statement = insert.on_conflict_do_update(
        index_elements=["product_id", "warehouse_id"], set_={c: getattr(insert.excluded, c) for c in columns}
    )
    for chunk in chunked(rows):
        await session.execute(statement, chunk)


async def without_forecast(session: AsyncSession, product_ids: Iterable[int]) -> list[int]:
    """Those of these products with sales history that are kept in a warehouse they have no
    forecast for (an old product's new warehouse, a product whose history was imported since):
    suggestions join on the forecast, so they would be left out. A product that never sold would
    be forecast at zero demand, which changes no suggestion: it waits for the daily run, so a
    stock import of 100k new products does not set off 100k forecasts (issue 9)."""
    found: set[int] = set()
    for condition in id_filters(StockLevel.product_id, sorted(set(product_ids))):
        found.update(await session.scalars(
            select(StockLevel.product_id)
            .outerjoin(DemandForecast, and_(DemandForecast.product_id == StockLevel.product_id,
                                            DemandForecast.warehouse_id == StockLevel.warehouse_id))
            .where(condition, DemandForecast.product_id.is_(None),
                   exists().where(SalesDay.product_id == StockLevel.product_id))
            .distinct()
        ))
    return sorted(found)
