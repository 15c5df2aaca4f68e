"""What the offers add over the control group, with 95 % intervals: pure functions (numpy).

Two groups of customers drawn at random (bot/recovery/holdout.py): those offered, and those held
out. For each we know whether they bought the product or a substitute within the attribution
window, and the revenue that made (for the offered, net of the coupon discounts they redeemed).

- **Uplift**: the share who bought when offered minus the share who bought when held out, with
  Newcombe's hybrid score interval (Newcombe 1998, "Interval estimation for the difference
  between independent proportions", method 10): a Wilson score interval for each share, combined
  as the square root of the sum of squares of each share's distance to the bound in the
  direction that widens the difference. Why this one: the plain Wald interval (difference ±
  1.96 standard errors) is too narrow, and can leave [-1, 1], when a share is near 0 or 1 or a
  group is small, which is exactly where a control group of a small shop sits (20 % of a few
  hundred customers, a few percent buying). Newcombe's interval keeps close to its nominal 95 %
  coverage there, needs no iteration and no random numbers (a bootstrap would make the figures
  move between two looks at the same data), and is the one Agresti, Altman and most
  statistics packages recommend for this case.
- **Incremental revenue**: what the offered customers spent minus what they would have spent at
  the held-out customers' rate, i.e. n_offered x (mean net revenue per offered customer - mean
  revenue per held-out customer). Its interval is Welch's normal interval for a difference of
  means, scaled by n_offered: revenue per customer is mostly zeros with a long tail, so no
  share formula applies, and with 30 or more customers per group the mean is close enough to
  normal for a 95 % interval (a bootstrap would do no better at this size, and costs thousands
  of resamples per look).
- **Too few to say**: fewer than MIN_GROUP customers in either group gives no interval at all
  (None), rather than a number that looks like news and is noise.

Money comes in as integer cents; the statistics are floating point, and the revenue figures are
rounded to whole cents on the way out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile: a two-sided 95 % interval
MIN_GROUP = 30


@dataclass(frozen=True, slots=True)
class Interval:
    value: float
    low: float
    high: float

    def __contains__(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True, slots=True)
class Group:
    customers: int
    bought: int
    revenue_cents: int

    @property
    def share(self) -> float | None:
        return self.bought / self.customers if self.customers else None


@dataclass(frozen=True, slots=True)
class Uplift:
    offered: Group
    held_out: Group
    uplift: Interval | None  # None: too few to say
    incremental_revenue_cents: Interval | None  # whole cents; None: too few to say
    min_group: int = MIN_GROUP

    @property
    def too_few(self) -> bool:
        return self.uplift is None


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a share (n > 0)."""
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def share_difference(bought_a: int, n_a: int, bought_b: int, n_b: int, z: float = Z95) -> Interval:
    """share a - share b with Newcombe's hybrid score interval (method 10); both n > 0."""
    p_a, p_b = bought_a / n_a, bought_b / n_b
    low_a, high_a = wilson(bought_a, n_a, z)
    low_b, high_b = wilson(bought_b, n_b, z)
    difference = p_a - p_b
    return Interval(
        difference,
        difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
        difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2),
    )


def mean_difference(a: np.ndarray, b: np.ndarray, z: float = Z95) -> Interval:
    """mean a - mean b with Welch's normal interval; each with at least two values."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    difference = float(a.mean() - b.mean())
    error = math.sqrt(float(a.var(ddof=1)) / a.size + float(b.var(ddof=1)) / b.size)
    return Interval(difference, difference - z * error, difference + z * error)


def compare(bought_offered: np.ndarray, revenue_offered_cents: np.ndarray, bought_held_out: np.ndarray,
            revenue_held_out_cents: np.ndarray, *, min_group: int = MIN_GROUP) -> Uplift:
    """The comparison of the two groups, one entry per customer in each array: bought or not,
    and their revenue in cents (for the offered, already net of coupon discounts)."""
    bought_offered = np.asarray(bought_offered, dtype=bool)
    bought_held_out = np.asarray(bought_held_out, dtype=bool)
    revenue_offered_cents = np.asarray(revenue_offered_cents, dtype=np.int64)
    revenue_held_out_cents = np.asarray(revenue_held_out_cents, dtype=np.int64)
    offered = Group(bought_offered.size, int(bought_offered.sum()), int(revenue_offered_cents.sum()))
    held_out = Group(bought_held_out.size, int(bought_held_out.sum()), int(revenue_held_out_cents.sum()))
    if min(offered.customers, held_out.customers) < max(min_group, 2):
        return Uplift(offered, held_out, None, None, min_group)
    uplift = share_difference(offered.bought, offered.customers, held_out.bought, held_out.customers)
    per_customer = mean_difference(revenue_offered_cents, revenue_held_out_cents)
    n = offered.customers
    incremental = Interval(round(n * per_customer.value), round(n * per_customer.low), round(n * per_customer.high))
    return Uplift(offered, held_out, uplift, incremental, min_group)
