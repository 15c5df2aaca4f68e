"""Demand is an allow-list of movement reasons: a decrease with a shop's own word is taken (the
contract's `reason` is free) and kept in the ledger, and never counted as a sale."""

from __future__ import annotations

from datetime import UTC

import pytest

from bot.api.schemas import StockEventsBody
from bot.db import Database
from bot.inventory.stock import StockChange, apply_changes
from bot.models import MovementReason
from bot.planning.history import units_sold
from tests.factories import add_product


def test_only_sales_and_unexplained_decreases_are_demand() -> None:
    assert {reason for reason in MovementReason if reason.is_demand} == {
        MovementReason.SALE, MovementReason.ADJUSTMENT}


def _event(**fields: object) -> dict[str, object]:
    return {"events": [{"event_id": "e-1", "sku": "LIP-1", "warehouse": "main", **fields}]}


@pytest.mark.parametrize("fields", [
    {"delta": -1, "reason": "sale"}, {"delta": -1}, {"delta": -1, "reason": "transfer"},
    {"delta": 1, "reason": "damage"}, {"on_hand": 0, "reason": "stocktake"}, {"delta": -2, "reason": "damage"},
])
def test_known_reasons_and_a_shops_own_words_pass(fields: dict[str, object]) -> None:
    StockEventsBody.model_validate(_event(**fields))


async def test_a_decrease_in_the_shops_own_words_is_not_counted_as_sold(db: Database) -> None:
    async with db.transaction() as session:
        product = await add_product(session, "LIP-1", stock={"main": 20})
        await apply_changes(session, [
            StockChange("LIP-1", "main", delta=-3, reason="sale", actor="api"),
            StockChange("LIP-1", "main", delta=-2, actor="api"),  # no reason: an adjustment, a sale as before
            StockChange("LIP-1", "main", delta=-5, reason="damage", actor="api"),
            StockChange("LIP-1", "main", delta=-1, reason="transfer", actor="api"),
        ])
    async with db.read_session() as session:
        assert await units_sold(session, product.id, 1, UTC) == 5
