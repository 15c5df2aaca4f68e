"""CSV import of catalog, stock, customers, orders and sales history (CLI and chat share it).

Files as spreadsheets save them: `bot/ingest/csv_format.py` finds the encoding and the separator
and reads the rows; `bot/ingest/parsers.py` turns each row into a record of its kind. This module
runs the two passes and writes each kind through its domain's writer.

Two passes, streamed, so memory does not grow with the file's rows (only with the keys kept to
find duplicates):
1. Check: every row is parsed and its references (SKUs, customers, warehouses) looked up, a
   chunk at a time. Every bad row is reported as `FILE:LINE: reason`; with any, nothing is
   written.
2. Write: the checked records, kept in a temporary file by the check pass (so the file is read
   and parsed once, and what is written is exactly what was checked), are written in chunks of
   `CHUNK_ROWS` through the same set-based services as everything else (stock through the
   inventory service, so imports make crossings and the running bot acts on them).

All or nothing (the contract): with any bad row nothing is written, as the check pass comes
before the first write; and the write pass is ONE transaction, so a full disk, a lost database,
a race refused by a domain writer (a product deleted between the passes) or a stop (Ctrl-C,
SIGTERM of a bot importing a chat upload) rolls the whole file back. The price is on SQLite, which
has one write lock: the running bot's writes wait while a large import is written (tens of
seconds for 100,000 rows on a small machine; reads go on, as WAL never blocks them, and a write
that waits longer than the busy timeout is answered 503 with Retry-After by the API and retried by
the workers). On PostgreSQL only writes to the rows being imported wait. Every kind is an upsert
keyed as the file is (SKU, SKU and warehouse, external id, order, product-warehouse-day), so
running the same file again changes nothing twice. An order is written whole in one chunk: its
lines are collected until its last row has been read.
"""

from __future__ import annotations

import io
import pickle
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, ids_by_key
from bot.ingest.csv_format import CsvFormat, detect, read_rows
from bot.ingest.parsers import COLUMNS, KINDS, PARSERS, ParseContext, RowError
from bot.inventory.batches import import_batch, write_in_batch
from bot.inventory.products import upsert_products
from bot.inventory.stock import StockChange, apply_changes, ensure_levels, warehouse_ids
from bot.models import MovementReason, Product, StockLevel, Warehouse
from bot.planning.history import write_imported_days
from bot.shop.customers import CustomerInput, upsert_customers
from bot.shop.orders import (
    LineInput,
    OrderInput,
    UpsertCount,
    check_references,
    upsert_orders,
)

SAME_REASON_SHOWN = 3  # rows shown with one reason before the rest are counted (error_lines)
CHUNK_ROWS = 5_000  # rows per check lookup and per write statement set (a few hundred ms each)

Progress = Callable[[str, int], None]  # (what is being done: "checked" or "written", rows so far)


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What an import did. `product_ids` lists the products a stock or history import touched,
    for whoever reacts to it (the forecast refresh after a history import).

    `created + updated + unchanged` counts what the file holds: rows, except for orders, whose
    rows are lines and whose counts are orders."""

    kind: str
    label: str
    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    encoding: str = "UTF-8"
    product_ids: set[int] = field(default_factory=set)

    def add_problem(self, line: int, reason: str) -> None:
        self.problems.append(Problem(line, reason))

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_rows(self) -> int:
        return len({problem.line for problem in self.problems})

    def error_lines(self, limit: int | None = None) -> list[str]:
        """`FILE:LINE: reason`, one per bad row in line order; with a `limit`, as `shown_errors`
        and a last line saying how many more there are."""
        if limit is None:
            return [f"{self.label}:{p.line}: {p.reason}" for p in sorted(self.problems, key=lambda p: p.line)]
        lines, hidden = self.shown_errors(limit)
        return lines + ([f"{self.label}: and {hidden} more bad row(s)"] if hidden else [])

    def shown_errors(self, limit: int) -> tuple[list[str], int]:
        """At most `limit` bad rows, and how many are left out. A reason many rows share is shown
        on its first rows and then counted on one line (`FILE:FIRST-LAST: N more row(s): reason`):
        a history file before its catalog must not print one reason 360 times."""
        lines: list[str] = []
        repeats: dict[str, list[int]] = {}
        for problem in sorted(self.problems, key=lambda p: p.line):
            seen = repeats.setdefault(problem.reason, [])
            seen.append(problem.line)
            if len(seen) <= SAME_REASON_SHOWN and len(lines) < limit:
                lines.append(f"{self.label}:{problem.line}: {problem.reason}")
        shown = len(lines)
        summed = 0
        for reason, at in repeats.items():
            if len(at) > SAME_REASON_SHOWN and f"{self.label}:{at[0]}: {reason}" in lines:
                rest = at[SAME_REASON_SHOWN:]
                lines.append(f"{self.label}:{rest[0]}-{rest[-1]}: {len(rest)} more row(s): {reason}")
                summed += len(rest)
        return lines, len(self.problems) - shown - summed


# --- the check per kind: what a chunk's records name must exist ---------------------------------


async def _check_references(session: AsyncSession, kind: str, records: list[tuple[int, Any]]) -> list[Problem]:
    if kind in ("stock", "history"):
        known = await ids_by_key(session, Product.sku, Product.id, {record[0] for _, record in records})
        return [Problem(line, f"unknown SKU {record[0]!r}") for line, record in records if record[0] not in known]
    if kind == "orders":
        bad = await check_references(session, [(line, customer, (given.sku,)) for line, (_, customer, given) in records])
        reasons: dict[int, list[str]] = {}
        for problem in bad:
            reasons.setdefault(problem.at, []).append(problem.message)
        return [Problem(line, "; ".join(messages)) for line, messages in reasons.items()]
    return []


# --- the write per kind, each through its domain's writer ---------------------------------------


def _add(report: ImportReport, counts: UpsertCount) -> None:
    report.created += counts.created
    report.updated += counts.updated
    report.unchanged += counts.unchanged


async def _write_catalog(session: AsyncSession, records: list[dict[str, Any]], report: ImportReport, _: str) -> None:
    _add(report, await upsert_products(session, records, skip_unchanged=True))


async def _write_stock(session: AsyncSession, records: list[tuple[str, str, int]], report: ImportReport, actor: str) -> None:
    known = {(sku, code) for sku, code in await session.execute(
        select(Product.sku, Warehouse.code)
        .join(StockLevel, StockLevel.product_id == Product.id)
        .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
        .where(Product.sku.in_({sku for sku, _, _ in records}))
    )}
    results = await apply_changes(
        session, [StockChange(sku, warehouse, on_hand=qty, reason=MovementReason.IMPORT, actor=actor) for sku, warehouse, qty in records]
    )
    zero_levels: list[tuple[int, str]] = []
    for (sku, warehouse, _), result in zip(records, results, strict=True):
        if (sku, warehouse) not in known:  # a first level, zero included, is created (a state, not a change)
            report.created += 1
            if not result.delta and result.product_id is not None:
                zero_levels.append((result.product_id, warehouse))
        elif result.delta:
            report.updated += 1
        else:
            report.unchanged += 1
    if zero_levels:
        codes = await warehouse_ids(session, {code for _, code in zero_levels}, create=True)
        await ensure_levels(session, [(product_id, codes[code]) for product_id, code in zero_levels])
    report.product_ids.update(result.product_id for result in results if result.product_id is not None)


async def _write_customers(session: AsyncSession, records: list[CustomerInput], report: ImportReport, _: str) -> None:
    _add(report, await upsert_customers(session, records))


async def _write_orders(session: AsyncSession, records: list[OrderInput], report: ImportReport, _: str) -> None:
    _add(report, await upsert_orders(session, records))


async def _write_history(
    session: AsyncSession, records: list[tuple[str, str, date, int, int | None]], report: ImportReport, _: str
) -> None:
    products = await ids_by_key(session, Product.sku, Product.id, {record[0] for record in records})
    # Warehouses are created as a stock import creates them: a history before its stock is good.
    warehouses = await warehouse_ids(session, {record[1] for record in records}, create=True)
    _add(report, await write_imported_days(session, [
        {"product_id": products[sku], "warehouse_id": warehouses[warehouse], "day": day, "sold": sold,
         "on_hand": on_hand}
        for sku, warehouse, day, sold, on_hand in records
    ]))
    report.product_ids.update(products.values())


_WRITERS = {
    "catalog": _write_catalog, "stock": _write_stock, "customers": _write_customers,
    "orders": _write_orders, "history": _write_history,
}


# --- the two passes ------------------------------------------------------------------------------


async def _check(
    db: Database, kind: str, binary: BinaryIO, found: CsvFormat, ctx: ParseContext, report: ImportReport, spool: BinaryIO,
    progress: Progress,
) -> None:
    """Parse and check every row; good rows go to `spool`, a chunk per pickle, for the write pass."""
    parse = PARSERS[kind](ctx)
    batch: list[tuple[int, Any]] = []
    for row in read_rows(binary, COLUMNS[kind], found, report.add_problem):
        report.rows += 1
        try:
            batch.append((row.line, parse(row.values, row.line)))
        except RowError as exc:
            report.add_problem(row.line, str(exc))
        if len(batch) >= CHUNK_ROWS:
            await _check_batch(db, kind, batch, report, spool)
            batch = []
            progress("checked", report.rows)
    await _check_batch(db, kind, batch, report, spool)
    progress("checked", report.rows)


async def _check_batch(
    db: Database, kind: str, batch: list[tuple[int, Any]], report: ImportReport, spool: BinaryIO
) -> None:
    if not batch:
        return
    async with db.read_session() as session:
        report.problems += await _check_references(session, kind, batch)
    if not report.problems:  # once one row is bad nothing will be written: stop keeping them
        pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)


def _records(kind: str, spool: BinaryIO, ctx: ParseContext) -> Iterator[Any]:
    """The checked records, back from the spool; orders come whole, at their last line."""
    spool.seek(0)
    open_orders: dict[str, tuple[str, list[LineInput]]] = {}
    while True:
        try:
            batch = pickle.load(spool)  # our own file, written by the check pass just now
        except EOFError:
            return
        for line, record in batch:
            if kind != "orders":
                yield record
                continue
            external_id, customer, given = record
            open_orders.setdefault(external_id, (customer, []))[1].append(given)
            if ctx.last_line[external_id] == line:
                customer, lines = open_orders.pop(external_id)
                yield OrderInput(external_id, customer, tuple(lines))


async def _chunks(records: Iterator[Any], kind: str) -> AsyncIterator[list[Any]]:
    batch: list[Any] = []
    size = 0
    for record in records:
        batch.append(record)
        size += len(record.lines) if kind == "orders" else 1
        if size >= CHUNK_ROWS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _no_progress(_: str, __: int) -> None:
    return None


async def import_csv(
    db: Database, kind: str, source: bytes | BinaryIO, *, label: str, dry_run: bool = False,
    actor: str = "import", phone_region: str = "", zone: tzinfo = UTC, progress: Progress | None = None,
) -> ImportReport:
    """Check `source` (bytes, or a binary file that can seek) and, when every row is good and
    this is not a dry run, write it. `zone` is the shop's, for what "today" is; `progress`
    hears how far the check and the write have got, a chunk at a time."""
    progress = progress or _no_progress
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}")
    binary: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else source
    report = ImportReport(kind=kind, label=label, dry_run=dry_run)
    found = detect(binary)
    report.encoding = found.label
    ctx = ParseContext(phone_region=phone_region, today=datetime.now(zone).date(), decimal_comma=found.decimal_comma)
    with tempfile.TemporaryFile() as spool:
        await _check(db, kind, binary, found, ctx, report, spool, progress)
        report.problems.sort(key=lambda problem: problem.line)
        if report.problems or dry_run:
            return report
        write = _WRITERS[kind]
        written = 0
        counts = (report.created, report.updated, report.unchanged)
        try:
            async with db.transaction() as session:  # all or nothing: see the docstring
                # One import is one batch: the running bot weighs its customer messages against
                # MASS_CONTACT_LIMIT, and sweeps low stock after it, once it has committed.
                write_in_batch(session, await import_batch(session, f"import {kind} {label}"))
                async for batch in _chunks(_records(kind, spool, ctx), kind):
                    await write(session, batch, report, actor)
                    written += sum(len(order.lines) for order in batch) if kind == "orders" else len(batch)
                    progress("written", written)
        except BaseException:
            report.created, report.updated, report.unchanged = counts  # nothing of it was kept
            report.product_ids.clear()
            raise
    return report
