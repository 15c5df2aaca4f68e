"""Which threshold crossings a change of available stock makes.

Pure arithmetic, kept apart from the service so the whole table of cases is tested directly.
"""

from __future__ import annotations

from bot.models import StockEventKind


def crossings(before: int, after: int, reorder_point: int) -> list[StockEventKind]:
    """Crossings of a product's total available stock going from `before` to `after`.

    One change may make two crossings: a count straight from plenty to zero is both "fell to the
    reorder point" and "ran out", and each has its own audience (purchasers, customers).
    """
    found: list[StockEventKind] = []
    if after < before:
        if before > reorder_point >= after:
            found.append(StockEventKind.LOW_STOCK)
        if before > 0 >= after:
            found.append(StockEventKind.OUT_OF_STOCK)
    elif after > before:
        if before <= 0 < after:
            found.append(StockEventKind.BACK_IN_STOCK)
        if before <= reorder_point < after:
            found.append(StockEventKind.RECOVERED)
    return found


def threshold_moved(available: int, old_point: int, new_point: int) -> list[StockEventKind]:
    """Crossings made by moving a product's reorder point past its unchanged available stock
    (a catalog import): raised to or above it is "low", lowered below it is "recovered"."""
    if old_point < available <= new_point:
        return [StockEventKind.LOW_STOCK]
    if new_point < available <= old_point:
        return [StockEventKind.RECOVERED]
    return []
