"""Replenishment rules: cover, reorder point, order size, transfers, learned lead times (pure).

Method (docs/forecast.md explains it for purchasers):

- Days of cover = (available + what arrives within the lead time) / forecast daily demand; infinite
  when nothing is expected to sell. The stockout date is today + whole days of cover.
- Reorder point s: the demand over the lead time L plus the day between two checks is a count with
  the forecast's mean (weekday-shaped from tomorrow) and a variance from the daily spread and the
  rate's own error; as a negative binomial its quantile at the service level of the product's ABC
  class (cycle service level: the chance an order arrives before the shelf runs empty) is s, in
  whole units. Safety stock = s - mean lead-time demand (shown, not added again). Order-up-to
  S = s + review_days of demand. The normal approximation used before (z * sigma * sqrt(L)) fell
  short on slow, skewed demand; docs/forecast.md has the replay.
- Order when the inventory position (available + on order) is at or below s: order S - position
  rounded up to whole units, then up to a multiple of the supplier's pack size. Above s: 0.
- Transfer before buying: a warehouse at or below its reorder point may receive from another
  warehouse of the same product when moving is faster than the supplier. The donor keeps its
  reorder point + its lead-time demand + `margin_days` of demand; the receiver is filled to its
  reorder point + `margin_days` of demand. The receiver's fill is below what a donor must keep, so
  units never go back and forth.
- Learned lead time: the p90 (nearest rank) of measured lead times once a supplier has
  MIN_RECEIPTS receipts, else the catalog's; on-time rate = share received on or before the ETA.

Invariants: quantities are integers >= 0; an order is never smaller than one pack; a transfer
never leaves its source at or below its reorder point; nothing here reads a clock or a database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np

from bot.planning.forecast import Forecast

SERVICE_LEVELS = {"A": 0.98, "B": 0.95, "C": 0.90}
CHECK_DAYS = 1.0  # suggestions are checked daily: an order may go out up to a day after the crossing
NB_EXACT_MEAN = 400.0  # above this lead-time mean the count is near normal: its quantile is used
NB_MAX_UNITS = 4000  # the exact CDF sums at most this many terms
MIN_RECEIPTS = 3
LEAD_TIME_PERCENTILE = 90


def days_of_cover(available, arriving, daily_demand) -> np.ndarray:
    """(available + arriving) / daily demand per series; inf where demand is 0; never negative."""
    stock = np.maximum(np.asarray(available, dtype=float) + np.asarray(arriving, dtype=float), 0.0)
    demand = np.asarray(daily_demand, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(demand > 0, stock / np.where(demand > 0, demand, 1.0), np.inf)


def stockout_dates(today: date, cover: np.ndarray) -> list[date | None]:
    """The day each series runs out: today + whole days of cover; None when it never does (or past year 9999)."""
    out: list[date | None] = []
    for days in np.asarray(cover, dtype=float):
        try:
            out.append(today + timedelta(days=math.floor(days)) if math.isfinite(days) else None)
        except OverflowError:
            out.append(None)
    return out


@dataclass(frozen=True)
class Policy:
    reorder_point: np.ndarray  # (S,) float: order when the position is at or below it
    order_up_to: np.ndarray  # (S,) float: the position an order restores
    safety_stock: np.ndarray  # (S,) float


def service_level_of(abc: np.ndarray, service_levels: Mapping[str, float] = SERVICE_LEVELS) -> np.ndarray:
    """Each series' cycle service level (a probability) from its ABC class; an unknown class is a
    ValueError."""
    abc = np.asarray(abc)
    unknown = set(np.unique(abc).tolist()) - set(service_levels)
    if unknown:
        raise ValueError(f"no service level for ABC classes {sorted(unknown)}")
    level = np.zeros(abc.shape)
    for k, v in service_levels.items():
        level[abc == k] = v
    return level


def lead_time_demand(forecast: Forecast, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the demand over the next `days` per series.

    The mean follows the weekday profile from tomorrow on. The variance is the spread of a whole
    week's demand, in proportion to the weeks (where the history had enough whole weeks; else the
    daily spread times the days), plus the rate's own uncertainty, which grows with the square of
    the days (a rate 10 % off is 10 % off every day of the lead time).
    """
    days = np.maximum(np.asarray(days, dtype=float), 0.0)
    mean = forecast.demand_over(days)
    sd = np.asarray(forecast.daily_sd, dtype=float)
    rate_sd = np.zeros_like(sd) if forecast.rate_sd is None else np.asarray(forecast.rate_sd, dtype=float)
    week_sd = np.full_like(sd, np.nan) if forecast.week_sd is None else np.asarray(forecast.week_sd, dtype=float)
    spread = np.where(np.isfinite(week_sd), days / 7.0 * np.nan_to_num(week_sd) ** 2, days * sd**2)
    return mean, spread + (days * rate_sd) ** 2


def demand_quantile(mean: np.ndarray, var: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The smallest whole number of units q with P(demand <= q) >= level, per series.

    Demand over a lead time is a count, mostly small and skewed: a negative binomial with this mean
    and variance (Poisson where the variance is not above the mean). Its CDF is summed term by term
    (pmf(k+1) = pmf(k) (k + r) / (k + 1) (1 - p)); a mean above NB_EXACT_MEAN, where the count is
    near normal anyway, or a tail longer than NB_MAX_UNITS, takes the normal quantile instead.
    """
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    var = np.asarray(var, dtype=float)
    level = np.broadcast_to(np.asarray(level, dtype=float), mean.shape)
    out = np.zeros(mean.shape)
    z = np.array([NormalDist().inv_cdf(min(max(p, 1e-9), 1 - 1e-9)) for p in level.ravel()]).reshape(mean.shape)
    normal = np.ceil(np.round(mean + z * np.sqrt(np.maximum(var, mean)) - 0.5, 9))
    active = np.flatnonzero((mean > 0) & (mean <= NB_EXACT_MEAN))
    excess = np.maximum(var[active] - mean[active], 1e-9 * mean[active])  # Poisson: r -> infinity
    r = mean[active] ** 2 / excess
    log_p = np.log(mean[active]) - np.log(mean[active] + excess)  # success probability r / (r + mean)
    pmf = np.exp(r * log_p)
    cdf = pmf.copy()
    target = level[active]
    k = 0
    while active.size and k < NB_MAX_UNITS:
        done = cdf >= target - 1e-12
        out[active[done]] = k
        keep = ~done
        active, pmf, cdf, r, log_p, target = active[keep], pmf[keep], cdf[keep], r[keep], log_p[keep], target[keep]
        pmf = pmf * (k + r) / (k + 1) * -np.expm1(log_p)
        cdf = cdf + pmf
        k += 1
    out[active] = normal[active]  # the tail ran past NB_MAX_UNITS: near normal by then
    big = mean > NB_EXACT_MEAN
    out[big] = normal[big]
    return np.maximum(out, 0.0)


def undershoot_days(forecast: Forecast, check_days: float, lead: np.ndarray) -> np.ndarray:
    """Days of demand to cover beyond the lead time: the days between two checks, plus how far,
    on average, the position is already below the reorder point when the check finds it there.
    Sales come in whole units: one at a time they land exactly on the line; in bigger lots they
    overshoot it, the more the lumpier (renewal theory for whole units: E[d(d-1)] / (2 E[d]) units
    of a day's demand d). Capped at the lead time.
    """
    mu = np.asarray(forecast.daily_demand, dtype=float)
    sd = np.asarray(forecast.daily_sd, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(mu > 0, np.maximum(sd**2 + mu**2 - mu, 0.0) / (2 * mu**2), 0.0)
    return check_days + np.minimum(days, lead)


def policy(
    forecast: Forecast,
    lead_time_days: np.ndarray,
    abc: np.ndarray,
    *,
    review_days: float = 7,
    check_days: float = CHECK_DAYS,
    service_levels: Mapping[str, float] = SERVICE_LEVELS,
) -> Policy:
    """Reorder point and order-up-to level per series (see the module docstring)."""
    lead = np.maximum(np.asarray(lead_time_days, dtype=float), 0.0)
    mean, var = lead_time_demand(forecast, lead + undershoot_days(forecast, check_days, lead))
    if forecast.after_sale is not None:  # the lead time starts right after a sale (forecast.py)
        spell = np.maximum(np.asarray(forecast.after_sale, dtype=float), 1.0)
        mean, var = mean * spell, var * spell
    reorder_point = demand_quantile(mean, var, service_level_of(abc, service_levels))
    margin = np.asarray(forecast.daily_demand, dtype=float) * review_days
    return Policy(
        reorder_point=reorder_point,
        order_up_to=reorder_point + margin,
        safety_stock=np.maximum(reorder_point - mean, 0.0),
    )


def order_quantity(position: np.ndarray, pol: Policy, pack_size: np.ndarray | None = None) -> np.ndarray:
    """Units to order per series: 0 above the reorder point, else up to order-up-to in whole packs.

    A pack size of 0, 1 or missing means single units.
    """
    position = np.asarray(position, dtype=float)
    need = np.ceil(np.round(pol.order_up_to - position, 9))  # rounding: 2.0000000001 is 2, not 3
    qty = np.where(position <= pol.reorder_point, np.maximum(need, 0.0), 0.0)
    if pack_size is not None:
        pack = np.nan_to_num(np.asarray(pack_size, dtype=float), nan=1.0)
        pack = np.where(pack >= 1, np.floor(pack), 1.0)
        qty = np.ceil(qty / pack) * pack
    return qty.astype(np.int64)


@dataclass(frozen=True)
class Transfer:
    product: int
    source: int
    target: int
    qty: int


def plan_transfers(
    product_ids,
    warehouse_ids,
    available,
    daily_demand,
    reorder_point,
    lead_time_days,
    *,
    transfer_days: float = 1.0,
    margin_days: float = 7.0,
    min_qty: int = 1,
) -> list[Transfer]:
    """Moves between warehouses of the same product that beat buying (see the module docstring).

    Arrays are aligned per (product, warehouse) series; `lead_time_days` is the supplier's lead time
    to that warehouse. The most urgent receiver (least cover) is served first, from the donor with
    the most to spare. Ids come back as given.
    """
    product_ids = np.asarray(product_ids)
    warehouse_ids = np.asarray(warehouse_ids)
    avail = np.asarray(available, dtype=float)
    mu = np.maximum(np.asarray(daily_demand, dtype=float), 0.0)
    rop = np.asarray(reorder_point, dtype=float)
    lead = np.asarray(lead_time_days, dtype=float)

    keep = rop + (lead + margin_days) * mu
    spare = np.floor(np.round(avail - keep, 9))
    need = np.ceil(np.round(rop + margin_days * mu - avail, 9))
    receives = (avail <= rop) & (need >= min_qty) & (lead > transfer_days)
    gives = spare >= min_qty
    candidates = np.intersect1d(product_ids[receives], product_ids[gives])
    if candidates.size == 0:
        return []

    cover = days_of_cover(avail, 0, mu)
    moves: list[Transfer] = []
    for product in candidates.tolist():
        rows = np.flatnonzero(product_ids == product)
        takers = [i for i in rows[np.argsort(cover[rows], kind="stable")] if receives[i]]
        left = {int(i): int(spare[i]) for i in rows if gives[i]}
        for t in takers:
            wanted = int(need[t])
            for s in sorted(left, key=lambda i: -left[i]):
                qty = min(wanted, left[s])
                if qty < min_qty:
                    break
                source, target = warehouse_ids[s].item(), warehouse_ids[t].item()
                moves.append(Transfer(product=product, source=source, target=target, qty=qty))
                left[s] -= qty
                wanted -= qty
                if wanted < min_qty:
                    break
    return moves


@dataclass(frozen=True)
class LeadTimeStats:
    days: float
    on_time_rate: float | None  # None when no sample had an ETA
    samples: int  # usable receipts (received on or after the order date)


def learned_lead_time(samples: Sequence[tuple[date, date | None, date]], catalog_days: int) -> LeadTimeStats:
    """A supplier's lead time from its receipts (ordered, promised ETA or None, received).

    p90 of the measured days (nearest rank: a lead time that actually happened) once there are
    MIN_RECEIPTS usable receipts, else `catalog_days`. A receipt dated before its order is a data
    error and is left out.
    """
    usable = [(o, eta, r) for o, eta, r in samples if r >= o]
    days = sorted((r - o).days for o, _, r in usable)
    with_eta = [(eta, r) for _, eta, r in usable if eta is not None]
    on_time = sum(r <= eta for eta, r in with_eta) / len(with_eta) if with_eta else None
    if len(days) < MIN_RECEIPTS:
        return LeadTimeStats(days=float(catalog_days), on_time_rate=on_time, samples=len(days))
    rank = math.ceil(LEAD_TIME_PERCENTILE / 100 * len(days))
    return LeadTimeStats(days=float(days[rank - 1]), on_time_rate=on_time, samples=len(days))
