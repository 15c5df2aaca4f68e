"""The 100k shop, end to end: the real `stockbot run` while the CLI imports it (issue 9's proof).

    python benchmarks/bench_shop.py            # 100,000 products, customers and orders
    python benchmarks/bench_shop.py --small    # 5,000 of each: a quick check that it works
    python benchmarks/bench_shop.py --messy    # a real shop's first day (issue 20), see below

Everything runs on loopback in a temporary folder: a seeded shop as CSV files (stock in 2-3
warehouses), the built-in Bot API sandbox on a thread of this process, and `python -m bot run`
as a subprocess on SQLite, with the HTTP API on a free port. While the bot runs, the four CSV
kinds are imported through `python -m bot import`. Then a signed stock event empties a product
that a VIP customer (linked to a chat) has an open order for, and the time to the first
sendMessage to that chat is taken, right after the imports and again once idle. Also printed:
the bot's RSS (peak and settled), idle CPU, start-up and SIGTERM times, how long the stock-event
backlog took to drain, each beside its target. Every wait is bounded (--deadline overall); the
bot is stopped (killed if it hangs) and the sandbox shut down however the run ends.

--messy is the shop as shops really have it: a third of the catalog at zero in every warehouse,
half of the order lines open and a quarter backordered, on random products, and one customer in
fifty linked to a chat. It prints besides: the seconds from the last import until the bot's CPU
stays under 2 % (a 5 s window), and how many messages reached customers about products imported
at zero (every linked customer's chat but the probes': nothing else happens to them). --code DIR
runs the bot from another checkout (the baseline, e.g. /work/main) with this script.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench_search import build_catalog  # benchmarks/bench_search.py: English + Chinese names
from common import describe

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.api.signing import signed_headers  # noqa: E402
from bot.sandbox import BotApiSandbox  # noqa: E402
from bot.settings import Settings  # noqa: E402

T = TypeVar("T")
SECRET = "bench-shop-secret"
WAREHOUSES = ("SH", "BJ", "GZ")
PROBES = 2  # one VIP stockout right after the imports, one once idle
PROBE_CHAT = 900_000_000  # chat ids of the linked VIP customers: PROBE_CHAT + 1, + 2
LINKED_EVERY = 50  # --messy: one customer in fifty has a chat (PROBE_CHAT + 1000 + i)
IDLE_WINDOW = 5.0  # seconds: --messy's "idle after the imports" is a window under 2 % CPU
KINDS = ("catalog", "stock", "customers", "orders")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    """What the run saw; None where it never got that far (printed as such)."""

    startup_s: float | None = None
    imports: dict[str, tuple[float, int]] = field(default_factory=dict)  # kind -> (seconds, exit code)
    # kind -> (CPU seconds of the import process, of the bot meanwhile): wall time on a shared
    # machine says little, CPU seconds say who did the work
    import_cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    offer_after_imports_s: float | None = None
    offer_idle_s: float | None = None
    backlog_max: int | None = None
    backlog_drain_s: float | None = None  # from the end of the imports to no unprocessed event
    rss_peak_mb: float | None = None
    rss_settled_mb: float | None = None
    idle_cpu_pct: float | None = None
    sigterm_s: float | None = None
    idle_after_imports_s: float | None = None  # --messy: last import's end to a window under 2 % CPU
    zero_messages: int | None = None  # --messy: messages to linked customers (none ordered a probe)
    exit_code: int | None = None
    notes: list[str] = field(default_factory=list)


# --- the shop ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    folder: Path
    probe_skus: list[str]
    probe_stock: dict[str, list[str]]  # sku -> warehouses it is stocked in
    linked: list[int] = field(default_factory=list)  # --messy: chat ids of the linked customers


def write_shop(folder: Path, n: int, seed: int, *, messy: bool = False) -> Shop:
    rng = random.Random(seed)
    cards = build_catalog(n, rng)
    with _csv(folder / "catalog.csv") as out:
        out.writerow(["sku", "name", "category", "price", "brand", "reorder_point", "safety_stock",
                      "lead_time_days", "supplier", "attributes"])
        for card in cards:
            attributes = f"colour={rng.choice(['red', 'pink', 'black', 'white', 'blue'])};size={rng.choice(['S', 'M', 'L'])}"
            out.writerow([card.sku, card.name, card.category, f"{card.price:.2f}", card.brand or "",
                          rng.randint(0, 10), rng.randint(0, 2), rng.randint(3, 21),
                          f"Supplier {rng.randint(1, 40)}", attributes])
    stocked: dict[str, list[str]] = {}
    with _csv(folder / "stock.csv") as out:
        out.writerow(["sku", "warehouse", "on_hand"])
        for number, card in enumerate(cards):
            where = rng.sample(WAREHOUSES, rng.choice((2, 3)))
            stocked[card.sku] = where
            empty = messy and number >= PROBES and rng.random() < 1 / 3  # out everywhere from the start
            for code in where:
                out.writerow([card.sku, code, 0 if empty or rng.random() < 0.05 else rng.randint(1, 80)])
    with _csv(folder / "customers.csv") as out:
        out.writerow(["external_id", "name", "tier", "phone", "email", "locale"])
        for i in range(1, n + 1):
            vip = i <= PROBES or rng.random() < 0.05
            out.writerow([f"C{i:06d}", f"Customer {i}", "vip" if vip else "regular", f"+86138{i:08d}",
                          f"c{i}@example.com", rng.choice(("en", "zh"))])
    probes = [cards[i].sku for i in range(PROBES)]
    statuses = ["open"] * 20 + ["backordered"] * 5 + ["fulfilled"] * 70 + ["cancelled"] * 5
    if messy:
        statuses = ["open"] * 50 + ["backordered"] * 25 + ["fulfilled"] * 20 + ["cancelled"] * 5
    with _csv(folder / "orders.csv") as out:
        out.writerow(["external_id", "customer_external_id", "sku", "qty", "status"])
        for i in range(1, n + 1):
            if i <= PROBES:  # the probe customers' open orders of the probe products
                out.writerow([f"O{i:06d}", f"C{i:06d}", probes[i - 1], 1, "open"])
                continue
            sku = cards[rng.randrange(PROBES, n)].sku  # nobody else waits for a probe product
            out.writerow([f"O{i:06d}", f"C{rng.randint(PROBES + 1, n):06d}", sku, rng.randint(1, 3),
                          rng.choice(statuses)])
    linked = [PROBE_CHAT + 1000 + i for i in range(PROBES + 1, n + 1, LINKED_EVERY)] if messy else []
    return Shop(folder, probes, {sku: stocked[sku] for sku in probes}, linked)


class _csv:
    def __init__(self, path: Path) -> None:
        self._file = path.open("w", newline="", encoding="utf-8")

    def __enter__(self) -> csv._writer:  # type: ignore[name-defined]
        return csv.writer(self._file)

    def __exit__(self, *exc: object) -> None:
        self._file.close()


# --- the process under test ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(sandbox: BotApiSandbox, db_path: Path, api_port: int, code: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        BOT_TOKEN=sandbox.token, TELEGRAM_API_URL=sandbox.base_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{db_path}", ADMIN_IDS="1", API_HOST="127.0.0.1",
        API_PORT=str(api_port), WEBHOOK_SECRET=SECRET, QUIET_HOURS="", LOG_LEVEL="INFO",
        PYTHONPATH=str(code) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def _status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in KiB from /proc; {} once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()
            if line.startswith(("VmRSS:", "VmHWM:"))}


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)


def _wait(predicate: Callable[[], T], timeout: float, step: float = 0.05) -> T | None:
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        if result := predicate():
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(step)


def _unprocessed(db_path: Path) -> int | None:
    """Stock events not yet processed, read-only (the bot owns the database)."""
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM stock_events WHERE processed_at IS NULL").fetchone()[0]
    except sqlite3.Error:
        return None


def _link_probe_customers(db_path: Path, linked: list[int]) -> None:
    """Customers linked to chats as /start would: the probes, and with --messy one in fifty."""
    with sqlite3.connect(db_path, timeout=60) as conn:
        for i in range(1, PROBES + 1):
            conn.execute("UPDATE customers SET telegram_user_id = ?, chat_id = ? WHERE external_id = ?",
                         (PROBE_CHAT + i, PROBE_CHAT + i, f"C{i:06d}"))
        conn.executemany("UPDATE customers SET telegram_user_id = ?, chat_id = ? WHERE external_id = ?",
                         [(chat, chat, f"C{chat - PROBE_CHAT - 1000:06d}") for chat in linked])


def _until_idle(pid: int, timeout: float) -> float | None:
    """When (monotonic) the first whole IDLE_WINDOW began in which the process used under 2 % of
    a core; None if none did within `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            before, t = _cpu_ticks(pid), time.monotonic()
            time.sleep(IDLE_WINDOW)
            used = 100 * (_cpu_ticks(pid) - before) / TICKS / (time.monotonic() - t)
        except OSError:
            return None
        if used < 2:
            return t
    return None


def _post_stockout(api_port: int, sku: str, warehouses: list[str], tag: str) -> int:
    events = [{"event_id": f"bench-{tag}-{code}", "sku": sku, "warehouse": code, "on_hand": 0,
               "reason": "bench stockout"} for code in warehouses]
    body = json.dumps({"events": events}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/api/v1/stock-events", data=body, method="POST",
        headers={"Content-Type": "application/json", **signed_headers(SECRET, "POST", "/api/v1/stock-events", body)})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.peak_kib, self._stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.2):
            status = _status(self.pid)
            if not status:
                return
            self.peak_kib = max(self.peak_kib, status.get("VmHWM", 0), status.get("VmRSS", 0))

    def stop(self) -> None:
        self._stop.set()


# --- the run -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Figures:
    figures = Figures()
    end = time.monotonic() + args.deadline

    def left(cap: float) -> float:
        return max(0.0, min(cap, end - time.monotonic()))

    with tempfile.TemporaryDirectory(prefix="bench-shop-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        shop = write_shop(folder, args.rows, args.seed, messy=args.messy)
        print(f"generated {args.rows:,} products/customers/orders in {time.perf_counter() - t:.1f} s", flush=True)
        db_path = folder / "stockbot.db"
        api_port = _free_port()
        log_path = folder / "bot.log"
        with BotApiSandbox() as sandbox, log_path.open("w") as log:
            env = _env(sandbox, db_path, api_port, args.code)
            started = time.monotonic()
            bot = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=folder,
                                   stdout=log, stderr=subprocess.STDOUT)
            sampler = RssSampler(bot.pid)
            sampler.start()
            try:
                _measure(args, figures, shop, sandbox, bot, env, db_path, api_port, started, left)
            finally:
                sampler.stop()
                figures.rss_peak_mb = sampler.peak_kib * 1024 / 1e6 or None
                _stop(bot, figures)
                log.flush()
                if figures.exit_code != 0 or args.show_log:
                    tail = log_path.read_text(errors="replace").splitlines()[-25:]
                    print("--- last lines of the bot's log ---", *tail, sep="\n")
    return figures


def _measure(args: argparse.Namespace, figures: Figures, shop: Shop, sandbox: BotApiSandbox,
             bot: subprocess.Popen[bytes], env: dict[str, str], db_path: Path, api_port: int,
             started: float, left: Callable[[float], float]) -> None:
    if _wait(lambda: sandbox.is_polling() or bot.poll() is not None, left(args.startup_timeout)) and bot.poll() is None:
        figures.startup_s = time.monotonic() - started
    else:
        figures.notes.append(f"the bot did not poll within {args.startup_timeout:.0f} s")
        return
    print(f"start-up: {figures.startup_s:.2f} s", flush=True)
    tick = os.sysconf("SC_CLK_TCK")
    for kind in KINDS:
        t = time.monotonic()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        bot_before = _cpu_ticks(bot.pid)
        try:
            done = subprocess.run([sys.executable, "-m", "bot", "import", kind, f"{kind}.csv"], env=env,
                                  cwd=shop.folder, capture_output=True, text=True, timeout=left(args.import_timeout))
            code = done.returncode
            if code != 0:
                figures.notes.append(f"import {kind} exit {code}: {done.stderr.strip()[-300:]}")
        except subprocess.TimeoutExpired:
            code = -1
            figures.notes.append(f"import {kind} stopped after {args.import_timeout:.0f} s")
        figures.imports[kind] = (time.monotonic() - t, code)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        figures.import_cpu[kind] = (
            children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime,
            (_cpu_ticks(bot.pid) - bot_before) / tick,
        )
        print(f"import {kind}: {figures.imports[kind][0]:.1f} s (exit {code}; CPU: import "
              f"{figures.import_cpu[kind][0]:.1f} s, bot {figures.import_cpu[kind][1]:.1f} s; "
              f"bot's RSS peak so far {_status(bot.pid).get('VmHWM', 0) / 1024:.1f} MiB)", flush=True)
        if kind == "customers" and code == 0:
            _link_probe_customers(db_path, shop.linked)
        if bot.poll() is not None:
            return
    # A failed import is reported and the run goes on: what the bot does next is the point.
    imported = time.monotonic()

    figures.offer_after_imports_s = _stockout_to_offer(shop, sandbox, api_port, 0, left(args.offer_timeout))
    print(f"stockout -> first VIP offer, right after the imports: {_fmt(figures.offer_after_imports_s, 's')}",
          flush=True)
    if args.messy:
        quiet = _until_idle(bot.pid, left(args.drain_timeout))
        figures.idle_after_imports_s = None if quiet is None else quiet - imported
        print(f"last import -> CPU under 2 %: {_fmt(figures.idle_after_imports_s, 's')}", flush=True)

    backlog_max = 0

    def drained() -> bool:
        nonlocal backlog_max
        count = _unprocessed(db_path)
        backlog_max = max(backlog_max, count or 0)
        return count == 0

    if _wait(drained, left(args.drain_timeout), step=1.0):
        figures.backlog_drain_s = time.monotonic() - imported
    else:
        figures.notes.append(f"backlog not drained within {args.drain_timeout:.0f} s: {_unprocessed(db_path)} left")
    figures.backlog_max = backlog_max
    print(f"backlog: max {backlog_max:,} unprocessed events, drained {_fmt(figures.backlog_drain_s, 's')} "
          "after the imports", flush=True)

    time.sleep(left(args.settle))
    if left(args.idle_seconds + 5) < args.idle_seconds:
        figures.notes.append("no time left for the idle measurement")
        return
    cpu_before, t = _cpu_ticks(bot.pid), time.monotonic()
    time.sleep(args.idle_seconds)
    figures.idle_cpu_pct = 100 * (_cpu_ticks(bot.pid) - cpu_before) / TICKS / (time.monotonic() - t)
    figures.rss_settled_mb = _status(bot.pid).get("VmRSS", 0) * 1024 / 1e6 or None
    figures.offer_idle_s = _stockout_to_offer(shop, sandbox, api_port, 1, left(args.offer_timeout))
    if args.messy:
        figures.zero_messages = sum(len(sandbox.messages(chat)) for chat in shop.linked)
    print(f"idle: CPU {_fmt(figures.idle_cpu_pct, '%')}, RSS {_fmt(figures.rss_settled_mb, 'MB')}, "
          f"stockout -> first VIP offer {_fmt(figures.offer_idle_s, 's')}", flush=True)


def _stockout_to_offer(shop: Shop, sandbox: BotApiSandbox, api_port: int, probe: int, timeout: float) -> float | None:
    chat = PROBE_CHAT + probe + 1
    sku = shop.probe_skus[probe]
    sent = time.monotonic()
    try:
        status = _post_stockout(api_port, sku, shop.probe_stock[sku], f"probe{probe}")
    except OSError as error:
        print(f"stock event for {sku} failed: {error}", flush=True)
        return None
    if status != 200:
        return None
    first = _wait(lambda: [m for m in sandbox.messages(chat) if m.sent_at >= sent], timeout, step=0.01)
    return first[0].sent_at - sent if first else None


def _stop(bot: subprocess.Popen[bytes], figures: Figures) -> None:
    if bot.poll() is not None:
        figures.exit_code = bot.returncode
        figures.notes.append(f"the bot had exited by itself ({bot.returncode})")
        return
    t = time.monotonic()
    bot.send_signal(signal.SIGTERM)
    try:
        figures.exit_code = bot.wait(timeout=30)
        figures.sigterm_s = time.monotonic() - t
    except subprocess.TimeoutExpired:
        _print_stacks(bot.pid)
        bot.kill()
        bot.wait()
        figures.exit_code = bot.returncode
        figures.notes.append("still running 30 s after SIGTERM: killed")


def _print_stacks(pid: int) -> None:
    """Where a bot that ignores SIGTERM is stuck: every thread's stack, if py-spy is installed."""
    if shutil.which("py-spy") is None:
        print("(install py-spy to see where the bot was stuck)", flush=True)
        return
    done = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
    print("--- py-spy dump of the bot that did not stop ---", done.stdout, done.stderr, sep="\n", flush=True)


# --- report --------------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not reached"
    return f"{value:.1f} {unit}" if unit in ("MB", "%") else f"{value:.2f} {unit}"


def report(figures: Figures, args: argparse.Namespace) -> None:
    def met(value: float | None, ok: Callable[[float], bool]) -> str:
        return "—" if value is None else ("yes" if ok(value) else "**no**")

    rows = [("start-up (process start to first getUpdates)", _fmt(figures.startup_s, "s"), "< 5 s",
             met(figures.startup_s, lambda v: v < 5))]
    for kind in KINDS:
        seconds, code = figures.imports.get(kind, (None, None))
        value = "not reached" if seconds is None else f"{seconds:.1f} s" + ("" if code == 0 else f" (exit {code})")
        rows.append((f"import {kind}", value, "< 30 s", met(seconds, lambda v, c=code: v < 30 and c == 0)))
        if kind in figures.import_cpu:
            own, bot = figures.import_cpu[kind]
            rows.append((f"… CPU of the import / of the bot meanwhile", f"{own:.1f} / {bot:.1f} s", "", ""))
    rows += [
        ("stockout → first VIP offer, right after the imports", _fmt(figures.offer_after_imports_s, "s"), "< 2 s",
         met(figures.offer_after_imports_s, lambda v: v < 2)),
        ("stockout → first VIP offer, idle", _fmt(figures.offer_idle_s, "s"), "< 2 s",
         met(figures.offer_idle_s, lambda v: v < 2)),
        (f"stock-event backlog drained (max {figures.backlog_max or 0:,} waiting), after the imports",
         _fmt(figures.backlog_drain_s, "s"), "minutes",
         # Nothing to drain proves nothing when the imports that make the events failed.
         met(figures.backlog_drain_s, lambda v: v < 600) if all(c == 0 for _, c in figures.imports.values())
         else "—"),
        ("RSS peak (VmHWM)", _fmt(figures.rss_peak_mb, "MB"), "< 300 MB", met(figures.rss_peak_mb, lambda v: v < 300)),
        ("RSS settled (idle)", _fmt(figures.rss_settled_mb, "MB"), "< 300 MB",
         met(figures.rss_settled_mb, lambda v: v < 300)),
        (f"idle CPU over {args.idle_seconds:.0f} s (share of one core)", _fmt(figures.idle_cpu_pct, "%"), "< 2 %",
         met(figures.idle_cpu_pct, lambda v: v < 2)),
        ("SIGTERM to exit", _fmt(figures.sigterm_s, "s") + f" (exit {figures.exit_code})", "exit 0 within 5 s",
         met(figures.sigterm_s, lambda v: v < 5 and figures.exit_code == 0)),
    ]
    if args.messy:
        rows += [
            ("last import → bot CPU under 2 % (5 s window)", _fmt(figures.idle_after_imports_s, "s"), "< 60 s",
             met(figures.idle_after_imports_s, lambda v: v < 60)),
            (f"messages to the {len(range(PROBES + 1, args.rows + 1, LINKED_EVERY)):,} linked customers "
             "(products imported at zero)", "not reached" if figures.zero_messages is None
             else str(figures.zero_messages), "0", met(figures.zero_messages, lambda v: v == 0)),
        ]
    print()
    print(f"{describe()} | rows={args.rows:,} seed={args.seed}{' messy' if args.messy else ''} code={args.code}")
    print("| measure | figure | target | met |")
    print("|---|---:|---|---|")
    for name, value, target, ok in rows:
        print(f"| {name} | {value} | {target} | {ok} |")
    for note in figures.notes:
        print(f"note: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="5,000 rows of each kind, shorter waits")
    parser.add_argument("--rows", type=int, help="products = customers = orders (default 100,000)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--deadline", type=float, help="stop the whole run after this many seconds")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--import-timeout", type=float, default=300.0)
    parser.add_argument("--offer-timeout", type=float, default=120.0)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of quiet before the idle CPU window")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--show-log", action="store_true", help="print the tail of the bot's log")
    parser.add_argument("--messy", action="store_true",
                        help="a third of the stock at zero, most order lines open or backordered, 1 in 50 customers linked")
    parser.add_argument("--code", type=Path, default=ROOT, help="run the bot from this checkout (a baseline)")
    args = parser.parse_args()
    args.rows = args.rows or (5_000 if args.small else 100_000)
    args.deadline = args.deadline or (600.0 if args.small else 2400.0)
    figures = run(args)
    report(figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
