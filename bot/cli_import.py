"""`stockbot import`: a CSV or xlsx file into the database, said so a person can follow it.

The last line names the database written to; creating a new SQLite file is warned about; bad
rows are printed grouped and capped (every one with --all-errors); a terminal sees a progress
line on stderr while a big file is checked and written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TextIO

from bot.dbtarget import describe, sqlite_file
from bot.settings import Settings

ERRORS_SHOWN = 50
PROGRESS_AFTER_S = 1.0  # a small file finishes before this: no progress line at all
PROGRESS_EVERY_S = 0.25


class TerminalProgress:
    """`label: checked 45,000 rows`, rewritten in place on a terminal; nothing elsewhere (a log or
    a pipe must not fill with carriage returns)."""

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.live = stream.isatty()
        self.started = time.monotonic()
        self.shown_at = 0.0
        self.width = 0

    def __call__(self, doing: str, rows: int) -> None:
        now = time.monotonic()
        if not self.live or now - self.started < PROGRESS_AFTER_S or now - self.shown_at < PROGRESS_EVERY_S:
            return
        self.shown_at = now
        text = f"{self.label}: {doing} {rows:,} rows"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


async def run_import(settings: Settings, args: argparse.Namespace) -> int:
    from bot.db import unavailable_reason  # deferred (CLI start path), as the importer
    from bot.ingest.files import (
        import_file,  # deferred (CLI start path): the importer loads the catalog
    )
    from bot.startup import open_database

    label = args.file
    try:
        data = open(args.file, "rb")  # streamed: the importer reads it twice, a chunk at a time
    except OSError as exc:
        print(f"{label}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    target = describe(settings.DATABASE_URL)
    path = sqlite_file(settings.DATABASE_URL)
    is_new = path is not None and not path.exists()
    progress = TerminalProgress(label, sys.stderr)
    with data:
        db = await open_database(settings)
        try:
            report = await import_file(
                db, args.kind, data, label=label, sheet=args.sheet, dry_run=args.dry_run, actor="cli:import",
                phone_region=settings.PHONE_REGION, zone=settings.zone, progress=progress,
            )
        except (asyncio.CancelledError, KeyboardInterrupt):
            progress.clear()
            print(f"{label}: stopped; nothing was imported\ndatabase: {target} (unchanged)", file=sys.stderr)
            raise
        except Exception as exc:
            reason = unavailable_reason(exc)
            if reason is None:
                raise
            # The write pass is one transaction (bot/ingest/importer.py): a full disk or a lost
            # database rolls all of it back, which is what the person needs to hear, not a traceback.
            progress.clear()
            print(f"{label}: {reason}; nothing was imported\ndatabase: {target} (unchanged)", file=sys.stderr)
            return 1
        finally:
            progress.clear()
            await db.dispose()
    if is_new:
        print(f"warning: {path} did not exist; a new, empty database was created there. Is DATABASE_URL "
              f"right? (a relative SQLite path is relative to the working folder)", file=sys.stderr)
    if not report.ok:
        lines = report.error_lines(None if args.all_errors else ERRORS_SHOWN)
        for line in lines:
            print(line, file=sys.stderr)
        if not args.all_errors and report.bad_rows > ERRORS_SHOWN:
            print(f"{label}: --all-errors prints every bad row", file=sys.stderr)
        print(f"{label}: {report.bad_rows} bad row(s) of {report.rows}; nothing was imported", file=sys.stderr)
        print(f"database: {target} (unchanged)", file=sys.stderr)
        return 1
    if report.dry_run:
        print(f"{label}: {report.rows} row(s) checked, all good (dry run: nothing written)")
        print(f"database: {target} (checked against, unchanged)")
        return 0
    what = "orders" if report.kind == "orders" else "rows"
    print(f"{label}: imported {report.rows} row(s) of {report.kind}: {report.created} created, "
          f"{report.updated} updated, {report.unchanged} unchanged ({what})")
    print(f"database: {target}")
    return 0
