"""Builders for Bot API objects shaped exactly as Telegram sends them.

Kept apart from the server so the shapes live in one place and are easy to check
against https://core.telegram.org/bots/api; aiogram validates every one of them.
"""

from __future__ import annotations

from typing import Any

_GROUP_TITLE = "Sandbox group"


def user_obj(user_id: int, first_name: str = "User", language_code: str | None = "en") -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if language_code:
        user["language_code"] = language_code
    return user


def bot_user_obj(bot_id: int, username: str, first_name: str = "Stockbot Sandbox") -> dict[str, Any]:
    return {"id": bot_id, "is_bot": True, "first_name": first_name, "username": username}


def chat_obj(chat_id: int, first_name: str | None = None) -> dict[str, Any]:
    """Positive ids are private chats (Telegram's convention); negative ones groups/supergroups."""
    if chat_id > 0:
        chat: dict[str, Any] = {"id": chat_id, "type": "private"}
        if first_name:
            chat["first_name"] = first_name
        return chat
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "type": kind, "title": _GROUP_TITLE}


def command_entities(text: str) -> list[dict[str, Any]]:
    """Telegram marks a leading ``/command`` (with optional ``@botname``) as a bot_command entity."""
    if not text.startswith("/") or len(text) < 2:
        return []
    token = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": len(token.encode("utf-16-le")) // 2}]


def document_obj(file_id: str, unique_id: str, filename: str, mime_type: str, size: int) -> dict[str, Any]:
    return {
        "file_id": file_id,
        "file_unique_id": unique_id,
        "file_name": filename,
        "mime_type": mime_type,
        "file_size": size,
    }


def photo_sizes(file_id: str, unique_id: str, size: int) -> list[dict[str, Any]]:
    """Telegram returns several thumbnails; one size is enough for aiogram and for tests."""
    return [{"file_id": file_id, "file_unique_id": unique_id, "width": 800, "height": 600, "file_size": size}]


def sticker_obj(file_id: str, unique_id: str) -> dict[str, Any]:
    return {
        "file_id": file_id,
        "file_unique_id": unique_id,
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "👍",
    }


def update_type(update: dict[str, Any]) -> str:
    """The update's payload key (message, callback_query, ...), as matched against allowed_updates."""
    for key in update:
        if key != "update_id":
            return key
    return "unknown"
