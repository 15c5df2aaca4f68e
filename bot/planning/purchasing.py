"""Goods ordered, moved and received: the one home of "incoming".

`place_order` records an order with a supplier (the "ordered" flow) as incoming stock and as a
purchase order whose receipt later gives a lead-time sample. `transfer` takes units off one
warehouse at once (reason 'transfer') and shows them as incoming at the other. `receive` puts
goods into stock (reason 'receipt') and settles what was on its way: the chat's /receive and the
API's stock events both come through `apply_and_settle`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.inventory.stock import (
    Applied,
    StockChange,
    add_incoming,
    apply_change,
    apply_changes,
    settle_incoming,
    warehouse_ids,
)
from bot.models import (
    MovementReason,
    Product,
    PurchaseOrder,
    StockTransfer,
    TransferStatus,
    Warehouse,
    utcnow,
)
from bot.planning.suggestions import TRANSFER_DAYS, Action, suggestions


async def place_order(
    session: AsyncSession, product: Product, warehouse_id: int, qty: int, eta: datetime | None,
    user_id: int | None, *, prompt_id: int | None = None,
) -> PurchaseOrder:
    order = PurchaseOrder(
        product_id=product.id, warehouse_id=warehouse_id, supplier=product.supplier, qty=qty,
        ordered_at=utcnow(), eta=eta, prompt_id=prompt_id, ordered_by=user_id,
    )
    session.add(order)
    await add_incoming(session, product.id, warehouse_id, qty, eta)
    await session.flush()
    return order


async def receive(session: AsyncSession, sku: str, warehouse: str, qty: int, actor: str) -> Applied:
    """Goods arrived: into stock, and what was on its way for them is settled. Raises
    `StockError` for an unknown product or warehouse (chat changes never create one)."""
    change = StockChange(sku, warehouse, delta=qty, reason=MovementReason.RECEIPT, actor=actor)
    return (await apply_and_settle(session, [change], create_warehouses=False))[0]


async def apply_and_settle(
    session: AsyncSession, changes: Sequence[StockChange], *, create_warehouses: bool = True
) -> list[Applied]:
    """`apply_changes`, then the receipts among them settle what was on their way (transfers in
    transit, the oldest open purchase order: the supplier's lead-time sample). Raises what
    `apply_changes` raises, before settling anything."""
    results = await apply_changes(session, changes, create_warehouses=create_warehouses)
    await _settle_receipts(session, results)
    return results


async def _settle_receipts(session: AsyncSession, results: Iterable[Applied]) -> int:
    """Settle incoming for every receipt among applied stock changes (duplicates excluded)."""
    receipts = [
        r for r in results
        if not r.duplicate and r.delta > 0 and r.product_id is not None and r.change.effective_reason == MovementReason.RECEIPT
    ]
    if not receipts:
        return 0
    codes = await warehouse_ids(session, {r.change.warehouse for r in receipts}, create=False)
    for r in receipts:
        assert r.product_id is not None
        await _settle(session, r.product_id, codes[r.change.warehouse], r.delta)
    return len(receipts)


async def _settle(session: AsyncSession, product_id: int, warehouse_id: int, qty: int) -> None:
    """Transfers in transit arrive first (they were sent to arrive next day), then the oldest
    open purchase order, whose receipt is the supplier's lead-time sample."""
    now = utcnow()
    remaining = qty
    moving = await session.scalars(
        select(StockTransfer)
        .where(StockTransfer.product_id == product_id, StockTransfer.target_id == warehouse_id,
               StockTransfer.status == TransferStatus.IN_TRANSIT.value)
        .order_by(StockTransfer.created_at, StockTransfer.id)
        .with_for_update()
    )
    for transfer in moving:
        if remaining <= 0:
            break
        transfer.status, transfer.received_at = TransferStatus.RECEIVED.value, now
        remaining -= transfer.qty
    if remaining > 0:
        order = await session.scalar(
            select(PurchaseOrder)
            .where(PurchaseOrder.product_id == product_id, PurchaseOrder.received_at.is_(None))
            .order_by((PurchaseOrder.warehouse_id != warehouse_id), PurchaseOrder.ordered_at, PurchaseOrder.id)
            .limit(1)
            .with_for_update()
        )
        if order is not None:
            order.received_at = now
    await settle_incoming(session, product_id, warehouse_id, qty)


class TransferRefused(ValueError):
    """Not (or no longer) a suggested transfer: nothing was moved."""


@dataclass(frozen=True, slots=True)
class Moved:
    transfer: StockTransfer
    sku: str
    source: str
    target: str
    source_on_hand: int


async def transfer(
    session: AsyncSession, product_id: int, source_id: int, target_id: int, qty: int, user_id: int
) -> Moved:
    """Carry out a suggested transfer: checked against today's suggestions, so a forged or stale
    button moves nothing. At most the suggested quantity moves."""
    product = await session.get(Product, product_id)
    if product is None or qty <= 0:
        raise TransferRefused("unknown product")
    offered = [
        line for line in await suggestions(session, [product_id])
        if line.action is Action.TRANSFER and line.from_warehouse_id == source_id and line.warehouse_id == target_id
    ]
    if not offered or qty > offered[0].qty:
        raise TransferRefused("not a current suggestion")
    line = offered[0]
    assert line.from_warehouse is not None
    result = await apply_change(
        session, StockChange(product.sku, line.from_warehouse, delta=-qty, reason=MovementReason.TRANSFER, actor=f"tg:{user_id}"),
        create_warehouses=False,
    )
    moved = StockTransfer(product_id=product_id, source_id=source_id, target_id=target_id, qty=qty, created_by=user_id)
    session.add(moved)
    await add_incoming(session, product_id, target_id, qty, utcnow() + timedelta(days=TRANSFER_DAYS))
    await session.flush()
    return Moved(moved, product.sku, line.from_warehouse, line.warehouse, result.on_hand or 0)


async def warehouse_code(session: AsyncSession, warehouse_id: int) -> str | None:
    return await session.scalar(select(Warehouse.code).where(Warehouse.id == warehouse_id))
