"""Quiet hours: when a customer message that is not an answer may go out."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo



def quiet_until(now: datetime, quiet: tuple[time, time] | None, zone: tzinfo) -> datetime | None:
    """The end of the quiet period `now` falls in (aware UTC), or None when sending is fine.

    `quiet` may wrap midnight (22:00-08:00). Equal start and end mean no quiet period.
    """
    if quiet is None or quiet[0] == quiet[1]:
        return None
    start, end = quiet
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    ends = datetime.combine(end_day, end, tzinfo=zone)
    return ends.astimezone(UTC)


def next_local_midnight(now: datetime, zone: tzinfo) -> datetime:
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return midnight.astimezone(UTC)

