"""Telegram's HTML parse_mode rules, enforced the way the real server does.

A product name with a bare ``<`` or an unclosed ``<b>`` makes real Telegram reject
the whole message with "can't parse entities"; the sandbox rejects it too, so such
bugs show up in tests rather than in production.
"""

from __future__ import annotations

import html
import re

ALLOWED_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
        "a", "code", "pre", "blockquote", "tg-emoji", "tg-time",
    }
)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*)?)\s*>")
_ANY_TAG = re.compile(r"<[^<>]*>")


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; ``str()`` is the description Telegram would return."""


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def validate_html(text: str) -> None:
    """Raise ``EntityParseError`` where Telegram would answer 400 "can't parse entities"."""
    stack: list[str] = []
    pos = text.find("<")
    while pos != -1:
        match = _TAG.match(text, pos)
        if match is None:
            raise EntityParseError(
                f"Bad Request: can't parse entities: Unexpected end of name token at byte offset {_byte_offset(text, pos)}"
            )
        closing, name = match.group(1) == "/", match.group(2).lower()
        if name not in ALLOWED_TAGS:
            raise EntityParseError(
                f'Bad Request: can\'t parse entities: Unsupported start tag "{name}" at byte offset {_byte_offset(text, pos)}'
            )
        if not closing:
            stack.append(name)
        elif not stack or stack[-1] != name:
            expected = f'"</{stack[-1]}>"' if stack else "none"
            raise EntityParseError(
                f"Bad Request: can't parse entities: Unmatched end tag at byte offset {_byte_offset(text, pos)}, "
                f'expected {expected}, found "</{name}>"'
            )
        else:
            stack.pop()
        pos = text.find("<", match.end())
    if stack:
        raise EntityParseError(
            f'Bad Request: can\'t parse entities: Can\'t find end tag corresponding to start tag "{stack[-1]}"'
        )


def plain_text(text: str, parse_mode: str | None) -> str:
    """What the user reads: for HTML, tags dropped and entities unescaped; other modes are returned as is."""
    if parse_mode and parse_mode.lower() == "html":
        return html.unescape(_ANY_TAG.sub("", text))
    return text
