"""GET /api/v1/health, unsigned: whether the bot can reach its database."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.api.answers import UNAVAILABLE_RETRY_AFTER_S
from bot.db import Database

log = logging.getLogger("bot.api")

HEALTH_DB_TIMEOUT = 5  # seconds: a health check that hangs is worse than one that says no


def add_health_route(app: web.Application, db: Database, prefix: str) -> None:
    async def health(request: web.Request) -> web.Response:
        # A bot that cannot reach its database is not healthy, whatever the process says. During
        # a spell of trouble it must take a write too: a full disk still answers reads.
        unavailable = web.json_response({"status": "unavailable"}, status=503,
                                        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})
        try:
            async with asyncio.timeout(HEALTH_DB_TIMEOUT):
                await db.probe(write=db.trouble.unavailable)
        except TimeoutError:  # a busy database: one line, not a traceback for every probe
            log.warning("health: the database did not answer within %s s", HEALTH_DB_TIMEOUT)
            return unavailable
        except Exception as exc:  # any failure to answer counts; the reason is logged, never returned
            if not db.trouble.note(exc):
                log.warning("health: the database does not answer", exc_info=True)
            return unavailable
        db.trouble.recovered()
        return web.json_response({"status": "ok"})

    app.router.add_get(f"{prefix}/health", health)
