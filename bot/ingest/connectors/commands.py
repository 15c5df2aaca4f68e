"""`stockbot source check`: what the next poll would do, without doing it."""

from __future__ import annotations

import sys

from bot.db import Database
from bot.ingest.connectors.source_db import SHOWN, check_source, named
from bot.settings import Settings, SettingsError


async def source_check(settings: Settings, db: Database) -> int:
    """Print what a poll would count; the exit status. `db` is Stockbot's, disposed here."""
    try:
        reading = await check_source(settings, db)
    except SettingsError:
        raise  # exit 2, as every settings problem
    except Exception as exc:  # the query or the source failed: say why in one line, exit 1
        cause = getattr(exc, "orig", None) or exc
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
        print(f"source: the stock query failed: {type(cause).__name__}: {reason}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print(f"rows read: {reading.rows}")
    print(f"levels that differ from Stockbot's: {len(reading.changes)}")
    for change in reading.changes[:SHOWN]:
        print(f"  {change.sku} in {change.warehouse}: {change.on_hand}")
    if len(reading.changes) > SHOWN:
        print(f"  and {len(reading.changes) - SHOWN} more")
    print(f"unknown SKUs: {len(reading.unknown)}" + (f" ({named(reading.unknown)})" if reading.unknown else ""))
    if reading.bad:
        print(f"rows skipped (not sku, warehouse, whole on_hand): {len(reading.bad)} ({named(reading.bad)})")
    return 0
