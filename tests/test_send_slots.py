"""Send slots: a message leaves inside its slot or not at all (issue 13, item 1).

Slots that never overlap keep every sliding second within SEND_RATE + 1 only if each message
leaves no earlier than its slot begins and not much later. These tests hold the bot to that where
it used to slip: a reservation whose answer comes back late, and a request that is made in time
but would leave late. No test here measures how fast anything runs: each checks where a send
stands against a slot, or that a message is sent exactly once.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties

from bot.db import Database
from bot.delivery.outbox import VIP_PRIORITY, Gate, Outgoing, enqueue
from bot.delivery.sender import Sender, SenderStats
from bot.delivery.shared_rate import (
    LocalRateGate,
    PostgresRateGate,
    RateGate,
    Reservation,
    Slot,
    _ClockOffset,
    create_rate_gate,
    spacing,
)
from bot.delivery.telegram import TelegramTransport
from bot.delivery.transport import SlotMissed
from bot.sandbox import BotApiSandbox, sandbox_bot

OPEN = Gate(quiet=None, zone=UTC)
RATE = 25


def budget(rate: float) -> float:
    """How late a send may be after its slot begins with every sliding second still holding at
    most rate + 1 sends: the contract, not the gate's own (stricter) choice."""
    return (rate + 1) * spacing(rate) - 1


class LateAnswers(PostgresRateGate):
    """A gate whose database answers each reservation `delay` seconds after reading its clock.

    The "database" keeps its clock on this process's monotonic clock, so the test knows exactly
    where every block it handed out lies."""

    def __init__(self, rate: float, delay: float) -> None:
        super().__init__(None, rate)  # type: ignore[arg-type]  # no database: reserve_block is replaced
        self.delay = delay
        self.next_at = 0.0
        self.blocks: list[tuple[float, int, float]] = []  # answered so far: (begin, count, slot span)

    async def reserve_block(self, name: str, count: int, slot_spacing: float) -> Reservation:
        now = time.monotonic()
        begin = max(self.next_at, now)
        end = self.next_at = begin + count * slot_spacing
        await asyncio.sleep(self.delay)  # the answer is on its way
        self.blocks.append((begin, count, slot_spacing))
        return Reservation(datetime.now(UTC), end - now, now)

    def slot_holding(self, slot: Slot) -> tuple[float, float]:
        """The reserved slot (begin, span) that `slot` lies in: it begins no earlier, and ends
        within the contract's budget after the slot's last spacing."""
        rate_spacing = spacing(RATE)
        for begin, count, span in self.blocks:
            for i in range(count):
                start = begin + i * span
                if start <= slot.at and slot.deadline <= start + span - rate_spacing + budget(RATE):
                    return start, span
        raise AssertionError(f"{slot} lies in no reserved slot: {self.blocks}")


async def test_a_late_answer_to_a_reservation_does_not_shift_the_slot_onto_the_next_one() -> None:
    # A tenth of a second is twice the whole budget at 25/s: a slot counted from the answer would
    # overlap the next process's slots.
    gate = LateAnswers(RATE, delay=0.1)
    taken = [gate.slot_holding(await gate.acquire()) for _ in range(3)]
    assert len(set(taken)) == 3  # each send in a slot of its own


async def test_one_quick_answer_places_the_slots_of_slow_ones() -> None:
    """Once a quick round trip has shown where the database's clock stands, a slow answer for a
    block ahead (other processes hold the slots before it) still gives a slot in time, rather
    than one blurred by the whole round trip and given up."""
    gate = LateAnswers(RATE, delay=0.0)
    await gate.acquire()
    await asyncio.sleep(0.05)  # the reservation made meanwhile is answered too
    gate.delay = 0.1
    gate.next_at = time.monotonic() + 0.3
    taken = [gate.slot_holding(await gate.acquire()) for _ in range(3)]
    begins = [begin for begin, _, _ in gate.blocks]
    used = [begins.index(begin) for begin, _ in taken]
    assert used == list(range(used[0], used[0] + 3))  # none given up in between


def test_a_database_clock_set_back_is_believed_at_the_next_answer() -> None:
    offset = _ClockOffset()
    offset.observe(1000.0, started=10.0, answered=10.002)
    offset.observe(1000.5 - 60, started=10.5, answered=10.6)  # set back a minute meanwhile
    low, high = offset.bounds(10.6)
    assert 929.9 <= low <= high <= 930.0  # the fresh answer's bounds, not the old ones


def leaving_late(bot: Bot, seconds: float) -> None:
    """Every request of `bot` is made at once but leaves `seconds` later: aiogram's own work, a busy
    event loop."""

    async def slow_to_leave(make_request, bot, method):  # type: ignore[no-untyped-def]
        await asyncio.sleep(seconds)
        return await make_request(bot, method)

    bot.session.middleware(slow_to_leave)


async def test_a_slot_over_before_the_request_leaves_sends_nothing(sandbox: BotApiSandbox) -> None:
    bot = sandbox_bot(sandbox, default=DefaultBotProperties(parse_mode="HTML"))
    leaving_late(bot, 0.05)
    transport = TelegramTransport(bot)
    try:
        try:
            # In time when the request is made, over when it would leave.
            await transport.send(5001, "late", None, deadline=time.monotonic() + 0.01)
        except SlotMissed:
            pass
        else:
            raise AssertionError("a request leaving after its slot was sent")
        await transport.send(5001, "in time", None, deadline=time.monotonic() + 5)
        await transport.send(5001, "no slot to keep", None)
    finally:
        await bot.session.close()
    assert [call.params["text"] for call in sandbox.calls_to("sendMessage")] == ["in time", "no slot to keep"]


class OneSlotOver(LocalRateGate):
    """Hands out one slot that is already over, then ordinary ones that last a minute (at 1000/s a
    slot lasts half a millisecond, which a loaded machine missed too); counts the misses it hears of."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.over_handed = False
        self.missed = 0

    def widen(self) -> None:  # what a missed slot tells its bucket
        self.missed += 1

    def narrow(self) -> None:  # what a used one does
        pass

    async def acquire(self, *, paid: bool = False) -> Slot:
        if self.over_handed:
            slot = await super().acquire(paid=paid)
            return Slot(slot.at, slot.at + 60, slot.bucket)
        self.over_handed = True
        return Slot(time.monotonic() - 2, time.monotonic() - 1, self)  # type: ignore[arg-type]


async def queue(db: Database, *messages: Outgoing) -> None:
    async with db.transaction() as session:
        for message in messages:
            await enqueue(session, message)


async def drain(db: Database, sandbox: BotApiSandbox, bot: Bot, rate: float,
                rate_gate: RateGate) -> tuple[SenderStats, list[str]]:
    """Send everything queued; the sender's figures, and the texts the sandbox got, sorted."""
    sender = Sender(db, TelegramTransport(bot), rate=rate, gate=OPEN, per_chat_interval=0.01, poll_interval=0.05,
                    rate_gate=rate_gate)
    try:
        stats = await sender.drain(timeout=30)
    finally:
        await bot.session.close()
    return stats, sorted(call.params["text"] for call in sandbox.calls_to("sendMessage"))


async def test_a_message_held_back_from_a_missed_slot_goes_out_once_in_a_later_one(
    db: Database, sandbox: BotApiSandbox
) -> None:
    await queue(db, *[Outgoing(f"slot:{chat}", chat, "notice", f"to {chat}") for chat in (5101, 5102, 5103)])
    gate = OneSlotOver()
    stats, delivered = await drain(db, sandbox, sandbox_bot(sandbox), 1000, gate)
    assert delivered == ["to 5101", "to 5102", "to 5103"]
    assert gate.missed == 1 and stats.slots_missed == 1
    assert (stats.sent, stats.retried, stats.failed) == (3, 0, 0)  # not a failure: it never left


async def test_a_sender_whose_requests_always_leave_late_still_sends_each_message_once(
    db: Database, sandbox: BotApiSandbox, settings
) -> None:  # type: ignore[no-untyped-def]
    """A lagging process misses its slots until they are wide enough: it must not miss forever."""
    chats = (5201, 5202, 5203, 5204)
    await queue(db, *[Outgoing(f"lag:{chat}", chat, "notice", f"to {chat}") for chat in chats])
    bot = sandbox_bot(sandbox)
    leaving_late(bot, 0.1)  # four times what a slot at 25/s allows
    gate = create_rate_gate(settings.model_copy(update={"SEND_RATE": RATE}), db)  # the backend's own
    stats, delivered = await drain(db, sandbox, bot, RATE, gate)
    assert delivered == [f"to {chat}" for chat in chats]
    assert stats.slots_missed > 0 and stats.sent == len(chats)


def first_request_leaving_late(bot: Bot, seconds: float) -> None:
    """Only the bot's first request leaves `seconds` late: the event loop got to it late once."""
    lagged: list[bool] = []

    async def slow_once(make_request, bot, method):  # type: ignore[no-untyped-def]
        if not lagged:
            lagged.append(True)
            await asyncio.sleep(seconds)
        return await make_request(bot, method)

    bot.session.middleware(slow_once)


async def test_a_message_that_misses_its_slot_is_not_overtaken_by_the_next_ones(
    db: Database, sandbox: BotApiSandbox
) -> None:
    """The VIP's notice goes first (the contract); a lag that makes it miss its slot must not let
    the regulars' notices, in the slots after it, leave before it."""
    vip, *regulars = (5301, 5302, 5303, 5304)
    await queue(db, Outgoing(f"order:{vip}", vip, "notice", f"to {vip}", priority=VIP_PRIORITY),
                *[Outgoing(f"order:{chat}", chat, "notice", f"to {chat}") for chat in regulars])
    bot = sandbox_bot(sandbox)
    first_request_leaving_late(bot, 0.2)  # five slots at 25/s
    gate = LocalRateGate(RATE)
    stats, _ = await drain(db, sandbox, bot, RATE, gate)
    assert stats.slots_missed >= 1 and stats.sent == 4  # a loaded machine may miss more slots
    assert [call.params["chat_id"] for call in sandbox.calls_to("sendMessage")] == [vip, *regulars]
