"""Faults the shop would notice: messages failed by an outage, and an admin sending them again."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.db import DatabaseTrouble, create_database
from bot.events import EventConsumer, Reaction
from bot.inventory.stock import StockChange, apply_changes
from bot.jobs import Jobs
from bot.migrate import upgrade
from bot.models import EventLease, Notification, Product, StockEvent, StockEventKind, utcnow
from bot.sandbox.faults import sqlite_disk_full
from tests.conftest import ON_POSTGRES
from tests.factories import ADMIN, add_product
from tests.harness import Harness
from tests.test_cli import stockbot


def _failed(key: str, error: str, *, age: timedelta = timedelta(hours=1)) -> Notification:
    created = utcnow() - age
    return Notification(dedup_key=key, chat_id=42, kind="notice", text=key, state="failed", attempts=6,
                        not_before=created, created_at=created, last_error=error)


async def test_upgrading_queues_again_what_an_outage_failed_and_keeps_what_telegram_refused(tmp_path: Path) -> None:
    db = create_database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(db, "0010_movement_kind")  # the version whose sender gave up after six tries
        async with db.transaction() as session:
            session.add_all([
                _failed("bad-gateway", "Telegram server says - Bad Gateway"),
                _failed("network", "HTTP Client says - Request timeout error"),
                _failed("timeout", "TimeoutError"),
                _failed("refused", "Bad Request: can't parse entities"),
                _failed("long-ago", "Telegram server says - Bad Gateway", age=timedelta(days=30)),
            ])
        await upgrade(db)
        async with db.read_session() as session:
            states = {row.dedup_key: row.state for row in await session.scalars(select(Notification))}
    finally:
        await db.dispose()
    assert states == {"bad-gateway": "pending", "network": "pending", "timeout": "pending",
                      "refused": "failed", "long-ago": "failed"}


async def test_an_admin_lists_failed_messages_and_sends_them_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    db = create_database(url)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            session.add_all([_failed("one", "Bad Request: message is too long"), _failed("two", "Bad Request: x")])
            session.add(Notification(dedup_key="sent", chat_id=43, kind="notice", text="fine", state="sent"))
        async with db.read_session() as session:
            ids = {row.dedup_key: row.id for row in await session.scalars(select(Notification))}

        listed = stockbot("failed", cwd=tmp_path, DATABASE_URL=url)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.strip().splitlines()
        assert [line.split("\t")[0] for line in lines] == [str(ids["two"]), str(ids["one"])]
        assert "message is too long" in lines[1] and "\t42\tnotice\t" in lines[1]

        resent = stockbot("failed", "--resend", str(ids["one"]), str(ids["sent"]), cwd=tmp_path, DATABASE_URL=url)
        assert resent.returncode == 0, resent.stderr
        assert f"not failed (left alone): {ids['sent']}" in resent.stdout
        async with db.read_session() as session:
            states = {row.dedup_key: row.state for row in await session.scalars(select(Notification))}
        assert states == {"one": "pending", "two": "failed", "sent": "sent"}

        assert stockbot("failed", "--resend", cwd=tmp_path, DATABASE_URL=url).returncode == 0
        assert "no failed messages" in stockbot("failed", cwd=tmp_path, DATABASE_URL=url).stdout
    finally:
        await db.dispose()


async def test_a_chat_reply_hit_by_flood_control_waits_and_is_sent(bot_harness: Harness) -> None:
    h = bot_harness
    h.sandbox.fail_next("sendMessage", status=429, retry_after=1, chat_id=ADMIN)
    reply = await h.reply(ADMIN, "/help")
    assert "/grant" in reply
    answers = [call.status for call in h.sandbox.calls_to("sendMessage") if call.params.get("chat_id") == ADMIN]
    assert answers == [429, 200]  # refused once, then sent: one reply, not two
    assert h.runtime.sender.stats.paused_seconds == 1  # the limit is the bot's: the outbox held off too


async def _backlog(h: Harness, products: int, **change: int) -> None:
    """`products` products that each cross a threshold in one import-sized transaction."""
    async with h.db.transaction() as session:
        for n in range(products):
            await add_product(session, f"P-{n}", reorder_point=5, stock={"SH": 9})
    await h.runtime.process_events()  # their first stock levels
    async with h.db.transaction() as session:
        await apply_changes(session, [StockChange(f"P-{n}", "SH", **change) for n in range(products)])


async def _pending_and_leased(h: Harness, *where) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with h.db.read_session() as session:
        pending = await session.scalar(
            select(func.count()).select_from(StockEvent).where(StockEvent.processed_at.is_(None), *where))
        leased = await session.scalar(select(func.count()).select_from(EventLease))
    return int(pending or 0), int(leased or 0)


async def _stopped_after_one_transaction(h: Harness, kind: StockEventKind) -> list[int]:
    """Run the event worker with a reaction that asks it to stop, as SIGTERM would, in its first
    transaction; returns the products that transaction handled."""
    stop = asyncio.Event()
    handled: list[int] = []

    async def react(session, events):  # type: ignore[no-untyped-def]
        handled.extend(event.product_id for event in events)
        stop.set()

    consumer = EventConsumer(h.db, h.services.catalog, {kind: [Reaction(react)]})
    await asyncio.wait_for(consumer.run(stop), timeout=60)
    return handled


async def test_a_stop_mid_bookkeeping_backlog_waits_for_one_small_batch_only(bot_harness: Harness) -> None:
    h = bot_harness
    await _backlog(h, 600, delta=-6)  # 600 products fall to their reorder point at once
    handled = await _stopped_after_one_transaction(h, StockEventKind.LOW_STOCK)
    # The stop waited for the transaction in hand, and that one held a few hundred products at
    # most (it held the whole backlog, and SQLite's write lock, for over a minute at a shop's size).
    assert 0 < len(handled) <= 300
    pending, leased = await _pending_and_leased(h)
    assert pending == 600 - len(handled) and leased == 0  # the rest waits, free for the next run
    await h.runtime.process_events()
    assert await _pending_and_leased(h) == (0, 0)


async def test_a_stop_mid_customer_lane_hands_back_the_products_not_yet_worked(bot_harness: Harness) -> None:
    h = bot_harness
    await _backlog(h, 20, on_hand=0)  # 20 stockouts, each its own transaction
    handled = await _stopped_after_one_transaction(h, StockEventKind.OUT_OF_STOCK)
    assert len(handled) == 1
    assert await _pending_and_leased(h, StockEvent.kind == StockEventKind.OUT_OF_STOCK.value) == (19, 0)


async def test_a_chat_command_during_database_trouble_says_try_again_and_logs_one_line(
    bot_harness: Harness, caplog: pytest.LogCaptureFixture,
) -> None:
    if ON_POSTGRES:
        pytest.skip("a full disk is SQLite's trouble; tests/test_faults_api.py cuts PostgreSQL's link")
    h = bot_harness
    async with h.db.transaction() as session:
        await add_product(session, "LIP-1", stock={"SH": 5})
    caplog.set_level(logging.INFO)
    with sqlite_disk_full(h.db.engine):
        first = await h.reply(ADMIN, "/count LIP-1 3 SH")
        second = await h.reply(ADMIN, "/count LIP-1 2 SH")
    assert "try again in a minute" in first and "try again in a minute" in second
    assert not any(record.exc_info for record in caplog.records)  # no traceback per update
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1  # the spell, once
    async with h.db.read_session() as session:  # nothing was changed
        assert await session.scalar(select(Product.on_hand_total).where(Product.sku == "LIP-1")) == 5


async def test_a_scheduled_job_during_database_trouble_logs_one_line_not_a_traceback_each_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = Jobs(AsyncIOScheduler(), DatabaseTrouble())

    async def needs_the_database() -> None:
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))

    async def has_a_bug() -> None:
        raise ValueError("a bug")

    caplog.set_level(logging.INFO)
    for _ in range(3):
        assert await jobs.job(needs_the_database)() is None
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert not any(record.exc_info for record in caplog.records)
    with pytest.raises(ValueError):  # anything else is still the scheduler's to report, traceback and all
        await jobs.job(has_a_bug)()
