"""A batch through the stock service against an oracle: the same changes one per transaction.

Each side starts from a fresh database with the same products, then the two are compared on what
the service returns and on every row it writes (ledger, levels, totals, stock events), keyed by
SKU and warehouse code rather than ids. Within one product both sides keep the given order, so
per-product ledger and event sequences must match exactly.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.db import Database, create_database
from bot.inventory import stock
from bot.inventory.stock import (
    Applied,
    NotEnoughStock,
    StockChange,
    StockError,
    apply_changes,
)
from bot.models import Base, Product, StockEvent, StockLevel, StockMovement, Warehouse
from tests.conftest import POSTGRES_URL
from tests.factories import add_product

Setup = list[tuple[str, int, dict[str, int]]]  # sku, reorder point, initial stock per warehouse


@asynccontextmanager
async def fresh_database(template: Path | None, folder: Path, name: str) -> AsyncIterator[Database]:
    """A migrated, empty database: a copy of the template (SQLite) or the emptied server (PostgreSQL).

    On PostgreSQL there is one database, so the oracle and the batch use it one after the other.
    """
    if template is None:
        db = create_database(POSTGRES_URL)
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with db.engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    else:
        target = folder / f"{name}.db"
        shutil.copyfile(template, target)
        db = create_database(f"sqlite+aiosqlite:///{target}")
    try:
        yield db
    finally:
        await db.dispose()


async def _setup(db: Database, products: Setup, seen_events: Sequence[StockChange] = ()) -> None:
    async with db.transaction() as session:
        for sku, reorder_point, initial in products:
            await add_product(session, sku, reorder_point=reorder_point, stock=initial)
    if seen_events:
        async with db.transaction() as session:
            await apply_changes(session, list(seen_events))


async def snapshot(db: Database) -> dict[str, Any]:
    async with db.read_session() as session:
        products = {
            sku: (on_hand, reserved)
            for sku, on_hand, reserved in await session.execute(
                select(Product.sku, Product.on_hand_total, Product.reserved_total)
            )
        }
        levels = {
            (sku, code): (on_hand, reserved, incoming)
            for sku, code, on_hand, reserved, incoming in await session.execute(
                select(Product.sku, Warehouse.code, StockLevel.on_hand, StockLevel.reserved, StockLevel.incoming)
                .join(Product, Product.id == StockLevel.product_id)
                .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
            )
        }
        ledger: dict[str, list[tuple]] = {}
        rows = await session.execute(
            select(Product.sku, Warehouse.code, StockMovement.delta, StockMovement.reason, StockMovement.actor,
                   StockMovement.event_id, StockMovement.created_at)
            .join(Product, Product.id == StockMovement.product_id)
            .join(Warehouse, Warehouse.id == StockMovement.warehouse_id)
            .order_by(StockMovement.id)
        )
        for sku, code, delta, reason, actor, event_id, created_at in rows:
            assert created_at is not None
            ledger.setdefault(sku, []).append((code, delta, reason, actor, event_id))
        events: dict[str, list[tuple]] = {}
        rows = await session.execute(
            select(Product.sku, StockEvent.kind, StockEvent.available_before, StockEvent.available_after,
                   StockEvent.reorder_point, StockEvent.attempts, StockEvent.processed_at, StockEvent.created_at)
            .join(Product, Product.id == StockEvent.product_id)
            .order_by(StockEvent.id)
        )
        for sku, kind, before, after, reorder_point, attempts, processed_at, created_at in rows:
            assert created_at is not None
            events.setdefault(sku, []).append((kind, before, after, reorder_point, attempts, processed_at))
        warehouses = set(await session.scalars(select(Warehouse.code)))
    return {"products": products, "levels": levels, "ledger": ledger, "events": events, "warehouses": warehouses}


async def one_per_transaction(db: Database, changes: Sequence[StockChange]) -> tuple[list[Applied], StockError | None]:
    """The oracle: each change in its own transaction, in the order given; stops at the first error."""
    results = []
    for change in changes:
        try:
            async with db.transaction() as session:
                results.append((await apply_changes(session, [change]))[0])
        except StockError as error:
            return results, error
    return results, None


async def compare(
    template: Path | None, folder: Path, products: Setup, changes: Sequence[StockChange],
    seen_events: Sequence[StockChange] = (),
) -> tuple[list[Applied], dict[str, Any]]:
    """Apply `changes` as one batch and one per transaction; assert both agree; return the batch's."""
    async with fresh_database(template, folder, "oracle") as db:
        await _setup(db, products, seen_events)
        expected, oracle_error = await one_per_transaction(db, changes)
        assert oracle_error is None, oracle_error
        expected_state = await snapshot(db)
    async with fresh_database(template, folder, "batch") as db:
        await _setup(db, products, seen_events)
        async with db.transaction() as session:
            results = await apply_changes(session, changes)
        state = await snapshot(db)
    assert results == expected
    assert state == expected_state
    return results, state


async def test_a_mixed_batch_matches_one_change_per_transaction(
    migrated_template: Path | None, tmp_path: Path
) -> None:
    products: Setup = [
        ("A", 5, {"MAIN": 10, "SH": 3}),
        ("B", 2, {"MAIN": 4}),
        ("C", 0, {}),
        ("D", 10, {"MAIN": 50}),
        ("E", 1, {"MAIN": 1}),
    ]
    long_actor, long_reason = "x" * 200, "r" * 40
    changes = [
        StockChange("A", "MAIN", delta=-2, reason="sale", event_id="e1"),
        StockChange("B", "MAIN", on_hand=1, actor="counter"),  # a count: -3, falls to the reorder point
        StockChange("A", "SH", delta=4),
        StockChange("C", "GZ", delta=5, event_id="c1"),  # a new warehouse and a new level
        StockChange("A", "MAIN", delta=-1, event_id="e1"),  # the same event again in the batch
        StockChange("A", "MAIN", on_hand=7),  # a count after a delta of the same level: 8 -> 7
        StockChange("D", "MAIN", delta=-45, reason="sale"),  # crosses the reorder point mid-batch
        StockChange("D", "MAIN", delta=20),  # and back above it
        StockChange("B", "SH", on_hand=0),  # a zero count where there is no level: no level made
        StockChange("A", "MAIN", delta=0, event_id="zero"),
        StockChange("C", "GZ", delta=-5, reason=long_reason, actor=long_actor),  # low and out at once
        StockChange("B", "MAIN", delta=1, event_id="e2"),
        StockChange("C", "GZ", delta=2, event_id="e2"),  # same event id, another product: a duplicate
        StockChange("A", "MAIN", delta=3, event_id="old-1"),  # in the ledger before the batch
        StockChange("D", "MAIN", on_hand=0, reason="stocktake"),
        StockChange("E", "WH2", delta=5),  # up and down again in a level the batch creates
        StockChange("E", "WH2", delta=-5),
        StockChange("E", "MAIN", on_hand=1),  # a count that changes nothing
        StockChange("C", "GZ", on_hand=9),
    ]
    results, state = await compare(
        migrated_template, tmp_path, products, changes,
        seen_events=[StockChange("A", "SH", delta=1, event_id="old-1")],
    )
    duplicates = [index for index, result in enumerate(results) if result.duplicate]
    assert duplicates == [4, 12, 13]
    assert (results[5].delta, results[5].on_hand) == (-1, 7)
    assert [kind.value for kind in results[6].events] == ["low_stock"]
    assert [kind.value for kind in results[10].events] == ["low_stock", "out_of_stock"]
    assert ("B", "SH") not in state["levels"] and state["levels"][("E", "WH2")] == (0, 0, 0)
    assert state["ledger"]["C"][1][1:4] == (-5, "r" * 32, "x" * 128)


async def test_a_batch_whose_400th_change_goes_negative_applies_nothing(
    migrated_template: Path | None, tmp_path: Path
) -> None:
    products: Setup = [(f"P{n:02d}", 30, {"MAIN": 200, "SH": 50}) for n in range(20)]
    rng = random.Random(400)
    changes = []
    for n in range(500):
        sku, warehouse = f"P{rng.randrange(20):02d}", rng.choice(["MAIN", "SH"])
        if n % 7 == 0:
            changes.append(StockChange(sku, warehouse, on_hand=rng.randrange(40, 120), event_id=f"n{n}"))
        else:
            changes.append(StockChange(sku, warehouse, delta=rng.randrange(-3, 4), event_id=f"n{n}"))
    changes[399] = StockChange("P07", "SH", delta=-10_000, event_id="n399")

    async with fresh_database(migrated_template, tmp_path, "oracle") as db:
        await _setup(db, products)
        applied, oracle_error = await one_per_transaction(db, changes)
    assert len(applied) == 399 and isinstance(oracle_error, NotEnoughStock)

    async with fresh_database(migrated_template, tmp_path, "batch") as db:
        await _setup(db, products)
        before = await snapshot(db)
        with pytest.raises(NotEnoughStock) as raised:
            async with db.transaction() as session:
                await apply_changes(session, changes)
        assert str(raised.value) == str(oracle_error)
        assert await snapshot(db) == before


@pytest.mark.parametrize("chunk", [3, 5_000])
async def test_random_batches_match_the_oracle(
    migrated_template: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Random counts, deltas, repeats and replays; a small `chunk` splits SQLite's IN lists."""
    monkeypatch.setattr(stock, "_SQLITE_CHUNK", chunk)
    rng = random.Random(chunk)
    products: Setup = [(f"R{n:02d}", rng.randrange(0, 15), {"MAIN": rng.randrange(0, 20)}) for n in range(12)]
    seen = [StockChange(f"R{n:02d}", "MAIN", delta=1, event_id=f"ev{n * 3}") for n in range(5)]
    proposed = []
    for n in range(300):
        sku, warehouse = f"R{rng.randrange(12):02d}", rng.choice(["MAIN", "MAIN", "SH", "GZ"])
        event_id = rng.choice([None, f"ev{rng.randrange(60)}", f"u{n}", f"u{n}"])
        if rng.random() < 0.25:
            proposed.append(StockChange(sku, warehouse, on_hand=rng.randrange(0, 25), event_id=event_id))
        else:
            proposed.append(StockChange(sku, warehouse, delta=rng.randrange(-6, 7), event_id=event_id))

    # Keep only changes the oracle can apply: a change that would go below zero becomes a count.
    changes: list[StockChange] = []
    async with fresh_database(migrated_template, tmp_path, "probe") as db:
        await _setup(db, products, seen)
        for change in proposed:
            try:
                async with db.transaction() as session:
                    await apply_changes(session, [change])
            except NotEnoughStock:
                change = StockChange(change.sku, change.warehouse, on_hand=3, event_id=change.event_id)
                async with db.transaction() as session:
                    await apply_changes(session, [change])
            changes.append(change)

    results, state = await compare(migrated_template, tmp_path, products, changes, seen_events=seen)
    assert any(result.duplicate for result in results)
    assert sum(len(events) for events in state["events"].values()) > 5  # seed levels make none


async def test_concurrent_overlapping_batches_end_at_the_exact_sum(db: Database) -> None:
    """Batches over the same products in different orders neither deadlock nor lose a change."""
    async with db.transaction() as session:
        for n in range(30):
            await add_product(session, f"K{n:02d}", reorder_point=500, stock={"MAIN": 1_000})

    async def sell(seed: int) -> None:
        rng = random.Random(seed)
        skus = [f"K{n:02d}" for n in range(30)] * 5
        rng.shuffle(skus)
        async with db.transaction() as session:
            await apply_changes(session, [StockChange(sku, "MAIN", delta=-1, reason="sale") for sku in skus])

    await asyncio.gather(*(sell(seed) for seed in range(8)))
    async with db.read_session() as session:
        totals = set(await session.scalars(select(Product.on_hand_total)))
        levels = set(await session.scalars(select(StockLevel.on_hand)))
        crossings = list(await session.scalars(select(StockEvent.kind).where(StockEvent.kind == "low_stock")))
    assert totals == levels == {1_000 - 8 * 5}
    assert crossings == []
