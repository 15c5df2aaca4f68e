"""One draft purchase request per supplier, as CSV: today's buy suggestions for that supplier."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bot.csv_safe import csv_document
from bot.planning.suggestions import Action, Line

COLUMNS = ("supplier", "sku", "name", "warehouse", "qty", "pack_size", "daily_demand", "days_of_cover",
           "stockout_date", "lead_time_days")


def supplier_key(supplier: str | None) -> str:
    """A short stable key for a supplier name (button data has 64 bytes; names may be longer)."""
    return hashlib.sha256((supplier or "").encode()).hexdigest()[:16]


def suppliers_to_order(lines: Sequence[Line]) -> list[str | None]:
    """Suppliers with something to buy, in the plan's order."""
    seen: dict[str | None, None] = {}
    for line in lines:
        if line.action is Action.BUY:
            seen.setdefault(line.supplier, None)
    return list(seen)


def draft(lines: Sequence[Line], key: str) -> tuple[str | None, list[Line]]:
    """The supplier a key stands for and its buy lines (empty when it has none today)."""
    for supplier in suppliers_to_order(lines):
        if supplier_key(supplier) == key:
            return supplier, [line for line in lines if line.action is Action.BUY and line.supplier == supplier]
    return None, []


def draft_csv(lines: Sequence[Line]) -> bytes:
    return csv_document(COLUMNS, (
        [
            line.supplier or "", line.sku, line.name, line.warehouse, line.qty, line.pack_size,
            f"{line.daily_demand:.2f}", "" if line.days_of_cover is None else f"{line.days_of_cover:.1f}",
            line.stockout_date.isoformat() if line.stockout_date else "", f"{line.lead_time_days:.0f}",
        ]
        for line in lines
    ))
