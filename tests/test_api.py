"""The integration HTTP API, end to end over a real aiohttp server on the `db` fixture."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.api.app import MAX_BODY, create_api_app
from bot.api.schemas import MAX_BATCH
from bot.api.signing import keys_of, legacy_signature, signed_headers, verify
from bot.db import Database, create_database
from bot.models import (
    Coupon,
    Customer,
    Order,
    OrderLine,
    Product,
    StockLevel,
    StockMovement,
    Warehouse,
    utcnow,
)
from bot.recovery.redemption import RedeemStatus, coupon_value_cents, redeem_coupon
from bot.settings import Settings, load_settings
from tests.factories import add_product

SECRET = "s3cret-for-tests"
OPENAPI = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"


def _settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None, "DATABASE_URL": database_url, "BOT_TOKEN": "123456:SANDBOX-TOKEN",
        "QUIET_HOURS": "", "WEBHOOK_SECRET": SECRET, "PHONE_REGION": "CN",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
async def client(db: Database, database_url: str):  # type: ignore[no-untyped-def]
    app = create_api_app(_settings(database_url), db)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def down(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A client of an app whose database cannot be reached."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'no-such-folder' / 'shop.db'}"
    unreachable = create_database(url)
    try:
        async with TestClient(TestServer(create_api_app(_settings(url), unreachable))) as test_client:
            yield test_client
    finally:
        await unreachable.dispose()


async def post(client: TestClient, path: str, payload: Any = None, *, raw: bytes | None = None,
               secret: str | None = SECRET, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    body = raw if raw is not None else json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if secret is not None:
        sent.update(signed_headers(secret, "POST", path, body, now=fresh_time()))
    return await client.post(path, data=body, headers=sent)


_calls = itertools.count()


def fresh_time() -> float:
    """A signing time no earlier call of this test process used: a test that sends the same
    request twice on purpose (a retry) signs it anew, as a client does; with one clock second
    the two signatures would be one, and the second refused as a replay."""
    return time.time() - next(_calls) % 240


async def snapshot(db: Database) -> tuple[Any, ...]:
    """Everything a request could have written; compared before and after each bad request."""
    async with db.read_session() as session:
        levels = (await session.execute(
            select(StockLevel.product_id, StockLevel.warehouse_id, StockLevel.on_hand).order_by(StockLevel.id)
        )).all()
        products = (await session.execute(
            select(Product.sku, Product.on_hand_total, Product.reserved_total).order_by(Product.id)
        )).all()
        customers = (await session.execute(
            select(Customer.external_id, Customer.name, Customer.tier, Customer.phone, Customer.email, Customer.locale)
            .order_by(Customer.id)
        )).all()
        lines = (await session.execute(
            select(Order.external_id, Order.customer_id, OrderLine.product_id, OrderLine.qty, OrderLine.status)
            .join(OrderLine, OrderLine.order_id == Order.id).order_by(OrderLine.id)
        )).all()
        coupons = (await session.execute(
            select(Coupon.code, Coupon.redeemed_at, Coupon.redeemed_value_cents).order_by(Coupon.id)
        )).all()
        movements = await session.scalar(select(func.count()).select_from(StockMovement))
        warehouses = await session.scalar(select(func.count()).select_from(Warehouse))
    return levels, products, customers, lines, coupons, movements, warehouses


async def on_hand(db: Database, sku: str, warehouse: str) -> int | None:
    async with db.read_session() as session:
        return await session.scalar(
            select(StockLevel.on_hand)
            .join(Product, Product.id == StockLevel.product_id)
            .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
            .where(Product.sku == sku, Warehouse.code == warehouse)
        )


@pytest.fixture
async def catalog(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, "LIP-1", price="19.99", stock={"main": 10})
        await add_product(session, "LIP-2", price="5.00", stock={"main": 3, "east": 1})
        session.add(Customer(external_id="C1", name="Ann", tier="regular"))
        session.add(Customer(external_id="C2", name="Bo", tier="vip"))


async def add_coupon(db: Database, code: str, *, percent: int = 15, expires_in: timedelta = timedelta(days=7),
                     sku: str = "LIP-1", customer: str = "C1") -> None:
    async with db.transaction() as session:
        product_id = await session.scalar(select(Product.id).where(Product.sku == sku))
        customer_id = await session.scalar(select(Customer.id).where(Customer.external_id == customer))
        cause = await session.scalar(select(func.count()).select_from(Coupon))
        session.add(Coupon(code=code, customer_id=customer_id, product_id=product_id, cause_event_id=cause + 1,
                           percent=percent, expires_at=utcnow() + expires_in))


def fields(errors: list[dict[str, Any]]) -> list[tuple[int | None, str]]:
    return [(error["index"], error["field"]) for error in errors]


# --- signing, gatekeeping, routing ------------------------------------------------------------------


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"events": []}'
    keys = keys_of(SECRET)
    header = signed_headers(SECRET, "POST", "/api/v1/orders", body, now=1_000_000)["X-Signature"]
    assert header.startswith("t=1000000,v1=") and len(header) == len("t=1000000,v1=") + 64

    def check(given: str | None, *, method: str = "POST", path: str = "/api/v1/orders", sent: bytes = body,
              now: float = 1_000_000, secret: str = SECRET) -> bool:
        return verify(keys_of(secret), method, path, sent, given, now=now) is not None

    assert check(header)
    assert check(header.upper().replace("T=", "t=").replace("V1=", "v1="))  # hex in either case
    assert check(header, now=1_000_000 + 300) and check(header, now=1_000_000 - 300)
    assert not check(header, now=1_000_000 + 301)  # too old
    assert not check(header, now=1_000_000 - 301)  # from the future
    assert not check(header, sent=body + b" ")
    assert not check(header, method="GET")
    assert not check(header, path="/api/v1/customers")
    assert not check(header, path="/api/v1/orders?x=1")
    assert not check(header, secret="other")
    assert not check(None) and not check("") and not check("t=1000000") and not check("v1=" + "0" * 64)
    assert not check(header.replace("t=1000000", "t=1000001"))
    assert not check("t=1000000,v1=" + "é" * 64)  # odd characters: refused, not a crash
    assert not check("t=１０００000," + header.partition(",")[2])  # full-width digits are not a time
    # The body-only form of earlier versions: only where the route allows it.
    legacy = legacy_signature(SECRET, body)
    assert verify(keys, "POST", "/api/v1/stock-events", body, legacy) is None
    signed = verify(keys, "POST", "/api/v1/stock-events", body, legacy, legacy_ok=True)
    assert signed is not None and signed.once_key is None
    assert verify(keys, "POST", "/api/v1/stock-events", body, legacy.upper().replace("SHA256=", "sha256="), legacy_ok=True)


def test_any_of_several_keys_signs_and_clients_sign_with_the_first() -> None:
    body = b"{}"
    rotating = "new-key, old-key"
    by_old = signed_headers("old-key", "POST", "/api/v1/orders", body, now=50_000)["X-Signature"]
    by_new = signed_headers("new-key", "POST", "/api/v1/orders", body, now=50_000)["X-Signature"]
    assert signed_headers(rotating, "POST", "/api/v1/orders", body, now=50_000)["X-Signature"] == by_new
    for header in (by_old, by_new):
        assert verify(keys_of(rotating), "POST", "/api/v1/orders", body, header, now=50_000) is not None
    assert verify(keys_of("new-key"), "POST", "/api/v1/orders", body, by_old, now=50_000) is None


async def test_health_needs_no_signature(client: TestClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_health_answers_503_while_the_database_cannot_be_reached(down: TestClient) -> None:
    response = await down.get("/api/v1/health")
    assert response.status == 503
    assert await response.json() == {"status": "unavailable"}


SIGNED = [
    ("/api/v1/stock-events", {"events": []}),
    ("/api/v1/orders", {"orders": []}),
    ("/api/v1/customers", {"customers": []}),
    ("/api/v1/coupons/ANY/redeem", {}),
]


@pytest.mark.parametrize(("path", "payload"), SIGNED)
async def test_every_signed_route_answers_503_while_the_secret_is_unset(
    db: Database, database_url: str, path: str, payload: Any
) -> None:
    app = create_api_app(_settings(database_url, WEBHOOK_SECRET=None), db)
    async with TestClient(TestServer(app)) as unset:
        response = await post(unset, path, payload)
        assert response.status == 503
        assert "WEBHOOK_SECRET" in (await response.json())["error"]
        assert (await unset.get("/api/v1/health")).status == 200


@pytest.mark.parametrize(("path", "payload"), SIGNED)
@pytest.mark.parametrize("secret", [None, "wrong-secret"])
async def test_bad_or_missing_signature_is_401_and_changes_nothing(
    client: TestClient, db: Database, catalog: None, path: str, payload: Any, secret: str | None
) -> None:
    await add_coupon(db, "ANY")
    before = await snapshot(db)
    batch = {
        "/api/v1/stock-events": {"events": [{"event_id": "e1", "sku": "LIP-1", "warehouse": "main", "delta": 5}]},
        "/api/v1/orders": {"orders": [{"external_id": "O1", "customer_external_id": "C1", "status": "open",
                                       "lines": [{"sku": "LIP-1", "qty": 1}]}]},
        "/api/v1/customers": {"customers": [{"external_id": "C9", "name": "New", "tier": "vip"}]},
    }.get(path, payload)
    response = await post(client, path, batch, secret=secret)
    assert response.status == 401
    assert "error" in await response.json()
    # A valid signature of a different body is refused too.
    good = json.dumps(batch).encode()
    response = await client.post(path, data=good + b" ", headers=signed_headers(SECRET, "POST", path, good))
    assert response.status == 401
    assert await snapshot(db) == before


async def test_body_over_one_mebibyte_is_413_before_it_is_read(client: TestClient, db: Database) -> None:
    before = await snapshot(db)
    big = b'{"events": [' + b" " * (MAX_BODY + 10) + b"]}"
    response = await post(client, "/api/v1/stock-events", raw=big)
    assert response.status == 413
    assert "error" in await response.json()

    async def stream():  # type: ignore[no-untyped-def]  # chunked: no Content-Length to go by
        for _ in range(20):
            yield b" " * (128 * 1024)

    response = await client.post(
        "/api/v1/stock-events", data=stream(), headers=signed_headers(SECRET, "POST", "/api/v1/stock-events", b"")
    )
    assert response.status == 413
    assert await snapshot(db) == before


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"events": [NaN]}', b"\xff\xfe{}", b""])
async def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    response = await post(client, "/api/v1/stock-events", raw=raw)
    assert response.status == 400
    assert "malformed JSON" in (await response.json())["error"]


async def test_unknown_route_is_404_json_and_wrong_method_is_405(client: TestClient) -> None:
    response = await client.get("/api/v1/nope")
    assert response.status == 404
    assert await response.json() == {"error": "not found"}
    response = await client.get("/api/v1/stock-events")
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert await response.json() == {"error": "method not allowed"}
    response = await client.post("/api/v1/health")
    assert response.status == 405


async def test_one_log_line_per_request_without_bodies_or_secrets(
    client: TestClient, db: Database, catalog: None, caplog: pytest.LogCaptureFixture
) -> None:
    await add_coupon(db, "SECRETCODE1")
    caplog.set_level(logging.INFO, logger="bot.api")
    body = {"events": [{"event_id": "log-1", "sku": "LIP-1", "warehouse": "main", "delta": 1, "reason": "PRIVATE"}]}
    assert (await post(client, "/api/v1/stock-events", body)).status == 200
    assert (await post(client, "/api/v1/coupons/SECRETCODE1/redeem", {})).status == 200
    assert (await client.get("/api/v1/health")).status == 200
    lines = [record.getMessage() for record in caplog.records if record.name == "bot.api"]
    assert len(lines) == 3
    assert lines[0].startswith("POST /api/v1/stock-events 200 ")
    assert lines[1].startswith("POST /api/v1/coupons/{code}/redeem 200 ")
    text = "\n".join(lines)
    for leak in ("PRIVATE", "log-1", "SECRETCODE1", SECRET):
        assert leak not in text


# --- stock events ------------------------------------------------------------------------------


async def test_stock_events_apply_and_a_retry_is_all_duplicates(client: TestClient, db: Database, catalog: None) -> None:
    batch = {"events": [
        {"event_id": "erp-1", "sku": "LIP-1", "warehouse": "main", "delta": -4, "reason": "sale"},
        {"event_id": "erp-2", "sku": "LIP-2", "warehouse": "east", "on_hand": 7},
        {"event_id": "erp-3", "sku": "LIP-1", "warehouse": "north", "delta": 2},  # a new warehouse
    ]}
    response = await post(client, "/api/v1/stock-events", batch)
    assert response.status == 200
    assert await response.json() == {"applied": 3, "duplicates": 0}
    assert (await on_hand(db, "LIP-1", "main"), await on_hand(db, "LIP-2", "east")) == (6, 7)
    assert await on_hand(db, "LIP-1", "north") == 2
    async with db.read_session() as session:
        movement = await session.scalar(select(StockMovement).where(StockMovement.event_id == "erp-1"))
        assert movement is not None and (movement.actor, movement.reason, movement.delta) == ("api", "sale", -4)

    before = await snapshot(db)
    response = await post(client, "/api/v1/stock-events", batch)
    assert response.status == 200
    assert await response.json() == {"applied": 0, "duplicates": 3}
    assert await snapshot(db) == before

    batch["events"].append({"event_id": "erp-4", "sku": "LIP-1", "warehouse": "main", "delta": -6})
    response = await post(client, "/api/v1/stock-events", batch)
    assert await response.json() == {"applied": 1, "duplicates": 3}
    assert await on_hand(db, "LIP-1", "main") == 0


async def test_stock_event_shapes_are_all_reported_and_nothing_is_applied(
    client: TestClient, db: Database, catalog: None
) -> None:
    before = await snapshot(db)
    batch = {"events": [
        {"event_id": "ok-1", "sku": "LIP-1", "warehouse": "main", "delta": 1},  # fine on its own
        {"event_id": "b-1", "sku": "LIP-1", "warehouse": "main", "delta": 1, "on_hand": 3},
        {"event_id": "b-2", "sku": "LIP-1", "warehouse": "main"},
        {"event_id": "b-3", "sku": "LIP-1", "warehouse": "main", "on_hand": -1},
        {"event_id": "b-4", "sku": "LIP-1", "warehouse": "main", "delta": 0},
        {"event_id": "b-5", "sku": "LIP-1", "warehouse": "main", "delta": "5"},
        {"event_id": "b-6", "sku": "LIP-1", "warehouse": "", "delta": 1},
        {"sku": "LIP-1", "warehouse": "main", "delta": 1},
        {"event_id": "x" * 129, "sku": "LIP-1", "warehouse": "main", "delta": 1},
        {"event_id": "b-9", "sku": "LIP-1", "warehouse": "main", "delta": 10**12},
        {"event_id": "b-10", "sku": "NOPE", "warehouse": "main", "delta": 1},
        {"event_id": "ok-1", "sku": "LIP-2", "warehouse": "main", "delta": 1},  # duplicate in the batch
        "not an object",
        {"event_id": "b-13", "sku": "LIP-1", "warehouse": "main", "delta": 1.5},
        {"event_id": "b-14", "sku": "LIP-1", "warehouse": "main", "delta": True},
        {"event_id": "b-15", "sku": "LIP-1", "warehouse": "main", "delta": 1, "colour": "red"},
        {"event_id": "b-16", "sku": "LIP-1", "warehouse": "main", "delta": 1, "reason": "r" * 33},
    ]}
    response = await post(client, "/api/v1/stock-events", batch)
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert all(set(error) == {"index", "field", "message"} for error in errors)
    assert fields(errors) == [
        (1, "delta"), (2, "delta"), (3, "on_hand"), (4, "delta"), (5, "delta"), (6, "warehouse"),
        (7, "event_id"), (8, "event_id"), (9, "delta"), (10, "sku"), (11, "event_id"), (12, ""),
        (13, "delta"), (14, "delta"), (15, "colour"), (16, "reason"),
    ]
    assert "first at index 0" in errors[10]["message"]
    assert "NOPE" in errors[9]["message"]
    assert await snapshot(db) == before


async def test_a_decrement_below_zero_is_422_for_that_index_and_nothing_is_applied(
    client: TestClient, db: Database, catalog: None
) -> None:
    before = await snapshot(db)
    batch = {"events": [
        {"event_id": "z-0", "sku": "LIP-1", "warehouse": "main", "delta": 5},
        {"event_id": "z-1", "sku": "LIP-2", "warehouse": "main", "delta": -4},  # has 3
        {"event_id": "z-2", "sku": "LIP-1", "warehouse": "main", "delta": -15},  # 10 + 5 - 15 = 0: fine
        {"event_id": "z-3", "sku": "LIP-1", "warehouse": "main", "delta": -1},  # now below zero
        {"event_id": "z-4", "sku": "LIP-2", "warehouse": "west", "delta": -1},  # no such level yet
        {"event_id": "z-5", "sku": "LIP-2", "warehouse": "east", "on_hand": 0},
        {"event_id": "z-6", "sku": "LIP-2", "warehouse": "east", "delta": -1},  # after the count
    ]}
    response = await post(client, "/api/v1/stock-events", batch)
    assert response.status == 422
    assert fields((await response.json())["errors"]) == [(1, "delta"), (3, "delta"), (4, "delta"), (6, "delta")]
    assert await snapshot(db) == before
    # Without the bad ones the same batch goes through.
    good = {"events": [event for i, event in enumerate(batch["events"]) if i not in (1, 3, 4, 6)]}
    response = await post(client, "/api/v1/stock-events", good)
    assert await response.json() == {"applied": 3, "duplicates": 0}
    assert await on_hand(db, "LIP-1", "main") == 0


async def test_a_decrement_below_zero_is_listed_beside_other_errors_and_nothing_is_applied(
    client: TestClient, db: Database, catalog: None
) -> None:
    earlier = {"events": [{"event_id": "old-1", "sku": "LIP-2", "warehouse": "main", "delta": -1}]}
    assert (await post(client, "/api/v1/stock-events", earlier)).status == 200
    before = await snapshot(db)
    batch = {"events": [
        {"event_id": "m-0", "sku": "NOPE", "warehouse": "main", "delta": 1},
        {"event_id": "m-1", "sku": "LIP-2", "warehouse": "main", "delta": -5},  # has 2
        {"event_id": "m-2", "sku": "LIP-1", "warehouse": "main", "delta": "x"},
        {"event_id": "m-3", "sku": "LIP-1", "warehouse": "west", "delta": -1},  # a warehouse not created yet
        {"event_id": "old-1", "sku": "LIP-2", "warehouse": "main", "delta": -1},  # a retry: not counted
        {"event_id": "m-1", "sku": "LIP-1", "warehouse": "main", "delta": -99},  # reported as a duplicate only
        {"event_id": "m-6", "sku": "LIP-2", "warehouse": "main", "delta": -2},  # fine: m-1 is refused
        {"event_id": "m-7", "sku": "LIP-2", "warehouse": "main", "delta": -1},  # now below zero
    ]}
    response = await post(client, "/api/v1/stock-events", batch)
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert fields(errors) == [(0, "sku"), (1, "delta"), (2, "delta"), (3, "delta"), (5, "event_id"), (7, "delta")]
    assert "LIP-2 in main has 2 on hand; a change of -5 would go below zero" in errors[1]["message"]
    assert "LIP-1 in west has 0 on hand" in errors[3]["message"]
    assert await snapshot(db) == before


async def test_a_duplicate_of_an_earlier_request_is_not_counted_against_stock(
    client: TestClient, db: Database, catalog: None
) -> None:
    first = {"events": [{"event_id": "d-1", "sku": "LIP-2", "warehouse": "main", "delta": -3}]}
    assert (await post(client, "/api/v1/stock-events", first)).status == 200
    # Retried together with a new event: d-1 is a duplicate, so it does not take the last 3 again.
    retry = {"events": [*first["events"], {"event_id": "d-2", "sku": "LIP-2", "warehouse": "main", "delta": 2}]}
    response = await post(client, "/api/v1/stock-events", retry)
    assert await response.json() == {"applied": 1, "duplicates": 1}
    assert await on_hand(db, "LIP-2", "main") == 2


async def test_concurrent_batches_over_the_same_products_all_apply(
    client: TestClient, db: Database, catalog: None
) -> None:
    def batch(n: int) -> dict[str, Any]:
        skus = ["LIP-1", "LIP-2"] if n % 2 else ["LIP-2", "LIP-1"]  # opposite orders: no deadlock
        return {"events": [
            {"event_id": f"c-{n}-{sku}", "sku": sku, "warehouse": "main", "delta": -1} for sku in skus
        ]}

    responses = await asyncio.gather(*(post(client, "/api/v1/stock-events", batch(n)) for n in range(3)))
    assert [response.status for response in responses] == [200, 200, 200]
    assert (await on_hand(db, "LIP-1", "main"), await on_hand(db, "LIP-2", "main")) == (7, 0)
    # A fourth takes LIP-2 below zero: refused whole, LIP-1 untouched.
    response = await post(client, "/api/v1/stock-events", batch(3))
    assert response.status == 422
    assert fields((await response.json())["errors"]) == [(1, "delta")]  # LIP-2 comes second in odd batches
    assert await on_hand(db, "LIP-1", "main") == 7


async def test_stock_event_envelope_errors(client: TestClient, db: Database) -> None:
    cases = [
        ([], (None, "body")),
        ({}, (None, "events")),
        ({"events": {}}, (None, "events")),
        ({"events": [], "extra": 1}, (None, "extra")),
    ]
    for payload, expected in cases:
        response = await post(client, "/api/v1/stock-events", payload)
        assert response.status == 422, payload
        assert fields((await response.json())["errors"]) == [expected]
    response = await post(client, "/api/v1/stock-events", {"events": []})
    assert await response.json() == {"applied": 0, "duplicates": 0}


async def test_a_batch_of_5000_events_works_and_5001_is_refused(client: TestClient, db: Database) -> None:
    async with db.transaction() as session:
        for n in range(50):
            await add_product(session, f"SKU-{n:03d}")
    events = [
        {"event_id": f"big-{n}", "sku": f"SKU-{n % 50:03d}", "warehouse": "main", "delta": 1}
        for n in range(MAX_BATCH)
    ]
    response = await post(client, "/api/v1/stock-events", {"events": events})
    assert response.status == 200
    assert await response.json() == {"applied": MAX_BATCH, "duplicates": 0}
    assert await on_hand(db, "SKU-007", "main") == MAX_BATCH // 50

    before = await snapshot(db)
    events.append({"event_id": "big-extra", "sku": "SKU-000", "warehouse": "main", "delta": 1})
    response = await post(client, "/api/v1/stock-events", {"events": events})
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert fields(errors) == [(None, "events")]
    assert str(MAX_BATCH) in errors[0]["message"]
    assert await snapshot(db) == before


# --- orders --------------------------------------------------------------------------------------


def _order(external_id: str = "O1", customer: str = "C1", status: str = "open", **lines: int) -> dict[str, Any]:
    return {
        "external_id": external_id, "customer_external_id": customer, "status": status,
        "lines": [{"sku": sku.replace("_", "-"), "qty": qty} for sku, qty in (lines or {"LIP_1": 1}).items()],
    }


async def test_orders_are_upserted_by_external_id(client: TestClient, db: Database, catalog: None) -> None:
    response = await post(client, "/api/v1/orders", {"orders": [_order("O1", LIP_1=2, LIP_2=1), _order("O2", "C2")]})
    assert response.status == 200
    assert await response.json() == {"created": 2, "updated": 0}
    after_first = await snapshot(db)
    # A retry of the same request creates nothing new and changes nothing.
    response = await post(client, "/api/v1/orders", {"orders": [_order("O1", LIP_1=2, LIP_2=1), _order("O2", "C2")]})
    assert await response.json() == {"created": 0, "updated": 2}
    assert await snapshot(db) == after_first

    response = await post(client, "/api/v1/orders", {"orders": [_order("O1", status="FULFILLED", LIP_1=3)]})
    assert await response.json() == {"created": 0, "updated": 1}
    async with db.read_session() as session:
        rows = (await session.execute(
            select(Product.sku, OrderLine.qty, OrderLine.status)
            .join(OrderLine, OrderLine.product_id == Product.id).join(Order, Order.id == OrderLine.order_id)
            .where(Order.external_id == "O1").order_by(Product.sku)
        )).all()
    assert [tuple(row) for row in rows] == [("LIP-1", 3, "fulfilled"), ("LIP-2", 1, "cancelled")]


async def test_bad_orders_are_all_reported_and_nothing_is_written(client: TestClient, db: Database, catalog: None) -> None:
    assert (await post(client, "/api/v1/orders", {"orders": [_order("O1")]})).status == 200
    before = await snapshot(db)
    batch = {"orders": [
        _order("O1", LIP_1=5),  # a fine update, not applied because of the others
        _order("O2", customer="NOBODY"),
        _order("O3", LIP_9=1),
        _order("O4", status="shipped"),
        {**_order("O5"), "lines": []},
        _order("O6", LIP_1=0),
        {**_order("O7"), "lines": [{"sku": "LIP-1", "qty": 1}, {"sku": "LIP-1", "qty": 2}]},
        _order("O1", LIP_2=1),  # external_id twice in one batch
        {**_order("O9"), "lines": [{"sku": "LIP-1", "qty": -2}]},
        {"external_id": "O10", "status": "open", "lines": [{"sku": "LIP-1"}]},
    ]}
    response = await post(client, "/api/v1/orders", batch)
    assert response.status == 422
    assert fields((await response.json())["errors"]) == [
        (1, "customer_external_id"), (2, "lines[0].sku"), (3, "status"), (4, "lines"), (5, "lines[0].qty"),
        (6, "lines[1].sku"), (7, "external_id"), (8, "lines[0].qty"), (9, "customer_external_id"),
        (9, "lines[0].qty"),
    ]
    assert await snapshot(db) == before


# --- customers -----------------------------------------------------------------------------------


async def test_customers_are_upserted_with_phones_in_e164(client: TestClient, db: Database, catalog: None) -> None:
    batch = {"customers": [
        {"external_id": "C1", "name": "Ann Lee", "tier": "vip", "locale": "zh"},
        {"external_id": "C3", "name": "Cy", "tier": "regular", "phone": "138 0013 8000", "email": "cy@example.com"},
        {"external_id": "C4", "name": "Di", "tier": "Regular", "phone": "+1 650 253 0000", "email": ""},
    ]}
    response = await post(client, "/api/v1/customers", batch)
    assert response.status == 200
    assert await response.json() == {"created": 2, "updated": 1}
    async with db.read_session() as session:
        rows = {c.external_id: c for c in await session.scalars(select(Customer))}
    assert (rows["C1"].name, rows["C1"].tier, rows["C1"].locale) == ("Ann Lee", "vip", "zh")
    assert rows["C3"].phone == "+8613800138000" and rows["C3"].email == "cy@example.com"
    assert rows["C4"].phone == "+16502530000" and rows["C4"].tier == "regular" and rows["C4"].email is None
    after = await snapshot(db)
    response = await post(client, "/api/v1/customers", batch)
    assert await response.json() == {"created": 0, "updated": 3}
    assert await snapshot(db) == after


async def test_bad_customers_are_all_reported_and_nothing_is_written(client: TestClient, db: Database, catalog: None) -> None:
    before = await snapshot(db)
    batch = {"customers": [
        {"external_id": "C1", "name": "Renamed", "tier": "vip"},  # fine, not applied
        {"external_id": "C5", "name": "E", "tier": "gold"},
        {"external_id": "C6", "name": "F", "tier": "regular", "phone": "12"},
        {"external_id": "C7", "name": "G", "tier": "regular", "locale": "fr"},
        {"external_id": "C8", "name": "H", "tier": "regular", "email": "not-an-address"},
        {"external_id": "C1", "name": "Again", "tier": "regular"},
        {"external_id": "C10", "name": "", "tier": "regular"},
        {"external_id": "C11", "name": "x" * 257, "tier": "regular"},
        {"external_id": "C12", "name": "K", "tier": "regular", "phone": "13800138000"},
        {"external_id": "C13", "name": "L", "tier": "regular", "phone": "+86 138 0013 8000"},  # same phone
        {"external_id": "C14", "name": "Line\nbreak", "tier": "regular"},
    ]}
    response = await post(client, "/api/v1/customers", batch)
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert fields(errors) == [
        (1, "tier"), (2, "phone"), (3, "locale"), (4, "email"), (5, "external_id"), (6, "name"), (7, "name"),
        (9, "phone"), (10, "name"),
    ]
    assert await snapshot(db) == before


# --- coupons -------------------------------------------------------------------------------------


def test_coupon_value_is_percent_of_price_rounded_half_up() -> None:
    assert coupon_value_cents(1999, 15) == 300  # 299.85 cents
    assert coupon_value_cents(1000, 15) == 150
    assert coupon_value_cents(1, 50) == 1  # half a cent rounds up
    assert coupon_value_cents(3, 50) == 2  # 1.5 -> 2
    assert coupon_value_cents(0, 20) == 0
    assert coupon_value_cents(12345, 0) == 0


async def test_coupon_redeem_200_then_409_404_410(client: TestClient, db: Database, catalog: None) -> None:
    await add_coupon(db, "SAVE15", percent=15)
    await add_coupon(db, "OLD10", percent=10, expires_in=timedelta(seconds=-1))
    response = await post(client, "/api/v1/coupons/SAVE15/redeem", {"order_external_id": "O-77"})
    assert response.status == 200
    body = await response.json()
    assert (body["code"], body["percent"], body["value"]) == ("SAVE15", 15, "3.00")  # 15 % of 19.99
    assert body["redeemed_at"].endswith("+00:00")
    async with db.read_session() as session:
        coupon = await session.scalar(select(Coupon).where(Coupon.code == "SAVE15"))
    assert coupon is not None and coupon.redeemed_order_external_id == "O-77" and coupon.redeemed_value_cents == 300

    before = await snapshot(db)
    response = await post(client, "/api/v1/coupons/SAVE15/redeem", {})
    assert response.status == 409 and "error" in await response.json()
    response = await post(client, "/api/v1/coupons/NOSUCH/redeem", {})
    assert response.status == 404 and "error" in await response.json()
    response = await post(client, "/api/v1/coupons/OLD10/redeem", raw=b"")  # an empty body is {}
    assert response.status == 410 and "error" in await response.json()
    response = await post(client, "/api/v1/coupons/OLD10/redeem", {"order_external_id": 5})
    assert response.status == 422
    assert fields((await response.json())["errors"]) == [(None, "order_external_id")]
    response = await post(client, "/api/v1/coupons/OLD10/redeem", raw=b"{oops")
    assert response.status == 400
    assert await snapshot(db) == before


async def test_a_coupon_code_typed_in_any_case_is_redeemed_once(client: TestClient, db: Database,
                                                                 catalog: None) -> None:
    from bot.recovery.coupons import new_code

    code = new_code()  # as issued: upper case, grouped, e.g. K7QX-93TM-HW4R
    await add_coupon(db, code)
    typed = code.lower()
    response = await post(client, f"/api/v1/coupons/%20{typed}%20/redeem", {})
    assert response.status == 200
    assert (await response.json())["code"] == code
    mixed = "".join(c.lower() if i % 2 else c for i, c in enumerate(code))
    response = await post(client, f"/api/v1/coupons/{mixed}/redeem", {})
    assert response.status == 409  # the same coupon: still redeemed once


async def test_racing_redemptions_in_two_transactions_give_one_success(db: Database, catalog: None) -> None:
    await add_coupon(db, "RACE1")

    async def attempt(order: str) -> RedeemStatus:
        async with db.transaction() as session:
            outcome = await redeem_coupon(session, "RACE1", order)
            await asyncio.sleep(0.05)  # hold the lock a while so the other really waits
            return outcome.status

    results = await asyncio.gather(attempt("A"), attempt("B"))
    assert sorted(results) == sorted([RedeemStatus.REDEEMED, RedeemStatus.ALREADY_REDEEMED])
    async with db.read_session() as session:
        coupon = await session.scalar(select(Coupon).where(Coupon.code == "RACE1"))
    winner = "A" if results[0] is RedeemStatus.REDEEMED else "B"
    assert coupon is not None and coupon.redeemed_order_external_id == winner


async def test_racing_redemptions_over_http_give_one_200_and_one_409(
    client: TestClient, db: Database, catalog: None
) -> None:
    await add_coupon(db, "RACE2")
    responses = await asyncio.gather(
        *(post(client, "/api/v1/coupons/RACE2/redeem", {"order_external_id": f"O-{n}"}) for n in range(2))
    )
    assert sorted(response.status for response in responses) == [200, 409]


# --- the document --------------------------------------------------------------------------------


async def test_every_route_is_in_the_openapi_document(db: Database, database_url: str) -> None:
    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.1")
    app = create_api_app(_settings(database_url), db)
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS") and route.resource is not None
    }
    documented = {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert routes == documented
    for path, method in routes:
        operation = spec["paths"][path][method]
        signed = path != "/api/v1/health"
        assert bool(operation.get("security")) == signed, path
        if signed:
            assert {"401", "503", "413"} <= set(operation["responses"]), path


async def test_the_openapi_document_says_what_health_answers(client: TestClient, down: TestClient) -> None:
    health = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))["paths"]["/api/v1/health"]["get"]
    documented = {
        int(status): response["content"]["application/json"]["schema"]["properties"]["status"]["const"]
        for status, response in health["responses"].items()
    }
    assert "does not query the database" not in health["description"]
    answers = [await client.get("/api/v1/health"), await down.get("/api/v1/health")]
    assert {answer.status: (await answer.json())["status"] for answer in answers} == documented


def test_the_openapi_document_says_what_signatures_are_accepted() -> None:
    document = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    scheme = document["components"]["securitySchemes"]["signature"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-Signature")
    for said in ("t=", "v1=", "<METHOD>", "300", "once", "comma-separated", "sha256="):
        assert said in scheme["description"], said
    signed_routes = {
        (path, method) for path, item in document["paths"].items() for method, operation in item.items()
        if operation.get("security", document.get("security")) == [{"signature": []}]
    }
    assert ("/api/v1/coupons/{code}/redeem", "post") in signed_routes
    assert ("/api/v1/replenishment", "get") in signed_routes
    assert ("/api/v1/health", "get") not in signed_routes


async def test_the_app_can_share_a_caller_owned_application(db: Database, database_url: str) -> None:
    from bot.api.app import add_api_routes

    app = web.Application()

    async def telegram(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_post("/telegram/webhook", telegram)
    add_api_routes(app, _settings(database_url), db)
    async with TestClient(TestServer(app)) as shared:
        assert (await shared.get("/api/v1/health")).status == 200
        assert (await shared.post("/telegram/webhook", json={})).status == 200
        assert (await shared.get("/elsewhere")).status == 404


# --- signatures that cannot be reused ----------------------------------------------------------------


async def _coupon_state(db: Database, code: str) -> Any:
    async with db.read_session() as session:
        return await session.scalar(select(Coupon.redeemed_at).where(Coupon.code == code))


async def test_a_captured_get_signature_redeems_no_coupon_and_tells_no_code_apart(
    client: TestClient, db: Database, catalog: None
) -> None:
    await add_coupon(db, "REAL-CODE")
    captured = signed_headers(SECRET, "GET", "/api/v1/replenishment")
    answers = [await client.post(f"/api/v1/coupons/{code}/redeem", data=b"", headers=captured)
               for code in ("REAL-CODE", "NO-SUCH-CODE")]
    assert [answer.status for answer in answers] == [401, 401]
    assert (await answers[0].json()) == (await answers[1].json())  # the same answer: no code is told apart
    assert await _coupon_state(db, "REAL-CODE") is None


async def test_a_captured_redeem_for_one_code_does_not_redeem_another(client: TestClient, db: Database, catalog: None) -> None:
    await add_coupon(db, "CODE-X")
    await add_coupon(db, "CODE-Y")
    captured = signed_headers(SECRET, "POST", "/api/v1/coupons/CODE-X/redeem", b"{}")
    response = await client.post("/api/v1/coupons/CODE-Y/redeem", data=b"{}", headers=captured)
    assert response.status == 401
    assert await _coupon_state(db, "CODE-Y") is None
    assert (await client.post("/api/v1/coupons/CODE-X/redeem", data=b"{}", headers=captured)).status == 200


async def test_a_replayed_request_is_401_and_changes_nothing(client: TestClient, db: Database, catalog: None) -> None:
    def order(status: str) -> bytes:
        return json.dumps({"orders": [{"external_id": "O1", "customer_external_id": "C1", "status": status,
                                       "lines": [{"sku": "LIP-1", "qty": 1}]}]}).encode()

    opened = order("open")
    captured = signed_headers(SECRET, "POST", "/api/v1/orders", opened)
    assert (await client.post("/api/v1/orders", data=opened, headers=captured)).status == 200
    assert (await post(client, "/api/v1/orders", raw=order("cancelled"))).status == 200
    before = await snapshot(db)
    replay = await client.post("/api/v1/orders", data=opened, headers=captured)  # byte for byte
    assert replay.status == 401
    assert "used before" in (await replay.json())["error"]
    assert await snapshot(db) == before  # the order stays cancelled


async def test_an_old_or_future_timestamp_is_401_and_changes_nothing(client: TestClient, db: Database, catalog: None) -> None:
    body = json.dumps({"customers": [{"external_id": "C1", "name": "Old name", "tier": "vip"}]}).encode()
    before = await snapshot(db)
    for skew in (-301, 301, -86_400):
        headers = signed_headers(SECRET, "POST", "/api/v1/customers", body, now=time.time() + skew)
        assert (await client.post("/api/v1/customers", data=body, headers=headers)).status == 401
    assert await snapshot(db) == before
    headers = signed_headers(SECRET, "POST", "/api/v1/customers", body, now=time.time() - 250)
    assert (await client.post("/api/v1/customers", data=body, headers=headers)).status == 200


async def test_the_query_string_is_signed(client: TestClient, catalog: None) -> None:
    headers = signed_headers(SECRET, "GET", "/api/v1/replenishment")
    assert (await client.get("/api/v1/replenishment?as_of=x", headers=headers)).status == 401
    headers = signed_headers(SECRET, "GET", "/api/v1/replenishment?as_of=x")
    assert (await client.get("/api/v1/replenishment?as_of=x", headers=headers)).status == 200


async def test_a_refused_batch_keeps_its_signature_for_a_resend(client: TestClient, db: Database, catalog: None) -> None:
    """422 changed nothing, so its signature was not used up: fixing the data on the shop's side
    and resending needs a new signature anyway, but a plain resend is not taken for an attack."""
    body = json.dumps({"customers": [{"external_id": "C1", "name": "A", "tier": "gold"}]}).encode()
    headers = signed_headers(SECRET, "POST", "/api/v1/customers", body)
    assert (await client.post("/api/v1/customers", data=body, headers=headers)).status == 422
    body = json.dumps({"orders": [{"external_id": "O7", "customer_external_id": "NOBODY", "status": "open",
                                   "lines": [{"sku": "LIP-1", "qty": 1}]}]}).encode()
    headers = signed_headers(SECRET, "POST", "/api/v1/orders", body)
    for _ in range(2):
        assert (await client.post("/api/v1/orders", data=body, headers=headers)).status == 422


async def test_the_body_only_signature_is_taken_on_stock_events_alone(client: TestClient, db: Database, catalog: None) -> None:
    events = json.dumps({"events": [{"event_id": "old-1", "sku": "LIP-1", "warehouse": "main", "delta": -1}]}).encode()
    legacy = {"X-Signature": legacy_signature(SECRET, events), "Content-Type": "application/json"}
    first = await client.post("/api/v1/stock-events", data=events, headers=legacy)
    assert (first.status, await first.json()) == (200, {"applied": 1, "duplicates": 0})
    again = await client.post("/api/v1/stock-events", data=events, headers=legacy)  # harmless: event_id
    assert (again.status, await again.json()) == (200, {"applied": 0, "duplicates": 1})
    await add_coupon(db, "LEGACY")
    before = await snapshot(db)
    for path, body in (("/api/v1/coupons/LEGACY/redeem", b"{}"), ("/api/v1/coupons/LEGACY/redeem", b""),
                       ("/api/v1/customers", b'{"customers": []}'), ("/api/v1/orders", b'{"orders": []}')):
        answer = await client.post(path, data=body, headers={"X-Signature": legacy_signature(SECRET, body)})
        assert answer.status == 401, path
    answer = await client.get("/api/v1/replenishment", headers={"X-Signature": legacy_signature(SECRET, b"")})
    assert answer.status == 401
    assert await snapshot(db) == before


async def test_keys_rotate_without_a_gap(db: Database, database_url: str, catalog: None) -> None:
    body = b'{"customers": []}'
    old = signed_headers("old-key", "POST", "/api/v1/customers", body)
    new = signed_headers("new-key", "POST", "/api/v1/customers", body)
    for secret, accepted in (("old-key", {"old"}), ("new-key, old-key", {"old", "new"}), ("new-key", {"new"})):
        async with TestClient(TestServer(create_api_app(_settings(database_url, WEBHOOK_SECRET=secret), db))) as api:
            for name, headers in (("old", old), ("new", new)):
                # Each signature is good once: sign anew for every try but keep its key.
                fresh = signed_headers(f"{name}-key", "POST", "/api/v1/customers", body, now=fresh_time())
                status = (await api.post("/api/v1/customers", data=body, headers=fresh)).status
                assert status == (200 if name in accepted else 401), (secret, name)
    assert old != new


async def test_a_signature_is_accepted_once_by_all_processes_together(
    db: Database, database_url: str, catalog: None
) -> None:
    """Two API servers on one database (two `stockbot run`), each with its own engine, racing
    the same captured request: one wins."""
    await add_coupon(db, "RACE")
    other = create_database(database_url)
    try:
        apps = [create_api_app(_settings(database_url), db), create_api_app(_settings(database_url), other)]
        async with TestClient(TestServer(apps[0])) as one, TestClient(TestServer(apps[1])) as two:
            body = json.dumps({"customers": [{"external_id": "C1", "name": "Raced", "tier": "vip"}]}).encode()
            headers = signed_headers(SECRET, "POST", "/api/v1/customers", body)
            answers = await asyncio.gather(*(
                api.post("/api/v1/customers", data=body, headers=headers) for api in (one, two, one, two)
            ))
            assert sorted(answer.status for answer in answers) == [200, 401, 401, 401]
    finally:
        await other.dispose()
