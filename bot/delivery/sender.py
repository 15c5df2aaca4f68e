"""The delivery worker: takes due outbox rows and sends them within Telegram's limits.

- One global limiter spaces sends at SEND_RATE over all chats (strict spacing, no bursts, so
  every sliding second holds at most SEND_RATE messages).
- Each chat gets at most one message a second, and its messages go out in queue order: a chat
  has at most one send in flight.
- Requests leave one after another in the order they are dispatched (priority first, so VIPs'
  before the others'): the next waits until the last has left, or missed its slot and is back
  at the head of the queue, so a lagging event loop cannot let a later message overtake it.
- A 429 pauses all new sends until its `retry_after` has passed, then that message goes first.
- Blocked or vanished chats are flagged unreachable and their queue dropped; a message Telegram
  refuses (bad markup, too long) is kept as failed. Server and network errors are retried by time,
  with exponential backoff capped at `backoff_cap`, for as long as they last: an outage of the Bot
  API or of the shop's network delays messages, it never drops them. Only an error of our own (a
  bug, which no wait will mend) gives up after `max_attempts`.
- Each delivered row is recorded before the next message leaves (what finished meanwhile is
  written together), so a crash repeats at most the messages that were in flight. On start the
  sender frees the claims of this host's processes that are gone (a restart after `kill -9`), so
  delivery resumes at once rather than after the lease.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.db import Database
from bot.delivery import attachments, outbox
from bot.delivery.outbox import Gate
from bot.delivery.shared_rate import LocalRateGate, RateGate, Slot
from bot.delivery.transport import (
    Permanent,
    RetryAfter,
    SendError,
    SlotMissed,
    Temporary,
    Transport,
    Unreachable,
)
from bot.models import Notification, utcnow
from bot.waiting import IdlePolling, until_any

log = logging.getLogger(__name__)

# The longest wait between two tries of a message during an outage: when the Bot API comes back,
# every message waiting on it goes out within this (times the jitter) without hammering it before.
RETRY_INTERVAL_CAP = 60.0
# How long a stop waits for sends already made to be answered. A Bot API that does not answer
# would hold it for aiogram's whole request timeout (a minute); the rows of sends cut off keep
# their claim and go back to the queue (a send cut off may have arrived: it may come twice).
STOP_WAIT_S = 1.5
HAND_BACK_S = 1.0  # how long a stop waits to hand claimed messages back to the queue
# How long past its slot the next send waits for the last one to leave (or be held back): long
# enough for an event loop lagging under load to get to the last moment's check.
DEPARTURE_WAIT_S = 5.0
_MAX_EXPONENT = 30  # base ** attempts overflows a float after ~1,000 tries (hours into an outage)


@dataclass(slots=True)
class SenderStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unreachable: int = 0
    paused_seconds: float = 0.0
    slots_missed: int = 0  # held back at the last moment: the request would have left too late


# Which ready chat goes first: a message refused by a 429 before one held back from a missed slot
# (which may have missed it while the 429 was on its way back), both before the rest.
REFUSED, MISSED, IN_TURN = 0, 1, 2


@dataclass(order=True, slots=True)
class _Ready:
    rank: int  # REFUSED, MISSED or IN_TURN
    at: float
    priority: int
    seq: int
    chat_id: int = field(compare=False)


class Sender:
    def __init__(
        self,
        db: Database,
        transport: Transport,
        *,
        rate: float,
        gate: Gate,
        per_chat_interval: float = 1.0,
        concurrency: int = 64,
        max_attempts: int = 6,
        backoff_base: float = 2.0,
        backoff_cap: float = RETRY_INTERVAL_CAP,
        poll_interval: float = 0.5,
        idle_poll_interval: float = 2.0,
        clock: Callable[[], datetime] = utcnow,
        rate_gate: RateGate | None = None,
    ) -> None:
        self.db = db
        self.transport = transport
        self.gate = gate
        self.rate = rate
        self.per_chat_interval = per_chat_interval
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # Rows another process queued (or this one released for later) are found by polling.
        self._polling = IdlePolling(poll_interval, idle_poll_interval)
        self.clock = clock
        self.stats = SenderStats()
        # scale-out: SEND_RATE and the 429 pause live in a RateGate, shared by all processes on
        # PostgreSQL (bot/delivery/shared_rate.py); strict spacing, no burst after an idle spell.
        self.rate_gate = rate_gate or LocalRateGate(rate)
        self._slots = asyncio.Semaphore(concurrency)
        self._claim_size = self.rate_gate.claim_size
        self._queues: dict[int, deque[Notification]] = {}
        self._ready: list[_Ready] = []
        self._busy: set[int] = set()
        self._held: set[int] = set()  # ids in memory, so an expired lease is not claimed twice
        self._last_sent: dict[int, float] = {}
        self._forget_after = 1024  # entries before _last_sent is pruned (it would grow with every chat)
        self._acks: list[tuple[int, int]] = []
        self._paused_until = 0.0
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._claiming = False
        self._ack_lock = asyncio.Lock()
        self._ack_pending = asyncio.Event()
        self._unanswered: list[int] = []  # sends cut off by a stop, handed back to the queue

    # --- public ---------------------------------------------------------------------------------

    def wake(self) -> None:
        """Something was queued: look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with self.db.transaction() as session:
                await outbox.release_dead_claims(session, now=self.clock())
        except Exception as exc:  # the periodic sweep tries again; delivery must still start
            if not self.db.trouble.note(exc):
                log.exception("freeing claims of a previous run failed")
        feeder = asyncio.create_task(self._feed(stop), name="outbox-feeder")
        acker = asyncio.create_task(self._acknowledge(stop), name="outbox-acks")
        try:
            await self._dispatch(stop)
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            await self._finish_in_flight()
            await acker
            await self._flush_acks()
            await self._release_backlog()

    async def drain(self, timeout: float = 30.0) -> SenderStats:
        """Send everything due now, then return (tests, the demo, one-shot CLI use)."""
        stop = asyncio.Event()
        self._polling.empty_looks = 0  # counts empty claims of this drain only
        runner = asyncio.create_task(self.run(stop))
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                # Idle means: two claims in a row found nothing, none is running now (its rows
                # would not be held yet), nothing is held or being sent, every send recorded.
                if (self._polling.empty_looks >= 2 and not self._claiming and not self._held and not self._busy
                        and not self._acks):
                    break
            else:
                raise TimeoutError(f"outbox not drained in {timeout} s: {len(self._held)} in memory")
        finally:
            stop.set()
            self._changed.set()
            await runner
        return self.stats

    async def _finish_in_flight(self) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=STOP_WAIT_S)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)

    # --- feeding from the outbox -----------------------------------------------------------------

    async def _feed(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            claimed = 0
            if len(self._held) < self._claim_size:
                try:
                    claimed = await self._claim()
                except Exception as exc:  # keep delivering what is held; the next poll tries again
                    if not self.db.trouble.note(exc):  # database trouble is logged once a spell
                        log.exception("claiming from the outbox failed")
            pause = self._polling.interval(found_work=claimed > 0)
            if claimed and len(self._held) < self._claim_size:
                continue
            self._wake.clear()
            await until_any(self._wake, stop, timeout=pause)

    async def _claim(self) -> int:
        self._claiming = True
        try:
            async with self.db.transaction() as session:
                rows = await outbox.claim_due(
                    session, limit=self._claim_size, gate=self.gate, now=self.clock(),
                    chat_interval=timedelta(seconds=self.per_chat_interval),
                )
            return self._hold(rows)
        finally:
            self._claiming = False

    def _hold(self, rows: list[Notification]) -> int:
        fresh = [row for row in rows if row.id not in self._held]
        for row in fresh:
            self._held.add(row.id)
            queue = self._queues.setdefault(row.chat_id, deque())
            queue.append(row)
            if len(queue) == 1 and row.chat_id not in self._busy:
                self._schedule(row.chat_id)
        if fresh:
            self._changed.set()
        return len(fresh)

    def _schedule(self, chat_id: int, at: float | None = None, *, rank: int = IN_TURN) -> None:
        earliest = self._last_sent.get(chat_id, -1e9) + self.per_chat_interval
        head = self._queues[chat_id][0]
        # scale-out: a claim on PostgreSQL moves not_before past another process's last send here.
        ahead = (head.not_before - self.clock()).total_seconds()
        when = max(earliest, at or 0.0, self._paused_until, time.monotonic() + ahead if ahead > 0 else 0.0)
        heapq.heappush(self._ready, _Ready(rank, when, head.priority, next(self._seq), chat_id))

    # --- dispatching -----------------------------------------------------------------------------

    async def _dispatch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._ready:
                self._changed.clear()
                await until_any(self._changed, stop)
                continue
            now = time.monotonic()
            top = self._ready[0]
            start = max(top.at, self._paused_until)
            if start > now:
                self._changed.clear()
                await until_any(self._changed, stop, timeout=start - now)
                continue
            heapq.heappop(self._ready)
            if self._acks:  # record what was delivered before anything else leaves
                await self._flush_acks()
            if not await self._free_slot(stop):
                break
            paid = self.rate_gate.is_paid(self._queues[top.chat_id][0].kind)  # scale-out
            slot = await self.rate_gate.acquire(paid=paid)  # scale-out
            if self._paused_until > time.monotonic():  # a 429 arrived while we waited
                self._slots.release()
                heapq.heappush(self._ready, top)
                continue
            self._busy.add(top.chat_id)
            message = self._queues[top.chat_id].popleft()
            departed = asyncio.Event()
            task = asyncio.create_task(self._send(message, slot, departed, paid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            # See "Requests leave one after another" above; a request stuck before it leaves (a
            # connection that hangs) holds the others up for DEPARTURE_WAIT_S past its slot at most.
            await until_any(departed, stop, timeout=max(0.0, slot.deadline - time.monotonic()) + DEPARTURE_WAIT_S)

    async def _free_slot(self, stop: asyncio.Event) -> bool:
        """A slot for one more send; False on a stop (every slot may be held by a send the Bot
        API does not answer)."""
        while self._slots.locked():
            if stop.is_set():
                return False
            self._changed.clear()
            await until_any(self._changed, stop)  # a finished send frees its slot and sets it
        await self._slots.acquire()
        return True

    def _forget_quiet_chats(self, now: float) -> None:
        """Drop chats last sent to over `per_chat_interval` ago: they may be sent to at once, which
        is what a missing entry means too. Amortised: the next prune waits for twice the survivors."""
        horizon = now - self.per_chat_interval
        self._last_sent = {chat: at for chat, at in self._last_sent.items() if at > horizon}
        self._forget_after = max(1024, 2 * len(self._last_sent))

    async def _send(self, message: Notification, slot: Slot, departed: asyncio.Event, paid: bool = False) -> None:
        """`departed` is set once the request has left, or when the send is over whatever became
        of it (a transport that cannot tell when a request leaves)."""
        chat_id = message.chat_id
        requeue_at: float | None = None
        missed = False
        try:
            if message.kind in attachments.KINDS:  # a report: pictures and a document
                departed.set()  # several uploads, no slot: they never held the others back
                message_id = await attachments.send(self.db, self.transport, message)
            else:
                extra = {"paid": True} if paid else {}  # Telegram's allow_paid_broadcast
                message_id = await self.transport.send(chat_id, message.text, message.reply_markup,
                                                       deadline=slot.deadline, on_departure=departed.set, **extra)
        except asyncio.CancelledError:
            self._unanswered.append(message.id)  # a stop cut it off; see STOP_WAIT_S
            raise
        except SlotMissed:
            # Sent late, it could crowd the slots after its own (another process's, too). Nothing
            # left, so nothing is counted: it goes first in its chat and waits for a new slot.
            missed = True
            self.stats.slots_missed += 1
            slot.missed()
            self._queues[chat_id].appendleft(message)
        except RetryAfter as exc:
            self._queues[chat_id].appendleft(message)  # it goes first when the pause ends
            await self.flood_control(exc.seconds)
            requeue_at = self._paused_until
        except Unreachable as exc:
            self._held.discard(message.id)
            await self._unreachable(chat_id, str(exc))
        except SendError as exc:
            await self._failed(message, exc)
        except Exception as exc:  # a bug must not kill the worker nor lose the row
            log.exception("unexpected error sending notification %s", message.id)
            await self._failed(message, Temporary(repr(exc)), bug=True)
        else:
            self._acks.append((message.id, message_id))
            self._ack_pending.set()
            self._held.discard(message.id)
            self.stats.sent += 1
        finally:
            departed.set()
            if not missed:
                slot.used()
                # The chat's next message waits a second from this send's answer, which comes after
                # it arrived: arrivals stay a second apart however long the request took on the way.
                answered_at = self._last_sent[chat_id] = time.monotonic()
                if len(self._last_sent) > self._forget_after:
                    self._forget_quiet_chats(answered_at)
            self._busy.discard(chat_id)
            queue = self._queues.get(chat_id)
            if queue:
                rank = REFUSED if requeue_at is not None else MISSED if missed else IN_TURN
                self._schedule(chat_id, requeue_at, rank=rank)
            elif queue is not None:
                del self._queues[chat_id]
            self._slots.release()
            self._changed.set()

    async def flood_control(self, seconds: float) -> None:
        """Telegram answered 429 (to one of our sends, or to a chat reply: the limit is the bot's):
        no message leaves this process, nor, through the rate gate, any other, for `seconds`."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self.stats.paused_seconds += seconds
        log.warning("flood control from Telegram: all sending paused for %s s", seconds)
        await self._pause_everyone(seconds)  # scale-out

    async def _pause_everyone(self, seconds: float) -> None:
        """scale-out: the other processes sharing the budget hold off too."""
        try:
            await self.rate_gate.pause(seconds)
        except Exception:  # this process is paused anyway; the others will meet their own 429
            log.exception("recording the flood-control pause for the other processes failed")

    async def _unreachable(self, chat_id: int, error: str) -> None:
        dropped = self._queues.pop(chat_id, deque())
        self._held.difference_update(row.id for row in dropped)
        self.stats.unreachable += 1
        log.info("chat %s is unreachable (%s); its queue is dropped", chat_id, error)
        async with self.db.transaction() as session:
            await outbox.mark_unreachable(session, chat_id, error)
        # A claim may have queued more for this chat while the rows were being dropped.
        late = self._queues.pop(chat_id, deque())
        self._held.difference_update(row.id for row in late)

    async def _failed(self, message: Notification, error: SendError, *, bug: bool = False) -> None:
        self._held.discard(message.id)
        async with self.db.transaction() as session:
            gives_up = isinstance(error, Permanent) or not isinstance(error, Temporary) or (
                bug and message.attempts >= self.max_attempts)
            if gives_up:
                self.stats.failed += 1
                log.warning("notification %s failed for good: %s", message.id, error)
                await outbox.mark_failed(session, message.id, str(error))
                return
            self.stats.retried += 1
            retry_at = self.clock() + timedelta(seconds=self._backoff(message.attempts))
            await outbox.mark_retry(session, message.id, str(error), retry_at)
            # Later messages of this chat wait with it, so none overtakes the one being retried.
            later = self._queues.pop(message.chat_id, deque())
            await outbox.release(session, [row.id for row in later], not_before=retry_at)
        self._held.difference_update(row.id for row in later)

    def _backoff(self, attempts: int) -> float:
        # Jitter: a crowd of messages refused by one outage does not come back at once.
        delay = self.backoff_base ** min(attempts, _MAX_EXPONENT) * random.uniform(0.5, 1.5)
        return min(self.backoff_cap, delay)

    # --- acknowledging -----------------------------------------------------------------------------

    async def _acknowledge(self, stop: asyncio.Event) -> None:
        """Records deliveries as soon as they finish (the dispatcher also does, before a send)."""
        while not stop.is_set():
            await until_any(stop, self._ack_pending)
            self._ack_pending.clear()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        async with self._ack_lock:
            if not self._acks:
                return
            batch, self._acks = self._acks, []
            try:
                async with self.db.transaction() as session:
                    await outbox.mark_sent(session, batch)
            except asyncio.CancelledError:  # a stop: kept, so the last flush still records them
                self._acks[:0] = batch
                raise
            except Exception as exc:
                if not self.db.trouble.note(exc):
                    log.exception("recording %d sent notifications failed; will retry", len(batch))
                self._acks[:0] = batch
                await asyncio.sleep(0.1)  # the database is struggling: do not spin on it

    async def _release_backlog(self) -> None:
        backlog = [row.id for queue in self._queues.values() for row in queue] + self._unanswered
        self._unanswered = []
        self._queues.clear()
        self._ready.clear()
        self._held.clear()
        if backlog:
            # Not worth holding a stop for another writer's lock: the next start on this host frees
            # a dead run's claims at once, and other processes take them when the lease runs out.
            try:
                async with asyncio.timeout(HAND_BACK_S):
                    async with self.db.transaction() as session:
                        await outbox.release(session, backlog)
            except TimeoutError:
                log.info("stopping: %d claimed messages left for the next run", len(backlog))

