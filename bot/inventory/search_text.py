"""Text handling for product search: normalisation, tokens and pinyin.

Everything here is pure and deterministic so the index can recompute the same
tokens for a card at build time and for a query at search time.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from types import ModuleType

from bot.inventory.pinyin_readings import import_lean_pypinyin

# Raw input is sliced before NFKC so a pasted novel costs nothing; the
# normalised query is cut again because nobody types a 65-char product name.
MAX_RAW_QUERY_CHARS = 256
MAX_QUERY_CHARS = 64
MAX_QUERY_TOKENS = 8

# Prefix of pinyin-initials tokens, so "cy" (唇釉) never collides with an
# English token "cy" in the same postings dictionary.
INITIALS_MARK = "^"

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
# A "word" is a run of letters/digits that is not CJK; CJK runs are handled
# separately because Chinese has no spaces between words.
_TOKEN = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+")
_ALPHA_DIGIT_SPLIT = re.compile(r"[^\W\d_]+|\d+")
_ASCII_LETTERS = re.compile(r"[a-z]+")
_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC + casefold, control/format characters become spaces, spaces collapse.

    NFKC turns full-width ``ＬＩＰ－００４２`` (Chinese IME) into ``lip-0042``.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isprintable():  # rare; the per-character scan is the slow path
        text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    return _WHITESPACE.sub(" ", text).strip()


def normalise_query(raw: str) -> str:
    return normalise(raw[:MAX_RAW_QUERY_CHARS])[:MAX_QUERY_CHARS].strip()


def compact_sku(sku_norm: str) -> str:
    """``lip-00042`` / ``lip 00042`` / ``LIP00042`` all compare equal."""
    return "".join(ch for ch in sku_norm if ch.isalnum())


def is_cjk(token: str) -> bool:
    return bool(_CJK_RUN.fullmatch(token))


def is_ascii_word(token: str) -> bool:
    return bool(_ASCII_LETTERS.fullmatch(token))


@cache
def _pypinyin() -> ModuleType:
    """pypinyin, imported at the first Chinese name (a shop without any never pays for it), with
    only the phrase readings that change a toneless reading (bot/inventory/pinyin_readings.py)."""
    return import_lean_pypinyin()


@lru_cache(maxsize=65536)
def run_pinyin(run: str) -> tuple[str, ...]:
    """Toneless pinyin per character of a CJK run (phrase-aware for polyphones).

    pypinyin costs ~50 µs per name; catalogs repeat the same runs (brands,
    product types), so caching per run makes a 100k build affordable.
    """
    pypinyin = _pypinyin()
    normal = pypinyin.Style.NORMAL
    syllables = pypinyin.lazy_pinyin(run, style=normal, errors="ignore")
    # errors="ignore" may drop unknown characters; keep the 1:1 alignment we
    # rely on for pair tokens by falling back to the character itself.
    if len(syllables) != len(run):
        syllables = [pypinyin.lazy_pinyin(ch, style=normal, errors=lambda c: c)[0] for ch in run]
    # A few hundred distinct syllables among the ~150k a 100k catalog's names read as.
    return tuple(map(sys.intern, syllables))


def _cjk_tokens(run: str) -> Iterator[str]:
    yield from run  # single characters, so a one-character query works
    for i in range(len(run) - 1):
        yield run[i : i + 2]
    syllables = run_pinyin(run)
    yield from syllables
    for i in range(len(syllables) - 1):
        yield syllables[i] + syllables[i + 1]  # "chunyou" for 唇釉
        yield INITIALS_MARK + syllables[i][0] + syllables[i + 1][0]  # "^cy"


def _word_tokens(word: str) -> Iterator[str]:
    yield word
    parts = _ALPHA_DIGIT_SPLIT.findall(word)
    if len(parts) > 1:  # "iphone15" is also "iphone" + "15"
        yield from parts


def index_tokens(texts: Iterable[str]) -> tuple[str, ...]:
    """All distinct tokens a product is findable by, from its normalised fields.

    Interned and returned as a tuple: 100k products x ~40 tokens would
    otherwise hold millions of duplicate strings and per-product hash tables.
    """
    tokens: set[str] = set()
    for text in texts:
        for match in _TOKEN.finditer(text):
            token = match.group()
            tokens.update(_cjk_tokens(token) if is_cjk(token) else _word_tokens(token))
    return tuple(sys.intern(t) for t in tokens)


def query_tokens(query: str) -> list[str]:
    """Tokens of a normalised query; CJK runs become bigrams (selective) or one char."""
    out: list[str] = []
    for match in _TOKEN.finditer(query):
        token = match.group()
        if is_cjk(token) and len(token) > 1:
            out.extend(token[i : i + 2] for i in range(len(token) - 1))
        else:
            out.append(token)
    return list(dict.fromkeys(out))[:MAX_QUERY_TOKENS]


@dataclass(frozen=True, slots=True)
class PinyinForms:
    joined: str  # "yashilandai|chunyou" – CJK replaced by syllables, fields split by "|"
    initials: str  # "ysld|cy"


def pinyin_forms(texts: Iterable[str]) -> PinyinForms:
    joined: list[str] = []
    initials: list[str] = []
    for text in texts:
        syllables = [s for run in _CJK_RUN.findall(text) for s in run_pinyin(run)]
        if not syllables:
            continue
        joined.append(_CJK_RUN.sub(lambda m: "".join(run_pinyin(m.group())), text).replace(" ", ""))
        initials.append("".join(s[0] for s in syllables))
    return PinyinForms("|".join(joined), "|".join(initials))


def segment_pinyin(word: str, syllables: Container[str], max_len: int = 6) -> list[str] | None:
    """Split "hongsechunyou" into known syllables, fewest pieces first; None if impossible."""
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(1, n + 1):
        for start in range(max(0, end - max_len), end):
            head = best[start]
            if head is None or word[start:end] not in syllables:
                continue
            current = best[end]
            if current is None or len(head) + 1 < len(current):
                best[end] = [*head, word[start:end]]
    return best[n]


def pinyin_syllables(texts: Iterable[str]) -> tuple[str, ...]:
    """Syllables occurring in the texts; the index learns the query vocabulary from them."""
    return tuple({s for text in texts for run in _CJK_RUN.findall(text) for s in run_pinyin(run)})
