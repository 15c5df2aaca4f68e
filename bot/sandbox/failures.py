"""Scripted failures of the fake Bot API: the next calls fail with a status, a method hangs,
a user blocked the bot or a chat is unknown. Checked under the lock on every call."""

from __future__ import annotations

from typing import Any

from bot.sandbox.errors import BLOCKED, CHAT_NOT_FOUND, ApiError
from bot.sandbox.models import FailureRule
from bot.sandbox.state import SandboxState

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class ScriptedFailures(SandboxState):
    """What a test scripts to go wrong; `_check_failures` applies it to each call."""

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
