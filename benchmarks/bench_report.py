"""Benchmark of /report at scale: the report math, every chart and the CSV.

    python benchmarks/bench_report.py [--products 100000] [--days 365] [--warehouses 1]

A seeded synthetic shop is generated in memory, chunk by chunk as `load` reads the database
(the database read itself is not timed: it depends on the server, not on this code). Demand is
Poisson around a log-normal rate per product; stock is refilled every 7-28 days to a level
that is sometimes too small (stockout days) and sometimes far too large (slow movers); 8 % of
products never sell. Printed: wall time and the extra peak memory (tracemalloc: what Python
and numpy allocate) of each step and of the whole report, beside a baseline in the same run,
the pure-Python reduction of one chunk scaled to the whole catalogue.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.delivery.templates import Templates  # noqa: E402
from bot.planning import charts, report_service, reports  # noqa: E402
from bot.planning.report_service import ReportData  # noqa: E402

CHUNK = report_service.CHUNK_PRODUCTS
UNTIL = date(2026, 11, 30)


def simulate(rng: np.random.Generator, rate: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Daily units sold and end-of-day stock of series selling at `rate` a day, refilled in cycles."""
    n = len(rate)
    demand = rng.poisson(rate[:, None], size=(n, days)).astype(np.int32)
    cycle = rng.integers(7, 29, size=n)
    offset = rng.integers(0, 28, size=n)
    fill = np.where(rng.random(n) < 0.15, 6.0, rng.uniform(0.7, 1.6, size=n))  # some far too much
    level = np.maximum(np.rint(rate * cycle * fill), rng.integers(3, 40, size=n)).astype(np.int64)
    t = np.arange(days)
    start = t[None, :] - (t[None, :] + offset[:, None]) % cycle[:, None]  # first day of each cycle
    wanted = np.cumsum(demand, axis=1, dtype=np.int64)
    before = np.where(start > 0, np.take_along_axis(wanted, np.maximum(start - 1, 0), axis=1), 0)
    left_before = level[:, None] - (wanted - demand - before)
    sold = np.clip(np.minimum(demand, left_before), 0, None).astype(np.int32)
    on_hand = np.clip(left_before - demand, 0, None).astype(np.float32)
    return sold, on_hand


def generate(products: int, days: int, *, warehouses: tuple[str, ...] = ("SH",), seed: int = 7,
             names: list[str] | None = None, baseline: list[float] | None = None) -> ReportData:
    """A shop's report data, built in chunks of products as `report_service.load` does."""
    rng = np.random.default_rng(seed)
    rate = rng.lognormal(mean=0.0, sigma=1.3, size=products) * (rng.random(products) > 0.08)
    prices = (rng.lognormal(mean=7.3, sigma=0.6, size=products)).round().astype(np.int64) + 99
    chunks, stock_now, last_age = [], [], []
    for start in range(0, products, CHUNK):
        part = np.repeat(rate[start : start + CHUNK], len(warehouses)) / len(warehouses)
        sold, on_hand = simulate(rng, part, days)
        if baseline is not None and not baseline:
            began = time.perf_counter()
            python_reduce(sold, on_hand)
            baseline.append((time.perf_counter() - began) * products / (len(part) / len(warehouses)))
        chunks.append(reports.series_stats(sold, report_service.carry_forward(on_hand)))
        stock_now.append(on_hand[:, -1].astype(np.float64))
        sold_days = sold > 0
        last = np.where(sold_days.any(axis=1), days - 1 - np.argmax(sold_days[:, ::-1], axis=1), -1)
        last_age.append(np.where(last >= 0, days - 1 - last, np.inf))
    n_series = products * len(warehouses)
    return report_service.assemble(
        first=UNTIL - timedelta(days=days), days=days,
        skus=[f"SKU-{i:06d}" for i in range(products)],
        names=names or [f"Product {i}" for i in range(products)], prices=prices,
        warehouses=list(warehouses) * products, product=np.repeat(np.arange(products), len(warehouses)),
        stats=reports.concat(chunks), forecast=np.full(n_series, np.nan), forecast_cover=np.full(n_series, np.nan),
        stock_now=np.concatenate(stock_now), last_sale_age=np.concatenate(last_age), rules=reports.Rules(),
    )


def python_reduce(sold: np.ndarray, on_hand: np.ndarray) -> None:
    """Baseline: the same per-series reduction as plain Python loops over the rows."""
    for row_sold, row_stock in zip(sold.tolist(), on_hand.tolist(), strict=True):
        total = out = in_sold = 0
        stock_sum = 0.0
        for s, h in zip(row_sold, row_stock, strict=True):
            total += s
            stock_sum += h
            if h == 0:
                out += 1
            else:
                in_sold += s


def measure(label: str, work):  # type: ignore[no-untyped-def]
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    began = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - began
    peak = (tracemalloc.get_traced_memory()[1] - base) / 1e6
    print(f"{label:<34} {seconds:8.2f} s {peak:10.1f} MB")
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--warehouses", type=int, default=1)
    args = parser.parse_args()
    from common import describe  # benchmarks/common.py, beside this script

    warehouses = tuple(f"W{i}" for i in range(1, args.warehouses + 1))
    print(describe())
    print(f"{args.products:,} products x {len(warehouses)} warehouse(s) x {args.days} days; "
          f"font: {charts.find_font().families[0]}")
    templates = Templates()
    charts.find_font()  # the font lookup happens once per process, at the first report
    render = report_service.render  # warm matplotlib's imports and caches on a tiny report
    render(templates, "en", generate(50, 28), None)
    tracemalloc.start()
    print(f"{'step':<34} {'wall':>10} {'extra peak':>13}")
    baseline: list[float] = []
    began = time.perf_counter()
    data, _, gen_peak = measure("history (generated) + report math", lambda: generate(
        args.products, args.days, warehouses=warehouses, baseline=baseline))
    files, _, render_peak = measure("5 charts + CSV (en)", lambda: render(templates, "en", data, None))
    total = time.perf_counter() - began
    tracemalloc.stop()
    print(f"{'total /report':<34} {total:8.2f} s {max(gen_peak, render_peak):10.1f} MB")
    print(f"baseline: pure-Python reduction of the history alone, scaled: {baseline[0]:.1f} s")
    sizes = ", ".join(f"{p.filename} {len(p.content) / 1024:.0f} KB" for p in files.photos)
    print(f"files: {sizes}; CSV {len(files.csv.content) / 1e6:.1f} MB, {len(data.warehouses):,} rows")
    for name, draw in chart_timers(templates, data):
        began = time.perf_counter()
        draw()
        print(f"chart {name:<28} {1000 * (time.perf_counter() - began):8.0f} ms")


def chart_timers(templates: Templates, data: ReportData):  # type: ignore[no-untyped-def]
    font = charts.find_font()
    for locale in ("en", "zh"):
        t = report_service.labeller(templates, locale)
        pareto = reports.pareto(data.report)
        counts, shares = reports.abc_xyz_matrix(data.report)
        yield f"abc ({locale})", lambda t=t, p=pareto: charts.pareto_chart(
            font, t, product_share=p.product_share, revenue_share=p.revenue_share, counts=p.counts,
            shares=p.shares, a_share=0.8, b_share=0.95, days=data.days)
        yield f"abc_xyz ({locale})", lambda t=t, c=counts, s=shares: charts.matrix_chart(
            font, t, counts=c, revenue_share=s, days=data.days)
        yield f"stockouts ({locale})", lambda t=t: report_service.stockout_chart(data, font, t)
        yield f"slow movers ({locale})", lambda t=t: report_service.slow_chart(data, font, t)


if __name__ == "__main__":
    main()
