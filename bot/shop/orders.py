"""Customer orders: upserted from CSV and the HTTP API; open lines of a product that is out of
stock become `order_short` events, so recovery reaches a customer whose order arrives late too.

An upsert is set-based: a fixed number of statements per call whatever its size (bulk lookups of
ids by key, one executemany per table and kind of write), so a 100,000-line import is a few
dozen round trips per chunk rather than several per line.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import chunked, ids_by_key
from bot.inventory.stock import event_row, record_events
from bot.models import (
    OPEN_STATUSES,
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    StockEvent,
    StockEventKind,
    utcnow,
)

At = TypeVar("At")


@dataclass(frozen=True, slots=True)
class LineInput:
    sku: str
    qty: int
    status: str


@dataclass(frozen=True, slots=True)
class OrderInput:
    external_id: str
    customer_external_id: str
    lines: tuple[LineInput, ...]


@dataclass(slots=True)
class UpsertCount:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


class UnknownReference(LookupError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class BadReference(Generic[At]):
    """An order naming a customer or SKU that does not exist. `at` is the caller's handle on the
    order (the API's item index, the importer's CSV line); `field` names the value inside it."""

    at: At
    field: str  # "customer_external_id" or "lines[j].sku"
    message: str


async def check_references(
    session: AsyncSession, orders: Sequence[tuple[At, str, Sequence[str]]]
) -> list[BadReference[At]]:
    """Every unknown customer and SKU of `orders`, given as (handle, customer external id, SKUs):
    the one check the API and the CSV import make before an upsert."""
    customers = await ids_by_key(session, Customer.external_id, Customer.id, {customer for _, customer, _ in orders})
    products = await ids_by_key(session, Product.sku, Product.id, {sku for _, _, skus in orders for sku in skus})
    problems: list[BadReference[At]] = []
    for at, customer, skus in orders:
        if customer not in customers:
            problems.append(BadReference(at, "customer_external_id", f"unknown customer {customer!r}"))
        problems += [
            BadReference(at, f"lines[{j}].sku", f"unknown SKU {sku!r}") for j, sku in enumerate(skus) if sku not in products
        ]
    return problems


async def upsert_orders(session: AsyncSession, orders: Sequence[OrderInput]) -> UpsertCount:
    """Create or replace orders by external id. Lines left out of a new version are cancelled,
    not deleted: offers and the funnel still point at them. Each order's lines come together in
    `orders` (one OrderInput per external id)."""
    if not orders:
        return UpsertCount()
    customers = await ids_by_key(session, Customer.external_id, Customer.id, {o.customer_external_id for o in orders})
    products = await ids_by_key(session, Product.sku, Product.id, {line.sku for o in orders for line in o.lines})
    _refuse_unknown(orders, customers, products)  # a safety net: callers check first
    existing = await ids_by_key(session, Order.external_id, Order.id, {o.external_id for o in orders})
    now = utcnow()
    created = [o for o in orders if o.external_id not in existing]
    if created:
        await session.execute(Order.__table__.insert(), [
            {"external_id": o.external_id, "customer_id": customers[o.customer_external_id],
             "created_at": now, "updated_at": now}
            for o in created
        ])
    kept = [o for o in orders if o.external_id in existing]
    if kept:
        await session.execute(update(Order), [
            {"id": existing[o.external_id], "customer_id": customers[o.customer_external_id], "updated_at": now}
            for o in kept
        ])
    order_ids = existing | await ids_by_key(session, Order.external_id, Order.id, {o.external_id for o in created})
    stored = await _lines_of(session, [existing[o.external_id] for o in kept])
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    newly_open: set[tuple[int, int]] = set()  # (order id, product id)
    for given in orders:
        order_id = order_ids[given.external_id]
        lines = stored.get(order_id, {})
        for line in given.lines:
            product_id = products[line.sku]
            current = lines.pop(product_id, None)
            if current is None:
                inserts.append({"order_id": order_id, "product_id": product_id, "qty": line.qty, "status": line.status})
            else:
                updates.append({"id": current[0], "qty": line.qty, "status": line.status})
            if line.status in OPEN_STATUSES and (current is None or current[2] not in OPEN_STATUSES):
                newly_open.add((order_id, product_id))
        # What is left was not in the new version.
        updates += [
            {"id": line_id, "qty": qty, "status": OrderStatus.CANCELLED.value}
            for line_id, qty, status in lines.values() if status in OPEN_STATUSES
        ]
    if inserts:
        await session.execute(OrderLine.__table__.insert(), inserts)
    if updates:
        await session.execute(update(OrderLine), updates)
    await _flag_short_lines(session, newly_open)
    return UpsertCount(created=len(created), updated=len(kept))


def _refuse_unknown(orders: Sequence[OrderInput], customers: dict[str, int], products: dict[str, int]) -> None:
    for given in orders:
        if given.customer_external_id not in customers:
            raise UnknownReference("customer_external_id", f"unknown customer {given.customer_external_id!r}")
        for line in given.lines:
            if line.sku not in products:
                raise UnknownReference("sku", f"unknown SKU {line.sku!r}")


async def _lines_of(session: AsyncSession, order_ids: Iterable[int]) -> dict[int, dict[int, tuple[int, int, str]]]:
    """order id -> product id -> (line id, qty, status)."""
    found: dict[int, dict[int, tuple[int, int, str]]] = {}
    for batch in chunked(sorted(order_ids)):
        rows = await session.execute(
            select(OrderLine.order_id, OrderLine.product_id, OrderLine.id, OrderLine.qty, OrderLine.status)
            .where(OrderLine.order_id.in_(batch))
        )
        for order_id, product_id, line_id, qty, status in rows:
            found.setdefault(order_id, {})[product_id] = (line_id, qty, status)
    return found


async def _flag_short_lines(session: AsyncSession, lines: set[tuple[int, int]]) -> None:
    """An `order_short` event for each newly open line whose product has nothing available."""
    if not lines:
        return
    short: dict[int, tuple[int, int]] = {}  # product id -> (available, reorder point)
    for batch in chunked(sorted({product_id for _, product_id in lines})):
        rows = await session.execute(
            select(Product.id, Product.available, Product.reorder_point)
            .where(Product.id.in_(batch), Product.available <= 0, Product.stock_seen.is_(True))
        )
        found = {product_id: (available, point) for product_id, available, point in rows}
        # Only a product that ran out is short: one that started at zero (or has no stock yet) is
        # in no stockout, and contacts nobody.
        short.update({product_id: found[product_id] for product_id in await _ran_out(session, found)})
    wanted = {(order_id, product_id) for order_id, product_id in lines if product_id in short}
    if not wanted:
        return
    events = []
    for batch in chunked(sorted({order_id for order_id, _ in wanted})):
        rows = await session.execute(
            select(OrderLine.id, OrderLine.order_id, OrderLine.product_id)
            .where(OrderLine.order_id.in_(batch))
            .order_by(OrderLine.id)
        )
        events += [
            event_row(product_id, StockEventKind.ORDER_SHORT, short[product_id][0], short[product_id][0],
                      short[product_id][1], order_line_id=line_id)
            for line_id, order_id, product_id in rows if (order_id, product_id) in wanted
        ]
    await record_events(session, events)


_FLIPS = (StockEventKind.OUT_OF_STOCK.value, StockEventKind.BACK_IN_STOCK.value)


async def _ran_out(session: AsyncSession, product_ids: Collection[int]) -> set[int]:
    """Of `product_ids`, those whose latest stockout/restock crossing was running out."""
    if not product_ids:
        return set()
    latest = (
        select(func.max(StockEvent.id))
        .where(StockEvent.product_id.in_(sorted(product_ids)), StockEvent.kind.in_(_FLIPS))
        .group_by(StockEvent.product_id)
    )
    return set(await session.scalars(
        select(StockEvent.product_id)
        .where(StockEvent.id.in_(latest), StockEvent.kind == StockEventKind.OUT_OF_STOCK.value)
    ))
