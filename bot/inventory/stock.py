"""The one service every stock change passes through: CLI, HTTP API, chat and recovery.

Each change writes its ledger row and moves the per-warehouse level and the product's totals in
the caller's transaction, and writes a `StockEvent` row for every threshold crossing it makes, in
that same transaction: a rolled-back change leaves no event, a committed one always has its events,
whichever process made it. The running bot consumes those rows.

A batch is set-based: lock and read its products and levels, write its ledger rows (learning
which event ids were seen before), work out every change's before and after in Python, then
write levels, totals and events with one statement each. The statement count does not grow with
the batch.

Concurrency: the product row is the lock. A batch locks its products first (`SELECT ... FOR
UPDATE`, in id order, so two batches can never wait on each other in a cycle; on SQLite the
`BEGIN IMMEDIATE` write transaction already serialises writers) and reads levels after that, so
racing changes queue on it and crossings are computed against the true previous value.
`shift_stock` takes the same lock with its `UPDATE ... RETURNING`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import any_, bindparam, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import FIRST_LOW, IN_CHUNK, STOCK_EVENTS, chunked, dialect_insert, signal_after_commit
from bot.inventory.batches import BatchRef, batch_of, stamped
from bot.inventory.thresholds import crossings
from bot.models import (
    MovementKind,
    MovementReason,
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
    """A change that cannot be applied; the caller's transaction must not commit it.

    Carries what it is about (`sku`, `warehouse`, and `index`, the change's position in the
    batch) so callers can point at the bad item without reading the message."""

    field = "sku"

    def __init__(self, message: str, *, sku: str | None = None, warehouse: str | None = None,
                 index: int | None = None) -> None:
        super().__init__(message)
        self.sku, self.warehouse, self.index = sku, warehouse, index


class UnknownProduct(StockError):
    def __init__(self, sku: str, *, index: int | None = None) -> None:
        super().__init__(f"unknown SKU {sku!r}", sku=sku, index=index)


class UnknownWarehouse(StockError):
    field = "warehouse"

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown warehouse {code!r}", warehouse=code)


class NotEnoughStock(StockError):
    """A change would take a level below zero. Raised for the first such change of a batch;
    `problems` lists every one (each with its `index` in the batch), so a caller can report all."""

    field = "delta"

    def __init__(self, sku: str, warehouse: str, on_hand: int, delta: int, *, index: int | None = None) -> None:
        super().__init__(
            f"{sku} in {warehouse} has {on_hand} on hand; a change of {delta} would go below zero",
            sku=sku, warehouse=warehouse, index=index,
        )
        self.problems: list[NotEnoughStock] = [self]


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
        default = MovementReason.COUNT if self.on_hand is not None else MovementReason.ADJUSTMENT
        return (self.reason or default)[:MAX_REASON]

    @property
    def kind(self) -> MovementKind:
        return MovementKind.DELTA if self.on_hand is None else MovementKind.COUNT


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
    # The product's first level, at or below its reorder point: no crossing (a state), but a
    # purchaser must hear of it; the running bot's low-stock sweep prompts it (FIRST_LOW).
    first_low: bool = False


def event_row(
    product_id: int, kind: StockEventKind, before: int, after: int, reorder_point: int,
    *, order_line_id: int | None = None,
) -> dict[str, Any]:
    """A `stock_events` row: the one place such rows are built, whoever writes them."""
    return {"product_id": product_id, "kind": kind.value, "available_before": before,
            "available_after": after, "reorder_point": reorder_point, "order_line_id": order_line_id,
            "attempts": 0, "created_at": utcnow()}


async def record_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Write event rows built by `event_row` in the caller's transaction; the running bot's
    consumer is woken when it commits."""
    if rows:
        batch = batch_of(session)
        await session.run_sync(lambda sync: sync.connection().execute(
            _events.insert(), stamped(sync.connection(), rows, batch)))
        signal_after_commit(session, STOCK_EVENTS)


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
    warehouses = await warehouse_ids(
        session, {change.warehouse for change in changes}, create=create_warehouses
    )
    # The whole batch runs in one greenlet with a fixed number of statements (each one a thread
    # hop on aiosqlite, a round trip on PostgreSQL), whatever its size.
    batch = batch_of(session)
    applied = await session.run_sync(lambda sync: _apply_all(sync.connection(), changes, warehouses, batch))
    if any(result.events for result in applied):
        signal_after_commit(session, STOCK_EVENTS)
    if any(result.first_low for result in applied):
        signal_after_commit(session, FIRST_LOW)
    return applied


async def refused_changes(session: AsyncSession, changes: Sequence[StockChange]) -> list[NotEnoughStock]:
    """Every change `apply_changes` would refuse for going below zero, by index; writes nothing.

    For a caller that already knows the batch is rejected for other reasons and must still report
    these: it plans as `apply_changes` does (changes of unknown products are left out), against
    the levels and ledger as they are. A warehouse not created yet holds nothing.
    """
    if not changes:
        return []
    refused = await session.run_sync(lambda sync: _refused(sync.connection(), changes))
    return sorted(refused, key=lambda problem: problem.index or 0)


def _refused(connection: Connection, changes: Sequence[StockChange]) -> list[NotEnoughStock]:
    codes = {change.warehouse for change in changes}
    found = connection.execute(select(_warehouses.c.code, _warehouses.c.id).where(_warehouses.c.code.in_(codes)))
    warehouses: dict[str, int] = {code: warehouse_id for code, warehouse_id in found}
    products = _lock_products(connection, {change.sku for change in changes})
    levels = _read_levels(connection, {p.id for p in products.values()}, set(warehouses.values()))
    # Ids no row has: changes to a warehouse that does not exist yet start from zero.
    unsaved = {code: -n for n, code in enumerate(sorted(codes - warehouses.keys()), start=1)}
    given = [change.event_id for change in changes if change.event_id is not None]
    plan = _plan(
        changes, _apply_order(changes, products), products, warehouses | unsaved, levels,
        _first_occurrences(changes), _seen_event_ids(connection, given),
    )
    return plan.refused


def _seen_event_ids(connection: Connection, event_ids: list[str]) -> set[str]:
    """The event ids the ledger already holds (`apply_changes` learns this by inserting)."""
    return {
        event_id
        for chunk in chunked(sorted(set(event_ids)))
        for event_id in connection.scalars(select(_movements.c.event_id).where(_movements.c.event_id.in_(chunk)))
    }


@dataclass(frozen=True, slots=True)
class _Product:
    id: int
    available: int  # on hand minus reserved, all warehouses, as read under the lock
    reorder_point: int
    seen: bool = True  # False: no stock level was ever written, this batch writes its first


@dataclass(slots=True)
class _Plan:
    results: list[Applied | None]
    movements: list[dict[str, Any]]  # ledger rows, in apply order
    events: list[dict[str, Any]]  # stock_events rows, in apply order
    levels: dict[tuple[int, int], int]  # net on-hand change per level a change moved
    totals: dict[int, int]  # net on-hand change per product a change moved
    first_rows: dict[int, int] = field(default_factory=dict)  # product -> index of its first row here
    refused: list[NotEnoughStock] = field(default_factory=list)  # in apply order


def _apply_all(
    connection: Connection, changes: Sequence[StockChange], warehouses: dict[str, int], batch: BatchRef = None,
) -> list[Applied]:
    """Lock and read, plan in Python, then write each table with one statement.

    Order and semantics are those of applying the changes one by one: products in id order
    (the lock order), each product's changes in the order given. An event id already in the
    ledger, or given earlier in the batch, is a duplicate and changes nothing.
    """
    products = _lock_products(connection, {change.sku for change in changes})
    for index, change in enumerate(changes):
        if change.sku not in products:
            raise UnknownProduct(change.sku, index=index)
    levels = _read_levels(connection, {p.id for p in products.values()}, set(warehouses.values()))
    order = _apply_order(changes, products)
    firsts = _first_occurrences(changes)
    seen: set[str] = set()  # event ids the ledger already holds
    statements = _statements(connection.dialect.name)
    while True:
        plan = _plan(changes, order, products, warehouses, levels, firsts, seen)
        inserted = connection.execute(statements.movement, plan.movements).all() if plan.movements else []
        lost = {row["event_id"] for row in plan.movements if row["event_id"] is not None}
        lost -= {row.event_id for row in inserted}
        if not lost:
            break
        # Event ids committed before this batch, or by a racing one: plan again without them.
        # A rare path (a retried or overlapping feed); without it the plan would need a read
        # of the ledger first on every batch.
        seen |= lost
        if inserted:
            connection.execute(_UNMOVE, [{"m_id": row.id} for row in inserted])
    if plan.refused:
        first = plan.refused[0]
        first.problems = sorted(plan.refused, key=lambda problem: problem.index or 0)
        raise first
    missing = [key for key in plan.levels if key not in levels]
    if missing:
        connection.execute(statements.level, [{"p_id": p, "w_id": w} for p, w in missing])
    if plan.levels:
        connection.execute(
            _ADD_LEVEL, [{"p_id": p, "w_id": w, "d_on_hand": d} for (p, w), d in plan.levels.items()]
        )
        connection.execute(_ADD_TOTAL, [{"p_id": p, "d_on_hand": d} for p, d in plan.totals.items()])
    if plan.events:
        connection.execute(_events.insert(), stamped(connection, plan.events, batch))
    first_seen = sorted(p.id for p in products.values() if not p.seen and p.id in plan.first_rows)
    for chunk in chunked(first_seen):
        connection.execute(update(_products).where(_products.c.id.in_(chunk)).values(stock_seen=True))
    return [result for result in plan.results if result is not None]


def _apply_order(changes: Sequence[StockChange], products: dict[str, _Product]) -> list[int]:
    """Indexes of the changes whose product exists, products in id order (the lock order), each
    product's changes in the order given."""
    known = [index for index, change in enumerate(changes) if change.sku in products]
    return sorted(known, key=lambda i: products[changes[i].sku].id)  # stable


def _first_occurrences(changes: Sequence[StockChange]) -> dict[str, int]:
    """An event id repeated in the batch: its first occurrence wins."""
    firsts: dict[str, int] = {}
    for index, change in enumerate(changes):
        if change.event_id is not None:
            firsts.setdefault(change.event_id, index)
    return firsts


def _plan(
    changes: Sequence[StockChange],
    order: list[int],
    products: dict[str, _Product],
    warehouses: dict[str, int],
    stored: dict[tuple[int, int], int],
    firsts: dict[str, int],
    seen: set[str],
) -> _Plan:
    """Each change's before and after, in apply order; a change that cannot apply is left out."""
    plan = _Plan([None] * len(changes), [], [], {}, {})
    on_hand = dict(stored)
    for index in order:
        change = changes[index]
        product = products[change.sku]
        if change.event_id is not None and (change.event_id in seen or firsts[change.event_id] != index):
            plan.results[index] = Applied(change=change, duplicate=True, product_id=product.id)
            continue
        key = (product.id, warehouses[change.warehouse])
        current = on_hand.get(key, 0)
        delta = (change.delta if change.on_hand is None else change.on_hand - current) or 0
        plan.movements.append({
            "product_id": product.id,
            "warehouse_id": key[1],
            "delta": delta,
            "reason": change.effective_reason,
            "kind": change.kind.value,
            "actor": change.actor[:MAX_ACTOR],
            "event_id": change.event_id,
            "created_at": utcnow(),
        })
        plan.first_rows.setdefault(product.id, index)
        before = product.available + plan.totals.get(product.id, 0)
        first = not product.seen and plan.first_rows[product.id] == index
        if delta == 0:
            plan.results[index] = Applied(change, False, product.id, 0, current, before, before,
                                          first_low=first and before <= product.reorder_point)
            continue
        if current + delta < 0:
            # Keep planning without it, so that every refused change can be reported at once. Its
            # ledger row stays in the plan: inserting it is how a retried event is recognised as
            # a duplicate (and so not refused); a refused batch is rolled back anyway.
            plan.refused.append(NotEnoughStock(change.sku, change.warehouse, current, delta, index=index))
            continue
        after = before + delta
        on_hand[key] = current + delta
        plan.levels[key] = plan.levels.get(key, 0) + delta
        plan.totals[product.id] = plan.totals.get(product.id, 0) + delta
        # A product's first stock row is a state, not a change: a product that starts at zero ran
        # out of nothing, one that starts low fell from nowhere (the low-stock sweep after an
        # import prompts it). Its later rows, in this batch or after, are changes.
        events = () if first else tuple(crossings(before, after, product.reorder_point))
        plan.events += [event_row(product.id, kind, before, after, product.reorder_point) for kind in events]
        plan.results[index] = Applied(change, False, product.id, delta, current + delta, before, after, events,
                                      first_low=first and after <= product.reorder_point)
    return plan


def _lock_products(connection: Connection, skus: set[str]) -> dict[str, _Product]:
    """Lock the products (FOR UPDATE, in id order: one statement on PostgreSQL) and read them.

    On SQLite the write transaction (`BEGIN IMMEDIATE`) already holds the database's lock.
    """
    statements = _statements(connection.dialect.name)
    return {
        row.sku: _Product(row.id, row.on_hand_total - row.reserved_total, row.reorder_point, row.stock_seen)
        for chunk in statements.chunks(sorted(skus))
        for row in connection.execute(statements.lock_products, {"skus": chunk})
    }


def _read_levels(
    connection: Connection, product_ids: set[int], warehouse_ids: set[int]
) -> dict[tuple[int, int], int]:
    """On hand per (product, warehouse): read after the product locks, so it is current."""
    statements = _statements(connection.dialect.name)
    found: dict[tuple[int, int], int] = {}
    for chunk in statements.chunks(sorted(product_ids)):
        rows = connection.execute(statements.levels, {"p_ids": chunk, "w_ids": sorted(warehouse_ids)})
        found.update({(row.product_id, row.warehouse_id): row.on_hand for row in rows})
    return found


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
    shift = await session.run_sync(
        lambda sync: _shift(sync.connection(), product_id, warehouse_id, on_hand_delta, reserved_delta, label)
    )
    if shift.events:
        signal_after_commit(session, STOCK_EVENTS)
    return shift


_products, _levels, _movements, _events, _warehouses = (
    Product.__table__, StockLevel.__table__, StockMovement.__table__, StockEvent.__table__, Warehouse.__table__,
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
# A batch's writes, one executemany each. Relative (`+ :d`), though the product locks make the
# planned values exact: the statements stay right whatever else a level row holds.
_ADD_TOTAL = (
    update(_products)
    .where(_products.c.id == bindparam("p_id"))
    .values(on_hand_total=_products.c.on_hand_total + bindparam("d_on_hand"))
)
_ADD_LEVEL = (
    update(_levels)
    .where(_levels.c.product_id == bindparam("p_id"), _levels.c.warehouse_id == bindparam("w_id"))
    .values(on_hand=_levels.c.on_hand + bindparam("d_on_hand"))
)
_UNMOVE = delete(_movements).where(_movements.c.id == bindparam("m_id"))
_LEVEL_ON_HAND = select(_levels.c.on_hand).where(
    _levels.c.product_id == bindparam("p_id"), _levels.c.warehouse_id == bindparam("w_id")
)
_SQLITE_CHUNK = IN_CHUNK  # a name of its own so a test can shrink it


@dataclass(frozen=True, slots=True)
class _Statements:
    """The statements that differ by dialect: `ON CONFLICT` inserts, and how a key list is bound.

    PostgreSQL takes a whole key list as one array (`= ANY(:keys)`), so a batch of any size locks
    its products in one statement, in one id order. SQLite takes `IN` lists, in chunks; it needs
    no row locks.
    """

    lock_products: Any
    levels: Any
    movement: Any  # ledger row; RETURNING the event ids that were new
    level: Any  # a zero level, unless there is one
    ensure_level: Any  # the same, RETURNING its id when it was missing
    whole_lists: bool

    def chunks(self, keys: list[Any]) -> Iterable[list[Any]]:
        if self.whole_lists:
            yield keys
            return
        yield from chunked(keys, _SQLITE_CHUNK)


@functools.cache
def _statements(dialect: str) -> _Statements:
    if dialect == "postgresql":
        insert = postgresql_insert

        def keyed(column: Any, name: str) -> Any:
            return column == any_(bindparam(name, type_=ARRAY(column.type)))
    else:
        insert = sqlite_insert

        def keyed(column: Any, name: str) -> Any:
            return column.in_(bindparam(name, expanding=True))

    lock_products = (
        select(_products.c.sku, _products.c.id, _products.c.on_hand_total, _products.c.reserved_total,
               _products.c.reorder_point, _products.c.stock_seen)
        .where(keyed(_products.c.sku, "skus"))
        .order_by(_products.c.id)
        .with_for_update()
    )
    levels = select(_levels.c.product_id, _levels.c.warehouse_id, _levels.c.on_hand).where(
        keyed(_levels.c.product_id, "p_ids"), keyed(_levels.c.warehouse_id, "w_ids")
    )
    movement = (
        insert(_movements)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(_movements.c.id, _movements.c.event_id)
    )
    level = (
        insert(_levels)
        .values(product_id=bindparam("p_id"), warehouse_id=bindparam("w_id"), on_hand=0, reserved=0, incoming=0)
        .on_conflict_do_nothing(index_elements=["product_id", "warehouse_id"])
    )
    return _Statements(
        lock_products, levels, movement, level, level.returning(_levels.c.id), dialect == "postgresql"
    )


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
        on_hand = _level_on_hand(connection, product_id, warehouse_id)
        raise NotEnoughStock(sku, warehouse, on_hand, on_hand_delta or -reserved_delta)
    events = tuple(crossings(before, after, totals.reorder_point))
    if events:
        connection.execute(
            _events.insert(),
            stamped(connection, [event_row(product_id, kind, before, after, totals.reorder_point) for kind in events],
                    None),
        )
    return Shift(level.on_hand, level.reserved, before, after, events)


def _ensure_level(connection: Connection, product_id: int, warehouse_id: int) -> bool:
    """Insert a zero level if none exists; True if it was missing (so the update may retry)."""
    insert_level = _statements(connection.dialect.name).ensure_level
    return connection.execute(insert_level, {"p_id": product_id, "w_id": warehouse_id}).first() is not None


def _level_on_hand(connection: Connection, product_id: int, warehouse_id: int) -> int:
    found = connection.execute(_LEVEL_ON_HAND, {"p_id": product_id, "w_id": warehouse_id})
    return found.scalar_one_or_none() or 0


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


async def ensure_levels(session: AsyncSession, pairs: Iterable[tuple[int, int]]) -> None:
    """A zero level for each (product id, warehouse id) that has none: a first count of 0 is a
    state worth showing ("none in SH"), not nothing."""
    wanted = [{"p_id": product_id, "w_id": warehouse_id} for product_id, warehouse_id in sorted(set(pairs))]
    if wanted:  # one executemany: a messy first import has ~80,000 of them (a third of 250k rows)
        await session.run_sync(
            lambda sync: sync.connection().execute(_statements(sync.connection().dialect.name).level, wanted))


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


async def add_incoming(
    session: AsyncSession, product_id: int, warehouse_id: int, qty: int, eta: datetime | None
) -> None:
    """More stock on its way (an order, a transfer), on top of what already is; the ETA shown is
    the earliest. It does not change what is available."""
    await session.run_sync(lambda sync: _ensure_level(sync.connection(), product_id, warehouse_id))
    earliest = StockLevel.incoming_eta if eta is None else case(
        ((StockLevel.incoming > 0) & (StockLevel.incoming_eta < eta), StockLevel.incoming_eta), else_=eta
    )
    await session.execute(
        update(StockLevel)
        .where(StockLevel.product_id == product_id, StockLevel.warehouse_id == warehouse_id)
        .values(incoming=StockLevel.incoming + qty, incoming_eta=earliest)
    )


async def settle_incoming(session: AsyncSession, product_id: int, warehouse_id: int, received: int) -> None:
    """Goods arrived: what was on its way shrinks by what came (never below zero)."""
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


async def incoming_eta(session: AsyncSession, product_id: int) -> datetime | None:
    """When more is expected: the earliest ETA a purchaser gave when marking it ordered."""
    return await session.scalar(
        select(func.min(StockLevel.incoming_eta)).where(
            StockLevel.product_id == product_id, StockLevel.incoming > 0, StockLevel.incoming_eta.is_not(None)
        )
    )
