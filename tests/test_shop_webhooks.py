"""Shopify and WooCommerce deliveries over a real aiohttp server on the `db` fixture: signed ones
change the catalog, stock and orders as the same services would; anything else changes nothing.

Payloads are the vendors' published webhook examples, trimmed (tests/fixtures/, docs/connectors.md).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot.api.app import create_api_app
from bot.db import Database
from bot.ingest.connectors.deliveries import forget_old_deliveries
from bot.models import (
    Customer,
    Order,
    OrderLine,
    Product,
    StockEvent,
    StockEventKind,
    StockLevel,
    StockMovement,
    Warehouse,
    WebhookDelivery,
    utcnow,
)
from bot.settings import load_settings
from tests.factories import add_customer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHOPIFY_SECRET = "shpss_test_secret"
WOO_SECRET = "woo-test-secret"
SHOPIFY = "/api/v1/shopify/webhook"
WOO = "/api/v1/woocommerce/webhook"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _app(db: Database, database_url: str, **settings: Any):  # type: ignore[no-untyped-def]
    values: dict[str, Any] = {
        "_env_file": None, "DATABASE_URL": database_url, "QUIET_HOURS": "", "PHONE_REGION": "US",
        "SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET, "SHOPIFY_LOCATIONS": "24826418=WH-NY",
        "WOOCOMMERCE_WEBHOOK_SECRET": WOO_SECRET,
    }
    values.update(settings)
    return create_api_app(load_settings(**{k: v for k, v in values.items() if v is not None}), db)


@pytest.fixture
async def client(db: Database, database_url: str):  # type: ignore[no-untyped-def]
    async with TestClient(TestServer(_app(db, database_url))) as test_client:
        yield test_client


async def shopify(client: TestClient, topic: str, payload: Any, *, webhook_id: str | None = None,
                  secret: str | None = SHOPIFY_SECRET, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
               "X-Shopify-Shop-Domain": "example.myshopify.com", "X-Shopify-API-Version": "2024-07"}
    if webhook_id is not None:
        headers["X-Shopify-Webhook-Id"] = webhook_id
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = sign(secret, body)
    response = await client.post(SHOPIFY, data=body, headers=headers)
    return response.status, await response.json()


async def woo(client: TestClient, topic: str, payload: Any, *, delivery: str | None = None,
              secret: str | None = WOO_SECRET) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-WC-Webhook-Topic": topic,
               "X-WC-Webhook-Source": "https://example.com/", "X-WC-Webhook-ID": "12"}
    if delivery is not None:
        headers["X-WC-Webhook-Delivery-ID"] = delivery
    if secret is not None:
        headers["X-WC-Webhook-Signature"] = sign(secret, body)
    response = await client.post(WOO, data=body, headers=headers)
    return response.status, await response.json()


async def snapshot(db: Database) -> tuple[Any, ...]:
    """Everything a delivery could have written."""
    async with db.read_session() as session:
        products = (await session.execute(
            select(Product.sku, Product.name, Product.category, Product.brand, Product.price_cents,
                   Product.on_hand_total).order_by(Product.sku))).all()
        levels = (await session.execute(select(StockLevel.product_id, StockLevel.warehouse_id, StockLevel.on_hand)
                                        .order_by(StockLevel.id))).all()
        customers = (await session.execute(select(Customer.external_id, Customer.name, Customer.tier, Customer.phone,
                                                  Customer.email).order_by(Customer.id))).all()
        lines = (await session.execute(select(OrderLine.order_id, OrderLine.product_id, OrderLine.qty,
                                              OrderLine.status).order_by(OrderLine.id))).all()
        movements = await session.scalar(select(func.count()).select_from(StockMovement))
    return products, levels, customers, lines, movements


async def level(db: Database, sku: str, warehouse: str) -> int | None:
    async with db.read_session() as session:
        return await session.scalar(
            select(StockLevel.on_hand).join(Product, Product.id == StockLevel.product_id)
            .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
            .where(Product.sku == sku, Warehouse.code == warehouse))


async def order_lines(db: Database, external_id: str) -> dict[str, tuple[int, str]]:
    async with db.read_session() as session:
        rows = await session.execute(
            select(Product.sku, OrderLine.qty, OrderLine.status).join(Order, Order.id == OrderLine.order_id)
            .join(Product, Product.id == OrderLine.product_id).where(Order.external_id == external_id))
        return {sku: (qty, status) for sku, qty, status in rows}


async def customer(db: Database, external_id: str) -> Customer | None:
    async with db.read_session() as session:
        return await session.scalar(select(Customer).where(Customer.external_id == external_id))


def level_update(available: int | None, *, item: int = 271878346596884015, location: int = 24826418) -> dict[str, Any]:
    payload = fixture("shopify/inventory_levels_update.json")
    payload.update(inventory_item_id=item, location_id=location, available=available)
    return payload


# --- Shopify -------------------------------------------------------------------------------------


async def test_shopify_products_become_cards_and_levels_land_in_the_mapped_warehouse(client: TestClient, db: Database) -> None:
    status, answer = await shopify(client, "products/create", fixture("shopify/products_create.json"), webhook_id="w1")
    assert (status, answer["status"]) == (200, "applied")
    async with db.read_session() as session:
        cards = {p.sku: p for p in await session.scalars(select(Product))}
    assert cards["example-shirt-s"].name == "Example T-Shirt - Small"
    assert cards["example-shirt-m"].price_cents == 1999
    assert (cards["example-shirt-s"].category, cards["example-shirt-s"].brand) == ("Shirts", "Acme")

    assert (await shopify(client, "inventory_levels/update", level_update(6), webhook_id="w2"))[0] == 200
    assert await level(db, "example-shirt-s", "WH-NY") == 6
    # A location SHOPIFY_LOCATIONS does not name is a warehouse of its own.
    await shopify(client, "inventory_levels/update", level_update(4, item=271878346596884016, location=555),
                  webhook_id="w3")
    assert await level(db, "example-shirt-m", "SHOPIFY-555") == 4


async def test_a_shopify_level_falling_to_zero_is_a_stockout_and_an_oversold_level_is_zero(
    client: TestClient, db: Database
) -> None:
    await shopify(client, "products/create", fixture("shopify/products_create.json"), webhook_id="w1")
    await shopify(client, "inventory_levels/update", level_update(6), webhook_id="w2")
    await shopify(client, "inventory_levels/update", level_update(-2), webhook_id="w3")
    assert await level(db, "example-shirt-s", "WH-NY") == 0
    async with db.read_session() as session:
        kinds = set(await session.scalars(select(StockEvent.kind)))
        ledger = list(await session.scalars(select(StockMovement.actor)))
    assert StockEventKind.OUT_OF_STOCK.value in kinds
    assert set(ledger) == {"shopify"}


async def test_shopify_orders_record_the_customer_and_lines_and_a_cancellation_cancels_them(
    client: TestClient, db: Database
) -> None:
    await shopify(client, "products/create", fixture("shopify/products_create.json"), webhook_id="w1")
    order = fixture("shopify/orders_create.json")
    assert (await shopify(client, "orders/create", order, webhook_id="w2"))[0] == 200
    # The gift wrapping line has no SKU: left out, the rest of the order kept.
    assert await order_lines(db, "SHOPIFY-820982911946154508") == {"example-shirt-s": (1, "open")}
    buyer = await customer(db, "SHOPIFY-115310627314723954")
    assert buyer is not None
    assert (buyer.name, buyer.phone, buyer.email, buyer.locale) == ("John Smith", "+12125550123", "john@example.com", "en")

    cancelled = copy.deepcopy(order)
    cancelled["cancelled_at"] = "2024-07-02T09:00:00-04:00"
    assert (await shopify(client, "orders/cancelled", cancelled, webhook_id="w3"))[0] == 200
    assert await order_lines(db, "SHOPIFY-820982911946154508") == {"example-shirt-s": (1, "cancelled")}


async def test_a_store_order_keeps_the_tier_and_phone_an_admin_imported(client: TestClient, db: Database) -> None:
    async with db.transaction() as session:
        vip = await add_customer(session, "SHOPIFY-115310627314723954", tier="vip", name="John")
        vip.phone = "+8613800138000"
    await shopify(client, "products/create", fixture("shopify/products_create.json"), webhook_id="w1")
    order = fixture("shopify/orders_create.json")
    order["customer"]["phone"] = None
    order["billing_address"]["phone"] = None
    await shopify(client, "orders/create", order, webhook_id="w2")
    buyer = await customer(db, "SHOPIFY-115310627314723954")
    assert buyer is not None and (buyer.tier, buyer.phone) == ("vip", "+8613800138000")


@pytest.mark.parametrize("forgery", ["wrong key", "no signature", "body changed"])
async def test_a_forged_shopify_delivery_is_refused_and_changes_nothing(
    client: TestClient, db: Database, forgery: str
) -> None:
    before = await snapshot(db)
    body = json.dumps(fixture("shopify/products_create.json")).encode()
    headers = {"X-Shopify-Topic": "products/create", "X-Shopify-Webhook-Id": "w1",
               "X-Shopify-Hmac-Sha256": sign("guessed", body) if forgery == "wrong key" else sign(SHOPIFY_SECRET, body)}
    if forgery == "no signature":
        del headers["X-Shopify-Hmac-Sha256"]
    if forgery == "body changed":
        body = body.replace(b"19.99", b"0.01")
    response = await client.post(SHOPIFY, data=body, headers=headers)
    assert response.status == 401
    assert await snapshot(db) == before
    # Refused, it was not remembered either: Shopify's real delivery with that id is applied.
    assert (await shopify(client, "products/create", fixture("shopify/products_create.json"), webhook_id="w1"))[1][
        "status"] == "applied"


async def test_a_repeated_shopify_delivery_changes_nothing(client: TestClient, db: Database) -> None:
    await shopify(client, "products/create", fixture("shopify/products_create.json"), webhook_id="w1")
    await shopify(client, "inventory_levels/update", level_update(6), webhook_id="level-1")
    await shopify(client, "inventory_levels/update", level_update(3), webhook_id="level-2")
    before = await snapshot(db)
    # Shopify retries a delivery it thinks failed, with its first id and body, after newer ones.
    status, answer = await shopify(client, "inventory_levels/update", level_update(6), webhook_id="level-1")
    assert (status, answer["status"]) == (200, "duplicate")
    assert await snapshot(db) == before and await level(db, "example-shirt-s", "WH-NY") == 3


async def test_two_processes_handed_one_delivery_at_once_apply_it_once(client: TestClient, db: Database) -> None:
    await shopify(client, "products/create", fixture("shopify/products_create.json"), webhook_id="w1")
    answers = await asyncio.gather(*(shopify(client, "inventory_levels/update", level_update(6), webhook_id="same")
                                     for _ in range(4)))
    assert sorted(answer["status"] for _, answer in answers) == ["applied", "duplicate", "duplicate", "duplicate"]
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(StockMovement)) == 1


async def test_an_unknown_topic_answers_200_is_logged_and_changes_nothing(
    client: TestClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    before = await snapshot(db)
    with caplog.at_level(logging.INFO, logger="bot.api.webhooks"):
        status, answer = await shopify(client, "customers/data_request", {"shop_id": 954889}, webhook_id="w9")
    assert (status, answer["status"]) == (200, "ignored")
    assert any("customers/data_request" in record.getMessage() for record in caplog.records)
    assert await snapshot(db) == before


async def test_a_level_for_an_item_no_product_named_yet_changes_nothing(client: TestClient, db: Database) -> None:
    before = await snapshot(db)
    status, answer = await shopify(client, "inventory_levels/update", level_update(6), webhook_id="w1")
    assert (status, answer["status"]) == (200, "ignored")
    assert await snapshot(db) == before


@pytest.mark.parametrize(("raw", "expected"), [
    (b"{not json", 400),
    (b"[1, 2]", 422),
    (json.dumps({"id": 1, "title": "T", "variants": "many"}).encode(), 422),
    (json.dumps({"id": 1, "title": "T", "variants": [{"sku": "A", "price": "free"}]}).encode(), 422),
])
async def test_a_signed_but_malformed_delivery_gets_a_clear_answer_and_changes_nothing(
    client: TestClient, db: Database, raw: bytes, expected: int
) -> None:
    before = await snapshot(db)
    status, answer = await shopify(client, "products/update", None, raw=raw, webhook_id="bad")
    assert status == expected and answer["error"]
    assert await snapshot(db) == before


async def test_each_webhook_answers_503_while_its_secret_is_unset(db: Database, database_url: str) -> None:
    app = _app(db, database_url, SHOPIFY_WEBHOOK_SECRET=None, WOOCOMMERCE_WEBHOOK_SECRET=None)
    async with TestClient(TestServer(app)) as off:
        status, answer = await shopify(off, "products/create", fixture("shopify/products_create.json"))
        assert status == 503 and "SHOPIFY_WEBHOOK_SECRET" in answer["error"]
        status, answer = await woo(off, "product.created", fixture("woocommerce/product_created.json"))
        assert status == 503 and "WOOCOMMERCE_WEBHOOK_SECRET" in answer["error"]


# --- WooCommerce ---------------------------------------------------------------------------------


async def test_woocommerce_ping_on_webhook_creation_answers_200(client: TestClient, db: Database) -> None:
    before = await snapshot(db)
    response = await client.post(WOO, data=b"webhook_id=12",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200
    assert await snapshot(db) == before


async def test_woocommerce_products_and_their_managed_stock(client: TestClient, db: Database) -> None:
    product = fixture("woocommerce/product_created.json")
    status, answer = await woo(client, "product.created", product, delivery="d1")
    assert (status, answer["status"]) == (200, "applied")
    async with db.read_session() as session:
        card = await session.scalar(select(Product).where(Product.sku == "PQ-19"))
    assert card is not None and (card.name, card.category, card.price_cents) == ("Premium Quality", "Clothing", 2199)
    assert await level(db, "PQ-19", "WOO") == 12
    # A product whose stock WooCommerce does not manage says nothing about stock.
    unmanaged = {**product, "manage_stock": False, "stock_quantity": None, "price": "25.00"}
    await woo(client, "product.updated", unmanaged, delivery="d2")
    assert await level(db, "PQ-19", "WOO") == 12


async def test_woocommerce_stock_goes_to_the_configured_warehouse(db: Database, database_url: str) -> None:
    async with TestClient(TestServer(_app(db, database_url, WOOCOMMERCE_WAREHOUSE="SHOP-1"))) as other:
        await woo(other, "product.created", fixture("woocommerce/product_created.json"))
    assert await level(db, "PQ-19", "SHOP-1") == 12 and await level(db, "PQ-19", "WOO") is None


async def test_woocommerce_orders_follow_the_orders_state(client: TestClient, db: Database) -> None:
    await woo(client, "product.created", fixture("woocommerce/product_created.json"))
    order = fixture("woocommerce/order_created.json")
    assert (await woo(client, "order.created", order))[0] == 200
    assert await order_lines(db, "WOO-727") == {"PQ-19": (2, "open")}
    buyer = await customer(db, "WOO-25")
    assert buyer is not None and (buyer.name, buyer.phone) == ("John Doe", "+14155550132")
    await woo(client, "order.updated", {**order, "status": "completed"})
    assert await order_lines(db, "WOO-727") == {"PQ-19": (2, "fulfilled")}
    await woo(client, "order.updated", {**order, "status": "refunded"})
    assert await order_lines(db, "WOO-727") == {"PQ-19": (2, "cancelled")}
    # A guest's order: its customer is the order's own record.
    guest = {**order, "id": 728, "customer_id": 0}
    await woo(client, "order.created", guest)
    assert await order_lines(db, "WOO-728") == {"PQ-19": (2, "open")}
    assert await customer(db, "WOO-guest-728") is not None
    # A cart left at the checkout is not an order yet.
    before = await snapshot(db)
    assert (await woo(client, "order.created", {**order, "id": 729, "status": "checkout-draft"}))[1]["status"] == "ignored"
    assert await snapshot(db) == before


async def test_a_forged_or_repeated_woocommerce_delivery_changes_nothing(client: TestClient, db: Database) -> None:
    product = fixture("woocommerce/product_created.json")
    before = await snapshot(db)
    assert (await woo(client, "product.created", product, secret="guessed"))[0] == 401
    assert (await woo(client, "product.created", product, secret=None))[0] == 401
    assert await snapshot(db) == before
    await woo(client, "product.created", product, delivery="d1")
    await woo(client, "product.updated", {**product, "stock_quantity": 5}, delivery="d2")
    after = await snapshot(db)
    status, answer = await woo(client, "product.created", product, delivery="d1")
    assert (status, answer["status"]) == (200, "duplicate")
    assert await snapshot(db) == after and await level(db, "PQ-19", "WOO") == 5
    assert (await woo(client, "coupon.created", {"id": 1}))[1]["status"] == "ignored"
    assert await snapshot(db) == after


async def test_delivery_ids_are_kept_for_a_week_then_forgotten(client: TestClient, db: Database) -> None:
    await shopify(client, "shop/update", {}, webhook_id="ignored-topics-are-not-kept")
    for webhook_id in ("old", "recent"):
        await shopify(client, "products/update", fixture("shopify/products_create.json"), webhook_id=webhook_id)
    async with db.transaction() as session:
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.delivery_id == "old")
                              .values(received_at=utcnow() - timedelta(days=8)))
        assert await forget_old_deliveries(session) == 1
    async with db.read_session() as session:
        assert list(await session.scalars(select(WebhookDelivery.delivery_id))) == ["recent"]
