"""Scheduled jobs of `stockbot run` (APScheduler 3, on the bot's event loop).

The jobs are entry points: each takes the `Services` bag the scheduler holds and hands the
package functions only the parts they use (the edge unpacks `Services`; planning and recovery never
see it). A job that is one unit of work takes the session its wrapper opened (`in_transaction`);
one that works in several short transactions (plans, waves, forecasts) opens its own.

Every job is safe to run twice, or in two processes at once: its effects are keyed in the
database (outbox dedup keys, row locks with SKIP LOCKED, processed markers, `planning_state`
rows), not in memory. Jobs live in APScheduler's memory job store, registered afresh at every
start: no job reference is persisted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import shop_today
from bot.db import DatabaseTrouble
from bot.delivery import outbox
from bot.ingest.connectors.deliveries import forget_old_deliveries
from bot.ingest.connectors.source_db import SourcePoller
from bot.memory import TRIM_CHECK_S, FreeMemoryKeeper, LongLivedObjects
from bot.planning import prompts, runs
from bot.recovery import coupons, funnel, offers, restock, sales
from bot.reports import slow_movers, weekly
from bot.services import Services, Work, in_transaction

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)
SLOW_JOB_S = 1.0  # a job run this long is logged: on SQLite it may have held the write lock


async def _sweep_expired_leases(session: AsyncSession, services: Services) -> int:
    """Rows whose sender died mid-send go back to the queue: at once when the holder was a process
    of this host that is gone (a restart after a crash), else when the lease has run out."""
    swept = await outbox.release_dead_claims(session)
    if swept:
        log.warning("%d notifications had expired leases and were queued again", swept)
    return swept


async def _purchaser_digest(session: AsyncSession, services: Services) -> int:
    settings = services.settings
    return await prompts.send_digest(session, settings, services.templates, shop_today(settings.zone).isoformat())


async def _wake_snoozed_prompts(session: AsyncSession, services: Services) -> int:
    return await prompts.wake_snoozed(session, services.settings, services.templates)


async def _forget_old_deliveries(session: AsyncSession, services: Services) -> int:
    return await forget_old_deliveries(session)


async def refresh_slow_movers(services: Services) -> int:
    return await slow_movers.refresh_slow_movers(services.db, services.settings, services.catalog)


async def weekly_report(services: Services) -> int:
    """Run on a calendar (Mondays at DIGEST_TIME) rather than an interval: see create_scheduler."""
    return await weekly.weekly_report(services.db, services.settings, services.templates)


sweep_expired_leases = in_transaction(_sweep_expired_leases)
forget_deliveries = in_transaction(_forget_old_deliveries)
purchaser_digest = in_transaction(_purchaser_digest)
wake_snoozed_prompts = in_transaction(_wake_snoozed_prompts)


async def daily_forecast(services: Services) -> int:
    return await runs.daily_forecast(services.db, services.settings, services.templates)


async def forecast_imported_history(services: Services) -> int:
    return await runs.forecast_imported_history(services.db, services.settings, services.templates)


async def cover_after_stock_changes(services: Services) -> int:
    return await runs.cover_after_stock_changes(services.db, services.settings, services.templates)


PLANNING_JOBS: list[tuple[str, float, Work]] = [
    ("planning-daily", 300, daily_forecast),
    ("planning-imports", 30, forecast_imported_history),
    ("planning-cover", 10, cover_after_stock_changes),
]


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


# Recovery's rows are taken with `SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite
# serialises writers anyway) and every message has an outbox dedup key.
RECOVERY_JOBS: list[tuple[str, float, Work]] = [
    ("recovery-plans", 1, finish_plans),
    ("recovery-waves", 30, restock_waves),
    ("recovery-holds", 60, release_holds),
    ("recovery-waitlist-expiry", 3600, expire_waitlist),
    ("recovery-coupon-expiry", 3600, expire_coupons),
    ("recovery-offers-sent", 60, offers_sent),
    ("recovery-sales-digest", 300, sales_digest),
    ("recovery-attribution", 1800, attribute_purchases),
]


class Jobs:
    """The scheduler and the job runs in flight, so a shutdown lets them finish instead of
    cancelling them halfway (APScheduler's asyncio executor cancels on shutdown)."""

    def __init__(self, scheduler: AsyncIOScheduler, trouble: DatabaseTrouble | None = None) -> None:
        self.scheduler = scheduler
        self.running: set[asyncio.Task[object]] = set()
        self.trouble = trouble  # database trouble is one line a spell, not a traceback a job run

    def job(self, work: Callable[..., Awaitable[object]], *args: object) -> Callable[[], Awaitable[object]]:
        # A real coroutine function: APScheduler awaits those on the loop (a lambda returning a
        # coroutine would be run in a thread and never awaited).
        async def run() -> object:
            task = asyncio.current_task()
            assert task is not None
            self.running.add(task)  # type: ignore[arg-type]
            started = time.monotonic()
            try:
                return await work(*args)
            except asyncio.CancelledError:
                # Cut off by a stop (see `stop`): rolled back, done again at the next run. Said in
                # one line here, not as a traceback from the scheduler.
                log.info("job %s cut off by a stop; it runs again later", run.__qualname__)
                return None
            except Exception as exc:
                if self.trouble is not None and self.trouble.note(exc):
                    return None  # rolled back; the next run does it once the database is back
                raise
            finally:
                self.running.discard(task)  # type: ignore[arg-type]
                took = time.monotonic() - started
                if took >= SLOW_JOB_S:  # what held the database, when requests got slow
                    log.info("job %s took %.1f s", run.__qualname__, took)

        run.__qualname__ = getattr(work, "__qualname__", "job")
        return run

    def start(self) -> None:
        self.scheduler.start()

    async def stop(self, timeout: float = 5.0) -> None:
        """Let running jobs finish for up to `timeout`, then cancel them: each job is one or more
        transactions, so a cancelled one rolls back and its work is simply done again later."""
        self.scheduler.pause()
        if self.running:
            _done, late = await asyncio.wait(set(self.running), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        self.scheduler.shutdown(wait=False)


def create_scheduler(runtime: Runtime) -> Jobs:
    services = runtime.services
    settings = services.settings
    jobs = Jobs(AsyncIOScheduler(timezone=settings.zone), services.db.trouble)
    options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}

    def every(seconds: float, job_id: str, work: Work) -> None:
        jobs.scheduler.add_job(jobs.job(work, services), "interval", seconds=seconds, id=job_id, **options)

    # Stock events and the outbox have their own workers (bot/events.py, bot/delivery/sender.py).
    every(30, "sweep-leases", sweep_expired_leases)
    every(60, "wake-snoozed", wake_snoozed_prompts)
    every(3600, "forget-deliveries", forget_deliveries)
    for name, seconds, work in (*RECOVERY_JOBS, *PLANNING_JOBS):
        every(seconds, name, work)
    every(900, "slow-movers", refresh_slow_movers)
    # A job, not a call after each big pass: the passes are many (imports, the sweep, forecasts,
    # catalog loads, the cover job's small runs), and what they leave shows as growth.
    keeper = FreeMemoryKeeper()
    jobs.scheduler.add_job(jobs.job(keeper.give_back_if_grown), "interval", seconds=TRIM_CHECK_S, id="give-back-memory", **options)
    heap = LongLivedObjects()  # short full collections: start-up's and the catalog's objects frozen
    jobs.scheduler.add_job(jobs.job(heap.freeze_if_grown), "interval", seconds=TRIM_CHECK_S, id="freeze-long-lived", **options)
    if settings.SOURCE_DATABASE_URL is not None:  # the shop's own database, from the start on
        jobs.scheduler.add_job(
            jobs.job(SourcePoller(settings, services.db).poll), "interval", seconds=settings.SOURCE_POLL_SECONDS,
            id="source-poll", next_run_time=datetime.now(settings.zone), **options,
        )
    digest = settings.digest_time
    jobs.scheduler.add_job(
        jobs.job(purchaser_digest, services), "cron", hour=digest.hour, minute=digest.minute,
        id="purchaser-digest", **options,
    )
    jobs.scheduler.add_job(
        jobs.job(weekly_report, services), "cron", day_of_week="mon", hour=digest.hour, minute=digest.minute,
        id="weekly-report", **options,
    )
    return jobs
