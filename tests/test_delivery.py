"""Delivery end to end: outbox rows -> Sender -> TelegramTransport -> real aiogram Bot -> Bot API sandbox.

Nothing of aiogram is mocked; failures are the sandbox's real HTTP answers (429, 403, 400, 5xx), so
aiogram raises its real exceptions and the transport maps them. Every test asserts what a user (or
the shop) would see: what arrived in which chat, when, how often, and what the outbox row says.

Time: the sandbox's `ApiCall.at` is `time.monotonic()` on arrival, the same clock the sender's
limiter and per-chat spacing use. Outbox rules (quiet hours, cap, leases, backoff) run on the
sender's injectable `clock`, so no test waits for wall-clock hours.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiogram.client.default import DefaultBotProperties
from sqlalchemy import select

from bot.db import Database
from bot.delivery.outbox import Gate, Outgoing, claim_due, enqueue
from bot.delivery.sender import RETRY_INTERVAL_CAP, Sender
from bot.delivery.telegram import TelegramTransport
from bot.models import Customer, Notification, utcnow
from bot.sandbox import BotApiSandbox, sandbox_bot

OPEN = Gate(quiet=None, zone=UTC)  # no quiet hours, no cap: only the rate rules apply
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Far enough ahead that rows enqueued "now" (enqueue stamps not_before with the real utcnow) are due.
FUTURE_DAY = datetime(2030, 1, 15, tzinfo=UTC)


class Clock:
    """The sender's injectable wall clock (UTC), moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def transport(sandbox: BotApiSandbox) -> AsyncIterator[TelegramTransport]:
    bot = sandbox_bot(sandbox, default=DefaultBotProperties(parse_mode="HTML"))
    yield TelegramTransport(bot)
    await bot.session.close()


def fast_sender(db: Database, transport: TelegramTransport, **kwargs: object) -> Sender:
    """A sender for tests where the rate is not what is tested."""
    options: dict[str, object] = {
        "rate": 1000, "gate": OPEN, "per_chat_interval": 0.01, "poll_interval": 0.05,
    }
    options.update(kwargs)
    return Sender(db, transport, **options)  # type: ignore[arg-type]


async def add_customer(db: Database, chat_id: int, **fields: object) -> int:
    async with db.transaction() as session:
        customer = Customer(external_id=f"cust-{chat_id}", name=f"Customer {chat_id}", chat_id=chat_id,
                            telegram_user_id=chat_id, **fields)
        session.add(customer)
        await session.flush()
        return customer.id


async def queue(db: Database, *messages: Outgoing) -> list[int | None]:
    async with db.transaction() as session:
        return [await enqueue(session, message) for message in messages]


async def rows(db: Database) -> dict[int, Notification]:
    async with db.read_session() as session:
        return {row.id: row for row in await session.scalars(select(Notification))}


async def customer(db: Database, customer_id: int) -> Customer:
    async with db.read_session() as session:
        found = await session.get(Customer, customer_id)
        assert found is not None
        return found


def texts(sandbox: BotApiSandbox, chat_id: int) -> list[str]:
    return [message.text for message in sandbox.messages(chat_id)]


def sends(sandbox: BotApiSandbox, chat_id: int | None = None) -> list:
    return [c for c in sandbox.calls_to("sendMessage") if chat_id is None or c.params.get("chat_id") == chat_id]


def max_in_sliding_second(times: list[float]) -> int:
    """Most arrivals in any window [t, t+1). The maximum is reached by a window starting at an arrival."""
    times = sorted(times)
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


async def run_until(sender: Sender, condition: Callable[[], object], sandbox: BotApiSandbox,
                    timeout: float = 10.0) -> None:
    """Run the sender until the sandbox shows `condition`, then stop it the way the app does."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await sandbox.wait_for(condition, timeout=timeout)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


# --- 1. rate limits --------------------------------------------------------------------------------

# The sender stamps a chat's last send when it dispatches; the sandbox stamps arrival after aiogram
# has serialised the request and it crossed loopback HTTP on this same event loop. Two sends of one
# chat therefore arrive 1 s apart give or take the difference of two such latencies, a few ms on an
# idle machine. 15 ms is well above what was observed (< 5 ms) and far below a real violation (a
# missing per-chat wait shows up as ~50 ms gaps at this rate).
PER_CHAT_JITTER = 0.015


async def test_rate_limits_hold_in_every_sliding_second(db: Database, sandbox: BotApiSandbox,
                                                        transport: TelegramTransport) -> None:
    rate = 20
    singles = [2000 + i for i in range(20)]  # one message each
    busy = [2100 + i for i in range(10)]  # four each: per-chat spacing becomes the bottleneck
    outgoing = [Outgoing(f"rate:{chat}:0", chat, "notice", f"{chat} #0") for chat in busy + singles]
    outgoing += [Outgoing(f"rate:{chat}:{n}", chat, "notice", f"{chat} #{n}") for n in (1, 2, 3) for chat in busy]
    assert len(outgoing) == 60 and len(set(busy + singles)) == 30
    await queue(db, *outgoing)

    sender = Sender(db, transport, rate=rate, gate=OPEN, poll_interval=0.05)
    await sender.drain(timeout=15)

    calls = sends(sandbox)
    assert len(calls) == 60 and all(call.ok for call in calls)
    assert max_in_sliding_second([call.at for call in calls]) <= rate
    for chat in busy:
        arrivals = [call.at for call in sends(sandbox, chat)]
        gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
        assert min(gaps) >= 1.0 - PER_CHAT_JITTER, (chat, gaps)
        assert texts(sandbox, chat) == [f"{chat} #{n}" for n in range(4)]
    for chat in singles:
        assert texts(sandbox, chat) == [f"{chat} #0"]
    assert {row.state for row in (await rows(db)).values()} == {"sent"}


# --- 2. flood control --------------------------------------------------------------------------------


async def test_429_pauses_every_chat_then_delivers_once(db: Database, sandbox: BotApiSandbox,
                                                       transport: TelegramTransport) -> None:
    chats = [2200 + i for i in range(8)]
    await queue(db, *[Outgoing(f"flood:{chat}:{n}", chat, "notice", f"{chat} #{n}") for n in (0, 1) for chat in chats])
    sandbox.fail_next("sendMessage", status=429, retry_after=1)

    await fast_sender(db, transport, rate=20).drain(timeout=15)

    calls = sends(sandbox)
    flood, after = calls[0], calls[1:]
    assert flood.status == 429
    assert after and all(call.at >= flood.at + 1.0 for call in after), [c.at - flood.at for c in after[:3]]
    assert all(call.ok for call in after) and len(after) == 16
    for chat in chats:  # the refused message was delivered, once, and still first in its chat
        assert texts(sandbox, chat) == [f"{chat} #0", f"{chat} #1"]
    assert {row.state for row in (await rows(db)).values()} == {"sent"}


async def test_429_refused_message_goes_first_after_the_pause(db: Database, sandbox: BotApiSandbox,
                                                              transport: TelegramTransport) -> None:
    chats = [2250 + i for i in range(6)]
    await queue(db, *[Outgoing(f"first:{chat}", chat, "notice", f"to {chat}") for chat in chats])
    sandbox.fail_next("sendMessage", status=429, retry_after=1)

    await fast_sender(db, transport, rate=20).drain(timeout=15)

    calls = sends(sandbox)
    refused = calls[0]
    assert refused.status == 429
    # Sends already on their way when the 429 came back may still land before the pause; the
    # first one after the pause is the refused message.
    after_pause = [call for call in calls[1:] if call.at >= refused.at + 1]
    assert after_pause[0].params["chat_id"] == refused.params["chat_id"]


# --- 3. blocked and vanished chats -----------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["block_chat", "unknown_chat"])
async def test_unreachable_chat_is_tried_once_and_its_queue_dropped(
    db: Database, sandbox: BotApiSandbox, transport: TelegramTransport, refusal: str
) -> None:
    gone, fine = 3001, 3002
    gone_id = await add_customer(db, gone)
    fine_id = await add_customer(db, fine)
    getattr(sandbox, refusal)(gone)
    await queue(db, *[
        Outgoing(f"u:{chat}:{n}", chat, "notice", f"{chat} #{n}", customer_id=cid, to_customer=True)
        for n in range(3) for chat, cid in ((gone, gone_id), (fine, fine_id))
    ])

    await run_until(fast_sender(db, transport), lambda: len(sandbox.messages(fine)) == 3, sandbox)

    assert len(sends(sandbox, gone)) == 1 and sends(sandbox, gone)[0].status in (400, 403)
    assert texts(sandbox, fine) == [f"{fine} #{n}" for n in range(3)]
    assert (await customer(db, gone_id)).unreachable and not (await customer(db, fine_id)).unreachable
    by_chat = {}
    for row in (await rows(db)).values():
        by_chat.setdefault(row.chat_id, set()).add(row.state)
    assert by_chat == {gone: {"dropped"}, fine: {"sent"}}

    # Later notices for that customer are dropped when claimed: nothing more reaches Telegram.
    [later] = await queue(db, Outgoing(f"u:{gone}:later", gone, "notice", "later", customer_id=gone_id,
                                       to_customer=True))
    await queue(db, Outgoing(f"u:{fine}:later", fine, "notice", "later", customer_id=fine_id, to_customer=True))
    await run_until(fast_sender(db, transport), lambda: len(sandbox.messages(fine)) == 4, sandbox)
    assert len(sends(sandbox, gone)) == 1
    dropped = (await rows(db))[later]
    assert dropped.state == "dropped" and dropped.last_error == "recipient unreachable"


async def test_drain_returns_after_an_unreachable_chat(db: Database, sandbox: BotApiSandbox,
                                                      transport: TelegramTransport) -> None:
    sandbox.block_chat(3101)
    await queue(db, Outgoing("d:3101", 3101, "notice", "hello"))
    # The bug this guards against is a drain that never returns: the default deadline (30 s) shows
    # it as well as 2 s did, which a loaded machine used up on its own (at load 8 on PostgreSQL a
    # claim or a send alone took up to 1.5 s, the whole drain 2.3-2.9 s).
    await fast_sender(db, transport).drain()


async def test_sender_keeps_delivering_after_many_blocked_chats(db: Database, sandbox: BotApiSandbox,
                                                               transport: TelegramTransport) -> None:
    blocked = [3200 + i for i in range(20)]
    for chat in blocked:
        sandbox.block_chat(chat)
    await queue(db, *[Outgoing(f"b:{chat}", chat, "notice", "hi") for chat in blocked])
    sender = fast_sender(db, transport, rate=5)  # claim size max(20, 4 * rate) = 20
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await sandbox.wait_for(lambda: len(sends(sandbox)) == 20, timeout=8)
        await queue(db, Outgoing("b:ok", 3300, "notice", "still here"))
        sender.wake()
        await sandbox.wait_for(lambda: sandbox.messages(3300), timeout=3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


# --- 4. a dead worker's lease ------------------------------------------------------------------------------


async def test_expired_lease_of_a_dead_worker_is_retaken_and_sent_once(
    db: Database, sandbox: BotApiSandbox, transport: TelegramTransport
) -> None:
    chats = [4000 + i for i in range(5)]
    await queue(db, *[Outgoing(f"lease:{chat}", chat, "notice", f"to {chat}") for chat in chats])
    claimed_at = utcnow()
    async with db.transaction() as session:  # a worker claims, then dies before sending anything
        dead = await claim_due(session, limit=100, gate=OPEN, now=claimed_at)
    assert len(dead) == 5 and {row.state for row in (await rows(db)).values()} == {"sending"}

    # While the lease holds, a live worker leaves the rows alone.
    await fast_sender(db, transport, clock=lambda: claimed_at + timedelta(minutes=1)).drain(timeout=5)
    assert sends(sandbox) == []

    # Past the lease (2 min), the rows are taken over and each chat gets its message exactly once.
    await fast_sender(db, transport, clock=lambda: claimed_at + timedelta(minutes=3)).drain(timeout=5)
    for chat in chats:
        assert texts(sandbox, chat) == [f"to {chat}"]
    assert len(sends(sandbox)) == 5
    assert {(row.state, row.attempts) for row in (await rows(db)).values()} == {("sent", 2)}


# --- 5. dedup ---------------------------------------------------------------------------------------------------


async def test_same_cause_twice_is_sent_once(db: Database, sandbox: BotApiSandbox,
                                             transport: TelegramTransport) -> None:
    cause = Outgoing("back_in_stock:sku-1:chat-5000", 5000, "back_in_stock", "It is back")
    first, again = await queue(db, cause, cause)
    [later] = await queue(db, Outgoing(cause.dedup_key, 5000, "back_in_stock", "It is back (again)"))
    assert first is not None and again is None and later is None

    await fast_sender(db, transport).drain(timeout=5)
    [late] = await queue(db, cause)  # even after it was sent
    await fast_sender(db, transport).drain(timeout=5)

    assert late is None
    assert texts(sandbox, 5000) == ["It is back"] and len(sends(sandbox)) == 1


# --- 6. quiet hours ----------------------------------------------------------------------------------------------


async def test_quiet_hours_postpone_customer_messages_until_morning(
    db: Database, sandbox: BotApiSandbox, transport: TelegramTransport
) -> None:
    gate = Gate(quiet=(time(22), time(8)), zone=SHANGHAI)
    clock = Clock(FUTURE_DAY.replace(hour=15, minute=30))  # 23:30 in Shanghai
    night_id = await add_customer(db, 6001)
    berlin_id = await add_customer(db, 6002, timezone="Europe/Berlin")  # 16:30 there: not quiet
    night, staff, berlin = await queue(
        db,
        Outgoing("q:cust", 6001, "back_in_stock", "for the customer", customer_id=night_id, to_customer=True),
        Outgoing("q:staff", 6100, "low_stock", "for staff"),
        Outgoing("q:berlin", 6002, "back_in_stock", "for Berlin", customer_id=berlin_id, to_customer=True),
    )

    await fast_sender(db, transport, gate=gate, clock=clock).drain(timeout=5)
    assert texts(sandbox, 6100) == ["for staff"] and texts(sandbox, 6002) == ["for Berlin"]
    assert sends(sandbox, 6001) == []
    waiting = (await rows(db))[night]
    assert waiting.state == "pending"
    assert waiting.not_before == datetime(2030, 1, 16, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai

    clock.now = datetime(2030, 1, 15, 23, 59, tzinfo=UTC)  # 07:59 local: still quiet
    await fast_sender(db, transport, gate=gate, clock=clock).drain(timeout=5)
    assert sends(sandbox, 6001) == []

    clock.now = datetime(2030, 1, 16, 0, 0, 1, tzinfo=UTC)
    await fast_sender(db, transport, gate=gate, clock=clock).drain(timeout=5)
    assert texts(sandbox, 6001) == ["for the customer"]
    assert {row.state for row in (await rows(db)).values()} == {"sent"}


# --- 7. server errors, give-up, opt-out ------------------------------------------------------------------------------


async def test_5xx_is_retried_with_backoff_then_sent_in_order(db: Database, sandbox: BotApiSandbox,
                                                              transport: TelegramTransport) -> None:
    first, second = await queue(db, Outgoing("5xx:1", 7001, "notice", "one"), Outgoing("5xx:2", 7001, "notice", "two"))
    clock = Clock(utcnow())  # after enqueue, which stamps not_before with the real time
    sandbox.fail_next("sendMessage", status=502, count=2, chat_id=7001)

    def sender() -> Sender:
        return fast_sender(db, transport, clock=clock, max_attempts=6, backoff_base=2.0)

    await sender().drain(timeout=5)
    row = (await rows(db))[first]
    assert (row.state, row.attempts) == ("pending", 1) and row.last_error
    assert clock.now + timedelta(seconds=1) <= row.not_before <= clock.now + timedelta(seconds=3)  # 2**1 * [0.5, 1.5]
    assert (await rows(db))[second].not_before == row.not_before  # waits with it: no overtaking
    assert sandbox.messages(7001) == []

    clock.advance(seconds=3)
    await sender().drain(timeout=5)
    row = (await rows(db))[first]
    assert (row.state, row.attempts) == ("pending", 2)
    assert clock.now + timedelta(seconds=2) <= row.not_before <= clock.now + timedelta(seconds=6)  # 2**2 * [0.5, 1.5]

    clock.advance(seconds=6)
    await sender().drain(timeout=5)
    assert [call.status for call in sends(sandbox, 7001)] == [502, 502, 200, 200]
    assert texts(sandbox, 7001) == ["one", "two"]
    assert {row.state for row in (await rows(db)).values()} == {"sent"}


async def test_a_five_minute_bot_api_outage_delays_messages_and_loses_none(
        db: Database, sandbox: BotApiSandbox, transport: TelegramTransport) -> None:
    chats = range(7100, 7110)
    await queue(db, *[Outgoing(f"outage:{chat}:{n}", chat, "notice", f"{chat}-{n}") for chat in chats for n in range(3)])
    clock = Clock(utcnow())
    outage_ends = clock.now + timedelta(minutes=5)
    sandbox.fail_next("sendMessage", status=502, count=10**6)  # every send, until the outage ends
    while clock.now < outage_ends:
        await fast_sender(db, transport, clock=clock).drain(timeout=5)
        due = [row.not_before for row in (await rows(db)).values()]
        # Retried by time: never parked further ahead than the capped interval (jitter included).
        assert max(due) <= clock.now + timedelta(seconds=RETRY_INTERVAL_CAP)
        clock.advance(seconds=10)
    assert {row.state for row in (await rows(db)).values()} == {"pending"}
    assert len([call for call in sends(sandbox) if call.status == 502]) > 10 * 6  # tried all along

    sandbox.clear_failures()  # the Bot API is back
    clock.advance(seconds=RETRY_INTERVAL_CAP)
    await fast_sender(db, transport, clock=clock).drain(timeout=10)
    for chat in chats:
        assert texts(sandbox, chat) == [f"{chat}-{n}" for n in range(3)]  # each once, in order
    assert {row.state for row in (await rows(db)).values()} == {"sent"}


async def test_a_message_telegram_refuses_is_failed_at_once_and_the_chat_goes_on(
        db: Database, sandbox: BotApiSandbox, transport: TelegramTransport) -> None:
    refused, fine = await queue(db, Outgoing("bad:1", 7002, "notice", "doomed"), Outgoing("bad:2", 7002, "notice", "next"))
    sandbox.fail_next("sendMessage", status=400, description="Bad Request: can't parse entities", chat_id=7002)
    await fast_sender(db, transport).drain(timeout=5)
    assert [call.status for call in sends(sandbox, 7002)] == [400, 200]
    assert texts(sandbox, 7002) == ["next"]
    by_id = await rows(db)
    assert (by_id[refused].state, by_id[refused].attempts) == ("failed", 1)
    assert by_id[refused].last_error and "can't parse entities" in by_id[refused].last_error
    assert by_id[fine].state == "sent"


async def test_opted_out_customer_gets_nothing(db: Database, sandbox: BotApiSandbox,
                                               transport: TelegramTransport) -> None:
    out_id = await add_customer(db, 7003, opted_out=True)
    [nid] = await queue(db, Outgoing("opt", 7003, "back_in_stock", "psst", customer_id=out_id, to_customer=True))
    await fast_sender(db, transport).drain(timeout=5)
    assert sends(sandbox) == []
    row = (await rows(db))[nid]
    assert (row.state, row.last_error) == ("dropped", "recipient opted out")


# --- 8. daily cap ----------------------------------------------------------------------------------------------------


async def test_daily_cap_defers_the_fourth_message_to_the_next_morning(
    db: Database, sandbox: BotApiSandbox, transport: TelegramTransport
) -> None:
    gate = Gate(quiet=(time(22), time(8)), zone=UTC, daily_cap=3)
    clock = Clock(FUTURE_DAY.replace(hour=10))
    cid = await add_customer(db, 8001)
    ids = await queue(db, *[
        Outgoing(f"cap:{n}", 8001, "back_in_stock", f"offer {n}", customer_id=cid, to_customer=True) for n in range(4)
    ], Outgoing("cap:staff", 8100, "low_stock", "staff messages are not capped"))

    await fast_sender(db, transport, gate=gate, clock=clock).drain(timeout=5)
    assert texts(sandbox, 8001) == ["offer 0", "offer 1", "offer 2"]
    assert texts(sandbox, 8100) == ["staff messages are not capped"]
    fourth = (await rows(db))[ids[3]]
    assert fourth.state == "pending"
    assert fourth.not_before == datetime(2030, 1, 16, 8, tzinfo=UTC)  # next day, when its quiet hours end

    clock.now = datetime(2030, 1, 15, 23, 30, tzinfo=UTC)  # same day: still capped (and quiet)
    await fast_sender(db, transport, gate=gate, clock=clock).drain(timeout=5)
    assert len(sandbox.messages(8001)) == 3

    clock.now = datetime(2030, 1, 16, 8, 0, 1, tzinfo=UTC)
    await fast_sender(db, transport, gate=gate, clock=clock).drain(timeout=5)
    assert texts(sandbox, 8001) == [f"offer {n}" for n in range(4)]


# --- 9. restart ----------------------------------------------------------------------------------------------------


async def test_restart_mid_queue_loses_nothing_and_repeats_nothing(
    db: Database, sandbox: BotApiSandbox, transport: TelegramTransport
) -> None:
    chats = [9000 + i for i in range(20)]
    await queue(db, *[Outgoing(f"r:{chat}:{n}", chat, "notice", f"{chat} #{n}") for n in (0, 1) for chat in chats])

    first = Sender(db, transport, rate=20, gate=OPEN, poll_interval=0.05)
    await run_until(first, lambda: len(sandbox.messages()) >= 10, sandbox)
    delivered = len(sandbox.messages())
    states = [row.state for row in (await rows(db)).values()]
    assert 10 <= delivered < 40
    assert states.count("sent") == delivered and states.count("pending") == 40 - delivered  # acked, released

    await Sender(db, transport, rate=20, gate=OPEN, poll_interval=0.05).drain(timeout=15)
    for chat in chats:
        assert texts(sandbox, chat) == [f"{chat} #0", f"{chat} #1"]
    assert len(sends(sandbox)) == 40
    assert {row.state for row in (await rows(db)).values()} == {"sent"}


async def test_restart_does_not_spend_the_daily_cap_twice(db: Database, sandbox: BotApiSandbox,
                                                          transport: TelegramTransport) -> None:
    gate = Gate(quiet=None, zone=UTC, daily_cap=3)
    cid = await add_customer(db, 9101)
    await queue(db, *[Outgoing(f"rc:{n}", 9101, "offer", f"offer {n}", customer_id=cid, to_customer=True)
                      for n in range(3)])
    # Real per-chat spacing: the first offer goes out, the other two wait in memory and are released.
    first = Sender(db, transport, rate=20, gate=gate, per_chat_interval=1.0, poll_interval=0.05)
    await run_until(first, lambda: len(sandbox.messages(9101)) >= 1, sandbox)
    assert len(sandbox.messages(9101)) == 1

    await fast_sender(db, transport, gate=gate).drain(timeout=5)
    assert texts(sandbox, 9101) == ["offer 0", "offer 1", "offer 2"]  # 3 offers, cap 3, same day


async def test_two_senders_on_one_queue_send_every_notice_exactly_once(
    db: Database, sandbox: BotApiSandbox
) -> None:
    """Two bot processes share one outbox: claims never overlap, nothing is lost or doubled."""
    chats = range(7000, 7100)
    await queue(db, *[Outgoing(f"n:{chat}:{n}", chat, "notice", f"{chat} #{n}") for chat in chats for n in range(10)])
    bots = [sandbox_bot(sandbox, default=DefaultBotProperties(parse_mode="HTML")) for _ in range(2)]
    # At this rate each claims 400 rows at a time, so the queue must be shared to be drained.
    senders = [fast_sender(db, TelegramTransport(bot), rate=100, per_chat_interval=0.001) for bot in bots]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(sender.run(stop)) for sender in senders]
    try:
        await sandbox.wait_for(lambda: len(sends(sandbox)) >= 1000, timeout=60)
        await asyncio.sleep(0.3)  # room for a duplicate to show up, were there one
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for bot in bots:
            await bot.session.close()
    delivered = [call.params["text"] for call in sends(sandbox)]
    assert len(delivered) == 1000 and len(set(delivered)) == 1000
    assert all(sender.stats.sent > 0 for sender in senders)  # both did real work
    assert {row.state for row in (await rows(db)).values()} == {"sent"}


async def test_a_customers_due_plain_notices_go_out_as_one_message_within_the_cap(
    db: Database, sandbox: BotApiSandbox, transport: TelegramTransport
) -> None:
    """Notices held back together (cap, quiet hours) arrive as one message, not a burst."""
    chat = 8100
    cid = await add_customer(db, chat)
    button = {"inline_keyboard": [[{"text": "Wait", "callback_data": "of:wait:1:0"}]]}
    await queue(
        db,
        Outgoing("restock:1", chat, "restock_notice", "Lipstick is back", customer_id=cid, to_customer=True),
        Outgoing("offer:2", chat, "stockout_offer", "Gloss ran out", reply_markup=button, customer_id=cid,
                 to_customer=True),
        Outgoing("restock:3", chat, "restock_notice", "Shampoo is back", customer_id=cid, to_customer=True),
        Outgoing("expired:4", chat, "waitlist_expired", "Serum: your place expired", customer_id=cid,
                 to_customer=True),
    )
    capped = Gate(quiet=None, zone=UTC, daily_cap=2)
    await run_until(fast_sender(db, transport, gate=capped), lambda: len(sandbox.messages(chat)) == 2, sandbox)
    first, second = sandbox.messages(chat)
    assert first.text == "Lipstick is back\n\nShampoo is back\n\nSerum: your place expired"
    assert second.text == "Gloss ran out" and second.buttons()
    states = sorted(row.state for row in (await rows(db)).values())
    assert states == ["merged", "merged", "sent", "sent"]  # and the cap of 2 was enough for all four
