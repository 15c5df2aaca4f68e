"""The migrations build exactly the schema the models describe, from an empty database."""

import json
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.db import Database
from bot.migrate import alembic_config, head_revision
from bot.models import Base


async def test_migrated_schema_matches_the_models(db: Database) -> None:
    def differences(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as connection:
        diff = await connection.run_sync(differences)
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert diff == []
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables


def test_the_head_read_without_alembic_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [head_revision()]


# A fresh interpreter: this one has alembic loaded long ago.
_START_ON_A_MIGRATED_DATABASE = """
import asyncio, json, sys
from bot.db import create_database
from bot.migrate import upgrade
async def main():
    db = create_database(sys.argv[1])
    await upgrade(db)
    await db.dispose()
asyncio.run(main())
print(json.dumps("alembic" in sys.modules))
"""


def test_a_migrated_database_starts_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    root = Path(__file__).resolve().parents[1]

    def start() -> bool:
        done = subprocess.run([sys.executable, "-c", _START_ON_A_MIGRATED_DATABASE, url], cwd=root,
                              capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout)

    assert start() is True  # a new database: alembic migrates it
    assert start() is False  # at the head already: nothing to load


_OPEN_FOR_RUN = """
import asyncio, json, sys
from bot.migrate import at_head
from bot.startup import open_database
from bot.settings import load_settings
async def main():
    db = await open_database(load_settings(_env_file=None, DATABASE_URL=sys.argv[1]), migrate_in_child=True)
    migrated = await at_head(db)
    await db.dispose()
    return migrated
print(json.dumps([asyncio.run(main()), "alembic" in sys.modules]))
"""


def test_stockbot_run_migrates_a_new_database_in_a_child_and_never_loads_alembic(tmp_path: Path) -> None:
    """`run` stays up for weeks; alembic (~12 MB with mako and pygments) stays in the child."""
    done = subprocess.run([sys.executable, "-c", _OPEN_FOR_RUN, f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120,
                          check=True)
    assert json.loads(done.stdout) == [True, False]
