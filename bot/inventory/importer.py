"""CSV import of catalog, stock, customers, orders and sales history (CLI and chat share it).

Files as spreadsheets save them: the encoding is detected among the ones the contract names
(UTF-8 with or without a BOM, UTF-16 with or without one, GB18030, which reads GBK), by
`charset-normalizer` except for UTF-16 without a BOM (see `_utf16_without_bom`). The separator
is the one the header row uses most of `,`, `;` and tab (Excel's "Unicode Text" is UTF-16
separated by tabs); with `;`, `,` is the decimal mark. A row holding bytes the detected encoding
cannot read is a bad row like any other.

Two passes, streamed, so memory does not grow with the file's rows (only with the keys kept to
find duplicates):
1. Check: every row is parsed and its references (SKUs, customers, warehouses) looked up, a
   chunk at a time. Every bad row is reported as `FILE:LINE: reason`; with any, nothing is
   written.
2. Write: the checked records, kept in a temporary file by the check pass (so the file is read
   and parsed once, and what is written is exactly what was checked), are written in chunks of
   `CHUNK_ROWS`, each chunk its own short transaction through the same set-based services as
   everything else (stock through the inventory service, so imports make crossings and the
   running bot acts on them as they land).

Why chunked commits rather than one transaction: one transaction would hold SQLite's only write
lock for the whole import, and the running bot could not record a stock change or queue a
stockout notice until it ended. With chunks, its writes interleave between ours: on SQLite the
importer pauses after each commit for as long as the chunk took, up to `SQLITE_GAP_S`, which is
longer than SQLite's busy handler ever sleeps between tries, so a waiting writer gets in.

What "all or nothing" means then: with any bad row nothing is written (the check pass comes
before the first write). A good file is written chunk by chunk; a crash (or a write refused by a
race, such as a product deleted between the passes) leaves the chunks already committed, which
were accepted and are kept, and the rest unwritten. Every kind is an upsert keyed as the file is
(SKU, SKU and warehouse, external id, order, product-warehouse-day), so running the same file
again finishes the job and changes nothing twice. An order is written whole in one chunk: its
lines are collected until its last row has been read.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import pickle
import re
import tempfile
import time as clock
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO

from charset_normalizer import from_bytes
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, dialect_insert, ids_by_key
from bot.inventory.catalog import stamp_catalog_change
from bot.inventory.batches import close_batch, open_batch, write_in_batch
from bot.inventory.stock import (
    StockChange, apply_changes, ensure_levels, event_row, record_events, warehouse_ids,
)
from bot.inventory.thresholds import threshold_moved
from bot.models import OrderStatus, Product, SalesDay, StockLevel, Warehouse, utcnow
from bot.planning.state import history_changed
from bot.shop.customers import CustomerInput, upsert_customers, zone_name
from bot.shop.orders import LineInput, OrderInput, check_references, upsert_orders
from bot.shop.phones import BadPhone, to_e164
from bot.text_rules import REFUSAL, has_unsafe_chars

KINDS = ("catalog", "stock", "customers", "orders", "history")
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind: (required, optional)
    "catalog": (
        ("sku", "name", "category", "price"),
        ("brand", "reorder_point", "safety_stock", "lead_time_days", "supplier", "attributes"),
    ),
    "stock": (("sku", "warehouse", "on_hand"), ()),
    "customers": (("external_id", "name", "tier"), ("phone", "email", "locale", "timezone")),
    "orders": (("external_id", "customer_external_id", "sku", "qty", "status"), ()),
    "history": (("date", "sku", "warehouse", "sold"), ("on_hand",)),
}
LIMITS = {"sku": 64, "name": 512, "category": 128, "brand": 128, "supplier": 256, "warehouse": 64,
          "external_id": 128, "customer_external_id": 128, "email": 256}
CUSTOMER_NAME_LIMIT = 256
SAME_REASON_SHOWN = 3  # rows shown with one reason before the rest are counted (error_lines)
CHUNK_ROWS = 5_000  # rows per check lookup and per write transaction (a few hundred ms each)
SQLITE_GAP_S = 0.12  # after each commit: SQLite's busy handler re-polls a waiting writer every 100 ms
DETECT_BYTES = 64 * 1024  # of the head, and of non-ASCII lines further on, for charset detection
UTF16_SNIFF_BYTES = 32  # 16 UTF-16 code units: shorter than any kind's header row
SEPARATORS = (",", ";", "\t")  # in this order of preference on a tie
ENCODINGS = {"utf_8": ("utf-8-sig", "UTF-8"), "utf_16": ("utf-16", "UTF-16"), "gb18030": ("gb18030", "GBK")}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UNREADABLE = "\udcff"  # stands for bytes the encoding cannot read; no decoder produces a lone surrogate
codecs.register_error("stockbot_mark", lambda exc: (_UNREADABLE, exc.end))  # type: ignore[arg-type, return-value]


class RowError(ValueError):
    pass


Progress = Callable[[str, int], None]  # (what is being done: "checked" or "written", rows so far)


class _Fields:
    """Reads a row's fields one by one, keeping the reason of each bad one, so that a row with a
    bad phone and a bad tier reports both; `done()` raises them together."""

    __slots__ = ("values", "reasons")

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reasons: list[str] = []

    def __call__(self, read: Callable[..., Any], *args: Any, **options: Any) -> Any:
        try:
            return read(self.values, *args, **options)
        except RowError as exc:
            self.reasons.append(str(exc))
            return None

    def bad(self, reason: str) -> None:
        self.reasons.append(reason)

    def done(self) -> None:
        if self.reasons:
            raise RowError("; ".join(self.reasons))


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


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    values: dict[str, str]


@dataclass(slots=True)
class _Format:
    codec: str = "utf-8-sig"
    label: str = "UTF-8"
    delimiter: str = ","


@dataclass(slots=True)
class _Context:
    """What parsing a row needs beyond the row: options, and what the database holds."""

    phone_region: str = ""
    today: date = date.min  # in the shop's zone; history must not be later
    decimal_comma: bool = False
    last_line: dict[str, int] = field(default_factory=dict)  # orders: external id -> its last row


# --- reading -------------------------------------------------------------------------------------


def _detect(binary: BinaryIO) -> _Format:
    """The file's encoding and separator."""
    found = _encoding(binary)
    binary.seek(0)
    header = codecs.getreader(found.codec)(binary, errors="stockbot_mark").readline()
    binary.seek(0)
    found.delimiter = _delimiter(header)
    return found


def _delimiter(header: str) -> str:
    """The separator the header row uses most; a tie (a one-column header) means a comma."""
    return max(SEPARATORS, key=header.count)


def _encoding(binary: BinaryIO) -> _Format:
    """The file's encoding: UTF-16 without a BOM by its NUL bytes, the rest by charset-normalizer
    (among the contract's encodings)."""
    head = binary.read(DETECT_BYTES)
    codec = _utf16_without_bom(head)
    if codec is not None:
        return _Format(codec, "UTF-16")
    sample = head
    if len(head) == DETECT_BYTES:
        cut = head.rfind(b"\n") + 1
        sample = head[:cut] if cut > 0 else head
        if not any(byte >= 0x80 or byte == 0 for byte in sample):
            sample += _non_ascii_lines(binary)  # an English head says nothing; a later name might
    if _strict_utf8(sample):
        # Text that reads as UTF-8 is UTF-8: charset-normalizer takes a short file whose one
        # non-ASCII character is a zero-width space or a bidi override for GB18030 mojibake,
        # which hides the very character the importer refuses.
        return _Format()
    guess = from_bytes(sample, cp_isolation=list(ENCODINGS)).best()
    if guess is None and len(sample) % 2:  # UTF-16 cut after the "\n" of a "\n\0"
        guess = from_bytes(head[: len(sample) + 1], cp_isolation=list(ENCODINGS)).best()
    if guess is None:  # a few bad rows must not hide what the rest is written in
        lines = sample.splitlines(keepends=True)
        readable = [line for line in lines if _readable(line)]
        if len(lines) - len(readable) <= len(lines) // 10:  # more, and it is some other encoding
            guess = from_bytes(b"".join(readable), cp_isolation=list(ENCODINGS)).best()
    found = _Format()
    if guess is not None:
        found.codec, found.label = ENCODINGS[guess.encoding]
    return found


def _strict_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(head: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" for UTF-16 that starts without a BOM, as some tools write it.

    charset-normalizer does not recognise it. Every header is ASCII column names, so in UTF-16
    its first bytes alternate NUL and not NUL; no other accepted encoding puts NULs in text.
    """
    sample = head[: min(len(head), UTF16_SNIFF_BYTES) // 2 * 2]
    if len(sample) < 4:
        return None
    low, high = sample[0::2], sample[1::2]
    if all(low) and not any(high):
        return "utf-16-le"
    if all(high) and not any(low):
        return "utf-16-be"
    return None


def _readable(line: bytes) -> bool:
    for codec in ("utf-8", "gb18030"):
        try:
            line.decode(codec)
        except UnicodeDecodeError:
            continue
        return True
    return False


def _non_ascii_lines(binary: BinaryIO) -> bytes:
    picked = bytearray()
    for raw in binary:
        if len(picked) >= DETECT_BYTES:
            break
        if any(byte >= 0x80 for byte in raw):
            picked += raw
    return bytes(picked)


def _rows(binary: BinaryIO, kind: str, found: _Format, report: ImportReport) -> Iterator[_Row]:
    """The data rows, with the physical line each starts on. Problems with the header or the CSV
    itself go to `report`."""

    def problem(line: int, reason: str) -> None:
        report.problems.append(Problem(line, reason))

    binary.seek(0)
    text = io.TextIOWrapper(binary, encoding=found.codec, errors="stockbot_mark", newline="")
    try:
        reader = csv.reader(text, delimiter=found.delimiter)
        try:
            header = [name.strip().lower() for name in next(reader)]
            while not "".join(header):  # blank rows above the table (a sheet's title space)
                header = [name.strip().lower() for name in next(reader)]
        except StopIteration:
            problem(1, "the file is empty; expected a header row")
            return
        except csv.Error as exc:
            problem(1, f"unreadable CSV: {exc}")
            return
        if header and header[0].startswith("\ufeff"):  # a BOM the codec kept (UTF-16 written twice)
            header[0] = header[0].lstrip("\ufeff")
        reason = _header_problem(header, kind, found)
        if reason:
            problem(1, reason)
            return
        line = reader.line_num
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                problem(reader.line_num, f"unreadable CSV: {exc}")
                return
            start, line = line + 1, reader.line_num
            joined = "".join(cells)  # one scan in C instead of one per cell
            if not joined.strip():
                continue
            if _UNREADABLE in joined:
                problem(start, f"not {found.label} text")
                continue
            if len(cells) > len(header):
                problem(start, f"{len(cells)} values for {len(header)} columns")
                continue
            yield _Row(start, {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)})
    finally:
        text.detach()  # the caller owns the binary file


def _header_problem(header: list[str], kind: str, found: _Format) -> str | None:
    if any(_UNREADABLE in name for name in header):
        return f"not {found.label} text"
    required, optional = COLUMNS[kind]
    missing = [name for name in required if name not in header]
    unknown = [name for name in header if name not in required + optional]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    parts = []
    if missing:
        parts.append("missing column " + ", ".join(missing))
    if unknown:
        parts.append("unknown column " + ", ".join(repr(name) for name in unknown))
    if duplicated:
        parts.append("repeated column " + ", ".join(duplicated))
    return "; ".join(parts) or None


# --- field parsers (raise RowError with the reason) ---------------------------------------------


def _text(values: dict[str, str], name: str, *, required: bool = True, limit: int | None = None) -> str | None:
    value = values.get(name, "")
    if not value:
        if required:
            raise RowError(f"{name} is required")
        return None
    if has_unsafe_chars(value):
        raise RowError(f"{name} {REFUSAL}")
    limit = limit or LIMITS.get(name, 1024)
    if len(value) > limit:
        raise RowError(f"{name} is longer than {limit} characters")
    return value


def _count(values: dict[str, str], name: str, *, required: bool = True, minimum: int = 0) -> int | None:
    raw = values.get(name, "")
    if not raw:
        if required:
            raise RowError(f"{name} is required")
        return None
    try:
        number = int(raw)
    except ValueError:
        raise RowError(f"{name} {raw!r} is not a whole number") from None
    if number < minimum:
        raise RowError(f"{name} {number} is negative" if minimum == 0 else f"{name} must be at least {minimum}")
    if number > 2_000_000_000:
        raise RowError(f"{name} {number} is too large")
    return number


def _price_cents(values: dict[str, str], decimal_comma: bool) -> int:
    raw = _text(values, "price")
    assert raw is not None
    number = raw.replace(",", ".", 1) if decimal_comma and "." not in raw else raw
    try:
        price = Decimal(number)
    except InvalidOperation:
        raise RowError(f"price {raw!r} is not a number") from None
    if not price.is_finite():
        raise RowError(f"price {raw!r} is not a number")
    if price < 0:
        raise RowError(f"price {raw} is negative")
    if price != price.quantize(Decimal("0.01")):
        raise RowError(f"price {raw} has more than two decimals")
    if price >= Decimal("1e12"):
        raise RowError(f"price {raw} is too large")
    return int(price * 100)


def _attributes(raw: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in raw.split(";"))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise RowError(f"attributes part {part!r} is not key=value")
        attributes[key.strip().lower()] = value.strip()
    return attributes


def _choice(values: dict[str, str], name: str, allowed: tuple[str, ...], *, required: bool = True) -> str | None:
    raw = values.get(name, "").lower()
    if not raw and not required:
        return None
    if raw not in allowed:
        shown = values.get(name, "") or "(empty)"
        raise RowError(f"{name} {shown!r} is not one of {', '.join(allowed)}")
    return raw


def _day(values: dict[str, str], today: date) -> date:
    raw = _text(values, "date")
    assert raw is not None
    try:
        if not _DAY.match(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise RowError(f"date {raw!r} is not a date written YYYY-MM-DD") from None
    if day > today:
        raise RowError(f"date {raw} is in the future")
    return day


def _key(*parts: str) -> str:
    # One string per composite key: a tuple of strings costs about twice the memory, and a big
    # file keeps one key per row to find duplicates.
    return "\x1f".join(parts)


def _unique(seen: dict[str, int], key: str, line: int, what: str) -> None:
    first = seen.setdefault(key, line)
    if first != line:
        raise RowError(f"duplicate {what} (first on line {first})")


# --- per kind: a parser per pass (it keeps the keys seen), a reference check, a writer -----------

Parser = Callable[[dict[str, str], int], Any]


def _catalog_parser(ctx: _Context) -> Parser:
    seen: dict[str, int] = {}

    def parse(values: dict[str, str], line: int) -> dict[str, Any]:
        read = _Fields(values)
        sku = read(_text, "sku")
        record = {
            "sku": sku,
            "name": read(_text, "name"),
            "category": read(_text, "category"),
            "price_cents": read(_price_cents, ctx.decimal_comma),
        }
        for name in ("brand", "supplier"):
            if name in values:
                record[name] = read(_text, name, required=False)
        for name in ("reorder_point", "safety_stock", "lead_time_days"):
            number = read(_count, name, required=False)
            if number is not None:
                record[name] = number
        if values.get("attributes"):
            try:
                record["attributes"] = _attributes(values["attributes"])
            except RowError as exc:
                read.bad(str(exc))
        read.done()
        _unique(seen, sku, line, f"SKU {sku}")
        return record

    return parse


def _stock_parser(ctx: _Context) -> Parser:
    seen: dict[str, int] = {}

    def parse(values: dict[str, str], line: int) -> tuple[str, str, int]:
        read = _Fields(values)
        sku = read(_text, "sku")
        warehouse = read(_text, "warehouse")
        on_hand = read(_count, "on_hand")
        read.done()
        assert sku is not None and warehouse is not None and on_hand is not None
        _unique(seen, _key(sku, warehouse), line, f"stock row for {sku} in {warehouse}")
        return sku, warehouse, on_hand

    return parse


def _customer_parser(ctx: _Context) -> Parser:
    seen: dict[str, int] = {}
    phones: dict[str, int] = {}

    def parse(values: dict[str, str], line: int) -> CustomerInput:
        read = _Fields(values)
        external_id = read(_text, "external_id")
        name = read(_text, "name", limit=CUSTOMER_NAME_LIMIT)
        tier = read(_choice, "tier", ("regular", "vip"))
        phone = None
        if values.get("phone"):
            try:
                phone = to_e164(values["phone"], ctx.phone_region)
            except BadPhone as exc:
                read.bad(f"phone {exc}")
        email = read(_text, "email", required=False)
        if email and not _EMAIL.match(email):
            read.bad(f"email {email!r} is not an address")
        zone = values.get("timezone") or None
        if zone is not None:
            try:
                zone_name(zone)
            except ValueError as exc:
                read.bad(f"timezone {exc}")
        locale = read(_choice, "locale", ("en", "zh"), required=False)
        read.done()
        assert external_id is not None
        record = CustomerInput(
            external_id=external_id, name=name, tier=tier, phone=phone, email=email, locale=locale, timezone=zone,
        )
        _unique(seen, external_id, line, f"customer {external_id}")
        if phone:
            _unique(phones, phone, line, f"phone {phone}")
        return record

    return parse


def _order_parser(ctx: _Context) -> Parser:
    seen: dict[str, int] = {}
    owners: dict[str, tuple[str, int]] = {}
    statuses = tuple(status.value for status in OrderStatus)

    def parse(values: dict[str, str], line: int) -> tuple[str, str, LineInput]:
        read = _Fields(values)
        external_id = read(_text, "external_id")
        customer = read(_text, "customer_external_id")
        sku = read(_text, "sku")
        qty = read(_count, "qty", minimum=1)
        status = read(_choice, "status", statuses)
        read.done()
        assert external_id is not None and customer is not None and sku is not None and qty is not None
        owner = owners.setdefault(external_id, (customer, line))
        if owner[0] != customer:
            raise RowError(f"order {external_id} belongs to {owner[0]} on line {owner[1]}, not {customer}")
        _unique(seen, _key(external_id, sku), line, f"line for {sku} in order {external_id}")
        ctx.last_line[external_id] = line
        return external_id, customer, LineInput(sku, qty, status)  # type: ignore[arg-type]

    return parse


def _history_parser(ctx: _Context) -> Parser:
    seen: dict[str, int] = {}

    def parse(values: dict[str, str], line: int) -> tuple[str, str, date, int, int | None]:
        read = _Fields(values)
        day = read(_day, ctx.today)
        raw_day = values["date"]
        sku = read(_text, "sku")
        warehouse = read(_text, "warehouse")  # a new one is created, as a stock import does
        sold = read(_count, "sold")
        on_hand = read(_count, "on_hand", required=False)
        read.done()
        assert sku is not None and warehouse is not None and sold is not None and day is not None
        _unique(seen, _key(sku, warehouse, raw_day), line, f"day {day} for {sku} in {warehouse}")
        return sku, warehouse, day, sold, on_hand

    return parse


_PARSERS: dict[str, Callable[[_Context], Parser]] = {
    "catalog": _catalog_parser, "stock": _stock_parser, "customers": _customer_parser,
    "orders": _order_parser, "history": _history_parser,
}


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


_NEW_PRODUCT = {
    "brand": None, "supplier": None, "attributes": {}, "reorder_point": 0, "safety_stock": 0,
    "lead_time_days": 7, "on_hand_total": 0, "reserved_total": 0,
}


async def _write_catalog(session: AsyncSession, records: list[dict[str, Any]], report: ImportReport, _: str) -> None:
    existing: dict[str, tuple[int, int, int]] = {}
    given = sorted({name for record in records for name in record})
    current: dict[str, dict[str, Any]] = {}
    rows = await session.execute(
        select(Product.id, Product.reorder_point, Product.available, *(getattr(Product, name) for name in given))
        .where(Product.sku.in_([record["sku"] for record in records]))
    )
    for pid, rp, avail, *values in rows:
        card = dict(zip(given, values, strict=True))
        existing[card["sku"]] = (pid, rp, avail)
        current[card["sku"]] = card
    now = utcnow()
    version = await stamp_catalog_change(session)
    inserts, updates, events = [], [], []
    for record in records:
        found = existing.get(record["sku"])
        if found is None:
            inserts.append({**_NEW_PRODUCT, "created_at": now, "updated_at": now, "catalog_version": version,
                            **record})
            continue
        if all(current[record["sku"]][name] == value for name, value in record.items()):
            report.unchanged += 1
            continue
        product_id, old_point, available = found
        updates.append({"id": product_id, "updated_at": now, "catalog_version": version, **record})
        new_point = record.get("reorder_point", old_point)
        events += [event_row(product_id, kind, available, available, new_point)
                   for kind in threshold_moved(available, old_point, new_point)]
    if inserts:
        await session.execute(Product.__table__.insert(), inserts)
    if updates:
        await session.execute(update(Product), updates)
    await record_events(session, events)
    report.created += len(inserts)
    report.updated += len(updates)


async def _write_stock(session: AsyncSession, records: list[tuple[str, str, int]], report: ImportReport, actor: str) -> None:
    known = {(sku, code) for sku, code in await session.execute(
        select(Product.sku, Warehouse.code)
        .join(StockLevel, StockLevel.product_id == Product.id)
        .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
        .where(Product.sku.in_({sku for sku, _, _ in records}))
    )}
    results = await apply_changes(
        session, [StockChange(sku, warehouse, on_hand=qty, reason="import", actor=actor) for sku, warehouse, qty in records]
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
    counts = await upsert_customers(session, records)
    report.created += counts.created
    report.updated += counts.updated


async def _write_orders(session: AsyncSession, records: list[OrderInput], report: ImportReport, _: str) -> None:
    counts = await upsert_orders(session, records)
    report.created += counts.created
    report.updated += counts.updated


async def _write_history(
    session: AsyncSession, records: list[tuple[str, str, date, int, int | None]], report: ImportReport, _: str
) -> None:
    products = await ids_by_key(session, Product.sku, Product.id, {record[0] for record in records})
    # Warehouses are created as a stock import creates them: a history before its stock is good.
    warehouses = await warehouse_ids(session, {record[1] for record in records}, create=True)
    rows = [
        {"product_id": products[sku], "warehouse_id": warehouses[warehouse], "day": day, "sold": sold,
         "on_hand": on_hand, "source": "import"}
        for sku, warehouse, day, sold, on_hand in records
    ]
    before = {
        (product_id, warehouse_id, day): (sold, on_hand)
        for product_id, warehouse_id, day, sold, on_hand in await session.execute(
            select(SalesDay.product_id, SalesDay.warehouse_id, SalesDay.day, SalesDay.sold, SalesDay.on_hand).where(
                SalesDay.product_id.in_(set(products.values())),
                SalesDay.day.between(min(row["day"] for row in rows), max(row["day"] for row in rows)),
            )
        )
    }
    for row in rows:
        old = before.get((row["product_id"], row["warehouse_id"], row["day"]))
        if old is None:
            report.created += 1
        elif old == (row["sold"], row["on_hand"]):
            report.unchanged += 1
        else:
            report.updated += 1
    statement = dialect_insert(session, SalesDay.__table__)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["product_id", "warehouse_id", "day"],
            set_={"sold": statement.excluded.sold, "on_hand": statement.excluded.on_hand, "source": "import"},
        ),
        rows,
    )
    report.product_ids.update(products.values())
    await history_changed(session, products.values())  # the running bot, any process, forecasts them again


_WRITERS = {
    "catalog": _write_catalog, "stock": _write_stock, "customers": _write_customers,
    "orders": _write_orders, "history": _write_history,
}


# --- the two passes ------------------------------------------------------------------------------


async def _check(
    db: Database, kind: str, binary: BinaryIO, found: _Format, ctx: _Context, report: ImportReport, spool: BinaryIO,
    progress: Progress,
) -> None:
    """Parse and check every row; good rows go to `spool`, a chunk per pickle, for the write pass."""
    parse = _PARSERS[kind](ctx)
    batch: list[tuple[int, Any]] = []
    for row in _rows(binary, kind, found, report):
        report.rows += 1
        try:
            batch.append((row.line, parse(row.values, row.line)))
        except RowError as exc:
            report.problems.append(Problem(row.line, str(exc)))
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


def _records(kind: str, spool: BinaryIO, ctx: _Context) -> Iterator[Any]:
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
    found = _detect(binary)
    report.encoding = found.label
    ctx = _Context(phone_region=phone_region, today=datetime.now(zone).date(), decimal_comma=found.delimiter == ";")
    with tempfile.TemporaryFile() as spool:
        await _check(db, kind, binary, found, ctx, report, spool, progress)
        report.problems.sort(key=lambda problem: problem.line)
        if report.problems or dry_run:
            return report
        write = _WRITERS[kind]
        # One import is one batch, whatever its chunks: the running bot weighs its customer
        # messages against MASS_CONTACT_LIMIT once it is closed, and sweeps low stock after it.
        contact_batch = await open_batch(db, f"import {kind} {label}", from_import=True)
        written = 0
        try:
            async for batch in _chunks(_records(kind, spool, ctx), kind):
                started = clock.monotonic()
                async with db.transaction() as session:
                    write_in_batch(session, contact_batch)
                    await write(session, batch, report, actor)
                written += sum(len(order.lines) for order in batch) if kind == "orders" else len(batch)
                progress("written", written)
                if db.is_sqlite:
                    # Let the running bot's writers take the lock between chunks (see the docstring).
                    await asyncio.sleep(min(SQLITE_GAP_S, clock.monotonic() - started))
        finally:
            await asyncio.shield(close_batch(db, contact_batch))
    return report
