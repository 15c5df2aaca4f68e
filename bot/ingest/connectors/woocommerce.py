"""WooCommerce webhook payloads (REST API v3 resource bodies, as WooCommerce 8.x/9.x delivers
them) as Stockbot's writes.

- `product.created|updated`: the product card (name, price, first category), and, when the store
  manages its stock (`manage_stock`), `stock_quantity` as a count at WOOCOMMERCE_WAREHOUSE.
- `order.created|updated`: the order's lines by SKU with the order's state, and its customer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.ingest.connectors import store
from bot.ingest.connectors.store import BadPayload, Outcome, StoreCustomer, StoreOrder
from bot.models import OrderStatus

log = logging.getLogger("bot.ingest.woocommerce")

SOURCE = "woocommerce"
PREFIX = "WOO"
# WooCommerce's order states: paid or waiting ones are open; the others end the order.
_STATUSES = {
    "pending": OrderStatus.OPEN, "processing": OrderStatus.OPEN, "on-hold": OrderStatus.OPEN,
    "completed": OrderStatus.FULFILLED,
    "cancelled": OrderStatus.CANCELLED, "refunded": OrderStatus.CANCELLED, "failed": OrderStatus.CANCELLED,
    "trash": OrderStatus.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class WooOptions:
    warehouse: str = "WOO"  # WOOCOMMERCE_WAREHOUSE
    phone_region: str = ""


Topic = Callable[[AsyncSession, dict[str, Any], WooOptions, str], Awaitable[Outcome]]


async def _product(session: AsyncSession, payload: dict[str, Any], options: WooOptions, topic: str) -> Outcome:
    sku = store.clean_sku(payload.get("sku"))
    if sku is None:
        log.info("woocommerce %s: product %s has no SKU; nothing to record", topic, payload.get("id"))
        return "ignored: no SKU"
    categories = store.items(payload.get("categories"), "categories")
    category = store.text(categories[0].get("name")) if categories else ""
    price = store.price_cents(payload.get("price"), "price")
    if price is None:
        price = store.price_cents(payload.get("regular_price"), "regular_price")
    await store.write_products(
        session, [store.product_record(sku, store.text(payload.get("name")), price, category, None)])
    if payload.get("manage_stock") is True:
        on_hand = store.whole(payload.get("stock_quantity"), "stock_quantity", required=False)
        if on_hand is not None:
            await store.write_counts(session, [(sku, options.warehouse, on_hand)], actor=SOURCE)
            return "applied: product and count"
    return "applied: product"


async def _order(session: AsyncSession, payload: dict[str, Any], options: WooOptions, topic: str) -> Outcome:
    order_id = store.whole(payload.get("id"), "id")
    state = store.text(payload.get("status"))
    status = _STATUSES.get(state)
    if status is None:  # checkout-draft (a cart, not an order yet), or a state a plugin added
        log.info("woocommerce %s: order %s in state %r is not an order Stockbot follows", topic, order_id, state[:32])
        return "ignored: status"
    order = StoreOrder(store.external_id(PREFIX, order_id), _customer(payload, order_id),
                       store.order_lines(payload, lambda _item: status))
    return await store.write_order(session, order, phone_region=options.phone_region, actor=SOURCE)


def _customer(payload: dict[str, Any], order_id: int | None) -> StoreCustomer:
    """The order's customer; a guest (customer_id 0) is a customer of its own order."""
    billing = store.fields(payload.get("billing") or {}, "billing")
    customer_id = store.whole(payload.get("customer_id"), "customer_id", required=False) or 0
    key = (store.external_id(PREFIX, customer_id) if customer_id > 0
           else store.external_id(f"{PREFIX}-guest", order_id))
    name = store.full_name(billing)
    email = store.text(billing.get("email"))
    return StoreCustomer(external_id=key, name=name or email or key, phone=store.text(billing.get("phone")) or None,
                         email=email or None)


TOPICS: dict[str, Topic] = {
    "product.created": _product,
    "product.updated": _product,
    "order.created": _order,
    "order.updated": _order,
}


async def apply_delivery(session: AsyncSession, topic: str, payload: Any, options: WooOptions) -> Outcome:
    """Apply one delivery of a topic in TOPICS in the caller's transaction; BadPayload when it is
    not shaped as WooCommerce documents it (the caller rolls back)."""
    return await TOPICS[topic](session, store.fields(payload, "the body"), options, topic)


__all__ = ["SOURCE", "TOPICS", "BadPayload", "WooOptions", "apply_delivery"]
