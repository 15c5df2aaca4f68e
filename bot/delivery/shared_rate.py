"""Send budgets: how fast the delivery worker may send, and the pause after a Bot API 429.

The sender asks its `RateGate` for a slot before every message and tells it about every 429.
On SQLite there is one `run` process, so `LocalRateGate` keeps the budget in memory; its slots
begin when the process wakes for them, and the same deadline (below) holds them to the contract.
On PostgreSQL any number of `run` processes may share the outbox, and the contract makes
SEND_RATE and a 429 pause hold for all of them together, so `PostgresRateGate` keeps the budget
in a row of `send_gates` that every process reserves from.

Why a shared bucket and not one elected sender. With advisory-lock leadership only the leader
would send and the others would stand by: simple, but one process's event loop becomes the
ceiling for every message, which is what running more processes was meant to lift (paid
broadcasts go to 1,000 messages a second). A shared row costs one short `UPDATE ... RETURNING`
per reservation and lets every process send:

- A reservation moves `next_at` (the first slot nobody holds) on by n slots of 1/rate seconds and
  returns how far ahead, by the database's clock, the block ends; the process then waits for each
  slot on its own clock, reserving the next block meanwhile. n is one at ordinary rates and
  covers 20 ms at high ones, so a reservation is not a round trip per message at 1,000 a second.
- Slots never overlap, but that alone does not keep a sliding second within rate + 1: a message
  must also leave no earlier than its slot and not much later, or it lands among the next slots
  (another process's, too). `acquire` hands out a `Slot` with a deadline: half of what the
  contract allows (see `lateness`: 23 ms at 25/s; the other half is the network's). Before the
  deadline, sends trailed their database slot by up to 27 ms with one busy loop beside four
  processes (benchmarks/send_probe.py), and by nothing that bounded it, from three places:
  - the reservation's answer: the database read its clock somewhere between the round trip's start
    and end on ours. A slot begins no earlier than the database meant (counted from the answer)
    and ends no later than it allows (counted from the start), so a late answer shortens a slot
    and never moves it onto the next one;
  - the wake-up: a process that wakes after the deadline gives the slot up;
  - the way out, between `acquire` and the socket (the sending task starting, aiogram building the
    request, the event loop getting to the task that writes it: up to 15 ms under load): the
    transport checks the deadline just before the request's bytes are written and, if it is over,
    sends nothing (`SlotMissed`); the sender puts the message back first in its chat for a new
    slot.
- A missed slot must not become a livelock (a process that always lags, missing every slot): after
  each miss the process's next slots are twice as wide (two spacings, four, ... up to a second of
  the budget, a whole wide slot for one message), so a process whose event loop lags by L misses
  about log2(L * rate) slots in a row and then sends; each used slot narrows them by one again.
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
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import text

from bot.db import Database
from bot.settings import Settings

log = logging.getLogger(__name__)
SPACING_SLACK = 0.00025  # seconds: Telegram counts arrivals, and network delays are uneven
PAID_KINDS = frozenset({"restock_notice", "stockout_offer"})  # restock waves, stockout offers
BLOCK_SECONDS = 0.02  # a reservation covers this much sending at high rates
MIN_CLAIM = 20
DRIFT = 0.001  # s/s two hosts' clocks may run apart: NTP slews each by up to 500 ppm


class RateGate(Protocol):
    """The sender's send budget: a slot before each message, and the flood-control pause."""

    claim_size: int  # how many outbox rows one process should hold in memory

    def is_paid(self, kind: str) -> bool:
        """Whether messages of this kind go out as paid broadcasts."""
        ...

    async def acquire(self, *, paid: bool = False) -> Slot:
        """Return when one message may be sent: from now until `slot.deadline`."""
        ...

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429: no process sharing this gate sends for `seconds`."""
        ...


def spacing(rate: float) -> float:
    """Strict spacing, no bursts: every sliding second holds at most `rate` (+1) sends."""
    return 1 / rate + SPACING_SLACK


def lateness(rate: float) -> float:
    """How long after its slot a message may still leave.

    Slots `spacing` apart, each used at most `late` after it begins, put at most rate + 1 sends
    in any sliding second while `late` < (rate + 1) * spacing - 1 s. The bot takes half of that;
    the other half is left for the network, whose delays to Telegram are uneven too.
    """
    return ((rate + 1) * spacing(rate) - 1) / 2


@dataclass(frozen=True, slots=True)
class Slot:
    """One message may leave from `at` until `deadline` (this process's time.monotonic())."""

    at: float
    deadline: float
    bucket: _Bucket | None = field(default=None, repr=False, compare=False)

    def missed(self) -> None:
        """Nothing was sent: the request could not leave by `deadline`. This process's next slots
        are wider, so that one whose event loop lags still gets its messages out in time."""
        if self.bucket is not None:
            self.bucket.widen()

    def used(self) -> None:
        """The request left in time: the next slots may be narrower again."""
        if self.bucket is not None:
            self.bucket.narrow()


class _Bucket:
    def __init__(self, name: str, rate: float) -> None:
        self.name = name
        self.spacing = spacing(rate)
        self.lateness = lateness(rate)
        self.block = max(1, int(rate * BLOCK_SECONDS))
        # A slot spans `width` spacings. It doubles after each missed slot, so a process misses at
        # most log2(rate) in a row unless its event loop lags more than a second, and shrinks by one
        # after each used slot: a process that lags steadily settles at the width its lag needs
        # rather than swinging between too narrow (missed) and wide enough.
        self.width = 1
        self.max_width = max(1, math.ceil(1 / self.spacing))
        self.slots: deque[Slot] = deque()  # reserved, on this process's monotonic clock
        self.lock = asyncio.Lock()
        self.next: asyncio.Task[None] | None = None  # the reservation made while a slot is awaited

    def widen(self) -> None:
        self.width = min(self.width * 2, self.max_width)

    def narrow(self) -> None:
        self.width = max(1, self.width - 1)

    def sends_per_block(self, width: int) -> int:
        """Wider slots, fewer per reservation: a reservation still spans about BLOCK_SECONDS."""
        return max(1, self.block // width)

    def reserved(self, earliest_end: float, latest_end: float, count: int, width: int) -> list[Slot]:
        """The slots of a block whose end lies between `earliest_end` and `latest_end` on this
        process's clock. A slot begins no earlier than the database meant (counted from the latest
        end) and is over no later than it allows (from the earliest): not knowing exactly when the
        block is makes its slots shorter, never shifts them onto a neighbour's."""
        span = width * self.spacing
        return [
            Slot(latest_end - before, earliest_end - before + self.usable(width), self)
            for before in ((count - i) * span for i in range(count))
        ]

    def usable(self, width: int) -> float:
        """How long after its beginning a slot of `width` spacings may still be used."""
        return (width - 1) * self.spacing + self.lateness


class _Gate:
    def __init__(self, rate: float, paid_rate: float | None, *, claim_size: int) -> None:
        self.paid_rate = paid_rate
        self.claim_size = claim_size
        self._buckets = {False: _Bucket("free", rate)}
        if paid_rate is not None:
            self._buckets[True] = _Bucket("paid", paid_rate)

    def is_paid(self, kind: str) -> bool:
        return self.paid_rate is not None and kind in PAID_KINDS

    async def pause(self, seconds: float) -> None:
        """Nothing to tell: no other process shares this budget; the sender pauses itself."""


class LocalRateGate(_Gate):
    """One process (SQLite): the budget lives in memory; the sender's own pause covers a 429."""

    def __init__(self, rate: float, *, paid_rate: float | None = None) -> None:
        super().__init__(rate, paid_rate, claim_size=max(MIN_CLAIM, min(1000, int(max(rate, paid_rate or 0) * 4))))
        self._next_at = {paid: 0.0 for paid in self._buckets}  # the first free slot

    async def acquire(self, *, paid: bool = False) -> Slot:
        bucket = self._buckets[paid]
        async with bucket.lock:
            await asyncio.sleep(self._next_at[paid] - time.monotonic())
            # The slot begins when this process wakes, however late: the next one is a full
            # spacing after it, so slots never crowd, and no burst follows an idle spell.
            begin = time.monotonic()
            self._next_at[paid] = begin + bucket.width * bucket.spacing
            return Slot(begin, begin + bucket.usable(bucket.width), bucket)


class _ClockOffset:
    """How far the database's clock (Unix time) is ahead of this process's monotonic one: between
    `low` and `high`. Each reservation bounds it, as the database read its clock somewhere between
    the round trip's start and end. The bounds of the quickest round trips are kept, loosening by
    DRIFT a second, so one slow answer does not blur where the slots are."""

    def __init__(self) -> None:
        self.low, self.high, self.at = -math.inf, math.inf, 0.0

    def observe(self, database_now: float, started: float, answered: float) -> None:
        low, high = self.bounds(answered)
        fresh_low, fresh_high = database_now - answered, database_now - started
        low, high = max(low, fresh_low), min(high, fresh_high)
        if low > high:  # the database's clock was set: only the fresh bounds hold
            low, high = fresh_low, fresh_high
        self.low, self.high, self.at = low, high, answered

    def bounds(self, now: float) -> tuple[float, float]:
        loosened = DRIFT * (now - self.at)
        return self.low - loosened, self.high + loosened


@dataclass(frozen=True, slots=True)
class Reservation:
    end: datetime  # when the block ends, by the database's clock
    ahead: float  # seconds from the database's clock reading to `end`
    clock: float  # that reading, as a Unix time


_RESERVE = text(
    "UPDATE send_gates SET next_at = greatest(next_at, clock_timestamp(),"
    " coalesce(paused_until, '-infinity')) + make_interval(secs => :span)"
    " WHERE name = :name"
    " RETURNING next_at, extract(epoch FROM next_at), extract(epoch FROM clock_timestamp())"
)
_PAUSE = text(
    "UPDATE send_gates SET paused_until = greatest(coalesce(paused_until, '-infinity'),"
    " clock_timestamp() + make_interval(secs => :seconds))"
)
_ENSURE = text(
    "INSERT INTO send_gates (name, next_at) VALUES (:name, clock_timestamp()) ON CONFLICT (name) DO NOTHING"
)


class PostgresRateGate(_Gate):
    """Several processes on one PostgreSQL database: one budget in `send_gates` for them all."""

    def __init__(self, db: Database, rate: float, *, paid_rate: float | None = None) -> None:
        # One second of the whole bot's sending: holding more would starve the other processes.
        super().__init__(rate, paid_rate, claim_size=max(MIN_CLAIM, min(1000, int(max(rate, paid_rate or 0)))))
        self.db = db
        self._offset = _ClockOffset()

    async def acquire(self, *, paid: bool = False) -> Slot:
        bucket = self._buckets[paid]
        async with bucket.lock:
            while True:
                slot = await self._take(bucket)
                if slot is None:
                    continue
                if slot.at <= slot.deadline:  # else the answer came too late to use it at all
                    await asyncio.sleep(slot.at - time.monotonic())
                    # Woken too late, the message could land in a second already full: give it up.
                    if time.monotonic() <= slot.deadline:
                        return slot
                bucket.widen()

    async def pause(self, seconds: float) -> None:
        for bucket in self._buckets.values():
            bucket.slots.clear()  # reserved before the 429: they may fall inside the pause
        async with self.db.transaction() as session:
            await self._ensure(session)
            await session.execute(_PAUSE, {"seconds": float(seconds)})

    async def reserve_block(self, name: str, count: int, slot_spacing: float) -> Reservation:
        """Reserve `count` slots: where the block ends, by the database's clock."""
        params = {"name": name, "span": count * slot_spacing}
        async with self.db.transaction() as session:
            row = (await session.execute(_RESERVE, params)).first()
            if row is None:  # a fresh database (or one a test emptied): make the rows
                await self._ensure(session)
                row = (await session.execute(_RESERVE, params)).one()
        return Reservation(row[0], float(row[1]) - float(row[2]), float(row[2]))

    async def _take(self, bucket: _Bucket) -> Slot | None:
        """The next slot reserved for this process (None: try again), reserving the one after it
        meanwhile, so that a round trip to the database does not sit between two sends."""
        if not bucket.slots:
            reservation, bucket.next = bucket.next or asyncio.create_task(self._reserve(bucket)), None
            try:
                await reservation
            except Exception:  # the database is away: no slot, so no send; try again soon
                log.exception("reserving send slots failed")
                await asyncio.sleep(1)
                return None
            if not bucket.slots:  # an earlier reservation, already used up
                return None
        slot = bucket.slots.popleft()
        if not bucket.slots and bucket.next is None:
            bucket.next = asyncio.create_task(self._reserve(bucket))
        return slot

    async def _reserve(self, bucket: _Bucket) -> None:
        width = bucket.width
        count = bucket.sends_per_block(width)
        started = time.monotonic()
        reservation = await self.reserve_block(bucket.name, count, width * bucket.spacing)
        answered = time.monotonic()
        self._offset.observe(reservation.clock, started, answered)
        low, high = self._offset.bounds(answered)
        end = reservation.clock + reservation.ahead
        bucket.slots.extend(bucket.reserved(end - high, end - low, count, width))

    async def _ensure(self, session) -> None:  # type: ignore[no-untyped-def]
        for name in ("free", "paid"):
            await session.execute(_ENSURE, {"name": name})


def create_rate_gate(settings: Settings, db: Database) -> RateGate:
    paid_rate = settings.PAID_BROADCAST_RATE if settings.PAID_BROADCAST else None
    if db.is_sqlite:
        return LocalRateGate(settings.SEND_RATE, paid_rate=paid_rate)
    return PostgresRateGate(db, settings.SEND_RATE, paid_rate=paid_rate)
