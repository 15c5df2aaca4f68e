"""The API's error answers: one JSON shape (`{"error": ...}`, or `{"errors": [...]}` for a 422
listing every problem of a batch), and the 503s that tell a client when to come back."""

from __future__ import annotations

from typing import Any

from aiohttp import web

ErrorList = list[dict[str, Any]]

RETRY_AFTER_S = 2
UNAVAILABLE_RETRY_AFTER_S = 5
_BUSY = "the server is busy; retry after the Retry-After seconds"
_UNAVAILABLE = "the database is unavailable; retry after the Retry-After seconds"


class Answer(Exception):
    """An early answer (400, 413, ...) from deep inside a handler."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def busy() -> web.Response:
    return error(503, _BUSY, **{"Retry-After": str(RETRY_AFTER_S)})


def unavailable() -> web.Response:
    return error(503, _UNAVAILABLE, **{"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})


def unprocessable(errors: ErrorList) -> web.Response:
    ordered = sorted(errors, key=lambda e: -1 if e["index"] is None else e["index"])
    return web.json_response({"errors": ordered}, status=422)
