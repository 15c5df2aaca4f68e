"""A CSV row as a record of its kind: the columns each kind reads, field readers that say what is
wrong with a cell, and a parser per kind (it keeps the keys it has seen, to refuse duplicates).

A parser raises RowError with every reason its row is bad; a row with a bad phone and a bad tier
reports both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.models import CustomerTier, OrderStatus
from bot.shop.customers import (
    EMAIL_LIMIT,
    EMAIL_SHAPE,
    NAME_LIMIT,
    CustomerInput,
    zone_name,
)
from bot.shop.orders import LineInput
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
          "external_id": 128, "customer_external_id": 128, "email": EMAIL_LIMIT}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RowError(ValueError):
    pass


class _Fields:
    """Reads a row's fields one by one, keeping the reason of each bad one, so that a row with a
    bad phone and a bad tier reports both; `done()` raises them together."""

    __slots__ = ("reasons", "values")

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


@dataclass(slots=True)
class ParseContext:
    """What parsing a row needs beyond the row: options, and what the database holds."""

    phone_region: str = ""
    today: date = date.min  # in the shop's zone; history must not be later
    decimal_comma: bool = False
    last_line: dict[str, int] = field(default_factory=dict)  # orders: external id -> its last row


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


# --- per kind: a parser per pass (it keeps the keys seen) ---------------------------------------

Parser = Callable[[dict[str, str], int], Any]


def _catalog_parser(ctx: ParseContext) -> Parser:
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


def _stock_parser(ctx: ParseContext) -> Parser:
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


def _customer_parser(ctx: ParseContext) -> Parser:
    seen: dict[str, int] = {}
    phones: dict[str, int] = {}

    def parse(values: dict[str, str], line: int) -> CustomerInput:
        read = _Fields(values)
        external_id = read(_text, "external_id")
        name = read(_text, "name", limit=NAME_LIMIT)
        tier = read(_choice, "tier", tuple(CustomerTier))
        phone = None
        if values.get("phone"):
            try:
                phone = to_e164(values["phone"], ctx.phone_region)
            except BadPhone as exc:
                read.bad(f"phone {exc}")
        email = read(_text, "email", required=False)
        if email and not EMAIL_SHAPE.match(email):
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


def _order_parser(ctx: ParseContext) -> Parser:
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


def _history_parser(ctx: ParseContext) -> Parser:
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


PARSERS: dict[str, Callable[[ParseContext], Parser]] = {
    "catalog": _catalog_parser, "stock": _stock_parser, "customers": _customer_parser,
    "orders": _order_parser, "history": _history_parser,
}

