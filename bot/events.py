"""Consumes stock event rows (threshold crossings) and hands each to the parts that react.

Whichever process wrote an event (CLI import, HTTP API, chat), the running bot finds it here.
Each event is handled in its own transaction together with its effects (prompts, offers, outbox
rows), and marked processed in that same transaction: a crash re-handles it, and the effects
are keyed in the database (unique cause keys), so handling twice does nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import StockEvent, StockEventKind, utcnow
from bot.services import Services

log = logging.getLogger(__name__)

Reaction = Callable[[AsyncSession, Services, StockEvent], Awaitable[object]]
MAX_ATTEMPTS = 5


async def process_events(
    services: Services, reactions: Mapping[StockEventKind, Sequence[Reaction]], *, limit: int = 200
) -> int:
    """Handle up to `limit` pending events, oldest first; returns how many were handled."""
    handled = 0
    failed: list[int] = []  # retried on the next call, not in a tight loop now
    while handled < limit:
        event_id: int | None = None
        try:
            async with services.db.transaction() as session:
                event = await session.scalar(
                    select(StockEvent)
                    .where(StockEvent.processed_at.is_(None), StockEvent.id.not_in(failed))
                    .order_by(StockEvent.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if event is None:
                    return handled
                event_id = event.id
                for react in reactions.get(StockEventKind(event.kind), ()):
                    await react(session, services, event)
                event.processed_at = utcnow()
        except Exception as exc:
            if event_id is None:
                raise
            log.exception("stock event %s failed", event_id)
            failed.append(event_id)
            await _record_failure(services, event_id, exc)
        handled += 1
    return handled


async def _record_failure(services: Services, event_id: int, exc: Exception) -> None:
    async with services.db.transaction() as session:
        event = await session.get(StockEvent, event_id)
        if event is None:
            return
        event.attempts += 1
        event.last_error = repr(exc)[:2000]
        if event.attempts >= MAX_ATTEMPTS:
            # Parked, not lost: the row keeps its error for an operator to see and replay.
            event.processed_at = utcnow()
            log.error("stock event %s parked after %d attempts: %r", event_id, event.attempts, exc)


async def replay_event(session: AsyncSession, event_id: int) -> None:
    await session.execute(
        update(StockEvent).where(StockEvent.id == event_id).values(processed_at=None, attempts=0)
    )
