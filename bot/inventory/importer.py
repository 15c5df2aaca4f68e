"""CSV import of catalog, stock, customers and orders (CLI and chat share it).

The whole file is checked before anything is written; any bad row means nothing is written and
every bad row is reported as `FILE:LINE: reason`. Writes go through the same services as
everything else (stock through the inventory service, so imports make crossings too).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, ids_by_key
from bot.inventory.catalog import stamp_catalog_change
from bot.inventory.stock import StockChange, apply_changes, event_row, record_events
from bot.models import Customer, OrderStatus, Product, StockEventKind, utcnow
from bot.shop.customers import CustomerInput, upsert_customers
from bot.shop.orders import LineInput, OrderInput, upsert_orders
from bot.shop.phones import BadPhone, to_e164

KINDS = ("catalog", "stock", "customers", "orders")
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # required, optional
    "catalog": (
        ("sku", "name", "category", "price"),
        ("brand", "reorder_point", "safety_stock", "lead_time_days", "supplier", "attributes"),
    ),
    "stock": (("sku", "warehouse", "on_hand"), ()),
    "customers": (("external_id", "name", "tier"), ("phone", "email", "locale")),
    "orders": (("external_id", "customer_external_id", "sku", "qty", "status"), ()),
}
LIMITS = {"sku": 64, "name": 512, "category": 128, "brand": 128, "supplier": 256, "warehouse": 64,
          "external_id": 128, "customer_external_id": 128, "email": 256}
CUSTOMER_NAME_LIMIT = 256
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RowError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    kind: str
    label: str
    dry_run: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def error_lines(self) -> list[str]:
        return [f"{self.label}:{p.line}: {p.reason}" for p in self.problems]


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    values: dict[str, str]


# --- reading -------------------------------------------------------------------------------------


def _read_rows(data: bytes, kind: str, report: ImportReport) -> list[_Row]:
    try:
        text = data.decode("utf-8-sig")  # spreadsheets write a BOM; it is not part of the header
    except UnicodeDecodeError as exc:
        report.problems.append(Problem(data[: exc.start].count(b"\n") + 1, "not UTF-8 text"))
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        report.problems.append(Problem(1, "the file is empty; expected a header row"))
        return []
    required, optional = COLUMNS[kind]
    missing = [name for name in required if name not in header]
    unknown = [name for name in header if name not in required + optional]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if missing or unknown or duplicated:
        parts = []
        if missing:
            parts.append("missing column " + ", ".join(missing))
        if unknown:
            parts.append("unknown column " + ", ".join(repr(name) for name in unknown))
        if duplicated:
            parts.append("repeated column " + ", ".join(duplicated))
        report.problems.append(Problem(1, "; ".join(parts)))
        return []
    rows = []
    line = reader.line_num
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):
                report.problems.append(Problem(start, f"{len(cells)} values for {len(header)} columns"))
                continue
            values = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
            rows.append(_Row(start, values))
    except csv.Error as exc:
        report.problems.append(Problem(reader.line_num, f"unreadable CSV: {exc}"))
    return rows


# --- field parsers (raise RowError with the reason) ---------------------------------------------


def _text(values: dict[str, str], name: str, *, required: bool = True, limit: int | None = None) -> str | None:
    value = values.get(name, "")
    if not value:
        if required:
            raise RowError(f"{name} is required")
        return None
    if any(ord(ch) < 32 for ch in value):
        raise RowError(f"{name} contains control characters")
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


def _price_cents(values: dict[str, str]) -> int:
    raw = _text(values, "price")
    assert raw is not None
    try:
        price = Decimal(raw)
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


def _unique(seen: dict[Any, int], key: Any, line: int, what: str) -> None:
    if key in seen:
        raise RowError(f"duplicate {what} (first on line {seen[key]})")
    seen[key] = line


# --- per kind: parse every row, then check references, then write ---------------------------------


def _parse_all(rows: list[_Row], parse: Callable[[dict[str, str], int], Any], report: ImportReport) -> list[tuple[int, Any]]:
    records = []
    for row in rows:
        try:
            records.append((row.line, parse(row.values, row.line)))
        except RowError as exc:
            report.problems.append(Problem(row.line, str(exc)))
    return records


def _catalog_parser(values: dict[str, str]) -> Callable[[dict[str, str], int], dict[str, Any]]:
    seen: dict[str, int] = {}

    def parse(values: dict[str, str], line: int) -> dict[str, Any]:
        sku = _text(values, "sku")
        record = {
            "sku": sku,
            "name": _text(values, "name"),
            "category": _text(values, "category"),
            "price_cents": _price_cents(values),
        }
        for name in ("brand", "supplier"):
            if name in values:
                record[name] = _text(values, name, required=False)
        for name in ("reorder_point", "safety_stock", "lead_time_days"):
            number = _count(values, name, required=False)
            if number is not None:
                record[name] = number
        if values.get("attributes"):
            record["attributes"] = _attributes(values["attributes"])
        _unique(seen, sku, line, f"SKU {sku}")
        return record

    return parse


_NEW_PRODUCT = {
    "brand": None, "supplier": None, "attributes": {}, "reorder_point": 0, "safety_stock": 0,
    "lead_time_days": 7, "on_hand_total": 0, "reserved_total": 0,
}


async def _write_catalog(session: AsyncSession, records: list[dict[str, Any]], report: ImportReport) -> None:
    existing: dict[str, tuple[int, int, int]] = {}
    skus = [record["sku"] for record in records]
    for start in range(0, len(skus), 2000):
        rows = await session.execute(
            select(Product.sku, Product.id, Product.reorder_point, Product.available)
            .where(Product.sku.in_(skus[start : start + 2000]))
        )
        existing.update({sku: (pid, rp, avail) for sku, pid, rp, avail in rows})
    now = utcnow()
    version = await stamp_catalog_change(session)
    inserts, updates, events = [], [], []
    for record in records:
        found = existing.get(record["sku"])
        if found is None:
            inserts.append({**_NEW_PRODUCT, "created_at": now, "updated_at": now, "catalog_version": version, **record})
            continue
        product_id, old_point, available = found
        updates.append({"id": product_id, "updated_at": now, "catalog_version": version, **record})
        new_point = record.get("reorder_point", old_point)
        # Moving the threshold past the current stock is a crossing too.
        if old_point < available <= new_point:
            events.append((product_id, StockEventKind.LOW_STOCK, available, new_point))
        elif new_point < available <= old_point:
            events.append((product_id, StockEventKind.RECOVERED, available, new_point))
    if inserts:
        await session.execute(Product.__table__.insert(), inserts)
    if updates:
        await session.execute(update(Product), updates)
    await record_events(session, [
        event_row(product_id, kind, available, available, point) for product_id, kind, available, point in events
    ])
    report.created, report.updated = len(inserts), len(updates)


def _stock_parser(_: Any) -> Callable[[dict[str, str], int], StockChange]:
    seen: dict[tuple[str, str], int] = {}

    def parse(values: dict[str, str], line: int) -> tuple[str, str, int]:
        sku = _text(values, "sku")
        warehouse = values.get("warehouse", "")
        if not warehouse:
            raise RowError("warehouse is required")
        warehouse = _text(values, "warehouse")
        on_hand = _count(values, "on_hand")
        _unique(seen, (sku, warehouse), line, f"stock row for {sku} in {warehouse}")
        return sku, warehouse, on_hand

    return parse


def _customer_parser(region: str) -> Callable[[dict[str, str], int], CustomerInput]:
    seen: dict[str, int] = {}
    phones: dict[str, int] = {}

    def parse(values: dict[str, str], line: int) -> CustomerInput:
        external_id = _text(values, "external_id")
        phone = None
        if values.get("phone"):
            try:
                phone = to_e164(values["phone"], region)
            except BadPhone as exc:
                raise RowError(f"phone {exc}") from None
        email = _text(values, "email", required=False)
        if email and not _EMAIL.match(email):
            raise RowError(f"email {email!r} is not an address")
        record = CustomerInput(
            external_id=external_id,
            name=_text(values, "name", limit=CUSTOMER_NAME_LIMIT),
            tier=_choice(values, "tier", ("regular", "vip")),
            phone=phone,
            email=email,
            locale=_choice(values, "locale", ("en", "zh"), required=False),
        )
        _unique(seen, external_id, line, f"customer {external_id}")
        if phone:
            _unique(phones, phone, line, f"phone {phone}")
        return record

    return parse


def _order_parser(_: Any) -> Callable[[dict[str, str], int], tuple[str, str, LineInput]]:
    seen: dict[tuple[str, str], int] = {}
    owners: dict[str, tuple[str, int]] = {}
    statuses = tuple(status.value for status in OrderStatus)

    def parse(values: dict[str, str], line: int) -> tuple[str, str, LineInput]:
        external_id = _text(values, "external_id")
        customer = _text(values, "customer_external_id")
        sku = _text(values, "sku")
        qty = _count(values, "qty", minimum=1)
        status = _choice(values, "status", statuses)
        owner = owners.setdefault(external_id, (customer, line))
        if owner[0] != customer:
            raise RowError(f"order {external_id} belongs to {owner[0]} on line {owner[1]}, not {customer}")
        _unique(seen, (external_id, sku), line, f"line for {sku} in order {external_id}")
        return external_id, customer, LineInput(sku, qty, status)

    return parse


async def _missing(session: AsyncSession, key_column, id_column, keys: set[str]) -> set[str]:  # type: ignore[no-untyped-def]
    return keys - (await ids_by_key(session, key_column, id_column, keys, chunk=2000)).keys()


async def _check_references(session: AsyncSession, kind: str, records: list[tuple[int, Any]], report: ImportReport) -> None:
    if kind == "stock":
        unknown = await _missing(session, Product.sku, Product.id, {sku for _, (sku, _, _) in records})
        report.problems += [Problem(line, f"unknown SKU {sku!r}") for line, (sku, _, _) in records if sku in unknown]
    elif kind == "orders":
        skus = await _missing(session, Product.sku, Product.id, {line_input.sku for _, (_, _, line_input) in records})
        people = await _missing(session, Customer.external_id, Customer.id, {customer for _, (_, customer, _) in records})
        for line, (_, customer, line_input) in records:
            if customer in people:
                report.problems.append(Problem(line, f"unknown customer {customer!r}"))
            elif line_input.sku in skus:
                report.problems.append(Problem(line, f"unknown SKU {line_input.sku!r}"))


async def _write(session: AsyncSession, kind: str, records: list[Any], report: ImportReport, actor: str) -> None:
    if kind == "catalog":
        await _write_catalog(session, records, report)
    elif kind == "stock":
        results = await apply_changes(
            session, [StockChange(sku, warehouse, on_hand=qty, reason="import", actor=actor) for sku, warehouse, qty in records]
        )
        report.updated = sum(1 for result in results if result.delta)
    elif kind == "customers":
        counts = await upsert_customers(session, records)
        report.created, report.updated = counts.created, counts.updated
    else:
        grouped: dict[str, tuple[str, list[LineInput]]] = {}
        for external_id, customer, line_input in records:
            grouped.setdefault(external_id, (customer, []))[1].append(line_input)
        counts = await upsert_orders(
            session, [OrderInput(eid, customer, tuple(lines)) for eid, (customer, lines) in grouped.items()]
        )
        report.created, report.updated = counts.created, counts.updated


_PARSERS = {"catalog": _catalog_parser, "stock": _stock_parser, "customers": _customer_parser, "orders": _order_parser}


async def import_csv(
    db: Database, kind: str, data: bytes, *, label: str, dry_run: bool = False,
    actor: str = "import", phone_region: str = "",
) -> ImportReport:
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}")
    report = ImportReport(kind=kind, label=label, dry_run=dry_run)
    rows = _read_rows(data, kind, report)
    report.rows = len(rows)
    records = _parse_all(rows, _PARSERS[kind](phone_region), report)
    async with db.read_session() as session:
        await _check_references(session, kind, records, report)
    report.problems.sort(key=lambda problem: problem.line)
    if report.problems or dry_run:
        return report
    async with db.transaction() as session:
        await _write(session, kind, [record for _, record in records], report, actor)
    return report
