"""Sales history and customer time zones by import; orders and stock written in chunks, all or nothing."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.db import Database
from bot.delivery.outbox import Gate, Outgoing, claim_due, enqueue
from bot.ingest import importer
from bot.ingest.importer import import_csv
from bot.models import (
    Customer, Notification, Order, OrderLine, Product, SalesDay, StockEvent, StockLevel, StockMovement,
)
from tests.factories import add_product, add_sold_out
from tests.test_api import client, post  # noqa: F401  (the API fixture and its signed POST)

HEADER = "date,sku,warehouse,sold,on_hand\n"


async def _history(db: Database) -> dict[tuple[str, str, date], tuple[int, int | None, str]]:
    async with db.read_session() as session:
        rows = await session.execute(
            select(Product.sku, SalesDay.warehouse_id, SalesDay.day, SalesDay.sold, SalesDay.on_hand, SalesDay.source)
            .join(Product, Product.id == SalesDay.product_id)
        )
        return {(sku, str(w), day): (sold, on_hand, source) for sku, w, day, sold, on_hand, source in rows}


@pytest.fixture
async def shop(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        a = await add_product(session, "A", stock={"SH": 5, "BJ": 1})
        b = await add_product(session, "B", stock={"SH": 2})
    return {"A": a.id, "B": b.id}


async def test_history_import_every_bad_row_named_and_nothing_written(db: Database, shop: dict[str, int]) -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    today = datetime.now(shanghai).date()
    tomorrow = today + timedelta(days=1)
    data = (
        HEADER
        + "2026-03-01,A,SH,4,10\n"
        + f"{tomorrow},A,SH,1,\n"  # line 3: the future, in the shop's zone
        + "2026-02-30,A,SH,1,\n"  # line 4
        + "01/03/2026,A,SH,1,\n"  # line 5
        + "2026-03-02,A,SH,-1,\n"  # line 6
        + "2026-03-02,A,SH,1,many\n"  # line 7
        + "2026-03-02,ZZ,SH,1,\n"  # line 8
        + "2026-03-02,A,GZ,1,x\n"  # line 9: a new warehouse is fine (created as by stock); on_hand is not
        + "2026-03-01,A,SH,9,\n"  # line 10: the same day again
        + "2026-03-02,A,SH,x,-2\n"  # line 11: every reason of the row
    )
    report = await import_csv(db, "history", data.encode(), label="h.csv", zone=shanghai)
    assert report.error_lines() == [
        f"h.csv:3: date {tomorrow} is in the future",
        "h.csv:4: date '2026-02-30' is not a date written YYYY-MM-DD",
        "h.csv:5: date '01/03/2026' is not a date written YYYY-MM-DD",
        "h.csv:6: sold -1 is negative",
        "h.csv:7: on_hand 'many' is not a whole number",
        "h.csv:8: unknown SKU 'ZZ'",
        "h.csv:9: on_hand 'x' is not a whole number",
        "h.csv:10: duplicate day 2026-03-01 for A in SH (first on line 2)",
        "h.csv:11: sold 'x' is not a whole number; on_hand -2 is negative",
    ]
    assert await _history(db) == {}
    missing = await import_csv(db, "history", b"date,sku,sold\n2026-03-01,A,1\n2026-03-02,A,1\n", label="h.csv")
    assert missing.error_lines() == ["h.csv:1: missing column warehouse"]


async def test_history_import_again_replaces_the_day_and_lists_the_products(db: Database, shop: dict[str, int]) -> None:
    first = HEADER + "2026-03-01,A,SH,4,10\n2026-03-01,A,BJ,0,0\n2026-03-02,B,SH,3,\n"
    report = await import_csv(db, "history", first.encode(), label="h.csv")
    assert report.ok, report.error_lines()
    assert report.product_ids == {shop["A"], shop["B"]}  # what the forecast refresh needs
    again = "date,sku,warehouse,sold\n2026-03-01,A,SH,6\n"
    report = await import_csv(db, "history", again.encode(), label="h.csv")
    assert report.ok and report.product_ids == {shop["A"]}
    history = await _history(db)
    assert sorted((sku, day.isoformat(), sold, on_hand) for (sku, _, day), (sold, on_hand, _) in history.items()) == [
        ("A", "2026-03-01", 0, 0), ("A", "2026-03-01", 6, None), ("B", "2026-03-02", 3, None),
    ]
    assert {source for _, _, source in history.values()} == {"import"}


async def test_history_dry_run_writes_nothing(db: Database, shop: dict[str, int]) -> None:
    report = await import_csv(db, "history", (HEADER + "2026-03-01,A,SH,4,10\n").encode(), label="h.csv", dry_run=True)
    assert report.ok and report.rows == 1
    assert await _history(db) == {}


async def test_orders_split_across_write_chunks_stay_whole(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)  # every chunk boundary falls inside an order
    async with db.transaction() as session:
        for sku in "ABCD":
            await add_product(session, sku, stock={"SH": 5})
        await add_sold_out(session, "OUT")
    assert (await import_csv(db, "customers", b"external_id,name,tier\nC1,Li,vip\nC2,Bo,regular\n", label="c.csv")).ok
    data = (
        "external_id,customer_external_id,sku,qty,status\n"
        "O1,C1,A,1,open\nO2,C2,A,1,open\nO1,C1,B,2,open\nO1,C1,C,1,fulfilled\nO2,C2,OUT,1,backordered\n"
        "O1,C1,OUT,3,open\n"
    )
    report = await import_csv(db, "orders", data.encode(), label="o.csv")
    assert report.ok and (report.created, report.updated) == (2, 0)
    assert await _lines(db) == {
        ("O1", "A"): (1, "open"), ("O1", "B"): (2, "open"), ("O1", "C"): (1, "fulfilled"), ("O1", "OUT"): (3, "open"),
        ("O2", "A"): (1, "open"), ("O2", "OUT"): (1, "backordered"),
    }
    assert await _short_events(db) == 2  # both open lines of the product that is out
    # A new version of O1 without B: B's line is cancelled, not deleted; OUT stays open (no new event).
    again = "external_id,customer_external_id,sku,qty,status\nO1,C1,A,2,open\nO1,C1,OUT,3,open\n"
    report = await import_csv(db, "orders", again.encode(), label="o.csv")
    assert report.ok and (report.created, report.updated) == (0, 1)
    lines = await _lines(db)
    assert lines[("O1", "A")] == (2, "open") and lines[("O1", "B")] == (2, "cancelled")
    assert lines[("O1", "C")] == (1, "fulfilled") and await _short_events(db) == 2


async def _lines(db: Database) -> dict[tuple[str, str], tuple[int, str]]:
    async with db.read_session() as session:
        rows = await session.execute(
            select(Order.external_id, Product.sku, OrderLine.qty, OrderLine.status)
            .join(OrderLine.order).join(Product, Product.id == OrderLine.product_id)
        )
        return {(order, sku): (qty, status) for order, sku, qty, status in rows}


async def _short_events(db: Database) -> int:
    async with db.read_session() as session:
        return await session.scalar(select(func.count()).where(StockEvent.kind == "order_short")) or 0


async def test_stock_in_chunks_from_a_file_makes_the_same_crossings(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "CHUNK_ROWS", 1)
    async with db.transaction() as session:
        await add_product(session, "A", reorder_point=2, stock={"SH": 3})
    report = await import_csv(db, "stock", io.BytesIO(b"sku,warehouse,on_hand\nA,SH,1\nA,BJ,0\n"), label="s.csv")
    assert report.ok and report.updated == 1
    async with db.read_session() as session:
        kinds = (await session.scalars(select(StockEvent.kind).order_by(StockEvent.id))).all()
    assert kinds[-1] == "low_stock"


async def test_customers_time_zone_is_checked_and_quiet_hours_follow_it(db: Database) -> None:
    bad = "external_id,name,tier,timezone\nC1,Li,vip,Asia/Shanghai\nC2,Bo,regular,Mars/Olympus\nC3,Cy,regular,+08:00\n"
    report = await import_csv(db, "customers", bad.encode(), label="c.csv")
    assert [line.split(": ", 1)[0] for line in report.error_lines()] == ["c.csv:3", "c.csv:4"]
    assert "timezone 'Mars/Olympus' is not an IANA time zone" in report.error_lines()[0]
    good = "external_id,name,tier,timezone\nC1,Li,vip,Asia/Shanghai\nC2,Bo,regular,\n"
    assert (await import_csv(db, "customers", good.encode(), label="c.csv")).ok
    async with db.transaction() as session:
        ids = {c.external_id: c.id for c in await session.scalars(select(Customer))}
        for n, (external_id, customer_id) in enumerate(sorted(ids.items())):
            await enqueue(session, Outgoing(f"tz:{external_id}", 7000 + n, "back_in_stock", "back",
                                            customer_id=customer_id, to_customer=True))
    # 15:30 UTC: 23:30 in Shanghai, quiet there; afternoon in the shop's zone (UTC).
    now = datetime(2030, 1, 15, 15, 30, tzinfo=UTC)
    gate = Gate(quiet=(time(22), time(8)), zone=UTC)
    async with db.transaction() as session:
        claimed = await claim_due(session, limit=10, gate=gate, now=now)
    assert [row.customer_id for row in claimed] == [ids["C2"]]
    async with db.read_session() as session:
        held = await session.scalar(select(Notification).where(Notification.customer_id == ids["C1"]))
    assert held.state == "pending" and held.not_before == datetime(2030, 1, 16, 0, 0, tzinfo=UTC)  # 08:00 there


async def test_api_customers_take_a_time_zone(client: TestClient, db: Database) -> None:  # noqa: F811
    batch = {"customers": [
        {"external_id": "C1", "name": "Li", "tier": "vip", "timezone": "Asia/Shanghai"},
        {"external_id": "C2", "name": "Bo", "tier": "regular", "timezone": "Asia/Peking"},
        {"external_id": "C3", "name": "Cy", "tier": "regular", "timezone": 8},
    ]}
    response = await post(client, "/api/v1/customers", batch)
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "timezone"), (2, "timezone")]
    assert "is not an IANA time zone" in errors[0]["message"]
    response = await post(client, "/api/v1/customers", {"customers": [batch["customers"][0]]})
    assert response.status == 200
    # Left out, the zone is kept (as the locale is).
    response = await post(client, "/api/v1/customers", {"customers": [{"external_id": "C1", "name": "Li", "tier": "vip"}]})
    assert await response.json() == {"created": 0, "updated": 1}
    async with db.read_session() as session:
        assert await session.scalar(select(Customer.timezone)) == "Asia/Shanghai"


async def _levels(db: Database) -> dict[tuple[str, int], int]:
    async with db.read_session() as session:
        rows = await session.execute(
            select(Product.sku, StockLevel.warehouse_id, StockLevel.on_hand).join(Product, Product.id == StockLevel.product_id)
        )
        return {(sku, warehouse): on_hand for sku, warehouse, on_hand in rows}


@pytest.mark.parametrize("fault", ["disk full", "stop"])
async def test_an_import_cut_short_after_its_first_chunks_leaves_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """The contract: all or nothing, a full disk or a stop included. The third chunk fails (or the
    importer is stopped, as Ctrl-C or a bot's SIGTERM does, after two chunks were written)."""
    monkeypatch.setattr(importer, "CHUNK_ROWS", 1)
    async with db.transaction() as session:
        for sku in "ABCD":
            await add_product(session, sku, reorder_point=2, stock={"SH": 5})
    before = await _levels(db)
    writes = 0
    write_stock = importer._WRITERS["stock"]

    async def failing(*args: object) -> None:
        nonlocal writes
        writes += 1
        if writes == 3 and fault == "disk full":
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))
        await write_stock(*args)  # type: ignore[arg-type]

    monkeypatch.setitem(importer._WRITERS, "stock", failing)
    data = b"sku,warehouse,on_hand\nA,SH,0\nB,SH,1\nC,SH,0\nD,BJ,7\n"
    task = asyncio.create_task(import_csv(
        db, "stock", data, label="s.csv",
        progress=lambda step, done: task.cancel() if fault == "stop" and step == "written" and done == 2 else None,
    ))
    with pytest.raises(OperationalError if fault == "disk full" else asyncio.CancelledError):
        await task
    assert writes >= 2
    assert await _levels(db) == before
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(StockEvent)) == 0
        assert await session.scalar(select(func.count()).select_from(StockMovement).where(StockMovement.reason == "import")) == 0
    # The same file again, nothing in the way: written whole.
    monkeypatch.setitem(importer._WRITERS, "stock", write_stock)
    report = await import_csv(db, "stock", data, label="s.csv")
    assert report.ok and (report.created, report.updated) == (1, 3)
