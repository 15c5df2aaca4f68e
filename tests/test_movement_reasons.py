"""Demand is an allow-list of movement reasons; a decrease with an unknown reason is refused where
a caller's own words come in (the API), instead of being counted as a sale."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.api.schemas import StockEventsBody, validation_errors
from bot.models import MovementReason


def test_only_sales_and_unexplained_decreases_are_demand() -> None:
    assert {reason for reason in MovementReason if reason.is_demand} == {
        MovementReason.SALE, MovementReason.ADJUSTMENT}


def _event(**fields: object) -> dict[str, object]:
    return {"events": [{"event_id": "e-1", "sku": "LIP-1", "warehouse": "main", **fields}]}


@pytest.mark.parametrize("fields", [
    {"delta": -1, "reason": "sale"}, {"delta": -1}, {"delta": -1, "reason": "transfer"},
    {"delta": 1, "reason": "damage"}, {"on_hand": 0, "reason": "stocktake"},
])
def test_known_reasons_and_free_words_on_counts_or_increases_pass(fields: dict[str, object]) -> None:
    StockEventsBody.model_validate(_event(**fields))


def test_a_decrease_with_an_unknown_reason_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        StockEventsBody.model_validate(_event(delta=-2, reason="damage"))
    [error] = validation_errors(caught.value, "events")
    assert (error["index"], error["field"]) == (0, "reason")
    assert "'damage'" in error["message"]
