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

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection
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
    utcnow,
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
    for change in changes:
        if change.sku not in products:
            raise UnknownProduct(change.sku)
    # The statements of a batch run back to back in one greenlet: per-statement async
    # round trips were most of the cost of an event.
    return await session.run_sync(lambda sync: _apply_all(sync.connection(), changes, products, warehouses))


def _apply_all(
    connection: Connection, changes: Sequence[StockChange], products: dict[str, int], warehouses: dict[str, int]
) -> list[Applied]:
    results: list[Applied | None] = [None] * len(changes)
    # Stable sort: per product, changes keep their given order; across products, a fixed lock order.
    for index in sorted(range(len(changes)), key=lambda i: products[changes[i].sku]):
        change = changes[index]
        results[index] = _apply_one(connection, change, products[change.sku], warehouses[change.warehouse])
    return [result for result in results if result is not None]


def _apply_one(connection: Connection, change: StockChange, product_id: int, warehouse_id: int) -> Applied:
    if change.on_hand is not None:
        connection.execute(_LOCK_PRODUCT, {"p_id": product_id})
        current = _level_on_hand(connection, product_id, warehouse_id, lock=True)
        delta = change.on_hand - current
    else:
        delta = change.delta or 0
    if not _record_movement(connection, change, product_id, warehouse_id, delta):
        return Applied(change=change, duplicate=True, product_id=product_id)
    if delta == 0:
        available = connection.execute(_AVAILABLE, {"p_id": product_id}).scalar_one()
        on_hand = _level_on_hand(connection, product_id, warehouse_id, lock=False)
        return Applied(change, False, product_id, 0, on_hand, available, available)
    shift = _shift(connection, product_id, warehouse_id, delta, 0, label=change)
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
    return await session.run_sync(
        lambda sync: _shift(sync.connection(), product_id, warehouse_id, on_hand_delta, reserved_delta, label)
    )


_products, _levels, _movements, _events = (
    Product.__table__, StockLevel.__table__, StockMovement.__table__, StockEvent.__table__,
)
# Built once: the same statement objects hit SQLAlchemy's compiled cache on every call.
_MOVE_TOTALS = (
    update(_products)
    .where(_products.c.id == bindparam("p_id"))
    .values(
        on_hand_total=_products.c.on_hand_total + bindparam("d_on_hand"),
        reserved_total=_products.c.reserved_total + bindparam("d_reserved"),
    )
    .returning(_products.c.on_hand_total, _products.c.reserved_total, _products.c.reorder_point)
)
_MOVE_LEVEL = (
    update(_levels)
    .where(
        _levels.c.product_id == bindparam("p_id"),
        _levels.c.warehouse_id == bindparam("w_id"),
        _levels.c.on_hand + bindparam("d_on_hand") >= 0,
        _levels.c.reserved + bindparam("d_reserved") >= 0,
    )
    .values(
        on_hand=_levels.c.on_hand + bindparam("d_on_hand"),
        reserved=_levels.c.reserved + bindparam("d_reserved"),
    )
    .returning(_levels.c.on_hand, _levels.c.reserved)
)
_LEVEL_ON_HAND = select(_levels.c.on_hand).where(
    _levels.c.product_id == bindparam("p_id"), _levels.c.warehouse_id == bindparam("w_id")
)
_LEVEL_ON_HAND_LOCKED = _LEVEL_ON_HAND.with_for_update()
_LOCK_PRODUCT = select(_products.c.id).where(_products.c.id == bindparam("p_id")).with_for_update()
_AVAILABLE = select(_products.c.on_hand_total - _products.c.reserved_total).where(
    _products.c.id == bindparam("p_id")
)


@functools.cache
def _upserts(dialect: str) -> tuple[Any, Any]:
    """`INSERT ... ON CONFLICT DO NOTHING RETURNING id` for ledger rows and levels, per dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    movement = insert(_movements).on_conflict_do_nothing(index_elements=["event_id"]).returning(_movements.c.id)
    level = (
        insert(_levels)
        .values(product_id=bindparam("p_id"), warehouse_id=bindparam("w_id"), on_hand=0, reserved=0, incoming=0)
        .on_conflict_do_nothing(index_elements=["product_id", "warehouse_id"])
        .returning(_levels.c.id)
    )
    return movement, level


def _shift(
    connection: Connection,
    product_id: int,
    warehouse_id: int,
    on_hand_delta: int,
    reserved_delta: int,
    label: StockChange | None = None,
) -> Shift:
    params = {"p_id": product_id, "w_id": warehouse_id, "d_on_hand": on_hand_delta, "d_reserved": reserved_delta}
    totals = connection.execute(_MOVE_TOTALS, params).one()
    after = totals.on_hand_total - totals.reserved_total
    before = after - (on_hand_delta - reserved_delta)
    level = connection.execute(_MOVE_LEVEL, params).one_or_none()
    if level is None and _ensure_level(connection, product_id, warehouse_id):
        level = connection.execute(_MOVE_LEVEL, params).one_or_none()
    if level is None:
        sku = label.sku if label else str(product_id)
        warehouse = label.warehouse if label else str(warehouse_id)
        on_hand = _level_on_hand(connection, product_id, warehouse_id, lock=False)
        raise NotEnoughStock(sku, warehouse, on_hand, on_hand_delta or -reserved_delta)
    events = tuple(crossings(before, after, totals.reorder_point))
    if events:
        connection.execute(
            _events.insert(),
            [
                {"product_id": product_id, "kind": kind.value, "available_before": before,
                 "available_after": after, "reorder_point": totals.reorder_point, "attempts": 0,
                 "created_at": utcnow()}
                for kind in events
            ],
        )
    return Shift(level.on_hand, level.reserved, before, after, events)


def _ensure_level(connection: Connection, product_id: int, warehouse_id: int) -> bool:
    """Insert a zero level if none exists; True if it was missing (so the update may retry)."""
    _, insert_level = _upserts(connection.dialect.name)
    return connection.execute(insert_level, {"p_id": product_id, "w_id": warehouse_id}).first() is not None


def _record_movement(
    connection: Connection, change: StockChange, product_id: int, warehouse_id: int, delta: int
) -> bool:
    """Write the ledger row; False when its event id was seen before (a harmless retry)."""
    values = {
        "product_id": product_id,
        "warehouse_id": warehouse_id,
        "delta": delta,
        "reason": change.effective_reason,
        "actor": change.actor[:MAX_ACTOR],
        "event_id": change.event_id,
        "created_at": utcnow(),
    }
    if change.event_id is None:
        connection.execute(_movements.insert(), values)
        return True
    insert_movement, _ = _upserts(connection.dialect.name)
    return connection.execute(insert_movement, values).first() is not None


def _level_on_hand(connection: Connection, product_id: int, warehouse_id: int, *, lock: bool) -> int:
    statement = _LEVEL_ON_HAND_LOCKED if lock else _LEVEL_ON_HAND
    found = connection.execute(statement, {"p_id": product_id, "w_id": warehouse_id})
    return found.scalar_one_or_none() or 0


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
    await session.run_sync(lambda sync: _ensure_level(sync.connection(), product_id, warehouse_id))
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
