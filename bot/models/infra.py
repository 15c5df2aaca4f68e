"""What the processes share to run together: event leases, conversation state, once-only job marks,
the bot's identity, connector bookkeeping and the replay guard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.common import Base, utcnow


class EventLease(Base):
    """A product whose pending events one consumer is working on; others leave it alone.

    The lock per product that lets several processes consume one backlog in parallel while each
    product's events are still handled in order, once. A crashed holder's lease runs out.
    """

    __tablename__ = "event_leases"

    product_id: Mapped[int] = mapped_column(primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    lease_until: Mapped[datetime]


class ConversationState(Base):
    """aiogram FSM state per chat and user, shared by every bot process (PostgreSQL)."""

    __tablename__ = "conversation_states"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JobRun(Base):
    """Marks that a keyed once-only job (a day's digest) has run, so two processes run it once."""

    __tablename__ = "job_runs"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotIdentity(Base):
    """The bot's own @username as the Bot API last told it, so invite links can be made offline."""

    __tablename__ = "bot_identity"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    learned_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """A shop platform's delivery already handled: a retried one (same id) changes nothing.

    Written in the transaction that applies the delivery, so a delivery that failed halfway is
    not remembered and its retry is applied."""

    __tablename__ = "webhook_deliveries"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)  # "shopify", "woocommerce"
    delivery_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # old ones are forgotten


class ShopifyInventoryItem(Base):
    """Which Shopify inventory item is which SKU: `inventory_levels/update` names only the item."""

    __tablename__ = "shopify_inventory_items"

    inventory_item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    sku: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SeenOnce(Base):
    """A request signature or a Telegram update_id already accepted, shared by every process:
    the primary key makes the second claim of one key fail, whichever process makes it. Rows
    are kept until `expires_at` (when a replay would be refused anyway) and then purged."""

    __tablename__ = "seen_once"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # signature | update
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
