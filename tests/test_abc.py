"""ABC classes by cumulative share of revenue, as a table."""

import numpy as np
import pytest

from bot.planning.abc import abc_classes


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([70, 20, 6, 4], "AABC"),  # 20 crosses 80 %: still A; 4 starts at 96 %: C
        ([50, 30, 15, 5], "AABC"),
        ([100, 0, 0], "ACC"),
        ([0, 0], "CC"),
        ([10, 10, 10, 10, 10, 10, 10, 10, 10, 10], "AAAAAAAABB"),
        ([5, 90, 5], "BAC"),  # equal values rank in input order: the second starts at 95 %
    ],
)
def test_classes_by_cumulative_share(values: list[int], expected: str) -> None:
    assert "".join(abc_classes(np.array(values))) == expected
