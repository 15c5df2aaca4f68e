"""What the sender needs from Telegram, and the failures it tells apart; no aiogram here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol


class SendError(Exception):
    pass


class RetryAfter(SendError):
    """Flood control: nothing may be sent to anyone until `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"flood control: retry after {seconds} s")
        self.seconds = seconds


class Unreachable(SendError):
    """Blocked by the user, or the chat is gone: trying again would only fail again."""


class SlotMissed(SendError):
    """The send slot was over before the request could leave, so it was not sent: it needs a new
    slot, not a retry after a backoff."""


class Temporary(SendError):
    """Server or network trouble: worth a retry after a while."""


class Permanent(SendError):
    """Telegram refused this message (bad markup, too long): retrying cannot help."""


@dataclass(frozen=True, slots=True)
class File:
    """A picture or document to upload (a report's charts and CSV)."""

    kind: Literal["photo", "document"]
    filename: str
    content: bytes
    caption: str | None = None  # HTML; a document's own caption


class Transport(Protocol):
    async def send(
        self, chat_id: int, text: str, reply_markup: dict[str, Any] | None, *, paid: bool = False,
        deadline: float | None = None, on_departure: Callable[[], None] | None = None,
    ) -> int:
        """Send an HTML message and return Telegram's message id; raise a `SendError`.

        `paid`: as a paid broadcast (Telegram's `allow_paid_broadcast`, charged in Stars).
        `deadline` (time.monotonic()): raise `SlotMissed`, sending nothing, if the request would
        leave after it.
        `on_departure`: called once the request has left (its first bytes written), before the
        answer; a transport that cannot tell may not call it (the sender then waits for the end).
        """
        ...

    async def send_album(self, chat_id: int, photos: Sequence[File], caption: str | None) -> int:
        """Send photos as one album (one photo alone as a photo), the HTML caption under the
        first; return the first message's id; raise a `SendError`."""
        ...

    async def send_document(self, chat_id: int, document: File, caption: str | None) -> int:
        """Send one file as a document with an HTML caption; return its message id."""
        ...
