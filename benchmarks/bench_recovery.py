"""Benchmark stockout planning: one product runs out with many affected customers.

    python benchmarks/bench_recovery.py [--customers 10000] [--vip-share 0.1] [--runs 3]

Each run is a fresh SQLite file in a temporary folder (WAL, `synchronous=NORMAL`), migrated, with
a catalog of 200 products in the product's category (substitutes to choose from) and `--customers`
linked customers: half with an open order line of the product, half on its waitlist, about
`--vip-share` of them VIP, shuffled so VIPs are not the first rows. The stock change that empties
the product is committed, then the clock starts:

- first VIP queued: until a separate read connection (as the delivery worker would) sees the
  first VIP offer row in the outbox, committed;
- all planned: until every offer, coupon and outbox row is committed (the stock event's
  transaction writes the first batch, VIPs first; `continue_plans` writes the rest in further
  transactions; in `stockbot run` a job picks that up within a second);
- offers per second over the whole plan.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from bot.app import reactions
from bot.db import create_database
from bot.events import EventConsumer
from bot.inventory.stock import StockChange, apply_change, apply_changes
from bot.migrate import upgrade
from bot.models import (
    Customer,
    Notification,
    Order,
    OrderLine,
    Product,
    StockoutOffer,
    WaitlistEntry,
    utcnow,
)
from bot.recovery.offers import continue_plans
from bot.services import build_services
from bot.settings import load_settings


async def seed_catalog(db, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(insert(Product), [
            {"sku": f"LIP-{i:04d}", "name": f"{rng.choice(['Velvet', 'Matte', 'Silky', 'Glossy'])} Lipstick "
             f"{rng.choice(['Red', 'Rose', 'Coral', 'Nude', 'Berry'])} {i}", "category": "lips",
             "price_cents": rng.randrange(800, 1400), "attributes": {"finish": rng.choice(["matte", "satin"])},
             "reorder_point": 0, "safety_stock": 0, "lead_time_days": 7, "on_hand_total": 0, "reserved_total": 0,
             "created_at": now, "updated_at": now}
            for i in range(200)
        ])
        await apply_changes(session, [StockChange(f"LIP-{i:04d}", "SH", on_hand=50) for i in range(200)])


async def seed_customers(db, customers: int, vip_share: float, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    async with db.transaction() as session:
        target = await session.scalar(select(Product.id).where(Product.sku == "LIP-0000"))
        tiers = ["vip" if rng.random() < vip_share else "regular" for _ in range(customers)]
        await session.execute(insert(Customer), [
            {"external_id": f"C-{i:06d}", "name": f"Customer {i}", "tier": tiers[i], "telegram_user_id": 10_000 + i,
             "chat_id": 10_000 + i, "locale": "zh" if i % 5 == 0 else None, "opted_out": False,
             "unreachable": False, "created_at": now, "updated_at": now}
            for i in range(customers)
        ])
        ids = list(await session.scalars(select(Customer.id).order_by(Customer.id)))
        rng.shuffle(ids)
        half = len(ids) // 2
        await session.execute(insert(Order), [
            {"external_id": f"O-{cid}", "customer_id": cid, "created_at": now, "updated_at": now} for cid in ids[:half]
        ])
        orders = dict((await session.execute(select(Order.customer_id, Order.id))).all())
        await session.execute(insert(OrderLine), [
            {"order_id": orders[cid], "product_id": target, "qty": rng.randint(1, 3), "status": "open"}
            for cid in ids[:half]
        ])
        await session.execute(insert(WaitlistEntry), [
            {"product_id": target, "customer_id": cid, "status": "waiting", "joined_at": now,
             "expires_at": now.replace(year=now.year + 1)}
            for cid in ids[half:]
        ])


async def watch_first_vip(db, started: float, found: asyncio.Future) -> None:  # type: ignore[no-untyped-def]
    while not found.done():
        async with db.read_session() as session:
            seen = await session.scalar(
                select(Notification.id).where(Notification.kind == "stockout_offer", Notification.priority == 10).limit(1)
            )
        if seen is not None:
            found.set_result(time.perf_counter() - started)
            return
        await asyncio.sleep(0.005)


async def one_run(customers: int, vip_share: float, seed_value: int) -> tuple[float, float, int]:
    rng = random.Random(seed_value)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        settings = load_settings(_env_file=None, DATABASE_URL=url, QUIET_HOURS="")
        db = create_database(settings)
        await upgrade(db)
        await seed_catalog(db, rng)
        services = build_services(settings, db)
        consumer = EventConsumer(db, services.catalog, reactions(services))
        await consumer.process()  # the seed's own crossings (back in stock)
        await seed_customers(db, customers, vip_share, rng)
        async with db.transaction() as session:
            await apply_change(session, StockChange("LIP-0000", "SH", on_hand=0, reason="sale"))
        started = time.perf_counter()
        found: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        watcher = asyncio.create_task(watch_first_vip(db, started, found))
        await consumer.process()
        await continue_plans(db, services.recovery)
        planned = time.perf_counter() - started
        first_vip = await asyncio.wait_for(found, 5)
        await watcher
        async with db.read_session() as session:
            offers = await session.scalar(select(func.count()).select_from(StockoutOffer))
            queued = await session.scalar(select(func.count()).where(Notification.kind == "stockout_offer"))
        assert offers == customers == queued, (offers, queued)
        await db.dispose()
        return first_vip, planned, offers


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--vip-share", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [await one_run(args.customers, args.vip_share, seed) for seed in range(args.runs)]
    firsts = [r[0] for r in results]
    totals = [r[1] for r in results]
    print(f"Python {platform.python_version()} on {platform.machine()}, {args.customers:,} affected customers, "
          f"{args.runs} runs (median, worst)")
    print("| measure | median | worst | target |")
    print("|---|---|---|---|")
    print(f"| first VIP offer committed to the outbox | {statistics.median(firsts) * 1000:,.0f} ms | "
          f"{max(firsts) * 1000:,.0f} ms | < 1,000 ms |")
    print(f"| all {args.customers:,} offers + coupons + outbox rows committed | {statistics.median(totals):.2f} s | "
          f"{max(totals):.2f} s | < 5 s |")
    print(f"| offers planned per second | {args.customers / statistics.median(totals):,.0f} | | |")


if __name__ == "__main__":
    asyncio.run(main())
