"""The service-level replay of benchmarks/bench_forecast_real.py: real daily demand on a simulated shelf.

Each day: orders due arrive before the shop opens, the day's demand (M5 sales) is served from the
shelf and what it cannot serve is lost, then the policy is checked (daily review) and an order
brings the position back to the order-up-to level. An order placed after day t's sales arrives
before day t + L + 1 opens: days t+1 .. t+L are its risk window. A cycle is one order; it is a
stockout cycle when any demand went unserved in its risk window (the cycle service level counts
cycles that were not). The policy is refit every `refit` days from the history before that day.
The first `warmup` days are run but not counted (the shelf starts at the order-up-to level).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.planning.replenishment import Policy, order_quantity


@dataclass(frozen=True)
class Outcome:
    cycles: np.ndarray  # (S,) orders whose risk window was counted
    stockout_cycles: np.ndarray  # (S,)
    demand: np.ndarray  # (S,) units wanted on counted days
    served: np.ndarray  # (S,)
    stock_days: np.ndarray  # (S,) sum over counted days of the end-of-day stock
    days: int


def replay(demand: np.ndarray, start: int, days: int, lead: int, policy_at: Callable[[int], Policy], *,
           refit: int = 7, warmup: int = 28) -> Outcome:
    """Run one policy over demand[:, start:start+days]; `policy_at(t)` sees only columns before t."""
    n = demand.shape[0]
    ring = lead + 1  # arrival days of outstanding orders are t+1 .. t+L+1: L+1 slots
    due = np.zeros((n, ring))
    spoilt = np.zeros((n, ring), bool)  # a stockout happened while this slot's order was out
    pol = policy_at(start)
    on_hand = np.ceil(pol.order_up_to)
    cycles, stockouts, wanted, served, stock = (np.zeros(n) for _ in range(5))
    for t in range(start, start + days):
        counted = t >= start + warmup
        if (t - start) % refit == 0 and t > start:
            pol = policy_at(t)
        slot = t % ring
        arriving = due[:, slot] > 0
        if counted:
            cycles += arriving
            stockouts += arriving & spoilt[:, slot]
        on_hand += due[:, slot]
        due[:, slot], spoilt[:, slot] = 0.0, False
        d = demand[:, t]
        sold = np.minimum(on_hand, d)
        on_hand -= sold
        spoilt |= (d > sold)[:, None] & (due > 0)
        if counted:
            wanted += d
            served += sold
            stock += on_hand
        qty = order_quantity(on_hand + due.sum(axis=1), pol)
        arrive = (t + lead + 1) % ring
        due[:, arrive] += qty
    return Outcome(cycles, stockouts, wanted, served, stock, days - warmup)
