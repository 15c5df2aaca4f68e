"""Inline keyboards as plain data, so services can attach buttons without importing aiogram.

Callback data is `prefix:field:field...`, the format of aiogram's `CallbackData.pack()`; the
handlers parse it with `CallbackData` classes and a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CALLBACK_LIMIT = 64  # bytes, Telegram's limit for callback data


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    data: str

    def __post_init__(self) -> None:
        if len(self.data.encode()) > CALLBACK_LIMIT:
            raise ValueError(f"callback data over {CALLBACK_LIMIT} bytes: {self.data!r}")


def pack(prefix: str, *fields: object) -> str:
    return ":".join([prefix, *("" if field is None else str(field) for field in fields)])


def keyboard(rows: Iterable[Sequence[Button]]) -> dict[str, Any] | None:
    """Telegram's InlineKeyboardMarkup JSON, or None for no buttons."""
    built = [[{"text": b.text, "callback_data": b.data} for b in row] for row in rows if row]
    return {"inline_keyboard": built} if built else None
