"""Restock waves, waitlist expiry, VIP holds, and quiet hours / the daily cap deferring offers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from bot.db import Database
from bot.models import Customer, Notification, Product, Reservation, Restock, WaitlistEntry, utcnow
from bot.recovery.restock import expire_waitlist, release_expired_holds, run_due_waves, wave_size
from bot.recovery.waitlist import join_waitlist
from bot.settings import Settings
from tests.factories import add_customer, add_order, add_product, available, change_stock
from tests.harness import Harness, running_bot

VIP, REGULARS = 501, (502, 503, 504, 505)


async def waiting_for_lip(h: Harness, *, safety_stock: int = 0) -> Product:
    """LIP-1 is out; one VIP (who joined last) and four regulars wait for it."""
    async with h.db.transaction() as session:
        product = await add_product(session, "LIP-1", name="Velvet Lipstick Red", reorder_point=0,
                                    safety_stock=safety_stock, stock={"SH": 0})  # known to be at zero
        start = utcnow() - timedelta(days=5)
        for i, user in enumerate(REGULARS):
            customer = await add_customer(session, f"C-{user}", user)
            entry, _ = await join_waitlist(session, customer.id, product.id, days=90)
            entry.joined_at = start + timedelta(hours=i)
        vip = await add_customer(session, "C-VIP", VIP, tier="vip")
        await join_waitlist(session, vip.id, product.id, days=90)
    return product


def notices(h: Harness) -> list[int]:
    return [m.chat_id for m in h.sandbox.messages() if "is back in stock" in (m.text or "")]


async def test_partial_restock_notifies_vip_first_then_waves_while_stock_remains(bot_harness: Harness) -> None:
    h = bot_harness
    await waiting_for_lip(h)
    await change_stock(h, "LIP-1", +2)
    await h.settle()
    # 2 units x factor 2 = a wave of 4: the VIP, then the three who joined first.
    assert notices(h) == [VIP, *REGULARS[:3]]
    assert "Only a few have arrived" in h.last(VIP).plain_text
    async with h.db.read_session() as session:
        restock = await session.scalar(select(Restock))
    assert restock.waves_sent == 1 and restock.notified == 4 and restock.finished_at is None
    assert timedelta(minutes=29) < restock.next_wave_at - utcnow() <= timedelta(minutes=30)

    # Not due yet: nothing happens; after the interval, stock remains, so the last one hears.
    assert await run_due_waves(h.db, h.services.recovery) == 0
    assert await run_due_waves(h.db, h.services.recovery, now=utcnow() + timedelta(minutes=31)) == 1
    await h.settle()
    assert notices(h) == [VIP, *REGULARS]
    assert await run_due_waves(h.db, h.services.recovery, now=utcnow() + timedelta(hours=2)) == 0
    async with h.db.read_session() as session:
        restock = await session.scalar(select(Restock))
        statuses = set(await session.scalars(select(WaitlistEntry.status)))
    assert restock.finished_at is not None and restock.waves_sent == 2 and statuses == {"notified"}
    # Nobody twice for one restock.
    assert sorted(notices(h)) == sorted({*notices(h)})


async def test_the_next_wave_waits_for_stock_and_resumes_on_the_next_restock(bot_harness: Harness) -> None:
    h = bot_harness
    await waiting_for_lip(h)
    await change_stock(h, "LIP-1", +2)
    await h.settle()
    assert len(notices(h)) == 4
    await change_stock(h, "LIP-1", -2)  # sold: gone before the next wave
    await h.settle()
    assert await run_due_waves(h.db, h.services.recovery, now=utcnow() + timedelta(minutes=31)) == 0
    await h.settle()
    assert REGULARS[3] not in notices(h)
    async with h.db.read_session() as session:
        assert (await session.scalar(select(Restock))).finished_at is not None
        assert await session.scalar(select(func.count()).where(WaitlistEntry.status == "waiting")) == 1
    # The next restock serves who is left, once.
    await change_stock(h, "LIP-1", +1)
    await h.settle()
    assert notices(h).count(REGULARS[3]) == 1 and len(notices(h)) == 5
    assert "Only a few" not in h.last(REGULARS[3]).plain_text  # one unit, one person waiting


async def test_restock_notices_go_whatever_the_safety_stock(bot_harness: Harness) -> None:
    """A perfume with safety stock 10: two units arrive for five waiting customers."""
    h = bot_harness
    await waiting_for_lip(h, safety_stock=10)
    await change_stock(h, "LIP-1", +2)
    await h.settle()
    assert notices(h) == [VIP, *REGULARS[:3]]  # 2 units x WAVE_FACTOR 2


async def test_restock_min_units_holds_notices_until_that_many_are_available(settings: Settings, db: Database) -> None:
    async with running_bot(settings.model_copy(update={"RESTOCK_MIN_UNITS": 3}), db) as h:
        await waiting_for_lip(h)
        await change_stock(h, "LIP-1", +2)
        await h.settle()
        assert notices(h) == []
        await change_stock(h, "LIP-1", +1)  # three available: a wave of 6 covers all five
        assert await run_due_waves(h.db, h.services.recovery, now=utcnow() + timedelta(minutes=31)) == 5
        await h.settle()
        assert notices(h) == [VIP, *REGULARS]


def test_wave_size() -> None:
    from decimal import Decimal

    assert wave_size(2, 5, Decimal(2)) == 4
    assert wave_size(5, 5, Decimal(2)) == 5
    assert wave_size(1, 10, Decimal("1.5")) == 2
    assert wave_size(3, 4, Decimal(2)) == 4


async def test_a_vip_may_have_a_unit_held_on_restock(settings: Settings, db: Database) -> None:
    async with running_bot(settings.model_copy(update={"VIP_RESTOCK_HOLD_HOURS": 12}), db) as h:
        await waiting_for_lip(h)
        await change_stock(h, "LIP-1", +3)
        await h.settle()
        assert "We are holding one for you until" in h.last(VIP).plain_text
        assert "holding" not in h.last(REGULARS[0]).plain_text
        assert await available(h, "LIP-1") == 2
        async with h.db.read_session() as session:
            hold = await session.scalar(select(Reservation))
        assert hold.reason == "vip_restock_hold" and hold.qty == 1
        assert await release_expired_holds(h.db, now=utcnow() + timedelta(hours=13)) == 1
        assert await available(h, "LIP-1") == 3


async def test_waitlist_entries_expire_with_a_notice(bot_harness: Harness) -> None:
    h = bot_harness
    await waiting_for_lip(h)
    async with h.db.transaction() as session:
        await session.execute(update(WaitlistEntry).where(WaitlistEntry.customer_id != 0).values(
            expires_at=utcnow() - timedelta(minutes=1)))
        keep = await session.scalar(select(WaitlistEntry).order_by(WaitlistEntry.id.desc()).limit(1))
        keep.expires_at = utcnow() + timedelta(days=3)
    assert await expire_waitlist(h.db, h.services.recovery) == 4
    assert await expire_waitlist(h.db, h.services.recovery) == 0  # safe twice
    await h.settle()
    notice = h.last(REGULARS[0]).plain_text
    assert "your place on the waitlist for Velvet Lipstick Red has ended after 90 days" in notice
    assert "/notify LIP-1" in notice
    assert not any("has ended" in m.plain_text for m in h.sandbox.messages(VIP))
    # Back in stock later: only the one still waiting hears.
    await change_stock(h, "LIP-1", +5)
    await h.settle()
    assert notices(h) == [VIP]


# --- quiet hours and the daily cap ----------------------------------------------------------------------


async def _stockout_for(h: Harness, sku: str, user: int, *, external_id: str) -> None:
    async with h.db.transaction() as session:
        product = await add_product(session, sku, name=f"Lipstick {sku}", reorder_point=0, stock={"SH": 1})
        customer = await session.scalar(select(Customer).where(Customer.external_id == external_id))
        if customer is None:
            customer = await add_customer(session, external_id, user)
        await add_order(session, customer, product, 1)
    await change_stock(h, sku, -1)
    await h.settle()


async def _offer_rows(h: Harness) -> list[Notification]:
    async with h.db.read_session() as session:
        return list(await session.scalars(select(Notification).where(Notification.kind == "stockout_offer")
                                          .order_by(Notification.id)))


async def test_quiet_hours_defer_an_offer(settings: Settings, db: Database) -> None:
    now = datetime.now(UTC)
    quiet = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=2)):%H:%M}"
    async with running_bot(settings.model_copy(update={"QUIET_HOURS": quiet}), db) as h:
        await _stockout_for(h, "LIP-Q", 601, external_id="C-Q")
        assert h.sandbox.messages(601) == []
        (row,) = await _offer_rows(h)
        assert row.state == "pending" and row.not_before > now + timedelta(hours=1)


async def test_the_daily_cap_defers_an_offer_to_the_next_day(settings: Settings, db: Database) -> None:
    async with running_bot(settings.model_copy(update={"DAILY_MESSAGE_CAP": 1}), db) as h:
        await _stockout_for(h, "LIP-A", 602, external_id="C-CAP")
        await _stockout_for(h, "LIP-B", 602, external_id="C-CAP")
        first, second = await _offer_rows(h)
        assert first.state == "sent" and second.state == "pending"
        assert second.not_before > utcnow() and second.not_before.hour == 0  # the next day (UTC, no quiet hours)
        assert len(h.sandbox.messages(602)) == 1
