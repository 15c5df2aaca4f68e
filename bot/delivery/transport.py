"""What the sender needs from Telegram, and the failures it tells apart; no aiogram here."""

from __future__ import annotations

from typing import Any, Protocol


class SendError(Exception):
    pass


class RetryAfter(SendError):
    """Flood control: nothing may be sent to anyone until `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"flood control: retry after {seconds} s")
        self.seconds = seconds


class Unreachable(SendError):
    """Blocked by the user, or the chat is gone: trying again would only fail again."""


class Temporary(SendError):
    """Server or network trouble: worth a retry after a while."""


class Permanent(SendError):
    """Telegram refused this message (bad markup, too long): retrying cannot help."""


class Transport(Protocol):
    async def send(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None, *, paid: bool = False
    ) -> int:
        """Send an HTML message and return Telegram's message id; raise a `SendError`.

        `paid`: as a paid broadcast (Telegram's `allow_paid_broadcast`, charged in Stars).
        """
        ...
