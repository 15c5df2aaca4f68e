"""Report math: ABC/XYZ, stockout days and lost sales, turnover, slow movers. Pure numpy.

A *series* is one product in one warehouse. The history of a period arrives as dense arrays of
series x days (`sold`, and `on_hand` at the end of each day with NaN where unknown), in chunks
of series so 100,000 products x 365 days never sit in memory at once: `series_stats` reduces a
chunk to a few numbers per series, `concat` joins the chunks and `build` does the rest over
arrays of one value per series or product.

Definitions (docs/reports.md says the same to the shop):
- revenue: units sold x current price (integer cents);
- ABC: by each product's share of revenue, `bot.planning.abc` (A up to ABC_A_SHARE, B to ABC_B_SHARE);
- XYZ: coefficient of variation (std / mean) of a product's weekly units, all warehouses together,
  over the whole weeks of the period counted back from its last day: X below 0.5, Y below 1.0, Z
  above; never sold is Z; with fewer than two whole weeks there is no XYZ class ("-");
- stockout day: a day that ended with on_hand 0;
- daily demand: the forecast where there is one, else the average sold on the in-stock days
  of the period (a stockout day's sales do not show the demand);
- lost sales: stockout days x daily demand x price;
- days of cover: the forecast's where there is one, else stock now / daily demand (none without demand);
- turnover: cost of goods sold over the period / average stock value. The catalog has no cost,
  so cost = price and it cancels: units sold / average units on hand over the days whose on_hand
  is known (none when that average is 0 or unknown);
- slow mover: stock on hand and either no sale in `slow_days` days (once the history reaches
  back that far: a shop that just started has no slow movers by this rule) or cover above
  `slow_cover_days`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.planning.abc import A_SHARE, B_SHARE, abc_classes

X_CV = 0.5
Y_CV = 1.0
NO_XYZ = "-"


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """What the rest of the report needs from a series' daily history (one row per series)."""

    sold: np.ndarray  # int64 units over the period
    stockout_days: np.ndarray  # int32
    in_stock_days: np.ndarray  # int32: days not ending at 0 (unknown stock counts as in stock)
    in_stock_sold: np.ndarray  # int64 units sold on those days
    mean_on_hand: np.ndarray  # float64 over the days whose on_hand is known; NaN without any
    weekly: np.ndarray  # int32 (series, whole weeks) units per week, oldest first


def series_stats(sold: np.ndarray, on_hand: np.ndarray) -> SeriesStats:
    """Reduce a chunk: `sold` (series, days) integers, `on_hand` (series, days) floats, NaN unknown."""
    sold = np.asarray(sold)
    on_hand = np.asarray(on_hand)
    out = on_hand == 0  # NaN compares False: unknown is not a stockout
    known = ~np.isnan(on_hand)
    known_days = known.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_on_hand = np.where(known_days > 0, np.nansum(on_hand, axis=1, dtype=np.float64) / known_days, np.nan)
    days = sold.shape[1]
    weeks = days // 7
    recent = sold[:, days - weeks * 7 :]
    weekly = recent.reshape(sold.shape[0], weeks, 7).sum(axis=2, dtype=np.int32)
    return SeriesStats(
        sold=sold.sum(axis=1, dtype=np.int64),
        stockout_days=out.sum(axis=1, dtype=np.int32),
        in_stock_days=(~out).sum(axis=1, dtype=np.int32),
        in_stock_sold=np.where(out, 0, sold).sum(axis=1, dtype=np.int64),
        mean_on_hand=mean_on_hand,
        weekly=weekly,
    )


def concat(chunks: list[SeriesStats]) -> SeriesStats:
    if not chunks:
        return series_stats(np.zeros((0, 0), dtype=np.int32), np.zeros((0, 0)))
    return SeriesStats(*(np.concatenate([getattr(c, name) for c in chunks]) for name in SeriesStats.__slots__))


@dataclass(frozen=True, slots=True)
class Rules:
    a_share: float = A_SHARE
    b_share: float = B_SHARE
    slow_days: int = 60
    slow_cover_days: float = 180.0


@dataclass(frozen=True, slots=True)
class Report:
    # one value per product
    revenue_cents: np.ndarray  # int64
    abc: np.ndarray  # 'A' | 'B' | 'C'
    xyz: np.ndarray  # 'X' | 'Y' | 'Z' | '-'
    # one value per series
    product: np.ndarray  # index into the product arrays
    daily_demand: np.ndarray  # float64
    days_of_cover: np.ndarray  # float64, NaN: no demand
    turnover: np.ndarray  # float64, NaN: no average stock
    stockout_days: np.ndarray
    lost_cents: np.ndarray  # int64
    stock_value_cents: np.ndarray  # int64
    slow: np.ndarray  # bool
    slow_unsold: np.ndarray  # bool: slow because nothing sold in `slow_days` (else: too much cover)
    sold: np.ndarray  # int64 units over the period

    def top(self, values: np.ndarray, n: int) -> np.ndarray:
        """Indexes of the `n` largest positive values, largest first (ties by index)."""
        candidates = np.flatnonzero(values > 0)
        if len(candidates) > n:
            candidates = candidates[np.argpartition(-values[candidates], n - 1)[:n]]
        return candidates[np.lexsort((candidates, -values[candidates]))]


def xyz_classes(weekly: np.ndarray) -> np.ndarray:
    """X/Y/Z by the coefficient of variation of each row's weekly units."""
    weekly = np.asarray(weekly, dtype=np.float64)
    classes = np.full(weekly.shape[0], NO_XYZ, dtype="<U1")
    if weekly.shape[1] < 2:
        return classes
    mean = weekly.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.where(mean > 0, weekly.std(axis=1) / mean, np.inf)
    classes[:] = np.where(cv < X_CV, "X", np.where(cv < Y_CV, "Y", "Z"))
    return classes


def build(
    stats: SeriesStats,
    *,
    product: np.ndarray,
    price_cents: np.ndarray,
    forecast: np.ndarray,
    forecast_cover: np.ndarray,
    stock_now: np.ndarray,
    last_sale_age: np.ndarray,
    rules: Rules = Rules(),
    history_days: float = np.inf,
) -> Report:
    """The report of a period.

    product: (series,) index into `price_cents` (products); forecast, forecast_cover: (series,)
    NaN where no forecast; stock_now: (series,) units on hand now; last_sale_age: (series,) days
    since the last day with a sale, inf when never; history_days: how far back the shop's
    history reaches (no sale in `slow_days` days is only known once it reaches that far).
    """
    product = np.asarray(product, dtype=np.int64)
    price = np.asarray(price_cents, dtype=np.int64)
    n_products = len(price)
    units = np.bincount(product, weights=stats.sold, minlength=n_products).astype(np.int64)
    revenue = units * price
    abc = abc_classes(revenue, a_share=rules.a_share, b_share=rules.b_share)
    weekly = np.zeros((n_products, stats.weekly.shape[1]), dtype=np.int64)
    np.add.at(weekly, product, stats.weekly)
    xyz = xyz_classes(weekly)

    forecast = np.asarray(forecast, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        history_rate = np.where(stats.in_stock_days > 0, stats.in_stock_sold / np.maximum(stats.in_stock_days, 1), 0.0)
        demand = np.where(np.isnan(forecast), history_rate, forecast)
        stock = np.asarray(stock_now, dtype=np.float64)
        own_cover = np.where(demand > 0, stock / demand, np.nan)
        cover = np.where(np.isnan(forecast), own_cover, np.asarray(forecast_cover, dtype=np.float64))
        turnover = np.where(stats.mean_on_hand > 0, stats.sold / stats.mean_on_hand, np.nan)
    series_price = price[product]
    lost = np.rint(stats.stockout_days * demand * series_price).astype(np.int64)
    stock_value = np.rint(np.maximum(stock, 0) * series_price).astype(np.int64)
    unsold = (np.asarray(last_sale_age, dtype=np.float64) >= rules.slow_days) & (history_days >= rules.slow_days)
    slow = (stock > 0) & (unsold | (cover > rules.slow_cover_days))
    return Report(
        revenue_cents=revenue, abc=abc, xyz=xyz, product=product, daily_demand=demand, days_of_cover=cover,
        turnover=turnover, stockout_days=stats.stockout_days, lost_cents=lost, stock_value_cents=stock_value,
        slow=slow, slow_unsold=slow & unsold, sold=stats.sold,
    )


@dataclass(frozen=True, slots=True)
class Pareto:
    """The cumulative share of revenue by the share of products ranked by revenue (thinned)."""

    product_share: np.ndarray  # 0..1
    revenue_share: np.ndarray  # 0..1
    counts: dict[str, int]  # products per ABC class
    shares: dict[str, float]  # revenue share per ABC class


def pareto(report: Report, points: int = 400) -> Pareto:
    revenue = np.sort(report.revenue_cents)[::-1].astype(np.float64)
    total = revenue.sum()
    n = len(revenue)
    counts = {c: int((report.abc == c).sum()) for c in "ABC"}
    if n == 0 or total <= 0:
        return Pareto(np.zeros(0), np.zeros(0), counts, dict.fromkeys("ABC", 0.0))
    cumulative = np.cumsum(revenue) / total
    picks = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(np.int64))
    shares = {c: float(report.revenue_cents[report.abc == c].sum() / total) for c in "ABC"}
    return Pareto(
        np.concatenate([[0.0], (picks + 1) / n]), np.concatenate([[0.0], cumulative[picks]]), counts, shares
    )


def abc_xyz_matrix(report: Report) -> tuple[np.ndarray, np.ndarray]:
    """Products and revenue share in each ABC (rows A, B, C) x XYZ (columns X, Y, Z, -) cell."""
    rows = np.searchsorted(np.array(["A", "B", "C"]), report.abc)
    columns = np.select([report.xyz == "X", report.xyz == "Y", report.xyz == "Z"], [0, 1, 2], 3)
    cell = rows * 4 + columns
    counts = np.bincount(cell, minlength=12).reshape(3, 4)
    total = report.revenue_cents.sum()
    revenue = np.bincount(cell, weights=report.revenue_cents.astype(np.float64), minlength=12).reshape(3, 4)
    return counts, revenue / total if total > 0 else revenue
