"""The shop's own database, polled: levels that differ become counts through the stock service,
unknown SKUs and failures are logged once, and the source is never written to."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.ingest.connectors.source_db import SourcePoller
from bot.inventory.stock import StockChange, apply_changes
from bot.models import Product, StockEvent, StockEventKind, StockLevel, StockMovement, Warehouse
from bot.settings import Settings, load_settings
from tests import source_db
from tests.conftest import ON_POSTGRES
from tests.factories import add_product

SOURCES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not ON_POSTGRES, reason="a PostgreSQL source needs the PostgreSQL pass's server"))]


@pytest.fixture(params=SOURCES)
async def source(request: pytest.FixtureRequest, tmp_path: Path, db: Database) -> str:
    url = source_db.source_url(request.param, tmp_path)
    await source_db.create_source(url, [("LIP-1", "SH", 10), ("LIP-2", "SH", 3)])
    async with db.transaction() as session:
        await add_product(session, "LIP-1", reorder_point=2)
        await add_product(session, "LIP-2", reorder_point=2)
    return url


def _settings(database_url: str, source: str, **extra: Any) -> Settings:
    return load_settings(_env_file=None, DATABASE_URL=database_url, SOURCE_DATABASE_URL=source,
                         SOURCE_STOCK_QUERY=extra.pop("query", source_db.QUERY), **extra)


async def levels(db: Database) -> dict[tuple[str, str], int]:
    async with db.read_session() as session:
        rows = await session.execute(
            select(Product.sku, Warehouse.code, StockLevel.on_hand).join(StockLevel, StockLevel.product_id == Product.id)
            .join(Warehouse, Warehouse.id == StockLevel.warehouse_id))
        return {(sku, code): on_hand for sku, code, on_hand in rows}


async def ledger(db: Database) -> list[tuple[str, int, str]]:
    async with db.read_session() as session:
        rows = await session.execute(select(Product.sku, StockMovement.delta, StockMovement.actor)
                                     .join(Product, Product.id == StockMovement.product_id).order_by(StockMovement.id))
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_each_poll_counts_only_the_levels_that_differ(db: Database, database_url: str, source: str) -> None:
    poller = SourcePoller(_settings(database_url, source), db)
    first = await poller.poll()
    assert first is not None and first.rows == 2
    assert await levels(db) == {("LIP-1", "SH"): 10, ("LIP-2", "SH"): 3}
    assert await ledger(db) == [("LIP-1", 10, "source"), ("LIP-2", 3, "source")]

    unchanged = await poller.poll()
    assert unchanged is not None and unchanged.changes == []
    assert len(await ledger(db)) == 2  # nothing written when nothing changed

    # The ERP sells the last LIP-1 and receives LIP-2: the stockout is one, as from any source.
    await source_db.set_rows(source, [("LIP-1", "SH", 0), ("LIP-2", "SH", 8)])
    await poller.poll()
    assert await levels(db) == {("LIP-1", "SH"): 0, ("LIP-2", "SH"): 8}
    async with db.read_session() as session:
        kinds = list(await session.scalars(select(StockEvent.kind).join(Product).where(Product.sku == "LIP-1")))
    assert StockEventKind.OUT_OF_STOCK.value in kinds


async def test_a_level_changed_in_stockbot_is_brought_back_to_the_sources(
    db: Database, database_url: str, source: str
) -> None:
    poller = SourcePoller(_settings(database_url, source), db)
    await poller.poll()
    await poller.poll()  # all equal: the next polls may skip reading Stockbot's levels...
    async with db.transaction() as session:  # ...until a /count in chat that the ERP does not know of
        await apply_changes(session, [StockChange("LIP-1", "SH", on_hand=4, actor="chat")])
    await poller.poll()
    assert (await levels(db))[("LIP-1", "SH")] == 10


async def test_rows_add_up_per_level_and_odd_rows_are_skipped(db: Database, database_url: str, source: str) -> None:
    await source_db.set_rows(source, [
        ("LIP-1", "SH", 4), ("LIP-1", "SH", 3),  # two bins of one warehouse
        ("LIP-2", "SH", -2),  # oversold in the ERP: nothing on hand
        ("LIP-2", "BJ", 2.5),  # not a whole number of units
        (None, "SH", 1),
    ])
    reading = await SourcePoller(_settings(database_url, source), db).poll()
    assert reading is not None and reading.rows == 5 and len(reading.bad) == 2
    assert await levels(db) == {("LIP-1", "SH"): 7}  # and LIP-2 has none on hand anywhere
    assert (await SourcePoller(_settings(database_url, source), db).poll()).changes == []  # type: ignore[union-attr]


async def test_an_unknown_sku_is_skipped_and_logged_once(
    db: Database, database_url: str, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    await source_db.set_rows(source, [("LIP-1", "SH", 5), ("GHOST-9", "SH", 7)])
    poller = SourcePoller(_settings(database_url, source), db)
    with caplog.at_level(logging.WARNING, logger="bot.ingest.source"):
        for _ in range(3):
            await poller.poll()
    assert [r.getMessage() for r in caplog.records if "GHOST-9" in r.getMessage()] == [
        "source: 1 SKU(s) not in Stockbot's catalog are skipped: GHOST-9"]
    assert await levels(db) == {("LIP-1", "SH"): 5}


async def test_a_failing_query_is_logged_once_per_failure_spell_and_retried(
    db: Database, database_url: str, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    poller = SourcePoller(_settings(database_url, source), db)
    await poller.poll()
    await source_db.execute(source, "ALTER TABLE erp_stock RENAME TO erp_stock_old")  # the ERP's upgrade
    with caplog.at_level(logging.INFO, logger="bot.ingest.source"):
        assert [await poller.poll() for _ in range(3)] == [None, None, None]  # never raises
        failures = [r for r in caplog.records if "failed" in r.getMessage() and r.levelno >= logging.WARNING]
        assert len(failures) == 1
        await source_db.execute(source, "ALTER TABLE erp_stock_old RENAME TO erp_stock")
        await source_db.set_rows(source, [("LIP-1", "SH", 1), ("LIP-2", "SH", 3)])
        assert await poller.poll() is not None
        assert any("works again" in r.getMessage() for r in caplog.records)
    assert (await levels(db))[("LIP-1", "SH")] == 1


async def test_the_source_is_never_written_to(db: Database, database_url: str, source: str) -> None:
    writing = "INSERT INTO erp_stock VALUES ('LIP-1', 'SH', 99) RETURNING item_code, stock_code, qty"
    poller = SourcePoller(_settings(database_url, source, query=writing), db)
    assert await poller.poll() is None
    assert await source_db.count_rows(source) == 2
    assert await levels(db) == {}


async def test_a_source_that_cannot_be_reached_does_not_stop_polling(db: Database, database_url: str, tmp_path: Path) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path / 'no-such-erp.db'}"
    poller = SourcePoller(_settings(database_url, missing), db)
    assert await poller.poll() is None
    assert not (tmp_path / "no-such-erp.db").exists()  # opened read only: not created either
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(StockMovement)) == 0
