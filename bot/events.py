"""Consumes stock event rows (threshold crossings) in sets and hands them to the parts that react.

Whichever process wrote an event (CLI import, HTTP API, chat), the running bot finds it here.

Lanes, customer first. Events a customer waits on (out of stock, an order line short, back in
stock) are lane 0; the shop's bookkeeping (low stock, recovered) is lane 1. Customer events of an
import or API batch wait in lane 2 until the batch is weighed (bot/recovery/hold.py, run by
`before_pass`); a large released batch goes to lane 3, the bulk lane. Each pass takes lane 0, then
a slice of lane 3, then lane 1, each claim bounded: a fresh stockout never waits behind an
import's hundred thousand crossings, and an import's customer events are worked a slice per pass,
the slice shared between the batches waiting there (a second import is not served last).

Coalescing. Of one product's pending events only its latest state matters: the last of its
stockout/restock flips decides (a product that ran out and came back in one batch gets its restock,
not an apology; order lines short before it are moot), and of low-stock/recovered only the last
counts. The events passed over are marked processed with the
rest.

Set-based. A reaction may say which products it concerns (`Reaction.concerns`, one query for a
whole batch); events of products no reaction concerns are marked processed in bulk and cost
nothing else: a back-in-stock for a product nobody waits for opens no restock.

Transactions. Claiming is one short transaction that decides, leases the products that have work
and marks the rest processed. Customer-lane work then runs one product per transaction; the
bookkeeping lane one transaction per batch. An event is marked processed in the transaction of its
effects: a crash re-handles it, and the effects are keyed in the database (unique cause keys), so
handling twice does nothing twice. The lease (`EventLease`, one row per product) is the lock per
product that lets several processes consume one backlog in parallel, each product in order. No
reaction may open a second connection inside its transaction (on SQLite it would wait for the
lock its own caller holds): what needs one, like the catalog refresh, runs before the claim.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Database, chunked, dialect_insert
from bot.models import EventLease, StockEvent, utcnow
from bot.pipeline import BOOKKEEPING_LANE, BULK_LANE, LIVE_LANE, StockEventKind
from bot.process import dead_local_holders, holder_id
from bot.waiting import IdlePolling, until_any

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
LEASE = timedelta(seconds=60)
HAND_BACK_S = 1.0  # how long a stop waits to hand back what it claimed (see _release_quietly)
# Events claimed per lane and pass: what bounds a pass, so live events never wait long behind an
# import's backlog (the bulk lane, a released import's customer events, goes a slice at a time).
# A bookkeeping batch is one transaction: at ~10 ms a product (a reorder prompt's suggestion reads
# the forecast; more on a busy machine), 5,000 held SQLite's write lock for 41-75 s, and a stop
# waited for it. 100 keep each around a second; a stop is honoured between batches.
CLAIM_SIZE = {LIVE_LANE: 500, BULK_LANE: 50, BOOKKEEPING_LANE: 100}
FAIR_BATCHES = 5  # released batches that share one pass's bulk claim
_Row = Row[tuple[int, int, str]]  # an event's id, product and kind
PASS_ORDER = (LIVE_LANE, BULK_LANE, BOOKKEEPING_LANE)
CUSTOMER_LANES = (LIVE_LANE, BULK_LANE)
_FLIPS = (StockEventKind.OUT_OF_STOCK.value, StockEventKind.BACK_IN_STOCK.value)
_LEVELS = (StockEventKind.LOW_STOCK.value, StockEventKind.RECOVERED.value)

React = Callable[[AsyncSession, Sequence[StockEvent]], Awaitable[object]]
BeforePass = Callable[[], Awaitable[int]]
Concerns = Callable[[AsyncSession, Collection[int]], Awaitable[set[int]]]


class Snapshot(Protocol):
    """An in-memory copy the reactions read (the catalog's indexes), brought up to date before
    each pass in a session of its own: never inside a reaction's write transaction. Declared here
    so the worker needs nothing of the floor that implements it; the composition root passes it.
    `refresh` returns how much changed (more than 0 counts as work found)."""

    async def refresh(self, db: Database, stop: asyncio.Event | None = None) -> int: ...


@dataclass(frozen=True, slots=True)
class Reaction:
    """What one part of the bot does with a kind of event.

    `react` gets the coalesced events of its kind (one product's in the customer lane, a whole
    batch's in the bookkeeping lane), in the transaction that marks them processed. What else it
    needs (settings, templates, the catalog) it was given when its package built its table. `concerns`,
    when given, returns which of the products it could do anything for; the others skip `react`.
    """

    react: React
    concerns: Concerns | None = None


Reactions = Mapping[StockEventKind, Sequence[Reaction]]


def merge_reactions(*tables: Reactions) -> dict[StockEventKind, list[Reaction]]:
    """Each package declares its reactions beside its code; the composition root merges them."""
    merged: dict[StockEventKind, list[Reaction]] = {kind: [] for kind in StockEventKind}
    for table in tables:
        for kind, reactions in table.items():
            merged[kind].extend(reactions)
    return merged


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    product_id: int
    kind: str


def coalesce(events: Sequence[_Pending]) -> list[_Pending]:
    """The events of one product (oldest first) that still need a reaction; see the docstring."""
    flips = [event for event in events if event.kind in _FLIPS]
    levels = [event for event in events if event.kind in _LEVELS]
    shorts = [event for event in events if event.kind == StockEventKind.ORDER_SHORT.value]
    kept: list[_Pending] = []
    if flips:
        last = flips[-1]
        kept.append(last)
        if last.kind == StockEventKind.OUT_OF_STOCK.value:
            # Usually covered by the stockout's own offers (one per customer per stockout); kept
            # for when that stockout was planned before (a replay), where only they reach the line.
            kept += [event for event in shorts if event.id > last.id]
    else:
        kept += shorts
    if levels:
        kept.append(levels[-1])
    return sorted(kept, key=lambda event: event.id)


@dataclass(slots=True)
class _Claim:
    work: dict[int, list[int]] = field(default_factory=dict)  # product -> event ids to react to
    covered: dict[int, list[int]] = field(default_factory=dict)  # product -> every claimed event id
    done: int = 0  # events marked processed without any work


class EventConsumer:
    """Consumes the event backlog: `process()` until nothing is left, or `run()` as a worker."""

    def __init__(self, db: Database, snapshot: Snapshot, reactions: Reactions, *, poll_interval: float = 1.0,
                 idle_poll_interval: float = 4.0, before_pass: BeforePass | None = None,
                 at_start: BeforePass | None = None) -> None:
        self.db = db
        # Work of its own transactions before each pass (weighing import batches): what it
        # releases is claimed in the same pass. Returns how much it did.
        self.before_pass = before_pass
        self.at_start = at_start  # once, when the worker starts (the low-stock sweep)
        self.snapshot = snapshot  # refreshed before each pass
        self.reactions = reactions
        self.poll_interval = poll_interval
        # Events and catalog changes another process committed (a CLI import) are found by polling.
        self._polling = IdlePolling(poll_interval, idle_poll_interval)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Events were committed in this process: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: consume, then sleep until woken or the poll interval passes. A stop is
        honoured between batches; what is half done was not committed and is taken again."""
        if self.at_start:
            try:
                await self.at_start()
            except Exception:  # a start-up chore must not keep the worker from its events
                log.exception("the event worker's start-up work failed")
        while not stop.is_set():
            self._wake.clear()
            try:
                found = await self.snapshot.refresh(self.db, stop) > 0
                while not stop.is_set() and await self.process_once(stop):
                    found = True
            except Exception as exc:  # the worker must outlive a bad batch; the rows stay pending
                if not self.db.trouble.note(exc):  # database trouble is logged once a spell
                    log.exception("consuming stock events failed")
                found = True  # not idle: look again soon
            await until_any(stop, self._wake, timeout=self._polling.interval(found_work=found))

    async def process(self) -> int:
        """Handle every pending event (tests, the demo); returns how many were handled."""
        await self.snapshot.refresh(self.db)
        total = 0
        while handled := await self.process_once():
            total += handled
        return total

    async def process_once(self, stop: asyncio.Event | None = None) -> int:
        """One pass: a live batch, a slice of the bulk lane, then a bookkeeping batch. Returns
        events handled (and work `before_pass` did). After `stop`, what is claimed and not yet
        handled is handed back at once."""
        handled = await self.before_pass() if self.before_pass else 0
        for lane in PASS_ORDER:
            if stop is not None and stop.is_set():
                break
            claim = await self._claim(lane)
            handled += claim.done
            if lane in CUSTOMER_LANES:
                products = sorted(claim.work, key=lambda p: claim.work[p][0])
                for done, product_id in enumerate(products):
                    if stop is not None and stop.is_set():
                        await self._release_quietly(products[done:])
                        break
                    handled += await self._react(claim, [product_id])
            elif claim.work:
                try:
                    handled += await self._react(claim, list(claim.work), record_failure=False)
                except Exception:
                    # One bad product must not hold up the rest: find it by going one by one.
                    for product_id in claim.work:
                        handled += await self._react(claim, [product_id])
        return handled

    # --- claiming ---------------------------------------------------------------------------------

    async def _claim(self, lane: int) -> _Claim:
        claim = _Claim()
        now = utcnow()
        async with self.db.transaction() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Claims are short; taking them one at a time keeps two processes from splitting
                # one product's events between them.
                await session.execute(select(_claim_lock()))
            # Products another consumer holds are left out of the query itself: filtered after
            # it, the oldest events (all of them the other's) would fill the claim and leave this
            # consumer idle until its next poll while the rest of the backlog waits.
            pending = StockEvent.processed_at.is_(None) & ~(await _live_leases(session, now)).exists()
            rows = await (_fair_slice(session, pending) if lane == BULK_LANE else _oldest(session, pending, lane))
            if not rows:
                return claim
            by_product: dict[int, list[_Pending]] = defaultdict(list)
            for row in rows:
                by_product[row.product_id].append(_Pending(row.id, row.product_id, row.kind))
            kept = {product_id: coalesce(events) for product_id, events in by_product.items()}
            concerned = await self._concerned(session, kept)
            for product_id, events in by_product.items():
                work = [event.id for event in kept[product_id] if product_id in concerned.get(event.kind, ())]
                if work:
                    claim.work[product_id] = work
                    claim.covered[product_id] = [event.id for event in events]
            idle = [event.id for product_id, events in by_product.items() if product_id not in claim.work
                    for event in events]
            await _mark_processed(session, idle, now)
            claim.done = len(idle)
            if claim.work:
                await _lease(session, claim.work.keys(), now + LEASE)
        return claim

    async def _concerned(self, session: AsyncSession, kept: Mapping[int, Sequence[_Pending]]) -> dict[str, set[int]]:
        """Per kind, the products some reaction of that kind could act on."""
        products_by_kind: dict[str, set[int]] = defaultdict(set)
        for product_id, events in kept.items():
            for event in events:
                products_by_kind[event.kind].add(product_id)
        concerned: dict[str, set[int]] = {}
        for kind, products in products_by_kind.items():
            reactions = self.reactions.get(StockEventKind(kind), ())
            found: set[int] = set()
            for reaction in reactions:
                if reaction.concerns is None:
                    found = set(products)
                    break
                found |= await reaction.concerns(session, products)
            concerned[kind] = found
        return concerned

    # --- reacting ---------------------------------------------------------------------------------

    async def _react(self, claim: _Claim, product_ids: list[int], *, record_failure: bool = True) -> int:
        """React to the claimed work of `product_ids` in one transaction; returns events handled.
        A failure is recorded on the events (or, without `record_failure`, raised)."""
        work_ids = [event_id for product_id in product_ids for event_id in claim.work[product_id]]
        covered = [event_id for product_id in product_ids for event_id in claim.covered[product_id]]
        try:
            async with self.db.transaction() as session:
                events = list(await session.scalars(
                    select(StockEvent).where(StockEvent.id.in_(work_ids), StockEvent.processed_at.is_(None))
                    .order_by(StockEvent.id)
                ))
                by_kind: dict[StockEventKind, list[StockEvent]] = defaultdict(list)
                for event in events:
                    by_kind[StockEventKind(event.kind)].append(event)
                for kind, kind_events in by_kind.items():
                    for reaction in self.reactions.get(kind, ()):
                        await reaction.react(session, kind_events)
                await _mark_processed(session, covered, utcnow())
                await _release(session, product_ids)
        except asyncio.CancelledError:
            # A stop that cannot wait: nothing was committed; hand the products back at once.
            await asyncio.shield(self._release_quietly(product_ids))
            raise
        except Exception as exc:
            if not record_failure:
                raise
            log.exception("stock events %s failed", work_ids[:20])
            await self._record_failure(work_ids, covered, product_ids, exc)
        return len(covered)

    async def _release_quietly(self, product_ids: list[int]) -> None:
        """Hand the products back on a stop, if the database lets us at once: a stop must not wait
        on another writer's lock. Left alone, the leases of a process that is gone are ignored by
        its successor on this host and run out for the others (LEASE)."""
        try:
            async with asyncio.timeout(HAND_BACK_S):
                async with self.db.transaction() as session:
                    await _release(session, product_ids)
        except TimeoutError:
            log.info("stopping: %d products' events left leased; the next run takes them", len(product_ids))
        except Exception as exc:  # the leases run out on their own
            if not self.db.trouble.note(exc):
                log.warning("could not hand back %d products' events", len(product_ids), exc_info=True)

    async def _record_failure(
        self, work_ids: list[int], covered: list[int], product_ids: list[int], exc: Exception
    ) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            failed = list(await session.scalars(select(StockEvent).where(StockEvent.id.in_(work_ids))))
            parked = False
            for event in failed:
                event.attempts += 1
                event.last_error = repr(exc)[:2000]
                if event.attempts >= MAX_ATTEMPTS:
                    # Parked, not lost: the row keeps its error for an operator to see and replay.
                    parked = True
                    log.error("stock event %s parked after %d attempts: %r", event.id, event.attempts, exc)
            if parked:
                await _mark_processed(session, covered, now)
                await _release(session, product_ids)
            else:
                # Not retried in a tight loop: the products stay leased a little while.
                await session.execute(
                    update(EventLease).where(EventLease.product_id.in_(product_ids))
                    .values(lease_until=now + timedelta(seconds=1))
                )


async def _oldest(session: AsyncSession, pending: ColumnElement[bool], lane: int) -> list[_Row]:
    return list((await session.execute(
        select(StockEvent.id, StockEvent.product_id, StockEvent.kind)
        .where(pending, StockEvent.lane == lane).order_by(StockEvent.id).limit(CLAIM_SIZE[lane])
    )).all())


async def _fair_slice(session: AsyncSession, pending: ColumnElement[bool]) -> list[_Row]:
    """The bulk lane's claim, shared between the released batches waiting in it (the oldest
    FAIR_BATCHES), so that a second import's customers are not served only after the first's
    last one. Within a batch, oldest first. A product whose older events sit in a batch's unclaimed
    part waits for them: its events are acted on in order (coalescing needs the oldest first)."""
    in_lane = pending & (StockEvent.lane == BULK_LANE)
    batches = list(await session.scalars(
        select(StockEvent.batch_id).where(in_lane).group_by(StockEvent.batch_id)
        .order_by(func.min(StockEvent.id)).limit(FAIR_BATCHES)
    ))
    if not batches:
        return []
    share = max(1, CLAIM_SIZE[BULK_LANE] // len(batches))
    rows: list[_Row] = []
    for batch in batches:
        rows += (await session.execute(
            select(StockEvent.id, StockEvent.product_id, StockEvent.kind)
            .where(in_lane, StockEvent.batch_id.is_(None) if batch is None else StockEvent.batch_id == batch)
            .order_by(StockEvent.id).limit(share)
        )).all()
    claimed = {row.id for row in rows}
    last_claimed: dict[int, int] = {}
    for row in rows:
        last_claimed[row.product_id] = max(row.id, last_claimed.get(row.product_id, 0))
    skipped_over: set[int] = set()
    for chunk in chunked(sorted(last_claimed)):
        for product_id, event_id in await session.execute(
            select(StockEvent.product_id, StockEvent.id).where(in_lane, StockEvent.product_id.in_(chunk))
        ):
            if event_id not in claimed and event_id < last_claimed[product_id]:
                skipped_over.add(product_id)
    return sorted((row for row in rows if row.product_id not in skipped_over), key=lambda row: row.id)


def _claim_lock():  # type: ignore[no-untyped-def]
    return func.pg_advisory_xact_lock(0x570CE7)  # any constant, shared by every Stockbot process


async def _live_leases(session: AsyncSession, now):  # type: ignore[no-untyped-def]
    """The leases of the event's product that a live consumer holds (working on it, or backing
    off after a failure), as a correlated query; a dead run's on this host do not count."""
    holders = await session.scalars(select(EventLease.holder).where(EventLease.lease_until > now).distinct())
    dead = sorted(dead_local_holders(holders))  # one per process at most
    live = select(EventLease.product_id).where(
        EventLease.product_id == StockEvent.product_id, EventLease.lease_until > now
    )
    return live.where(EventLease.holder.not_in(dead)) if dead else live


async def _lease(session: AsyncSession, product_ids: Collection[int], until) -> None:  # type: ignore[no-untyped-def]
    holder = holder_id()
    insert = dialect_insert(session, EventLease.__table__)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["product_id"],
            set_={"holder": insert.excluded.holder, "lease_until": insert.excluded.lease_until},
        ),
        [{"product_id": product_id, "holder": holder, "lease_until": until} for product_id in product_ids],
    )


async def _release(session: AsyncSession, product_ids: Collection[int]) -> None:
    for chunk in chunked(sorted(product_ids)):
        await session.execute(delete(EventLease).where(EventLease.product_id.in_(chunk)))


async def _mark_processed(session: AsyncSession, event_ids: Sequence[int], now) -> None:  # type: ignore[no-untyped-def]
    for chunk in chunked(sorted(event_ids)):
        await session.execute(
            update(StockEvent).where(StockEvent.id.in_(chunk), StockEvent.processed_at.is_(None))
            .values(processed_at=now)
            .execution_options(synchronize_session=False)
        )


async def replay_event(session: AsyncSession, event_id: int) -> None:
    await session.execute(
        update(StockEvent).where(StockEvent.id == event_id).values(processed_at=None, attempts=0)
    )
