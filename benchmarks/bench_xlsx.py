"""xlsx against CSV: the same catalog rows imported from each, seconds per step.

    python benchmarks/bench_xlsx.py [--rows 100000] [--kind catalog|stock]

Writes `--rows` seeded rows as CSV and as an xlsx workbook (openpyxl, write-only; not timed),
then in this process: the xlsx sheet converted to CSV text (python-calamine, bot/ingest/xlsx.py),
and each file imported with `import_file` (what `stockbot import` runs) into its own fresh SQLite
database. The difference between the two imports is what reading xlsx costs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

from common import describe  # benchmarks/common.py, beside this script

import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.db import create_database  # noqa: E402
from bot.ingest.files import import_file  # noqa: E402
from bot.ingest.xlsx import to_csv  # noqa: E402
from bot.migrate import upgrade  # noqa: E402
from bot.settings import load_settings  # noqa: E402

WORDS = ["Velvet", "Matte", "Satin", "Lipstick", "Gloss", "Serum", "唇釉", "豆沙色", "洗发水", "面霜"]


def rows(kind: str, count: int) -> list[list[object]]:
    rng = random.Random(7)
    if kind == "stock":
        return [["sku", "warehouse", "on_hand"]] + [[f"SKU-{n:06d}", rng.choice(("SH", "BJ")), rng.randint(0, 500)]
                                                     for n in range(count)]
    return [["sku", "name", "category", "price", "reorder_point"]] + [
        [f"SKU-{n:06d}", " ".join(rng.sample(WORDS, 3)), rng.choice(("lips", "hair", "skin")),
         round(rng.uniform(1, 300), 2), rng.randint(0, 20)] for n in range(count)
    ]


async def timed_import(path: Path, kind: str, folder: Path, name: str) -> float:
    settings = load_settings(DATABASE_URL=f"sqlite+aiosqlite:///{folder / name}.db")
    db = create_database(settings)
    await upgrade(db)
    if kind == "stock":  # stock needs its catalog
        with (folder / "seed.csv").open("rb") as seed:
            await import_file(db, "catalog", seed, label="seed.csv")
    started = time.perf_counter()
    with path.open("rb") as data:
        report = await import_file(db, kind, data, label=path.name)
    seconds = time.perf_counter() - started
    await db.dispose()
    assert report.ok, report.error_lines(5)
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--kind", choices=("catalog", "stock"), default="catalog")
    args = parser.parse_args()
    table = rows(args.kind, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with (folder / "data.csv").open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(table)
        with (folder / "seed.csv").open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(rows("catalog", args.rows))
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("data")
        for row in table:
            sheet.append(row)
        book.save(folder / "data.xlsx")
        started = time.perf_counter()
        with (folder / "data.xlsx").open("rb") as data, to_csv(data):
            convert = time.perf_counter() - started
        from_csv = await timed_import(folder / "data.csv", args.kind, folder, "csv")
        from_xlsx = await timed_import(folder / "data.xlsx", args.kind, folder, "xlsx")
    print(f"{describe()}; {args.rows:,} {args.kind} rows")
    print(f"xlsx -> CSV text (python-calamine): {convert:.2f} s")
    print(f"import from CSV:  {from_csv:.2f} s")
    print(f"import from xlsx: {from_xlsx:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
