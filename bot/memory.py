"""The bot's memory between requests: how many heaps the C allocator keeps, giving back what is free,
and keeping the garbage collector's full passes short.

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
import gc
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


# Python's cyclic collector walks every object it tracks in a full (generation 2) pass, with the
# event loop stopped: in the soak the bot's 230,000 objects (modules, functions, aiogram's and
# pydantic's types, the catalog's indexes) took 130-190 ms a pass, one pass every ~30 s at 50
# requests/s, and each stalled every request in flight (issue 26). Nearly all of them live as long
# as the process. `gc.freeze()` moves what exists into a generation the collector no longer walks,
# after a collection has removed what was garbage then.
# A freeze keeps for good whatever was alive at that moment and later becomes cyclic garbage (a
# request's objects in flight): a freeze is due only when the walked heap has grown by at least
# FREEZE_GROWTH objects and by half of what is frozen, which bounds how often that can happen.
FREEZE_GROWTH = 50_000


def freeze_due(walked: int, frozen: int) -> bool:
    """The rule: freeze when the objects a full pass walks have grown past FREEZE_GROWTH and past
    half the frozen ones (start-up, then a large catalog's first load; not steady traffic)."""
    return walked >= max(FREEZE_GROWTH, frozen // 2)


def _walked_by_a_full_pass() -> int:
    return len(gc.get_objects(generation=2))


def _collect_and_freeze() -> None:
    gc.collect()
    gc.freeze()


class LongLivedObjects:
    """Freezes the long-lived heap when it has grown, so full collections walk only what is new.
    `freeze_if_grown` is called every TRIM_CHECK_S beside the trim."""

    def __init__(self, walked: Callable[[], int] = _walked_by_a_full_pass,
                 frozen: Callable[[], int] = gc.get_freeze_count,
                 freeze: Callable[[], None] = _collect_and_freeze) -> None:
        self._walked = walked
        self._frozen = frozen
        self._freeze = freeze

    async def freeze_if_grown(self) -> bool:
        """True: the heap was collected and frozen (one full pass, as the collector itself would
        have made soon). On the loop, as the scheduler runs coroutines: in a thread the pass would
        hold the interpreter's lock all the same."""
        walked, frozen = self._walked(), self._frozen()
        if not freeze_due(walked, frozen):
            return False
        self._freeze()
        log.debug("froze the long-lived heap: %d objects walked before, %d frozen now", walked, self._frozen())
        return True
