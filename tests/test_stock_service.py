import asyncio

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.inventory.stock import (
    NotEnoughStock,
    StockChange,
    UnknownProduct,
    apply_change,
    apply_changes,
)
from bot.inventory.thresholds import crossings, threshold_moved
from bot.models import Product, StockEvent, StockEventKind, StockLevel, StockMovement
from tests.factories import add_product

LOW, OUT, BACK, RECOVERED = (
    StockEventKind.LOW_STOCK,
    StockEventKind.OUT_OF_STOCK,
    StockEventKind.BACK_IN_STOCK,
    StockEventKind.RECOVERED,
)


@pytest.mark.parametrize(
    ("before", "after", "reorder_point", "expected"),
    [
        (10, 6, 5, []),  # still above the reorder point
        (10, 5, 5, [LOW]),  # falls *to* the reorder point
        (6, 4, 5, [LOW]),
        (5, 4, 5, []),  # already at or below: no new crossing
        (10, 0, 5, [LOW, OUT]),  # a count straight from plenty to zero: both
        (3, 0, 5, [OUT]),
        (1, -2, 5, [OUT]),  # oversold through reservations
        (0, -1, 5, []),
        (0, 3, 5, [BACK]),
        (0, 8, 5, [BACK, RECOVERED]),
        (4, 6, 5, [RECOVERED]),
        (5, 6, 5, [RECOVERED]),
        (6, 9, 5, []),
        (3, 3, 5, []),
        (2, 0, 0, [LOW, OUT]),  # reorder point zero: running out is also reaching it
    ],
)
def test_threshold_crossings(before: int, after: int, reorder_point: int, expected: list) -> None:
    assert crossings(before, after, reorder_point) == expected


async def _events(db: Database) -> list[str]:
    async with db.read_session() as session:
        return list((await session.scalars(select(StockEvent.kind).order_by(StockEvent.id))).all())


async def test_a_count_from_plenty_to_zero_writes_both_crossings(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "LIP-1", reorder_point=5, stock={"MAIN": 20})
    async with db.transaction() as session:
        result = await apply_change(session, StockChange("LIP-1", "MAIN", on_hand=0, actor="t"))
    assert result.delta == -20
    assert (result.available_before, result.available_after) == (20, 0)
    # Its first level was a state (no crossings); the count to zero makes both downward ones.
    assert await _events(db) == ["low_stock", "out_of_stock"]
    async with db.read_session() as session:
        deltas = (await session.scalars(select(StockMovement.delta).order_by(StockMovement.id))).all()
    assert deltas == [20, -20]  # the count is recorded as the difference


async def test_same_event_id_twice_changes_stock_once(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "LIP-1", stock={"MAIN": 10})
    change = StockChange("LIP-1", "MAIN", delta=-3, reason="sale", event_id="pos-77")
    async with db.transaction() as session:
        first = await apply_change(session, change)
    async with db.transaction() as session:
        second = await apply_change(session, change)
    assert not first.duplicate and second.duplicate
    async with db.read_session() as session:
        product = await session.scalar(select(Product).where(Product.sku == "LIP-1"))
        assert product.on_hand_total == 7


async def test_rolled_back_change_leaves_no_event_and_no_stock(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "LIP-1", reorder_point=5, stock={"MAIN": 10})
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await apply_change(session, StockChange("LIP-1", "MAIN", delta=-10))
            raise RuntimeError("crash after the change, before commit")
    async with db.read_session() as session:
        assert await session.scalar(select(Product.on_hand_total)) == 10
    assert await _events(db) == []  # and its first level was a state, not a change


async def test_a_batch_with_one_bad_change_applies_nothing(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "A", stock={"MAIN": 5})
        await add_product(session, "B", stock={"MAIN": 1})
    with pytest.raises(NotEnoughStock, match="B in MAIN has 1 on hand"):
        async with db.transaction() as session:
            await apply_changes(
                session,
                [StockChange("A", "MAIN", delta=-2), StockChange("B", "MAIN", delta=-3)],
            )
    with pytest.raises(UnknownProduct):
        async with db.transaction() as session:
            await apply_changes(session, [StockChange("A", "MAIN", delta=-1), StockChange("ZZ", "MAIN", delta=1)])
    async with db.read_session() as session:
        levels = (await session.execute(select(StockLevel.on_hand).order_by(StockLevel.id))).scalars().all()
    assert levels == [5, 1]


async def test_totals_span_warehouses_and_unknown_warehouse_is_created(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "A", reorder_point=3, stock={"SH": 2, "BJ": 2})
    async with db.transaction() as session:
        result = await apply_change(session, StockChange("A", "GZ", delta=5))
    assert (result.on_hand, result.available_after) == (5, 9)


async def test_fifty_concurrent_decrements_end_at_the_exact_sum(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "HOT", reorder_point=60, stock={"MAIN": 100})

    async def sell_one(n: int) -> None:
        async with db.transaction() as session:
            await apply_change(session, StockChange("HOT", "MAIN", delta=-1, reason="sale", event_id=f"s{n}"))

    await asyncio.gather(*(sell_one(n) for n in range(50)))
    async with db.read_session() as session:
        product = await session.scalar(select(Product).where(Product.sku == "HOT"))
        level = await session.scalar(select(StockLevel.on_hand))
        movements = await session.scalar(select(func.count()).select_from(StockMovement))
    assert (product.on_hand_total, level, movements) == (50, 50, 51)
    # Exactly one decrement crossed the reorder point, however the race went.
    assert (await _events(db)).count("low_stock") == 1


@pytest.mark.parametrize(
    ("available", "old_point", "new_point", "expected"),
    [
        (5, 3, 5, [StockEventKind.LOW_STOCK]),  # raised to the stock: now at the reorder point
        (5, 3, 8, [StockEventKind.LOW_STOCK]),
        (5, 8, 4, [StockEventKind.RECOVERED]),  # lowered below the stock
        (5, 5, 4, [StockEventKind.RECOVERED]),
        (5, 6, 7, []),  # low before and after
        (5, 1, 4, []),  # above before and after
        (5, 5, 5, []),
    ],
)
def test_moving_the_reorder_point_past_the_stock(available: int, old_point: int, new_point: int,
                                                 expected: list) -> None:
    assert threshold_moved(available, old_point, new_point) == expected
