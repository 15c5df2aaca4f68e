"""The one service every stock change passes through: CLI, HTTP API, chat and recovery.

Each change writes its ledger row and moves the per-warehouse level and the product's totals in
the caller's transaction, and writes a `StockEvent` row for every threshold crossing it makes, in
that same transaction: a rolled-back change leaves no event, a committed one always has its events,
whichever process made it. The running bot consumes those rows.

Concurrency: the product row is the lock. Every change takes it first (`UPDATE ... RETURNING` or
`SELECT ... FOR UPDATE`) and reads totals from what the database returns, so racing changes queue
on it and crossings are computed against the true previous value. A batch takes products in id
order so two batches can never wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert
from bot.inventory.thresholds import crossings
from bot.models import (
    Product,
    StockEvent,
    StockEventKind,
    StockLevel,
    StockMovement,
    Warehouse,
)

MAX_REASON = 32
MAX_ACTOR = 128


class StockError(Exception):
    """A change that cannot be applied; the caller's transaction must not commit it."""

    field = "sku"


class UnknownProduct(StockError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown SKU {sku!r}")


class UnknownWarehouse(StockError):
    field = "warehouse"

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown warehouse {code!r}")


class NotEnoughStock(StockError):
    field = "delta"

    def __init__(self, sku: str, warehouse: str, on_hand: int, delta: int) -> None:
        super().__init__(
            f"{sku} in {warehouse} has {on_hand} on hand; a change of {delta} would go below zero"
        )


@dataclass(frozen=True, slots=True)
class StockChange:
    """Either `delta` (move by) or `on_hand` (a count that sets it), never both."""

    sku: str
    warehouse: str
    delta: int | None = None
    on_hand: int | None = None
    reason: str | None = None
    actor: str = "system"
    event_id: str | None = None

    def __post_init__(self) -> None:
        if (self.delta is None) == (self.on_hand is None):
            raise ValueError("give exactly one of delta and on_hand")
        if self.on_hand is not None and self.on_hand < 0:
            raise ValueError("on_hand cannot be negative")
        if not self.warehouse.strip():
            raise ValueError("warehouse is required")

    @property
    def effective_reason(self) -> str:
        default = "count" if self.on_hand is not None else "adjustment"
        return (self.reason or default)[:MAX_REASON]


@dataclass(frozen=True, slots=True)
class Applied:
    change: StockChange
    duplicate: bool = False
    product_id: int | None = None
    delta: int = 0
    on_hand: int | None = None  # this warehouse, after
    available_before: int | None = None  # all warehouses, on hand minus reserved
    available_after: int | None = None
    events: tuple[StockEventKind, ...] = field(default_factory=tuple)


async def apply_change(session: AsyncSession, change: StockChange, **options: bool) -> Applied:
    return (await apply_changes(session, [change], **options))[0]


async def apply_changes(
    session: AsyncSession, changes: Sequence[StockChange], *, create_warehouses: bool = True
) -> list[Applied]:
    """Apply `changes` in the caller's transaction; results come back in the order given.

    Raises a `StockError` for the first change that cannot be applied; the caller rolls back,
    so a batch is all or nothing.
    """
    if not changes:
        return []
    products = await _product_ids(session, {change.sku for change in changes})
    warehouses = await warehouse_ids(
        session, {change.warehouse for change in changes}, create=create_warehouses
    )
    results: list[Applied | None] = [None] * len(changes)
    # Stable sort: per product, changes keep their given order; across products, a fixed lock order.
    order = sorted(range(len(changes)), key=lambda i: products.get(changes[i].sku, 0))
    for index in order:
        change = changes[index]
        product_id = products.get(change.sku)
        if product_id is None:
            raise UnknownProduct(change.sku)
        results[index] = await _apply_one(session, change, product_id, warehouses[change.warehouse])
    return [result for result in results if result is not None]


async def _apply_one(
    session: AsyncSession, change: StockChange, product_id: int, warehouse_id: int
) -> Applied:
    if change.on_hand is not None:
        await _lock_product(session, product_id)
        current = await _level_on_hand(session, product_id, warehouse_id, lock=True)
        delta = change.on_hand - current
    else:
        delta = change.delta or 0
    if not await _record_movement(session, change, product_id, warehouse_id, delta):
        return Applied(change=change, duplicate=True, product_id=product_id)
    if delta == 0:
        available = await _available(session, product_id)
        on_hand = await _level_on_hand(session, product_id, warehouse_id, lock=False)
        return Applied(change, False, product_id, 0, on_hand, available, available)
    shift = await shift_stock(session, product_id, warehouse_id, on_hand_delta=delta, label=change)
    return Applied(
        change, False, product_id, delta, shift.on_hand, shift.before, shift.after, shift.events
    )


@dataclass(frozen=True, slots=True)
class Shift:
    on_hand: int
    reserved: int
    before: int
    after: int
    events: tuple[StockEventKind, ...]


async def shift_stock(
    session: AsyncSession,
    product_id: int,
    warehouse_id: int,
    *,
    on_hand_delta: int = 0,
    reserved_delta: int = 0,
    label: StockChange | None = None,
) -> Shift:
    """Move one warehouse level and the product totals, and record any crossings.

    Also used directly for reservations (`reserved_delta`), which change availability without
    a ledger row: nothing physically moved.
    """
    totals = (
        await session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(
                on_hand_total=Product.on_hand_total + on_hand_delta,
                reserved_total=Product.reserved_total + reserved_delta,
            )
            .returning(Product.on_hand_total, Product.reserved_total, Product.reorder_point)
        )
    ).one()
    after = totals.on_hand_total - totals.reserved_total
    before = after - (on_hand_delta - reserved_delta)
    level = await _move_level(session, product_id, warehouse_id, on_hand_delta, reserved_delta)
    if level is None:
        sku = label.sku if label else str(product_id)
        warehouse = label.warehouse if label else str(warehouse_id)
        on_hand = await _level_on_hand(session, product_id, warehouse_id, lock=False)
        raise NotEnoughStock(sku, warehouse, on_hand, on_hand_delta or -reserved_delta)
    events = tuple(crossings(before, after, totals.reorder_point))
    if events:
        await session.execute(
            dialect_insert(session, StockEvent.__table__),
            [
                {
                    "product_id": product_id,
                    "kind": kind.value,
                    "available_before": before,
                    "available_after": after,
                    "reorder_point": totals.reorder_point,
                }
                for kind in events
            ],
        )
    return Shift(level.on_hand, level.reserved, before, after, events)


async def _move_level(
    session: AsyncSession, product_id: int, warehouse_id: int, on_hand_delta: int, reserved_delta: int
):  # type: ignore[no-untyped-def]
    """Move the level; None when it would go below zero. Creates a missing level at zero."""
    for _ in range(2):
        row = (
            await session.execute(
                update(StockLevel)
                .where(
                    StockLevel.product_id == product_id,
                    StockLevel.warehouse_id == warehouse_id,
                    StockLevel.on_hand + on_hand_delta >= 0,
                    StockLevel.reserved + reserved_delta >= 0,
                )
                .values(
                    on_hand=StockLevel.on_hand + on_hand_delta,
                    reserved=StockLevel.reserved + reserved_delta,
                )
                .returning(StockLevel.on_hand, StockLevel.reserved)
            )
        ).one_or_none()
        if row is not None:
            return row
        if not await _ensure_level(session, product_id, warehouse_id):
            return None
    return None


async def _ensure_level(session: AsyncSession, product_id: int, warehouse_id: int) -> bool:
    """Insert a zero level if none exists; True if it was missing (so the update may retry)."""
    inserted = await session.execute(
        dialect_insert(session, StockLevel.__table__)
        .values(product_id=product_id, warehouse_id=warehouse_id, on_hand=0, reserved=0, incoming=0)
        .on_conflict_do_nothing(index_elements=["product_id", "warehouse_id"])
        .returning(StockLevel.id)
    )
    return inserted.first() is not None


async def _record_movement(
    session: AsyncSession, change: StockChange, product_id: int, warehouse_id: int, delta: int
) -> bool:
    """Write the ledger row; False when its event id was seen before (a harmless retry)."""
    values = {
        "product_id": product_id,
        "warehouse_id": warehouse_id,
        "delta": delta,
        "reason": change.effective_reason,
        "actor": change.actor[:MAX_ACTOR],
        "event_id": change.event_id,
    }
    statement = dialect_insert(session, StockMovement.__table__).values(**values)
    if change.event_id is None:
        await session.execute(statement)
        return True
    inserted = await session.execute(
        statement.on_conflict_do_nothing(index_elements=["event_id"]).returning(StockMovement.id)
    )
    return inserted.first() is not None


async def _lock_product(session: AsyncSession, product_id: int) -> None:
    await session.execute(select(Product.id).where(Product.id == product_id).with_for_update())


async def _level_on_hand(
    session: AsyncSession, product_id: int, warehouse_id: int, *, lock: bool
) -> int:
    query = select(StockLevel.on_hand).where(
        StockLevel.product_id == product_id, StockLevel.warehouse_id == warehouse_id
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none() or 0


async def _available(session: AsyncSession, product_id: int) -> int:
    row = (
        await session.execute(
            select(Product.on_hand_total - Product.reserved_total).where(Product.id == product_id)
        )
    ).scalar_one()
    return int(row)


async def _product_ids(session: AsyncSession, skus: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    pending = sorted(set(skus))
    for start in range(0, len(pending), 500):
        chunk = pending[start : start + 500]
        rows = await session.execute(select(Product.sku, Product.id).where(Product.sku.in_(chunk)))
        found.update({sku: product_id for sku, product_id in rows})
    return found


async def warehouse_ids(
    session: AsyncSession, codes: Iterable[str], *, create: bool
) -> dict[str, int]:
    """Map warehouse codes to ids, creating unknown ones when `create` (imports, the ERP feed)."""
    wanted = set(codes)
    rows = await session.execute(
        select(Warehouse.code, Warehouse.id).where(Warehouse.code.in_(wanted))
    )
    found = {code: warehouse_id for code, warehouse_id in rows}
    missing = wanted - found.keys()
    if missing and not create:
        raise UnknownWarehouse(sorted(missing)[0])
    if missing:
        await session.execute(
            dialect_insert(session, Warehouse.__table__)
            .values([{"code": code} for code in sorted(missing)])
            .on_conflict_do_nothing(index_elements=["code"])
        )
        rows = await session.execute(
            select(Warehouse.code, Warehouse.id).where(Warehouse.code.in_(missing))
        )
        found.update({code: warehouse_id for code, warehouse_id in rows})
    return found


async def set_incoming(
    session: AsyncSession, product_id: int, warehouse_id: int, qty: int, eta: datetime | None
) -> None:
    """Record stock on its way (a purchaser's order); it does not change what is available."""
    await _ensure_level(session, product_id, warehouse_id)
    await session.execute(
        update(StockLevel)
        .where(StockLevel.product_id == product_id, StockLevel.warehouse_id == warehouse_id)
        .values(incoming=qty, incoming_eta=eta)
    )


async def demand(session: AsyncSession, product_id: int, since: datetime) -> int:
    """Units that left through sales since `since`, from the ledger."""
    total = await session.scalar(
        select(func.coalesce(func.sum(-StockMovement.delta), 0)).where(
            StockMovement.product_id == product_id,
            StockMovement.created_at >= since,
            StockMovement.reason == "sale",
            StockMovement.delta < 0,
        )
    )
    return int(total or 0)


async def settle_incoming(session: AsyncSession, product_id: int, warehouse_id: int, received: int) -> None:
    """Goods arrived: what was on its way shrinks by what came (never below zero)."""
    from sqlalchemy import case

    remaining = case((StockLevel.incoming > received, StockLevel.incoming - received), else_=0)
    await session.execute(
        update(StockLevel)
        .where(StockLevel.product_id == product_id, StockLevel.warehouse_id == warehouse_id)
        .values(
            incoming=remaining,
            incoming_eta=case((StockLevel.incoming > received, StockLevel.incoming_eta), else_=None),
        )
    )


async def default_warehouse(session: AsyncSession, product_id: int) -> str | None:
    """The warehouse meant when none is named: the product's only one, or the shop's only one."""
    codes = list(
        await session.scalars(
            select(Warehouse.code).join(StockLevel, StockLevel.warehouse_id == Warehouse.id)
            .where(StockLevel.product_id == product_id)
        )
    )
    if len(codes) == 1:
        return codes[0]
    if not codes:
        every = list(await session.scalars(select(Warehouse.code).limit(2)))
        return every[0] if len(every) == 1 else ("MAIN" if not every else None)
    return None
