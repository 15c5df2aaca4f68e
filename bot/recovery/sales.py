"""What the sales staff hear about recovery: a daily digest of substitutes taken and lines to
cancel, and a message at once when a substitute is taken for a large quantity.

Recipients are the users with the sales role; while there is none, the admins, so nothing is lost.
The digest is keyed per shop day (a `JobRun` row and per-user outbox dedup keys): running it twice,
or in two processes, sends it once. It covers everything since the previous digest.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import shop_today
from bot.db import dialect_insert
from bot.delivery.outbox import STAFF_PRIORITY, Outgoing, enqueue
from bot.models import (
    Customer,
    JobRun,
    OfferStatus,
    OrderLine,
    Product,
    Role,
    StockoutOffer,
    utcnow,
)
from bot.recovery.context import RecoveryContext
from bot.shop.staff import locale_of, staff_with_role

DIGEST_KEY = "sales-digest:"


async def sales_recipients(session: AsyncSession, admin_ids: frozenset[int]) -> list[int]:
    sales = await staff_with_role(session, Role.SALES)
    if sales:
        return sorted(sales)
    return sorted(set(admin_ids) | set(await staff_with_role(session, Role.ADMIN)))


async def notify_large_order(
    session: AsyncSession, recovery: RecoveryContext, offer: StockoutOffer, substitute: Product, qty: int
) -> None:
    customer = await session.get(Customer, offer.customer_id)
    product = await session.get(Product, offer.product_id)
    settings = recovery.settings
    for user_id in await sales_recipients(session, settings.ADMIN_IDS):
        locale = await locale_of(session, user_id, settings.DEFAULT_LOCALE)
        text = recovery.templates.label(
            locale, "recovery_sales_large", qty=qty, substitute=substitute.name, sku=substitute.sku,
            product=product.name if product else "", customer=customer.name if customer else "",
            external_id=customer.external_id if customer else "",
        )
        await enqueue(session, Outgoing(f"sales_large:{offer.id}:{user_id}", user_id, "sales_large", text,
                                        priority=STAFF_PRIORITY))


async def send_digest(session: AsyncSession, recovery: RecoveryContext, now: datetime | None = None) -> int:
    """Once per shop day, at or after DIGEST_TIME; returns how many staff were sent one."""
    now = now or utcnow()
    settings = recovery.settings
    zone = settings.zone
    local = now.astimezone(zone)
    if local.time() < settings.digest_time:
        return 0
    day = shop_today(zone, now).isoformat()
    previous = await session.scalar(
        select(JobRun.ran_at).where(JobRun.key.like(f"{DIGEST_KEY}%")).order_by(JobRun.ran_at.desc()).limit(1)
    )
    claimed = await session.execute(
        dialect_insert(session, JobRun.__table__)
        .values(key=f"{DIGEST_KEY}{day}", ran_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(JobRun.key)
    )
    if claimed.first() is None:
        return 0  # today's digest ran already
    since = previous or now - timedelta(days=7)  # the first digest ever: the last week
    rows = (
        await session.execute(
            select(StockoutOffer, Customer, Product)
            .join(Customer, Customer.id == StockoutOffer.customer_id)
            .join(Product, Product.id == StockoutOffer.product_id)
            .where(StockoutOffer.pressed_at >= since, StockoutOffer.pressed_at < now,
                   StockoutOffer.status.in_([OfferStatus.SUBSTITUTE_TAKEN.value, OfferStatus.CANCELLED.value]))
            .order_by(StockoutOffer.pressed_at)
        )
    ).all()
    if not rows:
        return 0
    chosen_ids = {offer.chosen_product_id for offer, _c, _p in rows if offer.chosen_product_id}
    chosen = {p.id: p for p in await session.scalars(select(Product).where(Product.id.in_(chosen_ids)))}
    line_ids = {offer.order_line_id for offer, _c, _p in rows if offer.order_line_id}
    qty = dict((await session.execute(select(OrderLine.id, OrderLine.qty).where(OrderLine.id.in_(line_ids)))).all())
    taken = [
        {"offer": o, "customer": c, "product": p, "substitute": chosen.get(o.chosen_product_id or 0),
         "qty": qty.get(o.order_line_id, 1)}
        for o, c, p in rows if o.status == OfferStatus.SUBSTITUTE_TAKEN.value
    ]
    cancelled = [
        {"offer": o, "customer": c, "product": p, "qty": qty.get(o.order_line_id, 0)}
        for o, c, p in rows if o.status == OfferStatus.CANCELLED.value
    ]
    sent = 0
    for user_id in await sales_recipients(session, settings.ADMIN_IDS):
        locale = await locale_of(session, user_id, settings.DEFAULT_LOCALE)
        text = recovery.templates.render(locale, "sales_digest", day=day, taken=taken, cancelled=cancelled,
                                         large=settings.LARGE_ORDER_QTY)
        if await enqueue(session, Outgoing(f"sales_digest:{day}:{user_id}", user_id, "sales_digest", text,
                                           priority=STAFF_PRIORITY)):
            sent += 1
    return sent
