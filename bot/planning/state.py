"""Small markers the planning jobs share across processes, and the history-changed hook.

Several bot processes and the CLI share one database, so "what has been done" lives in rows, not
in memory: the last shop day recorded, the day of the last full forecast, how far the stock ledger
has been read, and which products' history changed since their forecast.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import chunked, dialect_insert
from bot.models import DemandForecast, PlanningDirty, PlanningState, utcnow

RECORDED_THROUGH = "recorded_through"  # ISO date: the last shop day the recorder wrote
FORECAST_DAY = "forecast_day"  # ISO date: the shop day the last full forecast was made for
MOVEMENTS_SEEN = "movements_seen"  # stock_movements id: the ledger read for cover up to here
FORECAST_AT = "forecast_at"  # ISO time the last full forecast finished: what the plan is "as of"


async def get_state(session: AsyncSession, key: str) -> str | None:
    return await session.scalar(select(PlanningState.value).where(PlanningState.key == key))


async def set_state(session: AsyncSession, key: str, value: str) -> None:
    await session.execute(
        dialect_insert(session, PlanningState.__table__)
        .values(key=key, value=value, updated_at=utcnow())
        .on_conflict_do_update(index_elements=["key"], set_={"value": value, "updated_at": utcnow()})
    )


async def claim_state(session: AsyncSession, key: str, value: str) -> bool:
    """Set `key` to `value` unless it already is; True for the one caller that changed it.

    Two processes racing for the same day's work both try; the row lock lets one win.
    """
    await session.execute(
        dialect_insert(session, PlanningState.__table__)
        .values(key=key, value="", updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["key"])
    )
    changed = await session.execute(
        update(PlanningState)
        .where(PlanningState.key == key, PlanningState.value != value)
        .values(value=value, updated_at=utcnow())
        .returning(PlanningState.key)
    )
    return changed.first() is not None


async def history_changed(session: AsyncSession, product_ids: Iterable[int]) -> None:
    """Call in the transaction that changed sales history (the `history` import), with the
    products it touched: the running bot, whichever process it is, redoes their forecasts."""
    rows = [{"product_id": product_id, "marked_at": utcnow()} for product_id in sorted(set(product_ids))]
    for start in range(0, len(rows), 5_000):
        await session.execute(
            dialect_insert(session, PlanningDirty.__table__).on_conflict_do_nothing(index_elements=["product_id"]),
            rows[start : start + 5_000],
        )


async def dirty_products(session: AsyncSession, limit: int = 200_000) -> tuple[list[int], datetime | None]:
    """Products waiting for a new forecast, and the latest mark among them (for `clear_dirty`)."""
    rows = (await session.execute(
        select(PlanningDirty.product_id, PlanningDirty.marked_at).order_by(PlanningDirty.product_id).limit(limit)
    )).all()
    return [row.product_id for row in rows], max((row.marked_at for row in rows), default=None)


async def clear_dirty(session: AsyncSession, product_ids: list[int], seen: datetime) -> None:
    """Forget the marks a finished forecast covered; a product marked again since stays marked."""
    for chunk in chunked(product_ids):
        await session.execute(
            delete(PlanningDirty).where(PlanningDirty.product_id.in_(chunk), PlanningDirty.marked_at <= seen)
        )


async def forecast_as_of(session: AsyncSession) -> datetime | None:
    """When the forecast the plan rests on was made; None until the first one exists (then no
    plan is "nothing to buy", it is "not computed yet"). A database forecast before this marker
    existed answers with its newest forecast."""
    marked = await get_state(session, FORECAST_AT)
    if marked:
        return datetime.fromisoformat(marked)
    return await session.scalar(select(func.max(DemandForecast.computed_at)))
