"""Message texts: Jinja2 templates in `messages/<locale>/`, HTML parse mode, autoescaped.

A message is `messages/<locale>/<name>.html`; short strings (buttons, one-line replies) are keys
of the `messages/<locale>/*.toml` files (one per part of the bot), rendered with the same engine. Every locale has every name
and key (a test checks), so no user ever meets a missing text.

Telegram reads message text as HTML, but button labels, callback answers (toasts and alerts) and
inline result titles as plain text. `label()` is for HTML (values escaped, so "Salt & Pepper" is
sent as `Salt &amp; Pepper` and shown right); `plain()` is for the plain places (values verbatim,
the label's own markup tags dropped), where an escaped name would show as `&amp;`.
"""

from __future__ import annotations

import html
import re
import tomllib
from datetime import datetime, tzinfo
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TELEGRAM_TEXT_LIMIT = 4096
# The tags Telegram's HTML parse mode knows: a label's own markup, which plain text leaves out.
_MARKUP_TAG = re.compile(
    r"</?(?:b|strong|i|em|u|ins|s|strike|del|code|pre|a|span|tg-spoiler|tg-emoji|blockquote)\b[^>]*>"
)


def messages_dir() -> Path:
    """Where the texts are: inside the installed package, else `messages/` of a source checkout.

    A wheel carries them as `bot/messages` (see setup.py); an editable install or a checkout on
    PYTHONPATH reads the repository's own folder, so translators see their edits at once.
    """
    packaged = resources.files("bot") / "messages"
    if packaged.is_dir():
        return Path(str(packaged))  # `bot` is a regular package on disk, so this is a real folder
    return Path(__file__).resolve().parents[2] / "messages"


def money(value: Decimal | int | None) -> str:
    if value is None:
        return ""
    amount = value if isinstance(value, Decimal) else Decimal(value) / 100
    return f"{amount.quantize(Decimal('0.01')):,}"


def signed_money(value: Decimal) -> str:
    return ("+" if value > 0 else "−" if value < 0 else "±") + money(abs(value))


class Templates:
    def __init__(self, root: Path | None = None, *, zone: tzinfo | str = "UTC") -> None:
        self.root = root = root or messages_dir()
        self.zone = ZoneInfo(zone) if isinstance(zone, str) else zone
        self.locales = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
        self.env = Environment(
            loader=FileSystemLoader(root),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,  # a missing variable is a bug, not an empty string
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters.update(money=money, signed_money=signed_money, when=self._when, day=self._day)
        self.plain_env = self.env.overlay(autoescape=False)
        sources = {locale: self._load_labels(locale) for locale in self.locales}
        self._labels = {
            locale: {key: self.env.from_string(value) for key, value in labels.items()}
            for locale, labels in sources.items()
        }
        self._plain = {
            locale: {key: self.plain_env.from_string(_MARKUP_TAG.sub("", value)) for key, value in labels.items()}
            for locale, labels in sources.items()
        }

    def _load_labels(self, locale: str) -> dict[str, str]:
        labels: dict[str, str] = {}
        for path in sorted((self.root / locale).glob("*.toml")):
            with path.open("rb") as handle:
                for key, value in tomllib.load(handle).items():
                    if key in labels:
                        raise ValueError(f"label {key!r} is defined twice in {locale}/ ({path.name})")
                    labels[key] = value
        return labels

    def _when(self, value: datetime | None) -> str:
        return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M") if value else ""

    def _day(self, value: datetime | None) -> str:
        return value.astimezone(self.zone).strftime("%Y-%m-%d") if value else ""

    def locale(self, wanted: str | None, fallback: str = "en") -> str:
        return wanted if wanted in self.locales else fallback

    def render(self, locale: str, name: str, **context: Any) -> str:
        text = self.env.get_template(f"{self.locale(locale)}/{name}.html").render(
            locale=locale, t=lambda key, **kw: self.label(locale, key, **kw), **context
        )
        return fit(text.strip(), more=self.label(locale, "more_lines"))

    def label(self, locale: str, key: str, **context: Any) -> str:
        """A label for an HTML message: values escaped."""
        return self._labels[self.locale(locale)][key].render(**context)

    def plain(self, locale: str, key: str, **context: Any) -> str:
        """A label for a plain-text place (button, callback answer, alert): values verbatim."""
        return self._plain[self.locale(locale)][key].render(**context)

    def names(self, locale: str) -> set[str]:
        return {p.stem for p in (self.root / locale).glob("*.html")}

    def label_keys(self, locale: str) -> set[str]:
        return set(self._labels[locale])


def fit(text: str, *, limit: int = TELEGRAM_TEXT_LIMIT, more: str = "…") -> str:
    """Trim a long message at a line boundary so its markup stays balanced.

    Templates never open a tag on one line and close it on another, so whole lines are safe to
    drop; a single overlong line is cut and its tags dropped rather than sent broken.
    """
    if len(text) <= limit:
        return text
    kept: list[str] = []
    used = len(more) + 1
    for line in text.split("\n"):
        if used + len(line) + 1 > limit:
            break
        kept.append(line)
        used += len(line) + 1
    if not kept:
        plain = html.unescape(re.sub(r"<[^>]+>", "", text))
        return html.escape(plain[: limit - len(more) - 10]) + more
    return "\n".join(kept + [more])

