"""Soak: does a running bot's memory level off under steady, realistic API traffic?

    python benchmarks/bench_soak.py [--minutes 10] [--rate 50] [--sample 30] [--window 5] [--code DIR]
                                    [--database-url postgresql+asyncpg://...] [--trace FILE] [--profile FILE]

Starts the Bot API sandbox (on a thread here), seeds a database (a fresh SQLite file in a
temporary folder unless --database-url is given; a PostgreSQL database is emptied and migrated, so
point it at a scratch one), then runs a real `python -m bot run` against both, on loopback only,
and sends it --rate signed requests a second for --minutes: stock events (sales, receipts, now
and then a product emptied and later restocked, so recovery offers and restock notices go out to
linked customers), order and customer upserts, coupon redemptions (mostly unknown codes) and
health checks. Every --sample seconds it reads the bot process's RSS and the CPU it used since
the last sample (% of one core, all its threads) from /proc and prints them; at the end it prints
the whole series and the least-squares slope (MB/min) over its last half, the requests' latency
(p50, p99, max) per --window minutes, overall and per route, with the ten slowest, as the client
saw it and as the bot's own log timed it (a gap between the two is time before a handler ran),
and the bot's job runs that took a second or more (what may have held the database).
It stops by itself (SIGTERM to the bot, which must exit 0).

--trace FILE starts tracemalloc in the bot two minutes in and writes, every --sample seconds,
the 25 source lines whose allocations grew most since then, and the object types whose counts
grew most, to FILE (the RSS figures then include tracemalloc's own overhead). --profile FILE
runs the bot under cProfile and leaves its stats in FILE (read with `python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

from common import describe, percentile  # benchmarks/common.py, beside this script

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "soak-secret"
WAREHOUSES = ("SH", "BJ", "GZ")
PRODUCTS = 1_000
CUSTOMERS = 300
LINKED = 60  # customers with a chat: they get offers and restock notices
FIRST_CHAT = 10_000


# --- the bot process -------------------------------------------------------------------------------


def _as_bot(trace_file: str, every: float) -> int:
    """Child mode: `stockbot run`, tracing allocations once it is up (tracing its start-up, with
    every import, would make that start-up minutes long), and writing growth reports."""
    import gc
    from collections import Counter as Count

    def types() -> Count[str]:
        return Count(type(o).__name__ for o in gc.get_objects())

    def report() -> None:
        time.sleep(90)  # start-up done, traffic flowing
        tracemalloc.start(1)  # one frame: line statistics, at the least cost
        time.sleep(30)
        baseline, base_types = tracemalloc.take_snapshot(), types()
        while True:
            time.sleep(every)
            snapshot, now_types = tracemalloc.take_snapshot(), types()
            stats = snapshot.compare_to(baseline, "lineno")
            current, _ = tracemalloc.get_traced_memory()
            grown = sorted(((now_types[k] - base_types[k], k) for k in now_types), reverse=True)[:15]
            lines = [f"--- {time.strftime('%H:%M:%S')} traced {current / 1e6:.1f} MB; growth since tracing began:"]
            lines += [str(stat) for stat in stats[:25]]
            lines += ["object counts grown: " + ", ".join(f"{k} +{n}" for n, k in grown)]
            with open(trace_file, "a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")

    threading.Thread(target=report, daemon=True).start()
    from bot.cli import main

    return main(["run"])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU the process has used, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def seed(url: str) -> None:
    from bot.db import create_database
    from bot.migrate import recreate
    from bot.models import Customer, Product, StockLevel, Warehouse, utcnow

    db = create_database(url)
    try:
        await recreate(db)
        now = utcnow()
        async with db.transaction() as session:
            await session.execute(Warehouse.__table__.insert(), [{"code": code} for code in WAREHOUSES])
            await session.execute(Product.__table__.insert(), [
                {"sku": f"SKU-{n:05d}", "name": f"Product {n} {'Salt & Pepper' if n % 7 == 0 else 'Rouge'}",
                 "category": f"cat-{n % 25}", "price_cents": 500 + (n * 37) % 5000, "attributes": {},
                 "reorder_point": 5, "on_hand_total": 40 * len(WAREHOUSES), "created_at": now, "updated_at": now}
                for n in range(PRODUCTS)
            ])
            products = (await session.execute(Product.__table__.select().with_only_columns(Product.id))).scalars().all()
            warehouses = (await session.execute(Warehouse.__table__.select().with_only_columns(Warehouse.id))).scalars().all()
            await session.execute(StockLevel.__table__.insert(), [
                {"product_id": p, "warehouse_id": w, "on_hand": 40} for p in products for w in warehouses
            ])
            await session.execute(Customer.__table__.insert(), [
                {"external_id": f"C-{n:04d}", "name": f"Customer {n}", "tier": "vip" if n % 10 == 0 else "regular",
                 "telegram_user_id": FIRST_CHAT + n if n < LINKED else None,
                 "chat_id": FIRST_CHAT + n if n < LINKED else None, "created_at": now, "updated_at": now}
                for n in range(CUSTOMERS)
            ])
    finally:
        await db.dispose()


# --- the traffic -------------------------------------------------------------------------------------


class Traffic:
    """A shop's systems: what they send, in realistic proportions."""

    def __init__(self, base: str, rng: random.Random) -> None:
        self.base = base
        self.rng = rng
        self.order_seq = 0
        self.emptied: list[str] = []
        self.statuses: Counter[str] = Counter()
        # (seconds since the start, route, milliseconds): answered requests, for p99 per window
        self.latencies: list[tuple[float, str, float]] = []
        self.started = time.monotonic()

    def _sku(self) -> str:
        return f"SKU-{self.rng.randrange(PRODUCTS):05d}"

    def request(self) -> tuple[str, str, dict | None]:  # type: ignore[type-arg]
        roll = self.rng.random()
        if roll < 0.55:
            return "POST", "/api/v1/stock-events", {"events": self._stock_events()}
        if roll < 0.70:
            self.order_seq += 1
            customer = self.rng.randrange(CUSTOMERS)
            lines = [{"sku": sku, "qty": self.rng.randint(1, 3)} for sku in {self._sku() for _ in range(self.rng.randint(1, 3))}]
            status = self.rng.choice(("open", "open", "open", "fulfilled", "backordered"))
            return "POST", "/api/v1/orders", {"orders": [{
                "external_id": f"SO-{self.order_seq}", "customer_external_id": f"C-{customer:04d}",
                "status": status, "lines": lines}]}
        if roll < 0.80:
            n = self.rng.randrange(CUSTOMERS + 200)  # mostly updates, some new customers
            return "POST", "/api/v1/customers", {"customers": [{
                "external_id": f"C-{n:04d}", "name": f"Customer {n} v{self.rng.randrange(100)}",
                "tier": "vip" if n % 10 == 0 else "regular"}]}
        if roll < 0.90:
            code = "".join(self.rng.choice("ACDEFGHJKMNPQRTUVWXY34679") for _ in range(12))
            return "POST", f"/api/v1/coupons/{code}/redeem", {}
        return "GET", "/api/v1/health", None

    def _stock_events(self) -> list[dict]:  # type: ignore[type-arg]
        events = []
        roll = self.rng.random()
        if roll < 0.03:  # a product runs out: recovery contacts whoever ordered or waits for it
            sku = self._sku()
            self.emptied.append(sku)
            events = [{"sku": sku, "warehouse": w, "on_hand": 0} for w in WAREHOUSES]
        elif roll < 0.06 and self.emptied:  # and comes back: restock notices
            sku = self.emptied.pop(0)
            events = [{"sku": sku, "warehouse": w, "on_hand": 30} for w in WAREHOUSES]
        else:
            for sku in {self._sku() for _ in range(self.rng.randint(1, 5))}:
                sale = self.rng.random() < 0.7
                events.append({"sku": sku, "warehouse": self.rng.choice(WAREHOUSES),
                               "delta": -1 if sale else 3, "reason": "sale" if sale else "receipt"})
        return [{"event_id": uuid.uuid4().hex, **event} for event in events]

    async def send(self, http: aiohttp.ClientSession) -> None:
        from bot.api.signing import signed_headers

        method, path, payload = self.request()
        route = _route(path)
        sent = time.monotonic()
        try:
            if payload is None:
                async with http.request(method, self.base + path) as response:
                    await response.read()
            else:
                body = json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", **signed_headers(SECRET, method, path, body)}
                async with http.request(method, self.base + path, data=body, headers=headers) as response:
                    await response.read()
            self.statuses[str(response.status)] += 1
            self.latencies.append((sent - self.started, route, (time.monotonic() - sent) * 1000))
        except aiohttp.ClientError as exc:
            self.statuses[type(exc).__name__] += 1


def _route(path: str) -> str:
    return "coupon redeem" if path.startswith("/api/v1/coupons/") else path.removeprefix("/api/v1/")


def latency_table(latencies: list[tuple[float, str, float]], window_s: float) -> list[str]:
    """p50 / p99 / max per window of the run, all routes and each one: a p99 that climbs from
    window to window is something that grows with the run."""
    if not latencies:
        return ["no answered requests"]
    routes = sorted({route for _, route, _ in latencies})
    windows = int(max(t for t, _, _ in latencies) // window_s) + 1
    lines = [f"{'window (min)':>14} {'route':<16} {'answered':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    for w in range(windows):
        inside = [(route, ms) for t, route, ms in latencies if w * window_s <= t < (w + 1) * window_s]
        for route in ("all", *routes):
            values = [ms for r, ms in inside if route in ("all", r)]
            if values:
                span = f"{w * window_s / 60:g}-{(w + 1) * window_s / 60:g}"
                lines.append(f"{span:>14} {route:<16} {len(values):>9} {percentile(values, 50):>8.0f} "
                             f"{percentile(values, 99):>8.0f} {max(values):>8.0f}")
    slowest = sorted(latencies, key=lambda item: -item[2])[:10]
    lines.append("slowest: " + ", ".join(f"{ms:.0f} ms {route} at {t / 60:.2f} min" for t, route, ms in slowest))
    return lines


_REQUEST_LINE = re.compile(r"^(\S+ \S+) INFO bot\.api: (GET|POST) (\S+) \d{3} ([0-9.]+)ms")


def server_latencies(log_text: str, began: float) -> list[tuple[float, str, float]]:
    """The bot's own time per request, from its log (one line per request: route and ms from
    the first middleware to the answer), as (seconds since `began`, route, ms). Beside the client's
    figures it tells time in the bot's handlers from time before a handler runs (a blocked event
    loop, the socket's queue) or in the client."""
    found = []
    for line in log_text.splitlines():
        match = _REQUEST_LINE.match(line)
        if match:
            stamp, _, path, ms = match.groups()
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # logging's local time
            found.append((at - began, _route(path), float(ms)))
    return found


def slope_mb_per_min(series: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    n = len(series)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in series) / n
    mean_m = sum(m for _, m in series) / n
    var = sum((t - mean_t) ** 2 for t, _ in series)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in series)
    return cov / var * 60 if var else 0.0


async def soak(args: argparse.Namespace, base: str, pid: int) -> list[tuple[float, float]]:
    traffic = Traffic(base, random.Random(7))
    series: list[tuple[float, float]] = [(0.0, _rss_mb(pid))]
    cpu_before, cpu_at = _cpu_seconds(pid), time.monotonic()
    print(f"{0:7.1f} min  RSS {series[0][1]:7.1f} MB", flush=True)
    in_flight: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    deadline = started + args.minutes * 60
    next_sample = started + args.sample
    interval = 1 / args.rate
    sent = 0
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        while (now := time.monotonic()) < deadline:
            due = started + sent * interval
            if due > now:
                await asyncio.sleep(due - now)
            if len(in_flight) < 200:  # the server fell far behind: skip rather than pile up
                task = asyncio.create_task(traffic.send(http))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            else:
                traffic.statuses["skipped"] += 1
            sent += 1
            if time.monotonic() >= next_sample:
                point = (time.monotonic() - started, _rss_mb(pid))
                series.append(point)
                cpu_now, now = _cpu_seconds(pid), time.monotonic()
                busy = (cpu_now - cpu_before) / (now - cpu_at) * 100  # of one core, since the last sample
                cpu_before, cpu_at = cpu_now, now
                print(f"{point[0] / 60:7.1f} min  RSS {point[1]:7.1f} MB  CPU {busy:3.0f} %  requests {sent}  "
                      f"{dict(sorted(traffic.statuses.items()))}", flush=True)
                next_sample += args.sample
        await asyncio.gather(*in_flight, return_exceptions=True)
    print("latency of answered requests (sent to answer read, client side):")
    print(*latency_table(traffic.latencies, args.window * 60), sep="\n")
    return series


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0, help="requests a second")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--window", type=float, default=5.0, help="minutes per latency window")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--code", type=Path, default=ROOT, help="run the bot from this checkout (a baseline)")
    parser.add_argument("--trace", default=None, help="write tracemalloc growth reports to this file")
    parser.add_argument("--profile", default=None,
                        help="run the bot under cProfile and write its stats to this file at exit "
                             "(where the CPU of a request goes; the latencies then include the profiler's cost)")
    parser.add_argument("--as-bot", default=None, help=argparse.SUPPRESS)  # child mode, with --trace
    args = parser.parse_args()
    if args.as_bot is not None:
        return _as_bot(args.as_bot, args.sample)

    from bot.sandbox import BotApiSandbox
    from bot.settings import Settings

    print(describe())
    with tempfile.TemporaryDirectory(prefix="soak-") as folder, BotApiSandbox() as sandbox:
        url = args.database_url or f"sqlite+aiosqlite:///{folder}/stockbot.db"
        asyncio.run(seed(url))
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
        env.update(
            BOT_TOKEN=sandbox.token, TELEGRAM_API_URL=sandbox.base_url, DATABASE_URL=url, ADMIN_IDS="1",
            API_HOST="127.0.0.1", API_PORT=str(port), QUIET_HOURS="", WEBHOOK_SECRET=SECRET,
            PYTHONPATH=str(args.code.resolve()),
        )
        command = [sys.executable, "-m", "bot", "run"]
        if args.trace:
            command = [sys.executable, str(Path(__file__).resolve()), "--as-bot", str(Path(args.trace).resolve()),
                       "--sample", str(args.sample)]
        elif args.profile:  # cProfile writes its stats when `bot run` returns after SIGTERM
            command = [sys.executable, "-m", "cProfile", "-o", str(Path(args.profile).resolve()), "-m", "bot", "run"]
        log_path = Path(folder) / "bot.log"
        with log_path.open("w") as log:
            bot = subprocess.Popen(command, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 300
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if bot.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the bot's API never came up:\n{log_path.read_text()[-3000:]}") from None
                    time.sleep(0.2)
            print(f"bot pid {bot.pid}, {args.rate:g} requests/s for {args.minutes:g} min on "
                  f"{url.split(':', 1)[0]}, RSS every {args.sample:g} s")
            began = time.time()
            series = asyncio.run(soak(args, base, bot.pid))
        finally:
            bot.send_signal(signal.SIGTERM)
            try:
                code = bot.wait(timeout=60)
            except subprocess.TimeoutExpired:
                bot.kill()
                code = -9
        text = log_path.read_text(errors="replace")
        print(f"bot exit status {code}; tracebacks in its log: {text.count('Traceback')}; "
              f"messages the sandbox received: {len(sandbox.messages())}")
        print("series (minutes, RSS MB):", ", ".join(f"({t / 60:.1f}, {m:.1f})" for t, m in series))
        half = [point for point in series if point[0] >= series[-1][0] / 2]
        print(f"slope over the whole run: {slope_mb_per_min(series):+.3f} MB/min; "
              f"over the last half ({len(half)} samples): {slope_mb_per_min(half):+.3f} MB/min")
        print("the bot's own time per request (its log: first middleware to answer):")
        print(*latency_table(server_latencies(text, began), args.window * 60), sep="\n")
        slow_jobs = [line for line in text.splitlines() if " took " in line and "job " in line]
        print(f"job runs of {1:g} s or more (bot's log; the soak began {time.strftime('%H:%M:%S', time.gmtime(began))} UTC):",
              *slow_jobs[-40:] or ["none"], sep="\n  ")
        if text.count("Traceback"):
            first = text.index("Traceback")
            print(text[first : first + 2000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
