"""The recovery funnel for /stats, and a customer's delivery log ("I never got it")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Customer, Notification, StockoutOffer
from bot.services import Services


@dataclass(frozen=True, slots=True)
class FunnelReport:
    since: datetime
    until: datetime
    offers: dict[str, int]
    delivery: dict[str, int]


async def build_report(session: AsyncSession, *, since: datetime, until: datetime, attribution_days: int) -> FunnelReport:
    offers = dict(
        (await session.execute(
            select(StockoutOffer.status, func.count())
            .where(StockoutOffer.created_at >= since, StockoutOffer.created_at < until)
            .group_by(StockoutOffer.status)
        )).all()
    )
    delivery = dict(
        (await session.execute(
            select(Notification.state, func.count())
            .where(Notification.created_at >= since, Notification.created_at < until)
            .group_by(Notification.state)
        )).all()
    )
    return FunnelReport(since, until, offers, delivery)


async def customer_log_text(session: AsyncSession, services: Services, locale: str, external_id: str) -> str | None:
    customer = await session.scalar(select(Customer).where(Customer.external_id == external_id))
    if customer is None:
        return None
    rows = list(
        await session.scalars(
            select(Notification).where(Notification.customer_id == customer.id)
            .order_by(Notification.created_at.desc()).limit(20)
        )
    )
    return services.templates.render(locale, "delivery_log", customer=customer, rows=rows)
