"""Customers waiting for a product to come back."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert
from bot.models import Product, WaitlistEntry, WaitStatus, utcnow


async def join_waitlist(
    session: AsyncSession, customer_id: int, product_id: int, *, days: int
) -> tuple[WaitlistEntry, bool]:
    """Put the customer on the product's waitlist; (entry, True) when they were not waiting yet.

    One row per customer and product (a unique key), reused when they join again, so a double
    press or two racing requests cannot make two places in the queue.
    """
    now = utcnow()
    await session.execute(
        dialect_insert(session, WaitlistEntry.__table__)
        .values(product_id=product_id, customer_id=customer_id, status=WaitStatus.WAITING.value,
                joined_at=now, expires_at=now + timedelta(days=days))
        .on_conflict_do_nothing(index_elements=["product_id", "customer_id"])
    )
    entry = await session.scalar(
        select(WaitlistEntry)
        .where(WaitlistEntry.product_id == product_id, WaitlistEntry.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert entry is not None
    if entry.status == WaitStatus.WAITING.value:
        fresh = entry.joined_at >= now
        entry.expires_at = now + timedelta(days=days)
        return entry, fresh
    # Joining again goes to the back of the queue: fairness is first come, first served.
    entry.status, entry.joined_at = WaitStatus.WAITING.value, now
    entry.expires_at, entry.notified_at, entry.restock_id = now + timedelta(days=days), None, None
    return entry, True


async def leave_waitlist(session: AsyncSession, customer_id: int, entry_id: int) -> WaitlistEntry | None:
    """Leave one entry; None when it is not this customer's or not waiting (forged or stale)."""
    entry = await session.get(WaitlistEntry, entry_id, with_for_update=True)
    if entry is None or entry.customer_id != customer_id or entry.status != WaitStatus.WAITING.value:
        return None
    entry.status = WaitStatus.LEFT.value
    return entry


async def customer_waitlist(session: AsyncSession, customer_id: int) -> list[tuple[WaitlistEntry, Product]]:
    rows = await session.execute(
        select(WaitlistEntry, Product)
        .join(Product, Product.id == WaitlistEntry.product_id)
        .where(WaitlistEntry.customer_id == customer_id, WaitlistEntry.status == WaitStatus.WAITING.value)
        .order_by(WaitlistEntry.joined_at)
    )
    return [(entry, product) for entry, product in rows.all()]
