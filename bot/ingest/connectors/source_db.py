"""The shop's own database (an ERP's, an in-house one), polled for stock levels, read only.

Each poll runs SOURCE_STOCK_QUERY (`sku, warehouse, on_hand`), compares every level with
Stockbot's, and turns those that differ into counts through the stock service, in one batch (one
transaction), so the first level of a product is a state, a fall to zero is a stockout, and the
ledger says `source`. Reading 100,000 rows and finding nothing changed costs a fraction of a
second of CPU (docs/benchmarks.md, "Source database poll").

Read only, as far as each driver allows: SQLite is opened `mode=ro` and `query_only`; PostgreSQL
and MySQL/MariaDB sessions are set to read-only transactions; every transaction is rolled back,
never committed. (SQL Server has no such session switch: give Stockbot a login that may only read.)

A failing poll (the source is down, the query is wrong) is logged once when the failure starts
and once when it ends, and tried again at the next poll; it never stops the bot. An SKU that
Stockbot's catalog lacks is logged once per process, then skipped quietly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.db import Database
from bot.inventory.batches import PendingBatch, write_in_batch
from bot.inventory.stock import StockChange, apply_changes
from bot.models import Product, StockLevel, StockMovement, Warehouse

_products, _levels, _warehouses = Product.__table__, StockLevel.__table__, Warehouse.__table__
from bot.settings import Settings, SettingsError

log = logging.getLogger("bot.ingest.source")

ACTOR = "source"
COLUMNS = ("sku", "warehouse", "on_hand")
WAREHOUSE_LIMIT = 64
SKU_LIMIT = 64
SHOWN = 10  # keys named in one log line
# What makes a session read only, per dialect (run on each new connection).
_READ_ONLY = {
    "sqlite": "PRAGMA query_only = ON",
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
}
DRIVER_HINT = "see docs/connectors.md for the driver to install (aiomysql or asyncmy, aioodbc)"

Key = tuple[str, str]  # (sku, warehouse)


@dataclass(slots=True)
class Reading:
    """One read of the source compared with Stockbot's levels."""

    rows: int = 0
    changes: list[StockChange] = field(default_factory=list)  # the levels that differ, as counts
    unknown: list[str] = field(default_factory=list)  # SKUs Stockbot's catalog lacks, sorted
    bad: list[str] = field(default_factory=list)  # rows that are not (sku, warehouse, whole number)


def read_only_engine(url_text: str) -> AsyncEngine:
    """An engine on the source that cannot write, where its driver allows; SettingsError naming
    SOURCE_DATABASE_URL when the URL cannot be used (no such driver, a driver that is not async)."""
    try:
        url = make_url(url_text)
        if url.get_backend_name() == "sqlite":
            url = _sqlite_read_only(url)
        # No pool: one connection a poll, so a source that restarted is simply connected to again.
        engine = create_async_engine(url, poolclass=NullPool)
    except (NoSuchModuleError, ImportError) as exc:
        raise SettingsError("SOURCE_DATABASE_URL", f"no database driver for it is installed ({_first_line(exc)}); "
                                                   f"{DRIVER_HINT}") from None
    except InvalidRequestError as exc:  # e.g. "The asyncio extension requires an async driver"
        raise SettingsError("SOURCE_DATABASE_URL", f"{_first_line(exc)}; {DRIVER_HINT}") from None
    except (ArgumentError, ValueError):  # their messages may repeat the URL, password included
        raise SettingsError("SOURCE_DATABASE_URL", "is not a SQLAlchemy database URL") from None
    statement = _READ_ONLY.get(engine.dialect.name)
    if statement is not None:
        @event.listens_for(engine.sync_engine, "connect")
        def _read_only(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()
            # A driver may have opened a transaction for it, and PostgreSQL undoes a SET that is
            # rolled back: commit the setting itself (the only commit this engine ever makes).
            dbapi_connection.commit()
    return engine


def _sqlite_read_only(url: URL) -> URL:
    """The same file, opened read only (an SQLite URI with mode=ro): the file is never created
    or written, whatever the query says."""
    path = url.database or ""
    if path in ("", ":memory:") or path.startswith("file:"):
        return url
    return url.set(database=f"file:{path}", query={**url.query, "mode": "ro", "uri": "true"})


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return ((str(cause).strip().splitlines() or [""])[0] or type(cause).__name__)[:200]


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float) and value == value and value % 1 == 0:  # ERPs keep NUMERIC quantities
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _levels_of(rows: Sequence[Sequence[Any]], positions: tuple[int, int, int], reading: Reading) -> dict[Key, int]:
    """The source's levels by (sku, warehouse): rows for one pair (lots, bins) add up; a level
    below zero (stock the ERP oversold) is zero to Stockbot. The loop is the poll's hot path at
    100,000 rows: the common row (two strings and an integer) takes no call but `strip`."""
    if positions != (0, 1, 2):
        rows = [(row[positions[0]], row[positions[1]], row[positions[2]]) for row in rows]
    levels: dict[Key, int] = {}
    for sku, warehouse, on_hand in rows:
        if type(on_hand) is not int:
            on_hand = _whole(on_hand)
        if type(sku) is not str or type(warehouse) is not str or on_hand is None:
            reading.bad.append(repr((sku, warehouse, on_hand))[:80])
            continue
        key = (sku.strip(), warehouse.strip())
        if not key[0] or not key[1] or len(key[0]) > SKU_LIMIT or len(key[1]) > WAREHOUSE_LIMIT:
            reading.bad.append(repr(key + (on_hand,))[:80])
            continue
        if key in levels:
            levels[key] += on_hand
        else:
            levels[key] = on_hand
    return {key: on_hand if on_hand > 0 else 0 for key, on_hand in levels.items()}


def _positions(names: Sequence[str]) -> tuple[int, int, int]:
    """Columns by name where the query names them so, else the first three in order."""
    lowered = [name.lower() for name in names]
    if all(column in lowered for column in COLUMNS):
        return lowered.index("sku"), lowered.index("warehouse"), lowered.index("on_hand")
    if len(names) < 3:
        raise ValueError(f"SOURCE_STOCK_QUERY returns {len(names)} column(s); it must return sku, warehouse, on_hand")
    return 0, 1, 2


async def read_source(engine: AsyncEngine, query: str, reading: Reading) -> dict[Key, int]:
    async with engine.connect() as connection:  # leaving it rolls back: nothing is ever committed
        result = await connection.execute(text(query))
        positions = _positions(list(result.keys()))
        rows = result.all()
    reading.rows = len(rows)
    return _levels_of(rows, positions, reading)


# Every product with each level it has (none: one row of NULLs), in one read of Core rows.
_OURS = (
    select(_products.c.sku, _warehouses.c.code, _levels.c.on_hand)
    .select_from(_products.outerjoin(_levels, _levels.c.product_id == _products.c.id)
                 .outerjoin(_warehouses, _warehouses.c.id == _levels.c.warehouse_id))
)


async def compare(db: Database, source: dict[Key, int], reading: Reading) -> None:
    """Fill `reading` with the counts that bring Stockbot's levels to the source's."""
    async with db.read_session() as session:
        connection = await session.connection()
        rows = (await connection.execute(_OURS)).all()
    known = {sku for sku, _, _ in rows}
    ours: dict[Key, int] = {(sku, code): on_hand for sku, code, on_hand in rows if code is not None}
    unknown = set()
    for key, on_hand in source.items():
        if key[0] not in known:
            unknown.add(key[0])
        elif ours.get(key, 0) != on_hand:  # no level is none on hand, as the stock service keeps it
            reading.changes.append(StockChange(key[0], key[1], on_hand=on_hand, reason=ACTOR, actor=ACTOR))
    reading.unknown = sorted(unknown)


async def check_source(settings: Settings, db: Database) -> Reading:
    """Read the source once and compare; writes nothing anywhere (`stockbot source check`)."""
    engine = read_only_engine(_url(settings))
    try:
        reading = Reading()
        await compare(db, await read_source(engine, _query(settings), reading), reading)
        return reading
    finally:
        await engine.dispose()


def _url(settings: Settings) -> str:
    if settings.SOURCE_DATABASE_URL is None:
        raise SettingsError("SOURCE_DATABASE_URL", "is not set")
    return settings.SOURCE_DATABASE_URL.get_secret_value()


def _query(settings: Settings) -> str:
    if not settings.SOURCE_STOCK_QUERY or not settings.SOURCE_STOCK_QUERY.strip():
        raise SettingsError("SOURCE_STOCK_QUERY", "is required when SOURCE_DATABASE_URL is set")
    return settings.SOURCE_STOCK_QUERY


# Stockbot's side of "nothing changed", without reading its 100,000 levels: every change of a
# level writes a ledger row (bot/inventory/stock.py), and every new product a products row. The
# newest ids say whether any was written; the count of ledger rows near the newest says whether a
# transaction that took its ids earlier committed since (PostgreSQL hands out ids before commit).
# A transaction that stays open while MARK_WINDOW newer rows commit could still slip past, so a
# full comparison is made at least every FULL_EVERY polls whatever the mark says.
MARK_WINDOW = 10_000
FULL_EVERY = 10
StockMark = tuple[int, int, int, int]
_movements = StockMovement.__table__


async def stock_mark(db: Database) -> StockMark:
    newest = select(func.coalesce(func.max(_movements.c.id), 0)).scalar_subquery()
    async with db.read_session() as session:
        connection = await session.connection()
        row = (await connection.execute(select(
            newest,
            select(func.count()).where(_movements.c.id > newest - MARK_WINDOW).scalar_subquery(),
            select(func.coalesce(func.max(_products.c.id), 0)).scalar_subquery(),
            select(func.count()).select_from(_products).scalar_subquery(),
        ))).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


class SourcePoller:
    """The poll job of `stockbot run`: one instance keeps what was logged already."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.query = _query(settings)
        self.engine = read_only_engine(_url(settings))
        self.failing = False
        self.reported_unknown: set[str] = set()
        self.reported_bad: set[str] = set()
        # The last poll that found nothing to count: the source as read, and Stockbot's mark.
        self.settled: tuple[dict[Key, int], StockMark] | None = None
        self.skipped = 0  # polls answered from `settled` since the last full comparison

    async def poll(self) -> Reading | None:
        """One poll; never raises (a failure is logged and the next poll tries again)."""
        started = time.perf_counter()
        reading = Reading()
        try:
            source = await read_source(self.engine, self.query, reading)
            mark = await stock_mark(self.db)
            if self.settled == (source, mark) and self.skipped < FULL_EVERY:
                self.skipped += 1  # nothing moved on either side since a poll that found all equal
            else:
                await compare(self.db, source, reading)
                if reading.changes:
                    async with self.db.transaction() as session:
                        # One poll is one batch, weighed against MASS_CONTACT_LIMIT like an import.
                        write_in_batch(session, PendingBatch("source database poll"))
                        await apply_changes(session, reading.changes)
                # After a count the mark has moved (by our own rows): the next poll compares again.
                self.settled, self.skipped = (None if reading.changes else (source, mark)), 0
        except Exception as exc:  # any failure: the bot keeps running and the next poll retries
            if not self.failing:
                log.warning("source: the poll failed (%s: %s); trying again every poll, logged again when it works",
                            type(exc).__name__, _first_line(exc))
            else:
                log.debug("source: the poll failed again (%s)", type(exc).__name__)
            self.failing = True
            return None
        if self.failing:
            log.info("source: the poll works again")
            self.failing = False
        self._report(reading)
        took = (time.perf_counter() - started) * 1000
        if reading.changes:
            log.info("source: %d row(s) read, %d level(s) counted in %.0f ms", reading.rows, len(reading.changes), took)
        else:
            log.debug("source: %d row(s) read, nothing differs (%.0f ms)", reading.rows, took)
        return reading

    def _report(self, reading: Reading) -> None:
        unknown = [sku for sku in reading.unknown if sku not in self.reported_unknown]
        if unknown:
            log.warning("source: %d SKU(s) not in Stockbot's catalog are skipped: %s", len(unknown), named(unknown))
            self.reported_unknown.update(unknown)
        bad = [row for row in reading.bad if row not in self.reported_bad]
        if bad:
            log.warning("source: %d row(s) are not sku, warehouse, whole on_hand and are skipped: %s",
                        len(bad), named(bad))
            self.reported_bad.update(bad)


def named(keys: Iterable[str], shown: int = SHOWN) -> str:
    keys = list(keys)
    head = ", ".join(keys[:shown])
    return head + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
