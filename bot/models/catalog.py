"""The catalog: products (with their stock totals) and the number of the latest catalog change."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, CheckConstraint, String, false
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.common import Base, cents_to_decimal, utcnow


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
