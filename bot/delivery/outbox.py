"""The outbox: every message the bot sends on its own is a row, written in the transaction that
decided to send it. The dedup key makes "at most once per cause per chat" a unique constraint.

Claiming is where the rules that hold at send time are applied: opted-out and unreachable
customers get nothing, quiet hours and the daily cap postpone customer messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import shop_today
from bot.db import OUTBOX, chunked, dialect_insert, signal_after_commit
from bot.delivery.chat_order import keep_chat_order
from bot.delivery.quiet import next_local_midnight, quiet_until
from bot.delivery.templates import TELEGRAM_TEXT_LIMIT
from bot.models import Customer, DailyMessageCount, Notification, NotificationState, utcnow
from bot.process import dead_local_holders, holder_id

VIP_PRIORITY = 10
STAFF_PRIORITY = 50
REGULAR_PRIORITY = 100
LEASE = timedelta(minutes=2)
CHAT_INTERVAL = timedelta(seconds=1)  # one message a second per chat


@dataclass(frozen=True, slots=True)
class Outgoing:
    dedup_key: str
    chat_id: int
    kind: str
    text: str
    reply_markup: dict[str, Any] | None = None
    customer_id: int | None = None
    priority: int = REGULAR_PRIORITY
    to_customer: bool = False
    not_before: datetime | None = None


async def enqueue(session: AsyncSession, message: Outgoing) -> int | None:
    """Queue a message; None when this cause was already queued for this chat."""
    return (await enqueue_many(session, [message])).get(message.dedup_key[:255])


async def enqueue_many(session: AsyncSession, messages: Sequence[Outgoing]) -> dict[str, int]:
    """Queue messages in one statement; returns the new rows' ids by dedup key (a key queued
    before is left out). The sender in this process is woken when the transaction commits."""
    if not messages:
        return {}
    now = utcnow()
    rows = await session.execute(
        dialect_insert(session, Notification.__table__)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(Notification.id, Notification.dedup_key),
        [
            {"dedup_key": message.dedup_key[:255], "chat_id": message.chat_id,
             "customer_id": message.customer_id, "kind": message.kind, "text": message.text,
             "reply_markup": message.reply_markup, "priority": message.priority,
             "to_customer": message.to_customer, "state": NotificationState.PENDING.value,
             "not_before": message.not_before or now, "attempts": 0, "created_at": now}
            for message in messages
        ],
    )
    queued = {key: notification_id for notification_id, key in rows}
    if queued:
        signal_after_commit(session, OUTBOX)
    return queued


@dataclass(frozen=True, slots=True)
class Gate:
    """Send-time rules for customer messages."""

    quiet: tuple[time, time] | None
    zone: tzinfo
    daily_cap: int | None = None


async def claim_due(
    session: AsyncSession, *, limit: int, gate: Gate, now: datetime | None = None,
    lease: timedelta = LEASE, chat_interval: timedelta = CHAT_INTERVAL,
) -> list[Notification]:
    """Take up to `limit` due rows for sending (pending, or sending with an expired lease).

    `FOR UPDATE SKIP LOCKED` lets several processes claim from one queue on PostgreSQL without
    waiting on or double-taking each other's rows; SQLite's write lock serialises claims anyway.
    """
    now = now or utcnow()
    due = or_(
        (Notification.state == NotificationState.PENDING.value) & (Notification.not_before <= now),
        (Notification.state == NotificationState.SENDING.value) & (Notification.lease_until < now),
    )
    holder = holder_id()
    rows = list(
        await session.scalars(
            select(Notification)
            .where(due)
            .order_by(Notification.priority, Notification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if rows and session.get_bind().dialect.name == "postgresql":  # scale-out: other processes claim too
        rows = await keep_chat_order(session, rows, now, chat_interval)
    customers = await _customers(session, {row.customer_id for row in rows if row.customer_id})
    claimed = []
    for row in _merge_plain_notices(rows):
        customer = customers.get(row.customer_id) if row.customer_id else None
        verdict = await _gate(session, row, customer, gate, now)
        if verdict is None:
            row.state, row.lease_until, row.claimed_by = NotificationState.SENDING.value, now + lease, holder
            row.attempts += 1
            claimed.append(row)
        elif verdict is _DROP:
            row.state, row.lease_until = NotificationState.DROPPED.value, None
            row.last_error = "recipient opted out" if customer and customer.opted_out else "recipient unreachable"
        else:
            row.state, row.not_before, row.lease_until = NotificationState.PENDING.value, verdict, None
    await session.flush()
    return claimed


_DROP = object()
# Self-contained customer notices without buttons, which read well one after another.
MERGEABLE_KINDS = frozenset({"restock_notice", "waitlist_expired"})


def _merge_plain_notices(rows: list[Notification]) -> list[Notification]:
    """Fold a customer's due button-less notices (restocks, expiries) into one message.

    Notices held back by the daily cap or quiet hours fall due together; sent as one message they
    cost the customer one message, not several. Notices with buttons stay apart: each button
    answers its own offer.
    """
    carriers: dict[int, Notification] = {}
    kept = []
    for row in rows:
        mergeable = (
            row.kind in MERGEABLE_KINDS and row.customer_id is not None and row.reply_markup is None
            and row.state == NotificationState.PENDING.value and row.attempts == 0
        )
        carrier = carriers.get(row.customer_id) if mergeable and row.customer_id is not None else None
        if carrier is not None and len(carrier.text) + len(row.text) + 2 <= TELEGRAM_TEXT_LIMIT:
            carrier.text = f"{carrier.text}\n\n{row.text}"
            row.state, row.lease_until = NotificationState.MERGED.value, None
            row.last_error = f"sent within notification {carrier.id}"
            continue
        if mergeable and row.customer_id is not None:
            carriers[row.customer_id] = row
        kept.append(row)
    return kept


async def _gate(
    session: AsyncSession, row: Notification, customer: Customer | None, gate: Gate, now: datetime
) -> datetime | object | None:
    """None to send now, _DROP to never send, or the time to try again."""
    # Not `Customer.contactable`: the row names its chat; what matters now is the customer's say.
    if customer is not None and (customer.opted_out or customer.unreachable):
        return _DROP
    if not row.to_customer:
        return None
    zone = _customer_zone(customer, gate.zone)
    later = quiet_until(now, gate.quiet, zone)
    if later is not None:
        return later
    # Only a first claim spends a slot: a row handed back (restart, retry) already has one.
    if gate.daily_cap and customer is not None and row.attempts == 0:
        if not await take_daily_slot(session, customer.id, shop_today(zone, now).isoformat(), gate.daily_cap):
            return next_morning(now, zone, gate.quiet)
    return None


def next_morning(now: datetime, zone: tzinfo, quiet: tuple[time, time] | None) -> datetime:
    """Tomorrow, local time, when its quiet period (if one wraps midnight) has ended."""
    tomorrow = next_local_midnight(now, zone).astimezone(zone).date()
    wakes = quiet[1] if quiet and quiet[0] > quiet[1] else time(0)
    return datetime.combine(tomorrow, wakes, tzinfo=zone).astimezone(UTC)


def _customer_zone(customer: Customer | None, default: tzinfo) -> tzinfo:
    if customer is not None and customer.timezone:
        try:
            return ZoneInfo(customer.timezone)
        except (KeyError, ValueError):
            return default
    return default


async def take_daily_slot(session: AsyncSession, customer_id: int, day: str, cap: int) -> bool:
    """Count one proactive message against the customer's cap for `day`; False when full."""
    await session.execute(
        dialect_insert(session, DailyMessageCount.__table__)
        .values(customer_id=customer_id, day=day, count=0)
        .on_conflict_do_nothing(index_elements=["customer_id", "day"])
    )
    taken = await session.execute(
        update(DailyMessageCount)
        .where(
            DailyMessageCount.customer_id == customer_id,
            DailyMessageCount.day == day,
            DailyMessageCount.count < cap,
        )
        .values(count=DailyMessageCount.count + 1)
        .returning(DailyMessageCount.count)
    )
    return taken.first() is not None


async def _customers(session: AsyncSession, ids: set[int]) -> dict[int, Customer]:
    if not ids:
        return {}
    return {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(ids)))}


async def mark_sent(session: AsyncSession, sent: Sequence[tuple[int, int]]) -> None:
    """Record delivered rows as (notification id, Telegram message id), in one round trip."""
    if sent:
        now = utcnow()
        await session.execute(
            update(Notification),
            [
                {"id": nid, "state": NotificationState.SENT.value, "telegram_message_id": mid,
                 "sent_at": now, "lease_until": None, "last_error": None}
                for nid, mid in sent
            ],
        )


async def release_dead_claims(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Rows claimed by a sender that is gone go back to the queue: those whose lease ran out, and
    at once those held by a process of this host that no longer runs (a restart after a crash)."""
    now = now or utcnow()
    sending = await session.execute(
        select(Notification.id, Notification.claimed_by, Notification.lease_until)
        .where(Notification.state == NotificationState.SENDING.value)
    )
    rows = sending.all()
    gone = dead_local_holders(row.claimed_by for row in rows)
    dead = [
        row.id for row in rows
        if (row.lease_until is not None and row.lease_until < now) or row.claimed_by in gone
    ]
    for chunk in chunked(dead):
        await session.execute(
            update(Notification)
            .where(Notification.id.in_(chunk), Notification.state == NotificationState.SENDING.value)
            .values(state=NotificationState.PENDING.value, lease_until=None, claimed_by=None)
        )
    if dead:
        signal_after_commit(session, OUTBOX)
    return len(dead)


async def mark_retry(session: AsyncSession, notification_id: int, error: str, at: datetime) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(state=NotificationState.PENDING.value, not_before=at, lease_until=None, last_error=error[:2000])
    )


async def release(
    session: AsyncSession, notification_ids: Sequence[int], *, not_before: datetime | None = None
) -> None:
    """Hand claimed rows back unsent (shutdown; behind a retried message, until `not_before`)."""
    if notification_ids:
        values: dict[str, Any] = {"state": NotificationState.PENDING.value, "lease_until": None}
        if not_before is not None:
            values["not_before"] = not_before
        await session.execute(
            update(Notification)
            .where(Notification.id.in_(notification_ids), Notification.state == NotificationState.SENDING.value)
            .values(**values)
        )


async def mark_failed(session: AsyncSession, notification_id: int, error: str) -> None:
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(state=NotificationState.FAILED.value, lease_until=None, last_error=error[:2000])
    )


async def mark_unreachable(session: AsyncSession, chat_id: int, error: str) -> int:
    """The chat blocked the bot or is gone: flag its customer and drop everything queued for it."""
    await session.execute(update(Customer).where(Customer.chat_id == chat_id).values(unreachable=True))
    dropped = await session.execute(
        update(Notification)
        .where(
            Notification.chat_id == chat_id,
            Notification.state.in_([NotificationState.PENDING.value, NotificationState.SENDING.value]),
        )
        .values(state=NotificationState.DROPPED.value, lease_until=None, last_error=error[:2000])
        .returning(Notification.id)
    )
    return len(dropped.all())
