"""How often an idle worker looks in the database for work other processes wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.waiting import IdlePolling, off_the_loop

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("looks", "sleeps"), [
    ([True, True], [0.5, 0.5]),  # busy: look again at once
    ([False, False], [0.5, 0.5]),  # two empty looks at full speed (drain() counts on them)
    ([False] * 6, [0.5, 0.5, 1.0, 2.0, 2.0, 2.0]),  # then slower, up to the slowest
    ([False] * 5 + [True, False], [0.5, 0.5, 1.0, 2.0, 2.0, 0.5, 0.5]),  # work found: fast again
    ([False] * 200, [0.5, 0.5, 1.0] + [2.0] * 197),  # never beyond the slowest, however long idle
])
def test_idle_polling_slows_down_when_nothing_is_found_and_speeds_up_on_work(looks: list[bool],
                                                                             sleeps: list[float]) -> None:
    polling = IdlePolling(0.5, 2.0)
    assert [polling.interval(found_work=found) for found in looks] == sleeps


def test_a_slowest_below_the_fastest_means_a_fixed_interval() -> None:
    polling = IdlePolling(1.0, 0.2)
    assert [polling.interval(found_work=False) for _ in range(5)] == [1.0] * 5


async def test_work_off_the_loop_returns_its_result_or_raises_its_error() -> None:
    assert await off_the_loop(lambda: sum(range(1000))) == 499500
    with pytest.raises(ZeroDivisionError):
        await off_the_loop(lambda: 1 / 0)


def test_a_stop_does_not_wait_for_work_off_the_loop_to_finish() -> None:
    """The interpreter exits at once although the work would take a minute: a stopped bot's
    forecast or catalog load is dropped, not waited for (it committed nothing)."""
    program = (
        "import asyncio, time\n"
        "from bot.waiting import off_the_loop\n"
        "async def main():\n"
        "    task = asyncio.ensure_future(off_the_loop(lambda: time.sleep(60)))\n"
        "    await asyncio.sleep(0.2)\n"
        "    task.cancel()\n"
        "asyncio.run(main())\n"
        "print('exited')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "exited", done.stderr
