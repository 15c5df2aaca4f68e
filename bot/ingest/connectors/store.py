"""What an online store tells Stockbot (product cards, counts, orders with their customer),
written through the services every other source uses.

A store knows products Stockbot may not (a variant without a SKU, a product created before the
connector was set up): whatever names an unknown SKU is skipped and logged, never refused, so one
such line cannot make the store retry, and give up on, a whole delivery.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import ids_by_key
from bot.inventory.products import upsert_products
from bot.inventory.stock import Applied, StockChange, apply_changes
from bot.models import Customer, CustomerTier, OrderStatus, Product
from bot.shop.customers import EMAIL_LIMIT, EMAIL_SHAPE, CustomerInput, upsert_customers
from bot.shop.customers import NAME_LIMIT as CUSTOMER_NAME_LIMIT
from bot.shop.orders import LineInput, OrderInput, upsert_orders
from bot.shop.phones import BadPhone, to_e164

log = logging.getLogger("bot.ingest")

SKU_LIMIT = 64  # products.sku
NAME_LIMIT = 512  # products.name
CATEGORY_LIMIT = 128
EXTERNAL_ID_LIMIT = 128
UNCATEGORIZED = "uncategorized"  # a new product's category when the store names none


Outcome = str  # what a delivery did, for the answer and the log: "applied", "ignored: ..."


class BadPayload(ValueError):
    """The delivery is signed but not shaped as the platform's documented payload."""


def fields(value: Any, what: str) -> dict[str, Any]:
    """`value` as a JSON object, else BadPayload naming `what`."""
    if not isinstance(value, dict):
        raise BadPayload(f"{what} is not a JSON object")
    return value


def items(value: Any, what: str) -> list[dict[str, Any]]:
    """`value` as a list of JSON objects (None: an empty one), else BadPayload naming `what`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadPayload(f"{what} is not a list")
    return [fields(item, f"{what}[{index}]") for index, item in enumerate(value)]


def whole(value: Any, what: str, *, required: bool = True) -> int | None:
    """A whole number (JSON integers; stores send some as strings), else BadPayload."""
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadPayload(f"{what} is not a whole number")
    text = str(value).strip()
    if not re.fullmatch(r"-?\d{1,19}", text):
        raise BadPayload(f"{what}: {text[:32]!r} is not a whole number")
    return int(text)


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class StoreCustomer:
    external_id: str
    name: str
    phone: str | None = None  # as the store holds it
    email: str | None = None
    locale: str | None = None  # the store's language tag, such as zh-CN


@dataclass(frozen=True, slots=True)
class StoreOrder:
    external_id: str
    customer: StoreCustomer
    lines: tuple[LineInput, ...]  # one per line item; a SKU may come twice


def order_lines(payload: dict[str, Any], status_of: Callable[[dict[str, Any]], OrderStatus]) -> tuple[LineInput, ...]:
    """The order's `line_items` as lines, each in the state `status_of` gives its item; a custom
    item (no SKU) or a line edited away (no quantity) is left out."""
    lines = []
    for index, item in enumerate(items(payload.get("line_items"), "line_items")):
        sku = clean_sku(item.get("sku"))
        qty = whole(item.get("quantity"), f"line_items[{index}].quantity")
        if sku is not None and qty is not None and qty > 0:
            lines.append(LineInput(sku, qty, status_of(item).value))
    return tuple(lines)


def full_name(person: dict[str, Any]) -> str:
    """`first_name last_name` as the store holds them, either of them missing."""
    return " ".join(part for part in (text(person.get("first_name")), text(person.get("last_name"))) if part)


def price_cents(value: Any, what: str) -> int | None:
    """A store's price (a decimal string such as "19.99") in cents; None when it gives none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadPayload(f"{what}: {str(value)[:32]!r} is not a price") from None
    if not price.is_finite() or price < 0:
        raise BadPayload(f"{what}: {str(value)[:32]!r} is not a price")
    return int((price * 100).to_integral_value())


def clean_sku(value: Any) -> str | None:
    """The SKU as Stockbot keys it, or None when the store has none (or one too long to store)."""
    if not isinstance(value, str) or not value.strip():
        return None
    sku = value.strip()
    if len(sku) > SKU_LIMIT:
        log.warning("a store SKU longer than %d characters was skipped: %r...", SKU_LIMIT, sku[:SKU_LIMIT])
        return None
    return sku


def product_record(sku: str, name: str, price: int | None, category: str | None, brand: str | None) -> dict[str, Any]:
    """A catalog record that names only what the store said: an existing product keeps the rest."""
    record: dict[str, Any] = {"sku": sku, "name": (name.strip() or sku)[:NAME_LIMIT]}
    if price is not None:
        record["price_cents"] = price
    if category and category.strip():
        record["category"] = category.strip()[:CATEGORY_LIMIT]
    if brand and brand.strip():
        record["brand"] = brand.strip()[:CATEGORY_LIMIT]
    return record


async def write_products(session: AsyncSession, records: Sequence[dict[str, Any]]) -> int:
    """Upsert the cards (the last one wins for a SKU given twice); how many were written."""
    unique = list({record["sku"]: record for record in records}.values())
    counts = await upsert_products(session, unique, new_defaults={"category": UNCATEGORIZED, "price_cents": 0})
    return counts.created + counts.updated


async def write_counts(
    session: AsyncSession, counts: Sequence[tuple[str, str, int]], *, actor: str
) -> list[Applied]:
    """Counts (`sku, warehouse, on_hand`) through the stock service, one batch; a negative level
    (a store that oversold) counts as zero; unknown SKUs are skipped and logged."""
    known = await ids_by_key(session, Product.sku, Product.id, {sku for sku, _, _ in counts})
    unknown = sorted({sku for sku, _, _ in counts if sku not in known})
    if unknown:
        log.warning("%s: stock for %d SKU(s) not in the catalog skipped: %s", actor, len(unknown), _some(unknown))
    changes = [
        StockChange(sku, warehouse, on_hand=max(on_hand, 0), reason=actor, actor=actor)
        for sku, warehouse, on_hand in counts if sku in known
    ]
    return await apply_changes(session, changes)


async def write_order(session: AsyncSession, order: StoreOrder, *, phone_region: str, actor: str) -> Outcome:
    """Upsert the order and its customer; "ignored" (and logged) when none of its lines is a
    known product. A line whose SKU Stockbot does not know is left out."""
    merged: dict[str, LineInput] = {}
    for line in order.lines:
        first = merged.get(line.sku)
        merged[line.sku] = line if first is None else LineInput(line.sku, first.qty + line.qty, first.status)
    known = await ids_by_key(session, Product.sku, Product.id, merged)
    unknown = sorted(merged.keys() - known.keys())
    if unknown:
        log.warning("%s: order %s: lines for %d SKU(s) not in the catalog skipped: %s",
                    actor, order.external_id, len(unknown), _some(unknown))
    lines = tuple(line for sku, line in merged.items() if sku in known)
    if not lines:
        log.warning("%s: order %s has no line Stockbot knows; not recorded", actor, order.external_id)
        return "ignored: no known SKU"
    await upsert_customers(session, [await _customer_input(session, order.customer, phone_region)])
    await upsert_orders(session, [OrderInput(order.external_id, order.customer.external_id, lines)])
    return "applied"


async def _customer_input(session: AsyncSession, given: StoreCustomer, phone_region: str) -> CustomerInput:
    """The store's customer as a record: a tier, phone or email Stockbot already holds (set by an
    admin's import) is kept where the store has none to give."""
    row = (await session.execute(
        select(Customer.tier, Customer.phone, Customer.email).where(Customer.external_id == given.external_id)
    )).one_or_none()
    tier, phone, email = row if row is not None else (CustomerTier.REGULAR.value, None, None)
    if given.phone:
        try:
            phone = to_e164(given.phone, phone_region)
        except BadPhone:
            log.info("customer %s: the store's phone number is not one; kept %s", given.external_id,
                     "the one on record" if phone else "none")
    if given.email and EMAIL_SHAPE.match(given.email.strip()) and len(given.email.strip()) <= EMAIL_LIMIT:
        email = given.email.strip()
    return CustomerInput(
        external_id=given.external_id, name=(given.name.strip() or given.external_id)[:CUSTOMER_NAME_LIMIT],
        tier=tier, phone=phone, email=email, locale=_locale(given.locale),
    )


def _locale(tag: str | None) -> str | None:
    """Stockbot's language for a store's language tag (zh-CN, en-US, ...); None for any other."""
    if not tag:
        return None
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in ("en", "zh") else None


def external_id(prefix: str, value: Any) -> str:
    return f"{prefix}-{value}"[:EXTERNAL_ID_LIMIT]


def _some(keys: Sequence[str], shown: int = 10) -> str:
    head = ", ".join(repr(key) for key in keys[:shown])
    return head + (f" and {len(keys) - shown} more" if len(keys) > shown else "")

