"""The integration API under load: it queues briefly and sheds load with 503 + Retry-After, never
a 500, and a stockout in the middle of a stream of stock events freezes nothing.

No timing assertions: `benchmarks/bench_stall.py` prints the latency and requests/s figures."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

import bot.api.integration as api_module
import bot.db as db_module
from bot.api.app import add_api_routes
from bot.api.signing import signed_headers
from bot.db import Database, create_database
from bot.models import Product
from bot.settings import Settings
from tests.factories import VIP, add_customer, add_order, add_product, catalog, offer_message
from tests.harness import Harness
from tests.test_api import SECRET, _settings, snapshot

HOT, GONE = "HOT-1", "LIP-1"


async def _post(client: TestClient, path: str, payload: Any) -> Any:
    body = json.dumps(payload).encode()
    return await client.post(path, data=body, headers={
        "Content-Type": "application/json", **signed_headers(SECRET, "POST", path, body),
    })


def _event(sku: str, **change: int) -> dict[str, Any]:
    return {"events": [{"event_id": uuid.uuid4().hex, "sku": sku, "warehouse": "SH", **change}]}


async def _api(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    app = web.Application()
    api = add_api_routes(app, settings, db)
    return api, TestClient(TestServer(app))


async def _hold_the_lock(db: Database, sku: str) -> tuple[Any, Any]:
    """Hold what a stock event of `sku` must wait for: SQLite's write lock, or its product row."""
    connection = await db.engine.connect()
    transaction = await connection.begin()  # SQLite: BEGIN IMMEDIATE takes the write lock
    await connection.execute(update(Product).where(Product.sku == sku).values(updated_at=Product.updated_at))
    return connection, transaction


async def _release(held: tuple[Any, Any]) -> None:
    connection, transaction = held
    await transaction.rollback()
    await connection.close()


@pytest.fixture
async def hot(db: Database) -> None:
    async with db.transaction() as session:
        await add_product(session, HOT, stock={"SH": 10})


async def test_a_request_that_cannot_get_a_slot_in_time_gets_503_with_retry_after(
    db: Database, database_url: str, hot: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_module, "API_CONCURRENCY", 1)
    monkeypatch.setattr(api_module, "QUEUE_WAIT_S", 0.2)
    api, client = await _api(_settings(database_url), db)
    held = await _hold_the_lock(db, HOT)
    async with client:
        first = asyncio.create_task(_post(client, "/api/v1/stock-events", _event(HOT, delta=-1)))
        while not api._slots.locked():  # the first request holds the only slot, waiting on the lock
            await asyncio.sleep(0.01)
        second = await _post(client, "/api/v1/stock-events", _event(HOT, delta=-2))
        assert second.status == 503
        assert int(second.headers["Retry-After"]) >= 1
        assert "error" in await second.json()
        await _release(held)
        answer = await first
        assert answer.status == 200 and await answer.json() == {"applied": 1, "duplicates": 0}
    async with db.read_session() as session:
        assert await session.scalar(select(Product.on_hand_total).where(Product.sku == HOT)) == 9


async def test_a_lock_held_past_the_lock_wait_answers_503_and_changes_nothing(
    db: Database, database_url: str, hot: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API's own engine, with a one-second lock wait instead of the production one.
    monkeypatch.setattr(db_module, "LOCK_WAIT_S", 1)
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 1000)
    impatient = create_database(database_url)
    _, client = await _api(_settings(database_url), impatient)
    before = await snapshot(db)
    held = await _hold_the_lock(db, HOT)
    try:
        async with client:
            answer = await _post(client, "/api/v1/stock-events", _event(HOT, delta=-1))
            assert answer.status == 503 and int(answer.headers["Retry-After"]) >= 1
            await _release(held)
            held = None
            assert await snapshot(db) == before
            retried = await _post(client, "/api/v1/stock-events", _event(HOT, delta=-1))
            assert retried.status == 200
    finally:
        if held is not None:
            await _release(held)
        await impatient.dispose()


# --- the stall: 20 clients on one SKU while another SKU runs out --------------------------------------

CLIENTS = 20
REQUESTS_EACH = 10


async def test_a_stockout_during_a_stream_of_stock_events_stalls_nothing(
    bot_harness: Harness, settings: Settings
) -> None:
    h = bot_harness
    await catalog(h)  # LIP-1 (3 on hand) runs out below; LIP-2..5 are its substitutes
    async with h.db.transaction() as session:
        await add_product(session, HOT, category="other", stock={"SH": 1000}, reorder_point=0)
        vip = await add_customer(session, "C-VIP", VIP, tier="vip")
        lip = await session.scalar(select(Product).where(Product.sku == GONE))
        await add_order(session, vip, lip, 1)
    await h.services.catalog.refresh(h.db)

    stop = asyncio.Event()

    async def bot_at_work() -> None:
        """What the scheduler does in `stockbot run`: handle stock events as they come."""
        while not stop.is_set():
            await h.runtime.process_events()
            await asyncio.sleep(0.05)

    api_settings = settings.model_copy(update={"WEBHOOK_SECRET": _settings(settings.DATABASE_URL).WEBHOOK_SECRET})
    _, client = await _api(api_settings, h.db)
    statuses: list[int] = []
    latencies: list[float] = []

    async def shop_system(n: int) -> None:
        for i in range(REQUESTS_EACH):
            started = time.perf_counter()
            # +1, -1, +1, ...: each client leaves the SKU where it found it.
            answer = await _post(client, "/api/v1/stock-events", _event(HOT, delta=1 if i % 2 == 0 else -1))
            latencies.append(time.perf_counter() - started)
            statuses.append(answer.status)
            await answer.read()

    async def the_stockout() -> None:
        await asyncio.sleep(0.3)
        answer = await _post(client, "/api/v1/stock-events", _event(GONE, on_hand=0))
        statuses.append(answer.status)

    worker = asyncio.create_task(bot_at_work())
    sender = asyncio.create_task(h.runtime.sender.run(stop))
    started = time.perf_counter()
    async with client:
        await asyncio.gather(*(shop_system(n) for n in range(CLIENTS)), the_stockout())
    elapsed = time.perf_counter() - started
    stop.set()
    await worker
    await sender
    await h.settle()

    assert len(statuses) == CLIENTS * REQUESTS_EACH + 1  # every request completed
    assert [s for s in statuses if s != 200] == []  # no 5xx, and no load shed either
    async with h.db.read_session() as session:
        totals = dict((await session.execute(
            select(Product.sku, Product.on_hand_total).where(Product.sku.in_([HOT, GONE]))
        )).all())
    assert totals == {HOT: 1000, GONE: 0}
    assert "out of stock" in (offer_message(h, VIP).text or "")  # recovery ran meanwhile
    latencies.sort()
    print(f"\nstall test: {len(statuses)} requests in {elapsed:.2f}s, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms")
