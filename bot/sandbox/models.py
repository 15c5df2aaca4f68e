"""Immutable records the sandbox hands back to tests.

Everything here is a frozen snapshot: the server may run on another thread, so
tests must never hold a reference that the server mutates underneath them. An
edit replaces the stored ``SentMessage`` with a new one instead of changing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.formatting import plain_text


class ButtonNotFound(LookupError):
    """A test tried to press a button that the user cannot see (stale or missing keyboard)."""


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A multipart file part as received, so call logs show what was uploaded without raw sockets."""

    field: str
    filename: str
    content_type: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file known to the fake server, addressable by ``file_id`` and downloadable by ``file_path``."""

    file_id: str
    file_unique_id: str
    file_path: str
    filename: str | None
    mime_type: str | None
    content: bytes
    # A self-hosted Bot API server may leave a document's size out (and serves files past 20 MB).
    size_known: bool = True

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One HTTP request the bot made; ``at`` is ``time.monotonic()`` on arrival (for rate measurements)."""

    method: str
    params: dict[str, Any]
    at: float
    wall_time: float
    status: int
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def paid_broadcast(self) -> bool:
        """Sent with `allow_paid_broadcast` (Telegram charges Stars for it beyond the free limits)."""
        return self.params.get("allow_paid_broadcast") is True


@dataclass(frozen=True, slots=True)
class Button:
    """A keyboard button flattened out of reply_markup, so tests don't walk nested lists."""

    text: str
    callback_data: str | None = None
    url: str | None = None
    request_contact: bool = False
    row: int = 0
    column: int = 0
    inline: bool = True


@dataclass(frozen=True, slots=True)
class MessageVersion:
    """What a message looked like before an edit replaced it."""

    text: str | None
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    at: float


@dataclass(frozen=True, slots=True)
class SentMessage:
    """Current state of one message the bot sent; ``text`` is what the bot sent (markup included).

    For photos and documents ``text`` holds the caption. ``plain_text`` is what the
    user would read (HTML tags stripped, entities unescaped).
    """

    chat_id: int
    message_id: int
    text: str | None
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    sent_at: float
    date: int
    kind: str = "text"
    file: StoredFile | None = None
    edits: tuple[MessageVersion, ...] = ()
    deleted: bool = False

    @property
    def plain_text(self) -> str:
        return plain_text(self.text or "", self.parse_mode)

    @property
    def edited(self) -> bool:
        return bool(self.edits)

    def buttons(self) -> list[Button]:
        """All buttons of the attached keyboard (inline or reply), row by row."""
        return buttons_of(self.reply_markup)

    def inline_buttons(self) -> list[tuple[str, str | None]]:
        """``(text, callback_data)`` pairs of the inline keyboard, the shape most assertions want."""
        return [(b.text, b.callback_data) for b in self.buttons() if b.inline]

    def button(self, text_contains: str) -> Button:
        """First button whose label contains ``text_contains``; raises ``ButtonNotFound`` listing the labels."""
        for candidate in self.buttons():
            if text_contains in candidate.text:
                return candidate
        labels = [b.text for b in self.buttons()]
        raise ButtonNotFound(f"no button containing {text_contains!r} on message {self.message_id}; buttons: {labels}")

    def has_callback(self, callback_data: str) -> bool:
        return any(b.callback_data == callback_data for b in self.buttons() if b.inline)


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    """An answerCallbackQuery, joined with the press it answers so tests can match them."""

    callback_query_id: str
    user_id: int
    chat_id: int | None
    message_id: int | None
    data: str | None
    text: str | None
    show_alert: bool
    url: str | None
    at: float


@dataclass(frozen=True, slots=True)
class InlineAnswer:
    """An answerInlineQuery with the query it answers."""

    inline_query_id: str
    user_id: int
    query: str
    results: list[dict[str, Any]]
    cache_time: int | None
    is_personal: bool
    next_offset: str | None
    at: float


@dataclass(slots=True)
class FailureRule:
    """A scripted failure; mutable only inside the sandbox (under its lock) as ``remaining`` counts down."""

    method: str  # lower-cased Bot API method name or "*"
    status: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None = None

    def matches(self, method: str, chat_id: Any) -> bool:
        if self.method not in ("*", method):
            return False
        return self.chat_id is None or self.chat_id == chat_id


@dataclass(slots=True)
class PendingQuery:
    """A callback or inline query a user made, kept to validate (and record) the bot's answer."""

    user_id: int
    chat_id: int | None = None
    message_id: int | None = None
    data: str | None = None
    query: str = ""
    answered: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def buttons_of(markup: dict[str, Any] | None) -> list[Button]:
    """Flatten inline_keyboard / keyboard rows; reply keyboards may use bare strings as buttons."""
    if not markup:
        return []
    inline = "inline_keyboard" in markup
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    found: list[Button] = []
    for r, row in enumerate(rows):
        for c, raw in enumerate(row):
            item = {"text": raw} if isinstance(raw, str) else raw
            found.append(
                Button(
                    text=str(item.get("text", "")),
                    callback_data=item.get("callback_data"),
                    url=item.get("url"),
                    request_contact=bool(item.get("request_contact", False)),
                    row=r,
                    column=c,
                    inline=inline,
                )
            )
    return found
