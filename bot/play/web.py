"""The page's HTTP side: the page itself, each person's chat as JSON and as server-sent events,
and what a person does (write, press, drop a file), plus the stock panel.

The page runs on 127.0.0.1 only, but any site open in the same browser could post to it: every
request that acts must carry `X-Play: 1`, a header a cross-site form cannot set (and a script
could only after a CORS preflight, which is never answered). Every answer forbids framing and
loading anything from elsewhere (a Content-Security-Policy), a second guard behind the escaping.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.play.people import Person
from bot.play.world import NotPressable, Play

STATIC = Path(__file__).parent / "static"
PAGES = {"/": ("index.html", "text/html"), "/play.css": ("play.css", "text/css"),
         "/play.js": ("play.js", "text/javascript")}
MAX_TEXT = 4096  # Telegram's limit for one message
MAX_UPLOAD = 20 * 1024 * 1024  # what a bot may download from Telegram
KEEPALIVE_SECONDS = 15.0
IMPORT_KINDS = ("catalog", "stock", "customers", "orders", "history")
_FILENAME = re.compile(r"[^\w.\- ]+")
_IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
_PLAY_KEY = web.AppKey("play", Play)
_CLOSING_KEY = web.AppKey("closing", asyncio.Event)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method != "GET" and request.headers.get("X-Play") != "1":
        response: web.StreamResponse = _error(403, "missing X-Play header")
    else:
        try:
            response = await handler(request)
        except BadRequest as exc:
            response = _error(exc.status, str(exc))
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def create_play_app(play: Play) -> web.Application:
    app = web.Application(client_max_size=MAX_UPLOAD + 64 * 1024, middlewares=[_guard])
    app[_PLAY_KEY] = play
    app[_CLOSING_KEY] = asyncio.Event()

    async def closing(app: web.Application) -> None:
        app[_CLOSING_KEY].set()  # event streams end, so stopping does not wait for open tabs

    app.on_shutdown.append(closing)
    for path in PAGES:
        app.router.add_get(path, _page)
    app.router.add_get("/play/people", _people)
    app.router.add_get("/play/people/{user_id}/chat", _chat)
    app.router.add_get("/play/people/{user_id}/events", _events)
    app.router.add_post("/play/people/{user_id}/messages", _message)
    app.router.add_post("/play/people/{user_id}/press", _press)
    app.router.add_post("/play/people/{user_id}/files", _upload)
    app.router.add_get("/play/files/{file_id}", _file)
    app.router.add_get("/play/stock", _stock)
    app.router.add_post("/play/stock-events", _stock_event)
    return app


async def _page(request: web.Request) -> web.Response:
    name, content_type = PAGES[request.path]
    return web.Response(body=(STATIC / name).read_bytes(), content_type=content_type, charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


def _play(request: web.Request) -> Play:
    return request.app[_PLAY_KEY]


def _person(request: web.Request) -> Person:
    try:
        return _play(request).person(int(request.match_info["user_id"]))
    except (KeyError, ValueError):
        raise BadRequest(404, "nobody by that id on this page") from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return body


def _int_field(body: dict[str, Any], name: str, *, minimum: int | None = None) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        raise BadRequest(400, f"{name} must be a whole number" + (f" of at least {minimum}" if minimum else ""))
    return value


async def _people(request: web.Request) -> web.Response:
    play = _play(request)
    return web.json_response({"people": [p.as_json() for p in play.people],
                              "locale": play.conversation.services.settings.DEFAULT_LOCALE})


async def _chat(request: web.Request) -> web.Response:
    return web.json_response(_play(request).chat(_person(request)))


async def _events(request: web.Request) -> web.StreamResponse:
    """The person's chat whenever it changes (and the others' message counts, for the badges)."""
    play, person = _play(request), _person(request)
    closing = request.app[_CLOSING_KEY]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           **SECURITY_HEADERS})
    await response.prepare(request)
    sent = ""
    with suppress(ConnectionResetError, asyncio.CancelledError):
        while not closing.is_set():
            state = json.dumps(play.chat(person), ensure_ascii=False)
            if state != sent:
                await response.write(f"data: {state}\n\n".encode())
                sent = state
            else:
                await response.write(b": still here\n\n")
            await _changed(play, lambda last=sent: json.dumps(play.chat(person), ensure_ascii=False) != last, closing)
    return response


async def _changed(play: Play, predicate: Callable[[], bool], closing: asyncio.Event) -> None:
    """Until the sandbox saw something that changes the view, the server closes, or a keep-alive is due."""
    change = asyncio.ensure_future(play.sandbox.wait_for(predicate, timeout=KEEPALIVE_SECONDS))
    stop = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({change, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (change, stop):
            task.cancel()
        with suppress(asyncio.CancelledError, TimeoutError):
            await change


async def _message(request: web.Request) -> web.Response:
    person, body = _person(request), await _json_body(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(400, "text must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise BadRequest(400, f"a message holds at most {MAX_TEXT} characters")
    _play(request).say(person, text)
    return web.json_response({"ok": True})


async def _press(request: web.Request) -> web.Response:
    person, body = _person(request), await _json_body(request)
    message_id, index = _int_field(body, "message_id", minimum=1), _int_field(body, "button", minimum=0)
    try:
        _play(request).press(person, message_id, index)
    except NotPressable as exc:
        raise BadRequest(409, str(exc)) from None
    return web.json_response({"ok": True})


async def _upload(request: web.Request) -> web.Response:
    """A file dropped in the chat, sent as a document; the caption says what it holds (the kind)."""
    person = _person(request)
    if not request.content_type.startswith("multipart/"):
        raise BadRequest(400, "send the file as multipart/form-data")
    filename, content, caption = "", b"", ""
    async for part in await request.multipart():
        if part.name == "file":
            filename = _FILENAME.sub("_", part.filename or "file")[:128] or "file"
            content = await part.read()  # type: ignore[union-attr]
        elif part.name == "caption":
            caption = (await part.text())[:1024]  # type: ignore[union-attr]
    if not content:
        raise BadRequest(400, "no file, or an empty one")
    _play(request).send_file(person, filename, bytes(content), caption.strip())
    return web.json_response({"ok": True})


async def _file(request: web.Request) -> web.Response:
    """A file the bot sent. Pictures are shown only when they are what they claim; anything else
    is a download, never drawn by the browser (a CSV or HTML file could hold anything)."""
    try:
        stored = _play(request).file(request.match_info["file_id"])
    except KeyError:
        raise BadRequest(404, "no such file") from None
    headers = {"Cache-Control": "private, max-age=3600"}
    image = next((kind for magic, kind in _IMAGE_TYPES.items() if stored.content.startswith(magic)), None)
    if image and request.query.get("download") != "1":
        return web.Response(body=stored.content, content_type=image, headers=headers)
    name = _FILENAME.sub("_", stored.filename or stored.file_id) or "file"
    headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return web.Response(body=stored.content, content_type="application/octet-stream", headers=headers)


async def _stock(request: web.Request) -> web.Response:
    return web.json_response({"stock": await _play(request).stock()})


async def _stock_event(request: web.Request) -> web.Response:
    """`{"sku", "action": "stockout"}` counts every warehouse of the product at 0, one batch;
    `{"sku", "warehouse", "action": "restock", "qty"}` moves that many in. Both go through the
    signed API; its answer (422 with its errors when it refuses) comes back as it is."""
    play, body = _play(request), await _json_body(request)
    sku, action = body.get("sku"), body.get("action")
    if not isinstance(sku, str) or not sku:
        raise BadRequest(400, "sku is needed")
    if action == "stockout":
        warehouses = [row["warehouse"] for row in await play.stock() if row["sku"] == sku and row["on_hand"] > 0]
        if not warehouses:
            raise BadRequest(409, f"{sku} has no stock to run out of")
        events = [{"sku": sku, "warehouse": w, "on_hand": 0, "reason": "play: stockout"} for w in warehouses]
    elif action == "restock":
        warehouse = body.get("warehouse")
        if not isinstance(warehouse, str) or not warehouse:
            raise BadRequest(400, "warehouse is needed")
        qty = _int_field(body, "qty", minimum=1)
        events = [{"sku": sku, "warehouse": warehouse, "delta": qty, "reason": "play: restock"}]
    else:
        raise BadRequest(400, "action must be stockout or restock")
    status, answer = await play.stock_events(events)
    return web.json_response({"status": status, "api": answer}, status=status if status in (200, 422) else 502)
