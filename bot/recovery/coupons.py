"""Stockout coupons: who gets one (the policy in settings), and unguessable single-use codes.

A code is drawn from `secrets` over an alphabet without look-alike characters (no 0/O, 1/I/L,
no 5/S, 2/Z or 8/B), so it can be read aloud or typed from a screenshot. Twelve characters of a
27-letter alphabet are about 57 bits: guessing one live code is hopeless. Codes are unique (a key);
one coupon per customer per stockout is a unique key too, so a replayed stockout issues none again.
Redemption (once, before expiry) is `bot/recovery/redemption.py`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert
from bot.models import Coupon, utcnow
from bot.settings import Settings

ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"  # no 0 O 1 I L 5 S 2 Z 8 B
CODE_LENGTH = 12
GROUP = 4


def new_code() -> str:
    """E.g. `K7QX-93TM-HW4R`: grouped for reading, 12 random characters."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, CODE_LENGTH, GROUP))


@dataclass(frozen=True, slots=True)
class Grant:
    percent: int
    days: int


@dataclass(frozen=True, slots=True)
class CouponPolicy:
    """What the coupon policy grants: VIPs the most, a regular with an open order line less, and
    a regular who is only on the waitlist (by default) nothing. A 0 % setting grants nothing.
    Read from the settings once, at start-up (`RecoveryContext`)."""

    vip: Grant
    order: Grant
    waitlist: Grant

    @classmethod
    def from_settings(cls, settings: Settings) -> CouponPolicy:
        return cls(
            vip=Grant(settings.COUPON_VIP_PERCENT, settings.COUPON_VIP_DAYS),
            order=Grant(settings.COUPON_ORDER_PERCENT, settings.COUPON_ORDER_DAYS),
            waitlist=Grant(settings.COUPON_WAITLIST_PERCENT, settings.COUPON_WAITLIST_DAYS),
        )

    def grant(self, *, vip: bool, has_order: bool) -> Grant | None:
        grant = self.vip if vip else self.order if has_order else self.waitlist
        return grant if grant.percent > 0 else None


@dataclass(frozen=True, slots=True)
class CouponRequest:
    customer_id: int
    grant: Grant


async def issue_coupons(
    session: AsyncSession, product_id: int, cause_event_id: int, requests: Sequence[CouponRequest],
    *, now: datetime | None = None,
) -> dict[int, Coupon]:
    """Issue one coupon per customer for this stockout (or find the one issued before).

    Returns customer id -> coupon. Bulk inserts with ON CONFLICT DO NOTHING: the
    (customer, cause) key makes a replay issue nothing new; a (vanishingly rare) code collision
    simply leaves that customer out of the insert, and the loop draws a fresh code for them.
    """
    now = now or utcnow()
    wanted = {request.customer_id: request.grant for request in requests}
    found: dict[int, Coupon] = {}
    for _attempt in range(5):
        missing = [cid for cid in wanted if cid not in found]
        if not missing:
            break
        await session.execute(
            dialect_insert(session, Coupon.__table__).on_conflict_do_nothing(),
            [
                {"code": new_code(), "customer_id": cid, "product_id": product_id,
                 "cause_event_id": cause_event_id, "percent": wanted[cid].percent,
                 "expires_at": now + timedelta(days=wanted[cid].days), "redeemed_value_cents": 0,
                 "created_at": now}
                for cid in missing
            ],
        )
        for chunk in _chunks(missing, 400):
            rows = await session.scalars(
                select(Coupon).where(Coupon.cause_event_id == cause_event_id, Coupon.customer_id.in_(chunk))
            )
            found.update({coupon.customer_id: coupon for coupon in rows})
    return found


async def mark_expired(session: AsyncSession, now: datetime | None = None) -> int:
    """Unredeemed coupons past their expiry are marked (for the funnel); safe to run twice."""
    now = now or utcnow()
    result = await session.execute(
        update(Coupon)
        .where(Coupon.redeemed_at.is_(None), Coupon.expired_at.is_(None), Coupon.expires_at < now)
        .values(expired_at=now)
        .returning(Coupon.id)
    )
    return len(result.all())


def _chunks(items: Sequence[int] | Iterable[int], size: int) -> Iterable[list[int]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]
