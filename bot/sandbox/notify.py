"""Cross-thread, cross-loop change notification.

The sandbox can run on its own thread and event loop while tests wait on theirs,
so a plain ``asyncio.Condition`` (bound to one loop) is not enough. Each waiter
registers an ``asyncio.Event`` together with its loop; ``notify()`` sets it
directly when called from that loop and via ``call_soon_threadsafe`` otherwise.
Waiting is purely event-driven: the predicate is re-checked only after a change.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ChangeNotifier:
    """Wakes every coroutine waiting for some predicate over shared state to become true."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def notify(self) -> None:
        """Call after every state change; cheap when nobody waits (the benchmark's hot path)."""
        if not self._waiters:
            return
        with self._lock:
            waiters = list(self._waiters)
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, event in waiters:
            if loop is current:
                event.set()
            else:
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:  # that waiter's loop is already closed
                    continue

    async def wait_for(self, predicate: Callable[[], T], timeout: float) -> T:
        """Return the first truthy ``predicate()``; raise ``TimeoutError`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        deadline = loop.time() + timeout
        with self._lock:
            self._waiters.add(entry)
        try:
            while True:
                event.clear()  # clear *before* checking, so a change during the check is not lost
                result = predicate()
                if result:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                try:
                    async with asyncio.timeout(remaining):
                        await event.wait()
                except TimeoutError:
                    continue  # one last predicate check, then the deadline check raises
        finally:
            with self._lock:
                self._waiters.discard(entry)
