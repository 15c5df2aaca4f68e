"""Scheduled jobs do their work once, however often or concurrently they run."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from bot.inventory.stock import StockChange, apply_change
from bot.jobs import create_scheduler, purchaser_digest, sweep_expired_leases, wake_snoozed_prompts
from bot.events import MAX_ATTEMPTS, EventConsumer, Reaction
from bot.models import EventLease, Notification, Product, ReorderPrompt, StockEvent, StockEventKind, utcnow
from tests.factories import ADMIN, add_product
from tests.harness import Harness


async def _low(h: Harness, sku: str) -> None:
    async with h.db.transaction() as session:
        await add_product(session, sku, reorder_point=5, stock={"SH": 9})
    async with h.db.transaction() as session:
        await apply_change(session, StockChange(sku, "SH", delta=-6))


async def _notifications(h: Harness, kind: str) -> int:
    async with h.db.read_session() as session:
        return await session.scalar(select(func.count()).select_from(Notification).where(Notification.kind == kind))


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Wait for work done on the loop in the background, looking every 50 ms, up to `timeout`."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"not done within {timeout} s"
        await asyncio.sleep(0.05)


async def _both_done(h: Harness) -> bool:
    """The event worker's prompt for B and the daily digest are queued."""
    return await _notifications(h, "reorder_prompt") == 2 and await _notifications(h, "digest") == 1


async def test_events_handled_by_two_consumers_at_once_prompt_once(bot_harness: Harness) -> None:
    h = bot_harness
    await _low(h, "A")
    await asyncio.gather(h.runtime.process_events(), h.runtime.process_events())
    assert await _notifications(h, "reorder_prompt") == 1
    async with h.db.read_session() as session:
        pending = await session.scalar(select(func.count()).select_from(StockEvent).where(StockEvent.processed_at.is_(None)))
    assert pending == 0


async def test_a_failing_reaction_is_retried_then_parked_without_blocking_others(bot_harness: Harness) -> None:
    h = bot_harness
    await _low(h, "A")
    await _low(h, "B")

    async def broken_for_a(session, events):  # type: ignore[no-untyped-def]
        if any(event.product_id == a_id for event in events):
            raise RuntimeError("supplier system down")
        handled.extend(event.product_id for event in events)

    async with h.db.read_session() as session:
        a_id = await session.scalar(select(Product.id).where(Product.sku == "A"))
    handled: list[int] = []
    consumer = EventConsumer(h.db, h.services.catalog, {StockEventKind.LOW_STOCK: [Reaction(broken_for_a)]})
    for attempt in range(MAX_ATTEMPTS):
        await consumer.process()
        async with h.db.transaction() as session:  # the back-off before a retry has passed
            await session.execute(update(EventLease).values(lease_until=utcnow() - timedelta(seconds=1)))
    async with h.db.read_session() as session:
        event = await session.scalar(select(StockEvent).where(StockEvent.kind == "low_stock", StockEvent.product_id == a_id))
        pending = await session.scalar(select(func.count()).select_from(StockEvent).where(StockEvent.processed_at.is_(None)))
    assert event.processed_at is not None and event.attempts == MAX_ATTEMPTS
    assert "supplier system down" in event.last_error
    assert handled and a_id not in handled and pending == 0  # B was handled on the first pass


async def test_the_daily_digest_goes_out_once_per_day(bot_harness: Harness) -> None:
    h = bot_harness
    await _low(h, "A")
    await h.settle()
    assert await purchaser_digest(h.services) == 1
    assert await purchaser_digest(h.services) == 0
    await h.settle()
    digest = h.last(ADMIN)
    assert "Open reorder prompts" in digest.plain_text and "A" in digest.plain_text


async def test_a_snoozed_prompt_wakes_once(bot_harness: Harness) -> None:
    h = bot_harness
    await _low(h, "A")
    await h.settle()
    await h.press(ADMIN, h.last(ADMIN), "Snooze")
    assert await wake_snoozed_prompts(h.services) == 0  # not yet due
    async with h.db.transaction() as session:
        await session.execute(update(ReorderPrompt).values(snoozed_until=utcnow() - timedelta(minutes=1)))
    assert await wake_snoozed_prompts(h.services) == 1
    assert await wake_snoozed_prompts(h.services) == 0
    await h.settle()
    assert h.last(ADMIN).buttons() and "Reorder" in h.last(ADMIN).plain_text
    assert await _notifications(h, "reorder_prompt") == 2


async def test_expired_leases_are_swept_back_to_pending(bot_harness: Harness) -> None:
    h = bot_harness
    await _low(h, "A")
    await h.runtime.process_events()
    async with h.db.transaction() as session:
        await session.execute(update(Notification).values(state="sending", lease_until=utcnow() - timedelta(seconds=1)))
    assert await sweep_expired_leases(h.services) == 1
    assert await sweep_expired_leases(h.services) == 0
    await h.settle()
    assert "Reorder" in h.last(ADMIN).plain_text


async def test_the_scheduler_runs_every_job_on_the_loop_and_stops_cleanly(bot_harness: Harness) -> None:
    h = bot_harness
    await _low(h, "A")
    await h.runtime.process_events()  # A's prompt exists before the digest may run
    await _low(h, "B")  # B's crossing is left for the event worker
    jobs = create_scheduler(h.runtime)
    scheduler = jobs.scheduler
    ids = {job.id for job in scheduler.get_jobs()}
    assert {"sweep-leases", "wake-snoozed", "purchaser-digest"} <= ids
    digest = scheduler.get_job("purchaser-digest")
    assert str(digest.trigger).startswith("cron[") and "hour='9'" in str(digest.trigger)
    jobs.start()
    stop = asyncio.Event()
    consumer = asyncio.create_task(h.runtime.consumer.run(stop))
    try:
        for job in scheduler.get_jobs():  # run everything now, as the clock would
            job.modify(next_run_time=datetime.now(UTC))
        # Until the two have done their work (a fixed 1.5 s was too short on a loaded machine).
        await _until(lambda: _both_done(h), timeout=30)
    finally:
        stop.set()
        await consumer
        await jobs.stop()
    assert await _notifications(h, "reorder_prompt") == 2  # the event worker ran
    assert await _notifications(h, "digest") == 1  # and the daily digest
    assert not jobs.running
