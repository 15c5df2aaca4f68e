"""Several processes on one PostgreSQL database act as one bot: one send budget and one 429 pause,
a chat's messages in order and a second apart whoever sends them, one long-polling process.
Paid broadcasts (both backends) go out flagged and are counted by the sandbox."""

from __future__ import annotations

import itertools
from datetime import UTC, timedelta

import pytest
from aiogram.client.default import DefaultBotProperties
from sqlalchemy import select, text, update

from bot.db import Database
from bot.delivery.outbox import Gate, Outgoing, claim_due, enqueue, mark_sent
from bot.delivery.sender import Sender
from bot.delivery.shared_rate import LocalRateGate, PostgresRateGate, create_rate_gate, spacing
from bot.delivery.telegram import TelegramTransport
from bot.leadership import Leadership
from bot.models import Notification, NotificationState, SendGate, utcnow
from bot.sandbox import BotApiSandbox, sandbox_bot
from bot.settings import load_settings
from tests.conftest import ON_POSTGRES

OPEN = Gate(quiet=None, zone=UTC)
postgres_only = pytest.mark.skipif(not ON_POSTGRES, reason="several processes share PostgreSQL only")


_causes = itertools.count()


async def queue(db: Database, *messages: tuple[int, str]) -> list[int]:
    """(chat, kind) pairs, queued in this order; their row ids."""
    async with db.transaction() as session:
        ids = [await enqueue(session, Outgoing(f"t:{n}", chat, kind, f"message {n} to {chat}"))
               for n, (chat, kind) in zip(_causes, messages, strict=False)]
    assert None not in ids
    return ids  # type: ignore[return-value]


# --- paid broadcasts (any backend) -------------------------------------------------------------


async def test_paid_broadcast_flags_restock_and_stockout_messages_only_when_switched_on(
    db: Database, sandbox: BotApiSandbox, settings
) -> None:  # type: ignore[no-untyped-def]
    bot = sandbox_bot(sandbox, default=DefaultBotProperties(parse_mode="HTML"))
    try:
        for switched_on in (False, True):
            sandbox.reset_traffic()
            chosen = load_settings(_env_file=None, DATABASE_URL=settings.DATABASE_URL, PAID_BROADCAST=switched_on)
            await queue(db, (100 + switched_on, "restock_notice"), (200 + switched_on, "stockout_offer"),
                        (300 + switched_on, "reorder_prompt"))
            sender = Sender(db, TelegramTransport(bot), rate=1000, gate=OPEN, poll_interval=0.05,
                            rate_gate=create_rate_gate(chosen, db))
            await sender.drain()
            paid = {call.params["chat_id"] for call in sandbox.calls_to("sendMessage") if call.paid_broadcast}
            assert len(sandbox.messages()) == 3
            assert paid == ({100 + switched_on, 200 + switched_on} if switched_on else set())
            assert sandbox.paid_broadcasts() == len(paid)
    finally:
        await bot.session.close()


def test_paid_kinds_draw_on_their_own_rate() -> None:
    gate = LocalRateGate(25, paid_rate=1000)
    assert gate.is_paid("restock_notice") and gate.is_paid("stockout_offer")
    assert not gate.is_paid("reorder_prompt") and not LocalRateGate(25).is_paid("restock_notice")
    assert gate.claim_size == 1000  # four seconds at the faster rate, at most 1,000 rows held


# --- the shared budget ---------------------------------------------------------------------------


@postgres_only
async def test_processes_reserve_slots_that_never_overlap(db: Database) -> None:
    import asyncio

    rate = 20
    gates = [PostgresRateGate(db, rate), PostgresRateGate(db, rate)]
    ends = await asyncio.gather(*(gates[i % 2].reserve_block("free", 1, spacing(rate)) for i in range(12)))
    slots = sorted(end for end, _ in ends)
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(slots, slots[1:], strict=False)]
    # One slot each, 1/rate apart: 20 slots cannot fit in a second, whoever reserved them.
    assert all(gap == pytest.approx(spacing(rate), abs=1e-5) for gap in gaps)


@postgres_only
async def test_a_429_in_one_process_holds_back_the_slots_of_every_process(db: Database) -> None:
    first, second = PostgresRateGate(db, 20), PostgresRateGate(db, 20, paid_rate=1000)
    await first.reserve_block("free", 1, spacing(20))
    await first.pause(3)
    async with db.read_session() as session:
        paused_until = {gate.name: gate.paused_until for gate in await session.scalars(select(SendGate))}
    assert set(paused_until) == {"free", "paid"}
    for name, span in (("free", spacing(20)), ("paid", spacing(1000))):
        end, ahead = await second.reserve_block(name, 1, span)
        assert end - timedelta(seconds=span) >= paused_until[name]  # the slot starts after the pause
        assert ahead > 2.5


# --- per-chat order on claims ---------------------------------------------------------------------


async def _claim(db: Database, **options: object) -> list[tuple[int, int]]:
    async with db.transaction() as session:
        rows = await claim_due(session, limit=100, gate=OPEN, **options)  # type: ignore[arg-type]
        return [(row.chat_id, row.id) for row in rows]


@postgres_only
async def test_a_chat_waits_while_another_process_sends_its_earlier_message(db: Database) -> None:
    first, = await queue(db, (7, "digest"))
    assert await _claim(db) == [(7, first)]  # "process A" is sending it now
    second, other = await queue(db, (7, "digest"), (8, "digest"))
    assert await _claim(db) == [(8, other)]  # "process B" leaves chat 7 alone
    async with db.transaction() as session:
        await mark_sent(session, [(first, 1)])
    assert await _claim(db) == [(7, second)]
    async with db.read_session() as session:
        sent_at = await session.scalar(select(Notification.sent_at).where(Notification.id == first))
        later = await session.get(Notification, second)
    # Sent a moment ago by the other process: this one waits out the rest of the second.
    assert later.not_before >= sent_at + timedelta(seconds=1)


@postgres_only
async def test_a_claim_does_not_overtake_a_message_another_claim_has_locked(db: Database) -> None:
    first, second, other = await queue(db, (7, "digest"), (7, "digest"), (8, "digest"))
    async with db.transaction() as locker:  # another process's claim, still in its transaction
        await locker.execute(select(Notification).where(Notification.id == first).with_for_update())
        assert await _claim(db) == [(8, other)]
    assert await _claim(db) == [(7, first), (7, second)]


@postgres_only
async def test_an_earlier_message_not_yet_due_does_not_hold_its_chat_up(db: Database) -> None:
    first, second = await queue(db, (7, "digest"), (7, "digest"))
    async with db.transaction() as session:
        await session.execute(update(Notification).where(Notification.id == first)
                              .values(not_before=utcnow() + timedelta(hours=1)))
    assert await _claim(db) == [(7, second)]


@postgres_only
async def test_a_chat_is_handed_over_in_queue_order_whatever_the_priorities(db: Database) -> None:
    first, second = await queue(db, (7, "digest"), (7, "digest"))
    async with db.transaction() as session:
        await session.execute(update(Notification).where(Notification.id == second).values(priority=1))
    assert await _claim(db) == [(7, first), (7, second)]


@postgres_only
async def test_an_expired_lease_is_still_in_line_before_the_chat_s_later_messages(db: Database) -> None:
    first, = await queue(db, (7, "digest"))
    assert await _claim(db, lease=timedelta(seconds=-1)) == [(7, first)]  # its sender died
    second, = await queue(db, (7, "digest"))
    assert await _claim(db) == [(7, first), (7, second)]
    async with db.read_session() as session:
        states = set(await session.scalars(select(Notification.state)))
    assert states == {NotificationState.SENDING.value}


# --- one poller -------------------------------------------------------------------------------------


@postgres_only
async def test_one_process_holds_the_polling_lock_until_its_connection_dies(db: Database, database_url: str) -> None:
    first, second = Leadership(database_url, key=4242), Leadership(database_url, key=4242)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await first.still_held()
        async with db.engine.connect() as connection:  # the leader's server process goes away
            await connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
            ))
        assert not await first.still_held()
        assert await second.try_acquire()
        assert not await first.try_acquire()
    finally:
        await first.close()
        await second.close()
