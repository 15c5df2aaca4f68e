"""The Bot API methods the fake answers (called under the lock, one request at a time), with
Telegram's checks: text and caption limits, HTML entities, keyboards, "message is not modified",
stale callback queries."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.sandbox.errors import CHAT_NOT_FOUND, ApiError
from bot.sandbox.formatting import EntityParseError, plain_text, validate_html
from bot.sandbox.models import (
    CallbackAnswer,
    InlineAnswer,
    MessageVersion,
    SentMessage,
    StoredFile,
    UploadedFile,
    buttons_of,
)
from bot.sandbox.state import ChatState, SandboxState, TranscriptEntry, scope_key

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
API_METHODS = (
    "getMe", "sendMessage", "editMessageText", "editMessageReplyMarkup", "editMessageCaption",
    "answerCallbackQuery", "sendPhoto", "sendDocument", "sendMediaGroup", "getFile", "setMyCommands",
    "getMyCommands", "deleteMyCommands", "deleteWebhook", "setWebhook", "getWebhookInfo",
    "answerInlineQuery", "deleteMessage", "sendChatAction",
)  # getUpdates is served apart: it long-polls (bot/sandbox/http.py)


class BotApiMethods(SandboxState):
    """`_api_<method>(params)`: a method's result, or `ApiError` as Telegram would refuse it."""

    @functools.cached_property
    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The methods by lower-cased name, as Telegram matches them."""
        return {name.lower(): getattr(self, f"_api_{name}") for name in API_METHODS}

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
        self._commands[(scope_key(params.get("scope")), params.get("language_code") or "")] = commands
        return True

    def _api_getMyCommands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self._commands.get((scope_key(params.get("scope")), params.get("language_code") or ""), []))

    def _api_deleteMyCommands(self, params: dict[str, Any]) -> bool:
        self._commands.pop((scope_key(params.get("scope")), params.get("language_code") or ""), None)
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

    def _target_chat(self, params: dict[str, Any]) -> ChatState:
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
        chat: ChatState,
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
        chat.transcript.append(TranscriptEntry("bot", _transcript_text(message), _labels(markup)))
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
        chat.transcript.append(TranscriptEntry("bot", f"[edited] {_transcript_text(edited)}", _labels(markup)))
        return self._message_obj(edited)


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
