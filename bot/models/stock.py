"""Stock per warehouse, its ledger, and the stock events and batches the rest of the bot reacts to."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.models.common import Base, utcnow
from bot.pipeline import event_lane


class Warehouse(Base):
    __tablename__ = "warehouses"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)


class StockLevel(Base):
    __tablename__ = "stock_levels"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    on_hand: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    incoming: Mapped[int] = mapped_column(default=0)
    incoming_eta: Mapped[datetime | None] = mapped_column(default=None)

    warehouse: Mapped[Warehouse] = relationship(lazy="selectin")

    __table_args__ = (
        UniqueConstraint("product_id", "warehouse_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("incoming >= 0", name="incoming_not_negative"),
    )


class StockMovement(Base):
    """The ledger: every change of on-hand stock, with who, why and the source event id."""

    __tablename__ = "stock_movements"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    delta: Mapped[int]
    reason: Mapped[str] = mapped_column(String(32))  # the caller's words, for people
    # What the change was, whatever the caller named it: demand reads this, since a count with a
    # free-text reason ('stocktake') is still a count, never a sale.
    kind: Mapped[str] = mapped_column(String(8), default="delta", server_default="delta")
    actor: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_stock_movements_product_time", "product_id", "created_at"),)


class MovementKind(enum.StrEnum):
    DELTA = "delta"  # moved by an amount
    COUNT = "count"  # set to a level (a count, a stock import)


class MovementReason(enum.StrEnum):
    """Why stock moved, in the words the ledger stores (`StockMovement.reason`).

    Demand is an allow-list (`DEMAND_REASONS`): a decrease counts as customers taking goods only
    for a reason listed there, so a shop's own word (say "damage", which the API takes, as the
    contract has `reason` free) is kept in the ledger for people and never counted as a sale.
    """

    SALE = "sale"
    ADJUSTMENT = "adjustment"  # a decrease the caller did not explain (a feed): a sale, as before
    COUNT = "count"  # a level set by /count
    IMPORT = "import"  # a level set by a stock import
    TRANSFER = "transfer"  # taken off one warehouse for another
    RECEIPT = "receipt"  # goods received from a supplier

    @property
    def is_demand(self) -> bool:
        return self in DEMAND_REASONS


DEMAND_REASONS = frozenset({MovementReason.SALE, MovementReason.ADJUSTMENT})


def _lane_default(context: Any) -> int:
    params = context.get_current_parameters()
    return event_lane(params["kind"], in_batch=params.get("batch_id") is not None)


class StockEvent(Base):
    __tablename__ = "stock_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    available_before: Mapped[int]
    available_after: Mapped[int]
    reorder_point: Mapped[int]
    order_line_id: Mapped[int | None] = mapped_column(
        ForeignKey("order_lines.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set from `kind` on insert, whoever writes the row: each lane is one index range, oldest first.
    lane: Mapped[int] = mapped_column(SmallInteger, default=_lane_default)
    # The import or API batch that made it (`ContactBatch`); None for a single live change (chat).
    batch_id: Mapped[int | None] = mapped_column(BigInteger, default=None)

    __table_args__ = (
        Index("ix_stock_events_pending", "processed_at", "lane", "id"),
        Index("ix_stock_events_batch", "batch_id", "lane", "processed_at", "id"),
        Index("ix_stock_events_product", "product_id", "id"),
    )


class BatchStatus(enum.StrEnum):
    OPEN = "open"  # its writer (an import) is still writing
    CLOSED = "closed"  # written: to be weighed against MASS_CONTACT_LIMIT
    RELEASED = "released"  # under the limit: its messages go out
    HELD = "held"  # over the limit: waits for an admin's Send or Discard
    SENT = "sent"  # an admin pressed Send
    DISCARDED = "discarded"  # an admin pressed Discard: its customer messages were dropped


class ContactBatch(Base):
    """One import or API batch whose stock events may message customers.

    Its customer events wait (lane 2) until it is closed and weighed: a batch that would reach
    more than MASS_CONTACT_LIMIT customers is held for an admin's Send or Discard."""

    __tablename__ = "contact_batches"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    cause: Mapped[str] = mapped_column(String(256))  # for people: "import stock FILE.csv", "API stock-events"
    from_import: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.OPEN.value)
    customers: Mapped[int] = mapped_column(default=0)
    products: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[int | None] = mapped_column(BigInteger, default=None)

    __table_args__ = (Index("ix_contact_batches_status", "status"),)
