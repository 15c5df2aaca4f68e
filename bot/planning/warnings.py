"""The early warning: a reorder prompt before the reorder point, when the forecast says the
product runs out before a new order could arrive (days of cover below its lead time).

One prompt per episode: the `CoverWarning` row is the episode and its `low_cover` stock event is
the prompt's cause (so the prompt is keyed like every other one). The episode ends when cover is
back at or above the lead time; a later fall starts a new one. At or below the reorder point the
low-stock prompt speaks instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert, id_filters
from bot.delivery.templates import Templates
from bot.models import CoverWarning, StockEvent, StockEventKind, utcnow
from bot.planning.cover import ProductCover, product_cover, refresh_cover
from bot.planning.prompts import on_low_stock
from bot.settings import Settings


def runs_out_first(cover: ProductCover) -> bool:
    """Cover below the lead time, while still above the reorder point."""
    return (
        cover.days_of_cover is not None
        and cover.days_of_cover < cover.lead_time_days
        and cover.available > cover.reorder_point
    )


async def check_cover(
    session: AsyncSession, settings: Settings, templates: Templates, product_ids: Iterable[int]
) -> int:
    """Open an episode (and its prompt) for each product newly short of cover, end those that
    are not any more; returns how many episodes were opened."""
    ids = sorted(set(product_ids))
    covers = await product_cover(session, ids, settings.zone)
    short = {p for p, cover in covers.items() if runs_out_first(cover)}
    open_now: set[int] = set()
    for condition in id_filters(CoverWarning.product_id, ids):
        open_now.update(await session.scalars(select(CoverWarning.product_id).where(condition)))
    ended = sorted(open_now - short)
    for condition in id_filters(CoverWarning.product_id, ended):
        await session.execute(delete(CoverWarning).where(condition))
    opened = 0
    for product_id in sorted(short - open_now):
        # Two processes may see the same fall: the insert decides which one warns.
        claimed = await session.execute(
            dialect_insert(session, CoverWarning.__table__)
            .values(product_id=product_id, event_id=0, started_at=utcnow())
            .on_conflict_do_nothing(index_elements=["product_id"])
            .returning(CoverWarning.product_id)
        )
        if claimed.first() is None:
            continue
        cover = covers[product_id]
        # Handled here, in the transaction that decided it, so it is marked processed at once.
        event = StockEvent(
            product_id=product_id, kind=StockEventKind.LOW_COVER.value, available_before=cover.available,
            available_after=cover.available, reorder_point=cover.reorder_point, attempts=0, processed_at=utcnow(),
        )
        session.add(event)
        await session.flush()
        await session.execute(update(CoverWarning).where(CoverWarning.product_id == product_id).values(event_id=event.id))
        await on_low_stock(session, settings, templates, [event])
        opened += 1
    return opened


async def stock_changed(
    session: AsyncSession, settings: Settings, templates: Templates, product_ids: Iterable[int]
) -> int:
    """After stock moved: new cover for these products, and their warnings. Demand stays."""
    ids = sorted(set(product_ids))
    if not ids:
        return 0
    await refresh_cover(session, ids, settings.zone)
    return await check_cover(session, settings, templates, ids)
