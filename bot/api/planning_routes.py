"""GET /api/v1/replenishment: what to buy or move now, from the demand forecast."""

from __future__ import annotations

from aiohttp import web

from bot.api.answers import error
from bot.api.integration import IntegrationApi
from bot.planning.state import forecast_as_of
from bot.planning.suggestions import as_json, suggestions

FORECAST_RETRY_AFTER = 30  # seconds: the first forecast runs within a minute of the start


def add_planning_routes(app: web.Application, api: IntegrationApi, prefix: str) -> None:
    async def replenishment(request: web.Request, body: bytes) -> web.Response:
        """What to buy or move now, from the demand forecast (signed over the empty body)."""
        async with api.unit_of_work():
            pass  # a read: only the signature is written
        async with api.db.read_session() as session:
            as_of = await forecast_as_of(session)
            if as_of is None:  # not "nothing to buy": not computed yet
                return error(503, "the first demand forecast is being computed",
                             **{"Retry-After": str(FORECAST_RETRY_AFTER)})
            lines = await suggestions(session)
        return web.json_response({"as_of": as_of.isoformat(), "suggestions": [as_json(line) for line in lines]})

    app.router.add_get(f"{prefix}/replenishment", api.signed(replenishment))
