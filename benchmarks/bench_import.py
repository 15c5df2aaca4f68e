"""CSV import of every kind at a real shop's size: seconds and peak memory per kind.

    python benchmarks/bench_import.py [--rows 100000] [--baseline /work/main] [--baseline-kinds catalog,stock]
    DATABASE_URL=postgresql+asyncpg://... python benchmarks/bench_import.py   # the same on PostgreSQL
    python benchmarks/bench_import.py --rows 500000 --kinds stock,history       # peak memory of a big file

Writes seeded CSV files (catalog, stock, customers, orders, history; `--rows` rows each) to a
temporary folder, then imports them in that order into a fresh database, each kind in its own
process running `import_csv` exactly as `stockbot import KIND FILE` does (the file opened and
handed over, not read into memory), and prints the seconds (check and write) and the process's
peak RSS. With `--baseline TREE` the same files are imported again, into another fresh
database, by the code in TREE (e.g. the main checkout), which gets the whole file as bytes as
its CLI did: the two columns of the table are one run on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
KINDS = ("catalog", "stock", "customers", "orders", "history")
NEEDS = {"catalog": (), "stock": ("catalog",), "customers": (), "orders": ("catalog", "stock", "customers"),
         "history": ("catalog", "stock")}
WAREHOUSES = ("SH", "BJ")
WORDS = ["Velvet", "Matte", "Satin", "Lipstick", "Gloss", "Shampoo", "Serum", "Cream", "Red", "Rose",
         "Nude", "Cherry", "唇釉", "豆沙色", "正红色", "洗发水", "面霜", "精华"]


# --- seeded files ----------------------------------------------------------------------------------


def write_files(folder: Path, rows: int, seed: int = 7) -> dict[str, Path]:
    """One file per kind, `rows` data rows each, consistent with each other."""
    rng = random.Random(seed)
    products = max(rows // len(WAREHOUSES), 1)  # stock: every product in both warehouses
    customers = rows
    paths = {kind: folder / f"{kind}.csv" for kind in KINDS}
    with paths["catalog"].open("w", encoding="utf-8-sig", newline="") as out:
        out.write("sku,name,category,price,brand,reorder_point,safety_stock,lead_time_days,supplier,attributes\n")
        for n in range(rows):
            name = " ".join(rng.choice(WORDS) for _ in range(3))
            out.write(
                f"SKU-{n:07d},{name} {n},cat-{n % 150},{rng.randint(100, 99999) / 100:.2f},Brand {n % 300},"
                f"{rng.randint(0, 20)},{rng.randint(0, 10)},{rng.randint(1, 30)},Supplier {n % 50},"
                f"\"colour=c{n % 12};unit=ml;pack_size={1 + n % 3}\"\n"
            )
    with paths["stock"].open("w", encoding="utf-8", newline="") as out:
        out.write("sku,warehouse,on_hand\n")
        for n in range(rows):
            # One product in ten is out in both warehouses: open order lines of it are short.
            out.write(f"SKU-{n // 2:07d},{WAREHOUSES[n % 2]},{0 if (n // 2) % 10 == 0 else rng.randint(1, 200)}\n")
    with paths["customers"].open("w", encoding="utf-8", newline="") as out:
        out.write("external_id,name,tier,phone,email,locale,timezone\n")
        for n in range(customers):
            zone = ("Asia/Shanghai", "", "Europe/Berlin")[n % 3]
            out.write(f"C{n:07d},Customer {n},{'vip' if n % 20 == 0 else 'regular'},+86 139{n:08d},"
                      f"c{n}@example.com,{('en', 'zh', '')[n % 3]},{zone}\n")
    paths["customers-without-timezone"] = folder / "customers-without-timezone.csv"
    with paths["customers"].open(encoding="utf-8") as given, paths["customers-without-timezone"].open("w", encoding="utf-8") as out:
        for line in given:
            out.write(line.rsplit(",", 1)[0] + "\n")
    with paths["orders"].open("w", encoding="utf-8", newline="") as out:
        out.write("external_id,customer_external_id,sku,qty,status\n")
        written, order = 0, 0
        while written < rows:
            lines = min(rng.randint(1, 5), rows - written)
            customer = rng.randrange(customers)
            skus = rng.sample(range(products), lines)
            for sku in skus:
                status = rng.choice(("open", "open", "backordered", "fulfilled", "cancelled"))
                out.write(f"O{order:07d},C{customer:07d},SKU-{sku:07d},{rng.randint(1, 5)},{status}\n")
            written += lines
            order += 1
    with paths["history"].open("w", encoding="utf-8", newline="") as out:
        out.write("date,sku,warehouse,sold,on_hand\n")
        days = 365
        per_day = -(-rows // days)  # (sku, warehouse) pairs a day
        first = date.today() - timedelta(days=days + 1)
        for n in range(rows):
            day, pair = divmod(n, per_day)
            sku, warehouse = divmod(pair, len(WAREHOUSES))
            on_hand = rng.choice(("", str(rng.randint(0, 50))))
            out.write(f"{first + timedelta(days=day)},SKU-{sku:07d},{WAREHOUSES[warehouse]},{rng.randint(0, 9)},{on_hand}\n")
    return paths


# --- one kind in its own process ---------------------------------------------------------------------


async def work(kind: str, path: str, url: str) -> dict[str, float | str | bool | int]:
    from bot.db import create_database
    from bot.ingest.importer import import_csv
    from bot.migrate import recreate

    if kind == "migrate":  # a fresh schema, as this tree's migrations make it
        db = create_database(url)
        await recreate(db)
        await db.dispose()
        return {"ok": True}
    db = create_database(url)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    streams = "zone" in inspect.signature(import_csv).parameters  # this branch's importer
    started, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as handle:
        source = handle if streams else handle.read()
        report = await import_csv(db, kind, source, label=Path(path).name, actor="bench")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await db.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ok": report.ok, "errors": report.error_lines()[:3], "seconds": seconds, "cpu": cpu, "rss_before_mb": before,
            "peak_mb": peak, "rows": report.rows}


async def probe(url: str, stop: str) -> dict[str, float | int]:
    """What the running bot feels during an import: a one-unit stock change of its own product,
    in its own transaction, every 200 ms until `stop` exists; the slowest and the median."""
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError

    from bot.db import create_database
    from bot.inventory.stock import StockChange, apply_changes
    from bot.models import Product

    db = create_database(url)
    async with db.transaction() as session:
        if await session.scalar(select(Product.id).where(Product.sku == "PROBE-1")) is None:
            session.add(Product(sku="PROBE-1", name="Probe", category="probe", price_cents=100))
        await apply_changes(session, [StockChange("PROBE-1", "SH", delta=1, reason="probe", actor="bench")])
    print("ready", flush=True)  # connected, warehouse and level made: what follows is lock waits
    waits, failed = [], 0
    while not os.path.exists(stop):
        started = time.perf_counter()
        try:
            async with db.transaction() as session:
                await apply_changes(session, [StockChange("PROBE-1", "SH", delta=1, reason="probe", actor="bench")])
        except OperationalError:  # SQLite: "database is locked" once the busy timeout (30 s) ran out
            failed += 1
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(0.2)
    await db.dispose()
    waits.sort()
    return {"changes": len(waits), "failed": failed, "max_ms": 1000 * waits[-1] if waits else 0.0,
            "median_ms": 1000 * waits[len(waits) // 2] if waits else 0.0}


def run_kind(tree: Path, kind: str, path: Path, url: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    script = str(Path(__file__).resolve())
    prober = None
    if kind != "migrate":
        stop = Path(tempfile.mkdtemp()) / "stop"
        prober = subprocess.Popen([sys.executable, script, "--probe", url, str(stop)], env=env, cwd=tree,
                                  stdout=subprocess.PIPE, text=True)
        assert prober.stdout is not None and prober.stdout.readline().strip() == "ready"
    done = subprocess.run([sys.executable, script, "--worker", kind, str(path), url],
                          env=env, capture_output=True, text=True, cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"{kind} under {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if prober is not None:
        stop.touch()
        out, _ = prober.communicate(timeout=120)
        result["probe"] = json.loads(out.strip().splitlines()[-1])
    return result


def import_all(tree: Path, kinds: list[str], paths: dict[str, Path], url: str) -> dict[str, dict]:
    run_kind(tree, "migrate", Path("-"), url)
    results = {}
    for kind in kinds:
        path = paths[kind]
        if kind == "customers" and tree != TREE:  # the time zone column is new
            path = paths["customers-without-timezone"]
        results[kind] = run_kind(tree, kind, path, url)
        print(f"  {tree.name}: {kind} {results[kind]['seconds']:.1f} s", file=sys.stderr, flush=True)
        if not results[kind]["ok"]:
            raise SystemExit(f"{kind} under {tree}: {results[kind]['errors']}")
    return results


def probed(result: dict) -> str:
    """The probe's slowest stock change in ms, and how many failed (database is locked)."""
    probe = result["probe"]
    return f"{probe['max_ms']:.0f}" + (f" ({probe['failed']} failed)" if probe["failed"] else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--kinds", default=",".join(KINDS), help="which kinds to time (what they refer to is imported too)")
    parser.add_argument("--baseline", type=Path, help="a checkout whose importer to run on the same files")
    parser.add_argument("--baseline-kinds", default="catalog,stock,customers,orders")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "FILE", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--probe", nargs=2, metavar=("URL", "STOP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(work(*args.worker))))
        return
    if args.probe:
        print(json.dumps(asyncio.run(probe(*args.probe))))
        return

    from common import describe  # benchmarks/common.py, beside this script

    wanted = set(args.kinds.split(","))
    kinds = [kind for kind in KINDS if kind in wanted or any(kind in NEEDS[w] for w in wanted)]
    postgres = os.environ.get("DATABASE_URL", "")
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(Path(folder), args.rows)
        url = postgres if postgres.startswith("postgresql") else f"sqlite+aiosqlite:///{Path(folder) / 'new.db'}"
        new = import_all(TREE, kinds, paths, url)
        old: dict[str, dict] = {}
        if args.baseline:
            base_kinds = [kind for kind in kinds if kind in args.baseline_kinds.split(",")]
            base_url = url if postgres.startswith("postgresql") else f"sqlite+aiosqlite:///{Path(folder) / 'old.db'}"
            old = import_all(args.baseline.resolve(), base_kinds, paths, base_url)
        sizes = {kind: paths[kind].stat().st_size / 1e6 for kind in kinds}
    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.1f} at the end (CPU s: this process, all threads)")
    print(f"database: {'PostgreSQL' if postgres.startswith('postgresql') else 'SQLite (file)'}; rows per file: {args.rows:,}")
    header = f"{'kind':<10}{'MB':>6}{'seconds':>10}{'CPU s':>8}{'peak RSS MB':>13}{'RSS before':>12}{'probe max ms':>14}"
    if old:
        header += f"{'old seconds':>13}{'old CPU s':>11}{'old peak MB':>13}{'old probe max ms':>18}"
    print(header)
    for kind in kinds:
        line = (f"{kind:<10}{sizes[kind]:>6.1f}{new[kind]['seconds']:>10.2f}{new[kind]['cpu']:>8.2f}{new[kind]['peak_mb']:>13.0f}"
                f"{new[kind]['rss_before_mb']:>12.0f}{probed(new[kind]):>14}")
        if old:
            if kind in old:
                line += (f"{old[kind]['seconds']:>13.2f}{old[kind]['cpu']:>11.2f}{old[kind]['peak_mb']:>13.0f}"
                         f"{probed(old[kind]):>18}")
            else:
                line += f"{'-':>13}{'-':>11}{'-':>13}{'-':>18}"
        print(line)


if __name__ == "__main__":
    main()
