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
