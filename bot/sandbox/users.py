"""Users act on the fake Telegram (thread-safe): write, share a contact, upload a file, edit,
press buttons, ask inline queries, or inject any raw update. Each becomes a queued update the bot
fetches with getUpdates, and a line in the chat's transcript."""

from __future__ import annotations

import copy
import time
from types import EllipsisType
from typing import Any

from aiogram.types import Message

from bot.sandbox.models import ButtonNotFound, PendingQuery, SentMessage
from bot.sandbox.objects import chat_obj, command_entities, document_obj, sticker_obj, user_obj
from bot.sandbox.state import SandboxState, TranscriptEntry

MessageRef = SentMessage | Message  # what tests hold: the sandbox's record or aiogram's return value


class UserActions(SandboxState):
    """Each action returns the update as queued (with its update_id)."""

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "User",
        language_code: str = "en",
        chat_id: int | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """A user writes ``text``; a leading ``/command`` gets its bot_command entity as Telegram sets it."""
        extra: dict[str, Any] = {"text": text}
        if entities := command_entities(text):
            extra["entities"] = entities
        return self._user_message(user_id, first_name, language_code, chat_id, extra, text, username=username)

    def send_contact(
        self,
        user_id: int,
        phone_number: str,
        *,
        contact_user_id: int | None | EllipsisType = ...,
        first_name: str = "User",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Share a contact; default is the sender's own (user_id set). ``None`` or another id models someone else's."""
        contact: dict[str, Any] = {"phone_number": phone_number, "first_name": first_name}
        owner = user_id if contact_user_id is ... else contact_user_id
        if owner is not None:
            contact["user_id"] = owner
        return self._user_message(user_id, first_name, language_code, None, {"contact": contact}, f"[contact: {phone_number}]")

    def send_document(
        self,
        user_id: int,
        filename: str,
        content: bytes,
        *,
        caption: str | None = None,
        mime_type: str = "text/csv",
        first_name: str = "User",
        chat_id: int | None = None,
        size_known: bool = True,
    ) -> dict[str, Any]:
        """Upload a file as a user; the bot can getFile and download it. With `size_known=False`
        the document and getFile leave `file_size` out, as a self-hosted Bot API server may."""
        with self._lock:
            stored = self._store_file("document", filename, mime_type, content, size_known=size_known)
        document = document_obj(stored.file_id, stored.file_unique_id, filename, mime_type, stored.size)
        if not size_known:
            del document["file_size"]
        extra: dict[str, Any] = {"document": document}
        if caption:
            extra["caption"] = caption
        label = f"[document: {filename}]" + (f" {caption}" if caption else "")
        return self._user_message(user_id, first_name, "en", chat_id, extra, label)

    def send_sticker(self, user_id: int, *, first_name: str = "User", chat_id: int | None = None) -> dict[str, Any]:
        """Something no text handler expects, to test fallbacks."""
        with self._lock:
            number = self._next_file
            self._next_file += 1
        extra = {"sticker": sticker_obj(f"SBX-sticker-{number:06d}", f"SBXU{number:06d}")}
        return self._user_message(user_id, first_name, "en", chat_id, extra, "[sticker]")

    def edit_text(self, user_id: int, message_id: int, new_text: str, *, chat_id: int | None = None) -> dict[str, Any]:
        """The user edits one of their earlier messages (an ``edited_message`` update)."""
        with self._lock:
            chat = self._chat(chat_id if chat_id is not None else user_id)
            original = chat.user_messages.get(message_id)
            if original is None:
                raise LookupError(f"user message {message_id} not found in chat {chat.chat_id}")
            edited = {k: v for k, v in original.items() if k not in ("text", "entities")}
            edited.update(text=new_text, edit_date=int(time.time()))
            if entities := command_entities(new_text):
                edited["entities"] = entities
            chat.user_messages[message_id] = edited
            chat.transcript.append(TranscriptEntry("user", f"[edited] {new_text}"))
            return self._enqueue({"edited_message": edited})

    def press_button(self, user_id: int, message: MessageRef, callback_data: str, *, first_name: str = "User") -> dict[str, Any]:
        """Press an inline button as currently shown; raises ``ButtonNotFound`` if the keyboard no longer has it.

        ``message`` may be a ``SentMessage`` or the aiogram ``Message`` the bot got back.
        """
        chat_id, message_id = _ref(message)
        with self._lock:
            current = self._current(chat_id, message_id)
            if current is None or current.deleted or not current.has_callback(callback_data):
                shown = current.inline_buttons() if current and not current.deleted else []
                raise ButtonNotFound(f"message {message_id} in chat {chat_id} has no button {callback_data!r}; shows {shown}")
            label = next(b.text for b in current.buttons() if b.callback_data == callback_data)
            return self._callback(user_id, first_name, current, callback_data, f"[button: {label}]")

    def press_button_with_text(
        self, user_id: int, message: MessageRef, text_contains: str, *, first_name: str = "User"
    ) -> dict[str, Any]:
        """Press the first inline button whose label contains ``text_contains`` on the message's current keyboard."""
        chat_id, message_id = _ref(message)
        with self._lock:
            current = self._current(chat_id, message_id)
        if current is None or current.deleted:
            raise ButtonNotFound(f"message {message_id} in chat {chat_id} is gone")
        target = current.button(text_contains)
        if target.callback_data is None:
            raise ButtonNotFound(f"button {target.text!r} has no callback_data")
        return self.press_button(user_id, current, target.callback_data, first_name=first_name)

    def force_callback(self, user_id: int, message: MessageRef, data: str, *, first_name: str = "User") -> dict[str, Any]:
        """Inject a callback with arbitrary data (forged, stale or replayed), as a malicious client could."""
        chat_id, message_id = _ref(message)
        with self._lock:
            current = self._current(chat_id, message_id) or SentMessage(
                chat_id, message_id, "", None, None, time.monotonic(), int(time.time())
            )
            return self._callback(user_id, first_name, current, data, f"[forged callback: {data}]")

    def inline_query(self, user_id: int, query: str, *, first_name: str = "User", language_code: str = "en") -> dict[str, Any]:
        with self._lock:
            query_id = self._take_query_id()
            self._inline_queries[query_id] = PendingQuery(user_id=user_id, query=query)
            payload = {"id": query_id, "from": user_obj(user_id, first_name, language_code), "query": query, "offset": ""}
            return self._enqueue({"inline_query": payload})

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update (any shape); ``update_id`` is assigned here."""
        with self._lock:
            return self._enqueue(copy.deepcopy({k: v for k, v in update.items() if k != "update_id"}))

    def _user_message(
        self,
        user_id: int,
        first_name: str,
        language_code: str,
        chat_id: int | None,
        extra: dict[str, Any],
        transcript_text: str,
        *,
        username: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            chat = self._chat(chat_id if chat_id is not None else user_id, first_name)
            sender = user_obj(user_id, first_name, language_code)
            if username:
                sender["username"] = username
            message = {
                "message_id": chat.take_message_id(),
                "from": sender,
                "chat": chat_obj(chat.chat_id, chat.first_name),
                "date": int(time.time()),
                **extra,
            }
            chat.user_messages[message["message_id"]] = message
            chat.transcript.append(TranscriptEntry("user", transcript_text))
            return self._enqueue({"message": message})

    def _callback(self, user_id: int, first_name: str, message: SentMessage, data: str, label: str) -> dict[str, Any]:
        query_id = self._take_query_id()
        self._callback_queries[query_id] = PendingQuery(
            user_id=user_id, chat_id=message.chat_id, message_id=message.message_id, data=data
        )
        self._chat(message.chat_id).transcript.append(TranscriptEntry("user", label))
        payload = {
            "id": query_id,
            "from": user_obj(user_id, first_name),
            "message": self._message_obj(message),
            "chat_instance": str(message.chat_id),
            "data": data,
        }
        return self._enqueue({"callback_query": payload})


def _ref(message: MessageRef) -> tuple[int, int]:
    if isinstance(message, SentMessage):
        return message.chat_id, message.message_id
    return message.chat.id, message.message_id
