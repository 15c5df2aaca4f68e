"""Keeping customers through a stockout: offers and their planning, coupons, waitlists, restocks, holds."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.common import Base, utcnow


class OfferStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    SUBSTITUTE_TAKEN = "substitute_taken"
    WAITED = "waited"
    CANCELLED = "cancelled"
    HELD_OUT = "held_out"  # the control group: no message, no coupon (bot/recovery/holdout.py)


class StockoutOffer(Base):
    __tablename__ = "stockout_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    order_line_id: Mapped[int | None] = mapped_column(
        ForeignKey("order_lines.id", ondelete="SET NULL")
    )
    cause_event_id: Mapped[int] = mapped_column(BigInteger)
    substitute_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(24), default=OfferStatus.QUEUED.value)
    chosen_product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    revenue_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    notification_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    pressed_at: Mapped[datetime | None] = mapped_column(default=None)
    # False when the customer could not be messaged (no Telegram chat, opted out, blocked):
    # the offer is still recorded so the funnel counts everyone the stockout affected.
    contactable: Mapped[bool] = mapped_column(default=True)
    # Attribution: an order for the product or a substitute within the window after the offer.
    bought_at: Mapped[datetime | None] = mapped_column(default=None)
    bought_order_external_id: Mapped[str | None] = mapped_column(String(128))
    # True when this customer took part in the hold-out draw (either way): only those rows are
    # compared, so the customers who are never held out (VIPs, by default) do not bias it.
    randomised: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (
        UniqueConstraint("cause_event_id", "customer_id"),
        Index("ix_stockout_offers_created", "created_at"),
        Index("ix_stockout_offers_customer", "customer_id", "product_id"),
    )


class StockoutPlan(Base):
    """The planning of one stockout's offers, done in batches (VIPs first) until finished.

    The first batch is written in the stock event's transaction; a large audience is finished by
    a job in further short transactions, so the first VIP offers go out without waiting for all.
    """

    __tablename__ = "stockout_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    cause_event_id: Mapped[int] = mapped_column(BigInteger)  # the stockout (episode) offers dedup on
    event_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # the stock event that started it
    order_line_id: Mapped[int | None] = mapped_column(
        ForeignKey("order_lines.id", ondelete="SET NULL")
    )  # an order_short plan reaches that line's customer only
    planned: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_stockout_plans_open", "finished_at"),)


class Coupon(Base):
    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    cause_event_id: Mapped[int] = mapped_column(BigInteger)
    percent: Mapped[int]
    expires_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None] = mapped_column(default=None)
    redeemed_order_external_id: Mapped[str | None] = mapped_column(String(128))
    redeemed_value_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expired_at: Mapped[datetime | None] = mapped_column(default=None)  # marked by the expiry job

    __table_args__ = (UniqueConstraint("customer_id", "cause_event_id"),)


class WaitStatus(enum.StrEnum):
    WAITING = "waiting"
    NOTIFIED = "notified"
    LEFT = "left"
    EXPIRED = "expired"


class WaitlistEntry(Base):
    __tablename__ = "waitlist"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=WaitStatus.WAITING.value)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    notified_at: Mapped[datetime | None] = mapped_column(default=None)
    restock_id: Mapped[int | None] = mapped_column(ForeignKey("restocks.id", ondelete="SET NULL"))

    __table_args__ = (
        UniqueConstraint("product_id", "customer_id"),
        Index("ix_waitlist_product_status", "product_id", "status", "joined_at"),
    )


class Restock(Base):
    """One return of a product to stock, released to its waitlist in waves."""

    __tablename__ = "restocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    cause_event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    waves_sent: Mapped[int] = mapped_column(default=0)
    notified: Mapped[int] = mapped_column(default=0)
    next_wave_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_restocks_due", "finished_at", "next_wave_at"),)


class Reservation(Base):
    """Stock that Stockbot holds for a customer (a substitute taken, a VIP restock hold)."""

    __tablename__ = "reservations"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    qty: Mapped[int]
    reason: Mapped[str] = mapped_column(String(32))
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("stockout_offers.id"))
    expires_at: Mapped[datetime]
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_reservations_open", "released_at", "expires_at"),
        CheckConstraint("qty > 0", name="qty_positive"),
    )
