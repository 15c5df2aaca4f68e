"""Planning services on the database: the recorded history, learned lead times, receipts from the
API, the waitlist as demand, and the replenishment API."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.api.app import create_api_app
from bot.api.signing import signed_headers
from bot.db import Database
from bot.planning.suggested_order import suggest
from bot.inventory.stock import StockChange, apply_changes, warehouse_ids
from bot.models import (
    Customer,
    DemandForecast,
    Product,
    PurchaseOrder,
    ReplenishmentPolicy,
    SalesDay,
    StockLevel,
    StockMovement,
    WaitlistEntry,
    Warehouse,
    utcnow,
)
from bot.planning.history import record_days
from bot.planning.purchasing import place_order
from bot.planning.service import refresh_forecasts
from bot.planning.state import history_changed
from bot.jobs import cover_after_stock_changes, forecast_imported_history
from bot.services import Services, build_services
from bot.settings import Settings, load_settings
from tests.factories import add_product
from tests.planning_data import add_history, yesterday

SECRET = "s3cret-for-tests"
UTC_ZONE = UTC


@pytest.fixture
def api_settings(database_url: str) -> Settings:
    return load_settings(_env_file=None, DATABASE_URL=database_url, BOT_TOKEN="123456:SANDBOX-TOKEN",
                         QUIET_HOURS="", WEBHOOK_SECRET=SECRET)


@pytest.fixture
def services(api_settings: Settings, db: Database) -> Services:
    return build_services(api_settings, db)


async def _backdate(db: Database, hours: float) -> None:
    async with db.transaction() as session:
        await session.execute(update(StockMovement).values(created_at=utcnow() - timedelta(hours=hours)))


async def test_each_shop_day_is_recorded_from_sales_only_and_imports_are_kept(db: Database) -> None:
    noon = datetime.combine(utcnow().date(), datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    async with db.transaction() as session:
        product = await add_product(session, "P", stock={"SH": 20, "BJ": 5})
        await apply_changes(session, [
            StockChange("P", "SH", delta=-3, reason="sale"), StockChange("P", "SH", delta=-1),  # a feed's decrease
            StockChange("P", "SH", on_hand=14, reason="count"), StockChange("P", "SH", delta=-2, reason="transfer"),
        ])
    await _backdate(db, 24)  # all of it happened yesterday
    async with db.transaction() as session:
        await apply_changes(session, [StockChange("P", "SH", delta=-5, reason="sale")])  # today: not yet
        await add_history(session, product.id, "BJ", [(7, 1), (2, 5)])  # the import wrote BJ's yesterday
    async with db.transaction() as session:
        assert await record_days(session, UTC_ZONE, noon) == [yesterday()]
    async with db.transaction() as session:
        assert await record_days(session, UTC_ZONE, noon) == []  # safe twice
    async with db.read_session() as session:
        rows = {(r.warehouse_id, r.day): (r.sold, r.on_hand, r.source) for r in await session.scalars(select(SalesDay))}
        codes = await warehouse_ids(session, ["SH", "BJ"], create=False)
    sh, bj = codes["SH"], codes["BJ"]
    assert rows[(sh, yesterday())] == (4, 12, "recorded")  # 3 sold + 1 taken; count and transfer are not sales
    assert rows[(bj, yesterday())] == (2, 5, "import")


async def test_an_api_count_with_a_reason_of_its_own_is_not_a_sale(db: Database, api_settings: Settings) -> None:
    noon = datetime.combine(utcnow().date(), datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    async with db.transaction() as session:
        await add_product(session, "P", stock={"SH": 20})
    body = json.dumps({"events": [
        {"event_id": "s-1", "sku": "P", "warehouse": "SH", "delta": -3, "reason": "sale"},
        {"event_id": "c-1", "sku": "P", "warehouse": "SH", "on_hand": 12, "reason": "stocktake"},  # 5 missing
    ]}).encode()
    async with TestClient(TestServer(create_api_app(api_settings, db))) as client:
        response = await client.post("/api/v1/stock-events", data=body, headers={
            "Content-Type": "application/json", **signed_headers(SECRET, "POST", "/api/v1/stock-events", body)})
        assert response.status == 200
    await _backdate(db, 24)
    async with db.transaction() as session:
        await record_days(session, UTC_ZONE, noon)
    async with db.read_session() as session:
        day = await session.scalar(select(SalesDay))
        reasons = set(await session.scalars(select(StockMovement.reason)))
    assert (day.sold, day.on_hand) == (3, 12)  # the shrinkage a stocktake found is not demand
    assert "stocktake" in reasons  # the caller's word is kept for people reading the ledger


async def test_without_a_forecast_the_prompt_reads_demand_as_the_history_does(db: Database,
                                                                            api_settings: Settings) -> None:
    noon = datetime.combine(utcnow().date(), datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    async with db.transaction() as session:
        product = await add_product(session, "P", reorder_point=2, lead_time_days=7, stock={"SH": 40})
        await apply_changes(session, [StockChange("P", "SH", delta=-6, reason="sale")])
    await _backdate(db, 24)
    async with db.transaction() as session:
        await record_days(session, UTC_ZONE, noon)  # yesterday's 6 are in the history now, once
        await apply_changes(session, [
            StockChange("P", "SH", delta=-4),  # a feed's decrease, reason 'adjustment': taken all the same
            StockChange("P", "SH", on_hand=28, reason="stocktake"),  # 2 missing: a count, not demand
        ])
        await add_history(session, product.id, "BJ", [(2, 10)] * 8)  # the shop's own sales elsewhere
    async with db.read_session() as session:
        suggestion = await suggest(session, await session.get(Product, product.id), api_settings)
    assert not suggestion.forecast
    assert suggestion.sold == 6 + 4 + 16
    assert suggestion.lead_demand == math.ceil(26 * 7 / api_settings.DEMAND_DAYS)


async def test_days_missed_while_down_are_caught_up(db: Database) -> None:
    async with db.transaction() as session:
        product = await add_product(session, "P", stock={"SH": 30})
        await add_history(session, product.id, "SH", [(1, 30)])
    later = utcnow() + timedelta(days=3)  # the bot was down for three days
    async with db.transaction() as session:
        await apply_changes(session, [StockChange("P", "SH", delta=-4, reason="sale")])
    async with db.transaction() as session:
        days = await record_days(session, UTC_ZONE, later)
    assert days == [yesterday() + timedelta(days=n) for n in (1, 2, 3)]
    async with db.read_session() as session:
        recorded = {r.day: (r.sold, r.on_hand) for r in await session.scalars(select(SalesDay).where(SalesDay.source == "recorded"))}
    assert recorded == {days[0]: (4, 26), days[1]: (0, 26), days[2]: (0, 26)}


async def test_a_history_import_seen_in_the_database_refreshes_the_forecast(services: Services, db: Database) -> None:
    async with db.transaction() as session:
        product = await add_product(session, "P", stock={"SH": 30})
        await add_history(session, product.id, "SH", [(2, 30)] * 60)
    await refresh_forecasts(db, services.settings, services.templates)
    async with db.transaction() as session:  # another process imports a busier history
        await session.execute(update(SalesDay).values(sold=6))
        await history_changed(session, [product.id])
    assert await forecast_imported_history(services) == 1
    assert await forecast_imported_history(services) == 0  # done once
    async with db.read_session() as session:
        assert 5.5 <= await session.scalar(select(DemandForecast.daily_demand)) <= 6.5


async def test_a_history_csv_import_is_forecast_by_the_running_bot(services: Services, db: Database) -> None:
    from bot.ingest.importer import import_csv

    async with db.transaction() as session:
        await add_product(session, "P", stock={"SH": 30})
    days = [yesterday() - timedelta(days=n) for n in range(60)]
    csv = "date,sku,warehouse,sold,on_hand\n" + "".join(f"{day},P,SH,3,20\n" for day in days)
    report = await import_csv(db, "history", csv.encode(), label="history.csv")  # as the CLI does
    assert not report.problems
    assert await forecast_imported_history(services) == 1
    async with db.read_session() as session:
        assert 2.5 <= await session.scalar(select(DemandForecast.daily_demand)) <= 3.5


async def test_waitlist_sign_ups_count_as_demand(services: Services, db: Database) -> None:
    async with db.transaction() as session:
        product = await add_product(session, "P", stock={"SH": 10})
        await add_history(session, product.id, "SH", [(1, 10)] * 60)
        for n in range(28):
            customer = Customer(external_id=f"C{n}", name=f"C{n}")
            session.add(customer)
            await session.flush()
            session.add(WaitlistEntry(product_id=product.id, customer_id=customer.id,
                                      expires_at=utcnow() + timedelta(days=30)))
    await refresh_forecasts(db, services.settings, services.templates)
    async with db.read_session() as session:
        assert 1.8 <= await session.scalar(select(DemandForecast.daily_demand)) <= 2.2  # 1 sold + 1 signed up a day


async def test_suggestions_use_the_measured_lead_time_after_three_receipts(services: Services, db: Database) -> None:
    async with db.transaction() as session:
        product = await add_product(session, "P", lead_time_days=7, supplier="Slow Co", stock={"SH": 50})
        await add_history(session, product.id, "SH", [(2, 50)] * 60)
        sh = (await warehouse_ids(session, ["SH"], create=False))["SH"]
        for _ in range(3):
            await place_order(session, product, sh, 10, utcnow() - timedelta(days=10), None)
        await session.execute(update(PurchaseOrder).values(ordered_at=utcnow() - timedelta(days=20),
                                                           received_at=utcnow()))
    await refresh_forecasts(db, services.settings, services.templates)
    async with db.read_session() as session:
        assert await session.scalar(select(ReplenishmentPolicy.lead_time_days)) == 20.0


async def _get(client: TestClient, secret: str | None = SECRET):  # type: ignore[no-untyped-def]
    headers = signed_headers(secret, "GET", "/api/v1/replenishment") if secret else {}
    return await client.get("/api/v1/replenishment", headers=headers)


async def test_the_replenishment_api_lists_transfers_and_buys(services: Services, db: Database,
                                                              api_settings: Settings) -> None:
    async with db.transaction() as session:
        moved = await add_product(session, "TWO", lead_time_days=14, stock={"BJ": 200})
        await add_history(session, moved.id, "SH", [(4, 30)] * 60)
        await add_history(session, moved.id, "BJ", [(1, 200)] * 60)
        bought = await add_product(session, "BUY", lead_time_days=14, supplier="Rosa Ltd", stock={"SH": 3})
        await add_history(session, bought.id, "SH", [(4, 30)] * 60)
    await refresh_forecasts(db, services.settings, services.templates)
    async with TestClient(TestServer(create_api_app(api_settings, db))) as client:
        assert (await _get(client, None)).status == 401
        assert (await _get(client, "wrong")).status == 401
        response = await _get(client)
        assert response.status == 200
        body = await response.json()
    by_sku = {item["sku"]: item for item in body["suggestions"]}
    move, buy = by_sku["TWO"], by_sku["BUY"]
    assert move["action"] == "transfer" and move["from_warehouse"] == "BJ" and move["warehouse"] == "SH"
    assert move["qty"] > 0 and move["reason"] == "spare_stock_elsewhere" and "supplier" not in move
    assert buy["action"] == "buy" and buy["supplier"] == "Rosa Ltd" and "from_warehouse" not in buy
    assert buy["qty"] >= 4 * 14 - 3 and 3.5 <= buy["daily_demand"] <= 4.5
    assert buy["days_of_cover"] < 1 and buy["stockout_date"] == utcnow().date().isoformat()
    for item in body["suggestions"]:
        assert {"sku", "warehouse", "action", "qty", "daily_demand", "days_of_cover", "reason"} <= set(item)


async def test_a_warehouse_stocked_after_the_days_forecast_is_planned_the_same_day(
        services: Services, db: Database, api_settings: Settings) -> None:
    async with db.transaction() as session:
        product = await add_product(session, "P", lead_time_days=14, stock={"SH": 200})
        await add_history(session, product.id, "SH", [(4, 200)] * 60)
    await refresh_forecasts(db, services.settings, services.templates)  # the day's run
    await cover_after_stock_changes(services)
    async with db.transaction() as session:  # then the shop opens BJ with a few units
        await apply_changes(session, [StockChange("P", "BJ", delta=2, reason="receipt")])
    await cover_after_stock_changes(services)
    async with TestClient(TestServer(create_api_app(api_settings, db))) as client:
        body = await (await _get(client)).json()
    lines = {(item["sku"], item["warehouse"]): item for item in body["suggestions"]}
    assert ("P", "BJ") in lines
    line = lines[("P", "BJ")]
    assert line["action"] == "transfer" and line["from_warehouse"] == "SH" and line["qty"] > 0
    assert line["daily_demand"] > 0  # the product's own rate elsewhere, until BJ has days of its own


async def test_products_that_never_sold_wait_for_the_daily_run_instead_of_a_forecast_each(
        services: Services, db: Database) -> None:
    """A stock import of thousands of new products must not set off a forecast run: with no
    sales they would be forecast at zero demand, which changes no suggestion."""
    async with db.transaction() as session:
        sold = await add_product(session, "SOLD", stock={"SH": 200})
        await add_history(session, sold.id, "SH", [(4, 200)] * 60)
    await refresh_forecasts(db, services.settings, services.templates)  # the day's run
    await cover_after_stock_changes(services)
    async with db.transaction() as session:
        await add_product(session, "NEW", stock={"SH": 0})
        await apply_changes(session, [StockChange("NEW", "SH", delta=30, reason="receipt"),
                                      StockChange("SOLD", "BJ", delta=2, reason="receipt")])
    await cover_after_stock_changes(services)
    async with db.read_session() as session:
        forecast = set((await session.execute(
            select(Product.sku, Warehouse.code).join(DemandForecast, DemandForecast.product_id == Product.id)
            .join(Warehouse, Warehouse.id == DemandForecast.warehouse_id))).all())
    assert forecast == {("SOLD", "SH"), ("SOLD", "BJ")}


async def test_an_api_receipt_settles_incoming_and_times_the_supplier(db: Database, api_settings: Settings) -> None:
    async with db.transaction() as session:
        product = await add_product(session, "P", supplier="Rosa Ltd", stock={"SH": 1})
        sh = (await warehouse_ids(session, ["SH"], create=False))["SH"]
        await place_order(session, product, sh, 24, utcnow() + timedelta(days=5), None)
    body = json.dumps({"events": [{"event_id": "r-1", "sku": "P", "warehouse": "SH", "delta": 24,
                                   "reason": "receipt"}]}).encode()
    async with TestClient(TestServer(create_api_app(api_settings, db))) as client:
        signed_at = time.time()  # once: a first request slower than a second must not sign the retry alike
        for attempt in range(2):  # the retry (signed anew) is a duplicate: settles nothing twice
            signed = signed_headers(SECRET, "POST", "/api/v1/stock-events", body, now=signed_at - 10 * attempt)
            response = await client.post("/api/v1/stock-events", data=body, headers={
                "Content-Type": "application/json", **signed})
            assert response.status == 200
    async with db.read_session() as session:
        level = await session.scalar(select(StockLevel))
        order = await session.scalar(select(PurchaseOrder))
    assert (level.on_hand, level.incoming) == (25, 0)
    assert order.received_at is not None
