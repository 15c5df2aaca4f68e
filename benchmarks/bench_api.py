"""Benchmark of the integration API's stock-events route over loopback.

    python benchmarks/bench_api.py [--batches 40] [--batch-size 500] [--products 2000]
                                   [--concurrency 1] [--database-url postgresql+asyncpg://...]

Starts the real app (`create_api_app`) with aiohttp's AppRunner on a free loopback port in this
process, seeds a catalog, then POSTs signed batches of stock events (a realistic mix: 80 % sales
deltas, 10 % receipts, 10 % counts, spread over the catalog and 3 warehouses) and reports events/s
and per-request latency. SQLite (a fresh file in a temporary folder) unless --database-url is
given; a PostgreSQL database is emptied and migrated first, so point it at a scratch database.
The client is aiohttp in the same process and event loop, so its cost is included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import describe, percentile  # benchmarks/common.py, beside this script

import aiohttp
from aiohttp import web
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.api.app import create_api_app  # noqa: E402
from bot.api.signing import signed_headers  # noqa: E402
from bot.db import create_database  # noqa: E402
from bot.migrate import recreate  # noqa: E402
from bot.models import Product, Warehouse, utcnow  # noqa: E402
from bot.settings import load_settings  # noqa: E402

SECRET = "bench-secret"
WAREHOUSES = ("main", "east", "west")


async def prepare(url: str, products: int) -> None:
    db = create_database(url)
    try:
        await recreate(db)
        now = utcnow()
        async with db.transaction() as session:
            await session.execute(
                Product.__table__.insert(),
                [
                    {"sku": f"SKU-{n:06d}", "name": f"Product {n}", "category": f"cat-{n % 40}",
                     "price_cents": 1000 + n, "attributes": {}, "reorder_point": 5,
                     "created_at": now, "updated_at": now}
                    for n in range(products)
                ],
            )
            await session.execute(Warehouse.__table__.insert(), [{"code": code} for code in WAREHOUSES])
        # Every product starts with 1,000 in each warehouse, so sales below do not run dry.
        async with db.transaction() as session:
            await session.execute(text("UPDATE products SET on_hand_total = :total"), {"total": 1000 * len(WAREHOUSES)})
            await session.execute(
                text("INSERT INTO stock_levels (product_id, warehouse_id, on_hand, reserved, incoming) "
                     "SELECT p.id, w.id, 1000, 0, 0 FROM products p CROSS JOIN warehouses w")
            )
    finally:
        await db.dispose()


def make_batches(count: int, size: int, products: int, seed: int, prefix: str) -> list[bytes]:
    rng = random.Random(seed)
    batches = []
    serial = 0
    for _ in range(count):
        events = []
        for _ in range(size):
            serial += 1
            sku = f"SKU-{rng.randrange(products):06d}"
            warehouse = rng.choice(WAREHOUSES)
            roll = rng.random()
            event: dict[str, object] = {"event_id": f"{prefix}-{serial}", "sku": sku, "warehouse": warehouse}
            if roll < 0.10:
                event["on_hand"] = rng.randrange(500, 1000)
                event["reason"] = "count"
            elif roll < 0.20:
                event["delta"] = rng.randrange(1, 50)
                event["reason"] = "receipt"
            else:
                event["delta"] = -1
                event["reason"] = "sale"
            events.append(event)
        batches.append(json.dumps({"events": events}).encode())
    return batches


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        await prepare(url, args.products)
        settings = load_settings(_env_file=None, DATABASE_URL=url, WEBHOOK_SECRET=SECRET, QUIET_HOURS="")
        db = create_database(settings)
        app = create_api_app(settings, db)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}/api/v1/stock-events"

        warmup = make_batches(2, args.batch_size, args.products, args.seed + 1, "warm")
        batches = make_batches(args.batches, args.batch_size, args.products, args.seed, "bench")
        latencies: list[float] = []
        failures = 0
        async with aiohttp.ClientSession() as client:

            async def send(body: bytes) -> None:
                nonlocal failures
                started = time.perf_counter()
                async with client.post(
                    base, data=body, headers={**signed_headers(SECRET, "POST", "/api/v1/stock-events", body), "Content-Type": "application/json"}
                ) as response:
                    payload = await response.json()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    failures += 1
                    if failures <= 3:
                        print(f"  request failed: {response.status} {str(payload)[:300]}", file=sys.stderr)

            # Warm-up: connections, caches, compiled statements.
            for body in warmup:
                await send(body)
            latencies.clear()
            queue = list(batches)
            started = time.perf_counter()

            async def worker() -> None:
                while queue:
                    await send(queue.pop(0))

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            elapsed = time.perf_counter() - started
        await runner.cleanup()
        await db.dispose()

    events = args.batches * args.batch_size
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return percentile(ordered, p) * 1000

    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"machine: {describe()}")
    print(f"backend: {backend}; {args.batches} batches x {args.batch_size} events, "
          f"{args.products} products x {len(WAREHOUSES)} warehouses, concurrency {args.concurrency}")
    print(f"failed requests: {failures}")
    print(f"events/s: {events / elapsed:,.0f}  (total {elapsed:.2f} s)")
    print(f"per request ms: p50 {pct(50):.1f}  p95 {pct(95):.1f}  max {ordered[-1] * 1000:.1f}  "
          f"mean {statistics.fmean(ordered) * 1000:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at once")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default="", help="postgresql+asyncpg://... (emptied first)")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
