"""The forecast wiring on a database: loading the history matrices, a full nightly refresh, the
cheap cover refresh after a stock change, and today's suggestions.

    python benchmarks/bench_planning.py                       # 5,000 products x 2 warehouses, 182 days, SQLite
    python benchmarks/bench_planning.py --products 20000
    DATABASE_URL=postgresql+asyncpg://... python benchmarks/bench_planning.py   # that database, emptied first

Side by side, in the same run: the history loaded as ORM objects (`select(SalesDay)`, then numpy)
against `load_history` (one streamed Core query straight into numpy).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import timedelta

import numpy as np
from common import describe  # benchmarks/common.py, beside this script
from sqlalchemy import insert, select

from bot.db import create_database
from bot.delivery.templates import Templates
from bot.migrate import recreate
from bot.models import Product, SalesDay, StockLevel, Warehouse, utcnow
from bot.planning.service import WINDOW_DAYS, load_history, refresh_forecasts
from bot.planning.suggestions import suggestions
from bot.planning.warnings import stock_changed
from bot.settings import load_settings


async def seed(db, products: int, warehouses: int, days: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    end = utcnow().date() - timedelta(days=1)
    async with db.transaction() as session:
        await session.execute(insert(Warehouse), [{"code": f"W{w}"} for w in range(warehouses)])
        await session.execute(insert(Product), [
            {"sku": f"P{p:06d}", "name": f"Product {p}", "category": f"c{p % 40}", "price_cents": 500 + p % 3000,
             "attributes": {}, "reorder_point": 5, "safety_stock": 0, "lead_time_days": 7 + p % 14,
             "supplier": f"S{p % 50}", "on_hand_total": 60 * warehouses, "reserved_total": 0,
             "created_at": utcnow(), "updated_at": utcnow()}
            for p in range(products)
        ])
        await session.execute(insert(StockLevel), [
            {"product_id": p + 1, "warehouse_id": w + 1, "on_hand": 60, "reserved": 0, "incoming": 0}
            for p in range(products) for w in range(warehouses)
        ])
    rates = rng.gamma(0.6, 3.0, size=products * warehouses)
    for start in range(0, products * warehouses, 2000):
        rows = []
        for s in range(start, min(start + 2000, products * warehouses)):
            sold = rng.poisson(rates[s], size=days)
            out = rng.random(days) < 0.05
            for d in range(days):
                rows.append({"product_id": s // warehouses + 1, "warehouse_id": s % warehouses + 1,
                             "day": end - timedelta(days=days - 1 - d), "sold": int(sold[d]),
                             "on_hand": 0 if out[d] else 40, "source": "import"})
        async with db.transaction() as session:
            await session.execute(insert(SalesDay), rows)


async def orm_load(db, end):  # type: ignore[no-untyped-def]
    """The baseline: ORM objects, then the same matrices."""
    async with db.read_session() as session:
        days = list(await session.scalars(select(SalesDay).where(SalesDay.day > end - timedelta(days=WINDOW_DAYS))))
    keys = sorted({(d.product_id, d.warehouse_id) for d in days})
    index = {key: i for i, key in enumerate(keys)}
    sold = np.zeros((len(keys), WINDOW_DAYS))
    origin = (end - timedelta(days=WINDOW_DAYS - 1)).toordinal()
    for d in days:
        sold[index[(d.product_id, d.warehouse_id)], d.day.toordinal() - origin] = d.sold
    return sold


async def timed(label: str, work) -> object:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = await work
    print(f"{label:<58} {time.perf_counter() - started:8.2f} s")
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--warehouses", type=int, default=2)
    parser.add_argument("--days", type=int, default=WINDOW_DAYS)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    settings = load_settings(_env_file=None, DATABASE_URL=url, BOT_TOKEN="1:X", QUIET_HOURS="")
    db = create_database(settings)
    await recreate(db)
    templates = Templates(zone=settings.zone)  # for the prompts early warnings would send
    series = args.products * args.warehouses
    print(f"{describe()}; {db.engine.dialect.name}; {args.products} products x {args.warehouses} warehouses "
          f"x {args.days} days = {series * args.days:,} history rows")
    await timed("seed", seed(db, args.products, args.warehouses, args.days))
    end = utcnow().date() - timedelta(days=1)
    await timed("baseline: history as ORM objects, then numpy", orm_load(db, end))
    async with db.read_session() as session:
        loaded = await timed("load_history: one streamed query into numpy", load_history(session, end))
    assert len(loaded.product_ids) == series
    await timed(f"refresh_forecasts: all {series:,} series (load, forecast, store)", refresh_forecasts(db, settings, templates))
    touched = list(range(1, min(1000, args.products) + 1))
    async with db.transaction() as session:
        await timed(f"stock_changed: cover + warnings of {len(touched)} products",
                    stock_changed(session, settings, templates, touched))
    async with db.read_session() as session:
        lines = await timed("suggestions: every product that needs something", suggestions(session))
    print(f"suggestions: {len(lines):,} ({sum(1 for line in lines if line.action == 'transfer'):,} transfers)")
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
