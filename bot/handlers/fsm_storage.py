"""aiogram FSM storage in the database, so a conversation survives a restart and can continue on
another process behind a load balancer (webhook mode on PostgreSQL).

On SQLite the dispatcher keeps FSM state in memory instead: every update already holds SQLite's
single write lock in its unit of work, and a second writer for the state would wait on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StorageKey

from bot.db import Database, dialect_insert
from bot.models import ConversationState, utcnow


def _key(key: StorageKey) -> str:
    return ":".join(
        str(part) for part in (key.bot_id, key.chat_id, key.user_id, key.thread_id or "", key.business_connection_id or "", key.destiny)
    )


class DatabaseStorage(BaseStorage):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _write(self, key: StorageKey, **values: Any) -> None:
        async with self.db.transaction() as session:
            insert = dialect_insert(session, ConversationState.__table__).values(
                key=_key(key), state=values.get("state"), data=values.get("data", {}), updated_at=utcnow()
            )
            await session.execute(
                insert.on_conflict_do_update(index_elements=["key"], set_={**values, "updated_at": utcnow()})
            )

    async def set_state(self, key: StorageKey, state: str | State | None = None) -> None:
        await self._write(key, state=state.state if isinstance(state, State) else state)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self.db.read_session() as session:
            row = await session.get(ConversationState, _key(key))
            return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self.db.read_session() as session:
            row = await session.get(ConversationState, _key(key))
            return dict(row.data) if row and row.data else {}

    async def close(self) -> None:
        return None
