"""GET /api/v1/recovery: offered against held out, as JSON for the shop's BI (signed, empty body).

The same figures as /stats (bot/recovery/comparison.py) for the stockouts of the last `days` days
(query parameter, 1-3650, default 30): each group's customers, how many bought the product or a
substitute within ATTRIBUTION_DAYS (`window_days`) and their revenue, and the uplift and the
revenue it added with their 95 % intervals, null while either group is too small to say.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from bot.api.integration import IntegrationApi
from bot.models import utcnow
from bot.recovery import comparison

DEFAULT_DAYS = 30
MAX_DAYS = 3650


def parse_days(text: str | None) -> int | None:
    if text is None:
        return DEFAULT_DAYS
    if not text.isdecimal() or len(text) > 4:
        return None
    days = int(text)
    return days if 1 <= days <= MAX_DAYS else None


def add_recovery_routes(app: web.Application, api: IntegrationApi, prefix: str) -> None:
    async def recovery(request: web.Request, body: bytes) -> web.Response:
        """Offered against held out (signed over the empty body)."""
        days = parse_days(request.query.get("days"))
        if days is None:
            return web.json_response({"error": f"days must be a whole number from 1 to {MAX_DAYS}"}, status=400)
        until = utcnow()
        settings = api.settings
        async with api.db.read_session() as session:
            found = await comparison.build(session, since=until - timedelta(days=days), until=until,
                                           attribution_days=settings.ATTRIBUTION_DAYS,
                                           percent=settings.HOLDOUT_PERCENT)
        return web.json_response(comparison.as_json(found))

    app.router.add_get(f"{prefix}/recovery", api.signed(recovery))
