"""Characters a name must not hold: they change how the text around them reads, unseen.

Control characters (line breaks and the like) and the invisible formatting characters: bidi
embeddings, overrides and isolates (U+202E turns `Velvet Red<U+202E>gpj.exe` around on screen),
direction marks, zero-width spaces, the byte-order mark, the soft hyphen, line and paragraph
separators. Zero-width joiners stay allowed: emoji sequences and several scripts need them.
Names with any of them are refused (imports, the API), and the refusal never repeats the value.
"""

from __future__ import annotations

import re

UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufeff\ufff9-\ufffb]"
)
REFUSAL = "contains control or invisible formatting characters"


def has_unsafe_chars(text: str) -> bool:
    return UNSAFE_CHARS.search(text) is not None


def without_unsafe_chars(text: str) -> str:
    """For text the bot cannot refuse (a Telegram user's own name)."""
    return UNSAFE_CHARS.sub("", text)
