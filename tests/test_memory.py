"""Free memory goes back to the operating system after work, and an idle bot does not pay for it."""

from __future__ import annotations

import gc
import sys
import weakref

import pytest

from bot.memory import (
    FREEZE_GROWTH,
    GROWTH_BEFORE_TRIM_KIB,
    FreeMemoryKeeper,
    LongLivedObjects,
    freeze_due,
    give_back_free_memory,
)

MIB = 1024


@pytest.mark.parametrize(
    ("resident_mib", "freed_by_trim_mib", "trims_after"),
    [
        ([280] * 30, 0, []),  # idle for five minutes: no growth, no trim
        ([280, 279, 281, 280, 282], 0, []),  # wobbling around a level is not growth
        ([280, 281, 282, 283, 284, 285], 3, [4]),  # small steps add up (the cover job's after the imports): trimmed at 4 MiB
        ([280, 300, 300, 300], 15, [1]),  # a big pass: trimmed at the next check, once
        ([280, 300, 320, 340], 0, [1, 2, 3]),  # live growth: at most one trim per check; the low point moves up
        ([300, 250, 253, 255], 0, [3]),  # growth counts from the lowest point, not the start
    ],
)
async def test_a_trim_follows_growth_not_the_clock(
    resident_mib: list[int], freed_by_trim_mib: int, trims_after: list[int]
) -> None:
    freed, trims, check = [0], [], 0

    def resident() -> int:
        return (resident_mib[check] - freed[0]) * MIB

    def trim() -> bool:
        trims.append(check)
        freed[0] += freed_by_trim_mib
        return True

    keeper = FreeMemoryKeeper(resident=resident, trim=trim)
    for check in range(len(resident_mib)):
        await keeper.give_back_if_grown()
    assert trims == trims_after
    assert GROWTH_BEFORE_TRIM_KIB == 4 * MIB  # the table's reading of the rule


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_leaves_the_process() -> None:
    def rss_kib() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    # Blocks above pymalloc's 512 bytes and below malloc's mmap threshold: glibc's heap, as a
    # big pass's dict and list tables are. One in seven survives, so the heap's top stays in use
    # and only a trim, not the heap shrinking, can return the pages between them.
    blocks = [bytearray(4000) for _ in range(20_000)]
    survivors = blocks[::7]
    del blocks
    before = rss_kib()
    give_back_free_memory()
    assert before - rss_kib() > 30_000, "over 60 MB freed inside the heap should leave the process"
    assert len(survivors) == 2858


@pytest.mark.parametrize(
    ("walked", "frozen", "due"),
    [
        (200_000, 0, True),  # start-up's modules and types: frozen at the first check
        (30_000, 0, False),  # a small heap: a full pass is short anyway
        (40_000, 230_000, False),  # steady traffic after the freeze: its objects come and go
        (110_000, 230_000, False),  # growth under half the frozen heap waits
        (120_000, 230_000, True),  # a catalog's first load: frozen too
        (60_000, 90_000, True),  # past both marks
    ],
)
def test_the_heap_is_frozen_when_it_has_grown(walked: int, frozen: int, due: bool) -> None:
    assert freeze_due(walked, frozen) is due
    assert FREEZE_GROWTH == 50_000  # the table's reading of the rule


class _Card:
    """A long-lived object the collector tracks, as the catalog's are."""


async def test_a_full_collection_after_the_freeze_walks_only_new_objects() -> None:
    gc.unfreeze()  # whatever an earlier test's scheduler froze counts as walked again
    long_lived = [_Card() for _ in range(FREEZE_GROWTH * 2)]  # a catalog's worth
    gc.collect()  # now in the oldest generation, walked by every full pass
    try:
        assert await LongLivedObjects().freeze_if_grown()
        walked = len(gc.get_objects(generation=2))
        assert walked < FREEZE_GROWTH // 10, f"{walked} objects still walked by a full pass"
        assert not await LongLivedObjects().freeze_if_grown(), "nothing grew: no second freeze"
        # Frozen objects still go when nothing refers to them (reference counting, not the
        # collector, frees them): a catalog dropped later gives its memory back.
        first = weakref.ref(long_lived[0])
        del long_lived
        assert first() is None
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
