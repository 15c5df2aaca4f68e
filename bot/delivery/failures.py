"""Messages that failed for good, for an admin to see and send again (`stockbot failed`).

A message fails for good only when Telegram refuses it (a bad request) or on an error of our own
after several tries; an outage only delays it (bot/delivery/sender.py). Sending one again puts it
back in the queue as it was, so the running bot (any process) sends it at its next look.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import OUTBOX, signal_after_commit
from bot.models import Notification, NotificationState, utcnow


@dataclass(frozen=True, slots=True)
class FailedMessage:
    id: int
    chat_id: int
    kind: str
    created_at: datetime
    error: str


async def failed_messages(session: AsyncSession, *, limit: int = 200) -> list[FailedMessage]:
    """The most recent failed messages, newest first."""
    rows = await session.execute(
        select(Notification.id, Notification.chat_id, Notification.kind, Notification.created_at,
               Notification.last_error)
        .where(Notification.state == NotificationState.FAILED.value)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return [FailedMessage(row.id, row.chat_id, row.kind, row.created_at, row.last_error or "") for row in rows]


async def resend_failed(session: AsyncSession, ids: Collection[int] | None = None) -> list[int]:
    """Queue failed messages again (those of `ids`, or all); returns the ids queued. Ids of
    messages that did not fail are left alone: resending cannot send anything twice."""
    statement = (
        update(Notification)
        .where(Notification.state == NotificationState.FAILED.value)
        .values(state=NotificationState.PENDING.value, not_before=utcnow(), lease_until=None)
        .returning(Notification.id)
    )
    if ids is not None:
        statement = statement.where(Notification.id.in_(sorted(ids)))
    queued = sorted((await session.execute(statement)).scalars())
    if queued:
        signal_after_commit(session, OUTBOX)
    return queued
