"""The in-memory catalog indexes (search, substitutes), kept fresh from the database.

Another process (the CLI, a second bot) may change the catalog at any time, so freshness is
polled by `updated_at` rather than pushed; an in-process import refreshes at once.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database
from bot.inventory.cards import NO_ATTRIBUTES, ProductCard
from bot.inventory.search import SearchIndex
from bot.models import Product, StockLevel, Warehouse, cents_to_decimal
from bot.inventory.substitutes import PriceBand, SubstituteIndex

# Rows committed in the same instant as the last poll could be missed by a strict `>`.
_OVERLAP = timedelta(seconds=2)


# What a card is made of: `select(*CARD_COLUMNS)` rows work with `card_of` as Products do, and
# loading 100k of them costs a fraction of 100k ORM objects (~2 KB each with their state).
CARD_COLUMNS = (Product.id, Product.sku, Product.name, Product.category, Product.brand,
                Product.price_cents, Product.attributes, Product.safety_stock)


def card_of(product: Product | Row[Any]) -> ProductCard:
    """The lean snapshot the indexes keep: repeated strings and prices are shared (issue 9)."""
    return ProductCard(
        product_id=product.id,
        sku=product.sku,
        name=product.name,
        category=sys.intern(product.category),
        brand=sys.intern(product.brand) if product.brand else product.brand,
        price=_price(product.price_cents),
        attributes=_attributes(product.attributes),
        safety_stock=product.safety_stock,
    )


@lru_cache(maxsize=4096)
def _price(cents: int) -> Decimal:
    """Shop prices repeat (9.99, 19.90); Decimals are immutable, so equal ones can be one object."""
    return cents_to_decimal(cents)


def _attributes(attributes: Mapping[str, str] | None) -> Mapping[str, str]:
    if not attributes:
        return NO_ATTRIBUTES
    # Keys ("colour") and most values ("red") repeat across the catalog.
    return {sys.intern(str(key)): sys.intern(value) if isinstance(value, str) else value
            for key, value in attributes.items()}


class Catalog:
    def __init__(self) -> None:
        self.search = SearchIndex()
        self.substitutes = SubstituteIndex()
        self._seen: datetime | None = None

    async def refresh(self, db: Database) -> int:
        """Load products changed since the last refresh; returns how many."""
        query = select(Product).order_by(Product.updated_at)
        if self._seen is not None:
            query = query.where(Product.updated_at >= self._seen - _OVERLAP)
        async with db.read_session() as session:
            products = list(await session.scalars(query))
        if not products:
            return 0
        cards = [card_of(product) for product in products]
        self.search.upsert_many(cards)
        for card in cards:
            self.substitutes.upsert(card)
        self._seen = max(product.updated_at for product in products)
        return len(cards)


@dataclass(frozen=True, slots=True)
class LevelView:
    warehouse: str
    on_hand: int
    reserved: int
    incoming: int
    incoming_eta: datetime | None

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True, slots=True)
class StockView:
    product: Product
    levels: tuple[LevelView, ...]
    substitutes: tuple[tuple[Product, int, Decimal], ...] = ()  # product, available, price difference

    @property
    def available(self) -> int:
        return self.product.available

    @property
    def incoming(self) -> int:
        return sum(level.incoming for level in self.levels)


async def stock_views(
    session: AsyncSession, catalog: Catalog, product_ids: Sequence[int], *, band: PriceBand | None = None
) -> list[StockView]:
    """Products with per-warehouse stock; an out-of-stock one with in-stock substitutes."""
    if not product_ids:
        return []
    products = {p.id: p for p in await session.scalars(select(Product).where(Product.id.in_(product_ids)))}
    rows = await session.execute(
        select(StockLevel.product_id, Warehouse.code, StockLevel.on_hand, StockLevel.reserved,
               StockLevel.incoming, StockLevel.incoming_eta)
        .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
        .where(StockLevel.product_id.in_(product_ids))
        .order_by(Warehouse.code)
    )
    levels: dict[int, list[LevelView]] = {}
    for product_id, code, on_hand, reserved, incoming, eta in rows:
        levels.setdefault(product_id, []).append(LevelView(code, on_hand, reserved, incoming, eta))
    views = []
    for product_id in product_ids:
        product = products.get(product_id)
        if product is None:
            continue
        substitutes: tuple[tuple[Product, int, Decimal], ...] = ()
        if product.available <= 0:
            substitutes = await substitutes_for(session, catalog, product, band=band)
        views.append(StockView(product, tuple(levels.get(product_id, ())), substitutes))
    return views


async def available_in_category(session: AsyncSession, category: str) -> dict[int, int]:
    rows = await session.execute(
        select(Product.id, Product.available).where(
            Product.category == category, Product.available > 0
        )
    )
    return {product_id: int(available) for product_id, available in rows}


async def substitutes_for(
    session: AsyncSession, catalog: Catalog, product: Product, *, band: PriceBand | None = None,
    limit: int = 3, exclude: Sequence[int] = (),
) -> tuple[tuple[Product, int, Decimal], ...]:
    available = await available_in_category(session, product.category)
    chosen = catalog.substitutes.choose(
        card_of(product), available, band=band or PriceBand(), limit=limit, exclude=exclude
    )
    if not chosen:
        return ()
    ids = [substitute.card.product_id for substitute in chosen]
    loaded = {p.id: p for p in await session.scalars(select(Product).where(Product.id.in_(ids)))}
    return tuple(
        (loaded[s.card.product_id], available.get(s.card.product_id, 0), s.price_difference)
        for s in chosen
        if s.card.product_id in loaded
    )
