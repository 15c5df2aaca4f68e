"""Sleeping until something happens: the one way the long-running loops (event worker, sender)
wait on several `asyncio.Event`s at once; and waiting for long CPU work done off the loop."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def until_any(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return once any of `events` is set, or after `timeout` seconds (None: no limit).
    The helper tasks are cancelled on the way out, so a loop calling this leaks none."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class IdlePolling:
    """How long a worker sleeps before looking in the database again for work another process
    (the CLI, another `run`) wrote; its own process wakes it at once. At `fastest` while there
    is work, then doubling after each empty look up to `slowest`, so an idle bot reads the
    database a few times a minute, not several times a second (issue 9: idle CPU < 2 %)."""

    def __init__(self, fastest: float, slowest: float, *, steady_looks: int = 2) -> None:
        self.fastest = fastest
        self.slowest = max(fastest, slowest)
        self.steady_looks = steady_looks  # empty looks at `fastest` before slowing down
        self.empty_looks = 0

    def interval(self, found_work: bool) -> float:
        """The sleep after a look that found work (or not)."""
        self.empty_looks = 0 if found_work else self.empty_looks + 1
        slower = max(0, self.empty_looks - self.steady_looks)
        return min(self.slowest, self.fastest * 2.0 ** min(slower, 16))


async def off_the_loop(work: Callable[[], T]) -> T:
    """`work()` in a daemon thread of its own, awaited. For long CPU work (a forecast of every
    series, the first catalog load): `asyncio.to_thread`'s pool threads are joined when the
    interpreter exits, so a stop that cancelled the awaiting task still waited for the work to
    finish (37 s once, docs/benchmarks.md); a daemon thread's result is simply dropped with it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.cancelled():
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task, raised there
            outcome = functools.partial(done.set_exception, exc)
        else:
            outcome = functools.partial(done.set_result, result)
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop is closed: the bot stopped, nobody waits for this
            pass

    threading.Thread(target=run, name="stockbot-work", daemon=True).start()
    return await done
