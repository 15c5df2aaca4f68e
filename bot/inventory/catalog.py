"""The in-memory catalog indexes (search, substitutes), kept fresh from the database.

Another process (the CLI, a second bot) may change the catalog at any time, so freshness is
polled, by a change counter rather than by time: every catalog write takes the next number of
`CatalogVersion` and stamps the products it touched with it (`stamp_catalog_change`). A refresh
reads that one row; only when it moved does it load the products stamped since the last refresh.
An idle bot reads one row, and stock changes (which leave the cards alone) cost nothing here.

A refresh uses its own read-only session: never call it inside a write transaction (on SQLite a
second connection there waits for the lock its own caller holds).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from sqlalchemy import Row, event, inspect, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bot.db import Database
from bot.inventory.cards import NO_ATTRIBUTES, ProductCard
from bot.inventory.search import SearchIndex
from bot.inventory.substitutes import PriceBand, SubstituteIndex
from bot.models import CatalogVersion, Product, StockLevel, Warehouse
from bot.waiting import off_the_loop

# The card's fields: a change to any of them must reach the indexes.
CARD_FIELDS = ("sku", "name", "category", "brand", "price_cents", "attributes", "safety_stock")


def _next_version(dialect: str):  # type: ignore[no-untyped-def]
    # An upsert, so a database whose counter row was lost (an emptied table) starts again at 1.
    insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(CatalogVersion.__table__)
    return (
        insert.values(id=1, value=1)
        .on_conflict_do_update(index_elements=["id"], set_={"value": CatalogVersion.__table__.c.value + 1})
        .returning(CatalogVersion.__table__.c.value)
    )


CARDS_PER_BATCH = 5000  # loaded into the indexes at a time, off the event loop

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
        price_cents=product.price_cents,
        attributes=_attributes(product.attributes),
        safety_stock=product.safety_stock,
    )


async def stamp_catalog_change(session: AsyncSession) -> int:
    """The number to stamp on the products this transaction writes.

    Taken with `UPDATE ... RETURNING` on the one counter row: on PostgreSQL its row lock holds
    other catalog writers until this transaction ends, so numbers become visible in order.
    """
    return int((await session.execute(_next_version(session.get_bind().dialect.name))).scalar_one())


@event.listens_for(Session, "before_flush")
def _stamp_orm_changes(session: Session, _context: Any, _instances: Any) -> None:
    """Products added or edited through the ORM (tests, the demo seed, chat edits) are stamped
    like the importer's bulk writes, so no path can change a card unseen."""
    changed = [obj for obj in session.new if isinstance(obj, Product)]
    changed += [
        obj for obj in session.dirty
        if isinstance(obj, Product) and session.is_modified(obj) and _card_changed(obj)
    ]
    if changed:
        version = int(session.execute(_next_version(session.get_bind().dialect.name)).scalar_one())
        for product in changed:
            product.catalog_version = version


def _card_changed(product: Product) -> bool:
    state = inspect(product)
    return any(state.attrs[name].history.has_changes() for name in CARD_FIELDS)




def _attributes(attributes: Mapping[str, str] | None) -> Mapping[str, str]:
    if not attributes:
        return NO_ATTRIBUTES
    items = tuple(sorted((str(key), value) for key, value in attributes.items()))
    try:
        return _shared_attributes(items)
    except TypeError:  # a value JSON made a list or a dict of: unhashable, so not shared
        return MappingProxyType(dict(items))


@lru_cache(maxsize=65536)
def _shared_attributes(items: tuple[tuple[str, Any], ...]) -> Mapping[str, str]:
    """Shops describe thousands of products with the same few sets ("colour=red; size=M"): one
    read-only mapping per set, not a dict per card (~180 B each, 18 MB for the 100k shop)."""
    return MappingProxyType({sys.intern(key): sys.intern(value) if isinstance(value, str) else value
                             for key, value in items})


class Catalog:
    def __init__(self) -> None:
        self.search = SearchIndex()
        self.substitutes = SubstituteIndex()
        # Product id -> extra substitute score; slow movers, refreshed by a report job.
        self.substitute_boost: Mapping[int, float] = {}
        self._seen: int | None = None  # the catalog version the indexes hold

    async def refresh(self, db: Database, stop: asyncio.Event | None = None) -> int:
        """Load products whose cards changed since the last refresh; returns how many. Once `stop`
        is set it returns between batches (the first load of 100k cards takes seconds), and the
        next refresh loads them all again."""
        async with db.read_session() as session:
            current = int(await session.scalar(select(CatalogVersion.value).where(CatalogVersion.id == 1)) or 0)
            if current == self._seen:
                return 0
            query = select(*CARD_COLUMNS).order_by(Product.id)
            if self._seen is not None:
                query = query.where(Product.catalog_version > self._seen, Product.catalog_version <= current)
            loaded = 0
            stream = await session.stream(query.execution_options(yield_per=CARDS_PER_BATCH))
            async for rows in stream.partitions():
                if stop is not None and stop.is_set():
                    return loaded  # not seen: reloaded in full next time (a reload changes nothing)
                cards = [card_of(row) for row in rows]  # a row has the fields card_of reads
                # Off the event loop: loading 100k cards takes seconds of CPU (the indexes lock).
                await off_the_loop(lambda: self._load(cards))
                loaded += len(cards)
        self._seen = current
        return loaded

    def _load(self, cards: list[ProductCard]) -> None:
        # Where the two indexes normalise a name alike (half the 100k shop's names), they keep
        # one string: ~5 MB. Per batch, so the pool itself does not stay.
        names: dict[str, str] = {}
        self.search.upsert_many(cards, strings=names)
        self.substitutes.upsert_many(cards, strings=names)


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
        card_of(product), available, band=band or PriceBand(), limit=limit, exclude=exclude,
        boost=catalog.substitute_boost,
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
