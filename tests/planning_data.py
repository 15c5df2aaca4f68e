"""Sales history for planning tests, written as the `history` import leaves it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.inventory.stock import warehouse_ids
from bot.models import SalesDay, utcnow


def yesterday() -> date:
    return utcnow().date() - timedelta(days=1)  # the tests' shop runs on UTC


async def add_history(
    session: AsyncSession, product_id: int, warehouse: str, days: Sequence[tuple[int, int | None]]
) -> None:
    """`days` are (sold, on_hand at the end), oldest first, ending yesterday."""
    warehouse_id = (await warehouse_ids(session, [warehouse], create=True))[warehouse]
    first = yesterday() - timedelta(days=len(days) - 1)
    session.add_all(
        SalesDay(product_id=product_id, warehouse_id=warehouse_id, day=first + timedelta(days=n), sold=sold,
                 on_hand=on_hand, source="import")
        for n, (sold, on_hand) in enumerate(days)
    )
    await session.flush()
