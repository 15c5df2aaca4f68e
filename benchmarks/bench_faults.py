"""Faults benchmark: what each fault of the world around the bot costs (issue 26, item 8).

    python benchmarks/bench_faults.py [--only outage,silent,sigterm,database]
                                      [--outage 120] [--silent 60] [--notices 300] [--backlog 3000]
                                      [--database-url postgresql+asyncpg://...]

Each fault on the product's own parts, in real time (no fake clock here):
- outage: the Bot API answers 502 to every send for --outage seconds while --notices messages to
  as many chats are due. Printed: lost (failed for good), duplicated, sent, and seconds from the
  outage's end to the last delivery.
- silent: the Bot API does not answer sends at all for --silent seconds (a hang, not an error).
- sigterm: `stockbot run` (a child process) works a backlog of --backlog low-stock crossings
  (one import that drops every product to its reorder point) while the Bot API does not answer;
  SIGTERM mid-backlog. Printed: exit status and seconds from SIGTERM to exit; then, after a
  restart, whether every crossing was handled once.
- database: the integration API with its database cut away (PostgreSQL, through a relay that is
  cut) or full (SQLite) for 10 s under 20 req/s. Printed: answers by status, log lines at
  WARNING and above, tracebacks, seconds from the end of the fault to the first 200.
SQLite in a temporary folder unless --database-url names a scratch PostgreSQL database (emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import describe  # benchmarks/common.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402
from sqlalchemy import func, make_url, select, text  # noqa: E402

from bot.api.app import create_api_app  # noqa: E402
from bot.api.signing import signed_headers  # noqa: E402
from bot.app import create_bot  # noqa: E402
from bot.db import Database, create_database  # noqa: E402
from bot.delivery.outbox import Gate, Outgoing, enqueue_many  # noqa: E402
from bot.delivery.sender import Sender  # noqa: E402
from bot.delivery.telegram import TelegramTransport  # noqa: E402
from bot.migrate import recreate  # noqa: E402
from bot.models import Notification, Product, StockEvent  # noqa: E402
from bot.sandbox import BotApiSandbox  # noqa: E402
from bot.sandbox.faults import CuttableLink, sqlite_disk_full  # noqa: E402
from bot.settings import load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"
VERBOSE = False  # --verbose: print the bot's own output after a stop


async def fresh_database(url: str) -> Database:
    db = create_database(url)
    if db.engine.dialect.name == "postgresql":
        async with db.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    await recreate(db)
    return db


def settings_for(url: str, sandbox: BotApiSandbox):  # type: ignore[no-untyped-def]
    return load_settings(_env_file=None, DATABASE_URL=url, BOT_TOKEN=sandbox.token,
                         TELEGRAM_API_URL=sandbox.base_url, QUIET_HOURS="", WEBHOOK_SECRET=SECRET)


def delivered(sandbox: BotApiSandbox) -> Counter[int]:
    return Counter(call.params["chat_id"] for call in sandbox.calls_to("sendMessage") if call.status == 200)


# --- the Bot API failing or silent --------------------------------------------------------------


async def bot_api_fault(url: str, notices: int, seconds: float, silent: bool) -> None:
    name = f"Bot API {'silent' if silent else 'answering 502'} for {seconds:.0f} s"
    db = await fresh_database(url)
    sandbox = BotApiSandbox()
    sandbox.start_in_thread()
    bot = create_bot(settings_for(url, sandbox))
    sender = Sender(db, TelegramTransport(bot), rate=25, gate=Gate(quiet=None, zone=None))  # type: ignore[arg-type]
    chats = list(range(500_000, 500_000 + notices))
    stop = asyncio.Event()
    try:
        if silent:
            sandbox.go_silent("sendMessage")
        else:
            sandbox.fail_next("sendMessage", status=502, count=10**9)
        async with db.transaction() as session:
            await enqueue_many(session, [Outgoing(f"bench:{chat}", chat, "notice", f"to {chat}") for chat in chats])
        running = asyncio.create_task(sender.run(stop))
        await asyncio.sleep(seconds)
        (sandbox.answer_again if silent else sandbox.clear_failures)()
        ended = time.monotonic()
        while len(delivered(sandbox)) < notices and time.monotonic() - ended < 600:
            await asyncio.sleep(0.2)
        resumed = time.monotonic() - ended
        stop.set()
        await running
        async with db.read_session() as session:
            states = Counter(dict((await session.execute(
                select(Notification.state, func.count()).group_by(Notification.state))).all()))
        counts = delivered(sandbox)
        refused = sum(1 for call in sandbox.calls_to("sendMessage") if call.status != 200)
        first = min((call.at for call in sandbox.calls_to("sendMessage") if call.status == 200), default=ended) - ended
        print(f"{name}: {notices} notices; sent {len(counts)}, lost {notices - len(counts)} "
              f"(failed rows {states.get('failed', 0)}), duplicated {sum(n - 1 for n in counts.values())}; "
              f"tries refused during the fault {refused}; first delivery {first:.1f} s and last {resumed:.1f} s "
              f"after the fault ended")
    finally:
        stop.set()
        await bot.session.close()
        sandbox.stop_thread()
        await db.dispose()


# --- SIGTERM mid-backlog ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli(env: dict[str, str], folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=env, cwd=folder, capture_output=True,
                          text=True, timeout=600)


async def pending_events(db: Database) -> int:
    async with db.read_session() as session:
        return int(await session.scalar(
            select(func.count()).select_from(StockEvent).where(StockEvent.processed_at.is_(None))) or 0)


async def sigterm_mid_backlog(url: str, backlog: int, folder: Path) -> None:
    db = await fresh_database(url)
    sandbox = BotApiSandbox()
    sandbox.start_in_thread()
    env = {k: v for k, v in os.environ.items() if k not in load_settings.__globals__.get("Settings").model_fields}
    env.update(BOT_TOKEN=sandbox.token, TELEGRAM_API_URL=sandbox.base_url, DATABASE_URL=url, ADMIN_IDS="1",
               API_PORT=str(free_port()), QUIET_HOURS="", WEBHOOK_SECRET=SECRET, PYTHONPATH=str(ROOT))
    try:
        rows = "\n".join(f"B-{n},Bench {n},bench,10,5" for n in range(backlog))
        (folder / "catalog.csv").write_text("sku,name,category,price,reorder_point\n" + rows + "\n")
        (folder / "full.csv").write_text("sku,warehouse,on_hand\n" + "\n".join(f"B-{n},SH,9" for n in range(backlog)) + "\n")
        (folder / "low.csv").write_text("sku,warehouse,on_hand\n" + "\n".join(f"B-{n},SH,3" for n in range(backlog)) + "\n")
        for kind, name in (("catalog", "catalog.csv"), ("stock", "full.csv")):
            assert cli(env, folder, "import", kind, name).returncode == 0
        bot = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=folder,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while not sandbox.is_polling() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert cli(env, folder, "import", "stock", "low.csv").returncode == 0  # every product falls low
        sandbox.go_silent("sendMessage")  # and the Bot API hangs, so prompts cannot leave
        while await pending_events(db) >= backlog and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # mid-backlog
        left = await pending_events(db)
        asked = time.monotonic()
        if VERBOSE:
            print(f"SIGTERM sent at {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}")
        bot.send_signal(signal.SIGTERM)
        try:
            output, _ = await asyncio.to_thread(bot.communicate, timeout=120)
        except subprocess.TimeoutExpired:
            bot.kill()
            output, _ = bot.communicate()
        took = time.monotonic() - asked
        print(f"SIGTERM mid-backlog ({backlog} low-stock crossings, {left} pending, Bot API silent): "
              f"exit {bot.returncode} after {took:.2f} s; tracebacks {output.count('Traceback')}")
        if VERBOSE:
            print(output)
        sandbox.answer_again()
        again = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=folder,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        while await pending_events(db) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        again.send_signal(signal.SIGTERM)
        await asyncio.to_thread(again.communicate, timeout=120)
        print(f"  after a restart: {await pending_events(db)} crossings left pending")
    finally:
        sandbox.stop_thread()
        await db.dispose()


# --- database trouble ---------------------------------------------------------------------------


class CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines = 0
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += 1
        self.tracebacks += record.exc_info is not None


async def database_fault(url: str, seconds: float = 10.0, rate: float = 20.0) -> None:
    setup = await fresh_database(url)
    async with setup.transaction() as session:
        session.add(Product(sku="LIP-1", name="Lip", category="lips", price_cents=1000, reorder_point=0, attributes={}))
    link = None
    app_url = url
    if setup.engine.dialect.name == "postgresql":
        parsed = make_url(url)
        link = CuttableLink(parsed.host or "127.0.0.1", parsed.port or 5432)
        await link.start()
        app_url = parsed.set(host="127.0.0.1", port=link.port).render_as_string(hide_password=False)
    db = create_database(app_url)
    app = create_api_app(load_settings(_env_file=None, DATABASE_URL=app_url, BOT_TOKEN="1:x",
                                       WEBHOOK_SECRET=SECRET), db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    counting = CountingHandler()
    logging.getLogger().addHandler(counting)
    import aiohttp

    statuses: Counter[int] = Counter()
    n = 0

    async def post(session: aiohttp.ClientSession) -> int:
        nonlocal n
        n += 1
        body = json.dumps({"events": [{"event_id": f"e-{n}", "sku": "LIP-1", "warehouse": "SH", "delta": 1}]}).encode()
        path = "/api/v1/stock-events"
        async with session.post(f"http://127.0.0.1:{port}{path}", data=body,
                                headers={"Content-Type": "application/json",
                                         **signed_headers(SECRET, "POST", path, body)}) as response:
            statuses[response.status] += 1
            return response.status

    full = sqlite_disk_full(db.engine) if link is None else None
    try:
        async with aiohttp.ClientSession() as session:
            await post(session)
            if link is not None:
                await link.cut()
            else:
                full.__enter__()  # type: ignore[union-attr]
            started = time.monotonic()
            health = []
            while time.monotonic() - started < seconds:
                await post(session)
                if n % 20 == 0:
                    async with session.get(f"http://127.0.0.1:{port}/api/v1/health") as answer:
                        health.append(answer.status)
                await asyncio.sleep(1 / rate)
            if link is not None:
                await link.mend()
            else:
                full.__exit__(None, None, None)  # type: ignore[union-attr]
            ended = time.monotonic()
            while await post(session) != 200 and time.monotonic() - ended < 120:
                await asyncio.sleep(0.1)
            back = time.monotonic() - ended
            async with session.get(f"http://127.0.0.1:{port}/api/v1/health") as answer:
                after = answer.status
        what = "PostgreSQL connection cut" if link is not None else "SQLite disk full"
        print(f"{what} for {seconds:.0f} s at {rate:.0f} req/s: answers {dict(sorted(statuses.items()))}, "
              f"health during {sorted(set(health))}, after {after}; log lines at WARNING+ {counting.lines}, "
              f"tracebacks {counting.tracebacks}; first 200 {back:.2f} s after the fault ended")
    finally:
        logging.getLogger().removeHandler(counting)
        await runner.cleanup()
        await db.dispose()
        await setup.dispose()
        if link is not None:
            await link.cut()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="outage,silent,sigterm,database")
    parser.add_argument("--outage", type=float, default=120.0)
    parser.add_argument("--silent", type=float, default=60.0)
    parser.add_argument("--notices", type=int, default=300)
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--database-url")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    logging.basicConfig(level=logging.ERROR)
    print(f"bench_faults on {describe()}; database: {'PostgreSQL' if args.database_url else 'SQLite'}")
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        if "outage" in only:
            await bot_api_fault(url, args.notices, args.outage, silent=False)
        if "silent" in only:
            await bot_api_fault(url, args.notices, args.silent, silent=True)
        if "sigterm" in only:
            await sigterm_mid_backlog(url, args.backlog, Path(folder))
        if "database" in only:
            await database_fault(url)


if __name__ == "__main__":
    asyncio.run(main())
