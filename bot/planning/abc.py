"""ABC classes: which products carry the business, by their share of a value (revenue).

One home for the rule, used by replenishment (service level per class) and by the reports.
"""

from __future__ import annotations

import numpy as np

A_SHARE = 0.80
B_SHARE = 0.95


def abc_classes(values: np.ndarray, *, a_share: float = A_SHARE, b_share: float = B_SHARE) -> np.ndarray:
    """'A', 'B' or 'C' for each value, by the cumulative share of the total, largest first.

    A product is in A while the share of everything ranked above it is below `a_share` (so the
    product that crosses the line is still A), likewise B up to `b_share`; the rest, and every
    product with no value, is C. Ties keep their input order.
    """
    values = np.asarray(values, dtype=float)
    classes = np.full(values.shape, "C", dtype="<U1")
    total = values[values > 0].sum()
    if total <= 0:
        return classes
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    share_before = (np.cumsum(ranked) - ranked) / total
    ranked_classes = np.where(share_before < a_share, "A", np.where(share_before < b_share, "B", "C"))
    ranked_classes[ranked <= 0] = "C"
    classes[order] = ranked_classes
    return classes
