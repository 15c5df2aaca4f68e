"""The mass-contact guard: a wrong spreadsheet never spams the shop's customers.

An import or API batch (`ContactBatch`) writes its customer events into the awaiting lane. Once
the batch is closed, `weigh_batches` counts the customers its stockouts and restocks would
message (reachable ones: a linked chat, not opted out, not blocked). Up to MASS_CONTACT_LIMIT the
batch is released at once; above it, it is held and every admin is asked, with Send and Discard
buttons. Nothing is planned, let alone sent, for a held batch; other causes never wait for it,
since its events sit in a lane of their own. A released batch of a few products joins the live
lane; a large one goes to the bulk lane, which the event worker works a slice per pass.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, chunked
from bot.delivery.markup import Button, keyboard, pack
from bot.delivery.outbox import STAFF_PRIORITY, Outgoing, enqueue_many
from bot.delivery.templates import Templates
from bot.inventory.batches import STALE_OPEN
from bot.models import (
    OPEN_STATUSES,
    BatchStatus,
    ContactBatch,
    Customer,
    Order,
    OrderLine,
    Role,
    StockEvent,
    StockEventKind,
    WaitlistEntry,
    WaitStatus,
    utcnow,
)
from bot.pipeline import AWAITING_LANE, BULK_LANE, LIVE_LANE
from bot.settings import Settings
from bot.shop.staff import locale_of, staff_with_role

HOLD_PREFIX = "hb"
LIVE_PRODUCTS = 50  # a released batch of at most this many products joins the live lane


@dataclass(frozen=True, slots=True)
class Reach:
    customers: int
    products: int


async def reach(session: AsyncSession, batch_id: int) -> Reach:
    """Whom the batch's waiting customer events would message: each product's latest state
    decides (ran out: its open lines and waitlist; came back: its waitlist)."""
    rows = await session.execute(
        select(StockEvent.product_id, StockEvent.kind)
        .where(StockEvent.batch_id == batch_id, StockEvent.lane == AWAITING_LANE, StockEvent.processed_at.is_(None))
        .order_by(StockEvent.id)
    )
    last_flip: dict[int, str] = {}
    shorts: set[int] = set()
    for product_id, kind in rows:
        if kind == StockEventKind.ORDER_SHORT.value:
            shorts.add(product_id)
        else:
            last_flip[product_id] = kind
    out = {p for p, kind in last_flip.items() if kind == StockEventKind.OUT_OF_STOCK.value} | (shorts - last_flip.keys())
    back = {p for p, kind in last_flip.items() if kind == StockEventKind.BACK_IN_STOCK.value}
    customers_of: dict[int, set[int]] = defaultdict(set)
    for product_id, customer_id in await _line_customers(session, out):
        customers_of[product_id].add(customer_id)
    for product_id, customer_id in await _waiting_customers(session, out | back):
        customers_of[product_id].add(customer_id)
    everyone = set().union(*customers_of.values()) if customers_of else set()
    return Reach(customers=len(everyone), products=len(customers_of))


async def _line_customers(session: AsyncSession, product_ids: Collection[int]) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for chunk in chunked(sorted(product_ids)):
        found += list(await session.execute(
            select(OrderLine.product_id, Customer.id)
            .join(Order, Order.id == OrderLine.order_id).join(Customer, Customer.id == Order.customer_id)
            .where(OrderLine.product_id.in_(chunk), OrderLine.status.in_(OPEN_STATUSES),
                   OrderLine.cancel_requested_at.is_(None), Customer.contactable)
        ))
    return found


async def _waiting_customers(session: AsyncSession, product_ids: Collection[int]) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for chunk in chunked(sorted(product_ids)):
        found += list(await session.execute(
            select(WaitlistEntry.product_id, Customer.id)
            .join(Customer, Customer.id == WaitlistEntry.customer_id)
            .where(WaitlistEntry.product_id.in_(chunk), WaitlistEntry.status == WaitStatus.WAITING.value,
                   Customer.contactable)
        ))
    return found


async def _admins(session: AsyncSession, settings: Settings) -> list[int]:
    return sorted(set(settings.ADMIN_IDS) | set(await staff_with_role(session, Role.ADMIN)))


def _due(now: datetime):  # type: ignore[no-untyped-def]
    """Batches to weigh: closed ones, and open ones their writer left long ago (killed)."""
    return or_(
        ContactBatch.status == BatchStatus.CLOSED.value,
        (ContactBatch.status == BatchStatus.OPEN.value) & (ContactBatch.created_at < now - STALE_OPEN),
    )


async def weigh_batches(db: Database, settings: Settings, templates: Templates) -> list[ContactBatch]:
    """Weigh every batch that is due, each in a transaction of its own; returns those weighed.

    Run before every pass of the event worker: a read finds that nothing is due, so a quiet
    pass takes no write lock (on SQLite a write transaction locks the whole database)."""
    weighed: list[ContactBatch] = []
    async with db.read_session() as session:
        if await session.scalar(select(ContactBatch.id).where(_due(utcnow())).limit(1)) is None:
            return weighed
    while True:
        async with db.transaction() as session:
            batch = await session.scalar(
                select(ContactBatch).where(_due(utcnow())).order_by(ContactBatch.id).limit(1)
                .with_for_update(skip_locked=True)
            )
            if batch is None:
                return weighed
            await _weigh(session, settings, templates, batch)
            weighed.append(batch)


async def _weigh(session: AsyncSession, settings: Settings, templates: Templates, batch: ContactBatch) -> None:
    found = await reach(session, batch.id)
    batch.customers, batch.products = found.customers, found.products
    batch.closed_at = batch.closed_at or utcnow()
    if found.customers <= settings.MASS_CONTACT_LIMIT:
        batch.status = BatchStatus.RELEASED.value
        await _release(session, batch.id, found.products)
        return
    batch.status = BatchStatus.HELD.value
    await session.flush()
    messages = []
    for user_id in await _admins(session, settings):
        locale = await locale_of(session, user_id, settings.DEFAULT_LOCALE)
        messages.append(Outgoing(
            dedup_key=f"held:{batch.id}:{user_id}", chat_id=user_id, kind="held_batch",
            text=templates.render(locale, "held_batch", batch=batch, limit=settings.MASS_CONTACT_LIMIT),
            reply_markup=held_buttons(templates, locale, batch.id), priority=STAFF_PRIORITY,
        ))
    await enqueue_many(session, messages)


def held_buttons(templates: Templates, locale: str, batch_id: int) -> dict | None:  # type: ignore[type-arg]
    return keyboard([[
        Button(templates.plain(locale, "btn_held_send"), pack(HOLD_PREFIX, Decision.SEND.value, batch_id)),
        Button(templates.plain(locale, "btn_held_discard"), pack(HOLD_PREFIX, Decision.DISCARD.value, batch_id)),
    ]])


async def _release(session: AsyncSession, batch_id: int, products: int) -> None:
    """Let the batch's waiting events go: a small batch with the live events, a large one to
    the bulk lane (worked a slice per pass, so it never holds up another cause)."""
    lane = LIVE_LANE if products <= LIVE_PRODUCTS else BULK_LANE
    await session.execute(
        update(StockEvent)
        .where(StockEvent.batch_id == batch_id, StockEvent.lane == AWAITING_LANE, StockEvent.processed_at.is_(None))
        .values(lane=lane)
        .execution_options(synchronize_session=False)
    )


class Decision(enum.StrEnum):
    SEND = "send"
    DISCARD = "discard"


@dataclass(frozen=True, slots=True)
class Decided:
    batch: ContactBatch | None  # None: no such batch
    now: bool  # this press decided it; False: it was decided before (a second press changes nothing)


async def decide(session: AsyncSession, batch_id: int, decision: Decision, user_id: int) -> Decided:
    """An admin's Send or Discard. Only the first press of any admin counts."""
    status = BatchStatus.SENT if decision is Decision.SEND else BatchStatus.DISCARDED
    changed = await session.execute(
        update(ContactBatch)
        .where(ContactBatch.id == batch_id, ContactBatch.status == BatchStatus.HELD.value)
        .values(status=status.value, decided_at=utcnow(), decided_by=user_id)
        .returning(ContactBatch.products)
    )
    row = changed.first()
    if row is not None:
        if decision is Decision.SEND:
            await _release(session, batch_id, row.products)
        else:
            await session.execute(
                update(StockEvent)
                .where(StockEvent.batch_id == batch_id, StockEvent.lane == AWAITING_LANE,
                       StockEvent.processed_at.is_(None))
                .values(processed_at=utcnow(), last_error="discarded by an admin")
                .execution_options(synchronize_session=False)
            )
    batch = await session.get(ContactBatch, batch_id, populate_existing=True)
    return Decided(batch, row is not None)


async def held_batches(session: AsyncSession) -> list[ContactBatch]:
    return list(await session.scalars(
        select(ContactBatch).where(ContactBatch.status == BatchStatus.HELD.value).order_by(ContactBatch.id)
    ))


@dataclass(frozen=True, slots=True)
class Discarded:
    batches: int
    customers: int


async def discarded_since(session: AsyncSession, since: datetime) -> Discarded:
    """For /stats: held batches an admin discarded, and the customers they would have reached."""
    batches, customers = (await session.execute(
        select(func.count(), func.coalesce(func.sum(ContactBatch.customers), 0))
        .where(ContactBatch.status == BatchStatus.DISCARDED.value, ContactBatch.decided_at >= since)
    )).one()
    return Discarded(int(batches), int(customers))
