"""An in-process fake Telegram Bot API server for tests and the offline demo.

Point aiogram at it with ``AiohttpSession(api=TelegramAPIServer.from_base(sandbox.base_url))``.
It speaks the real wire protocol (form/multipart requests, ``{"ok": ...}`` envelopes,
real error codes and descriptions) so aiogram raises its genuine exceptions, and
nothing can ever reach api.telegram.org.

All shared state is guarded by one ``threading.Lock`` so the server may run on its
own thread (``start_in_thread``) while tests inject updates from another loop.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import EllipsisType, TracebackType
from typing import Any, TypeVar

from aiogram.types import Message
from aiohttp import web

from bot.sandbox.formatting import EntityParseError, plain_text, validate_html
from bot.sandbox.models import (
    ApiCall,
    ButtonNotFound,
    CallbackAnswer,
    FailureRule,
    InlineAnswer,
    MessageVersion,
    PendingQuery,
    SentMessage,
    StoredFile,
    UploadedFile,
    buttons_of,
)
from bot.sandbox.notify import ChangeNotifier
from bot.sandbox.objects import (
    bot_user_obj,
    chat_obj,
    command_entities,
    document_obj,
    photo_sizes,
    sticker_obj,
    update_type,
    user_obj,
)
from bot.sandbox.params import read_params

T = TypeVar("T")
MessageRef = SentMessage | Message  # what tests hold: the sandbox's record or aiogram's return value

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
BLOCKED = "Forbidden: bot was blocked by the user"
CHAT_NOT_FOUND = "Bad Request: chat not found"
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class ApiError(Exception):
    """Raised inside method handlers; becomes Telegram's ``{"ok": false, ...}`` envelope."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass(slots=True)
class _QueuedUpdate:
    update: dict[str, Any]
    delivered: bool = False


@dataclass(slots=True)
class _TranscriptEntry:
    who: str
    text: str
    buttons: tuple[str, ...] = ()


@dataclass(slots=True)
class _Chat:
    """Per-chat state; Telegram numbers messages per private chat for both sides, so one counter."""

    chat_id: int
    first_name: str | None = None
    next_message_id: int = 1
    bot_messages: dict[int, SentMessage] = field(default_factory=dict)
    user_messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    transcript: list[_TranscriptEntry] = field(default_factory=list)

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


def _scope_key(scope: Any) -> str:
    """Commands are stored per (scope, language); canonical JSON makes dict scopes hashable."""
    if scope is None:
        scope = {"type": "default"}
    elif isinstance(scope, str):
        scope = {"type": scope}
    return json.dumps(scope, sort_keys=True)


class BotApiSandbox:
    """Fake Bot API server plus the controls a test needs: inject user actions, inspect bot output, script failures."""

    def __init__(
        self,
        token: str = "123456:SANDBOX-TOKEN",
        *,
        bot_username: str = "stockbot_sandbox_bot",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(token.split(":", 1)[0])
        self.base_url = ""
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._traffic = ChangeNotifier()  # any call or injection: generic wait_for
        self._queue_changed = ChangeNotifier()  # injections/stop: wakes long polls
        self._bot_user = bot_user_obj(self.bot_id, bot_username)
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            name.lower(): getattr(self, f"_api_{name}")
            for name in (
                "getMe", "sendMessage", "editMessageText", "editMessageReplyMarkup", "editMessageCaption",
                "answerCallbackQuery", "sendPhoto", "sendDocument", "sendMediaGroup", "getFile", "setMyCommands",
                "getMyCommands", "deleteMyCommands", "deleteWebhook", "setWebhook", "getWebhookInfo",
                "answerInlineQuery", "deleteMessage", "sendChatAction",
            )
        }
        self._reset_state()

    def _reset_state(self) -> None:
        self._calls: list[ApiCall] = []
        self._chats: dict[int, _Chat] = {}
        self._message_order: list[tuple[int, int]] = []
        self._queue: list[_QueuedUpdate] = []
        self._queue_version = 0
        self._next_update_id = 1
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._open_polls = 0
        self._webhook_url = ""
        self._webhook_secret = ""  # what Telegram would send as X-Telegram-Bot-Api-Secret-Token
        self._failures: list[FailureRule] = []
        self._silent: set[str] = set()  # methods (lower-cased, or "*") that get no answer for now
        self._blocked: set[int] = set()
        self._unknown: set[int] = set()
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._next_file = 1
        self._callback_queries: dict[str, PendingQuery] = {}
        self._inline_queries: dict[str, PendingQuery] = {}
        self._next_query_id = 1
        self._callback_answers: list[CallbackAnswer] = []
        self._inline_answers: list[InlineAnswer] = []
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ lifecycle

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

    async def __aenter__(self) -> BotApiSandbox:
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

    def __enter__(self) -> BotApiSandbox:
        self.start_in_thread()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_thread()

    # ------------------------------------------------------------------ HTTP layer

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

    def _check_failures(self, key: str, params: dict[str, Any]) -> None:
        chat_id = params.get("chat_id")
        if self._failures:
            for rule in self._failures:
                if rule.matches(key, chat_id):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._failures.remove(rule)
                    raise ApiError(rule.status, rule.description, rule.retry_after)
        if chat_id is not None:
            if chat_id in self._unknown or not isinstance(chat_id, int):
                raise ApiError(400, CHAT_NOT_FOUND)
            if chat_id in self._blocked:
                raise ApiError(403, BLOCKED)

    # ------------------------------------------------------------------ getUpdates

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

    # ------------------------------------------------------------------ Bot API methods (called under the lock)

    def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
        }

    def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._target_chat(params)
        text = _validated_text(params.get("text"), params.get("parse_mode"), MAX_TEXT_LENGTH, "message")
        markup = _validated_markup(params.get("reply_markup"))
        return self._store_bot_message(chat, "text", text, params.get("parse_mode"), markup, None)

    def _api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._send_media(params, "photo")

    def _api_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._send_media(params, "document")

    def _api_sendMediaGroup(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """An album: 2-10 photos/videos, or only documents, or only audio; each may carry a caption.

        Each item's `media` is `attach://<part>` (a file posted in the same multipart request,
        as aiogram sends uploads) or a known file_id. One message per item, sharing a media_group_id.
        """
        chat = self._target_chat(params)
        media = params.get("media")
        if not isinstance(media, list) or not all(isinstance(item, dict) for item in media):
            raise ApiError(400, "Bad Request: can't parse media JSON object")
        if not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of media specified: must be 2-10")
        kinds = [item.get("type") for item in media]
        if any(kind not in ("photo", "video", "document", "audio") for kind in kinds):
            raise ApiError(400, "Bad Request: wrong type of the media specified")
        for lone in ("document", "audio"):
            if lone in kinds and any(kind != lone for kind in kinds):
                raise ApiError(400, f"Bad Request: {lone} can't be mixed with other media types")
        items = []
        for item in media:
            caption = item.get("caption")
            if caption:
                caption = _validated_text(caption, item.get("parse_mode"), MAX_CAPTION_LENGTH, "caption")
            source = item.get("media")
            if isinstance(source, str) and source.startswith("attach://"):
                source = params.get(source[len("attach://") :])
                if not isinstance(source, UploadedFile):
                    raise ApiError(400, "Bad Request: the attached file is missing from the request")
            items.append((item["type"], caption, item.get("parse_mode"), self._resolve_input_file(source, item["type"])))
        group = f"SBX-group-{self._next_file:06d}"
        sent = []
        for kind, caption, parse_mode, stored in items:
            message = self._store_bot_message(chat, kind, caption, parse_mode, None, stored)
            sent.append({**message, "media_group_id": group})
        return sent

    def _send_media(self, params: dict[str, Any], kind: str) -> dict[str, Any]:
        chat = self._target_chat(params)
        caption = params.get("caption")
        if caption:
            caption = _validated_text(caption, params.get("parse_mode"), MAX_CAPTION_LENGTH, "caption")
        markup = _validated_markup(params.get("reply_markup"))
        stored = self._resolve_input_file(params.get(kind), kind)
        return self._store_bot_message(chat, kind, caption, params.get("parse_mode"), markup, stored)

    def _resolve_input_file(self, value: Any, kind: str) -> StoredFile:
        """Uploads become new files; strings must be a known file_id (URLs are accepted but never fetched)."""
        if isinstance(value, UploadedFile):
            return self._store_file(kind, value.filename, value.content_type, value.content)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return self._store_file(kind, value.rsplit("/", 1)[-1] or kind, None, b"")
        if not value:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        if params.get("inline_message_id"):
            return True
        current = self._editable_message(params)
        if current.kind != "text":
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text = _validated_text(params.get("text"), params.get("parse_mode"), MAX_TEXT_LENGTH, "message")
        # Like Telegram: editing text without reply_markup removes the inline keyboard.
        markup = _validated_markup(params.get("reply_markup"))
        return self._apply_edit(current, text, params.get("parse_mode"), markup)

    def _api_editMessageCaption(self, params: dict[str, Any]) -> Any:
        if params.get("inline_message_id"):
            return True
        current = self._editable_message(params)
        if current.kind == "text":
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption = params.get("caption") or None
        if caption:
            caption = _validated_text(caption, params.get("parse_mode"), MAX_CAPTION_LENGTH, "caption")
        markup = _validated_markup(params.get("reply_markup"))
        return self._apply_edit(current, caption, params.get("parse_mode"), markup)

    def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        if params.get("inline_message_id"):
            return True
        current = self._editable_message(params)
        markup = _validated_markup(params.get("reply_markup"))
        return self._apply_edit(current, current.text, current.parse_mode, markup)

    def _api_deleteMessage(self, params: dict[str, Any]) -> bool:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        current = chat.bot_messages.get(message_id) if isinstance(message_id, int) else None
        if current is None or current.deleted:
            if isinstance(message_id, int) and message_id in chat.user_messages:
                del chat.user_messages[message_id]
                return True
            raise ApiError(400, "Bad Request: message to delete not found")
        chat.bot_messages[current.message_id] = replace(current, deleted=True)
        return True

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        pending = self._callback_queries.get(query_id)
        if pending is None or pending.answered:
            raise ApiError(400, QUERY_TOO_OLD)
        pending.answered = True
        self._callback_answers.append(
            CallbackAnswer(
                callback_query_id=query_id,
                user_id=pending.user_id,
                chat_id=pending.chat_id,
                message_id=pending.message_id,
                data=pending.data,
                text=params.get("text"),
                show_alert=bool(params.get("show_alert", False)),
                url=params.get("url"),
                at=time.monotonic(),
            )
        )
        return True

    def _api_answerInlineQuery(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("inline_query_id") or "")
        pending = self._inline_queries.get(query_id)
        if pending is None or pending.answered:
            raise ApiError(400, QUERY_TOO_OLD)
        results = params.get("results")
        if not isinstance(results, list):
            raise ApiError(400, "Bad Request: can't parse inline query results JSON object")
        pending.answered = True
        self._inline_answers.append(
            InlineAnswer(
                inline_query_id=query_id,
                user_id=pending.user_id,
                query=pending.query,
                results=results,
                cache_time=params.get("cache_time"),
                is_personal=bool(params.get("is_personal", False)),
                next_offset=params.get("next_offset"),
                at=time.monotonic(),
            )
        )
        return True

    def _api_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        found = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_path": stored.file_path}
        return {**found, "file_size": stored.size} if stored.size_known else found

    def _api_setMyCommands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            name = str(command.get("command", "")) if isinstance(command, dict) else ""
            if not (1 <= len(name) <= 32) or not all(c.islower() or c.isdigit() or c == "_" for c in name):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self._commands[(_scope_key(params.get("scope")), params.get("language_code") or "")] = commands
        return True

    def _api_getMyCommands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self._commands.get((_scope_key(params.get("scope")), params.get("language_code") or ""), []))

    def _api_deleteMyCommands(self, params: dict[str, Any]) -> bool:
        self._commands.pop((_scope_key(params.get("scope")), params.get("language_code") or ""), None)
        return True

    def _api_setWebhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        if url and not url.lower().startswith("https://"):  # an empty URL removes the webhook
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self._webhook_url = url
        self._webhook_secret = str(params.get("secret_token") or "")
        if params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self._webhook_url = ""
        if params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self._webhook_url, "has_custom_certificate": False, "pending_update_count": len(self._queue)}

    def _api_sendChatAction(self, params: dict[str, Any]) -> bool:
        self._target_chat(params)
        if not params.get("action"):
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    # ------------------------------------------------------------------ method helpers

    def _chat(self, chat_id: int, first_name: str | None = None) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat_id, first_name if chat_id > 0 else None)
        return chat

    def _target_chat(self, params: dict[str, Any]) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int):
            raise ApiError(400, CHAT_NOT_FOUND)
        return self._chat(chat_id)

    def _editable_message(self, params: dict[str, Any]) -> SentMessage:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        current = chat.bot_messages.get(message_id) if isinstance(message_id, int) else None
        if current is None or current.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        return current

    def _store_bot_message(
        self,
        chat: _Chat,
        kind: str,
        text: str | None,
        parse_mode: str | None,
        markup: dict[str, Any] | None,
        stored: StoredFile | None,
    ) -> dict[str, Any]:
        message = SentMessage(
            chat_id=chat.chat_id,
            message_id=chat.take_message_id(),
            text=text,
            parse_mode=parse_mode,
            reply_markup=markup,
            sent_at=time.monotonic(),
            date=int(time.time()),
            kind=kind,
            file=stored,
        )
        chat.bot_messages[message.message_id] = message
        self._message_order.append((chat.chat_id, message.message_id))
        chat.transcript.append(_TranscriptEntry("bot", _transcript_text(message), _labels(markup)))
        return self._message_obj(message)

    def _apply_edit(
        self, current: SentMessage, text: str | None, parse_mode: str | None, markup: dict[str, Any] | None
    ) -> dict[str, Any]:
        if (text, parse_mode, markup or None) == (current.text, current.parse_mode, current.reply_markup or None):
            raise ApiError(400, NOT_MODIFIED)
        version = MessageVersion(current.text, current.parse_mode, current.reply_markup, time.monotonic())
        edited = replace(
            current, text=text, parse_mode=parse_mode, reply_markup=markup, edits=(*current.edits, version)
        )
        chat = self._chats[current.chat_id]
        chat.bot_messages[current.message_id] = edited
        chat.transcript.append(_TranscriptEntry("bot", f"[edited] {_transcript_text(edited)}", _labels(markup)))
        return self._message_obj(edited)

    def _store_file(self, kind: str, filename: str | None, mime_type: str | None, content: bytes,
                    *, size_known: bool = True) -> StoredFile:
        number = self._next_file
        self._next_file += 1
        folder = "photos" if kind == "photo" else "documents"
        suffix = filename.rsplit(".", 1)[-1] if filename and "." in filename else ("jpg" if kind == "photo" else "bin")
        stored = StoredFile(
            file_id=f"SBX-{kind}-{number:06d}",
            file_unique_id=f"SBXU{number:06d}",
            file_path=f"{folder}/file_{number}.{suffix}",
            filename=filename,
            mime_type=mime_type,
            content=content,
            size_known=size_known,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _message_obj(self, message: SentMessage) -> dict[str, Any]:
        """The Message object Telegram returns: plain text (markup already rendered), inline keyboard only."""
        chat = self._chats.get(message.chat_id)
        obj: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self._bot_user,
            "chat": chat_obj(message.chat_id, chat.first_name if chat else None),
            "date": message.date,
        }
        shown = plain_text(message.text, message.parse_mode) if message.text else None
        if message.kind == "text":
            obj["text"] = shown or ""
        elif shown:
            obj["caption"] = shown
        if message.file is not None:
            f = message.file
            if message.kind == "photo":
                obj["photo"] = photo_sizes(f.file_id, f.file_unique_id, f.size)
            else:
                obj["document"] = document_obj(
                    f.file_id, f.file_unique_id, f.filename or "file", f.mime_type or "application/octet-stream", f.size
                )
        if message.reply_markup and "inline_keyboard" in message.reply_markup:
            obj["reply_markup"] = message.reply_markup
        if message.edits:
            obj["edit_date"] = int(time.time())
        return obj

    # ------------------------------------------------------------------ users act (thread-safe)

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "User",
        language_code: str = "en",
        chat_id: int | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """A user writes ``text``; a leading ``/command`` gets its bot_command entity as Telegram sets it."""
        extra: dict[str, Any] = {"text": text}
        if entities := command_entities(text):
            extra["entities"] = entities
        return self._user_message(user_id, first_name, language_code, chat_id, extra, text, username=username)

    def send_contact(
        self,
        user_id: int,
        phone_number: str,
        *,
        contact_user_id: int | None | EllipsisType = ...,
        first_name: str = "User",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Share a contact; default is the sender's own (user_id set). ``None`` or another id models someone else's."""
        contact: dict[str, Any] = {"phone_number": phone_number, "first_name": first_name}
        owner = user_id if contact_user_id is ... else contact_user_id
        if owner is not None:
            contact["user_id"] = owner
        return self._user_message(user_id, first_name, language_code, None, {"contact": contact}, f"[contact: {phone_number}]")

    def send_document(
        self,
        user_id: int,
        filename: str,
        content: bytes,
        *,
        caption: str | None = None,
        mime_type: str = "text/csv",
        first_name: str = "User",
        chat_id: int | None = None,
        size_known: bool = True,
    ) -> dict[str, Any]:
        """Upload a file as a user; the bot can getFile and download it. With `size_known=False`
        the document and getFile leave `file_size` out, as a self-hosted Bot API server may."""
        with self._lock:
            stored = self._store_file("document", filename, mime_type, content, size_known=size_known)
        document = document_obj(stored.file_id, stored.file_unique_id, filename, mime_type, stored.size)
        if not size_known:
            del document["file_size"]
        extra: dict[str, Any] = {"document": document}
        if caption:
            extra["caption"] = caption
        label = f"[document: {filename}]" + (f" {caption}" if caption else "")
        return self._user_message(user_id, first_name, "en", chat_id, extra, label)

    def send_sticker(self, user_id: int, *, first_name: str = "User", chat_id: int | None = None) -> dict[str, Any]:
        """Something no text handler expects, to test fallbacks."""
        with self._lock:
            number = self._next_file
            self._next_file += 1
        extra = {"sticker": sticker_obj(f"SBX-sticker-{number:06d}", f"SBXU{number:06d}")}
        return self._user_message(user_id, first_name, "en", chat_id, extra, "[sticker]")

    def edit_text(self, user_id: int, message_id: int, new_text: str, *, chat_id: int | None = None) -> dict[str, Any]:
        """The user edits one of their earlier messages (an ``edited_message`` update)."""
        with self._lock:
            chat = self._chat(chat_id if chat_id is not None else user_id)
            original = chat.user_messages.get(message_id)
            if original is None:
                raise LookupError(f"user message {message_id} not found in chat {chat.chat_id}")
            edited = {k: v for k, v in original.items() if k not in ("text", "entities")}
            edited.update(text=new_text, edit_date=int(time.time()))
            if entities := command_entities(new_text):
                edited["entities"] = entities
            chat.user_messages[message_id] = edited
            chat.transcript.append(_TranscriptEntry("user", f"[edited] {new_text}"))
            return self._enqueue({"edited_message": edited})

    def press_button(self, user_id: int, message: MessageRef, callback_data: str, *, first_name: str = "User") -> dict[str, Any]:
        """Press an inline button as currently shown; raises ``ButtonNotFound`` if the keyboard no longer has it.

        ``message`` may be a ``SentMessage`` or the aiogram ``Message`` the bot got back.
        """
        chat_id, message_id = _ref(message)
        with self._lock:
            current = self._current(chat_id, message_id)
            if current is None or current.deleted or not current.has_callback(callback_data):
                shown = current.inline_buttons() if current and not current.deleted else []
                raise ButtonNotFound(f"message {message_id} in chat {chat_id} has no button {callback_data!r}; shows {shown}")
            label = next(b.text for b in current.buttons() if b.callback_data == callback_data)
            return self._callback(user_id, first_name, current, callback_data, f"[button: {label}]")

    def press_button_with_text(
        self, user_id: int, message: MessageRef, text_contains: str, *, first_name: str = "User"
    ) -> dict[str, Any]:
        """Press the first inline button whose label contains ``text_contains`` on the message's current keyboard."""
        chat_id, message_id = _ref(message)
        with self._lock:
            current = self._current(chat_id, message_id)
        if current is None or current.deleted:
            raise ButtonNotFound(f"message {message_id} in chat {chat_id} is gone")
        target = current.button(text_contains)
        if target.callback_data is None:
            raise ButtonNotFound(f"button {target.text!r} has no callback_data")
        return self.press_button(user_id, current, target.callback_data, first_name=first_name)

    def force_callback(self, user_id: int, message: MessageRef, data: str, *, first_name: str = "User") -> dict[str, Any]:
        """Inject a callback with arbitrary data (forged, stale or replayed), as a malicious client could."""
        chat_id, message_id = _ref(message)
        with self._lock:
            current = self._current(chat_id, message_id) or SentMessage(
                chat_id, message_id, "", None, None, time.monotonic(), int(time.time())
            )
            return self._callback(user_id, first_name, current, data, f"[forged callback: {data}]")

    def inline_query(self, user_id: int, query: str, *, first_name: str = "User", language_code: str = "en") -> dict[str, Any]:
        with self._lock:
            query_id = self._take_query_id()
            self._inline_queries[query_id] = PendingQuery(user_id=user_id, query=query)
            payload = {"id": query_id, "from": user_obj(user_id, first_name, language_code), "query": query, "offset": ""}
            return self._enqueue({"inline_query": payload})

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update (any shape); ``update_id`` is assigned here."""
        with self._lock:
            return self._enqueue(copy.deepcopy({k: v for k, v in update.items() if k != "update_id"}))

    def _user_message(
        self,
        user_id: int,
        first_name: str,
        language_code: str,
        chat_id: int | None,
        extra: dict[str, Any],
        transcript_text: str,
        *,
        username: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            chat = self._chat(chat_id if chat_id is not None else user_id, first_name)
            sender = user_obj(user_id, first_name, language_code)
            if username:
                sender["username"] = username
            message = {
                "message_id": chat.take_message_id(),
                "from": sender,
                "chat": chat_obj(chat.chat_id, chat.first_name),
                "date": int(time.time()),
                **extra,
            }
            chat.user_messages[message["message_id"]] = message
            chat.transcript.append(_TranscriptEntry("user", transcript_text))
            return self._enqueue({"message": message})

    def _callback(self, user_id: int, first_name: str, message: SentMessage, data: str, label: str) -> dict[str, Any]:
        query_id = self._take_query_id()
        self._callback_queries[query_id] = PendingQuery(
            user_id=user_id, chat_id=message.chat_id, message_id=message.message_id, data=data
        )
        self._chat(message.chat_id).transcript.append(_TranscriptEntry("user", label))
        payload = {
            "id": query_id,
            "from": user_obj(user_id, first_name),
            "message": self._message_obj(message),
            "chat_instance": str(message.chat_id),
            "data": data,
        }
        return self._enqueue({"callback_query": payload})

    def _take_query_id(self) -> str:
        query_id = f"{self._next_query_id:012d}"
        self._next_query_id += 1
        return query_id

    def _current(self, chat_id: int, message_id: int) -> SentMessage | None:
        chat = self._chats.get(chat_id)
        return chat.bot_messages.get(message_id) if chat else None

    def _enqueue(self, update: dict[str, Any]) -> dict[str, Any]:
        """Caller holds the lock; waiters are woken via the thread-safe notifiers."""
        update["update_id"] = self._next_update_id
        self._next_update_id += 1
        self._queue.append(_QueuedUpdate(update))
        self._queue_version += 1
        self._queue_changed.notify()
        self._traffic.notify()
        return copy.deepcopy(update)

    # ------------------------------------------------------------------ what the bot did

    @property
    def calls(self) -> list[ApiCall]:
        """Snapshot of every request so far, in completion order (``at`` is the arrival time)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[ApiCall]:
        wanted = method.lower()
        with self._lock:
            return [c for c in self._calls if c.method.lower() == wanted]

    def paid_broadcasts(self) -> int:
        """How many accepted calls asked for `allow_paid_broadcast` (each costs Stars on Telegram)."""
        with self._lock:
            return sum(1 for c in self._calls if c.ok and c.paid_broadcast)

    def messages(self, chat_id: int | None = None, *, include_deleted: bool = True) -> list[SentMessage]:
        """Bot messages in send order, each in its current state (after edits)."""
        with self._lock:
            if chat_id is not None:
                chat = self._chats.get(chat_id)
                found = list(chat.bot_messages.values()) if chat else []
            else:
                found = [self._chats[c].bot_messages[m] for c, m in self._message_order]
        return [m for m in found if include_deleted or not m.deleted]

    def user_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """What users wrote in the chat (the Message objects the bot got), oldest first; with
        `messages` and the shared message ids this is the whole chat, as a client shows it."""
        with self._lock:
            chat = self._chats.get(chat_id)
            return copy.deepcopy(list(chat.user_messages.values())) if chat else []

    def last_message(self, chat_id: int) -> SentMessage:
        found = self.messages(chat_id)
        if not found:
            raise LookupError(f"the bot has sent nothing to chat {chat_id}")
        return found[-1]

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        with self._lock:
            chat = self._chats.get(chat_id)
            found = chat.bot_messages.get(message_id) if chat else None
        if found is None:
            raise LookupError(f"no bot message {message_id} in chat {chat_id}")
        return found

    def callback_answers(self, *, chat_id: int | None = None, user_id: int | None = None) -> list[CallbackAnswer]:
        with self._lock:
            answers = list(self._callback_answers)
        return [
            a for a in answers if (chat_id is None or a.chat_id == chat_id) and (user_id is None or a.user_id == user_id)
        ]

    def unanswered_callbacks(self) -> list[str]:
        """Presses the bot never answered: the user's client would show a spinner until it times out."""
        with self._lock:
            return [qid for qid, q in self._callback_queries.items() if not q.answered]

    def inline_answers(self, *, user_id: int | None = None) -> list[InlineAnswer]:
        with self._lock:
            return [a for a in self._inline_answers if user_id is None or a.user_id == user_id]

    def commands(self, scope: dict[str, Any] | str | None = None, language_code: str = "") -> list[dict[str, Any]]:
        """Commands set for exactly this scope (dict, or just its type: "all_private_chats") and language."""
        with self._lock:
            return list(self._commands.get((_scope_key(scope), language_code), []))

    def file(self, file_id: str) -> StoredFile:
        with self._lock:
            return self._files[file_id]

    @property
    def webhook_url(self) -> str:
        return self._webhook_url

    @property
    def webhook_secret(self) -> str:
        return self._webhook_secret

    def transcript(self, chat_id: int, *, show_buttons: bool = False) -> list[tuple[str, str]]:
        """The chat as a person would read it: ("user", text | "[button: label]" | ...) and ("bot", text)."""
        with self._lock:
            chat = self._chats.get(chat_id)
            entries = list(chat.transcript) if chat else []
        rendered: list[tuple[str, str]] = []
        for entry in entries:
            text = entry.text
            if show_buttons and entry.buttons:
                text += "\n" + " ".join(f"[{label}]" for label in entry.buttons)
            rendered.append((entry.who, text))
        return rendered

    # ------------------------------------------------------------------ waiting (event-driven)

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Await the first truthy ``predicate()``, re-checked after every API call or injected update."""
        return await self._traffic.wait_for(predicate, timeout)

    async def wait_for_messages(self, chat_id: int, count: int, timeout: float = 5.0) -> list[SentMessage]:
        """Wait until the bot has sent ``count`` or more messages to ``chat_id``; return them all."""

        def enough() -> list[SentMessage] | None:
            found = self.messages(chat_id)
            return found if len(found) >= count else None

        try:
            return await self.wait_for(enough, timeout)
        except TimeoutError:
            have = [m.plain_text for m in self.messages(chat_id)]
            raise TimeoutError(
                f"chat {chat_id}: expected >= {count} bot messages within {timeout}s, got {len(have)}: {have}"
            ) from None

    def is_polling(self) -> bool:
        """True while a getUpdates request is open (long-polling) on the server."""
        return self._open_polls > 0

    async def wait_until_polling(self, timeout: float = 5.0) -> None:
        """Wait until the bot has a getUpdates open, e.g. to know a just-started Dispatcher is listening."""
        await self.wait_for(self.is_polling, timeout)

    def pending_updates(self) -> int:
        """Updates injected but not yet handed to the bot by any getUpdates."""
        with self._lock:
            return sum(1 for item in self._queue if not item.delivered)

    async def wait_until_consumed(self, timeout: float = 5.0) -> None:
        """Wait until every injected update was confirmed by a *later* getUpdates (offset past it).

        With aiogram's polling that next request is only made after the batch was fed to the
        dispatcher, so: with ``handle_as_tasks=False`` every handler for these updates has
        finished; with the default ``handle_as_tasks=True`` every handler task has been created
        and started, but may still be awaiting I/O. To await a handler's effect use
        ``wait_for_messages``/``wait_for``. Updates filtered out by ``allowed_updates`` count as consumed.
        """
        try:
            await self.wait_for(lambda: not self._queue, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{len(self._queue)} injected updates not confirmed within {timeout}s "
                f"({self.pending_updates()} never fetched) - is the dispatcher polling?"
            ) from None

    # ------------------------------------------------------------------ failure injection

    def fail_next(
        self,
        method: str = "sendMessage",
        *,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        count: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` ("*" = any) fail; optionally only for one chat."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        rule = FailureRule(method.lower(), status, description, retry_after, count, chat_id)
        with self._lock:
            self._failures.append(rule)

    def go_silent(self, method: str = "*") -> None:
        """Calls of ``method`` ("*" = any) get no answer until ``answer_again``: the client waits
        until its own timeout, as with a Bot API server or a network that hangs."""
        self._silent.add(method.lower())

    def answer_again(self) -> None:
        """End ``go_silent``: the waiting calls are answered, and new ones at once."""
        self._silent.clear()

    def block_chat(self, chat_id: int) -> None:
        """The user blocked the bot: every call targeting the chat gets 403."""
        with self._lock:
            self._blocked.add(chat_id)

    def unblock_chat(self, chat_id: int) -> None:
        with self._lock:
            self._blocked.discard(chat_id)

    def unknown_chat(self, chat_id: int) -> None:
        """The chat never talked to the bot (or was deleted): calls targeting it get 400 chat not found."""
        with self._lock:
            self._unknown.add(chat_id)

    def clear_failures(self) -> None:
        """Drop scripted failures and blocked/unknown chats."""
        with self._lock:
            self._failures.clear()
            self._blocked.clear()
            self._unknown.clear()

    def reset_traffic(self) -> None:
        """Forget what the bot did (calls, sent messages, answers, transcripts) but keep chats' id counters,
        queued updates, files, commands and scripted failures, e.g. between benchmark phases."""
        with self._lock:
            self._calls.clear()
            self._message_order.clear()
            self._callback_answers.clear()
            self._inline_answers.clear()
            for chat in self._chats.values():
                chat.bot_messages.clear()
                chat.transcript.clear()


def _ref(message: MessageRef) -> tuple[int, int]:
    if isinstance(message, SentMessage):
        return message.chat_id, message.message_id
    return message.chat.id, message.message_id


def _json_response(payload: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=json.dumps(payload).encode(), status=status, content_type="application/json")


def _validated_text(text: Any, parse_mode: Any, limit: int, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, f"Bad Request: {what} text is empty")
    if isinstance(parse_mode, str) and parse_mode.lower() == "html":
        try:
            validate_html(text)
        except EntityParseError as err:
            raise ApiError(400, str(err)) from None
    if len(plain_text(text, parse_mode if isinstance(parse_mode, str) else None)) > limit:
        raise ApiError(400, f"Bad Request: {what} is too long")
    return text


def _validated_markup(markup: Any) -> dict[str, Any] | None:
    """Reject keyboards Telegram rejects, notably callback_data over 64 bytes (a classic production bug)."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not (1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES):
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if len(button) == 1:
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
    return markup


def _labels(markup: dict[str, Any] | None) -> tuple[str, ...]:
    return tuple(b.text for b in buttons_of(markup))


def _transcript_text(message: SentMessage) -> str:
    body = message.plain_text
    if message.kind == "photo":
        return f"[photo] {body}".rstrip()
    if message.kind == "document":
        name = message.file.filename if message.file else "file"
        return f"[document: {name}] {body}".rstrip()
    return body


__all__ = ["ApiError", "BotApiSandbox"]
