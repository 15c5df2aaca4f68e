"""Send budgets: how fast the delivery worker may send, and the pause after a Bot API 429.

The sender asks its `RateGate` for a slot before every message and tells it about every 429.
On SQLite there is one `run` process, so `LocalRateGate` keeps the budget in memory exactly as
the sender always did. On PostgreSQL any number of `run` processes may share the outbox, and
the contract makes SEND_RATE and a 429 pause hold for all of them together, so
`PostgresRateGate` keeps the budget in a row of `send_gates` that every process reserves from.

Why a shared bucket and not one elected sender. With advisory-lock leadership only the leader
would send and the others would stand by: simple, but one process's event loop becomes the
ceiling for every message, which is what running more processes was meant to lift (paid
broadcasts go to 1,000 messages a second). A shared row costs one short `UPDATE ... RETURNING`
per reservation and lets every process send:

- A reservation moves `next_at` (the first slot nobody holds) on by n slots of 1/rate seconds and
  returns how far ahead, by the database's clock, the block ends; the process then waits for each
  slot on its own clock, reserving the next block meanwhile. Slots never overlap, so every second holds at most rate + 1 sends, however
  many processes there are. n is one at ordinary rates and covers 20 ms at high ones, so a
  reservation is not a round trip per message at 1,000 a second.
- A process that wakes for a slot later than a small tolerance gives the slot up rather than
  send into a second that may already be full (a busy event loop must not create bursts).
- A 429 sets `paused_until` on every row; a reservation never starts before it, so every
  process holds off until the `retry_after` has passed. Slots reserved before the 429 was
  recorded may still be used: at most two blocks per process (one slot each at ordinary rates).
- Only the database's clock is compared with the row, so processes on different hosts need no
  synchronised clocks.

Paid broadcasts (PAID_BROADCAST): restock waves and stockout offers may go out with Telegram's
`allow_paid_broadcast`, up to 1,000 a second for a fee in Stars. They draw from their own budget
at PAID_BROADCAST_RATE; everything else stays within SEND_RATE.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime
from typing import Protocol

from aiolimiter import AsyncLimiter
from sqlalchemy import text

from bot.db import Database
from bot.settings import Settings

log = logging.getLogger(__name__)
SPACING_SLACK = 0.00025  # seconds: Telegram counts arrivals, and network delays are uneven
PAID_KINDS = frozenset({"restock_notice", "stockout_offer"})  # restock waves, stockout offers
BLOCK_SECONDS = 0.02  # a reservation covers this much sending at high rates
MIN_CLAIM = 20


class RateGate(Protocol):
    """The sender's send budget: a slot before each message, and the flood-control pause."""

    claim_size: int  # how many outbox rows one process should hold in memory

    def is_paid(self, kind: str) -> bool:
        """Whether messages of this kind go out as paid broadcasts."""
        ...

    async def acquire(self, *, paid: bool = False) -> None:
        """Return when one message may be sent now."""
        ...

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429: no process sharing this gate sends for `seconds`."""
        ...


def spacing(rate: float) -> float:
    """Strict spacing, no bursts: every sliding second holds at most `rate` (+1) sends."""
    return 1 / rate + SPACING_SLACK


class _Paid:
    def __init__(self, paid_rate: float | None) -> None:
        self.paid_rate = paid_rate

    def is_paid(self, kind: str) -> bool:
        return self.paid_rate is not None and kind in PAID_KINDS


class LocalRateGate(_Paid):
    """One process (SQLite): the budget lives in memory; the sender's own pause covers a 429."""

    def __init__(self, rate: float, *, paid_rate: float | None = None) -> None:
        super().__init__(paid_rate)
        self.claim_size = max(MIN_CLAIM, min(1000, int(max(rate, paid_rate or 0) * 4)))
        # Capacity one: no burst after an idle spell.
        self._limiters = {False: AsyncLimiter(1, spacing(rate))}
        if paid_rate is not None:
            self._limiters[True] = AsyncLimiter(1, spacing(paid_rate))

    async def acquire(self, *, paid: bool = False) -> None:
        await self._limiters[paid].acquire()

    async def pause(self, seconds: float) -> None:
        """Nothing to tell: no other process shares this budget."""


class _Bucket:
    def __init__(self, name: str, rate: float) -> None:
        self.name = name
        self.spacing = spacing(rate)
        self.block = max(1, int(rate * BLOCK_SECONDS))
        # Waking later than this gives the slot up; at high rates a little lateness is allowed
        # (a few messages in a thousand) so that the event loop's granularity does not waste slots.
        self.tolerance = max(self.spacing / 2, 0.005)
        self.slots: deque[float] = deque()  # reserved slot times, on this process's monotonic clock
        self.lock = asyncio.Lock()
        self.next: asyncio.Task[None] | None = None  # the reservation made while a slot is awaited


_RESERVE = text(
    "UPDATE send_gates SET next_at = greatest(next_at, clock_timestamp(),"
    " coalesce(paused_until, '-infinity')) + make_interval(secs => :span)"
    " WHERE name = :name RETURNING next_at, extract(epoch FROM next_at - clock_timestamp())"
)
_PAUSE = text(
    "UPDATE send_gates SET paused_until = greatest(coalesce(paused_until, '-infinity'),"
    " clock_timestamp() + make_interval(secs => :seconds))"
)
_ENSURE = text(
    "INSERT INTO send_gates (name, next_at) VALUES (:name, clock_timestamp()) ON CONFLICT (name) DO NOTHING"
)


class PostgresRateGate(_Paid):
    """Several processes on one PostgreSQL database: one budget in `send_gates` for them all."""

    def __init__(self, db: Database, rate: float, *, paid_rate: float | None = None) -> None:
        super().__init__(paid_rate)
        self.db = db
        # One second of the whole bot's sending: holding more would starve the other processes.
        self.claim_size = max(MIN_CLAIM, min(1000, int(max(rate, paid_rate or 0))))
        self._buckets = {False: _Bucket("free", rate)}
        if paid_rate is not None:
            self._buckets[True] = _Bucket("paid", paid_rate)

    async def acquire(self, *, paid: bool = False) -> None:
        bucket = self._buckets[paid]
        async with bucket.lock:
            while True:
                if not bucket.slots:
                    reservation, bucket.next = bucket.next or asyncio.create_task(self._reserve(bucket)), None
                    try:
                        await reservation
                    except Exception:  # the database is away: no slot, so no send; try again soon
                        log.exception("reserving send slots failed")
                        await asyncio.sleep(1)
                        continue
                    if not bucket.slots:  # an earlier reservation, already used up
                        continue
                slot = bucket.slots.popleft()
                if not bucket.slots and bucket.next is None:
                    # Reserve the next slot while waiting for this one, so that a round trip to the
                    # database does not sit between two sends.
                    bucket.next = asyncio.create_task(self._reserve(bucket))
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() - slot <= bucket.tolerance:
                    return

    async def pause(self, seconds: float) -> None:
        for bucket in self._buckets.values():
            bucket.slots.clear()  # reserved before the 429: they may fall inside the pause
        async with self.db.transaction() as session:
            await self._ensure(session)
            await session.execute(_PAUSE, {"seconds": float(seconds)})

    async def reserve_block(self, name: str, count: int, slot_spacing: float) -> tuple[datetime, float]:
        """Reserve `count` slots: when the block ends, and how many seconds from now that is
        (both by the database's clock)."""
        params = {"name": name, "span": count * slot_spacing}
        async with self.db.transaction() as session:
            row = (await session.execute(_RESERVE, params)).first()
            if row is None:  # a fresh database (or one a test emptied): make the rows
                await self._ensure(session)
                row = (await session.execute(_RESERVE, params)).one()
        return row[0], float(row[1])

    async def _reserve(self, bucket: _Bucket) -> None:
        _, ahead = await self.reserve_block(bucket.name, bucket.block, bucket.spacing)
        end = time.monotonic() + ahead
        bucket.slots.extend(end - (bucket.block - i) * bucket.spacing for i in range(bucket.block))

    async def _ensure(self, session) -> None:  # type: ignore[no-untyped-def]
        for name in ("free", "paid"):
            await session.execute(_ENSURE, {"name": name})


def create_rate_gate(settings: Settings, db: Database) -> RateGate:
    paid_rate = settings.PAID_BROADCAST_RATE if settings.PAID_BROADCAST else None
    if db.is_sqlite:
        return LocalRateGate(settings.SEND_RATE, paid_rate=paid_rate)
    return PostgresRateGate(db, settings.SEND_RATE, paid_rate=paid_rate)
