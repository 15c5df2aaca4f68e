"""Customer records and how a Telegram chat is linked to one."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import ids_by_key
from bot.models import Customer, InviteToken, utcnow
from bot.shop.orders import UpsertCount

TOKEN_BYTES = 16  # 128 bits: a deep link cannot be guessed
MAX_ZONE_NAME = 64  # customers.timezone is VARCHAR(64)
NAME_LIMIT = 256  # customers.name
EMAIL_LIMIT = 256  # customers.email
# An address's shape (something@somewhere.tld, no spaces): it catches a phone or a name typed in
# the wrong column; whether mail arrives is not ours to know.
EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class CustomerInput:
    external_id: str
    name: str
    tier: str
    phone: str | None = None  # already E.164
    email: str | None = None
    locale: str | None = None
    timezone: str | None = None  # an IANA name; see `zone_name`


def zone_name(value: str) -> str:
    """`value` if it is an IANA time zone this machine knows (quiet hours follow it), else ValueError."""
    if len(value) > MAX_ZONE_NAME:
        raise ValueError(f"{value[:MAX_ZONE_NAME]!r}... is not an IANA time zone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (such as Asia/Shanghai)") from None
    return value


async def upsert_customers(session: AsyncSession, customers: Sequence[CustomerInput]) -> UpsertCount:
    """Create or update customers by external id, set-based: one lookup, one insert and at most
    four updates (locale and time zone change only when given) whatever the batch size."""
    existing = await ids_by_key(session, Customer.external_id, Customer.id, {c.external_id for c in customers})
    now = utcnow()
    created = [
        {"external_id": c.external_id, "name": c.name, "tier": c.tier, "phone": c.phone, "email": c.email,
         "locale": c.locale, "timezone": c.timezone, "opted_out": False, "unreachable": False,
         "created_at": now, "updated_at": now}
        for c in customers if c.external_id not in existing
    ]
    if created:
        await session.execute(Customer.__table__.insert(), created)
    updated = []
    for given in customers:
        if given.external_id not in existing:
            continue
        row = {"id": existing[given.external_id], "name": given.name, "tier": given.tier,
               "phone": given.phone, "email": given.email, "updated_at": now}
        if given.locale:
            row["locale"] = given.locale
        if given.timezone:
            row["timezone"] = given.timezone
        updated.append(row)
    if updated:
        await session.execute(update(Customer), updated)
    return UpsertCount(created=len(created), updated=len(updated))


async def issue_invites(
    session: AsyncSession, external_id: str | None = None, *, ttl_days: int = 30, now: datetime | None = None,
) -> list[tuple[str, str]]:
    """A one-time token for each customer not yet linked (or the one asked for).

    A customer who already holds an unused token that stays valid for at least half its lifetime
    gets that one again, so running `customers invite` twice does not put two live links per
    customer into the world; a token nearer its end is replaced by a fresh one.
    """
    now = now or utcnow()
    query = select(Customer).where(Customer.telegram_user_id.is_(None)).order_by(Customer.external_id)
    if external_id is not None:
        query = query.where(Customer.external_id == external_id)
    customers = list(await session.scalars(query))
    reusable: dict[int, str] = {}
    if customers:
        rows = await session.execute(
            select(InviteToken.customer_id, InviteToken.token)
            .where(InviteToken.customer_id.in_([c.id for c in customers]), InviteToken.used_at.is_(None),
                   InviteToken.expires_at > now + timedelta(days=ttl_days) / 2)
            .order_by(InviteToken.expires_at)  # the latest wins below
        )
        reusable = {customer_id: token for customer_id, token in rows}
    issued = []
    for customer in customers:
        token = reusable.get(customer.id)
        if token is None:
            token = secrets.token_urlsafe(TOKEN_BYTES)
            session.add(InviteToken(token=token, customer_id=customer.id, expires_at=now + timedelta(days=ttl_days)))
        issued.append((customer.external_id, token))
    return issued


class LinkRefused(Exception):
    """Why a chat could not be linked, as a message key for the user's language."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def link_by_token(session: AsyncSession, token: str, user_id: int, chat_id: int) -> Customer:
    invite = await session.get(InviteToken, token[:64], with_for_update=True)
    if invite is None or invite.used_at is not None:
        raise LinkRefused("invite_invalid")
    if invite.expires_at is not None and invite.expires_at <= utcnow():
        raise LinkRefused("invite_expired")
    customer = await session.get(Customer, invite.customer_id)
    assert customer is not None
    if customer.telegram_user_id not in (None, user_id):
        raise LinkRefused("invite_invalid")
    invite.used_at = utcnow()
    await _link(session, customer, user_id, chat_id)
    return customer


async def link_by_phone(session: AsyncSession, phone_e164: str, user_id: int, chat_id: int) -> Customer:
    matches = list(await session.scalars(select(Customer).where(Customer.phone == phone_e164).limit(2)))
    if len(matches) != 1:
        raise LinkRefused("phone_unknown" if not matches else "phone_ambiguous")
    customer = matches[0]
    if customer.telegram_user_id not in (None, user_id):
        raise LinkRefused("phone_taken")
    await _link(session, customer, user_id, chat_id)
    return customer


async def _link(session: AsyncSession, customer: Customer, user_id: int, chat_id: int) -> None:
    # One Telegram account speaks for one customer record: unlink any earlier record first.
    await session.execute(
        update(Customer)
        .where(Customer.telegram_user_id == user_id, Customer.id != customer.id)
        .values(telegram_user_id=None, chat_id=None)
    )
    await session.flush()
    customer.telegram_user_id, customer.chat_id = user_id, chat_id
    customer.opted_out = customer.unreachable = False
    await session.flush()


async def customer_for_user(session: AsyncSession, user_id: int) -> Customer | None:
    return await session.scalar(select(Customer).where(Customer.telegram_user_id == user_id))
