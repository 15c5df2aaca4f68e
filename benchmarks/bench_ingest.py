"""Stock events through the inventory service on SQLite: throughput and latency.

    python benchmarks/bench_ingest.py [--events 20000] [--products 1000] [--batch 500]

Prints events/s applied one event per transaction and in batches, and the single-event
latency p50/p95 (each a committed transaction with its ledger row, level and totals update,
and any threshold crossing rows).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import describe, percentile  # benchmarks/common.py, beside this script

from bot.db import create_database
from bot.inventory.stock import StockChange, apply_changes
from bot.migrate import upgrade
from bot.models import Product


async def _prepare(url: str, products: int) -> None:
    db = create_database(url)
    await upgrade(db)
    async with db.transaction() as session:
        await session.execute(
            Product.__table__.insert(),
            [{"sku": f"SKU-{n:06d}", "name": f"Product {n}", "category": "bench", "price_cents": 1000,
              "attributes": {}, "reorder_point": 50, "safety_stock": 0, "lead_time_days": 7,
              "on_hand_total": 0, "reserved_total": 0} for n in range(products)],
        )
    async with db.transaction() as session:
        await apply_changes(session, [StockChange(f"SKU-{n:06d}", "MAIN", on_hand=100_000) for n in range(products)])
    await db.dispose()


def _events(count: int, products: int, tag: str) -> list[StockChange]:
    return [
        StockChange(f"SKU-{n % products:06d}", "MAIN", delta=-1 if n % 3 else 2, reason="sale",
                    actor="bench", event_id=f"{tag}-{n}")
        for n in range(count)
    ]


async def _run(url: str, events: int, products: int, batch: int) -> None:
    db = create_database(url)
    single = _events(events // 4, products, "single")
    latencies = []
    started = time.perf_counter()
    for change in single:
        t0 = time.perf_counter()
        async with db.transaction() as session:
            await apply_changes(session, [change])
        latencies.append(time.perf_counter() - t0)
    single_rate = len(single) / (time.perf_counter() - started)

    batched = _events(events, products, "batch")
    started = time.perf_counter()
    for start in range(0, len(batched), batch):
        async with db.transaction() as session:
            await apply_changes(session, batched[start : start + batch])
    batch_rate = len(batched) / (time.perf_counter() - started)
    await db.dispose()

    print(f"machine: {describe()}")
    print(f"{'mode':<28}{'events':>8}{'events/s':>12}")
    print(f"{'one per transaction':<28}{len(single):>8}{single_rate:>12,.0f}")
    print(f"{f'batches of {batch}':<28}{len(batched):>8}{batch_rate:>12,.0f}")
    print(f"single-event latency: p50 {percentile(latencies, 50) * 1000:.2f} ms, "
          f"p95 {percentile(latencies, 95) * 1000:.2f} ms, "
          f"max {max(latencies) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        asyncio.run(_prepare(url, args.products))
        asyncio.run(_run(url, args.events, args.products, args.batch))


if __name__ == "__main__":
    main()
