"""Contact batches: one import or API batch whose stock events may message customers.

The writer marks its transaction with `write_in_batch`: an import makes its batch in its one
write transaction (`import_batch`); an API request names a `PendingBatch`, made only if the request
writes an event a customer would hear of. Both commit closed, with their events. The
stock service stamps each event row with its batch: a batch's customer events wait in a lane of
their own until the running bot has weighed the whole batch against MASS_CONTACT_LIMIT
(`bot/recovery/hold.py`). Chat commands make no batch: a single count is live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import BatchStatus, ContactBatch, utcnow
from bot.pipeline import CUSTOMER_FACING, event_lane

MAX_CAUSE = 256
# Batches of an older version, whose imports committed chunk by chunk, could be left open by an
# import that was killed: their events are weighed anyway.
STALE_OPEN = timedelta(minutes=10)
_BATCH_KEY = "contact_batch"  # session.info: the batch this transaction's events belong to


@dataclass(slots=True)
class PendingBatch:
    """A batch made by the first event of its transaction that a customer would hear of."""

    cause: str
    id: int | None = None

    def resolve(self, connection: Connection) -> int:
        if self.id is None:
            now = utcnow()
            self.id = connection.execute(
                insert(ContactBatch).values(cause=self.cause[:MAX_CAUSE], from_import=False,
                                            status=BatchStatus.CLOSED.value, customers=0, products=0,
                                            created_at=now, closed_at=now)
                .returning(ContactBatch.id)
            ).scalar_one()
        return self.id


BatchRef = int | PendingBatch | None


def write_in_batch(session: AsyncSession, batch: BatchRef) -> None:
    """Stamp every stock event this transaction writes with `batch`."""
    session.info[_BATCH_KEY] = batch


def batch_of(session: AsyncSession) -> BatchRef:
    return session.info.get(_BATCH_KEY)


def stamped(connection: Connection, rows: Sequence[dict[str, Any]], batch: BatchRef) -> list[dict[str, Any]]:
    """Event rows with their batch and lane, set on every row (one executemany, one key set)."""
    if isinstance(batch, PendingBatch):
        batch = batch.resolve(connection) if any(row["kind"] in CUSTOMER_FACING for row in rows) else None
    return [{**row, "batch_id": batch, "lane": event_lane(row["kind"], in_batch=batch is not None)} for row in rows]


async def import_batch(session: AsyncSession, cause: str) -> int:
    """The batch of an import, made in the import's one write transaction: it commits, closed,
    with every event stamped with it, or not at all (an import is all or nothing)."""
    now = utcnow()
    batch = ContactBatch(cause=cause[:MAX_CAUSE], from_import=True, status=BatchStatus.CLOSED.value,
                         customers=0, products=0, created_at=now, closed_at=now)
    session.add(batch)
    await session.flush()
    return batch.id
