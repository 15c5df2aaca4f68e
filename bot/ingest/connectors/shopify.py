"""Shopify webhook payloads (Admin API 2024-07 REST webhook bodies) as Stockbot's writes.

- `products/create|update`: each variant with a SKU is a product card (title, price, type as
  category, vendor as brand), and its `inventory_item_id` is remembered as that SKU: stock
  levels name only the inventory item.
- `inventory_levels/update`: `available` at `location_id` is a count at the mapped warehouse
  (SHOPIFY_LOCATIONS; an unmapped location is `SHOPIFY-<id>`).
- `orders/create|updated|cancelled`: the order's lines by SKU with their state, and its customer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import dialect_insert
from bot.ingest.connectors import store
from bot.ingest.connectors.store import BadPayload, Outcome, StoreCustomer, StoreOrder
from bot.models import OrderStatus, ShopifyInventoryItem, utcnow

log = logging.getLogger("bot.ingest.shopify")

SOURCE = "shopify"
DEFAULT_VARIANT = "Default Title"  # Shopify's title of the only variant of a product without options


@dataclass(frozen=True, slots=True)
class ShopifyOptions:
    locations: Mapping[int, str] = field(default_factory=dict)  # SHOPIFY_LOCATIONS
    phone_region: str = ""

    def warehouse(self, location_id: int) -> str:
        return self.locations.get(location_id) or f"SHOPIFY-{location_id}"


Topic = Callable[[AsyncSession, dict[str, Any], ShopifyOptions, str], Awaitable[Outcome]]


async def _product(session: AsyncSession, payload: dict[str, Any], options: ShopifyOptions, topic: str) -> Outcome:
    title = store.text(payload.get("title"))
    variants = store.items(payload.get("variants"), "variants")
    records, item_skus = [], {}
    for index, variant in enumerate(variants):
        sku = store.clean_sku(variant.get("sku"))
        if sku is None:
            continue
        variant_title = store.text(variant.get("title"))
        name = title if not variant_title or variant_title == DEFAULT_VARIANT or len(variants) == 1 \
            else f"{title} - {variant_title}"
        price = store.price_cents(variant.get("price"), f"variants[{index}].price")
        records.append(store.product_record(
            sku, name, price, store.text(payload.get("product_type")), store.text(payload.get("vendor"))))
        item = store.whole(variant.get("inventory_item_id"), f"variants[{index}].inventory_item_id", required=False)
        if item is not None:
            item_skus[item] = sku
    if not records:
        log.info("shopify %s: product %s has no variant with a SKU; nothing to record", topic, payload.get("id"))
        return "ignored: no variant has a SKU"
    written = await store.write_products(session, records)
    await _remember_items(session, item_skus)
    return f"applied: {written} product(s)"


async def _remember_items(session: AsyncSession, item_skus: dict[int, str]) -> None:
    if not item_skus:
        return
    statement = dialect_insert(session, ShopifyInventoryItem.__table__)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["inventory_item_id"],
            set_={"sku": statement.excluded.sku, "updated_at": statement.excluded.updated_at},
        ),
        [{"inventory_item_id": item, "sku": sku, "updated_at": utcnow()} for item, sku in item_skus.items()],
    )


async def _level(session: AsyncSession, payload: dict[str, Any], options: ShopifyOptions, topic: str) -> Outcome:
    item = store.whole(payload.get("inventory_item_id"), "inventory_item_id")
    location = store.whole(payload.get("location_id"), "location_id")
    available = store.whole(payload.get("available"), "available", required=False)
    if available is None:  # an item Shopify does not track stock for
        return "ignored: not tracked"
    sku = await session.scalar(select(ShopifyInventoryItem.sku).where(ShopifyInventoryItem.inventory_item_id == item))
    if sku is None:
        log.warning("shopify %s: inventory item %s is not known yet (no products/create|update named it); "
                    "the level is skipped", topic, item)
        return "ignored: unknown inventory item"
    assert location is not None
    applied = await store.write_counts(session, [(sku, options.warehouse(location), available)], actor=SOURCE)
    return "applied" if applied else "ignored: unknown SKU"


async def _order(session: AsyncSession, payload: dict[str, Any], options: ShopifyOptions, topic: str) -> Outcome:
    order_id = store.whole(payload.get("id"), "id")
    cancelled = topic == "orders/cancelled" or bool(payload.get("cancelled_at"))
    whole_fulfilled = payload.get("fulfillment_status") == "fulfilled"

    def status_of(item: dict[str, Any]) -> OrderStatus:
        if cancelled:
            return OrderStatus.CANCELLED
        if whole_fulfilled or item.get("fulfillment_status") == "fulfilled":
            return OrderStatus.FULFILLED
        return OrderStatus.OPEN

    order = StoreOrder(store.external_id(SOURCE.upper(), order_id), _customer(payload, order_id),
                       store.order_lines(payload, status_of))
    return await store.write_order(session, order, phone_region=options.phone_region, actor=SOURCE)


def _customer(payload: dict[str, Any], order_id: int | None) -> StoreCustomer:
    """The order's customer; a guest checkout (no customer) is a customer of its own order."""
    given = payload.get("customer")
    customer = store.fields(given, "customer") if given is not None else {}
    billing = store.fields(payload.get("billing_address") or {}, "billing_address")
    customer_id = store.whole(customer.get("id"), "customer.id", required=False)
    key = (store.external_id("SHOPIFY", customer_id) if customer_id is not None
           else store.external_id("SHOPIFY-guest", order_id))
    name = store.full_name(customer or billing)
    email = store.text(customer.get("email")) or store.text(payload.get("email"))
    phone = store.text(customer.get("phone")) or store.text(payload.get("phone")) or store.text(billing.get("phone"))
    locale = store.text(payload.get("customer_locale")) or store.text(customer.get("locale"))
    return StoreCustomer(
        external_id=key, name=name or email or key, phone=phone or None, email=email or None, locale=locale or None,
    )


TOPICS: dict[str, Topic] = {
    "products/create": _product,
    "products/update": _product,
    "inventory_levels/update": _level,
    "orders/create": _order,
    "orders/updated": _order,
    "orders/cancelled": _order,
}


async def apply_delivery(session: AsyncSession, topic: str, payload: Any, options: ShopifyOptions) -> Outcome:
    """Apply one delivery of a topic in TOPICS in the caller's transaction; BadPayload when it is
    not shaped as Shopify documents it (the caller rolls back)."""
    return await TOPICS[topic](session, store.fields(payload, "the body"), options, topic)


__all__ = ["SOURCE", "TOPICS", "BadPayload", "ShopifyOptions", "apply_delivery"]
