"""Customer orders: upserted from CSV and the HTTP API; open lines of a product that is out of
stock become `order_short` events, so recovery reaches a customer whose order arrives late too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.db import ids_by_key
from bot.inventory.stock import event_row, record_events
from bot.models import (
    OPEN_STATUSES,
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    StockEventKind,
)


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


class UnknownReference(LookupError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


async def upsert_orders(session: AsyncSession, orders: Sequence[OrderInput]) -> UpsertCount:
    """Create or replace orders by external id. Lines left out of a new version are cancelled,
    not deleted: offers and the funnel still point at them."""
    count = UpsertCount()
    customers = await ids_by_key(session, Customer.external_id, Customer.id, {o.customer_external_id for o in orders})
    products = await ids_by_key(session, Product.sku, Product.id, {l.sku for o in orders for l in o.lines})
    existing = {
        order.external_id: order
        for order in await session.scalars(
            select(Order)
            .where(Order.external_id.in_([o.external_id for o in orders]))
            .options(selectinload(Order.lines))
        )
    }
    for given in orders:
        customer_id = customers.get(given.customer_external_id)
        if customer_id is None:
            raise UnknownReference("customer_external_id", f"unknown customer {given.customer_external_id!r}")
        order = existing.get(given.external_id)
        if order is None:
            order = Order(external_id=given.external_id, customer_id=customer_id, lines=[])
            session.add(order)
            count.created += 1
        else:
            order.customer_id = customer_id
            count.updated += 1
        await _replace_lines(session, order, given.lines, products)
    return count


async def _replace_lines(
    session: AsyncSession, order: Order, lines: Sequence[LineInput], products: dict[str, int]
) -> None:
    by_product = {line.product_id: line for line in order.lines}
    newly_open: list[OrderLine] = []
    wanted: set[int] = set()
    for given in lines:
        product_id = products.get(given.sku)
        if product_id is None:
            raise UnknownReference("sku", f"unknown SKU {given.sku!r}")
        wanted.add(product_id)
        line = by_product.get(product_id)
        was_open = line is not None and line.status in OPEN_STATUSES
        if line is None:
            line = OrderLine(product_id=product_id, qty=given.qty, status=given.status)
            order.lines.append(line)
        else:
            line.qty, line.status = given.qty, given.status
        if given.status in OPEN_STATUSES and not was_open:
            newly_open.append(line)
    for line in order.lines:
        if line.product_id not in wanted and line.status in OPEN_STATUSES:
            line.status = OrderStatus.CANCELLED.value
    await session.flush()
    await _flag_short_lines(session, newly_open)


async def _flag_short_lines(session: AsyncSession, lines: Sequence[OrderLine]) -> None:
    if not lines:
        return
    rows = await session.execute(
        select(Product.id, Product.available, Product.reorder_point).where(
            Product.id.in_({line.product_id for line in lines})
        )
    )
    stock = {product_id: (available, reorder_point) for product_id, available, reorder_point in rows}
    short = []
    for line in lines:
        available, reorder_point = stock[line.product_id]
        if available <= 0:
            short.append(event_row(line.product_id, StockEventKind.ORDER_SHORT, available, available,
                                   reorder_point, order_line_id=line.id))
    await record_events(session, short)

