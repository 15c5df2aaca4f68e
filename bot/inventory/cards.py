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

# Most cards have no attributes: one shared read-only empty mapping, not a dict each.
NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProductCard:
    product_id: int
    sku: str
    name: str
    category: str
    brand: str | None = None
    price: Decimal = Decimal("0")
    attributes: Mapping[str, str] = field(default_factory=lambda: NO_ATTRIBUTES)
    safety_stock: int = 0
