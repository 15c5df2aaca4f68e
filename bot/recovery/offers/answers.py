"""Stockout offers, the answers: every press is checked against the customer's own, still open
offer (callback data can be forged). Taking a substitute reserves the order line's quantity of it
through the stock service for HOLD_HOURS; a substitute that sold out meanwhile is refused and the
next best offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.inventory.stock import shift_stock
from bot.models import (
    OPEN_STATUSES,
    Notification,
    NotificationState,
    OfferStatus,
    OrderLine,
    Product,
    Reservation,
    StockLevel,
    StockoutOffer,
    WaitlistEntry,
    utcnow,
)
from bot.recovery.context import RecoveryContext
from bot.recovery.offers.message import SubView, line_qty
from bot.recovery.offers.planning import current_substitutes
from bot.recovery.sales import notify_large_order
from bot.recovery.waitlist import join_waitlist

OPEN_OFFER_STATUSES = (OfferStatus.QUEUED.value, OfferStatus.SENT.value)


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
    if offer is None or offer.customer_id != customer_id or offer.status == OfferStatus.HELD_OUT.value:
        raise Refused("button_refused")  # held out: there was never an offer to answer
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
    session: AsyncSession, recovery: RecoveryContext, offer: StockoutOffer, product_id: int, *,
    now: datetime | None = None,
) -> Taken | SoldOut:
    if product_id not in (offer.substitute_ids or []):
        raise Refused("button_refused")
    now = now or utcnow()
    qty = max(await line_qty(session, offer), 1)
    substitute = await session.get(Product, product_id, with_for_update=True, populate_existing=True)
    if substitute is None:
        raise Refused("button_refused")
    warehouse_id = await _warehouse_with(session, substitute, qty)
    if warehouse_id is None:
        product = await session.get(Product, offer.product_id)
        assert product is not None
        next_best = await current_substitutes(
            session, recovery.catalog, recovery.band, product, exclude=[substitute.id], min_qty=qty
        )
        offer.substitute_ids = [s.product_id for s in next_best]
        return SoldOut(substitute, next_best)
    await shift_stock(session, substitute.id, warehouse_id, reserved_delta=qty)
    reservation = Reservation(
        product_id=substitute.id, warehouse_id=warehouse_id, customer_id=offer.customer_id, qty=qty,
        reason="substitute", offer_id=offer.id, expires_at=now + timedelta(hours=recovery.settings.HOLD_HOURS),
        created_at=now,
    )
    session.add(reservation)
    offer.status, offer.chosen_product_id, offer.pressed_at = OfferStatus.SUBSTITUTE_TAKEN.value, substitute.id, now
    offer.revenue_cents = qty * substitute.price_cents
    await session.flush()
    large = qty >= recovery.settings.LARGE_ORDER_QTY
    if large:
        await notify_large_order(session, recovery, offer, substitute, qty)
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
    session: AsyncSession, offer: StockoutOffer, *, waitlist_days: int, now: datetime | None = None,
) -> WaitlistEntry:
    entry, _fresh = await join_waitlist(session, offer.customer_id, offer.product_id, days=waitlist_days)
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
