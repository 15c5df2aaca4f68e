"""Delivery fan-out: N queued notices to N distinct chats, through the real Sender, TelegramTransport and
aiogram Bot, into the Bot API sandbox running on its own thread and event loop.

    python benchmarks/bench_fanout.py --rate 25 [--messages 10000]     # does the limiter hold 25/s?
    python benchmarks/bench_fanout.py --unlimited [--messages 10000]   # the sender's ceiling
    python benchmarks/bench_fanout.py --unlimited --profile fanout.prof   # cProfile of the event-loop thread

The outbox is a migrated SQLite file in a temp dir (`bot.migrate.upgrade`). Each notice is a customer
message (`to_customer=True`, one customer per chat) as a back-in-stock fan-out would queue it; the gate
has no quiet hours and, unless `--cap` is given, no daily cap. Rates are measured from the sandbox's
arrival times (`ApiCall.at`, monotonic): achieved rate = (n - 1) / (last - first arrival), and the most
arrivals in any sliding window [t, t + 1). CPU: `time.process_time()` over the run covers the whole
process (sender loop, aiosqlite's thread, and the sandbox thread); the sandbox thread's own CPU is read
from its thread clock and subtracted to give the sender side.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from bisect import bisect_left
from datetime import UTC
from pathlib import Path

from common import describe  # benchmarks/common.py, beside this script

from aiogram.client.default import DefaultBotProperties
from sqlalchemy import func, insert, select

from bot.db import create_database
from bot.delivery.outbox import Gate
from bot.delivery.sender import Sender
from bot.delivery.telegram import TelegramTransport
from bot.migrate import upgrade
from bot.models import Customer, Notification, utcnow
from bot.sandbox import BotApiSandbox, sandbox_bot

FIRST_CHAT = 10_000_000


def max_in_sliding_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def _windows_over(times: list[float], rate: float) -> int:
    return sum(1 for i, t in enumerate(times) if bisect_left(times, t + 1.0) - i > rate)


def thread_cpu(thread_id: int | None) -> float:
    if thread_id is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread_id))


async def seed(db, n: int) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    async with db.transaction() as session:
        for start in range(0, n, 2000):
            chunk = range(start, min(n, start + 2000))
            await session.execute(insert(Customer), [
                {"id": i + 1, "external_id": f"bench-{i}", "name": f"Customer {i}", "chat_id": FIRST_CHAT + i,
                 "telegram_user_id": FIRST_CHAT + i, "created_at": now, "updated_at": now}
                for i in chunk
            ])
            await session.execute(insert(Notification), [
                {"dedup_key": f"back_in_stock:sku-1:{FIRST_CHAT + i}", "chat_id": FIRST_CHAT + i,
                 "customer_id": i + 1, "kind": "back_in_stock",
                 "text": f"<b>Lip tint</b> is back in stock, customer {i}.", "priority": 100,
                 "to_customer": True, "state": "pending", "not_before": now, "attempts": 0, "created_at": now}
                for i in chunk
            ])


async def run(args: argparse.Namespace) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="fanout-"))
    db = create_database(f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
    await upgrade(db)
    await seed(db, args.messages)

    sandbox = BotApiSandbox()
    sandbox.start_in_thread()
    sandbox_thread = sandbox._thread.ident if sandbox._thread else None  # noqa: SLF001 - its CPU clock
    bot = sandbox_bot(sandbox, default=DefaultBotProperties(parse_mode="HTML"))
    rate = 100_000.0 if args.unlimited else args.rate
    sender = Sender(db, TelegramTransport(bot), rate=rate, gate=Gate(quiet=None, zone=UTC, daily_cap=args.cap),
                    concurrency=args.concurrency, poll_interval=0.05)
    profiler = cProfile.Profile() if args.profile else None
    try:
        await bot.get_me()  # open the HTTP connection pool outside the measurement
        sandbox.reset_traffic()
        wall0, cpu0, sb_cpu0 = time.perf_counter(), time.process_time(), thread_cpu(sandbox_thread)
        if profiler:
            profiler.enable()
        stats = await sender.drain(timeout=args.messages / min(rate, 50_000) * 2 + 120)
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        sandbox_cpu = thread_cpu(sandbox_thread) - sb_cpu0
    finally:
        await bot.session.close()
        sandbox.stop_thread()

    calls = sandbox.calls_to("sendMessage")
    ok = [call for call in calls if call.ok]
    arrivals = sorted(call.at for call in ok)
    async with db.read_session() as session:
        states = dict((await session.execute(
            select(Notification.state, func.count()).group_by(Notification.state))).all())
    await db.dispose()
    if profiler:
        profiler.dump_stats(args.profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)

    n = len(ok)
    span = arrivals[-1] - arrivals[0] if n > 1 else 0.0
    problems = []
    if n != args.messages or len({call.params["chat_id"] for call in ok}) != args.messages:
        problems.append(f"delivered {n} to {len({c.params['chat_id'] for c in ok})} chats, expected {args.messages}")
    if states != {"sent": args.messages}:
        problems.append(f"outbox states {states}")
    return {
        "messages": n, "calls": len(calls), "sent (stats)": stats.sent, "wall s": wall,
        "achieved msg/s (arrivals)": (n - 1) / span if span else float("nan"),
        "end-to-end msg/s (wall)": n / wall,
        "max in any sliding 1 s": max_in_sliding_second(arrivals),
        "arrivals opening a 1 s window over the rate": _windows_over(arrivals, rate),
        "CPU s (process)": cpu, "CPU s (sandbox thread)": sandbox_cpu,
        "CPU ms/msg (process)": cpu / n * 1000 if n else float("nan"),
        "CPU ms/msg (sender side)": (cpu - sandbox_cpu) / n * 1000 if n else float("nan"),
        "problems": "; ".join(problems) or "none",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--rate", type=float, default=25.0, help="SEND_RATE to hold (default 25)")
    mode.add_argument("--unlimited", action="store_true", help="rate 100000: measure the ceiling")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--cap", type=int, default=None, help="daily cap in the gate (adds its per-row SQL)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the event-loop thread into FILE")
    args = parser.parse_args()

    print(f"# {' '.join(sys.argv)}")
    print(f"# {describe()}")
    result = asyncio.run(run(args))
    print("| metric | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if not args.unlimited:
        achieved, peak = result["achieved msg/s (arrivals)"], result["max in any sliding 1 s"]
        held = abs(achieved - args.rate) <= 1 and peak <= args.rate + 1
        print(f"rate {args.rate:g} +- 1/s: {'HELD' if held else 'NOT HELD'} (achieved {achieved:.2f}/s, peak window {peak})")
    else:
        print(f"ceiling target >= 500 msg/s: {'MET' if result['achieved msg/s (arrivals)'] >= 500 else 'NOT MET'}")
    return 0 if result["problems"] == "none" else 1




if __name__ == "__main__":
    sys.exit(main())
