"""The schema. Money is integer cents; every timestamp is timezone-aware UTC.

The same models run on SQLite and PostgreSQL: no dialect-only types, and constraints (unique keys,
checks) carry the rules that must hold under concurrency instead of application code.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    false,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and hands them back aware, SQLite included.

    SQLite keeps no zone, so a naive value read back is UTC by construction; a naive value
    written is a programming error and is refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


# --- catalog and stock -------------------------------------------------------------------------


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(512))
    category: Mapped[str] = mapped_column(String(128), index=True)
    brand: Mapped[str | None] = mapped_column(String(128))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    attributes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    reorder_point: Mapped[int] = mapped_column(default=0)
    safety_stock: Mapped[int] = mapped_column(default=0)
    lead_time_days: Mapped[int] = mapped_column(default=7)
    supplier: Mapped[str | None] = mapped_column(String(256))
    # Totals over all warehouses, kept by the inventory service in the same statement chain as
    # the per-warehouse rows: one row to lock makes threshold crossings exact under races.
    on_hand_total: Mapped[int] = mapped_column(default=0)
    reserved_total: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Which catalog change last touched the product's card (name, price, ...), from
    # `CatalogVersion`; stock changes leave it alone, so the in-memory indexes reload only what
    # changed. 0: never stamped (rows written before versions existed, or by test seeds).
    catalog_version: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    # False until the product's first stock level is written (any source): that first level is
    # a state, not a change, so it makes no crossings (a product imported at zero is no stockout).
    stock_seen: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (CheckConstraint("price_cents >= 0", name="price_not_negative"),)

    @property
    def price(self) -> Decimal:
        return cents_to_decimal(self.price_cents)

    @hybrid_property
    def available(self) -> int:
        """On hand minus what Stockbot holds reserved, all warehouses; a SQL expression too."""
        return self.on_hand_total - self.reserved_total


class CatalogVersion(Base):
    """One row: the number of the latest catalog change.

    A catalog write takes the next number with `UPDATE ... RETURNING` and stamps the products it
    touches with it; the row lock (PostgreSQL) makes catalog writers take their numbers in commit
    order, so a reader that has seen number N has seen every product stamped N or lower.
    """

    __tablename__ = "catalog_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


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


class StockEventKind(enum.StrEnum):
    """What the rest of the bot reacts to; written in the transaction that caused it."""

    LOW_STOCK = "low_stock"  # available fell to or below the reorder point
    OUT_OF_STOCK = "out_of_stock"  # available fell to zero or below
    BACK_IN_STOCK = "back_in_stock"  # available rose above zero
    RECOVERED = "recovered"  # available rose above the reorder point
    ORDER_SHORT = "order_short"  # an open order line arrived for a product that is out
    LOW_COVER = "low_cover"  # the forecast says it runs out before a new order could arrive


CUSTOMER_FACING = frozenset({StockEventKind.OUT_OF_STOCK, StockEventKind.ORDER_SHORT, StockEventKind.BACK_IN_STOCK})


LIVE_LANE, BOOKKEEPING_LANE, AWAITING_LANE, BULK_LANE = 0, 1, 2, 3


def event_lane(kind: str, *, in_batch: bool = False) -> int:
    """0 for events a customer waits on (consumed first), 1 for the shop's own bookkeeping.

    Customer events of an import or API batch (`ContactBatch`) wait in lane 2 until the batch is
    weighed against MASS_CONTACT_LIMIT; released, they move to lane 0 (a small batch) or lane 3
    (a large one, worked a slice per pass so that live events pass it)."""
    if kind not in CUSTOMER_FACING:
        return BOOKKEEPING_LANE
    return AWAITING_LANE if in_batch else LIVE_LANE


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


class EventLease(Base):
    """A product whose pending events one consumer is working on; others leave it alone.

    The lock per product that lets several processes consume one backlog in parallel while each
    product's events are still handled in order, once. A crashed holder's lease runs out.
    """

    __tablename__ = "event_leases"

    product_id: Mapped[int] = mapped_column(primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    lease_until: Mapped[datetime]


# --- people ------------------------------------------------------------------------------------


VIP_TIER = "vip"


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    tier: Mapped[str] = mapped_column(String(16), default="regular")
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(256))
    locale: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    opted_out: Mapped[bool] = mapped_column(default=False)
    unreachable: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("tier IN ('regular', 'vip')", name="tier_known"),)

    @hybrid_property
    def is_vip(self) -> bool:
        """VIPs are contacted first and may get more (coupons, restock holds); a SQL expression too."""
        return self.tier == VIP_TIER

    @hybrid_property
    def contactable(self) -> bool:
        """May the bot message this customer on its own: linked to a chat, not opted out, not
        blocking the bot. The one answer to that question; a SQL expression too."""
        return self.chat_id is not None and not self.opted_out and not self.unreachable

    @contactable.inplace.expression
    @classmethod
    def _contactable_expression(cls) -> Any:
        return and_(cls.chat_id.is_not(None), cls.opted_out.is_(False), cls.unreachable.is_(False))


class InviteToken(Base):
    __tablename__ = "invite_tokens"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)  # None: never (none are issued so)


class Role(enum.StrEnum):
    ADMIN = "admin"
    PURCHASER = "purchaser"
    SALES = "sales"


class StaffMember(Base):
    __tablename__ = "staff"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[int | None] = mapped_column(BigInteger)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("role IN ('admin', 'purchaser', 'sales')", name="role_known"),
    )


class TelegramUser(Base):
    """Anyone who has written to the bot: their chat and chosen language."""

    __tablename__ = "telegram_users"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    first_name: Mapped[str] = mapped_column(String(256), default="")
    locale: Mapped[str | None] = mapped_column(String(8))
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Lower case, without "@": `/grant @name` finds someone who has written to the bot.
    username: Mapped[str | None] = mapped_column(String(64), index=True)


class BotIdentity(Base):
    """The bot's own @username as the Bot API last told it, so invite links can be made offline."""

    __tablename__ = "bot_identity"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    learned_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- orders ------------------------------------------------------------------------------------


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


# --- purchasing --------------------------------------------------------------------------------


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


# --- delivery ----------------------------------------------------------------------------------


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


# --- recovery ----------------------------------------------------------------------------------


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


class DailyMessageCount(Base):
    """Proactive messages per customer per shop day: the frequency cap's counter."""

    __tablename__ = "daily_message_counts"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # ISO date in the shop's zone
    count: Mapped[int] = mapped_column(default=0)


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


class SendGate(Base):
    """One shared send budget on PostgreSQL: the next free slot, and the pause after a 429.

    Every `run` process reserves its send slots here (`bot/delivery/shared_rate.py`), so
    SEND_RATE and a flood-control pause hold for all of them together. Rows are made on first use.
    """

    __tablename__ = "send_gates"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)  # free | paid
    next_at: Mapped[datetime] = mapped_column(default=utcnow)  # the first slot nobody holds
    paused_until: Mapped[datetime | None] = mapped_column(default=None)


# --- demand planning ---------------------------------------------------------------------------


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


# --- replenishment -----------------------------------------------------------------------------


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


# --- connectors (bot/ingest/connectors) ----------------------------------------------------------


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


# --- replay guard --------------------------------------------------------------------------------


class SeenOnce(Base):
    """A request signature or a Telegram update_id already accepted, shared by every process:
    the primary key makes the second claim of one key fail, whichever process makes it. Rows
    are kept until `expires_at` (when a replay would be refused anyway) and then purged."""

    __tablename__ = "seen_once"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # signature | update
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
