"""Stockout offers: who a stockout affects, what each of them is offered, and their answers.

Planning. A product that runs out (an `out_of_stock` event), or an open order line that arrives
while it is out (`order_short`), starts a plan. Everyone affected (each open or backordered line of
the product, and its waitlist) gets one offer per stockout: the offer's unique key is
(cause, customer), where the cause is the stockout episode, i.e. the `out_of_stock` event that began
it. A replayed event or a late order line of someone already offered adds nothing.

Offers are written in batches, VIPs first: the first batch in the stock event's own transaction
(so a small stockout is complete when the event is), the rest by `continue_plans` in short
transactions of their own, so the first VIP message is queued at once, whatever the audience.
Each offer, its coupon and its outbox row are written together; customers who cannot be messaged
(no Telegram chat, opted out, blocked) get an offer row marked not contactable and no message.

Answers. Every press is checked against the customer's own, still open offer (callback data
can be forged). Taking a substitute reserves the order line's quantity of it through the stock
service for HOLD_HOURS; a substitute that sold out meanwhile is refused and the next best offered.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from markupsafe import Markup
from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert
from bot.delivery.markup import Button, keyboard, pack
from bot.delivery.outbox import REGULAR_PRIORITY, VIP_PRIORITY
from bot.inventory.catalog import substitutes_for
from bot.inventory.stock import shift_stock
from bot.models import (
    OPEN_STATUSES,
    Coupon,
    Customer,
    Notification,
    NotificationState,
    OfferStatus,
    Order,
    OrderLine,
    Product,
    Reservation,
    StockEvent,
    StockEventKind,
    StockLevel,
    StockoutOffer,
    StockoutPlan,
    WaitlistEntry,
    WaitStatus,
    utcnow,
)
from bot.recovery.coupons import CouponRequest, issue_coupons, policy
from bot.inventory.substitutes import PriceBand
from bot.recovery.waitlist import join_waitlist
from bot.services import Services

log = logging.getLogger(__name__)

OFFER_PREFIX = "of"
FIRST_BATCH = 500  # written in the stock event's transaction: VIPs first
BATCH = 2500  # each further transaction of a large plan
OPEN_OFFER_STATUSES = (OfferStatus.QUEUED.value, OfferStatus.SENT.value)
MAX_BUTTON_NAME = 40


def band_of(services: Services) -> PriceBand:
    return PriceBand.from_settings(services.settings)


# --- planning ------------------------------------------------------------------------------------


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


async def start_plan(session: AsyncSession, services: Services, event: StockEvent) -> StockoutPlan | None:
    """The stock event's reaction: open the plan and write its first batch (VIPs first)."""
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
    try:
        await services.catalog.refresh(services.db)
    except Exception:  # a stale index still gives substitutes; the periodic refresh catches up
        log.warning("catalog refresh before planning failed", exc_info=True)
    plan = await session.get(StockoutPlan, plan_id)
    assert plan is not None
    await plan_batch(session, services, plan, limit=FIRST_BATCH)
    return plan


async def continue_plans(services: Services, *, batch: int = BATCH) -> int:
    """Finish unfinished plans, one batch per transaction; safe in two processes at once."""
    total = 0
    while True:
        async with services.db.transaction() as session:
            plan = await session.scalar(
                select(StockoutPlan)
                .where(StockoutPlan.finished_at.is_(None))
                .order_by(StockoutPlan.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if plan is None:
                return total
            total += await plan_batch(session, services, plan, limit=batch)


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
    """Everyone this plan still has to reach, VIPs first, then order lines, then the waitlist."""
    offered = exists().where(
        StockoutOffer.cause_event_id == plan.cause_event_id, StockoutOffer.customer_id == Customer.id
    )
    customer_columns = (Customer.id, Customer.name, Customer.tier, Customer.chat_id, Customer.locale,
                        Customer.opted_out, Customer.unreachable)
    lines = (
        select(OrderLine.id, OrderLine.qty, Order.created_at, *customer_columns)
        .join(Order, Order.id == OrderLine.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(OrderLine.product_id == plan.product_id, OrderLine.status.in_(OPEN_STATUSES),
               OrderLine.cancel_requested_at.is_(None), ~offered)
        .order_by(OrderLine.id)
    )
    if plan.order_line_id is not None:
        lines = lines.where(OrderLine.id == plan.order_line_id)
    targets: dict[int, Target] = {}
    for line_id, qty, created, cid, name, tier, chat_id, locale, opted_out, unreachable in await session.execute(lines):
        if cid in targets:
            continue  # two orders with the product: one offer, about the first line
        targets[cid] = Target(cid, name, tier == "vip", chat_id, locale,
                              _contactable(chat_id, opted_out, unreachable), line_id, qty, created)
    if plan.order_line_id is None:
        waiting = (
            select(WaitlistEntry.joined_at, *customer_columns)
            .join(Customer, Customer.id == WaitlistEntry.customer_id)
            .where(WaitlistEntry.product_id == plan.product_id,
                   WaitlistEntry.status == WaitStatus.WAITING.value, ~offered)
        )
        for joined, cid, name, tier, chat_id, locale, opted_out, unreachable in await session.execute(waiting):
            if cid not in targets:
                targets[cid] = Target(cid, name, tier == "vip", chat_id, locale,
                                      _contactable(chat_id, opted_out, unreachable), since=joined)
    return sorted(targets.values(), key=lambda t: t.rank)


def _contactable(chat_id: int | None, opted_out: bool, unreachable: bool) -> bool:
    return chat_id is not None and not opted_out and not unreachable


@dataclass(frozen=True, slots=True)
class SubView:
    product_id: int
    sku: str
    name: str
    price: Decimal
    diff: Decimal  # substitute price - product price


async def current_substitutes(
    session: AsyncSession, services: Services, product: Product, *, exclude: Sequence[int] = (), min_qty: int = 1,
) -> list[SubView]:
    """Up to three in-stock substitutes (above their minimum, with `min_qty` available)."""
    found = await substitutes_for(session, services.catalog, product, band=band_of(services), limit=3 + len(exclude),
                                  exclude=exclude)
    views = [
        SubView(p.id, p.sku, p.name, p.price, p.price - product.price)
        for p, available, _diff in found
        if available >= min_qty
    ]
    return views[:3]


async def incoming_eta(session: AsyncSession, product_id: int) -> datetime | None:
    """When more is expected: the earliest ETA a purchaser gave when marking it ordered."""
    return await session.scalar(
        select(func.min(StockLevel.incoming_eta)).where(
            StockLevel.product_id == product_id, StockLevel.incoming > 0, StockLevel.incoming_eta.is_not(None)
        )
    )


async def plan_batch(session: AsyncSession, services: Services, plan: StockoutPlan, *, limit: int) -> int:
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
    subs = await current_substitutes(session, services, product)
    eta = await incoming_eta(session, product.id)
    settings = services.settings

    grants = {
        t.customer_id: grant
        for t in batch
        if t.contactable and (grant := policy(settings, vip=t.vip, has_order=t.line_id is not None))
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
             "status": OfferStatus.QUEUED.value, "revenue_cents": 0, "created_at": now,
             "contactable": t.contactable}
            for t in batch
        ],
    )
    offer_ids: dict[int, int] = {cid: oid for oid, cid in rows}

    renderer = OfferRenderer(services, product, subs, eta)
    messages: list[dict[str, Any]] = []
    for t in batch:
        offer_id = offer_ids.get(t.customer_id)
        if offer_id is None or not t.contactable:
            continue  # offered already (a race), or cannot be messaged: the offer row records it
        assert t.chat_id is not None
        locale = services.templates.locale(t.locale or settings.DEFAULT_LOCALE, settings.DEFAULT_LOCALE)
        coupon = coupons.get(t.customer_id)
        text = renderer.text(locale, name=t.name, qty=t.qty, has_line=t.line_id is not None, coupon=coupon)
        markup = renderer.buttons(locale, offer_id, has_line=t.line_id is not None)
        messages.append({
            "dedup_key": f"offer:{plan.cause_event_id}:{t.chat_id}", "chat_id": t.chat_id,
            "customer_id": t.customer_id, "kind": "stockout_offer", "text": text, "reply_markup": markup,
            "priority": VIP_PRIORITY if t.vip else REGULAR_PRIORITY, "to_customer": True,
            "state": NotificationState.PENDING.value, "not_before": now, "attempts": 0, "created_at": now,
            "_offer": offer_id,
        })
    links: list[dict[str, int]] = []
    if messages:
        by_key = {m["dedup_key"]: m.pop("_offer") for m in messages}
        rows = await session.execute(
            dialect_insert(session, Notification.__table__)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(Notification.id, Notification.dedup_key),
            messages,
        )
        links = [{"id": by_key[key], "notification_id": nid} for nid, key in rows]
    if links:
        await session.execute(update(StockoutOffer), links)
    plan.planned += len(offer_ids)
    if messages:
        services.wake_sender()
    return len(offer_ids)


# --- rendering -----------------------------------------------------------------------------------


class OfferRenderer:
    """Renders one product's offer for many customers: the shared parts are computed once."""

    def __init__(self, services: Services, product: Product, subs: Sequence[SubView], eta: datetime | None) -> None:
        self.services = services
        self.product = product
        self.subs = list(subs)
        self.eta = eta
        self._labels: dict[str, dict[str, str]] = {}

    def _label(self, locale: str, key: str, **context: Any) -> str:
        return self.services.templates.label(locale, key, **context)

    def text(self, locale: str, *, name: str, qty: int, has_line: bool, coupon: Coupon | None,
             done: str | None = None) -> str:
        return self.services.templates.render(
            locale, "stockout_offer", product=self.product, customer_name=name, qty=qty, has_line=has_line,
            subs=self.subs, eta=self.eta, coupon=coupon, done=Markup(done) if done else None,
        )

    def buttons(self, locale: str, offer_id: int, *, has_line: bool) -> dict[str, Any] | None:
        labels = self._labels.get(locale)
        if labels is None:
            labels = self._labels[locale] = {
                **{f"take{s.product_id}": button_text(self._label(
                    locale, "recovery_btn_take", name=_short(s.name), price=_money(s.price)))
                   for s in self.subs},
                "wait": button_text(self._label(locale, "recovery_btn_wait")),
                "cancel": button_text(self._label(locale, "recovery_btn_cancel")),
            }
        rows = [[Button(labels[f"take{s.product_id}"], pack(OFFER_PREFIX, "take", offer_id, s.product_id))]
                for s in self.subs]
        rows.append([Button(labels["wait"], pack(OFFER_PREFIX, "wait", offer_id, 0))])
        if has_line:
            rows.append([Button(labels["cancel"], pack(OFFER_PREFIX, "cancel", offer_id, 0))])
        return keyboard(rows)


def button_text(label: str) -> str:
    """Buttons are plain text: undo the HTML escaping labels get."""
    return html.unescape(label)


def _short(name: str) -> str:
    return name if len(name) <= MAX_BUTTON_NAME else name[: MAX_BUTTON_NAME - 1] + "…"


def _money(value: Decimal) -> str:
    from bot.delivery.templates import money

    return money(value)


async def renderer_for(session: AsyncSession, services: Services, offer: StockoutOffer) -> OfferRenderer:
    """A renderer for an existing offer, with the substitutes it offers now."""
    product = await session.get(Product, offer.product_id)
    assert product is not None
    ids = list(offer.substitute_ids or [])
    loaded = {p.id: p for p in await session.scalars(select(Product).where(Product.id.in_(ids)))} if ids else {}
    subs = [SubView(p.id, p.sku, p.name, p.price, p.price - product.price) for i in ids if (p := loaded.get(i))]
    return OfferRenderer(services, product, subs, await incoming_eta(session, product.id))


async def render_offer(
    session: AsyncSession, services: Services, offer: StockoutOffer, locale: str, *, done: str | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """The offer's text (with `done`, the outcome, when answered) and its buttons (none when done)."""
    renderer = await renderer_for(session, services, offer)
    customer = await session.get(Customer, offer.customer_id)
    coupon = await session.get(Coupon, offer.coupon_id) if offer.coupon_id else None
    qty = await _line_qty(session, offer)
    has_line = offer.order_line_id is not None
    text = renderer.text(locale, name=customer.name if customer else "", qty=qty, has_line=has_line,
                         coupon=coupon, done=done)
    markup = None if done else renderer.buttons(locale, offer.id, has_line=has_line)
    return text, markup


async def _line_qty(session: AsyncSession, offer: StockoutOffer) -> int:
    if offer.order_line_id is None:
        return 0
    return int(await session.scalar(select(OrderLine.qty).where(OrderLine.id == offer.order_line_id)) or 0)


# --- answers -------------------------------------------------------------------------------------


class Refused(Exception):
    """The press does not fit the customer's own open offer; nothing was changed."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def own_open_offer(
    session: AsyncSession, offer_id: int, customer_id: int, *, chat_id: int | None = None,
    message_id: int | None = None,
) -> StockoutOffer:
    """The customer's own offer, locked, still unanswered; raises `Refused` otherwise.

    With `chat_id`/`message_id` (where the button was pressed), the press must also come from the
    message the offer was sent as.
    """
    offer = await session.get(StockoutOffer, offer_id, with_for_update=True, populate_existing=True)
    if offer is None or offer.customer_id != customer_id:
        raise Refused("button_refused")
    if message_id is not None and offer.notification_id is not None:
        sent = (
            await session.execute(
                select(Notification.chat_id, Notification.telegram_message_id)
                .where(Notification.id == offer.notification_id)
            )
        ).first()
        if sent is not None and sent.telegram_message_id is not None and (
            sent.telegram_message_id != message_id or (chat_id is not None and sent.chat_id != chat_id)
        ):
            raise Refused("button_refused")  # this offer's buttons are on another message
    if offer.status not in OPEN_OFFER_STATUSES:
        raise Refused("recovery_already_answered")
    return offer


@dataclass(frozen=True, slots=True)
class Taken:
    substitute: Product
    qty: int
    reservation: Reservation
    large: bool


@dataclass(frozen=True, slots=True)
class SoldOut:
    """The chosen substitute has run out; the offer now shows `next` instead."""

    substitute: Product
    next: list[SubView]


async def take_substitute(
    session: AsyncSession, services: Services, offer: StockoutOffer, product_id: int, *, now: datetime | None = None,
) -> Taken | SoldOut:
    if product_id not in (offer.substitute_ids or []):
        raise Refused("button_refused")
    now = now or utcnow()
    qty = max(await _line_qty(session, offer), 1)
    substitute = await session.get(Product, product_id, with_for_update=True, populate_existing=True)
    if substitute is None:
        raise Refused("button_refused")
    warehouse_id = await _warehouse_with(session, substitute, qty)
    if warehouse_id is None:
        product = await session.get(Product, offer.product_id)
        assert product is not None
        next_best = await current_substitutes(
            session, services, product, exclude=[substitute.id], min_qty=qty
        )
        offer.substitute_ids = [s.product_id for s in next_best]
        return SoldOut(substitute, next_best)
    await shift_stock(session, substitute.id, warehouse_id, reserved_delta=qty)
    reservation = Reservation(
        product_id=substitute.id, warehouse_id=warehouse_id, customer_id=offer.customer_id, qty=qty,
        reason="substitute", offer_id=offer.id, expires_at=now + timedelta(hours=services.settings.HOLD_HOURS),
        created_at=now,
    )
    session.add(reservation)
    offer.status, offer.chosen_product_id, offer.pressed_at = OfferStatus.SUBSTITUTE_TAKEN.value, substitute.id, now
    offer.revenue_cents = qty * substitute.price_cents
    await session.flush()
    large = qty >= services.settings.LARGE_ORDER_QTY
    if large:
        from bot.recovery.sales import notify_large_order

        await notify_large_order(session, services, offer, substitute, qty)
    return Taken(substitute, qty, reservation, large)


async def _warehouse_with(session: AsyncSession, product: Product, qty: int) -> int | None:
    """A warehouse that can hold `qty` of the product for the customer, or None when it cannot
    (sold out, or no longer above its minimum)."""
    available = product.available
    if available < qty or available <= product.safety_stock:
        return None
    return await session.scalar(
        select(StockLevel.warehouse_id)
        .where(StockLevel.product_id == product.id, StockLevel.on_hand - StockLevel.reserved >= qty)
        .order_by((StockLevel.on_hand - StockLevel.reserved).desc(), StockLevel.warehouse_id)
        .limit(1)
    )


async def wait_for_restock(
    session: AsyncSession, services: Services, offer: StockoutOffer, *, now: datetime | None = None,
) -> WaitlistEntry:
    entry, _fresh = await join_waitlist(session, offer.customer_id, offer.product_id,
                                        days=services.settings.WAITLIST_DAYS)
    offer.status, offer.pressed_at = OfferStatus.WAITED.value, now or utcnow()
    return entry


async def cancel_line(session: AsyncSession, offer: StockoutOffer, *, now: datetime | None = None) -> OrderLine:
    if offer.order_line_id is None:
        raise Refused("button_refused")
    line = await session.get(OrderLine, offer.order_line_id, with_for_update=True)
    if line is None or line.status not in OPEN_STATUSES:
        raise Refused("recovery_line_gone")
    now = now or utcnow()
    line.cancel_requested_at = line.cancel_requested_at or now
    offer.status, offer.pressed_at = OfferStatus.CANCELLED.value, now
    return line


async def mark_sent_offers(session: AsyncSession) -> int:
    """Offers whose message went out move from queued to sent (for the funnel and the log)."""
    sent = select(Notification.id).where(
        Notification.id == StockoutOffer.notification_id, Notification.state == NotificationState.SENT.value
    )
    result = await session.execute(
        update(StockoutOffer)
        .where(StockoutOffer.status == OfferStatus.QUEUED.value, StockoutOffer.notification_id.is_not(None),
               exists(sent))
        .values(status=OfferStatus.SENT.value)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
