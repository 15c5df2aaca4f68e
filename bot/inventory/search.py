"""In-memory product search behind ``/stock <text>``.

Sales reps type SKUs, English or Chinese names, brands, categories or pinyin,
often with typos, on a phone. The index answers from memory in a few
milliseconds on a 100k catalog:

1. SKU: exact dict lookup, then prefix scan of a sorted list (``bisect``).
2. Text: an inverted index from tokens to product ids. Query tokens are
   expanded against the token vocabulary (exact, prefix, edit distance <= 1-2,
   pinyin segmentation, pinyin initials), so typo tolerance costs one
   rapidfuzz pass over the *vocabulary* (tens of thousands of distinct
   tokens) instead of over 100k names.
3. Only a few hundred candidates reach the expensive scorer (``WRatio``), which
   places each one in a tier: exact SKU > SKU prefix > name/brand/category
   contains the query > pinyin > fuzzy > pinyin initials.

Memory (issue 9: a 100k shop in 300 MB for the whole process): postings are
sorted ``array('I')`` of product ids (4 bytes a posting instead of ~65 in a
set), turned into sets only for the few tokens a query touches. What can be
derived from the card is not kept: a product's tokens and syllables are
recomputed when it changes, its compact SKU when the SKU order is searched.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import math
import sys
import threading
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass
from itertools import chain, islice

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from bot.inventory.cards import ProductCard
from bot.inventory.search_text import (
    INITIALS_MARK,
    compact_sku,
    index_tokens,
    is_ascii_word,
    is_cjk,
    normalise,
    normalise_query,
    pinyin_forms,
    pinyin_syllables,
    query_tokens,
    segment_pinyin,
)

MAX_LIMIT = 50
# Candidates that reach WRatio. Enough to fill any tier; small enough that the
# per-candidate Python work stays ~1-2 ms.
RERANK_CANDIDATES = 200
# Vocabulary expansion caps keep a short prefix ("li") from pulling in half
# the vocabulary.
# Partial matches (most but not all words) are counted in Python-ish speed
# (~40 ns per id); this caps that step at a few ms for 8 very common words.
PARTIAL_COUNT_BUDGET = 60_000
MAX_PREFIX_EXPANSIONS = 32
MAX_FUZZY_EXPANSIONS = 16
MIN_PREFIX_LEN = 3
MIN_FUZZY_LEN = 4
MIN_SKU_PREFIX_LEN = 3
# Below this WRatio a fuzzy hit is noise: "zxqv" would otherwise "match" anything.
FUZZY_CUTOFF = 72.0
# ...unless every query word matched some product word within a typo (0.8 each).
FULL_TYPO_COVERAGE = 0.8
# Bulk loads are applied in chunks so a search waits at most one chunk for the lock and the
# tokens of only one chunk exist at a time; below this many cards, upserts go one by one.
BULK_CHUNK = 5000
# Product ids are the 32-bit Integer primary key; an id outside uint32 (tests, odd callers)
# widens only the array it lands in.
_IDS = "I"
_WIDE_IDS = "q"

# Score bands: a hit's tier decides its band, quality (0..1) its place inside,
# so sorting by score alone yields the documented ranking.
_BAND_SKU = (100.0, 0.0)
_BAND_SKU_PREFIX = (90.0, 9.0)
_BAND_FIELD = (75.0, 14.9)
_BAND_PINYIN = (65.0, 9.9)
_BAND_FUZZY = (40.0, 24.9)
_BAND_INITIALS = (30.0, 9.9)


@dataclass(frozen=True, slots=True)
class SearchHit:
    product_id: int
    sku: str
    name: str
    score: float  # 0..100, higher is better; comparable only within one result list
    matched_on: str  # "sku" | "sku_prefix" | "name" | "brand" | "category" | "pinyin" | "pinyin_initials"


@dataclass(frozen=True, slots=True)
class _Entry:
    """A card plus the normalised text that ranking reads for each candidate.

    Brand, category and the empty pinyin of non-Chinese names are shared strings.
    """

    card: ProductCard
    name: str
    brand: str
    category: str
    pinyin: str  # "yashilandai|chunyou": CJK replaced by syllables, fields split by "|"
    initials: str  # "ysld|cy"

    @property
    def fields(self) -> tuple[str, str, str]:
        return self.name, self.brand, self.category


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An entry with what changing the index needs; lives only while it is applied."""

    entry: _Entry
    tokens: tuple[str, ...]  # distinct; a tuple is a fifth of a frozenset's size
    syllables: tuple[str, ...]


@dataclass(slots=True)
class _TokenMatch:
    exact: set[int]  # products containing the query token as-is
    loose: set[int]  # products reached via prefix / typo / pinyin expansion
    # Pinyin initials are a guess ("cy" is also just two letters), so they
    # only nominate candidates and never count as the word being matched.
    initials: set[int]

    def any(self) -> set[int]:
        return self.exact | self.loose | self.initials


def _make_entry(card: ProductCard, strings: dict[str, str] | None = None) -> _Entry:
    # Brands and categories repeat across thousands of cards: share one string.
    name = normalise(card.name)
    brand, category = sys.intern(normalise(card.brand or "")), sys.intern(normalise(card.category))
    pinyin = pinyin_forms((name, brand, category))
    if name == card.name:
        name = card.name
    elif strings is not None:
        name = strings.setdefault(name, name)
    return _Entry(
        card=card,
        name=name,
        brand=brand,
        category=category,
        pinyin=pinyin.joined,  # "" for most names: one shared object
        initials=pinyin.initials,
    )


def _prepare(card: ProductCard, strings: dict[str, str] | None = None) -> _Prepared:
    entry = _make_entry(card, strings)
    return _Prepared(entry, index_tokens(entry.fields), pinyin_syllables(entry.fields))


def _sku_key(card: ProductCard) -> str:
    return compact_sku(normalise(card.sku))


def _band(band: tuple[float, float], quality: float) -> float:
    base, span = band
    return round(base + span * min(max(quality, 0.0), 1.0), 3)


class SearchIndex:
    """Thread-safe: ``search_async`` scans in a worker thread while the event
    loop may ``upsert``; one lock serialises them (a scan holds it ~ms). Changes
    also take a writers' lock for their whole length, so a bulk load in a worker
    thread and an upsert or remove from the loop never interleave."""

    def __init__(self, cards: Iterable[ProductCard] = ()) -> None:
        self._lock = threading.RLock()
        self._writer = threading.RLock()
        self._entries: dict[int, _Entry] = {}
        self._postings: dict[str, array[int]] = {}  # token -> sorted product ids
        self._vocab: list[str] = []  # sorted distinct tokens: prefix bisect + fuzzy scan
        # Product ids sorted by (compact sku, id) serve exact *and* prefix lookups
        # by bisect; the compact SKU is recomputed for the ~17 ids a bisect visits.
        self._sku_order: array[int] = array(_IDS)
        self._syllables: Counter[str] = Counter()  # refcounted: a rename may retire one
        self._unsorted: set[str] = set()  # postings appended to during a bulk load
        self.upsert_many(cards)

    # --- maintenance ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def upsert(self, card: ProductCard) -> None:
        """O(tokens of the card) plus a memmove per *new* vocabulary token."""
        if not self._changes(card):
            return
        prepared = _prepare(card)  # pinyin work happens outside the lock
        with self._writer, self._lock:
            self._replace(self._entries.get(card.product_id), prepared, keep_sorted=True)

    def upsert_many(self, cards: Iterable[ProductCard], *, strings: dict[str, str] | None = None) -> None:
        """Many cards: in a bulk load (large against the index) lists are appended to and sorted
        once at the end; until then a search may miss a card of this load by prefix or SKU.
        `strings`, shared with the substitute index's load, makes equal names one object."""
        with self._writer:
            self._upsert_many(cards, strings)

    def _upsert_many(self, cards: Iterable[ProductCard], strings: dict[str, str] | None = None) -> None:
        size = len(cards) if isinstance(cards, Sized) else None
        pending = filter(self._changes, cards)
        bulk: bool | None = None
        while chunk := [_prepare(card, strings) for card in islice(pending, BULK_CHUNK)]:
            if bulk is None:  # re-sorting everything beats inserting one by one
                changed = len(chunk) if len(chunk) < BULK_CHUNK or size is None else size
                bulk = changed * 20 > len(self._entries)
            with self._lock:
                for prepared in chunk:
                    old = self._entries.get(prepared.entry.card.product_id)
                    self._replace(old, prepared, keep_sorted=not bulk)
        if bulk:  # None when nothing changed
            with self._lock:
                self._resort()

    def _changes(self, card: ProductCard) -> bool:
        """A refresh re-reads cards that did not change; those cost one comparison."""
        current = self._entries.get(card.product_id)
        return current is None or current.card != card

    def remove(self, product_id: int) -> None:
        with self._writer, self._lock:
            self._replace(self._entries.get(product_id), None, keep_sorted=True)

    def _resort(self) -> None:
        for token in self._unsorted:
            ids = self._postings.get(token)
            if ids is not None:
                self._postings[token] = array(ids.typecode, sorted(ids))
        self._unsorted.clear()
        self._vocab = sorted(self._postings)
        order = sorted(self._entries, key=self._sku_sort_key)
        self._sku_order = _ids_array(order)

    def _sku_sort_key(self, pid: int) -> tuple[str, int]:
        return _sku_key(self._entries[pid].card), pid

    def _replace(self, old: _Entry | None, new: _Prepared | None, *, keep_sorted: bool) -> None:
        """Apply only the token diff, so re-upserting an unchanged card is nearly free."""
        current = new.entry if new else old
        if current is None:
            return  # removing an unknown id is a no-op
        pid = current.card.product_id
        old_tokens = frozenset(index_tokens(old.fields)) if old else frozenset()
        new_tokens = frozenset(new.tokens) if new else frozenset()
        for token in old_tokens - new_tokens:
            self._unpost(token, pid, keep_sorted)
        for token in new_tokens - old_tokens:
            self._post(token, pid, keep_sorted)
        if old is not None:
            old_syllables = pinyin_syllables(old.fields)
            self._syllables.subtract(old_syllables)
            for syllable in old_syllables:
                if self._syllables[syllable] <= 0:
                    del self._syllables[syllable]  # keys() feeds query segmentation
            if keep_sorted:
                self._unindex_sku(pid)  # reads the old card, so before it goes
            del self._entries[pid]
        if new is not None:
            self._syllables.update(new.syllables)
            self._entries[pid] = new.entry
            if keep_sorted:
                self._index_sku(pid)

    def _post(self, token: str, pid: int, keep_sorted: bool) -> None:
        ids = self._postings.get(token)
        if ids is None:
            ids = self._postings[token] = array(_IDS)
            if keep_sorted:
                bisect.insort(self._vocab, token)
        if not keep_sorted:
            self._unsorted.add(token)
        self._postings[token] = _add_id(ids, pid, keep_sorted)

    def _unpost(self, token: str, pid: int, keep_sorted: bool) -> None:
        ids = self._postings.get(token)
        if ids is None:
            return
        if keep_sorted:  # outside a bulk load every list is sorted
            at = bisect.bisect_left(ids, pid)
            if at == len(ids) or ids[at] != pid:
                return
            del ids[at]
        else:
            try:
                ids.remove(pid)  # a C scan: microseconds even for the most common token
            except ValueError:
                return
        if ids:
            return
        del self._postings[token]
        if keep_sorted:
            at = bisect.bisect_left(self._vocab, token)
            if at < len(self._vocab) and self._vocab[at] == token:
                del self._vocab[at]

    def _index_sku(self, pid: int) -> None:
        at = bisect.bisect_left(self._sku_order, self._sku_sort_key(pid), key=self._sku_sort_key)
        self._sku_order = _add_id(self._sku_order, pid, keep_sorted=True, at=at)

    def _unindex_sku(self, pid: int) -> None:
        at = bisect.bisect_left(self._sku_order, self._sku_sort_key(pid), key=self._sku_sort_key)
        if at < len(self._sku_order) and self._sku_order[at] == pid:
            del self._sku_order[at]

    # --- search --------------------------------------------------------------

    def search(self, query: str, limit: int = 5) -> list[SearchHit]:
        """Best hits first; [] for empty, nonsense or absurd input. Never raises on odd text."""
        limit = min(limit, MAX_LIMIT)
        q = normalise_query(query) if isinstance(query, str) else ""
        if limit <= 0 or not q:
            return []
        with self._lock:
            hits = self._sku_hits(q, limit)
            if len(hits) < limit:
                self._text_hits(q, limit, hits)
        ranked = sorted(hits.values(), key=lambda h: (-h.score, len(h.name), h.product_id))
        return ranked[:limit]

    async def search_async(self, query: str, limit: int = 5) -> list[SearchHit]:
        """Same as ``search`` but keeps the event loop free while scanning."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.search, query, limit)

    def _hit(self, pid: int, band: tuple[float, float], quality: float, matched_on: str) -> SearchHit:
        card = self._entries[pid].card
        return SearchHit(card.product_id, card.sku, card.name, _band(band, quality), matched_on)

    def _sku_hits(self, q: str, limit: int) -> dict[int, SearchHit]:
        key = compact_sku(q)
        hits: dict[int, SearchHit] = {}
        if not key:
            return hits
        # A space means words, not a SKU; very short prefixes would list the
        # whole catalog in SKU order, which helps nobody.
        prefix_ok = " " not in q and len(key) >= MIN_SKU_PREFIX_LEN
        order = self._sku_order
        at = bisect.bisect_left(order, (key, -sys.maxsize), key=self._sku_sort_key)
        # Exact matches sort first among the keys starting with `key`.
        while at < len(order):
            pid = order[at]
            sku = _sku_key(self._entries[pid].card)
            if sku == key:
                hits[pid] = self._hit(pid, _BAND_SKU, 1.0, "sku")
            elif prefix_ok and sku.startswith(key) and len(hits) < limit:
                hits[pid] = self._hit(pid, _BAND_SKU_PREFIX, len(key) / len(sku), "sku_prefix")
            else:
                break
            at += 1
        return hits

    def _text_hits(self, q: str, limit: int, hits: dict[int, SearchHit]) -> None:
        tokens = query_tokens(q)
        if not tokens:
            return  # emoji / punctuation only
        matches = [self._match_token(t) for t in tokens]
        strict = _intersect([m.exact for m in matches])
        for pid in self._candidates(matches, strict, exclude=hits.keys()):
            hit = self._rank(pid, q, tokens, _coverage(pid, matches), pid in strict)
            if hit is not None:
                hits[pid] = hit

    def _match_token(self, token: str) -> _TokenMatch:
        exact = self._ids(token)
        if is_cjk(token):
            return _TokenMatch(exact, set(), set())  # CJK typos are covered by bigram overlap instead
        loose: list[Sequence[int]] = []
        # A word that exists in the catalog is taken as typed: fuzzy-expanding
        # "pro" or "set" costs ~1 ms each and only adds noise.
        fuzzy = self._fuzzy_expansions(token) if not exact else []
        for expanded in chain(self._prefix_expansions(token), fuzzy):
            loose.append(self._postings.get(expanded, ()))
        initials: set[int] = set()
        if is_ascii_word(token):
            loose.append(self._pinyin_run(token))
            initials = self._initials(token)
        return _TokenMatch(exact, set().union(*loose) - exact, initials)

    def _ids(self, token: str) -> set[int]:
        return set(self._postings.get(token, ()))

    def _prefix_expansions(self, token: str) -> list[str]:
        """Vocabulary tokens the query token starts: "lipst" -> "lipstick" (typing in progress)."""
        if len(token) < MIN_PREFIX_LEN:
            return []
        at = bisect.bisect_right(self._vocab, token)
        out: list[str] = []
        while at < len(self._vocab) and len(out) < MAX_PREFIX_EXPANSIONS and self._vocab[at].startswith(token):
            out.append(self._vocab[at])
            at += 1
        return out

    def _fuzzy_expansions(self, token: str) -> list[str]:
        """Vocabulary tokens within 1 edit (2 for 8+ chars); OSA counts a swap as one typo."""
        if len(token) < MIN_FUZZY_LEN - 1:
            return []
        max_edits = 1 if len(token) < 8 else 2
        found = process.extract(
            token, self._vocab, scorer=OSA.distance, processor=None,
            score_cutoff=max_edits, limit=MAX_FUZZY_EXPANSIONS,
        )
        if len(token) < MIN_FUZZY_LEN:
            # Three letters: most 1-edit neighbours are noise ("red" ~ "rd", "bed"),
            # but a dropped letter ("pnk", "nde") or swapped pair ("rde") is a
            # common thumb slip, so only those two count.
            return [c for c, _, _ in found if len(c) == len(token) + 1 or sorted(c) == sorted(token) != list(c)]
        return [choice for choice, distance, _ in found if distance > 0]

    def _pinyin_run(self, token: str) -> set[int]:
        """"hongsechunyou" -> products with the syllable pairs hongse, sechun, chunyou.

        Two-syllable words ("chunyou") are indexed directly as tokens, so this
        only matters for 3+ syllables; _rank verifies adjacency on the joined pinyin.
        """
        syllables = segment_pinyin(token, self._syllables.keys()) if len(token) >= 5 else None
        if not syllables or len(syllables) < 3:
            return set()
        pairs = [a + b for a, b in zip(syllables, syllables[1:])]
        return _intersect([self._postings.get(p, ()) for p in pairs])

    def _initials(self, token: str) -> set[int]:
        """"cy" -> 唇釉 via initials-pair tokens "^cy"; verified as a run in _rank."""
        if not 2 <= len(token) <= 8:
            return set()
        pairs = [INITIALS_MARK + token[i : i + 2] for i in range(len(token) - 1)]
        return _intersect([self._postings.get(p, ()) for p in pairs])

    def _candidates(self, matches: list[_TokenMatch], strict: set[int], exclude: Iterable[int]) -> list[int]:
        """At most RERANK_CANDIDATES ids: all-tokens-exact first, then all-tokens-loose, then most tokens."""
        chosen: dict[int, None] = dict.fromkeys(exclude)
        skip = len(chosen)
        self._take(strict, chosen, skip)
        if len(chosen) - skip < RERANK_CANDIDATES:
            unions = [m.any() for m in matches]
            self._take(_intersect(unions), chosen, skip)
            if len(chosen) - skip < RERANK_CANDIDATES and len(unions) > 1:
                counted = _within_budget(unions, PARTIAL_COUNT_BUDGET)
                needed = math.ceil(len(counted) / 2)
                counts = Counter(chain.from_iterable(counted))
                room = RERANK_CANDIDATES - (len(chosen) - skip)
                best = counts.most_common(room + len(chosen))
                partial = [pid for pid, n in best if n >= needed and pid not in chosen]
                chosen.update(dict.fromkeys(partial[:room]))
        return list(chosen)[skip:]

    def _take(self, ids: set[int], chosen: dict[int, None], skip: int) -> None:
        room = RERANK_CANDIDATES - (len(chosen) - skip)
        if len(ids) > room:
            # Too many equally good token matches ("red"): shorter names are
            # the more specific match and WRatio would prefer them anyway.
            entries = self._entries
            ids = heapq.nsmallest(room + len(chosen), ids, key=lambda p: (len(entries[p].name), p))
        fresh = [pid for pid in ids if pid not in chosen]
        chosen.update(dict.fromkeys(fresh[:room]))

    def _rank(self, pid: int, q: str, tokens: list[str], coverage: float, all_exact: bool) -> SearchHit | None:
        """Place one candidate in its tier, or drop it. Checks run best tier first."""
        entry = self._entries[pid]
        fields = {"name": entry.name, "brand": entry.brand, "category": entry.category}
        contains = [f for f, text in fields.items() if text and q in text]
        if not contains and all_exact:
            # "lipstick red" vs "Ruby Red Lipstick": every word present, order differs.
            contains = [f for f, text in fields.items() if any(t in text for t in tokens)]
            if not all(any(t in text for text in fields.values()) for t in tokens):
                contains = []
        if contains:
            # Report the most telling field (name > brand > category), but let
            # the closest field decide the score: "dior" == brand is a perfect hit.
            quality = max(fuzz.WRatio(q, fields[f], processor=None) for f in contains) / 100
            return self._hit(pid, _BAND_FIELD, quality, contains[0])
        joined = q.replace(" ", "")
        ascii_query = joined.isascii() and joined.isalnum()
        if ascii_query and len(joined) >= 2 and entry.pinyin and joined in entry.pinyin:
            longest = max(entry.pinyin.split("|"), key=len)
            return self._hit(pid, _BAND_PINYIN, len(joined) / len(longest), "pinyin")
        best_field, best = self._best_fuzzy(q, fields, entry.pinyin)
        if best >= FUZZY_CUTOFF or coverage >= FULL_TYPO_COVERAGE:
            # WRatio alone ties "lipstik red" between a lipstick and red lentils
            # and drops "10000mh pinnk" on long names; every query word matching
            # a product word within a typo is the stronger signal.
            quality = 0.6 * coverage + 0.4 * max(0.0, (best - 50) / 50)
            return self._hit(pid, _BAND_FUZZY, quality, best_field)
        if ascii_query and joined.isalpha() and joined in entry.initials:
            longest = max(entry.initials.split("|"), key=len)
            return self._hit(pid, _BAND_INITIALS, len(joined) / len(longest), "pinyin_initials")
        return None

    @staticmethod
    def _best_fuzzy(q: str, fields: dict[str, str], pinyin: str) -> tuple[str, float]:
        scored = {f: fuzz.WRatio(q, text, processor=None) for f, text in fields.items() if text}
        if pinyin and q.isascii():
            scored["pinyin"] = fuzz.WRatio(q.replace(" ", ""), pinyin, processor=None)
        if not scored:
            return "name", 0.0
        field = max(scored, key=scored.__getitem__)
        return field, scored[field]


def _coverage(pid: int, matches: list[_TokenMatch]) -> float:
    """Share of query tokens the product matched; a typo/prefix match counts 0.8."""
    total = sum(1.0 if pid in m.exact else 0.8 if pid in m.loose else 0.0 for m in matches)
    return total / len(matches)


def _within_budget(sets: list[set[int]], budget: int) -> list[set[int]]:
    """Smallest sets first until ``budget`` ids; the huge ones ("pro", "set")
    say little about which product is meant and would dominate the count."""
    ordered = sorted(sets, key=len)
    kept, total = ordered[:1], len(ordered[0])
    for ids in ordered[1:]:
        total += len(ids)
        if total > budget:
            break
        kept.append(ids)
    return kept


def _intersect(sets: Sequence[Sequence[int] | set[int]]) -> set[int]:
    """Smallest first so each step only walks the survivors; sets or id arrays."""
    if not sets:
        return set()
    ordered = sorted(sets, key=len)
    if not ordered[0]:
        return set()
    return set(ordered[0]).intersection(*ordered[1:])


def _ids_array(ids: Iterable[int]) -> array[int]:
    ids = list(ids)
    try:
        return array(_IDS, ids)
    except OverflowError:
        return array(_WIDE_IDS, ids)


def _add_id(ids: array[int], pid: int, keep_sorted: bool, at: int | None = None) -> array[int]:
    """``ids`` with ``pid`` added (sorted in place, or appended); a wider copy if it does not fit."""
    if ids.typecode == _IDS and not 0 <= pid < 2**32:
        ids = array(_WIDE_IDS, ids)
    if not keep_sorted:
        ids.append(pid)
    elif at is None:
        bisect.insort(ids, pid)
    else:
        ids.insert(at, pid)
    return ids
