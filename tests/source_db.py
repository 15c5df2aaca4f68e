"""A shop's own database for connector tests: SQLite in the test's folder, or (on the PostgreSQL
pass) a database of its own on the same server, holding an ERP-like stock table the test changes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import GIVEN_URL, POSTGRES_URL

QUERY = "SELECT item_code AS sku, stock_code AS warehouse, qty AS on_hand FROM erp_stock"


def source_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'erp.db'}"
    url = make_url(POSTGRES_URL)
    return url.set(database=f"{url.database}_erp").render_as_string(hide_password=False)


async def create_source(url: str, rows: Iterable[tuple[str, str, object]]) -> None:
    if url.startswith("postgresql"):
        server = create_async_engine(GIVEN_URL, isolation_level="AUTOCOMMIT")
        name = make_url(url).database
        async with server.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await server.dispose()
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE erp_stock (item_code VARCHAR(64), stock_code VARCHAR(16), "
                                      "qty NUMERIC(12, 2))"))
    await engine.dispose()
    await set_rows(url, rows)


async def set_rows(url: str, rows: Iterable[tuple[str, str, object]]) -> None:
    """Replace the source's stock table with `rows`, as the shop's ERP would change it."""
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM erp_stock"))
        given = [{"sku": sku, "warehouse": warehouse, "qty": qty} for sku, warehouse, qty in rows]
        if given:
            await connection.execute(text("INSERT INTO erp_stock VALUES (:sku, :warehouse, :qty)"), given)
    await engine.dispose()


async def execute(url: str, statement: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


async def count_rows(url: str) -> int:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        found = await connection.scalar(text("SELECT COUNT(*) FROM erp_stock"))
    await engine.dispose()
    return int(found or 0)
