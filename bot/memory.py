"""The C allocator's part of the bot's memory: how many heaps it keeps, and giving back what is free.

Python's own small objects live in 1 MiB arenas that it returns when they empty. Everything else
(dict and list tables, long strings, SQLite's pages, numpy's small arrays) comes from glibc's
malloc, which keeps the memory a big pass freed for re-use and returns only the top of each heap.
After the first day's imports, the sweep and the forecast of every series, tens of MB sat free
inside the heaps for good (the 100k shop settled at 306-321 MB, issue 20). `malloc_trim(0)` hands
those pages back to the operating system; the addresses stay mapped, so nothing is moved or copied.
Elsewhere than glibc both functions do nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt() parameter, from glibc's malloc.h
TRIM_CHECK_S = 10.0
# Growth of the resident set since the lowest point after the last trim that is worth a walk of the
# heaps (20-60 ms after a big pass). Measured on the 100k shop after its imports: the cover job's
# small runs (0.2 s of CPU each, too little to tell from idle polling by CPU) left 1-6 MiB free in
# the heap every ten seconds, ~25 MiB in all; a CPU rule never saw them as work.
GROWTH_BEFORE_TRIM_KIB = 4 * 1024
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc's, absent from musl and macOS
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own heap (up to 8 per core), and the database
    threads (one per pooled SQLite connection) and `to_thread` workers each fill and fragment
    one. Two are enough for one event loop: the 100k shop's RSS after its imports went from 355
    to 323 MB (docs/benchmarks.md). Only new heaps are affected, so this runs before the threads
    start."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, arenas)


def give_back_free_memory() -> bool:
    """Return the free pages inside glibc's heaps to the operating system. Blocks for the
    walk (tens of ms after a big pass); call it off the event loop. False: nothing to do here."""
    libc = _libc()
    return libc is not None and bool(libc.malloc_trim(0))


def resident_kib() -> int | None:
    """The process's resident set, in KiB; None where /proc is not there to say."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_KIB
    except (OSError, ValueError, IndexError):
        return None


def trim_due(resident: int, lowest_since_trim: int) -> bool:
    """The rule: trim once the process has grown by GROWTH_BEFORE_TRIM_KIB since its lowest point
    after the last trim. Growth that is live data moves the low point up at the next trim, so live
    growth costs at most one trim per check, and an idle process none."""
    return resident - lowest_since_trim >= GROWTH_BEFORE_TRIM_KIB


class FreeMemoryKeeper:
    """Gives back free memory when the process has grown, not on a clock. `give_back_if_grown`, called
    every TRIM_CHECK_S, trims when `trim_due` says so and then measures the new low point."""

    def __init__(self, resident: Callable[[], int | None] = resident_kib,
                 trim: Callable[[], bool] = give_back_free_memory) -> None:
        self._resident = resident
        self._trim = trim
        self._lowest: int | None = resident()

    async def give_back_if_grown(self) -> bool:
        """Trim (in a worker thread, the loop keeps serving) when due. True: a trim ran."""
        now = self._resident()
        if now is None or self._lowest is None:
            return False
        self._lowest = min(self._lowest, now)
        if not trim_due(now, self._lowest):
            return False
        await asyncio.to_thread(self._trim)
        self._lowest = self._resident() or now
        log.debug("gave back free memory: resident %d -> %d KiB", now, self._lowest)
        return True
