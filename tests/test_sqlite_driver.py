"""SQLite statements make one trip to the connection's thread, and still behave as the driver's."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.db import create_engine

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("name", String, unique=True))


@pytest.fixture
async def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call sent to an aiosqlite connection's thread, by the function's name."""
    sent: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return sent


async def test_a_statement_is_one_trip_to_the_database_thread(engine, trips: list[str]) -> None:  # type: ignore[no-untyped-def]
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))  # the pool's first checkout: connect and set up
        trips.clear()
        rows = (await connection.execute(select(items.c.id, items.c.name).where(items.c.id > 0))).all()
    assert rows == []
    # aiosqlite's adapter made four: open a cursor, execute, fetch, close.
    assert trips.count("_run") == 1, trips
    assert [trip for trip in trips if trip != "_run"] in ([], ["rollback"]), trips


async def test_rows_counts_and_errors_are_the_drivers(engine) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as connection:
        inserted = await connection.execute(insert(items).returning(items.c.id), [{"name": "a"}, {"name": "b"}])
        assert sorted(inserted.scalars()) == [1, 2]  # RETURNING rows, several parameter sets
        many = await connection.execute(insert(items), [{"name": f"n{n}"} for n in range(50)])  # executemany
        assert many.rowcount == 50
        one = await connection.execute(insert(items).values(name="last"))
        assert one.inserted_primary_key == (53,)  # lastrowid
        changed = await connection.execute(update(items).where(items.c.id <= 10).values(name=items.c.name + "!"))
        assert changed.rowcount == 10
        assert await connection.scalar(select(func.count()).select_from(items)) == 53
        assert (await connection.execute(select(items.c.name).where(items.c.id == 1))).scalar_one() == "a!"
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(items).values(name="last"))
    with pytest.raises(OperationalError, match="no such table"):
        async with engine.connect() as connection:
            await connection.execute(text("SELECT * FROM nowhere"))
    async with engine.connect() as connection:  # the failed transaction changed nothing
        assert await connection.scalar(select(func.count()).select_from(items)) == 53
