"""Scheduled jobs of `stockbot run` (APScheduler 3, on the bot's event loop).

Every job is safe to run twice, or in two processes at once: its effects are keyed in the
database (outbox dedup keys, row locks with SKIP LOCKED, processed markers), not in memory.
"""

from __future__ import annotations

import asyncio
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


class Jobs:
    """The scheduler and the job runs in flight, so a shutdown lets them finish instead of
    cancelling them halfway (APScheduler's asyncio executor cancels on shutdown)."""

    def __init__(self, scheduler: AsyncIOScheduler) -> None:
        self.scheduler = scheduler
        self.running: set[asyncio.Task[object]] = set()

    def job(self, work: Callable[..., Awaitable[object]], *args: object) -> Callable[[], Awaitable[object]]:
        # A real coroutine function: APScheduler awaits those on the loop (a lambda returning a
        # coroutine would be run in a thread and never awaited).
        async def run() -> object:
            task = asyncio.current_task()
            assert task is not None
            self.running.add(task)  # type: ignore[arg-type]
            try:
                return await work(*args)
            finally:
                self.running.discard(task)  # type: ignore[arg-type]

        run.__qualname__ = getattr(work, "__qualname__", "job")
        return run

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self, timeout: float = 30.0) -> None:
        self.scheduler.pause()
        if self.running:
            await asyncio.wait(set(self.running), timeout=timeout)
        self.scheduler.shutdown(wait=False)


def create_scheduler(runtime: Runtime) -> Jobs:
    from bot.planning.jobs import PLANNING_JOBS
    from bot.recovery.jobs import RECOVERY_JOBS

    services = runtime.services
    settings = services.settings
    jobs = Jobs(AsyncIOScheduler(timezone=settings.zone))
    options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}

    def every(seconds: float, job_id: str, work: Callable[..., Awaitable[object]], *args: object) -> None:
        jobs.scheduler.add_job(jobs.job(work, *args), "interval", seconds=seconds, id=job_id, **options)

    every(1, "stock-events", runtime.process_events)
    every(30, "sweep-leases", sweep_expired_leases, services)
    every(60, "wake-snoozed", wake_snoozed_prompts, services)
    every(10, "refresh-catalog", refresh_catalog, services)
    for name, seconds, work in (*RECOVERY_JOBS, *PLANNING_JOBS):
        every(seconds, name, work, services)
    digest = settings.digest_time
    jobs.scheduler.add_job(
        jobs.job(purchaser_digest, services), "cron", hour=digest.hour, minute=digest.minute,
        id="purchaser-digest", **options,
    )
    return jobs
