"""An existing shop at rest: `stockbot run` on a SQLite database that is already imported.

    python benchmarks/bench_idle.py SHOP.db [--settle 150] [--idle-seconds 30]

Starts the real `python -m bot run` on that file (which it changes: point it at a scratch copy)
against the Bot API sandbox on a thread here, waits --settle seconds (the catalog loads, any
backlog of stock events is consumed), then reads the bot's CPU time over --idle-seconds, its
RSS, and the time from SIGTERM to exit. `bench_shop.py` measures the same things right after
importing a generated shop; this one separates "at rest" from the import's after-effects, and
prints the bot's log around the stop.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench_shop import _cpu_ticks, _env, _free_port, _status  # benchmarks/, beside this script
from common import describe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.sandbox import BotApiSandbox  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database", type=Path, help="an imported shop's SQLite file (a scratch copy)")
    parser.add_argument("--settle", type=float, default=150.0)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(f"{describe()}; load average {os.getloadavg()[0]:.1f}")
    log_path = args.database.parent / "bench_idle.log"
    with BotApiSandbox() as sandbox, log_path.open("w") as log:
        env = _env(sandbox, args.database.resolve(), _free_port())
        bot = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=args.database.parent,
                               stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(args.settle)
            ticks, began = _cpu_ticks(bot.pid), time.monotonic()
            time.sleep(args.idle_seconds)
            spent = (_cpu_ticks(bot.pid) - ticks) / os.sysconf("SC_CLK_TCK")
            elapsed = time.monotonic() - began
            memory = _status(bot.pid)
            print(f"idle CPU over {elapsed:.0f} s: {100 * spent / elapsed:.2f} % of one core; "
                  f"RSS {memory.get('VmRSS', 0) / 1024:.1f} MiB (peak {memory.get('VmHWM', 0) / 1024:.1f} MiB)")
            stopping = time.monotonic()
            bot.send_signal(signal.SIGTERM)
            code = bot.wait(timeout=60)
            print(f"SIGTERM -> exit {code} in {time.monotonic() - stopping:.2f} s")
        finally:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
    lines = log_path.read_text(errors="replace").splitlines()
    print("--- the bot's log, last lines ---", *lines[-8:], sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
