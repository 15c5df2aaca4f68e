"""Deliveries a shop platform made before: a retried one (same delivery id) changes nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert
from bot.models import WebhookDelivery, utcnow

DELIVERY_ID_LIMIT = 128
TOPIC_LIMIT = 64
# Shopify retries a delivery for 48 hours, WooCommerce's queue for less: a week covers both.
KEEP_DELIVERIES = timedelta(days=7)


async def first_delivery(session: AsyncSession, source: str, delivery_id: str, topic: str) -> bool:
    """Record the delivery in the caller's transaction; False when it was recorded before.

    The primary key decides, so two processes handed the same delivery at once apply it once:
    the second insert waits for the first transaction and then finds the row."""
    statement = (
        dialect_insert(session, WebhookDelivery.__table__)
        .values(source=source, delivery_id=delivery_id[:DELIVERY_ID_LIMIT], topic=topic[:TOPIC_LIMIT],
                received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["source", "delivery_id"])
        .returning(WebhookDelivery.__table__.c.delivery_id)
    )
    return (await session.execute(statement)).first() is not None


async def forget_old_deliveries(session: AsyncSession) -> int:
    """Delivery ids older than any platform still retries: the table stays small."""
    result = await session.execute(
        delete(WebhookDelivery).where(WebhookDelivery.received_at < utcnow() - KEEP_DELIVERIES)
    )
    return result.rowcount or 0
