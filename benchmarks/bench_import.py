"""CSV catalog import: a 100,000-row catalog checked and written, then imported again (updates).

    python benchmarks/bench_import.py [--rows 100000]

Goes through `import_csv`, the same code as `stockbot import catalog FILE.csv`, on a temporary
SQLite database, and prints the seconds for a dry run, the first import and a re-import.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from common import describe  # benchmarks/common.py, beside this script

from bot.db import create_database
from bot.inventory.importer import import_csv
from bot.migrate import upgrade

WORDS = ["Velvet", "Matte", "Satin", "Lipstick", "Gloss", "Shampoo", "Serum", "Cream", "Red", "Rose",
         "Nude", "Cherry", "唇釉", "豆沙色", "正红色", "洗发水", "面霜", "精华"]


def catalog_csv(rows: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    lines = ["sku,name,category,price,brand,reorder_point,safety_stock,lead_time_days,supplier,attributes"]
    for n in range(rows):
        name = " ".join(rng.choice(WORDS) for _ in range(3))
        lines.append(
            f"SKU-{n:06d},{name} {n},cat-{n % 150},{rng.randint(100, 99999) / 100:.2f},Brand {n % 300},"
            f"{rng.randint(0, 20)},{rng.randint(0, 10)},{rng.randint(1, 30)},Supplier {n % 50},"
            f"colour=c{n % 12};unit=ml;pack_size={1 + n % 3}"
        )
    return ("\ufeff" + "\n".join(lines) + "\n").encode()


async def run(rows: int) -> None:
    data = catalog_csv(rows)
    with tempfile.TemporaryDirectory() as folder:
        db = create_database(f"sqlite+aiosqlite:///{Path(folder) / 'import.db'}")
        await upgrade(db)
        timings = {}
        for label, dry in (("dry run (check only)", True), ("first import (inserts)", False),
                           ("re-import (updates)", False)):
            started = time.perf_counter()
            report = await import_csv(db, "catalog", data, label="catalog.csv", dry_run=dry)
            timings[label] = time.perf_counter() - started
            assert report.ok, report.error_lines()[:5]
        await db.dispose()
    print(f"machine: {describe()}")
    print(f"catalog rows: {rows:,} ({len(data) / 1e6:.1f} MB)")
    for label, seconds in timings.items():
        print(f"{label:<26}{seconds:>8.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(run(parser.parse_args().rows))


if __name__ == "__main__":
    main()
