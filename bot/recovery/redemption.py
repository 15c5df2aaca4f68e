"""Redeeming a stockout coupon, once.

The coupon row is locked for the check and the write (`SELECT ... FOR UPDATE` on PostgreSQL; on
SQLite the write transaction's `BEGIN IMMEDIATE` already serialises writers), so two racing
redemptions of one code give one success and one "already redeemed".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Coupon, Product, cents_to_decimal, utcnow

MAX_CODE = 32


class RedeemStatus(enum.StrEnum):
    REDEEMED = "redeemed"
    NOT_FOUND = "not_found"
    ALREADY_REDEEMED = "already_redeemed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RedeemOutcome:
    status: RedeemStatus
    code: str
    percent: int | None = None
    redeemed_at: datetime | None = None
    value_cents: int | None = None
    expires_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status is RedeemStatus.REDEEMED

    @property
    def value(self) -> Decimal | None:
        return None if self.value_cents is None else cents_to_decimal(self.value_cents)


def coupon_value_cents(price_cents: int, percent: int) -> int:
    """`percent` of the price in whole cents, half a cent rounded up."""
    exact = Decimal(price_cents) * Decimal(percent) / Decimal(100)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def redeem_coupon(
    session: AsyncSession, code: str, order_external_id: str | None, *, now: datetime | None = None
) -> RedeemOutcome:
    """Redeem `code` in the caller's write transaction (which commits it).

    Customers type codes, so any case is accepted: codes are issued in upper case only (the
    alphabet has no look-alikes to fold), and matching the normalised text keeps the unique index.
    """
    code = code.strip().upper()
    if not code or len(code) > MAX_CODE:
        return RedeemOutcome(RedeemStatus.NOT_FOUND, code)
    coupon = await session.scalar(
        select(Coupon).where(Coupon.code == code).with_for_update()
        # The locked row must be read fresh, not from the session's identity map.
        .execution_options(populate_existing=True)
    )
    if coupon is None:
        return RedeemOutcome(RedeemStatus.NOT_FOUND, code)
    if coupon.redeemed_at is not None:
        return RedeemOutcome(
            RedeemStatus.ALREADY_REDEEMED, coupon.code, coupon.percent, coupon.redeemed_at,
            coupon.redeemed_value_cents, coupon.expires_at,
        )
    now = now or utcnow()
    if coupon.expires_at < now:
        return RedeemOutcome(
            RedeemStatus.EXPIRED, coupon.code, coupon.percent, expires_at=coupon.expires_at
        )
    price_cents = await session.scalar(
        select(Product.price_cents).where(Product.id == coupon.product_id)
    )
    coupon.redeemed_at = now
    coupon.redeemed_order_external_id = order_external_id
    coupon.redeemed_value_cents = coupon_value_cents(price_cents or 0, coupon.percent)
    await session.flush()
    return RedeemOutcome(
        RedeemStatus.REDEEMED, coupon.code, coupon.percent, now,
        coupon.redeemed_value_cents, coupon.expires_at,
    )
