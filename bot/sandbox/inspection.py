"""What the bot did, as a test asks it: the calls, the messages in their current state, the
answers to queries, the commands, the transcript a person would read; and waiting for it, woken by
every call and injected update rather than polling a clock."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from bot.sandbox.models import ApiCall, CallbackAnswer, InlineAnswer, SentMessage, StoredFile
from bot.sandbox.state import SandboxState, scope_key

T = TypeVar("T")


class Inspection(SandboxState):
    """Snapshots taken under the lock: safe to read from any thread."""

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
            return list(self._commands.get((scope_key(scope), language_code), []))

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
