"""Shared fixtures. DATABASE_URL decides the backend: unset or SQLite gives each test a fresh
migrated SQLite file; a postgresql+asyncpg:// URL runs the same tests on that server, with the
tables emptied between tests. Under pytest-xdist each worker on PostgreSQL gets a database of
its own beside the named one (`<name>_gw0`, ...), made on the same server when missing."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from bot.db import Database, create_database
from bot.migrate import recreate
from bot.sandbox import BotApiSandbox
from bot.models import Base
from bot.settings import Settings, load_settings
from tests.factories import ADMIN

GIVEN_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = GIVEN_URL.startswith("postgresql")
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", ... when pytest-xdist runs this process


def _worker_url(url: str) -> str:
    if not (ON_POSTGRES and _WORKER):
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{_WORKER}").render_as_string(hide_password=False)


POSTGRES_URL = _worker_url(GIVEN_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run only the tests that get the database from `migrated_template` (directly
    or through `database_url`, `db`, `settings`, ...). The others (the CLI on its own SQLite
    file, charts, pure rules) do the same thing on either pass, so CI runs them once."""
    if not ON_POSTGRES:
        return
    same_on_both = pytest.mark.skip(reason="does not use DATABASE_URL: runs in the SQLite pass")
    for item in items:
        if "migrated_template" not in getattr(item, "fixturenames", ()):
            item.add_marker(same_on_both)


async def _create_database_if_missing(given: str, wanted: str) -> None:
    name = make_url(wanted).database
    server = create_database(given)
    try:
        async with server.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            exists = await connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:  # CREATE DATABASE cannot run inside a transaction
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await server.dispose()


async def _fresh_schema(url: str) -> None:
    if ON_POSTGRES and url != GIVEN_URL:  # a worker's own database
        await _create_database_if_missing(GIVEN_URL, url)
    db = create_database(url)
    try:
        await recreate(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Migrate once per run; each test then starts from a copy (SQLite) or empty tables."""
    if ON_POSTGRES:
        asyncio.run(_fresh_schema(POSTGRES_URL))
        return None
    template = tmp_path_factory.mktemp("template") / "stockbot.db"
    asyncio.run(_fresh_schema(f"sqlite+aiosqlite:///{template}"))
    return template


@pytest.fixture
def database_url(migrated_template: Path | None, tmp_path: Path) -> str:
    if migrated_template is None:
        return POSTGRES_URL
    target = tmp_path / "stockbot.db"
    shutil.copyfile(migrated_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = create_database(database_url)
    if database.engine.dialect.name == "postgresql":
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with database.engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield database
    await database.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        _env_file=None,
        DATABASE_URL=database_url,
        BOT_TOKEN="123456:SANDBOX-TOKEN",
        ADMIN_IDS=str(ADMIN),
        QUIET_HOURS="",
    )


@pytest.fixture
async def bot_harness(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    from tests.harness import running_bot

    async with running_bot(settings, db) as harness:
        yield harness


@pytest.fixture
async def sandbox() -> AsyncIterator[BotApiSandbox]:
    """A Bot API sandbox on this test's event loop (test_run.py uses one on its own thread)."""
    async with BotApiSandbox() as running:
        yield running
