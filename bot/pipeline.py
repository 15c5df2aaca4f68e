"""The event pipeline's policy: what a stock event can say, which of them a customer waits on,
and the lane each is claimed from (`bot/events.py` works the lanes, `bot/recovery/hold.py` moves a
weighed batch's events out of the waiting lane).

Kept out of the tables so that the rule is read in one place; `StockEvent.lane` takes its default
from `event_lane`, so every writer of a stock event row gets the same lane.
"""

from __future__ import annotations

import enum


class StockEventKind(enum.StrEnum):
    """What the rest of the bot reacts to; written in the transaction that caused it."""

    LOW_STOCK = "low_stock"  # available fell to or below the reorder point
    OUT_OF_STOCK = "out_of_stock"  # available fell to zero or below
    BACK_IN_STOCK = "back_in_stock"  # available rose above zero
    RECOVERED = "recovered"  # available rose above the reorder point
    ORDER_SHORT = "order_short"  # an open order line arrived for a product that is out
    LOW_COVER = "low_cover"  # the forecast says it runs out before a new order could arrive


CUSTOMER_FACING = frozenset({StockEventKind.OUT_OF_STOCK, StockEventKind.ORDER_SHORT, StockEventKind.BACK_IN_STOCK})


LIVE_LANE, BOOKKEEPING_LANE, AWAITING_LANE, BULK_LANE = 0, 1, 2, 3


def event_lane(kind: str, *, in_batch: bool = False) -> int:
    """0 for events a customer waits on (consumed first), 1 for the shop's own bookkeeping.

    Customer events of an import or API batch (`ContactBatch`) wait in lane 2 until the batch is
    weighed against MASS_CONTACT_LIMIT; released, they move to lane 0 (a small batch) or lane 3
    (a large one, worked a slice per pass so that live events pass it)."""
    if kind not in CUSTOMER_FACING:
        return BOOKKEEPING_LANE
    return AWAITING_LANE if in_batch else LIVE_LANE
