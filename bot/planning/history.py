"""The bot keeps the sales history itself: one row per product, warehouse and shop day.

From the stock ledger: what a day sold is the sum of its decreases that were sales (not counts,
imports, transfers or receipts: `taken_by_customers`, the one rule for demand, which the reorder
prompt reads too), and what it ended with is today's on-hand minus every change since. A job
records each finished shop day (in TIMEZONE) once it is over, catching up on days missed while
the bot was down. Rows are upserts marked 'recorded' and never replace a row the
`history` import wrote (`write_imported_days`, which replaces any).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import shop_today
from bot.db import dialect_insert
from bot.models import DEMAND_REASONS, MovementKind, SalesDay, StockLevel, StockMovement
from bot.planning.state import RECORDED_THROUGH, get_state, history_changed, set_state
from bot.shop.orders import UpsertCount

MAX_CATCH_UP_DAYS = 366
_ROWS_PER_STATEMENT = 5_000


def taken_by_customers() -> ColumnElement[bool]:
    """Ledger rows that are demand. A count is known by its kind, since a caller may give it any
    reason; a delta by its reason (`DEMAND_REASONS`, an allow-list), the only place a transfer or
    receipt says what it is. Counts and stock imports set a level (they show shrinkage or a
    correction, not demand); transfers move units between warehouses."""
    return and_(
        StockMovement.delta < 0,
        StockMovement.kind != MovementKind.COUNT.value,
        StockMovement.reason.in_(sorted(reason.value for reason in DEMAND_REASONS)),
    )


async def units_sold(
    session: AsyncSession, product_id: int, days: int, zone: tzinfo, now: datetime | None = None
) -> int:
    """What customers took of a product, all warehouses, in its last `days` shop days (today
    included). The daily history where it has the day, since an imported day exists nowhere else;
    the ledger after each warehouse's last such day (today, and days not recorded yet)."""
    today = shop_today(zone, now)
    first = today - timedelta(days=days - 1)
    total = 0
    recorded_until: dict[int, datetime] = {}  # warehouse: where its history ends
    for warehouse_id, sold, last in await session.execute(
        select(SalesDay.warehouse_id, func.sum(SalesDay.sold), func.max(SalesDay.day))
        .where(SalesDay.product_id == product_id, SalesDay.day >= first, SalesDay.day <= today)
        .group_by(SalesDay.warehouse_id)
    ):
        total += int(sold or 0)
        recorded_until[warehouse_id] = day_bounds(last, zone)[1]
    after = [
        and_(StockMovement.warehouse_id == warehouse_id, StockMovement.created_at >= end)
        for warehouse_id, end in recorded_until.items()
    ]
    after.append(and_(StockMovement.warehouse_id.not_in(list(recorded_until)),
                      StockMovement.created_at >= day_bounds(first, zone)[0]))
    ledger = await session.scalar(
        select(func.coalesce(func.sum(-StockMovement.delta), 0))
        .where(StockMovement.product_id == product_id, taken_by_customers(), or_(*after))
    )
    return total + int(ledger or 0)


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The shop day `day` as an aware UTC interval [start, end)."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


async def days_to_record(session: AsyncSession, zone: tzinfo, now: datetime | None = None) -> list[date]:
    """Finished shop days not recorded yet, through yesterday."""
    yesterday = shop_today(zone, now) - timedelta(days=1)
    marker = await get_state(session, RECORDED_THROUGH)
    if marker:
        first = date.fromisoformat(marker) + timedelta(days=1)
    else:
        # The first run: from the end of the imported history (an import may cover only some
        # products, and imported rows are never replaced, so yesterday is always recorded).
        imported = await session.scalar(select(func.max(SalesDay.day)))
        first = min(imported + timedelta(days=1), yesterday) if imported else yesterday
    first = max(first, yesterday - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + timedelta(days=n) for n in range((yesterday - first).days + 1)]


async def record_days(session: AsyncSession, zone: tzinfo, now: datetime | None = None) -> list[date]:
    """Record every finished shop day not recorded yet; returns the days written. Safe twice."""
    days = await days_to_record(session, zone, now)
    if not days:
        return []
    on_hand = {
        (row.product_id, row.warehouse_id): row.on_hand
        for row in await session.execute(select(StockLevel.product_id, StockLevel.warehouse_id, StockLevel.on_hand))
    }
    # Walk back from now: each day's end is today's on-hand minus every change after it.
    later = await _net_changes_since(session, day_bounds(days[-1], zone)[1])
    for day in reversed(days):
        start, end = day_bounds(day, zone)
        sold = await _sales_between(session, start, end)
        rows = [
            {"product_id": p, "warehouse_id": w, "day": day, "sold": sold.get((p, w), 0),
             "on_hand": max(level - later.get((p, w), 0), 0), "source": "recorded"}
            for (p, w), level in on_hand.items()
        ]
        await _upsert(session, rows)
        for key, delta in (await _net_changes_between(session, start, end)).items():
            later[key] = later.get(key, 0) + delta
    await set_state(session, RECORDED_THROUGH, days[-1].isoformat())
    return days


async def _net_changes_since(session: AsyncSession, since: datetime) -> dict[tuple[int, int], int]:
    return await _net_changes_between(session, since, None)


async def _net_changes_between(
    session: AsyncSession, start: datetime, end: datetime | None
) -> dict[tuple[int, int], int]:
    query = (
        select(StockMovement.product_id, StockMovement.warehouse_id, func.sum(StockMovement.delta))
        .where(StockMovement.created_at >= start)
        .group_by(StockMovement.product_id, StockMovement.warehouse_id)
    )
    if end is not None:
        query = query.where(StockMovement.created_at < end)
    return {(p, w): int(total or 0) for p, w, total in await session.execute(query)}


async def _sales_between(session: AsyncSession, start: datetime, end: datetime) -> dict[tuple[int, int], int]:
    rows = await session.execute(
        select(StockMovement.product_id, StockMovement.warehouse_id, func.sum(-StockMovement.delta))
        .where(
            StockMovement.created_at >= start, StockMovement.created_at < end, taken_by_customers(),
        )
        .group_by(StockMovement.product_id, StockMovement.warehouse_id)
    )
    found: dict[tuple[int, int], int] = defaultdict(int)
    for p, w, total in rows:
        found[(p, w)] += int(total or 0)
    return found


async def _upsert(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    table = SalesDay.__table__
    insert = dialect_insert(session, table)
    statement = insert.on_conflict_do_update(
        index_elements=["product_id", "warehouse_id", "day"],
        set_={"sold": insert.excluded.sold, "on_hand": insert.excluded.on_hand},
        where=table.c.source == "recorded",  # an imported day is the shop's own word: keep it
    )
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        await session.execute(statement, rows[start : start + _ROWS_PER_STATEMENT])


async def write_imported_days(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> UpsertCount:
    """Upsert the days a `history` import gives (`product_id, warehouse_id, day, sold, on_hand`
    each), over recorded ones too: the shop's own word wins. Counts each as created, updated or
    unchanged, and marks the products for a new forecast in the running bot, whichever process."""
    if not rows:
        return UpsertCount()
    product_ids = {row["product_id"] for row in rows}
    before = {
        (product_id, warehouse_id, day): (sold, on_hand)
        for product_id, warehouse_id, day, sold, on_hand in await session.execute(
            select(SalesDay.product_id, SalesDay.warehouse_id, SalesDay.day, SalesDay.sold, SalesDay.on_hand).where(
                SalesDay.product_id.in_(product_ids),
                SalesDay.day.between(min(row["day"] for row in rows), max(row["day"] for row in rows)),
            )
        )
    }
    counts = UpsertCount()
    for row in rows:
        old = before.get((row["product_id"], row["warehouse_id"], row["day"]))
        if old is None:
            counts.created += 1
        elif old == (row["sold"], row["on_hand"]):
            counts.unchanged += 1
        else:
            counts.updated += 1
    statement = dialect_insert(session, SalesDay.__table__)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["product_id", "warehouse_id", "day"],
            set_={"sold": statement.excluded.sold, "on_hand": statement.excluded.on_hand, "source": "import"},
        ),
        [{**row, "source": "import"} for row in rows],
    )
    await history_changed(session, product_ids)
    return counts
