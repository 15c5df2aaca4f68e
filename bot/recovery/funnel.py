"""The recovery funnel for /stats, and a customer's delivery log ("I never got it").

The funnel is a cohort: the offers created in the period, and what became of each of them (up to
now). Every outcome is recorded on the offer or its coupon when it happens:

- contacted: an offer message was queued (customers who cannot be messaged are counted apart);
- reached: that message was delivered (`Notification.state == sent`);
- pressed, substitute taken, waited, cancelled: the customer's answer (`pressed_at`, `status`);
- coupon redeemed: `Coupon.redeemed_at` (set by the redemption API);
- bought: an order by the customer, for the product or one of the offered substitutes, created (or
  fulfilled) within ATTRIBUTION_DAYS after the offer; recorded in `bought_at` by `attribute`, which
  a job runs. The report only reads: it counts what the job has recorded and, the same way, what it
  has yet to record.

Revenue kept is money that would otherwise have walked out with the stockout:
- a substitute taken: the line's quantity x the substitute's price (stored on the offer when taken);
- a coupon redeemed: what the customer paid on the redeemed order, i.e. the order's lines at
  current prices minus the coupon's discount (`redeemed_value_cents`); when the order is not known
  to Stockbot, one unit of the product minus the discount. The discount itself is a cost, not
  revenue, so it is never added.
Other purchases in the window are counted as "bought" but not added: a customer with an open
order would often have bought anyway, and counting it would flatter the bot. How much the offers
really add is measured against the control group (bot/recovery/comparison.py), whose rows the
funnel leaves out; `attribute` records their purchases all the same.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.delivery.templates import Templates
from bot.models import (
    Coupon,
    Customer,
    Notification,
    NotificationState,
    OfferStatus,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Restock,
    StockoutOffer,
    utcnow,
)

# The control group (bot/recovery/holdout.py) got no offer: the funnel is about offers made.
NOT_HELD_OUT = StockoutOffer.status != OfferStatus.HELD_OUT.value


@dataclass(frozen=True, slots=True)
class FunnelReport:
    since: datetime
    until: datetime
    offers: dict[str, int]  # offers by status
    delivery: dict[str, int]  # every outbox row of the period by state (failed ones included)
    affected: int = 0
    contacted: int = 0
    not_contactable: int = 0
    reached: int = 0
    pressed: int = 0
    substitute_taken: int = 0
    waited: int = 0
    cancelled: int = 0
    bought: int = 0
    coupons_issued: int = 0
    coupons_redeemed: int = 0
    revenue_substitutes_cents: int = 0
    revenue_redemptions_cents: int = 0
    restock_notified: int = 0
    outcomes: list[tuple[str, int, int]] = field(default_factory=list)  # (label key, count, base)

    @property
    def revenue_kept_cents(self) -> int:
        return self.revenue_substitutes_cents + self.revenue_redemptions_cents

    @staticmethod
    def rate(count: int, base: int) -> str:
        return f"{round(100 * count / base)}%" if base else "—"


async def _unattributed(
    session: AsyncSession, since: datetime, until: datetime, *, held_out: bool = True
) -> list[StockoutOffer]:
    """Offers of the period with no purchase recorded yet (with `held_out`, the control group's too)."""
    query = select(StockoutOffer).where(
        StockoutOffer.created_at >= since, StockoutOffer.created_at < until, StockoutOffer.bought_at.is_(None),
    )
    if not held_out:
        query = query.where(NOT_HELD_OUT)
    return list(await session.scalars(query))


@dataclass(frozen=True, slots=True)
class Purchase:
    at: datetime
    product_id: int
    order_external_id: str
    line_id: int
    value_cents: int  # the line's quantity x the product's current price


async def purchases_since(session: AsyncSession, customers: Collection[int], since: datetime) -> dict[int, list[Purchase]]:
    """Customer id -> their order lines (not cancelled) created, or fulfilled, since `since`. A
    line fulfilled after it was created is listed at both times: an open order line that the
    customer finally gets counts as a purchase when it ships. Reads only."""
    purchases: dict[int, list[Purchase]] = {}
    ordered = sorted(customers)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        rows = await session.execute(
            select(Order.customer_id, Order.external_id, Order.created_at, Order.updated_at, OrderLine.product_id,
                   OrderLine.status, OrderLine.id, OrderLine.qty * Product.price_cents)
            .join(OrderLine, OrderLine.order_id == Order.id)
            .join(Product, Product.id == OrderLine.product_id)
            .where(Order.customer_id.in_(chunk), OrderLine.status != OrderStatus.CANCELLED.value,
                   (Order.created_at >= since) | (Order.updated_at >= since))
        )
        for customer_id, external_id, created, updated, product_id, status, line_id, value in rows:
            found = purchases.setdefault(customer_id, [])
            found.append(Purchase(created, product_id, external_id, line_id, int(value or 0)))
            if status == OrderStatus.FULFILLED.value and updated > created:
                found.append(Purchase(updated, product_id, external_id, line_id, int(value or 0)))
    return purchases


class Attributable(Protocol):
    """What attribution reads of an offer (an offer row, or a row of those columns)."""

    @property
    def product_id(self) -> int: ...
    @property
    def substitute_ids(self) -> list[int] | None: ...
    @property
    def chosen_product_id(self) -> int | None: ...
    @property
    def created_at(self) -> datetime: ...


def attributable(offer: Attributable, purchases: Sequence[Purchase], window: timedelta) -> list[Purchase]:
    """The purchases that count for an offer: of the product or a substitute (the offered ones,
    and the one taken), within the window after the offer."""
    wanted = {offer.product_id, *(offer.substitute_ids or [])}
    if offer.chosen_product_id:
        wanted.add(offer.chosen_product_id)
    return [p for p in purchases if p.product_id in wanted and offer.created_at <= p.at <= offer.created_at + window]


async def find_purchases(
    session: AsyncSession, offers: list[StockoutOffer], *, attribution_days: int
) -> dict[int, tuple[datetime, str]]:
    """Offer id -> (when, order external id) of the first purchase within the window after each
    offer, by its customer, of the product or a substitute; offers with none are left out. Reads only."""
    if not offers:
        return {}
    window = timedelta(days=attribution_days)
    purchases = await purchases_since(
        session, {offer.customer_id for offer in offers}, min(offer.created_at for offer in offers)
    )
    found: dict[int, tuple[datetime, str]] = {}
    for offer in offers:
        hits = attributable(offer, purchases.get(offer.customer_id, ()), window)
        if hits:
            found[offer.id] = min((p.at, p.order_external_id) for p in hits)
    return found


async def attribute(session: AsyncSession, *, since: datetime, until: datetime, attribution_days: int) -> int:
    """Record `bought_at` on offers of the period whose customer then bought the product or a
    substitute within the window; returns how many were newly attributed."""
    offers = await _unattributed(session, since, until)
    found = await find_purchases(session, offers, attribution_days=attribution_days)
    for offer in offers:
        if offer.id in found:
            offer.bought_at, offer.bought_order_external_id = found[offer.id]
    await session.flush()
    return len(found)


async def build_report(session: AsyncSession, *, since: datetime, until: datetime, attribution_days: int) -> FunnelReport:
    """The funnel of the offers made in [since, until). Reads only (a report must not write): a
    purchase not recorded yet is counted as `attribute` would record it, so the figures do not
    wait for the job."""
    not_yet_recorded = await find_purchases(
        session, await _unattributed(session, since, until, held_out=False), attribution_days=attribution_days
    )
    in_period = (StockoutOffer.created_at >= since, StockoutOffer.created_at < until, NOT_HELD_OUT)
    offers = dict(
        (await session.execute(
            select(StockoutOffer.status, func.count()).where(*in_period).group_by(StockoutOffer.status)
        )).all()
    )
    delivery = dict(
        (await session.execute(
            select(Notification.state, func.count())
            .where(Notification.created_at >= since, Notification.created_at < until)
            .group_by(Notification.state)
        )).all()
    )
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(StockoutOffer.contactable.is_(True)),
                func.count(Notification.id).filter(Notification.state == NotificationState.SENT.value),
                func.count(StockoutOffer.pressed_at),
                func.count(StockoutOffer.bought_at),
                func.count(StockoutOffer.coupon_id),
                func.coalesce(
                    func.sum(StockoutOffer.revenue_cents).filter(
                        StockoutOffer.status == OfferStatus.SUBSTITUTE_TAKEN.value), 0),
            )
            .select_from(StockoutOffer)
            .outerjoin(Notification, Notification.id == StockoutOffer.notification_id)
            .where(*in_period)
        )
    ).one()
    affected, contacted, reached, pressed, recorded_bought, coupons_issued, revenue_substitutes = (
        int(v or 0) for v in row
    )
    bought = recorded_bought + len(not_yet_recorded)
    redeemed = (
        await session.execute(
            select(Coupon.id, Coupon.redeemed_value_cents, Coupon.redeemed_order_external_id, Product.price_cents)
            .join(StockoutOffer, StockoutOffer.coupon_id == Coupon.id)
            .join(Product, Product.id == Coupon.product_id)
            .where(*in_period, Coupon.redeemed_at.is_not(None))
        )
    ).all()
    revenue_redemptions = await _redemption_revenue(session, redeemed)
    restock_notified = int(
        await session.scalar(
            select(func.coalesce(func.sum(Restock.notified), 0)).where(
                Restock.created_at >= since, Restock.created_at < until
            )
        ) or 0
    )
    taken = offers.get(OfferStatus.SUBSTITUTE_TAKEN.value, 0)
    waited = offers.get(OfferStatus.WAITED.value, 0)
    cancelled = offers.get(OfferStatus.CANCELLED.value, 0)
    outcomes = [
        ("stats_reached", reached, contacted),
        ("stats_pressed", pressed, reached),
        ("stats_taken", taken, reached),
        ("stats_waited", waited, reached),
        ("stats_cancelled", cancelled, reached),
        ("stats_bought", bought, contacted),
    ]
    return FunnelReport(
        since, until, offers, delivery, affected=affected, contacted=contacted,
        not_contactable=affected - contacted, reached=reached, pressed=pressed, substitute_taken=taken,
        waited=waited, cancelled=cancelled, bought=bought, coupons_issued=coupons_issued,
        coupons_redeemed=len(redeemed), revenue_substitutes_cents=revenue_substitutes,
        revenue_redemptions_cents=revenue_redemptions, restock_notified=restock_notified, outcomes=outcomes,
    )


async def _redemption_revenue(session: AsyncSession, redeemed: list) -> int:  # type: ignore[type-arg]
    orders = {external_id for _id, _value, external_id, _price in redeemed if external_id}
    order_value: dict[str, int] = {}
    if orders:
        rows = await session.execute(
            select(Order.external_id, func.sum(OrderLine.qty * Product.price_cents))
            .join(OrderLine, OrderLine.order_id == Order.id)
            .join(Product, Product.id == OrderLine.product_id)
            .where(Order.external_id.in_(orders), OrderLine.status != OrderStatus.CANCELLED.value)
            .group_by(Order.external_id)
        )
        order_value = {external_id: int(value or 0) for external_id, value in rows}
    total = 0
    for _id, discount, external_id, price in redeemed:
        paid = order_value.get(external_id, price) if external_id else price
        total += max(paid - (discount or 0), 0)
    return total


async def customer_log_text(session: AsyncSession, templates: Templates, locale: str, external_id: str) -> str | None:
    customer = await session.scalar(select(Customer).where(Customer.external_id == external_id))
    if customer is None:
        return None
    rows = list(
        await session.scalars(
            select(Notification).where(Notification.customer_id == customer.id)
            .order_by(Notification.created_at.desc()).limit(20)
        )
    )
    return templates.render(locale, "delivery_log", customer=customer, rows=rows)


async def attribute_recent(db: Database, *, attribution_days: int) -> int:
    """The job: attribute purchases to the offers of the last attribution window."""
    now = utcnow()
    async with db.transaction() as session:
        return await attribute(session, since=now - timedelta(days=attribution_days + 1), until=now,
                               attribution_days=attribution_days)
