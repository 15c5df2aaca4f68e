"""The outbox and what paces it: files a message carries, the daily cap's counter, the shared send budget."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.common import Base, utcnow


class NotificationState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DROPPED = "dropped"  # the recipient opted out or blocked the bot before it went out
    MERGED = "merged"  # went out as part of another notice to the same customer


class Notification(Base):
    """The outbox: one row per message the bot sends on its own."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # "At most once per cause per chat" is this unique key, not a check in code.
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    reply_markup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(default=100)  # lower goes first: VIPs before regulars
    to_customer: Mapped[bool] = mapped_column(default=False)  # quiet hours and caps apply
    state: Mapped[str] = mapped_column(String(16), default=NotificationState.PENDING.value)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    # Who holds the lease ("host:pid:start"), so a restarted process frees its dead run's rows
    # at once instead of waiting for the lease to run out.
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    last_error: Mapped[str | None] = mapped_column(Text)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_notifications_due", "state", "not_before", "priority", "id"),
        Index("ix_notifications_chat", "chat_id", "id"),
        Index("ix_notifications_customer", "customer_id", "created_at"),
        # Scale-out (0007): a claim looks up a chat's earlier unsent rows and its latest send.
        Index("ix_notifications_chat_state", "chat_id", "state", "id"),
        Index("ix_notifications_chat_sent", "chat_id", "sent_at"),
    )


class NotificationFile(Base):
    """Pictures and documents an outbox row carries (a report), written with the row.

    Position orders them: the photos go out as one album, then each document.
    """

    __tablename__ = "notification_files"

    notification_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("notifications.id", ondelete="CASCADE"),
        primary_key=True,
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # photo | document
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    caption: Mapped[str | None] = mapped_column(Text)  # HTML, a document's own caption


class DailyMessageCount(Base):
    """Proactive messages per customer per shop day: the frequency cap's counter."""

    __tablename__ = "daily_message_counts"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # ISO date in the shop's zone
    count: Mapped[int] = mapped_column(default=0)


class SendGate(Base):
    """One shared send budget on PostgreSQL: the next free slot, and the pause after a 429.

    Every `run` process reserves its send slots here (`bot/delivery/shared_rate.py`), so
    SEND_RATE and a flood-control pause hold for all of them together. Rows are made on first use.
    """

    __tablename__ = "send_gates"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)  # free | paid
    next_at: Mapped[datetime] = mapped_column(default=utcnow)  # the first slot nobody holds
    paused_until: Mapped[datetime | None] = mapped_column(default=None)
