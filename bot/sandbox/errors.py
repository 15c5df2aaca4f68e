"""Telegram's error answers: `ApiError` is raised inside the fake's method handlers and becomes the
``{"ok": false, ...}`` envelope aiogram turns into its genuine exceptions."""

from __future__ import annotations

from typing import Any

BLOCKED = "Forbidden: bot was blocked by the user"
CHAT_NOT_FOUND = "Bad Request: chat not found"


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
