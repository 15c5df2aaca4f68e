"""Customer orders and their lines (a line for a product in a stockout is "short")."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.models.common import Base, utcnow


class OrderStatus(enum.StrEnum):
    OPEN = "open"
    BACKORDERED = "backordered"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


OPEN_STATUSES = (OrderStatus.OPEN.value, OrderStatus.BACKORDERED.value)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id")


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    qty: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)

    order: Mapped[Order] = relationship(back_populates="lines")

    __table_args__ = (
        UniqueConstraint("order_id", "product_id"),
        Index("ix_order_lines_product_status", "product_id", "status"),
        CheckConstraint("qty > 0", name="qty_positive"),
    )
