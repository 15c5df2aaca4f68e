"""The shop's own database, polled (SOURCE_DATABASE_URL): what a poll costs at 100,000 rows.

    python benchmarks/bench_source.py [--rows 100000] [--runs 5] [--database-url URL] [--source-url URL]

Stockbot's database (default: a SQLite file in a temporary folder, WAL) holds `--rows` products,
one customer with an open order of one of them and a linked chat; the source (default: another
SQLite file, opened read only by the poller) holds one stock row per product in an ERP-like table.
The first poll counts every level (the connector being set up). Then, each measured `--runs`
times, median and worst, wall time and CPU time of the whole process (`time.process_time`, the
database threads included):

- a poll that finds nothing changed;
- a poll after 1 % of the source rows changed (each a count through the stock service, one batch);
- the same with a stockout among them: from the start of the poll until the customer's stockout
  offer is committed to the outbox (the event worker's pass included, as `stockbot run` runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import describe  # benchmarks/common.py, beside this script
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import reactions
from bot.db import create_database
from bot.events import EventConsumer
from bot.ingest.connectors.source_db import SourcePoller
from bot.migrate import upgrade
from bot.models import Customer, Notification, Order, OrderLine, Product, utcnow
from bot.services import build_services
from bot.settings import load_settings

QUERY = "SELECT item_code AS sku, stock_code AS warehouse, qty AS on_hand FROM erp_stock"
TARGET = "SKU-000123"


def sku(n: int) -> str:
    return f"SKU-{n:06d}"


async def seed_source(url: str, rows: int) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE IF EXISTS erp_stock"))
        await connection.execute(text("CREATE TABLE erp_stock (item_code VARCHAR(64) PRIMARY KEY, "
                                      "stock_code VARCHAR(16), qty NUMERIC(12, 2))"))
        await connection.execute(text("INSERT INTO erp_stock VALUES (:s, 'SH', 100)"), [{"s": sku(n)} for n in range(rows)])
    await engine.dispose()


async def change_source(url: str, skus: list[str], qty: int) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE erp_stock SET qty = :q WHERE item_code = :s"), [{"q": qty, "s": s} for s in skus])
    await engine.dispose()


async def seed_shop(db, rows: int) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(insert(Product), [
            {"sku": sku(n), "name": f"Product {n}", "category": f"cat-{n % 50}", "price_cents": 1000,
             "attributes": {}, "reorder_point": 5, "safety_stock": 0, "lead_time_days": 7, "on_hand_total": 0,
             "reserved_total": 0, "created_at": now, "updated_at": now}
            for n in range(rows)
        ])
        await session.execute(insert(Customer), [{
            "external_id": "C-1", "name": "Ann", "tier": "regular", "telegram_user_id": 4242, "chat_id": 4242,
            "opted_out": False, "unreachable": False, "created_at": now, "updated_at": now}])
        customer = await session.scalar(select(Customer.id))
        await session.execute(insert(Order), [{"external_id": "O-1", "customer_id": customer, "created_at": now,
                                               "updated_at": now}])
        order = await session.scalar(select(Order.id))
        product = await session.scalar(select(Product.id).where(Product.sku == TARGET))
        await session.execute(insert(OrderLine), [{"order_id": order, "product_id": product, "qty": 1, "status": "open"}])


async def measure(work) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    await work()
    return time.perf_counter() - wall, time.process_time() - cpu


async def offer_queued(db) -> bool:  # type: ignore[no-untyped-def]
    async with db.read_session() as session:
        return await session.scalar(select(Notification.id).where(Notification.kind == "stockout_offer")) is not None


def row(what: str, samples: list[tuple[float, float]]) -> str:
    walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
    return (f"| {what} | {statistics.median(walls) * 1000:,.0f} ms | {max(walls) * 1000:,.0f} ms | "
            f"{statistics.median(cpus) * 1000:,.0f} ms | {max(cpus) * 1000:,.0f} ms |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", help="Stockbot's database (default: a temporary SQLite file)")
    parser.add_argument("--source-url", help="the shop's database (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'stockbot.db'}"
        source = args.source_url or f"sqlite+aiosqlite:///{Path(folder) / 'erp.db'}"
        settings = load_settings(_env_file=None, DATABASE_URL=url, QUIET_HOURS="", SOURCE_DATABASE_URL=source,
                                 SOURCE_STOCK_QUERY=QUERY)
        db = create_database(settings)
        await upgrade(db)
        await seed_shop(db, args.rows)
        await seed_source(source, args.rows)
        services = build_services(settings, db)
        consumer = EventConsumer(db, services.catalog, reactions(services))
        poller = SourcePoller(settings, db)
        first = await measure(poller.poll)
        await consumer.process()  # the first levels' own events
        unchanged = [await measure(poller.poll) for _ in range(args.runs)]
        changed_count = max(1, args.rows // 100)
        one_percent = []
        for run in range(args.runs):
            picked = [sku((run * 7919 + n * 97) % args.rows) for n in range(changed_count)]
            picked = [s for s in picked if s != TARGET][: changed_count]
            await change_source(source, picked, 90 - run)
            one_percent.append(await measure(poller.poll))
            await consumer.process()
        picked = [sku((n * 89 + 1) % args.rows) for n in range(changed_count - 1)] + [TARGET]
        await change_source(source, [s for s in picked if s != TARGET], 50)
        await change_source(source, [TARGET], 0)

        async def stockout_reaches_the_outbox() -> None:
            reading = await poller.poll()
            assert reading is not None and len(reading.changes) == changed_count, reading
            while not await offer_queued(db):
                await consumer.process()

        stockout = await measure(stockout_reaches_the_outbox)
        await db.dispose()
    where = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    print(f"{describe()}; Stockbot on {where}, source {'SQLite' if source.startswith('sqlite') else 'PostgreSQL'}, "
          f"{args.rows:,} source rows, {args.runs} runs")
    print("| poll | wall median | wall worst | CPU median | CPU worst |")
    print("|---|---|---|---|---|")
    print(row(f"first poll: all {args.rows:,} levels counted (once, at set-up)", [first]))
    print(row("nothing changed", unchanged))
    print(row(f"1 % changed ({changed_count:,} counts, one batch)", one_percent))
    print(row("1 % changed with a stockout: poll start → offer in the outbox", [stockout]))


if __name__ == "__main__":
    asyncio.run(main())
