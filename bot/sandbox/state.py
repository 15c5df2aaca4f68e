"""What the fake Telegram remembers: chats and their messages, the update queue, files, pending
queries, commands, scripted failures, and the one lock that guards it all (the server may run on
its own thread while tests act from another loop). `SandboxState` is the base every part of
`BotApiSandbox` (bot/sandbox/server.py) builds on; its helpers are the ones more than one part
uses (a chat, a stored file, the Message object Telegram returns, a queued update).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.formatting import plain_text
from bot.sandbox.models import (
    ApiCall,
    CallbackAnswer,
    FailureRule,
    InlineAnswer,
    PendingQuery,
    SentMessage,
    StoredFile,
)
from bot.sandbox.notify import ChangeNotifier
from bot.sandbox.objects import bot_user_obj, chat_obj, document_obj, photo_sizes


@dataclass(slots=True)
class _QueuedUpdate:
    update: dict[str, Any]
    delivered: bool = False


@dataclass(slots=True)
class TranscriptEntry:
    who: str
    text: str
    buttons: tuple[str, ...] = ()


@dataclass(slots=True)
class ChatState:
    """Per-chat state; Telegram numbers messages per private chat for both sides, so one counter."""

    chat_id: int
    first_name: str | None = None
    next_message_id: int = 1
    bot_messages: dict[int, SentMessage] = field(default_factory=dict)
    user_messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    transcript: list[TranscriptEntry] = field(default_factory=list)

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


def scope_key(scope: Any) -> str:
    """Commands are stored per (scope, language); canonical JSON makes dict scopes hashable."""
    if scope is None:
        scope = {"type": "default"}
    elif isinstance(scope, str):
        scope = {"type": scope}
    return json.dumps(scope, sort_keys=True)


class SandboxState:
    """The shared state and the lock; see the parts in http.py, methods.py, users.py,
    inspection.py and failures.py."""

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
        self._reset_state()

    def _reset_state(self) -> None:
        self._calls: list[ApiCall] = []
        self._chats: dict[int, ChatState] = {}
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

    def _chat(self, chat_id: int, first_name: str | None = None) -> ChatState:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = ChatState(chat_id, first_name if chat_id > 0 else None)
        return chat

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
