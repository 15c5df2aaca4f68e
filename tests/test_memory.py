"""Free memory goes back to the operating system after work, and an idle bot does not pay for it."""

from __future__ import annotations

import sys

import pytest

from bot.memory import GROWTH_BEFORE_TRIM_KIB, FreeMemoryKeeper, give_back_free_memory

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
