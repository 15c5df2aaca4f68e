"""Scheduled jobs of `stockbot run` (APScheduler 3, on the bot's event loop).

Every job is safe to run twice, or in two processes at once: its effects are keyed in the
database (outbox dedup keys, row locks with SKIP LOCKED, processed markers), not in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import update

from bot.delivery.quiet import local_day
from bot.inventory import reorder
from bot.models import Notification, NotificationState, utcnow
from bot.services import Services

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)


async def sweep_expired_leases(services: Services) -> int:
    """Rows whose sender died mid-send go back to the queue (the claim would take them too;
    this makes them visible as pending again for /stats and other processes)."""
    async with services.db.transaction() as session:
        result = await session.execute(
            update(Notification)
            .where(Notification.state == NotificationState.SENDING.value, Notification.lease_until < utcnow())
            .values(state=NotificationState.PENDING.value, lease_until=None)
            .returning(Notification.id)
        )
        swept = len(result.all())
    if swept:
        log.warning("%d notifications had expired leases and were queued again", swept)
        services.wake_sender()
    return swept


async def purchaser_digest(services: Services) -> int:
    day = local_day(utcnow(), services.settings.zone)
    async with services.db.transaction() as session:
        return await reorder.send_digest(session, services, day)


async def wake_snoozed_prompts(services: Services) -> int:
    async with services.db.transaction() as session:
        return await reorder.wake_snoozed(session, services)


async def refresh_catalog(services: Services) -> int:
    return await services.catalog.refresh(services.db)


def create_scheduler(runtime: Runtime) -> AsyncIOScheduler:
    from bot.recovery.jobs import RECOVERY_JOBS

    services = runtime.services
    settings = services.settings
    scheduler = AsyncIOScheduler(timezone=settings.zone)
    options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}

    def every(seconds: float, job: Callable[[], Awaitable[object]], job_id: str) -> None:
        scheduler.add_job(job, "interval", seconds=seconds, id=job_id, **options)

    every(1, runtime.process_events, "stock-events")
    every(30, lambda: sweep_expired_leases(services), "sweep-leases")
    every(60, lambda: wake_snoozed_prompts(services), "wake-snoozed")
    every(10, lambda: refresh_catalog(services), "refresh-catalog")
    for name, seconds, job in RECOVERY_JOBS:
        every(seconds, (lambda job=job: job(services)), name)
    digest = settings.digest_time
    scheduler.add_job(
        lambda: purchaser_digest(services), "cron", hour=digest.hour, minute=digest.minute,
        id="purchaser-digest", **options,
    )
    return scheduler
