"""How often an idle worker looks in the database for work other processes wrote."""

from __future__ import annotations

import pytest

from bot.waiting import IdlePolling


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
