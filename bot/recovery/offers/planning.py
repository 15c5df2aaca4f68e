"""Stockout offers, planning: who a stockout affects and what each of them is offered.

A product that runs out (an `out_of_stock` event), or an open order line that arrives while it is
out (`order_short`), starts a plan. Everyone affected (each open or backordered line of the
product, and its waitlist) gets one offer per stockout: the offer's unique key is (cause,
customer), where the cause is the stockout episode, i.e. the `out_of_stock` event that began it. A
replayed event or a late order line of someone already offered adds nothing.

Offers are written in batches, VIPs first: the first batch in the stock event's own transaction
(so a small stockout is complete when the event is), the rest by `continue_plans` in short
transactions of their own, so the first VIP message is queued at once, whatever the audience.
Each offer, its coupon and its outbox row are written together. Only customers who can be
messaged (a linked chat, not opted out, not blocked) are planned at all: an import of a shop whose
customers have not linked their chats yet costs nothing.
With HOLDOUT_PERCENT, the control group (`holdout.split`) gets an offer row marked `held_out`
and nothing else: no coupon, no message; the row keeps the draw, and the substitutes they would
have been offered, for the comparison.
Substitutes come from the in-memory catalog as it stands: planning never refreshes it (that would
take a second connection inside the event's transaction); the event consumer refreshes it first.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, chunked, dialect_insert
from bot.delivery.outbox import REGULAR_PRIORITY, VIP_PRIORITY, Outgoing, enqueue_many
from bot.inventory.catalog import Catalog, substitutes_for
from bot.inventory.stock import incoming_eta
from bot.inventory.substitutes import PriceBand
from bot.models import (
    OPEN_STATUSES,
    Customer,
    OfferStatus,
    Order,
    OrderLine,
    Product,
    StockEvent,
    StockEventKind,
    StockoutOffer,
    StockoutPlan,
    WaitlistEntry,
    WaitStatus,
    utcnow,
)
from bot.recovery import holdout
from bot.recovery.coupons import CouponRequest, issue_coupons
from bot.recovery.context import RecoveryContext
from bot.recovery.offers.message import OfferRenderer, SubView

FIRST_BATCH = 500  # written in the stock event's transaction: VIPs first
BATCH = 2500  # each further transaction of a large plan


async def stockout_cause(session: AsyncSession, event: StockEvent) -> int:
    """The stockout episode an event belongs to: the `out_of_stock` event that began it.

    An `order_short` event belongs to the episode of the product's latest crossing when that was
    running out; a product that never had stock has no such event, and the line's own event is
    the cause.
    """
    if event.kind == StockEventKind.OUT_OF_STOCK.value:
        return event.id
    latest = (
        await session.execute(
            select(StockEvent.id, StockEvent.kind)
            .where(
                StockEvent.product_id == event.product_id,
                StockEvent.id < event.id,
                StockEvent.kind.in_([StockEventKind.OUT_OF_STOCK.value, StockEventKind.BACK_IN_STOCK.value]),
            )
            .order_by(StockEvent.id.desc())
            .limit(1)
        )
    ).first()
    if latest is not None and latest.kind == StockEventKind.OUT_OF_STOCK.value:
        return int(latest.id)
    return event.id


async def start_plan(
    session: AsyncSession, recovery: RecoveryContext, event: StockEvent,
    substitutes: dict[int, list[SubView]] | None = None,
) -> StockoutPlan | None:
    """The stock event's reaction: open the plan and write its first batch (VIPs first).

    `substitutes`, shared by the caller across a product's events, holds each product's
    substitutes once worked out: they are the same for every customer of the stockout."""
    cause = await stockout_cause(session, event)
    inserted = await session.execute(
        dialect_insert(session, StockoutPlan.__table__)
        .values(product_id=event.product_id, cause_event_id=cause, event_id=event.id,
                order_line_id=event.order_line_id if event.kind == StockEventKind.ORDER_SHORT.value else None,
                planned=0, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(StockoutPlan.id)
    )
    plan_id = inserted.scalar_one_or_none()
    if plan_id is None:
        return None  # this event was planned before (a replay)
    if event.kind == StockEventKind.ORDER_SHORT.value and event.order_line_id is None:
        plan = await session.get(StockoutPlan, plan_id)
        assert plan is not None
        plan.finished_at = utcnow()
        return plan
    plan = await session.get(StockoutPlan, plan_id)
    assert plan is not None
    await plan_batch(session, recovery, plan, limit=FIRST_BATCH, substitutes=substitutes)
    return plan


async def continue_plans(db: Database, recovery: RecoveryContext, *, batch: int = BATCH) -> int:
    """Finish unfinished plans, one batch per transaction; safe in two processes at once."""
    total = 0
    while True:
        async with db.transaction() as session:
            plan = await session.scalar(
                select(StockoutPlan)
                .where(StockoutPlan.finished_at.is_(None))
                .order_by(StockoutPlan.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if plan is None:
                return total
            total += await plan_batch(session, recovery, plan, limit=batch)


@dataclass(slots=True)
class Target:
    customer_id: int
    name: str
    vip: bool
    chat_id: int | None
    locale: str | None
    contactable: bool
    line_id: int | None = None
    qty: int = 0
    since: datetime | None = None

    @property
    def rank(self) -> tuple[int, int, float, int]:
        return (0 if self.vip else 1, 0 if self.line_id else 1,
                self.since.timestamp() if self.since else 0.0, self.line_id or self.customer_id)


async def audience(session: AsyncSession, plan: StockoutPlan) -> list[Target]:
    """Everyone this plan still has to reach, VIPs first, then order lines, then the waitlist.

    Only customers the bot can message (a linked chat, not opted out, not blocked): the others
    would cost a plan and reach nobody."""
    offered = exists().where(
        StockoutOffer.cause_event_id == plan.cause_event_id, StockoutOffer.customer_id == Customer.id
    )
    customer_columns = (Customer.id, Customer.name, Customer.is_vip, Customer.chat_id, Customer.locale,
                        Customer.contactable)
    lines = (
        select(OrderLine.id, OrderLine.qty, Order.created_at, *customer_columns)
        .join(Order, Order.id == OrderLine.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(OrderLine.product_id == plan.product_id, OrderLine.status.in_(OPEN_STATUSES),
               OrderLine.cancel_requested_at.is_(None), Customer.contactable, ~offered)
        .order_by(OrderLine.id)
    )
    if plan.order_line_id is not None:
        lines = lines.where(OrderLine.id == plan.order_line_id)
    targets: dict[int, Target] = {}
    for line_id, qty, created, cid, name, vip, chat_id, locale, contactable in await session.execute(lines):
        if cid in targets:
            continue  # two orders with the product: one offer, about the first line
        targets[cid] = Target(cid, name, bool(vip), chat_id, locale, bool(contactable), line_id, qty, created)
    if plan.order_line_id is None:
        waiting = (
            select(WaitlistEntry.joined_at, *customer_columns)
            .join(Customer, Customer.id == WaitlistEntry.customer_id)
            .where(WaitlistEntry.product_id == plan.product_id,
                   WaitlistEntry.status == WaitStatus.WAITING.value, Customer.contactable, ~offered)
        )
        for joined, cid, name, vip, chat_id, locale, contactable in await session.execute(waiting):
            if cid not in targets:
                targets[cid] = Target(cid, name, bool(vip), chat_id, locale, bool(contactable), since=joined)
    return sorted(targets.values(), key=lambda t: t.rank)


async def current_substitutes(
    session: AsyncSession, catalog: Catalog, band: PriceBand, product: Product, *, exclude: Sequence[int] = (),
    min_qty: int = 1,
) -> list[SubView]:
    """Up to three in-stock substitutes (above their minimum, with `min_qty` available)."""
    found = await substitutes_for(session, catalog, product, band=band, limit=3 + len(exclude), exclude=exclude)
    views = [
        SubView(p.id, p.sku, p.name, p.price, p.price - product.price)
        for p, available, _diff in found
        if available >= min_qty
    ]
    return views[:3]


async def plan_batch(
    session: AsyncSession, recovery: RecoveryContext, plan: StockoutPlan, *, limit: int,
    substitutes: dict[int, list[SubView]] | None = None,
) -> int:
    """Write offers (with coupons and outbox rows) for the next `limit` of the audience."""
    targets = await audience(session, plan)
    batch = targets[:limit]
    if len(targets) <= limit:
        plan.finished_at = utcnow()
    if not batch:
        return 0
    product = await session.get(Product, plan.product_id)
    assert product is not None
    now = utcnow()
    cache = {} if substitutes is None else substitutes
    if product.id not in cache:
        cache[product.id] = await current_substitutes(session, recovery.catalog, recovery.band, product)
    subs = cache[product.id]
    eta = await incoming_eta(session, product.id)
    settings = recovery.settings
    drawn = holdout.split(batch, plan.cause_event_id, percent=settings.HOLDOUT_PERCENT, vips=settings.HOLDOUT_VIPS)
    held_out = {t.customer_id for t in drawn.held_out}

    grants = {
        t.customer_id: grant
        for t in drawn.offered
        if t.contactable and (grant := recovery.coupons.grant(vip=t.vip, has_order=t.line_id is not None))
    }
    coupons = await issue_coupons(
        session, product.id, plan.cause_event_id,
        [CouponRequest(cid, grant) for cid, grant in grants.items()], now=now,
    )
    # executemany ("insertmanyvalues"): one cached statement, batched by the driver layer.
    rows = await session.execute(
        dialect_insert(session, StockoutOffer.__table__)
        .on_conflict_do_nothing(index_elements=["cause_event_id", "customer_id"])
        .returning(StockoutOffer.id, StockoutOffer.customer_id),
        [
            {"product_id": product.id, "customer_id": t.customer_id, "order_line_id": t.line_id,
             "cause_event_id": plan.cause_event_id, "substitute_ids": [s.product_id for s in subs],
             "coupon_id": coupons[t.customer_id].id if t.customer_id in coupons else None,
             "status": OfferStatus.HELD_OUT.value if t.customer_id in held_out else OfferStatus.QUEUED.value,
             "revenue_cents": 0, "created_at": now, "contactable": t.contactable,
             "randomised": t.customer_id in drawn.randomised}
            for t in batch
        ],
    )
    offer_ids: dict[int, int] = {cid: oid for oid, cid in rows}

    renderer = OfferRenderer(recovery.templates, product, subs, eta)
    messages: list[Outgoing] = []
    offer_of_key: dict[str, int] = {}
    for t in drawn.offered:
        offer_id = offer_ids.get(t.customer_id)
        if offer_id is None or not t.contactable:
            continue  # offered already (a race), or cannot be messaged: the offer row records it
        assert t.chat_id is not None
        locale = recovery.customer_locale(t.locale)
        has_line = t.line_id is not None
        message = Outgoing(
            dedup_key=f"offer:{plan.cause_event_id}:{t.chat_id}", chat_id=t.chat_id, kind="stockout_offer",
            text=renderer.text(locale, name=t.name, qty=t.qty, has_line=has_line, coupon=coupons.get(t.customer_id)),
            reply_markup=renderer.buttons(locale, offer_id, has_line=has_line), customer_id=t.customer_id,
            priority=VIP_PRIORITY if t.vip else REGULAR_PRIORITY, to_customer=True, not_before=now,
        )
        messages.append(message)
        offer_of_key[message.dedup_key] = offer_id
    queued = await enqueue_many(session, messages)
    if queued:
        await session.execute(
            update(StockoutOffer),
            [{"id": offer_of_key[key], "notification_id": notification_id} for key, notification_id in queued.items()],
        )
    plan.planned += len(offer_ids)
    return len(offer_ids)


async def with_audience(session: AsyncSession, product_ids: Collection[int]) -> set[int]:
    """Of `product_ids`, those a stockout would reach someone for: an open order line or a
    waitlist entry of a customer the bot can message. The rest need no plan at all (one query
    per chunk for a whole batch)."""
    found: set[int] = set()
    for chunk in chunked(sorted(product_ids)):
        open_line = exists().where(
            OrderLine.product_id == Product.id, OrderLine.status.in_(OPEN_STATUSES),
            OrderLine.cancel_requested_at.is_(None), Order.id == OrderLine.order_id,
            Customer.id == Order.customer_id, Customer.contactable,
        )
        waiting = exists().where(
            WaitlistEntry.product_id == Product.id, WaitlistEntry.status == WaitStatus.WAITING.value,
            Customer.id == WaitlistEntry.customer_id, Customer.contactable,
        )
        found.update(await session.scalars(select(Product.id).where(Product.id.in_(chunk), or_(open_line, waiting))))
    return found
