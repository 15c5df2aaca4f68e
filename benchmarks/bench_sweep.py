"""The running bot's big passes after a messy first import: memory and time, beside a baseline.

    python benchmarks/bench_sweep.py --baseline /path/to/older/checkout [--rows 100000] [--job forecast]

The messy shop of bench_shop.py (a third of the catalog at zero in every warehouse) is imported
once through the CLI (catalog, stock) into a SQLite file. Then, on its own copy of that database
in a fresh child process per checkout, alternately, `--repeat` times each, one job runs:
`sweep` (default), the low-stock sweep that prompts every product at or below its reorder point
(one digest); or `forecast`, the daily forecast of every series (250,000 for 100k products).
Printed: what it did (prompts, series), the seconds, and the child's RSS peak (VmHWM) before and
after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_shop import write_shop  # noqa: E402  (the same messy shop)

CHILD = r"""
import asyncio, sys, time
from bot.db import create_database
from bot.delivery.templates import Templates
from bot.planning.prompts import sweep_low_stock
from bot.planning.service import refresh_forecasts
from bot.settings import Settings

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])

async def main():
    settings = Settings(_env_file=None, BOT_TOKEN="1:x", DATABASE_URL=sys.argv[1], ADMIN_IDS=[1])
    db = create_database(settings)
    templates = Templates(zone=settings.zone)
    before = peak_kib()
    started = time.perf_counter()
    if sys.argv[2] == "forecast":
        done = await refresh_forecasts(db, settings, templates)
    else:
        async with db.transaction() as session:
            done = await sweep_low_stock(session, settings, templates)
    print(done, round(time.perf_counter() - started, 2), before, peak_kib())
    await db.dispose()

asyncio.run(main())
"""


def _env(code: Path, url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "PYTHONPATH")}
    env.update(DATABASE_URL=url, BOT_TOKEN="1:x", PYTHONPATH=str(code))
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout, run alternately")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--job", choices=("sweep", "forecast"), default="sweep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        folder = Path(tmp)
        write_shop(folder, args.rows, 9, messy=True)
        shop = folder / "shop.db"
        env = _env(ROOT, f"sqlite+aiosqlite:///{shop}")
        subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], env=env, check=True, capture_output=True)
        for kind in ("catalog", "stock"):  # run from the folder: this checkout's bot, via PYTHONPATH
            subprocess.run([sys.executable, "-m", "bot", "import", kind, f"{kind}.csv"], env=env, cwd=folder,
                           check=True, capture_output=True)
        print(f"nproc={os.cpu_count()}, rows={args.rows:,}, messy shop imported (catalog, stock)")
        what = "prompts" if args.job == "sweep" else "series"
        print(f"| code | {what} | seconds | RSS peak before → after the {args.job} |\n|---|---:|---:|---|")
        for run in range(args.repeat):
            for name, code in (("baseline", args.baseline), ("this checkout", ROOT)):
                copy = folder / f"run{run}-{name.replace(' ', '_')}.db"
                shutil.copy(shop, copy)
                # cwd: `python -c` puts the working folder first on sys.path, ahead of PYTHONPATH
                done = subprocess.run([sys.executable, "-c", CHILD, f"sqlite+aiosqlite:///{copy}", args.job], cwd=folder,
                                      env=_env(code, ""), capture_output=True, text=True, check=True)
                opened, seconds, before, after = done.stdout.split()
                print(f"| {name} | {int(opened):,} | {seconds} | {int(before) / 1024:.1f} → {int(after) / 1024:.1f} MiB |",
                      flush=True)
                copy.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
