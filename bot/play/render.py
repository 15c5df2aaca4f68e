"""What the page shows of a chat: the sandbox's records turned into plain JSON, safe to draw.

The bot's text is Telegram HTML; the page draws it as HTML, so it is rebuilt here from scratch:
only the tags Telegram allows, only the attributes they may carry (a link's http/https/tg/mailto
address), every piece of text escaped. Whatever a product name, a customer's note or a forged
message holds, nothing of it reaches the browser as markup. What users wrote is sent as text
and the page sets it as text.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import Any

from bot.sandbox import SentMessage

# Telegram's tag (and its synonyms) -> the tag the page draws, with the class that styles it.
_TAGS = {
    "b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "ins": "u", "s": "s", "strike": "s", "del": "s",
    "code": "code", "pre": "pre", "blockquote": "blockquote", "a": "a",
}
_SPOILERS = {"tg-spoiler", "span"}  # `<span class="tg-spoiler">`; any other span is just its text
_LINK_SCHEMES = ("http://", "https://", "tg://", "mailto:")


class _Sanitiser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str | None] = []  # what each open source tag became (None: dropped)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag in _TAGS:
            drawn = _TAGS[tag]
            if drawn == "a":
                href = (dict(attrs).get("href") or "").strip()
                if not href.lower().startswith(_LINK_SCHEMES):
                    self.open.append(None)
                    return
                self.out.append(f'<a href="{html.escape(href, quote=True)}" target="_blank" rel="noopener noreferrer">')
            else:
                self.out.append(f"<{drawn}>")
            self.open.append(drawn)
        elif tag in _SPOILERS and (tag == "tg-spoiler" or dict(attrs).get("class") == "tg-spoiler"):
            self.out.append('<span class="spoiler">')
            self.open.append("span")
        else:
            self.open.append(None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # Telegram has no empty elements (no <br>, no <img>)

    def handle_endtag(self, tag: str) -> None:
        if not self.open:
            return
        drawn = self.open.pop()
        if drawn is not None:
            self.out.append(f"</{drawn}>")

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        self.close()
        while self.open:  # the sandbox refuses unclosed tags; a bug must not leak styling anyway
            drawn = self.open.pop()
            if drawn is not None:
                self.out.append(f"</{drawn}>")
        return "".join(self.out)


def safe_html(text: str | None, parse_mode: str | None) -> str:
    """`text` as the page may draw it: Telegram HTML rebuilt from allowed tags, anything else escaped."""
    if not text:
        return ""
    if not parse_mode or parse_mode.lower() != "html":
        return html.escape(text, quote=False)
    sanitiser = _Sanitiser()
    sanitiser.feed(text)
    return sanitiser.result()


def bot_entry(message: SentMessage) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": message.message_id, "from": "bot", "kind": message.kind,
        "html": safe_html(message.text, message.parse_mode), "edited": message.edited, "buttons": [],
    }
    rows: dict[int, list[dict[str, Any]]] = {}
    for index, button in enumerate(message.buttons()):
        rows.setdefault(button.row, []).append({"text": button.text, "index": index, "url": button.url})
    entry["buttons"] = [rows[row] for row in sorted(rows)]
    if message.file is not None:
        entry["file"] = {"id": message.file.file_id, "name": message.file.filename or message.kind,
                         "size": message.file.size}
    return entry


def user_entry(message: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": message["message_id"], "from": "user", "text": message.get("text") or ""}
    if document := message.get("document"):
        entry["document"] = str(document.get("file_name") or "file")
        entry["text"] = message.get("caption") or ""
    elif contact := message.get("contact"):
        entry["text"] = f"☎ {contact.get('phone_number', '')}"
    elif "sticker" in message:
        entry["text"] = "[sticker]"
    return entry


def chat_entries(bot_messages: list[SentMessage], user_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat in order: bot and user messages share one id counter per chat, as on Telegram."""
    entries = [bot_entry(m) for m in bot_messages if not m.deleted] + [user_entry(m) for m in user_messages]
    return sorted(entries, key=lambda entry: entry["id"])
