"""The fake's wire: an aiohttp server speaking the Bot API's protocol (form and multipart requests,
``{"ok": ...}`` envelopes, real error codes), its lifecycle on the caller's loop or a thread of its
own, file downloads, and getUpdates with Telegram's long-poll semantics."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bot.sandbox.errors import ApiError
from bot.sandbox.failures import ScriptedFailures
from bot.sandbox.methods import BotApiMethods
from bot.sandbox.models import ApiCall
from bot.sandbox.objects import update_type
from bot.sandbox.params import read_params


class HttpServer(BotApiMethods, ScriptedFailures):
    """The server: each request passes the scripted failures, then reaches its method."""

    async def start(self) -> None:
        """Bind the HTTP server on the current loop; ``base_url`` is valid afterwards."""
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        # handler_cancellation: a long poll whose client went away must not swallow updates
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]  # the real port when port=0 asked the OS to choose
        self.base_url = f"http://{self._host}:{port}"
        self._closing = False

    async def stop(self) -> None:
        """Wake pending long polls (they return ``[]``) and close the server."""
        self._closing = True
        self._queue_changed.notify()
        self._traffic.notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 5.0) -> None:
        """Run the server on a private thread+loop so it doesn't compete with the bot's loop (benchmarks)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=run, name="bot-api-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("sandbox thread did not start")
        if errors:
            raise errors[0]

    def stop_thread(self, timeout: float = 5.0) -> None:
        """Stop a server started with ``start_in_thread`` and join its thread."""
        if self._thread is None or self._thread_loop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self._thread_loop = None

    def __enter__(self) -> Self:
        self.start_in_thread()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_thread()

    async def _handle_api(self, request: web.Request) -> web.Response:
        at, wall = time.monotonic(), time.time()
        method = request.match_info["method"]
        params = await read_params(request)
        key = method.lower()
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            while (key in self._silent or "*" in self._silent) and not self._closing:
                await asyncio.sleep(0.05)  # no answer at all: a Bot API (or network) that hangs
            if key == "getupdates":
                result = await self._get_updates(params)
                with self._lock:
                    self._calls.append(ApiCall(method, params, at, wall, 200))
            else:
                result = self._call_sync(key, method, params, at, wall)
        except ApiError as err:
            with self._lock:
                self._calls.append(ApiCall(method, params, at, wall, err.status, err.description))
            self._traffic.notify()
            return _json_response(err.payload(), err.status)
        self._traffic.notify()
        return _json_response({"ok": True, "result": result}, 200)

    def _call_sync(self, key: str, method: str, params: dict[str, Any], at: float, wall: float) -> Any:
        """One lock acquisition per request: scripted failure, chat checks, the method, the log entry."""
        handler = self._handlers.get(key)
        if handler is None:
            raise ApiError(404, "Not Found: method not found")
        with self._lock:
            self._check_failures(key, params)
            result = handler(params)
            self._calls.append(ApiCall(method, params, at, wall, 200))
        return result

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        with self._lock:
            stored = self._files_by_path.get(path) if request.match_info["token"] == self.token else None
            status = 200 if stored else 404
            self._calls.append(ApiCall("downloadFile", {"file_path": path}, time.monotonic(), time.time(), status))
        self._traffic.notify()
        if stored is None:
            return _json_response({"ok": False, "error_code": 404, "description": "Not Found"}, 404)
        return web.Response(body=stored.content, content_type=stored.mime_type or "application/octet-stream")

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Telegram semantics: offset confirms earlier updates, unconfirmed ones are re-sent, timeout long-polls."""
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        with self._lock:
            self._check_failures("getupdates", params)
            if self._webhook_url:
                raise ApiError(
                    409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
                )
            if params.get("allowed_updates"):
                self._allowed_updates = list(params["allowed_updates"])
            self._confirm(params.get("offset"))
            self._poll_generation += 1
            generation = self._poll_generation
            self._open_polls += 1
        try:
            self._queue_changed.notify()  # terminates an older concurrent poll with 409, as Telegram does
            self._traffic.notify()
            return await self._poll(generation, limit, time.monotonic() + timeout)
        finally:
            with self._lock:
                self._open_polls -= 1

    async def _poll(self, generation: int, limit: int, deadline: float) -> list[dict[str, Any]]:
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                    )
                batch = self._take_batch(limit)
                seen_version = self._queue_version
            remaining = deadline - time.monotonic()
            if batch or self._closing or remaining <= 0:
                return batch
            try:
                await self._queue_changed.wait_for(
                    lambda: self._closing or self._queue_version != seen_version or generation != self._poll_generation,
                    remaining,
                )
            except TimeoutError:
                continue

    def _confirm(self, offset: Any) -> None:
        if not isinstance(offset, int) or offset == 0:
            return
        if offset < 0:
            del self._queue[: max(len(self._queue) + offset, 0)]
            return
        self._queue = [item for item in self._queue if item.update["update_id"] >= offset]

    def _take_batch(self, limit: int) -> list[dict[str, Any]]:
        """Drop updates the bot did not ask for (allowed_updates), return the first ``limit`` unconfirmed."""
        allowed = self._allowed_updates
        if allowed is not None:
            self._queue = [item for item in self._queue if update_type(item.update) in allowed]
        batch = self._queue[:limit]
        for item in batch:
            item.delivered = True
        return [item.update for item in batch]


def _json_response(payload: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=json.dumps(payload).encode(), status=status, content_type="application/json")
