"""The event pipeline at a shop's size: customers before bookkeeping, only the latest state of a
product counts, events nobody needs cost nothing, and a stop mid-backlog loses nothing."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from bot.delivery import outbox
from bot.events import EventConsumer, Reaction
from bot.inventory import catalog as catalog_module
from bot.inventory.catalog import Catalog
from bot.inventory.stock import StockChange, apply_change, apply_changes
from bot.models import (
    EventLease,
    Notification,
    Product,
    ReorderPrompt,
    Restock,
    StockEvent,
    StockEventKind,
    StockoutOffer,
    utcnow,
)
from bot.recovery.waitlist import join_waitlist
from tests.factories import add_customer, add_order, add_product
from tests.harness import Harness

VIP, WAITER = 101, 103


async def _count(h: Harness, model, *where) -> int:  # type: ignore[no-untyped-def]
    async with h.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _pending(h: Harness) -> int:
    return await _count(h, StockEvent, StockEvent.processed_at.is_(None))


async def test_a_fresh_stockout_is_offered_before_an_import_backlog_is_worked(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        backlog = [await add_product(session, f"BULK-{n}", reorder_point=5, stock={"SH": 9}) for n in range(40)]
        lip = await add_product(session, "LIP-1", name="Velvet Lipstick Red", reorder_point=0, stock={"SH": 2})
        vip = await add_customer(session, "C-VIP", VIP, tier="vip")
        await add_order(session, vip, lip, 1)
    await h.runtime.process_events()  # the seed's own crossings
    async with h.db.transaction() as session:  # an import drops 40 products to their reorder point...
        await apply_changes(session, [StockChange(p.sku, "SH", delta=-5) for p in backlog])
    async with h.db.transaction() as session:  # ...and then one product runs out
        await apply_change(session, StockChange("LIP-1", "SH", on_hand=0, reason="sale"))
    await h.runtime.process_events()
    async with h.db.read_session() as session:
        queued = list(await session.execute(select(Notification.kind, Notification.id).order_by(Notification.id)))
    kinds = [kind for kind, _ in queued]
    assert await _count(h, ReorderPrompt) == 40 + 1  # the stockout is below LIP-1's reorder point too
    assert kinds == ["stockout_offer", "low_digest"]  # written first, though its event came last;
    # 41 prompts at once reach the purchaser as one digest


async def test_only_a_products_latest_state_is_acted_on(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        lip = await add_product(session, "LIP-1", name="Velvet Lipstick Red", reorder_point=3, stock={"SH": 5})
        vip = await add_customer(session, "C-VIP", VIP, tier="vip")
        waiter = await add_customer(session, "C-WAIT", WAITER)
        await add_order(session, vip, lip, 1)
        await join_waitlist(session, waiter.id, lip.id, days=30)
    await h.runtime.process_events()
    for on_hand in (0, 4):  # out, then back, before the bot looks
        async with h.db.transaction() as session:
            await apply_change(session, StockChange("LIP-1", "SH", on_hand=on_hand))
    await h.runtime.process_events()
    assert await _count(h, StockoutOffer) == 0  # no apology for a product that is back
    assert await _count(h, ReorderPrompt) == 0  # low, then recovered: nothing to reorder
    assert await _count(h, Restock) == 1  # the customer waiting is told it is back
    await h.settle()
    assert "back in stock" in h.last(WAITER).plain_text.lower()
    assert await _pending(h) == 0


async def test_events_nobody_needs_are_consumed_without_work(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        for n in range(30):
            await add_product(session, f"P-{n}", reorder_point=0, stock={"SH": 3})
    await h.runtime.process_events()
    async with h.db.transaction() as session:
        await apply_changes(session, [StockChange(f"P-{n}", "SH", on_hand=0) for n in range(30)])
    async with h.db.transaction() as session:
        await apply_changes(session, [StockChange(f"P-{n}", "SH", on_hand=2) for n in range(0, 30, 2)])
    await h.runtime.process_events()
    assert await _pending(h) == 0
    assert await _count(h, Restock) == 0  # back in stock, but nobody waits for it
    assert await _count(h, StockoutOffer) == 0  # out of stock, but nobody ordered or waits
    assert await _count(h, Notification, Notification.kind != "reorder_prompt") == 0
    assert await _count(h, ReorderPrompt) == 15  # the purchaser still hears of the ones still out


async def test_a_product_another_process_holds_does_not_hold_up_the_rest(bot_harness: Harness) -> None:
    """Another process works on HELD, whose events are the oldest and more than one claim takes;
    this one still handles FREE's stockout at once instead of idling until its next poll."""
    h = bot_harness
    async with h.db.transaction() as session:
        held = await add_product(session, "HELD", reorder_point=0, stock={"SH": 1})
        await add_product(session, "FREE", reorder_point=0, stock={"SH": 1})
    await h.runtime.process_events()
    async with h.db.transaction() as session:  # 600 stockouts and returns: more than a claim's 500
        await apply_changes(session, [StockChange("HELD", "SH", on_hand=n % 2) for n in range(600)])
        await apply_change(session, StockChange("FREE", "SH", on_hand=0))
        session.add(EventLease(product_id=held.id, holder="another-host:4242:1", lease_until=utcnow() + timedelta(minutes=1)))
    await h.runtime.process_events()
    async with h.db.read_session() as session:
        waiting = dict((await session.execute(
            select(Product.sku, func.count()).join(StockEvent, StockEvent.product_id == Product.id)
            .where(StockEvent.processed_at.is_(None)).group_by(Product.sku)
        )).all())
    assert waiting == {"HELD": 1200}  # HELD left to its holder (600 crossings each way); FREE done


async def test_a_refresh_reads_nothing_when_no_card_changed(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        await add_product(session, "LIP-1", name="Velvet Lipstick Red", stock={"SH": 5})
    assert await h.services.catalog.refresh(h.db) == 1
    async with h.db.transaction() as session:  # stock moves: the cards do not change
        await apply_change(session, StockChange("LIP-1", "SH", delta=-2, reason="sale"))
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(h.db.engine.sync_engine, "before_cursor_execute", listener)
    try:
        assert await h.services.catalog.refresh(h.db) == 0
    finally:
        event.remove(h.db.engine.sync_engine, "before_cursor_execute", listener)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert "products" not in " ".join(statements)  # only the change counter was read
    async with h.db.transaction() as session:  # a renamed product is reloaded, and found by its new name
        product = await session.scalar(select(Product).where(Product.sku == "LIP-1"))
        product.name = "Satin Lipstick Cherry"
    assert await h.services.catalog.refresh(h.db) == 1
    assert [hit.sku for hit in h.services.catalog.search.search("satin cherry")][:1] == ["LIP-1"]


async def test_a_stop_while_the_catalog_loads_returns_between_batches_and_the_next_load_is_whole(
    bot_harness: Harness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first load of a 100k catalog takes seconds; SIGTERM must not wait for all of it."""
    h = bot_harness
    monkeypatch.setattr(catalog_module, "CARDS_PER_BATCH", 2)
    async with h.db.transaction() as session:
        for n in range(7):
            await add_product(session, f"LIP-{n}", name=f"Velvet Lipstick {n}", stock={"SH": 5})
    stopping = Catalog()
    stop = asyncio.Event()
    loads = stopping._load

    def load_then_stop(cards):  # type: ignore[no-untyped-def]
        loads(cards)
        stop.set()  # SIGTERM arrives while the first batch goes into the indexes

    stopping._load = load_then_stop  # type: ignore[method-assign]
    assert await stopping.refresh(h.db, stop) == 2  # one batch, then it returned
    stopping._load = loads  # type: ignore[method-assign]
    assert await stopping.refresh(h.db) == 7  # not marked seen: the next load is whole
    assert await stopping.refresh(h.db) == 0
    assert len(stopping.search.search("velvet lipstick", limit=10)) == 7


async def test_a_stop_mid_backlog_loses_nothing(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        for n in range(12):
            await add_product(session, f"P-{n}", reorder_point=5, stock={"SH": 9})
    await h.runtime.process_events()
    async with h.db.transaction() as session:
        await apply_changes(session, [StockChange(f"P-{n}", "SH", delta=-6) for n in range(12)])
    stop = asyncio.Event()
    seen: list[int] = []

    async def slow(session, events):  # type: ignore[no-untyped-def]
        seen.extend(e.product_id for e in events)
        stop.set()  # the operator's SIGTERM arrives while the first batch is being handled
        await asyncio.sleep(0.05)

    consumer = EventConsumer(h.db, h.services.catalog, {StockEventKind.LOW_STOCK: [Reaction(slow)]})
    await asyncio.wait_for(consumer.run(stop), timeout=30)
    assert await _pending(h) == 0  # the batch in hand was finished and committed
    # A reaction that fails on stop is rolled back: its events stay pending for the next run.
    async with h.db.transaction() as session:
        await apply_changes(session, [StockChange(f"P-{n}", "SH", on_hand=9) for n in range(12)])
        await apply_changes(session, [StockChange(f"P-{n}", "SH", delta=-6) for n in range(12)])

    async def cancelled(session, events):  # type: ignore[no-untyped-def]
        raise asyncio.CancelledError

    with_cancel = EventConsumer(h.db, h.services.catalog, {StockEventKind.LOW_STOCK: [Reaction(cancelled)]})
    try:
        await with_cancel.process()
    except asyncio.CancelledError:
        pass
    assert await _count(h, StockEvent, StockEvent.processed_at.is_(None), StockEvent.kind == "low_stock") == 12
    await h.runtime.process_events()
    assert await _pending(h) == 0


async def test_a_second_drain_waits_for_a_slow_claim(bot_harness: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    h = bot_harness
    await h.runtime.sender.drain()  # nothing queued: the sender has seen empty claims
    real_claim = outbox.claim_due

    async def slow_claim(*args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.2)  # a busy database: the claim takes longer than a drain check
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(outbox, "claim_due", slow_claim)
    async with h.db.transaction() as session:
        await outbox.enqueue_many(session, [
            outbox.Outgoing(f"test:{chat}", chat, "test", f"hello {chat}") for chat in (201, 202, 203)
        ])
    await h.runtime.sender.drain()
    assert [h.last(chat).plain_text for chat in (201, 202, 203)] == ["hello 201", "hello 202", "hello 203"]


async def test_a_restarted_sender_takes_back_a_dead_runs_claims_at_once(bot_harness: Harness) -> None:
    h = bot_harness
    async with h.db.transaction() as session:
        await outbox.enqueue_many(session, [outbox.Outgoing("test:1", 201, "test", "in flight when killed")])
        row = await session.scalar(select(Notification))
        # As `kill -9` leaves it: claimed by a process of this host that no longer runs, its
        # lease still minutes away from running out.
        row.state, row.attempts, row.claimed_by = "sending", 1, f"{socket.gethostname()}:999999999:1"
        row.lease_until = utcnow().replace(year=utcnow().year + 1)
    await h.runtime.sender.drain()
    assert h.last(201).plain_text == "in flight when killed"
    assert await _count(h, Notification, Notification.state == "sent") == 1
