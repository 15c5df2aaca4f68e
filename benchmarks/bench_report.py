"""Benchmark of /report at scale: the report math, every chart and the CSV.

    python benchmarks/bench_report.py [--products 100000] [--days 365] [--warehouses 1]

A seeded synthetic shop is generated in memory, chunk by chunk as `load` reads the database
(the database read itself is not timed: it depends on the server, not on this code). Demand is
Poisson around a log-normal rate per product; stock is refilled every 7-28 days to a level
that is sometimes too small (stockout days) and sometimes far too large (slow movers); 8 % of
products never sell. Printed: the wall time of the report math, of the charts and CSV, their
total, and the extra peak resident memory of the run; beside them, in the same run, a baseline:
the per-series reduction written as plain Python loops (timed on the first chunk, scaled up).
Then each chart alone, in English and in Chinese, best of 3, wall and CPU time (CPU time is the
figure to read on a shared machine: the load average is printed first).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.delivery.templates import Templates  # noqa: E402
from bot.reports import analysis, charts, data as report_data, files as report_files  # noqa: E402
from bot.reports.data import ReportData  # noqa: E402
from bot.recovery.funnel import FunnelReport  # noqa: E402

CHUNK = report_data.CHUNK_PRODUCTS
FUNNEL = FunnelReport(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC), {}, {}, affected=212,
                      contacted=188, reached=176, pressed=121, substitute_taken=58, waited=49, bought=83,
                      revenue_substitutes_cents=412_350)
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
             names: list[str] | None = None, spent: dict[str, float] | None = None) -> ReportData:
    """A shop's report data, built in chunks of products as `bot.reports.data.load` does.

    `spent` collects the seconds of the report's own work ("math") apart from the simulation
    ("simulate") and, on the first chunk, the pure-Python baseline ("baseline", scaled up).
    """
    spent = spent if spent is not None else {}
    rng = np.random.default_rng(seed)
    rate = rng.lognormal(mean=0.0, sigma=1.3, size=products) * (rng.random(products) > 0.08)
    prices = (rng.lognormal(mean=7.3, sigma=0.6, size=products)).round().astype(np.int64) + 99
    chunks, stock_now, last_age = [], [], []
    for start in range(0, products, CHUNK):
        began = time.perf_counter()
        part = np.repeat(rate[start : start + CHUNK], len(warehouses)) / len(warehouses)
        sold, on_hand = simulate(rng, part, days)
        simulated = time.perf_counter()
        spent["simulate"] = spent.get("simulate", 0.0) + simulated - began
        if "baseline" not in spent:
            python_reduce(sold, on_hand)
            spent["baseline"] = (time.perf_counter() - simulated) * products * len(warehouses) / len(part)
        began, cpu = time.perf_counter(), time.process_time()
        chunks.append(analysis.series_stats(sold, report_data.carry_forward(on_hand)))
        spent["math"] = spent.get("math", 0.0) + time.perf_counter() - began
        spent["math_cpu"] = spent.get("math_cpu", 0.0) + time.process_time() - cpu
        # What `load` reads from the database besides the history: stock now, last sale.
        stock_now.append(on_hand[:, -1].astype(np.float64))
        sold_days = sold > 0
        last = np.where(sold_days.any(axis=1), days - 1 - np.argmax(sold_days[:, ::-1], axis=1), -1)
        last_age.append(np.where(last >= 0, days - 1 - last, np.inf))
    n_series = products * len(warehouses)
    began, cpu = time.perf_counter(), time.process_time()
    data = report_data.assemble(
        first=UNTIL - timedelta(days=days), days=days,
        skus=[f"SKU-{i:06d}" for i in range(products)],
        names=names or [f"Product {i}" for i in range(products)], prices=prices,
        warehouses=list(warehouses) * products, product=np.repeat(np.arange(products), len(warehouses)),
        stats=analysis.concat(chunks), forecast=np.full(n_series, np.nan), forecast_cover=np.full(n_series, np.nan),
        stock_now=np.concatenate(stock_now), last_sale_age=np.concatenate(last_age), rules=analysis.Rules(),
    )
    spent["math"] = spent.get("math", 0.0) + time.perf_counter() - began
    spent["math_cpu"] = spent.get("math_cpu", 0.0) + time.process_time() - cpu
    return data


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


def rss_mb() -> float:
    """Resident memory now (Linux), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--warehouses", type=int, default=1)
    args = parser.parse_args()
    from common import describe  # benchmarks/common.py, beside this script

    warehouses = tuple(f"W{i}" for i in range(1, args.warehouses + 1))
    print(describe())
    print(f"load average {os.getloadavg()[0]:.1f}; {args.products:,} products x {len(warehouses)} warehouse(s) x "
          f"{args.days} days; font: {charts.find_font().families[0]}")
    templates = Templates()
    # Warm matplotlib's imports, font cache and the CJK font on a tiny report (once per process).
    report_files.render(templates, "en", generate(50, 28), None)
    before = rss_mb()
    spent: dict[str, float] = {}
    data = generate(args.products, args.days, warehouses=warehouses, spent=spent)
    cpu = time.process_time()
    began = time.perf_counter()
    files = report_files.render(templates, "en", data, None)
    rendered = time.perf_counter() - began
    render_cpu = time.process_time() - cpu
    extra = peak_rss_mb() - before
    total = spent["math"] + rendered
    print(f"report math (numpy, chunks of {CHUNK:,})  {spent['math']:7.2f} s  (CPU {spent['math_cpu']:.2f} s)")
    print(f"4 charts + CSV + caption             {rendered:7.2f} s  (CPU {render_cpu:.2f} s)")
    print(f"total /report (without the DB read)  {total:7.2f} s  (CPU {spent['math_cpu'] + render_cpu:.2f} s)")
    print(f"extra peak memory (RSS)              {extra:7.0f} MB  (history simulation included)")
    print(f"baseline: the per-series reduction in pure Python, scaled: {spent['baseline']:.1f} s "
          f"(numpy: part of the {spent['math']:.2f} s above); simulating the history: {spent['simulate']:.1f} s")
    sizes = ", ".join(f"{p.filename} {len(p.content) / 1024:.0f} KB" for p in files.photos)
    print(f"files: {sizes}; CSV {len(files.csv.content) / 1e6:.1f} MB, {len(data.warehouses):,} rows")
    began, cpu = time.perf_counter(), time.process_time()
    report_files.csv_bytes(data)
    print(f"of which the CSV alone                {time.perf_counter() - began:7.2f} s  "
          f"(CPU {time.process_time() - cpu:.2f} s)")
    for name, draw in chart_timers(templates, data):
        walls, cpus = [], []
        for _ in range(3):
            cpu, began = time.process_time(), time.perf_counter()
            size = len(draw())
            walls.append(time.perf_counter() - began)
            cpus.append(time.process_time() - cpu)
        print(f"chart {name:<22} best of 3: {1000 * min(walls):6.0f} ms wall, {1000 * min(cpus):4.0f} ms CPU, "
              f"{size / 1024:.0f} KB")


def chart_timers(templates: Templates, data: ReportData):  # type: ignore[no-untyped-def]
    font = charts.find_font()
    for locale in ("en", "zh"):
        t = charts.labeller(templates, locale)
        pareto = analysis.pareto(data.report)
        counts, shares = analysis.abc_xyz_matrix(data.report)
        yield f"abc ({locale})", lambda t=t, p=pareto: charts.pareto_chart(
            font, t, product_share=p.product_share, revenue_share=p.revenue_share, counts=p.counts,
            shares=p.shares, a_share=0.8, b_share=0.95, days=data.days)
        yield f"abc_xyz ({locale})", lambda t=t, c=counts, s=shares: charts.matrix_chart(
            font, t, counts=c, revenue_share=s, days=data.days)
        yield f"stockouts ({locale})", lambda t=t: charts.stockout_chart(data, font, t)
        yield f"slow movers ({locale})", lambda t=t: charts.slow_chart(data, font, t)
        yield f"funnel ({locale})", lambda locale=locale: charts.funnel_png(templates, locale, FUNNEL, 30, font)


if __name__ == "__main__":
    main()
