"""Several processes on one PostgreSQL database act as one bot: one send budget and one 429 pause,
a chat's messages in order and a second apart whoever sends them, one long-polling process.
Paid broadcasts (both backends) go out flagged and are counted by the sandbox."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, timedelta

import aiohttp
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
from bot.settings import Settings, load_settings
from tests.conftest import ON_POSTGRES
from tests.test_delivery import max_in_sliding_second
from tests.factories import ADMIN
from tests.test_run import _free_port

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
    rate = 20
    gates = [PostgresRateGate(db, rate), PostgresRateGate(db, rate)]
    ends = await asyncio.gather(*(gates[i % 2].reserve_block("free", 1, spacing(rate)) for i in range(12)))
    slots = sorted(reservation.end for reservation in ends)
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(slots, slots[1:], strict=False)]
    # One slot each, at least 1/rate apart (more when the database was idle between two): 21
    # slots cannot fit in a second, whoever reserved them.
    assert len(slots) == 12 and min(gaps) >= spacing(rate) - 1e-6


@postgres_only
async def test_a_429_in_one_process_holds_back_the_slots_of_every_process(db: Database) -> None:
    first, second = PostgresRateGate(db, 20), PostgresRateGate(db, 20, paid_rate=1000)
    await first.reserve_block("free", 1, spacing(20))
    await first.pause(3)
    async with db.read_session() as session:
        paused_until = {gate.name: gate.paused_until for gate in await session.scalars(select(SendGate))}
    assert set(paused_until) == {"free", "paid"}
    for name, span in (("free", spacing(20)), ("paid", spacing(1000))):
        reservation = await second.reserve_block(name, 1, span)
        assert reservation.end - timedelta(seconds=span) >= paused_until[name]  # the slot starts after the pause
        assert reservation.ahead > 2.5


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


# --- two `stockbot run` processes -----------------------------------------------------------------

# Arrivals are stamped by the sandbox, a send's dispatch by the sending process: on a loaded
# machine the two differ by some ms. A missing rule shows up far beyond this (a chat's messages
# 1/rate apart, dozens of sends inside a pause).
PER_CHAT_JITTER = 0.1


async def _until(predicate, what: str, timeout: float = 180.0):  # type: ignore[no-untyped-def]
    """Wait for a condition; generous, since starting a process on a busy CI box is slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await predicate() if asyncio.iscoroutinefunction(predicate) else predicate():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@postgres_only
async def test_two_processes_send_as_one_bot_and_hand_over_polling(db: Database, database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rate, pause = 20, 2
    with BotApiSandbox() as sandbox:  # on its own thread: the bots are other processes
        env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
        env.update(BOT_TOKEN=sandbox.token, TELEGRAM_API_URL=sandbox.base_url, DATABASE_URL=database_url,
                   ADMIN_IDS=str(ADMIN), QUIET_HOURS="", WEBHOOK_SECRET="s3cret", SEND_RATE=str(rate))
        ports = [_free_port(), _free_port()]
        logs = [tmp_path / f"bot{i}.log" for i in range(2)]
        outputs = [log.open("w") for log in logs]
        bots = [subprocess.Popen([sys.executable, "-m", "bot", "run"], env={**env, "API_PORT": str(port)},
                                 cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT) for port, out in zip(ports, outputs)]
        try:
            async with aiohttp.ClientSession() as http:
                async def serving() -> bool:  # the API starts after the sender: both can send now
                    for port in ports:
                        try:
                            async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as response:
                                if response.status != 200:
                                    return False
                        except aiohttp.ClientError:
                            return False
                    return True

                await _until(serving, "both processes to serve")
            await _until(sandbox.is_polling, "one process to poll")

            # 30 chats, two messages each; a 429 once a third has gone out.
            chats = [9000 + i for i in range(30)]
            await queue(db, *[(chat, "digest") for _ in range(2) for chat in chats])
            await _until(lambda: sum(call.ok for call in sandbox.calls_to("sendMessage")) >= 20, "20 sends")
            sandbox.fail_next("sendMessage", status=429, retry_after=pause)
            await _until(lambda: len([m for m in sandbox.messages() if m.chat_id in chats]) >= 60, "every message",
                         timeout=120)

            calls = sandbox.calls_to("sendMessage")
            sent = [call for call in calls if call.ok]
            assert len(sent) == 60  # each message once: none lost, none twice
            assert max_in_sliding_second([call.at for call in sent]) <= rate + 1
            for chat in chats:
                arrivals = [call.at for call in sent if call.params["chat_id"] == chat]
                assert arrivals[1] - arrivals[0] >= 1.0 - PER_CHAT_JITTER, chat
                first, second = (message.text for message in sandbox.messages(chat))
                assert int(first.split()[1]) < int(second.split()[1])  # in the order queued
            [flood] = [call for call in calls if call.status == 429]
            during = [call for call in sent if flood.at < call.at < flood.at + pause]
            # Sharing nothing, the other process would send ~rate x pause here; shared, at most
            # what it had dispatched before the pause was recorded.
            assert len(during) <= rate * pause // 4, len(during)

            # One poller: no 409s; kill -9 it and the other takes over.
            assert not [call for call in sandbox.calls_to("getUpdates") if call.status == 409]
            leaders = [i for i, log in enumerate(logs) if "now long-polls" in log.read_text()]
            assert len(leaders) == 1
            bots[leaders[0]].send_signal(signal.SIGKILL)
            bots[leaders[0]].wait(30)
            survivor = 1 - leaders[0]
            sandbox.send_text(ADMIN, "/help")
            await _until(lambda: sandbox.messages(ADMIN), "the other process to answer", timeout=60)
            assert "now long-polls" in logs[survivor].read_text()

            bots[survivor].send_signal(signal.SIGTERM)
            assert bots[survivor].wait(60) == 0
        finally:
            for bot in bots:
                if bot.poll() is None:
                    bot.kill()
                    bot.wait()
            for out in outputs:
                out.close()
    # Both took part: the survivor sent some of the 60, the killed one the rest.
    [stats] = re.findall(r"delivery: SenderStats\(sent=(\d+)", logs[survivor].read_text())
    assert 0 < int(stats) < 60
