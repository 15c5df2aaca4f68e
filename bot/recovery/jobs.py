"""Recovery's scheduled jobs: (id, interval in seconds, async job(services)).

These are entry points: each takes the `Services` bag the scheduler holds and hands the recovery
functions only the parts they use. A job that is one unit of work takes the session its wrapper
opened (`in_transaction`); one that works in several short transactions (plans, waves) opens its
own. Each is safe to run twice or in two processes at once: rows are taken with `SELECT ... FOR
UPDATE SKIP LOCKED` (PostgreSQL; SQLite serialises writers anyway) and every message has an
outbox dedup key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from bot.recovery import coupons, funnel, offers, restock, sales
from bot.services import Services, in_transaction


async def finish_plans(services: Services) -> int:
    """Large stockouts: offers beyond the first batch, in further short transactions."""
    return await offers.continue_plans(services.db, services.recovery)


async def restock_waves(services: Services) -> int:
    return await restock.run_due_waves(services.db, services.recovery)


async def release_holds(services: Services) -> int:
    return await restock.release_expired_holds(services.db)


async def expire_waitlist(services: Services) -> int:
    return await restock.expire_waitlist(services.db, services.recovery)


async def _expire_coupons(session: AsyncSession, services: Services) -> int:
    return await coupons.mark_expired(session)


async def _offers_sent(session: AsyncSession, services: Services) -> int:
    return await offers.mark_sent_offers(session)


async def _sales_digest(session: AsyncSession, services: Services) -> int:
    return await sales.send_digest(session, services.recovery)


expire_coupons = in_transaction(_expire_coupons)
offers_sent = in_transaction(_offers_sent)
sales_digest = in_transaction(_sales_digest)


async def attribute_purchases(services: Services) -> int:
    return await funnel.attribute_recent(services.db, attribution_days=services.settings.ATTRIBUTION_DAYS)


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
