"""Quiet hours as a table: when a customer message may go out, and when a held one may go.

`quiet_until` takes the zone the customer lives in (their own, else the shop's: `claim_due`
decides which); the window's start is quiet and its end is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, tzinfo
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.quiet import quiet_until

NIGHT = (time(22), time(8))  # wraps midnight, the default QUIET_HOURS
LUNCH = (time(13), time(15))  # within one day
SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8, no DST
NEW_YORK = ZoneInfo("America/New_York")  # UTC-5 in January
BERLIN = ZoneInfo("Europe/Berlin")  # clocks go forward at 02:00 on 2026-03-29


def utc(day: int, hour: int, minute: int = 0, *, month: int = 1) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "quiet", "zone", "until"),
    [
        pytest.param(utc(15, 23), None, UTC, None, id="no quiet hours"),
        pytest.param(utc(15, 23), (time(22), time(22)), UTC, None, id="equal start and end: none"),
        # A window within one day.
        pytest.param(utc(15, 14), LUNCH, UTC, utc(15, 15), id="same day: inside"),
        pytest.param(utc(15, 13), LUNCH, UTC, utc(15, 15), id="same day: the start is quiet"),
        pytest.param(utc(15, 15), LUNCH, UTC, None, id="same day: the end is not"),
        pytest.param(utc(15, 12, 59), LUNCH, UTC, None, id="same day: before"),
        # A window that wraps midnight ends on the next local day when it began before midnight.
        pytest.param(utc(15, 23, 30), NIGHT, UTC, utc(16, 8), id="wraps: before midnight"),
        pytest.param(utc(16, 0), NIGHT, UTC, utc(16, 8), id="wraps: at midnight"),
        pytest.param(utc(16, 2), NIGHT, UTC, utc(16, 8), id="wraps: after midnight"),
        pytest.param(utc(15, 22), NIGHT, UTC, utc(16, 8), id="wraps: the start is quiet"),
        pytest.param(utc(16, 8), NIGHT, UTC, None, id="wraps: the end is not"),
        pytest.param(utc(16, 7, 59), NIGHT, UTC, utc(16, 8), id="wraps: a minute before the end"),
        pytest.param(utc(15, 12), NIGHT, UTC, None, id="wraps: midday"),
        # The customer's clock, not the shop's: one instant, quiet in Shanghai and not in UTC.
        pytest.param(utc(15, 15, 30), NIGHT, SHANGHAI, utc(16, 0), id="Shanghai: 23:30 there"),
        pytest.param(utc(15, 15, 30), NIGHT, UTC, None, id="the shop in UTC: 15:30"),
        pytest.param(utc(15, 23, 30), NIGHT, SHANGHAI, utc(16, 0), id="Shanghai: 07:30 there"),
        pytest.param(utc(16, 0), NIGHT, SHANGHAI, None, id="Shanghai: 08:00 there"),
        # Behind UTC the local day is the day before: the quiet period ends on the local next day.
        pytest.param(utc(16, 3), NIGHT, NEW_YORK, utc(16, 13), id="New York: 22:00 there"),
        pytest.param(utc(16, 12, 59), NIGHT, NEW_YORK, utc(16, 13), id="New York: 07:59 there"),
        # The night the clocks go forward is an hour shorter: it ends at 08:00 summer time.
        pytest.param(utc(28, 22, 30, month=3), NIGHT, BERLIN, utc(29, 6, month=3), id="Berlin: into summer time"),
    ],
)
def test_quiet_until(now: datetime, quiet: tuple[time, time] | None, zone: tzinfo, until: datetime | None) -> None:
    assert quiet_until(now, quiet, zone) == until
