"""Event consumers in parallel (issue 13, item 4): N processes drain one stock-event backlog.

    python benchmarks/bench_consumers.py --database-url postgresql+asyncpg://postgres@127.0.0.1:55433/sb_bench
    python benchmarks/bench_consumers.py --database-url ... --products 4000 --processes 1 2 4 --poll 0.1

Before each N the schema is dropped and migrated (the database's name must contain "bench") and one
shop seeded through the real code paths (CSV importer, invite links, waitlist, stock service): 4 in
5 products in stock in 2 warehouses, half of those with two open orders, the 5th out with 3 customers
waiting (every 8th customer a VIP, all chats linked). Then the backlog: each stocked product sells to
its reorder point (low_stock) and is counted to zero (out_of_stock), half get a late order
(order_short); each awaited one comes back in two receipts (back_in_stock, recovered). No outcome
depends on how claims split a product's events, so every N must write the same rows.

N spawned processes build what the bot builds (`build_services`, `bot.app.reactions`, an
`EventConsumer`), load the catalog, start together and call `consumer.process()` until nothing is
pending, waiting --poll s (the worker's interval) after a pass that found everything leased. Printed:
wall time, events/s, per process the events `process()` counted, idle passes and CPU; PostgreSQL's
and the machine's CPU and load; checks: nothing pending, failed or leased, no event given to a
reaction twice, one offer per customer and product, the same rows as with 1 process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import queue
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from common import describe  # benchmarks/common.py, beside this script
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bot, not an installed one

from bot.app import reactions  # noqa: E402
from bot.db import create_database, ids_by_key  # noqa: E402
from bot.events import EventConsumer, Reaction  # noqa: E402
from bot.ingest.importer import import_csv  # noqa: E402
from bot.inventory.stock import StockChange, apply_changes  # noqa: E402
from bot.migrate import recreate  # noqa: E402
from bot.models import (  # noqa: E402
    Customer, EventLease, Notification, Product, ReorderPrompt, Restock, StockEvent, StockoutOffer, StockoutPlan,
)
from bot.recovery.waitlist import join_waitlist  # noqa: E402
from bot.services import build_services  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.shop.customers import issue_invites, link_by_token  # noqa: E402

FAMILIES = [("Velvet Lipstick", "lipstick"), ("Satin Lipstick", "lipstick"), ("Lip Gloss", "lip gloss"),
            ("Herbal Shampoo", "hair"), ("Silk Foundation", "face")]
COLOURS = ["Red", "Rose", "Coral", "Nude", "Plum", "Berry", "Peach", "Ruby"]
CHUNK = 500  # stock changes per transaction, as a feed sends them


def settings_for(url: str):  # type: ignore[no-untyped-def]
    return load_settings(_env_file=None, DATABASE_URL=url, BOT_TOKEN="123456:BENCH", ADMIN_IDS="1", QUIET_HOURS="")


def csv(header: str, rows: list[str]) -> bytes:
    return "\n".join([header, *rows]).encode()


async def pending(db) -> int:  # type: ignore[no-untyped-def]
    async with db.read_session() as session:
        return int(await session.scalar(
            select(func.count()).select_from(StockEvent).where(StockEvent.processed_at.is_(None))))


async def seed(url: str, products: int, customers: int) -> int:
    """A fresh schema, the shop, its seed events consumed, then the backlog; returns its size."""
    db = create_database(url)
    try:
        await recreate(db)
        sku = [f"P-{i:05d}" for i in range(products)]
        cust = [f"C-{c:05d}" for c in range(customers)]
        awaited = [i for i in range(products) if i % 5 == 4]
        stocked = [i for i in range(products) if i % 5 != 4]
        ordered = stocked[::2]
        imports = {
            "catalog": csv("sku,name,category,price,brand,reorder_point,safety_stock,lead_time_days,supplier", [
                f"{sku[i]},{FAMILIES[i % 5][0]} {COLOURS[i // 5 % 8]} {i},{FAMILIES[i % 5][1]},{10 + i % 20}.00,"
                f"Brand {i % 7},5,1,7,Supplier {i % 10}" for i in range(products)]),
            "stock": csv("sku,warehouse,on_hand", [f"{sku[i]},{w},{0 if i % 5 == 4 else q}"
                                                   for i in range(products) for w, q in (("SH", 6), ("BJ", 4))]),
            "customers": csv("external_id,name,tier,locale", [
                f"{c},Customer {n},{'vip' if n % 8 == 0 else 'regular'},en" for n, c in enumerate(cust)]),
            "orders": csv("external_id,customer_external_id,sku,qty,status", [
                f"O-{i}-{k},{cust[(3 * i + k) % customers]},{sku[i]},1,{status}"
                for i in ordered for k, status in ((0, "open"), (1, "backordered"))]),
        }
        for kind, data in imports.items():
            report = await import_csv(db, kind, data, label=f"{kind}.csv", actor="bench")
            if not report.ok:
                raise SystemExit("\n".join(report.error_lines()))
        async with db.transaction() as session:
            tokens = await issue_invites(session)
        async with db.transaction() as session:
            for n, (_customer, token) in enumerate(sorted(tokens)):
                await link_by_token(session, token, 500_000 + n, 500_000 + n)
        services = build_services(settings_for(url), db)
        await EventConsumer(db, services.catalog, reactions(services)).process()  # the seed's own crossings
        async with db.transaction() as session:
            product_ids = await ids_by_key(session, Product.sku, Product.id, sku)
            customer_ids = await ids_by_key(session, Customer.external_id, Customer.id, cust)
            for i in awaited:
                for k in range(3):
                    await join_waitlist(session, customer_ids[cust[(7 * i + k) % customers]], product_ids[sku[i]],
                                        days=30)
        steps = [
            [StockChange(sku[i], "SH", delta=-5, reason="sale", actor="pos") for i in stocked],
            [StockChange(sku[i], w, on_hand=0, actor="count") for i in stocked for w in ("SH", "BJ")],
            [StockChange(sku[i], "SH", on_hand=3, reason="receipt", actor="erp") for i in awaited],
            [StockChange(sku[i], "BJ", on_hand=5, reason="receipt", actor="erp") for i in awaited],
        ]
        for number, changes in enumerate(steps):
            for start in range(0, len(changes), CHUNK):
                async with db.transaction() as session:
                    await apply_changes(session, changes[start : start + CHUNK])
            if number == 1:  # late orders for products now out of stock: order_short
                late = [f"O-{i}-late,{cust[(3 * i + 2) % customers]},{sku[i]},1,open" for i in ordered]
                await import_csv(db, "orders", csv("external_id,customer_external_id,sku,qty,status", late),
                                 label="late.csv", actor="bench")
        return await pending(db)
    finally:
        await db.dispose()


def cpu_seconds() -> float:
    return sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # user + system


async def drain(url: str, poll: float, start) -> dict:  # type: ignore[no-untyped-def]
    """One consumer process, built as the bot builds it (without Telegram): drain, then report."""
    settings = settings_for(url)
    db = create_database(settings)
    services = build_services(settings, db)
    reacted: list[int] = []  # every event id a reaction was given

    def recording(react):  # type: ignore[no-untyped-def]
        async def wrapped(session, events):  # type: ignore[no-untyped-def]
            reacted.extend(event.id for event in events)
            return await react(session, events)
        return wrapped

    table = {kind: [Reaction(recording(r.react), r.concerns) for r in found]
             for kind, found in reactions(services).items()}
    consumer = EventConsumer(db, services.catalog, table, poll_interval=poll)
    await services.catalog.refresh(db)  # loaded before the clock starts, as a running bot has it
    start.wait()
    began, cpu = time.monotonic(), cpu_seconds()
    counted = idle = 0
    try:
        while True:
            done = await consumer.process()
            counted += done
            if done == 0:
                if await pending(db) == 0:
                    break
                idle += 1  # all that is pending is leased by another process
                await asyncio.sleep(consumer.poll_interval)
        return {"pid": os.getpid(), "counted": counted, "idle": idle, "ended": time.monotonic(),
                "busy": time.monotonic() - began, "cpu": cpu_seconds() - cpu, "reacted": reacted}
    finally:
        await db.dispose()


def consumer_main(url: str, poll: float, start, results) -> None:  # type: ignore[no-untyped-def]
    logging.basicConfig(level=logging.WARNING, format=f"[consumer {os.getpid()}] %(levelname)s %(message)s")
    results.put(asyncio.run(drain(url, poll, start)))


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat: all but idle and iowait)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds of every postgres process, with the backends they have reaped (cutime)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone since the listing
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
            ticks += sum(int(v) for v in text[text.rindex(")") + 2 :].split()[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


async def outcome(url: str) -> tuple[dict[str, int], dict[str, int]]:
    """(problems, what the reactions wrote), read after a drain."""
    db = create_database(url)
    try:
        async with db.read_session() as session:
            async def count(model, *where) -> int:  # type: ignore[no-untyped-def]
                return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

            twice = (select(StockoutOffer.customer_id).group_by(StockoutOffer.customer_id, StockoutOffer.product_id)
                     .having(func.count() > 1).subquery())
            problems = {"pending": await count(StockEvent, StockEvent.processed_at.is_(None)),
                        "failed": await count(StockEvent, StockEvent.attempts > 0),
                        "leases left": await count(EventLease), "offers twice": await count(twice)}
            written = {"plans": await count(StockoutPlan), "offers": await count(StockoutOffer),
                       "restocks": await count(Restock), "prompts": await count(ReorderPrompt),
                       "outbox": await count(Notification)}
            kinds = await session.execute(select(Notification.kind, func.count()).group_by(Notification.kind))
            written.update({f"outbox {kind}": n for kind, n in sorted(kinds.all())})
        return problems, written
    finally:
        await db.dispose()


def run(url: str, n: int, args: argparse.Namespace, baseline: dict | None) -> tuple[float, dict]:
    started = time.monotonic()
    events = asyncio.run(seed(url, args.products, args.customers))
    print(f"processes={n}: seeded {args.products} products, {events} pending events "
          f"({time.monotonic() - started:.0f}s)", flush=True)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(n + 1), context.Queue()
    workers = [context.Process(target=consumer_main, args=(url, args.poll, start, results)) for _ in range(n)]
    for worker in workers:
        worker.start()
    start.wait(timeout=600)
    began, machine, postgres = time.monotonic(), machine_busy(), postgres_cpu()
    reports: list[dict] = []
    while len(reports) < n:
        try:
            reports.append(results.get(timeout=5))
        except queue.Empty:
            if any(worker.exitcode not in (None, 0) for worker in workers):
                raise SystemExit(f"a consumer failed: exit codes {[w.exitcode for w in workers]}") from None
    reports.sort(key=lambda r: r["pid"])
    span = time.monotonic() - began  # to the last report, a little after the backlog was empty
    machine, postgres, load = machine_busy() - machine, postgres_cpu() - postgres, os.getloadavg()
    for worker in workers:
        worker.join()
    wall = max(r["ended"] for r in reports) - began
    problems, written = asyncio.run(outcome(url))
    reacted = Counter(event_id for r in reports for event_id in r["reacted"])
    problems["reacted twice"] = sum(1 for times in reacted.values() if times > 1)
    written["events reacted to"] = len(reacted)
    counted, cores = sum(r["counted"] for r in reports), os.cpu_count() or 1
    extra = f": {counted - events} counted by two processes" if counted > events else ""
    print(f"processes={n} events={events}: wall {wall:.1f}s, {events / wall:.0f} events/s; per process: "
          f"events {[r['counted'] for r in reports]} (sum {counted}{extra}), idle passes {[r['idle'] for r in reports]}, "
          f"busy {[round(r['busy'], 1) for r in reports]}s", flush=True)
    others = machine - postgres - sum(r["cpu"] for r in reports)
    print(f"  CPU: consumers {[round(r['cpu'], 1) for r in reports]}s, postgres {postgres:.1f}s, anything else "
          f"{others:.1f}s; whole machine {machine:.1f}s of {span * cores:.1f}s ({100 * machine / (span * cores):.0f}% "
          f"of {cores} cores over {span:.1f}s); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    same = baseline is None or written == baseline
    ok = same and not any(problems.values())
    print(f"  checks {'OK' if ok else 'FAILED'}: {problems}; " + ("the baseline" if n == 1 else "no 1-process run" if baseline is None else
          "written as with 1 process" if same else f"1 process wrote {baseline}"), flush=True)
    print(f"  written: {written}", flush=True)
    return wall, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--i-know-it-is-dropped", action="store_true")
    parser.add_argument("--products", type=int, default=3_000)
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--poll", type=float, default=1.0, help="wait after a pass that found all leased (s)")
    args = parser.parse_args()
    url = args.database_url
    if not url.startswith("postgresql"):
        raise SystemExit("give --database-url postgresql+asyncpg://... (a throw-away database)")
    if "bench" not in (make_url(url).database or "") and not args.i_know_it_is_dropped:
        raise SystemExit("the database is dropped and migrated: use one whose name contains 'bench'")
    print(f"# bench_consumers on {describe()}")
    print(f"# database {make_url(url).render_as_string(hide_password=True)}, poll {args.poll:g}s", flush=True)
    walls: dict[int, float] = {}
    baseline = None
    for n in args.processes:
        walls[n], written = run(url, n, args, baseline if n != 1 else None)
        baseline = written if n == 1 else baseline
    for n in (n for n in walls if n != 1 and 1 in walls):
        print(f"speedup processes={n} over processes=1: {walls[1] / walls[n]:.2f}x")


if __name__ == "__main__":
    main()
