"""Sleeping until something happens: the one way the long-running loops (event worker, sender)
wait on several `asyncio.Event`s at once."""

from __future__ import annotations

import asyncio


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
