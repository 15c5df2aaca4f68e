"""Demand planning and purchasing: sales history, forecasts, policies, prompts, orders and transfers."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.models.catalog import Product
from bot.models.common import Base, utcnow


class SalesDay(Base):
    """Units sold of one product in one warehouse on one shop day, and what was left at its end.

    Imported from the `history` CSV, then recorded by the bot from the stock it sees change. A
    day that ended with `on_hand` 0 was a stockout day: its sales do not show the demand.
    """

    __tablename__ = "sales_history"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # in the shop's zone
    sold: Mapped[int] = mapped_column(default=0)
    on_hand: Mapped[int | None] = mapped_column(default=None)  # at the end of the day, when known
    source: Mapped[str] = mapped_column(String(16), default="import")  # import | recorded

    __table_args__ = (
        CheckConstraint("sold >= 0", name="sold_not_negative"),
        CheckConstraint("on_hand IS NULL OR on_hand >= 0", name="on_hand_not_negative"),
        Index("ix_sales_history_day", "day"),
    )


class DemandForecast(Base):
    """The latest forecast of one product in one warehouse (demand is a rate, not money)."""

    __tablename__ = "demand_forecasts"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"), primary_key=True)
    daily_demand: Mapped[float] = mapped_column(Float, default=0.0)
    demand_class: Mapped[str] = mapped_column(String(16), default="none")
    days_of_cover: Mapped[float | None] = mapped_column(Float, default=None)  # None: no demand
    stockout_date: Mapped[date | None] = mapped_column(Date, default=None)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReplenishmentPolicy(Base):
    """Reorder point and order-up-to level of one product in one warehouse, from the forecast.

    Kept apart from the forecast so a stock change can work out what to order from the current
    position without running the forecast again.
    """

    __tablename__ = "replenishment_policies"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"), primary_key=True)
    abc: Mapped[str] = mapped_column(String(1), default="C")
    lead_time_days: Mapped[float] = mapped_column(Float, default=7.0)
    safety_stock: Mapped[float] = mapped_column(Float, default=0.0)
    reorder_point: Mapped[float] = mapped_column(Float, default=0.0)
    order_up_to: Mapped[float] = mapped_column(Float, default=0.0)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromptStatus(enum.StrEnum):
    OPEN = "open"
    SNOOZED = "snoozed"
    ORDERED = "ordered"
    DISMISSED = "dismissed"
    RESOLVED = "resolved"  # stock came back above the reorder point


ACTIVE_PROMPT_STATUSES = (PromptStatus.OPEN.value, PromptStatus.SNOOZED.value)


class ReorderPrompt(Base):
    __tablename__ = "reorder_prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    cause_event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    status: Mapped[str] = mapped_column(String(16), default=PromptStatus.OPEN.value)
    suggested_qty: Mapped[int] = mapped_column(default=0)
    snoozed_until: Mapped[datetime | None] = mapped_column(default=None)
    wake_count: Mapped[int] = mapped_column(default=0)
    ordered_qty: Mapped[int | None] = mapped_column(default=None)
    ordered_eta: Mapped[datetime | None] = mapped_column(default=None)
    acted_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # selectin, not joined: PostgreSQL refuses FOR UPDATE on the nullable side of an outer join.
    product: Mapped[Product] = relationship(lazy="selectin")

    __table_args__ = (Index("ix_reorder_prompts_product_status", "product_id", "status"),)


class PurchaseOrder(Base):
    """An order placed with a supplier ("ordered" pressed); its receipt gives a lead-time sample."""

    __tablename__ = "purchase_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    supplier: Mapped[str | None] = mapped_column(String(256))
    qty: Mapped[int]
    ordered_at: Mapped[datetime] = mapped_column(default=utcnow)
    eta: Mapped[datetime | None] = mapped_column(default=None)
    received_at: Mapped[datetime | None] = mapped_column(default=None)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("reorder_prompts.id", ondelete="SET NULL"))
    ordered_by: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_purchase_orders_open", "product_id", "warehouse_id", "received_at"),
        Index("ix_purchase_orders_supplier", "supplier", "received_at"),
        CheckConstraint("qty > 0", name="qty_positive"),
    )


class TransferStatus(enum.StrEnum):
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"


class StockTransfer(Base):
    """Units taken off one warehouse and on their way to another, until received there."""

    __tablename__ = "stock_transfers"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    target_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    qty: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=TransferStatus.IN_TRANSIT.value)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_stock_transfers_product_status", "product_id", "status"),
        CheckConstraint("qty > 0", name="qty_positive"),
        CheckConstraint("source_id <> target_id", name="two_warehouses"),
    )


class CoverWarning(Base):
    """An open early-warning episode: the product's cover is below its lead time.

    The row is the episode: while it exists no second warning is raised; it goes when cover is
    back at or above the lead time.
    """

    __tablename__ = "cover_warnings"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)  # the low_cover stock event, the prompt's cause
    started_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlanningDirty(Base):
    """Products whose sales history changed (a history import): their forecast is redone."""

    __tablename__ = "planning_dirty"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlanningState(Base):
    """Small markers the planning jobs share across processes (last recorded day, watermarks)."""

    __tablename__ = "planning_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
