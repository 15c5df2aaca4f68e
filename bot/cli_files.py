"""`stockbot report` and `stockbot plan`: what /report and /plan give in chat, as files and text
for people and scripts without Telegram. Both reuse the services the chat commands use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli_db import opened_database
from bot.csv_safe import SafeCsvWriter
from bot.settings import Settings

PLAN_COLUMNS = ("sku", "warehouse", "action", "qty", "from_warehouse", "supplier", "daily_demand",
                "days_of_cover", "stockout_date", "reason")


async def run_report(settings: Settings, args: argparse.Namespace) -> int:
    # Deferred (CLI start path): the report loads numpy and matplotlib.
    from bot.delivery.templates import Templates
    from bot.reports import data, files

    days = data.parse_days(args.days)
    if days is None:
        print(f"stockbot report: DAYS must be a whole number from 1 to {data.MAX_DAYS}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{args.out}: cannot create the folder: {exc.strerror or exc}", file=sys.stderr)
        return 1
    async with opened_database(settings) as db, db.session() as session:
        report_files = await files.build(session, db, settings, Templates(zone=settings.zone), days=days,
                                         locale=args.locale or settings.DEFAULT_LOCALE)
    if report_files is None:
        print("nothing to report yet: no sales history and no stock in this period", file=sys.stderr)
        return 1
    for made in (*report_files.photos, report_files.csv):
        path = out / made.filename
        path.write_bytes(made.content)
        print(path)
    return 0


async def run_plan(settings: Settings, args: argparse.Namespace) -> int:
    from bot.planning.suggestions import as_json, suggestions  # deferred (CLI start path)

    from sqlalchemy import func, select

    from bot.models import DemandForecast

    async with opened_database(settings) as db, db.read_session() as session:
        lines = await suggestions(session)
        forecasts = await session.scalar(select(func.count()).select_from(DemandForecast))
    if not forecasts:
        print("no forecast yet: `stockbot run` makes one after a history import, and every night",
              file=sys.stderr)
    rows = [as_json(line) for line in lines]
    if args.csv:
        writer = SafeCsvWriter(sys.stdout)
        writer.writerow(PLAN_COLUMNS)
        writer.writerows([row.get(name) for name in PLAN_COLUMNS] for row in rows)
        return 0
    if not rows:
        print("Nothing to buy or move: every product covers its lead time.")
        return 0
    for row in rows:
        if row["action"] == "transfer":
            what = f"move {row['qty']} {row['sku']} from {row['from_warehouse']} to {row['warehouse']}"
        else:
            what = f"buy {row['qty']} {row['sku']} for {row['warehouse']}" + (
                f" from {row['supplier']}" if row.get("supplier") else "")
        cover = row["days_of_cover"]
        detail = f"{row['daily_demand']}/day, {'no' if cover is None else cover} days of cover"
        if row.get("stockout_date"):
            detail += f", runs out {row['stockout_date']}"
        print(f"{what}  ({detail}; {row['reason']})")
    return 0

