"""Keys that may be accepted once, by all processes sharing the database together.

A request signature (bot/api) and a Telegram update_id (webhook mode) each count only the first
time any process claims them. The claim is an `INSERT ... ON CONFLICT DO NOTHING` on the primary
key, so two processes racing for one key get one winner on SQLite and PostgreSQL alike, without
a lock held past the statement. A key is remembered until it could no longer be accepted anyway
(a signature's timestamp leaves the tolerance window), then purged.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, dialect_insert
from bot.models import SeenOnce, utcnow

SIGNATURES = "signature"  # integration API request signatures (bot/api)
UPDATES = "update"  # Telegram update_ids taken in webhook mode (bot/serve.py)
PURGE_EVERY_S = 60.0  # expired keys are harmless; deleting them once a minute keeps the table small


class SeenOnceStore:
    """Claims keys of one scope (`signature`, `update`) in the shared `seen_once` table, and
    now and then forgets the expired ones."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self._purged_at = float("-inf")

    async def claim_in(self, session: AsyncSession, key: str, keep_until: datetime) -> bool:
        """True the first time `key` is claimed (by any process), False ever after. The claim
        is part of the caller's transaction: it counts only if that commits."""
        statement = (
            dialect_insert(session, SeenOnce.__table__)
            .values(scope=self.scope, key=key, expires_at=keep_until)
            .on_conflict_do_nothing(index_elements=["scope", "key"])
            .returning(SeenOnce.key)
        )
        claimed = (await session.execute(statement)).first() is not None
        if claimed and time.monotonic() - self._purged_at > PURGE_EVERY_S:
            self._purged_at = time.monotonic()
            await session.execute(delete(SeenOnce).where(SeenOnce.scope == self.scope, SeenOnce.expires_at < utcnow()))
        return claimed

    async def claim(self, db: Database, key: str, keep_until: datetime) -> bool:
        """`claim_in` in a transaction of its own."""
        async with db.transaction() as session:
            return await self.claim_in(session, key, keep_until)


def keep_for(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)
