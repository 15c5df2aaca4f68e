"""The migrations build exactly the schema the models describe, from an empty database."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.db import Database
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
