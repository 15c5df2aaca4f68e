"""Recovery's scheduled jobs: (id, interval in seconds, async job(services)).

Each is safe to run twice or in two processes at once: rows are taken with
`SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite serialises writers anyway) and every
message has an outbox dedup key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.recovery import coupons, funnel, offers, restock, sales
from bot.services import Services


async def finish_plans(services: Services) -> int:
    """Large stockouts: offers beyond the first batch, in further short transactions."""
    return await offers.continue_plans(services)


async def restock_waves(services: Services) -> int:
    return await restock.run_due_waves(services)


async def release_holds(services: Services) -> int:
    return await restock.release_expired_holds(services)


async def expire_waitlist(services: Services) -> int:
    return await restock.expire_waitlist(services)


async def expire_coupons(services: Services) -> int:
    async with services.db.transaction() as session:
        return await coupons.mark_expired(session)


async def offers_sent(services: Services) -> int:
    async with services.db.transaction() as session:
        return await offers.mark_sent_offers(session)


async def sales_digest(services: Services) -> int:
    async with services.db.transaction() as session:
        return await sales.send_digest(session, services)


async def attribute_purchases(services: Services) -> int:
    return await funnel.attribute_recent(services)


RECOVERY_JOBS: list[tuple[str, float, Callable[[Services], Awaitable[object]]]] = [
    ("recovery-plans", 1, finish_plans),
    ("recovery-waves", 30, restock_waves),
    ("recovery-holds", 60, release_holds),
    ("recovery-waitlist-expiry", 3600, expire_waitlist),
    ("recovery-coupon-expiry", 3600, expire_coupons),
    ("recovery-offers-sent", 60, offers_sent),
    ("recovery-sales-digest", 300, sales_digest),
    ("recovery-attribution", 1800, attribute_purchases),
]
