"""Read-only product snapshots shared by the in-memory indexes (search, substitutes).

The indexes live outside any database session, so they hold plain frozen values
rather than ORM rows that could expire or lazy-load. One card per product is shared
by both indexes; a 100k catalog keeps 100k of them, so they stay lean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from bot.models import cents_to_decimal

# Most cards have no attributes: one shared read-only empty mapping, not a dict each.
NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProductCard:
    product_id: int
    sku: str
    name: str
    category: str
    brand: str | None = None
    # Cents, not a Decimal: shops rarely share prices across 100k products, and a Decimal each
    # cost ~100 bytes to an int's ~30 (7 MB of the 100k shop's RSS).
    price_cents: int = 0
    attributes: Mapping[str, str] = field(default_factory=lambda: NO_ATTRIBUTES)
    safety_stock: int = 0

    @property
    def price(self) -> Decimal:
        return cents_to_decimal(self.price_cents)


def pack_size(attributes: Mapping[str, str] | None) -> int:
    """The supplier's pack size from the catalog's `attributes` (`pack_size=12`); 1 when unset
    or not a positive whole number."""
    raw = str((attributes or {}).get("pack_size", "")).strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1
