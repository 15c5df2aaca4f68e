"""The API's middlewares: every error answered as JSON, and one log line per request that never
holds a body, a header, a secret or a coupon code."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.api.answers import Answer, error
from bot.api.bodies import TOO_LARGE
from bot.logs import escape

log = logging.getLogger("bot.api")

LOGGED_PATH_CHARS = 120
_COUPON_IN_PATH = re.compile(r"(/coupons/)[^/]*", re.IGNORECASE)
_INSTALLED = web.AppKey("stockbot_api_middlewares", bool)
_REASONS = {
    404: "not found",
    405: "method not allowed",
    413: TOO_LARGE,
}
NextHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_api_middlewares(app: web.Application) -> None:
    """The request log and JSON errors, once per app (the Telegram webhook may share it)."""
    if not app.get(_INSTALLED):
        app.middlewares.append(_log_requests)
        app.middlewares.append(_json_errors)
        app[_INSTALLED] = True


@web.middleware
async def _json_errors(request: web.Request, handler: NextHandler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return error(exc.status, _REASONS.get(exc.status, exc.reason.lower()), **headers)
    except Answer as answer:
        return error(answer.status, answer.message)


@web.middleware
async def _log_requests(request: web.Request, handler: NextHandler) -> web.StreamResponse:
    """One line per request: method, route pattern (not the path: it may hold a coupon code),
    status and time. Never bodies, headers or secrets."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, route_of(request))
        status = 500
        return error(500, "internal error")
    finally:
        log.info(
            "%s %s %d %.1fms %s", request.method, route_of(request), status,
            (time.perf_counter() - started) * 1000, request.remote or "-",
        )


def route_of(request: web.Request) -> str:
    """What a log line may say of the request's path: the route's pattern, or for a path no route
    took, the path without its query string, a coupon code (`/coupons/CODE/redeem/`, one slash
    too many) masked, line breaks and other control characters escaped, cut short."""
    resource = request.match_info.route.resource if request.match_info.route else None
    if resource is not None:
        return resource.canonical
    return escape(_COUPON_IN_PATH.sub(r"\1{code}", request.path))[:LOGGED_PATH_CHARS]
