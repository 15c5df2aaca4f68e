"""Stall benchmark: does one stockout freeze the integration API while it is busy?

    python benchmarks/bench_stall.py [--seconds 12] [--clients 20] [--stockout-at 3]
                                     [--database-url postgresql+asyncpg://...] [--only current|baseline]

In this process: the Bot API sandbox, the real aiogram bot on it, the integration API app on a
loopback port (aiohttp AppRunner, as `stockbot run` serves it) and the bot's event worker (what
the scheduler runs every second in `stockbot run`, here every 50 ms) and sender. `--clients`
shop systems post signed stock events of +1/-1 on one SKU, each as soon as its previous answer
came, for `--seconds`; at `--stockout-at` one more event empties another SKU, which a VIP has an
open order of and which has substitutes, so recovery runs (offers, coupon, outbox) while the
stream goes on. Printed: requests answered in each second, p50/p99/max latency, answers by
status, and whether the VIP got the offer.

Each run is made twice, side by side: "baseline" emulates the settings before the fix (pool
5+10 on SQLite and 10+10 on PostgreSQL, 30 s pool timeout, 30 s SQLite busy timeout, no
PostgreSQL lock_timeout, no limit on concurrent API requests) and "current" uses the code as it
is. Fresh data each run: a new SQLite file in a temporary folder, or the PostgreSQL database at
--database-url emptied and migrated (point it at a scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from common import describe, percentile  # benchmarks/common.py, beside this script

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bot.api.integration as api_module  # noqa: E402
import bot.db as db_module  # noqa: E402
from bot.api.signing import signed_headers  # noqa: E402

SECRET = "bench-secret"
HOT, GONE = "HOT-1", "GONE-1"
VIP_CHAT = 777


def configure(mode: str, sqlite: bool) -> dict[str, object]:
    """Set the module constants the engine and the API read; returns the previous values."""
    saved = {name: getattr(db_module, name) for name in
             ("POOL_SIZE", "POOL_OVERFLOW", "POOL_TIMEOUT_S", "LOCK_WAIT_S", "SQLITE_BUSY_TIMEOUT_MS")}
    saved["API_CONCURRENCY"] = api_module.API_CONCURRENCY
    if mode == "baseline":
        db_module.POOL_SIZE = 5 if sqlite else 10
        db_module.POOL_OVERFLOW = 10
        db_module.POOL_TIMEOUT_S = 30
        db_module.SQLITE_BUSY_TIMEOUT_MS = 30_000
        db_module.LOCK_WAIT_S = 0  # PostgreSQL lock_timeout 0: wait for ever, as before
        api_module.API_CONCURRENCY = 1_000_000
    return saved


def restore(saved: dict[str, object]) -> None:
    api_module.API_CONCURRENCY = saved.pop("API_CONCURRENCY")  # type: ignore[assignment]
    for name, value in saved.items():
        setattr(db_module, name, value)


async def seed(db) -> None:  # type: ignore[no-untyped-def]
    from bot.inventory.stock import StockChange, apply_changes
    from bot.models import Customer, Order, OrderLine, Product

    async with db.transaction() as session:
        products = [
            Product(sku=HOT, name="Busy Product", category="busy", price_cents=1000, reorder_point=0),
            Product(sku=GONE, name="Velvet Lipstick Red", category="lips", price_cents=1000, reorder_point=0),
            *(Product(sku=f"SUB-{n}", name=f"Velvet Lipstick {shade}", category="lips", price_cents=1000 + n * 50,
                      reorder_point=0) for n, shade in enumerate(("Rose", "Coral", "Ruby", "Plum"))),
        ]
        session.add_all(products)
        await session.flush()
        stock = {HOT: 1000, GONE: 3, **{f"SUB-{n}": 20 for n in range(4)}}
        await apply_changes(session, [StockChange(sku, "SH", on_hand=qty, actor="bench") for sku, qty in stock.items()])
        vip = Customer(external_id="C-VIP", name="Vera", tier="vip", telegram_user_id=VIP_CHAT, chat_id=VIP_CHAT)
        session.add(vip)
        await session.flush()
        session.add(Order(external_id="O-1", customer_id=vip.id, lines=[OrderLine(product_id=products[1].id, qty=1,
                                                                                    status="open")]))


async def one_run(mode: str, url: str, args: argparse.Namespace) -> None:
    from bot.api.app import add_api_routes
    from bot.db import create_database
    from bot.migrate import recreate
    from bot.conversation import running_bot
    from bot.settings import load_settings

    saved = configure(mode, url.startswith("sqlite"))
    db = create_database(url)
    try:
        await recreate(db)
        await seed(db)
        settings = load_settings(_env_file=None, DATABASE_URL=url, BOT_TOKEN="123456:SANDBOX-TOKEN", ADMIN_IDS="1",
                                 QUIET_HOURS="", WEBHOOK_SECRET=SECRET)
        async with running_bot(settings, db) as h:
            app = web.Application()
            add_api_routes(app, settings, db)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            stop = asyncio.Event()

            async def worker() -> None:
                while not stop.is_set():
                    try:
                        await h.runtime.process_events()
                    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                        print(f"  event worker: {type(exc).__name__}: {str(exc)[:120]}")
                    await asyncio.sleep(0.05)

            tasks = [asyncio.create_task(worker()), asyncio.create_task(h.runtime.sender.run(stop))]
            done: list[tuple[float, float, str]] = []  # (finished at, latency, status)
            started = time.perf_counter()
            deadline = started + args.seconds
            base = f"http://127.0.0.1:{port}/api/v1/stock-events"

            async def post(http: aiohttp.ClientSession, payload: dict) -> None:  # type: ignore[type-arg]
                body = json.dumps(payload).encode()
                sent = time.perf_counter()
                try:
                    async with http.post(base, data=body, headers={
                        "Content-Type": "application/json", **signed_headers(SECRET, "POST", "/api/v1/stock-events", body)}) as answer:
                        await answer.read()
                        status = str(answer.status)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    status = type(exc).__name__
                now = time.perf_counter()
                done.append((now - started, now - sent, status))

            def event(sku: str, **change: int) -> dict:  # type: ignore[type-arg]
                return {"events": [{"event_id": uuid.uuid4().hex, "sku": sku, "warehouse": "SH", **change}]}

            async def client(http: aiohttp.ClientSession) -> None:
                i = 0
                while time.perf_counter() < deadline:
                    await post(http, event(HOT, delta=1 if i % 2 == 0 else -1))
                    i += 1

            async def stockout(http: aiohttp.ClientSession) -> None:
                await asyncio.sleep(args.stockout_at)
                await post(http, event(GONE, on_hand=0))

            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
                await asyncio.gather(*(client(http) for _ in range(args.clients)), stockout(http))
            elapsed = time.perf_counter() - started
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
            offered = any("out of stock" in m.plain_text for m in h.sandbox.messages(VIP_CHAT))
            if not offered:
                try:
                    await h.settle()
                    offered = any("out of stock" in m.plain_text for m in h.sandbox.messages(VIP_CHAT))
                except Exception:  # noqa: BLE001
                    pass
    finally:
        await db.dispose()
        restore(saved)

    per_second = Counter(int(t) for t, _, _ in done)
    statuses = Counter(s for _, _, s in done)
    latencies = [lat for _, lat, _ in done]
    five_xx = sum(n for s, n in statuses.items() if s.startswith("5"))
    print(f"{mode:>8}: {len(done)} requests in {elapsed:.1f} s = {len(done) / elapsed:.0f}/s; "
          f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms; 5xx: {five_xx}; by status {dict(sorted(statuses.items()))}; "
          f"VIP offered during the run: {offered}")
    print(f"{'':>8}  answered per second: {','.join(str(per_second.get(s, 0)) for s in range(int(elapsed) + 1))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--stockout-at", type=float, default=3.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--only", choices=("current", "baseline"), default=None)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory(prefix="stall-") as folder:
        for n, mode in enumerate(("baseline", "current")):
            if args.only and mode != args.only:
                continue
            url = args.database_url or f"sqlite+aiosqlite:///{folder}/stall-{n}.db"
            print(f"{mode}: {args.clients} clients, +1/-1 on {HOT} for {args.seconds:g} s, {GONE} emptied at "
                  f"{args.stockout_at:g} s, on {url.split(':', 1)[0]}", flush=True)
            asyncio.run(one_run(mode, url, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
