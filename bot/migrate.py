"""Schema migrations, applied in process by `stockbot db upgrade` and `stockbot run`."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from bot import migrations
from bot.db import Database

if TYPE_CHECKING:  # alembic costs ~12 MB and ~0.15 s, paid only when there is something to migrate
    from alembic.config import Config

_VERSIONS = Path(migrations.__file__).parent / "versions"
_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*['\"]?([\w.-]+|None)['\"]?\s*$", re.MULTILINE)


def alembic_config() -> Config:
    from alembic.config import Config  # deferred: see TYPE_CHECKING above

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    if revision == "head" and await at_head(db):
        return  # the usual start of `stockbot run`: nothing to do, so no alembic in memory

    def _upgrade(connection: Connection) -> None:
        from alembic import command  # deferred: see TYPE_CHECKING above

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(_upgrade)


@cache
def head_revision() -> str | None:
    """The newest migration, read off the version files without alembic; None if they do not
    form one chain (alembic then decides)."""
    revisions: dict[str, str | None] = {}
    for path in _VERSIONS.glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            down = found.get("down_revision")
            revisions[found["revision"]] = None if down in (None, "None") else down
    heads = revisions.keys() - set(revisions.values())
    return next(iter(heads)) if len(heads) == 1 else None


async def at_head(db: Database) -> bool:
    """Whether the database is at the newest migration (read without alembic)."""
    head = head_revision()
    if head is None:
        return False
    try:
        async with db.engine.connect() as connection:
            current = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except DBAPIError:  # no such table: a new database
        return False
    return current == [head]


async def recreate(db: Database) -> None:
    """Drop everything and migrate from empty: for test and benchmark databases only."""
    if db.engine.dialect.name == "postgresql":
        async with db.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    await upgrade(db)
