"""Restock notices to the waitlist, in waves, and the waitlist's expiry.

When a product's available stock comes back above zero (a `back_in_stock` event), a `Restock`
row is opened for it and its first wave goes out in the event's transaction. The waitlist is
served VIPs first, then first come, first served. With at least as many units (above the
product's minimum, its safety stock) as people waiting, everyone is told at once; with fewer, a
wave of about units x WAVE_FACTOR is told, and after WAVE_INTERVAL_MINUTES the stock is checked
again: the next wave goes out only if stock remains. When it is gone the restock is finished; the
rest keep their place and are served on the next restock (which finishes any older one).

Nobody is told twice for one restock: a notified entry leaves the waiting state in the same
transaction as its outbox row (whose dedup key names the restock), and waves lock their restock
row (`FOR UPDATE SKIP LOCKED`), so two processes never run the same wave.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, dialect_insert
from bot.delivery.outbox import REGULAR_PRIORITY, VIP_PRIORITY, Outgoing, enqueue
from bot.inventory.stock import StockError, shift_stock
from bot.models import (
    Customer,
    Product,
    Reservation,
    Restock,
    StockEvent,
    StockLevel,
    WaitlistEntry,
    WaitStatus,
    utcnow,
)
from bot.recovery.context import RecoveryContext

log = logging.getLogger(__name__)


async def on_back_in_stock(session: AsyncSession, recovery: RecoveryContext, event: StockEvent) -> Restock | None:
    now = utcnow()
    inserted = await session.execute(
        dialect_insert(session, Restock.__table__)
        .values(product_id=event.product_id, cause_event_id=event.id, waves_sent=0, notified=0, created_at=now)
        .on_conflict_do_nothing(index_elements=["cause_event_id"])
        .returning(Restock.id)
    )
    restock_id = inserted.scalar_one_or_none()
    if restock_id is None:
        return None  # handled before (a replayed event)
    # A new restock supersedes an unfinished older one: the waitlist is served from this one.
    await session.execute(
        update(Restock)
        .where(Restock.product_id == event.product_id, Restock.finished_at.is_(None), Restock.id != restock_id)
        .values(finished_at=now, next_wave_at=None)
    )
    restock = await session.get(Restock, restock_id)
    assert restock is not None
    await run_wave(session, recovery, restock, now=now)
    return restock


def wave_size(units: int, waiting: int, factor: Decimal) -> int:
    """Everyone when there are enough units; otherwise about units x factor (at least one)."""
    if units >= waiting:
        return waiting
    return min(waiting, max(1, math.ceil(Decimal(units) * factor)))


async def run_wave(
    session: AsyncSession, recovery: RecoveryContext, restock: Restock, *, now: datetime | None = None,
) -> int:
    """Notify the next wave of the restock's waitlist if stock remains; returns how many."""
    now = now or utcnow()
    settings = recovery.settings
    product = await session.get(Product, restock.product_id, populate_existing=True)
    if product is None or product.available <= 0:
        restock.finished_at, restock.next_wave_at = now, None  # gone again: resume on the next restock
        return 0
    # Safety stock is the purchaser's buffer, not a reason to keep waiting customers in the dark:
    # any available unit is news. Only a shop that asks for it (RESTOCK_MIN_UNITS) waits for more.
    units = product.available
    if units < settings.RESTOCK_MIN_UNITS:
        restock.next_wave_at = now + timedelta(minutes=settings.WAVE_INTERVAL_MINUTES)
        return 0
    queue = list(
        (
            await session.execute(
                select(WaitlistEntry, Customer)
                .join(Customer, Customer.id == WaitlistEntry.customer_id)
                .where(
                    WaitlistEntry.product_id == product.id,
                    WaitlistEntry.status == WaitStatus.WAITING.value,
                    Customer.contactable,
                )
                .order_by(Customer.is_vip.desc(), WaitlistEntry.joined_at, WaitlistEntry.id)
                .with_for_update(of=WaitlistEntry, skip_locked=True)
            )
        ).all()
    )
    if not queue:
        restock.finished_at, restock.next_wave_at = now, None
        return 0
    size = wave_size(units, len(queue), settings.WAVE_FACTOR)
    wave = queue[:size]
    holds_left = units if settings.VIP_RESTOCK_HOLD_HOURS > 0 else 0
    partial = size < len(queue) or units < len(queue)
    for entry, customer in wave:
        hold_until = None
        if customer.is_vip and holds_left > 0 and await _hold_one(
            session, product, customer, now, hours=settings.VIP_RESTOCK_HOLD_HOURS
        ):
            holds_left -= 1
            hold_until = now + timedelta(hours=settings.VIP_RESTOCK_HOLD_HOURS)
        entry.status, entry.notified_at, entry.restock_id = WaitStatus.NOTIFIED.value, now, restock.id
        locale = recovery.customer_locale(customer.locale)
        text = recovery.templates.render(locale, "restock_notice", product=product, customer_name=customer.name,
                                         few=partial, hold_until=hold_until)
        await enqueue(session, Outgoing(
            dedup_key=f"restock:{restock.id}:{customer.chat_id}", chat_id=customer.chat_id or 0,
            kind="restock_notice", text=text, customer_id=customer.id,
            priority=VIP_PRIORITY if customer.is_vip else REGULAR_PRIORITY, to_customer=True,
        ))
    restock.waves_sent += 1
    restock.notified += len(wave)
    if len(wave) < len(queue):
        restock.next_wave_at = now + timedelta(minutes=settings.WAVE_INTERVAL_MINUTES)
    else:
        restock.finished_at, restock.next_wave_at = now, None
    return len(wave)


async def _hold_one(session: AsyncSession, product: Product, customer: Customer, now: datetime, *,
                    hours: int) -> bool:
    """Hold one unit for a VIP for `hours` (VIP_RESTOCK_HOLD_HOURS), through the stock service."""
    warehouse_id = await session.scalar(
        select(StockLevel.warehouse_id)
        .where(StockLevel.product_id == product.id, StockLevel.on_hand - StockLevel.reserved >= 1)
        .order_by((StockLevel.on_hand - StockLevel.reserved).desc(), StockLevel.warehouse_id)
        .limit(1)
    )
    if warehouse_id is None:
        return False
    try:
        async with session.begin_nested():
            await shift_stock(session, product.id, warehouse_id, reserved_delta=1)
    except StockError:
        return False
    session.add(Reservation(
        product_id=product.id, warehouse_id=warehouse_id, customer_id=customer.id, qty=1, reason="vip_restock_hold",
        expires_at=now + timedelta(hours=hours), created_at=now,
    ))
    return True


async def run_due_waves(
    db: Database, recovery: RecoveryContext, *, now: datetime | None = None, limit: int = 50,
) -> int:
    """The job: next waves whose interval has passed. Returns how many customers were told."""
    now = now or utcnow()
    told = 0
    async with db.transaction() as session:
        due = list(
            await session.scalars(
                select(Restock)
                .where(Restock.finished_at.is_(None), Restock.next_wave_at <= now)
                .order_by(Restock.next_wave_at, Restock.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for restock in due:
            told += await run_wave(session, recovery, restock, now=now)
    return told


async def expire_waitlist(
    db: Database, recovery: RecoveryContext, *, now: datetime | None = None, limit: int = 500,
) -> int:
    """Entries past WAITLIST_DAYS leave the list, with a notice saying how to join again."""
    now = now or utcnow()
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(WaitlistEntry, Customer, Product)
                .join(Customer, Customer.id == WaitlistEntry.customer_id)
                .join(Product, Product.id == WaitlistEntry.product_id)
                .where(WaitlistEntry.status == WaitStatus.WAITING.value, WaitlistEntry.expires_at < now)
                .order_by(WaitlistEntry.expires_at)
                .limit(limit)
                .with_for_update(of=WaitlistEntry, skip_locked=True)
            )
        ).all()
        for entry, customer, product in rows:
            entry.status = WaitStatus.EXPIRED.value
            if not customer.contactable:
                continue
            locale = recovery.customer_locale(customer.locale)
            text = recovery.templates.render(locale, "waitlist_expired", product=product, customer_name=customer.name,
                                             days=recovery.settings.WAITLIST_DAYS)
            await enqueue(session, Outgoing(
                dedup_key=f"waitlist_expired:{entry.id}:{int(entry.joined_at.timestamp())}",
                chat_id=customer.chat_id, kind="waitlist_expired", text=text, customer_id=customer.id,
                to_customer=True,
            ))
    return len(rows)


async def release_expired_holds(db: Database, *, now: datetime | None = None, limit: int = 500) -> int:
    """Reservations past their hold go back to available stock, through the stock service."""
    now = now or utcnow()
    released = 0
    async with db.transaction() as session:
        due = list(
            await session.scalars(
                select(Reservation)
                .where(Reservation.released_at.is_(None), Reservation.expires_at < now)
                .order_by(Reservation.expires_at, Reservation.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for reservation in due:
            try:
                async with session.begin_nested():
                    await shift_stock(session, reservation.product_id, reservation.warehouse_id,
                                      reserved_delta=-reservation.qty)
            except StockError:  # the level no longer holds it (a recount): nothing left to release
                log.warning("reservation %s could not be released from stock; marking it released", reservation.id)
            reservation.released_at = now
            released += 1
    return released
