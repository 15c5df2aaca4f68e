"""Scale-out: N `stockbot run` processes on one PostgreSQL database, against one Bot API sandbox.

    python benchmarks/bench_scale_out.py --database-url postgresql+asyncpg://postgres@127.0.0.1:55433/sb_bench
    python benchmarks/bench_scale_out.py                       # starts a throw-away cluster, as .ci/run does
    python benchmarks/bench_scale_out.py --rate-processes 2 4 --messages 10000 --paid-processes 1 2 4
    python benchmarks/bench_scale_out.py --rate-processes 2 3 --paid-processes --floods 12 --busy 2

Two figures:

- shared rate: M ordinary messages (two per chat) at SEND_RATE, with N processes. Printed: the
  most messages in any sliding second (the contract allows SEND_RATE + 1), the smallest gap
  between two messages of one chat (>= 1 s), messages lost or sent twice, each process's share,
  and the slots given up; then the peak at each stage of a message's way out (see below).
- paid ceiling: M restock notices (one per chat) as paid broadcasts with the limit lifted
  (PAID_BROADCAST_RATE=10000), with 1, 2 and 4 processes: messages/s handed to the sandbox.
  One process is the baseline the others compare with.
- floods (--floods K): during each shared-rate run the sandbox answers K sends with a 429
  (--retry-after seconds), one every --flood-every seconds, optionally with --busy loops beside
  the processes. Printed per 429: when sending resumed, sends in its first half second (slots
  reserved before the 429 reached the database) and later inside the pause (the contract: none
  before retry_after is over), and how many processes sent in the five seconds after it; and each process's longest silence outside pauses, which shows a process
  starved of slots by the others (issue 26's "both silent after a 429").

The database's schema is dropped and migrated before each run: give it a throw-away database
(its name must contain "bench", or pass --i-know-it-is-dropped). The sandbox runs in this
process on its own thread, on loopback. A message's time is when its bot process wrote the
request to the socket (benchmarks/send_probe.py, which the bots are started through): on
loopback the bytes are in the sandbox's socket then, and that is what Telegram counts at its
edge. The sandbox's own stamp (`ApiCall.at`, "handled") comes when its handler runs: after a
stall of this process's thread (a garbage collection of this process took 305 ms on a busy box)
it stamps a backlog of requests that came in properly spaced within a few ms, bursts that no
bot sent. Both are printed, with the stages before them: the database's slot ("intended"), the
process's slot ("slot"), the gate's hand-over ("acquired"), and the write.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import send_probe  # benchmarks/send_probe.py, beside this script
from common import describe, percentile  # benchmarks/common.py, beside this script

from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bot.db import create_database
from bot.migrate import recreate
from bot.models import Notification, utcnow
from bot.sandbox import BotApiSandbox
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "send_probe.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def max_in_sliding_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def seconds_over(times: list[float], limit: int) -> list[tuple[float, int]]:
    """Each sliding second (starting at an arrival) holding more than `limit` arrivals: its start,
    in seconds after the first arrival, and its count; where the peak came from, when it is over."""
    times = sorted(times)
    counts = [(t - times[0], bisect_left(times, t + 1.0) - i) for i, t in enumerate(times)]
    return [(at, n) for at, n in counts if n > limit]


class Cluster:
    """A private PostgreSQL in a temp folder (as `.ci/run` starts one), removed on exit."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: float(p.parent.name))
        if not bins:
            raise SystemExit("no PostgreSQL under /usr/lib/postgresql: pass --database-url")
        self.bin = bins[-1]
        self.dir = Path(tempfile.mkdtemp(prefix="stockbot-bench-pg."))
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)
        subprocess.run(command, check=True, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def start(self) -> str:
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C.UTF-8")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                  " -c max_connections=300", "start")
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "bench")
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/bench"

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


async def fresh(url: str) -> None:
    db = create_database(url)
    try:
        await recreate(db)
    finally:
        await db.dispose()


def outbox_rows(count: int, per_chat: int, kind: str) -> list[dict]:
    now = utcnow()
    chats = max(1, count // per_chat)
    return [
        {"dedup_key": f"bench:{n}", "chat_id": 100_000 + n % chats, "kind": kind, "text": f"m {n}",
         "state": "pending", "not_before": now, "priority": 100, "to_customer": False}
        for n in range(count)
    ]


@contextmanager
def garbage_collections(longer_than: float = 0.02) -> Iterator[list[tuple[float, float]]]:
    """This process's garbage collections that took longer than `longer_than` seconds, as (start,
    seconds): every thread stops for them, the sandbox's too."""
    pauses: list[tuple[float, float]] = []
    started = [0.0]

    def note(phase: str, _info: dict) -> None:
        if phase == "start":
            started[0] = time.monotonic()
        elif (took := time.monotonic() - started[0]) > longer_than:
            pauses.append((started[0], took))

    gc.callbacks.append(note)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(note)


@dataclass
class Floods:
    """429s the sandbox answers while a run sends: `count` of them, `every` seconds apart."""

    count: int = 0
    retry_after: int = 3
    every: float = 10.0

    def script(self, sandbox: BotApiSandbox, stop: threading.Event) -> None:
        while not sandbox.messages() and not stop.wait(0.05):
            pass
        for _ in range(self.count):
            if stop.wait(self.every):
                return
            sandbox.fail_next("sendMessage", status=429, retry_after=self.retry_after)


@contextmanager
def busy_loops(count: int) -> Iterator[None]:
    """`count` processes spinning beside the bots: a crowded machine, as issue 26 asks."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def run_scenario(url: str, processes: int, rows: list[dict], settings: dict[str, str], timeout: float,
                 floods: Floods | None = None) -> dict:
    asyncio.run(fresh(url))  # migrate before the processes start, so they do not race to
    floods = floods or Floods()
    stop_floods = threading.Event()
    with BotApiSandbox() as sandbox, tempfile.TemporaryDirectory() as work, garbage_collections() as pauses:
        env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
        env.update(BOT_TOKEN=sandbox.token, TELEGRAM_API_URL=sandbox.base_url, DATABASE_URL=url, QUIET_HOURS="",
                   PYTHONPATH=str(ROOT), **settings)
        logs = [Path(work) / f"bot{i}.log" for i in range(processes)]
        outs = [log.open("w") for log in logs]
        probes = [str(Path(work) / f"bot{i}.probe.jsonl") for i in range(processes)]
        bots = [subprocess.Popen([sys.executable, str(PROBE), probe, "run"], cwd=work, stdout=out,
                                 stderr=subprocess.STDOUT, env={**env, "API_PORT": str(free_port())})
                for out, probe in zip(outs, probes)]
        try:
            deadline = time.monotonic() + 900  # imports alone take a minute on a crowded 2-core box
            while not all("HTTP API on" in log.read_text() for log in logs):  # senders run from here on
                if time.monotonic() > deadline or any(bot.poll() is not None for bot in bots):
                    raise SystemExit(f"the bot processes did not start (exit codes {[b.poll() for b in bots]}):\n"
                                     + "\n".join(log.read_text()[-2000:] for log in logs))
                time.sleep(0.2)
            flooder = threading.Thread(target=floods.script, args=(sandbox, stop_floods), daemon=True)
            flooder.start()
            asyncio.run(_queue(url, rows))
            deadline = time.monotonic() + timeout + floods.count * floods.retry_after
            while len(sandbox.messages()) < len(rows) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)  # anything sent twice would arrive by now
            every_call = sandbox.calls_to("sendMessage")
            calls = [c for c in every_call if c.ok]
            paid = sandbox.paid_broadcasts()
        finally:
            stop_floods.set()
            for bot in bots:
                bot.send_signal(signal.SIGTERM)
            for bot in bots:
                try:
                    bot.wait(60)
                except subprocess.TimeoutExpired:
                    bot.kill()
            for out in outs:
                out.close()
        shares = [_stat(log, "sent") for log in logs]
        missed_at_write = sum(max(0, _stat(log, "slots_missed")) for log in logs)
        client, round_trips, given_up = send_probe.load([p for p in probes if Path(p).exists()])
    series = stages(calls, client)
    # Telegram counts a message when its bytes arrive, not when a server gets round to it: the
    # bots' own write times are the figure; the sandbox's handler stamps them later, and a backlog
    # at once after its thread stalled (the GC of this process, a busy CPU).
    measured = "written" if len(series["written"]) == len(calls) else "handled"
    times = {id(c): t for c, t in zip(calls, series[measured], strict=True)}
    timeline = sorted(times.values())
    texts = Counter(c.params["text"] for c in calls)
    by_chat: dict[int, list[float]] = {}
    for c in calls:
        by_chat.setdefault(c.params["chat_id"], []).append(times[id(c)])
    gaps = [b - a for chat_times in by_chat.values() for a, b in zip(sorted(chat_times), sorted(chat_times)[1:])]
    span = timeline[-1] - timeline[0] if len(timeline) > 1 else 0.0
    return {
        "processes": processes, "sent": len(calls), "missing": len(rows) - len(texts),
        "twice": sum(n - 1 for n in texts.values() if n > 1), "measured": measured,
        "peak": max_in_sliding_second(timeline),
        "rate": (len(timeline) - 1) / span if span else 0.0, "min_chat_gap": min(gaps, default=float("nan")),
        "paid": paid, "shares": shares, "stages": series, "given_up": given_up, "missed_at_write": missed_at_write,
        "messages": [{**client.get(c.params["text"], {}), "handled": c.at} for c in calls],
        "round_trips": round_trips, "gc_pauses": pauses,
        "floods": after_floods(every_call, client, floods.retry_after, processes),
    }


GRACE = 0.5  # seconds after a 429 in which slots reserved before it may still be used


def after_floods(every_call: list, client: dict[str, dict], retry_after: int, processes: int) -> dict:
    """What followed each 429, by the sandbox's clock (its stamp is all a refused call has)."""
    refused = sorted(c.at for c in every_call if c.status == 429)
    sent = sorted((c.at, client.get(c.params["text"], {}).get("process")) for c in every_call if c.ok)
    times = [at for at, _ in sent]
    each = []
    for at in refused:
        # Slots reserved before the 429 reached the database may still be used (two blocks a
        # process, 40-80 ms at ordinary rates): a send later than GRACE into the pause is a fault.
        after = [(t, p) for t, p in sent if t > at + GRACE]
        each.append({
            "resumed_s": after[0][0] - at if after else None,
            "in_grace": sum(1 for t in times if at < t <= at + GRACE),
            "inside_pause": sum(1 for t in times if at + GRACE < t < at + retry_after),
            "processes_after": sorted({p for t, p in after if t < at + retry_after + 5 and p is not None}),
        })
    pauses = [(at, at + retry_after) for at in refused]

    def paused(a: float, b: float) -> float:
        return sum(max(0.0, min(b, end) - max(a, start)) for start, end in pauses)

    longest = []
    for process in range(processes):
        own = [t for t, p in sent if p == process]
        longest.append(max((b - a - paused(a, b) for a, b in zip(own, own[1:])), default=float("nan")))
    return {"each": each, "longest_silence": longest}


def _stat(log: Path, name: str) -> int:
    """A figure from the SenderStats a bot process logs when it stops; -1 when it did not."""
    found = re.search(rf"SenderStats\(.*?\b{name}=(\d+)", log.read_text())
    return int(found.group(1)) if found else -1


STAGES = ("intended", "slot", "acquired", "written")  # see send_probe.py; then "handled" (the sandbox's)


def stages(calls: list, client: dict[str, dict]) -> dict[str, list[float]]:
    """Each message's times from the database's slot to the sandbox's handler, per stage, in the
    order of `calls` (a stage the probe did not see for a message is left out)."""
    series: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "handled")}
    for call in calls:
        record = client.get(call.params["text"], {})
        for stage in STAGES:
            if record.get(stage) is not None:
                series[stage].append(record[stage])
        series["handled"].append(call.at)
    return series


async def _queue(url: str, rows: list[dict]) -> None:
    db = create_database(url)
    try:
        async with db.transaction() as session:
            for start in range(0, len(rows), 2000):
                await session.execute(insert(Notification), rows[start : start + 2000])
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--i-know-it-is-dropped", action="store_true")
    parser.add_argument("--rate", type=float, default=25)
    parser.add_argument("--messages", type=int, default=10_000, help="shared-rate run: messages (two per chat)")
    parser.add_argument("--rate-processes", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--paid-messages", type=int, default=10_000)
    parser.add_argument("--paid-processes", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--floods", type=int, default=0, help="429s scripted in each shared-rate run")
    parser.add_argument("--retry-after", type=int, default=3, help="each 429's retry_after, seconds")
    parser.add_argument("--flood-every", type=float, default=10.0, help="seconds between two 429s")
    parser.add_argument("--busy", type=int, default=0, help="busy loops beside the bots")
    parser.add_argument("--save-times", metavar="DIR", help="write each shared-rate run's per-message times "
                        "(every stage, see send_probe.py) to DIR/shared-rate-N.json")
    args = parser.parse_args()

    cluster = None
    url = args.database_url
    if not url:
        cluster = Cluster()
        url = cluster.start()
    elif "bench" not in (make_url(url).database or "") and not args.i_know_it_is_dropped:
        raise SystemExit("the database is dropped and migrated: use one whose name contains 'bench'")
    print(f"# bench_scale_out on {describe()}")
    print(f"# database {make_url(url).render_as_string(hide_password=True)}")
    try:
        for n in args.rate_processes:
            rows = outbox_rows(args.messages, 2, "digest")
            with busy_loops(args.busy):
                result = run_scenario(url, n, rows, {"SEND_RATE": str(args.rate)}, args.messages / args.rate * 2 + 120,
                                      Floods(args.floods, args.retry_after, args.flood_every))
            limit = int(args.rate) + 1
            print(f"shared rate  SEND_RATE={args.rate:g} processes={n} messages={args.messages}: "
                  f"peak/1s={result['peak']} (limit {limit}; times {result['measured']}) "
                  f"achieved={result['rate']:.1f}/s min same-chat gap={result['min_chat_gap']:.3f}s "
                  f"missing={result['missing']} twice={result['twice']} per process={result['shares']} "
                  f"slots given up={result['given_up']} (at the write: {result['missed_at_write']})", flush=True)
            print("  peak/1s by stage: " + " ".join(
                f"{stage}={max_in_sliding_second(times)}" for stage, times in result["stages"].items() if times
            ), flush=True)
            for stage, times in result["stages"].items():
                if over := seconds_over(times, limit):
                    print(f"  {stage}: {len(over)} sliding seconds over the limit, starting at (s after the first, "
                          f"count): {', '.join(f'{at:.2f}:{n}' for at, n in over[:12])}", flush=True)
            start = min(result["stages"]["handled"], default=0.0)
            if pauses := [(at, took) for at, took in result["gc_pauses"] if at >= start]:
                print(f"  garbage collections of this process (the sandbox's) over 20 ms, at (s after the first "
                      f"handled, ms): {', '.join(f'{at - start:.2f}:{took * 1000:.0f}' for at, took in pauses[:12])}",
                      flush=True)
            if trips := result["round_trips"]:
                print(f"  reservation round trip: p50={percentile(trips, 50) * 1000:.1f} ms "
                      f"p99={percentile(trips, 99) * 1000:.1f} ms max={max(trips) * 1000:.1f} ms", flush=True)
            if each := result["floods"]["each"]:
                resumed = [f["resumed_s"] for f in each if f["resumed_s"] is not None]
                print(f"  {len(each)} x 429 (retry_after {args.retry_after} s, {args.busy} busy loops): "
                      f"first send after the first {GRACE:g} s: {min(resumed, default=float('nan')):.2f}-"
                      f"{max(resumed, default=float('nan')):.2f} s after the 429, "
                      f"sends in the first {GRACE:g} s (slots reserved before it) {sum(f['in_grace'] for f in each)}, "
                      f"later inside a pause {sum(f['inside_pause'] for f in each)}, "
                      f"processes sending within 5 s of the pause's end: "
                      f"{' '.join(str(len(f['processes_after'])) for f in each)} (of {n})", flush=True)
                print("  longest silence of each process outside pauses: "
                      + " ".join(f"{s:.2f}s" for s in result["floods"]["longest_silence"]), flush=True)
            if args.save_times:
                Path(args.save_times).mkdir(parents=True, exist_ok=True)
                (Path(args.save_times) / f"shared-rate-{n}.json").write_text(json.dumps(result["messages"]))
        for n in args.paid_processes:
            rows = outbox_rows(args.paid_messages, 1, "restock_notice")
            lifted = {"SEND_RATE": str(args.rate), "PAID_BROADCAST": "true", "PAID_BROADCAST_RATE": "10000"}
            result = run_scenario(url, n, rows, lifted, 600)
            print(f"paid ceiling processes={n} messages={args.paid_messages}: {result['rate']:.0f} msg/s "
                  f"paid={result['paid']} missing={result['missing']} twice={result['twice']} "
                  f"per process={result['shares']}", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
