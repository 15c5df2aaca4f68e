"""The shop's calendar: which day it is in the shop's zone (TIMEZONE), the one place it is worked
out. Sales history, the daily message cap, digests and reports all count shop days."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from bot.models import utcnow


def shop_today(zone: tzinfo, now: datetime | None = None) -> date:
    """The shop day `now` (default: this moment, an aware UTC time) falls on in `zone`."""
    return (now or utcnow()).astimezone(zone).date()
