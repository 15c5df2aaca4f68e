"""Choose in-stock substitutes for a product that has run out.

Pure and in-memory: the caller keeps the index fresh from the database
(``upsert``/``remove``) and passes current availability to ``choose``.  Nothing
here touches I/O, so a lookup costs only CPU and can run inside a handler.

Speed model (100k products, 50-200 categories): candidates are grouped by
category and kept sorted by price at build time, so a lookup bisects straight
to the price band of one category, drops out-of-stock / wrong-size items with
cheap comparisons, and only then asks rapidfuzz to score the few survivors
against names that were normalised once, when the card was indexed.

Memory (issue 9): an entry holds the card it was built from plus its folded name;
brands, sizes and whole attribute sets repeat across a catalogue and are shared,
and a category is one list of entries bisected on the card's own price object.
"""

from __future__ import annotations

import heapq
import re
import sys
import threading
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from rapidfuzz import fuzz, process

from bot.inventory.cards import ProductCard

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["PriceBand", "Substitute", "SubstituteIndex", "normalise_name"]

# Ranking weights, summing to 1 so a score reads as "how good a swap, 0..1".
# - Name similarity dominates: every product has a name, and it carries what the
#   customer actually asked for (product type, shade, scent).
# - Shared attributes are precise when present (colour=red, finish=matte) but
#   many catalogues fill them sparsely, so they refine rather than decide.
# - Same brand is a loyalty nudge: it should win between otherwise similar items,
#   but must not push a same-brand, different-looking item above a near-identical
#   one from another brand (0.15 < the 0.6 * ~0.3 name gap between them).
NAME_WEIGHT = 0.60
ATTRIBUTE_WEIGHT = 0.25
BRAND_WEIGHT = 0.15
# Callers may add a small per-product boost on top (slow movers, docs/reports.md): enough to
# win between near-equal candidates, too little to lift a poor match over a good one.

# Attributes that gate a substitute (hard filter) rather than rank it.
_UNIT_KEYS = ("unit",)
_PACK_KEYS = ("pack_size", "size")  # pack_size wins when both are stated
_GATE_KEYS = frozenset(_UNIT_KEYS + _PACK_KEYS)

# Han ideographs (incl. extension A/B and compatibility) and kana are written
# without spaces; splitting them into one-character tokens lets the token-based
# scorers compare Chinese names character by character.
_CJK_CHAR = re.compile(
    r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df])"
)
# Punctuation and underscores are separators, not content ("Lip-Gloss" == "lip gloss").
_SEPARATORS = re.compile(r"[\W_]+")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class PriceBand:
    """Accepted price range as fractions of the product's price (inclusive)."""

    below: Decimal = Decimal("0.30")
    above: Decimal = Decimal("0.20")

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.below <= Decimal(1):
            raise ValueError(f"below must be within 0..1, got {self.below}")
        if self.above < 0:
            raise ValueError(f"above must be >= 0, got {self.above}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceBand:
        """The shop's band (SUBSTITUTE_PRICE_BELOW/ABOVE); the one place it is read."""
        return cls(below=settings.SUBSTITUTE_PRICE_BELOW, above=settings.SUBSTITUTE_PRICE_ABOVE)

    def bounds(self, price: Decimal) -> tuple[Decimal, Decimal] | None:
        """Inclusive (low, high) prices, or None when the product has no price."""
        if price <= 0:
            return None  # an unpriced product cannot anchor a band
        return price * (1 - self.below), price * (1 + self.above)


@dataclass(frozen=True, slots=True)
class Substitute:
    card: ProductCard
    score: float
    price_difference: Decimal  # candidate price - product price; money stays Decimal


@dataclass(frozen=True, slots=True)
class _Entry:
    """A card plus everything a lookup needs, pre-computed once at index time."""

    card: ProductCard
    name_key: str
    brand_key: str | None
    unit: str | None
    pack: str | None
    attributes: frozenset[tuple[str, str]]


def _sort_key(entry: _Entry) -> tuple[int, int]:
    return entry.card.price_cents, entry.card.product_id


def _price_cents(entry: _Entry) -> int:
    return entry.card.price_cents


class _Category:
    """One category's entries, kept sorted by (price, product_id) for bisecting.

    The sort keys are read off the cards (a dozen per bisect) rather than kept in a
    parallel list of tuples, which would cost ~70 bytes a product.
    """

    __slots__ = ("entries",)

    def __init__(self, entries: list[_Entry] | None = None) -> None:
        self.entries: list[_Entry] = entries or []

    def add(self, entry: _Entry) -> None:
        self.entries.insert(bisect_left(self.entries, _sort_key(entry), key=_sort_key), entry)

    def discard(self, entry: _Entry) -> None:
        pos = bisect_left(self.entries, _sort_key(entry), key=_sort_key)
        if pos < len(self.entries) and self.entries[pos].card.product_id == entry.card.product_id:
            del self.entries[pos]

    def in_band(self, bounds: tuple[Decimal, Decimal] | None) -> list[_Entry]:
        if bounds is None:
            return self.entries
        low, high = (bound * 100 for bound in bounds)  # cents, exact: Decimals compare with ints
        # On price alone, so both edges of the band are inclusive whatever the ids.
        start = bisect_left(self.entries, low, key=_price_cents)
        stop = bisect_right(self.entries, high, key=_price_cents)
        return self.entries[start:stop]


# --------------------------------------------------------------------------- #
# Normalisation
# --------------------------------------------------------------------------- #


def _fold(text: str) -> str:
    """NFKC + casefold: full-width/compatibility forms and case stop mattering."""
    return unicodedata.normalize("NFKC", text).casefold()


def normalise_name(name: str) -> str:
    """Name as fed to rapidfuzz (with processor=None): folded, tokenised, CJK split."""
    text = _SEPARATORS.sub(" ", _fold(name))
    text = _CJK_CHAR.sub(r" \1 ", text)
    return " ".join(text.split())


def _normalise_value(value: str) -> str:
    return " ".join(_fold(value).split())


def _normalise_size(value: str) -> str:
    """Unit/pack size: case- and whitespace-insensitive; "2" and "2.0" agree."""
    text = _WHITESPACE.sub("", _fold(value))
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    return format(number.normalize(), "f")


def _first_stated(attributes: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value.strip():
            return _normalise_size(value)
    return None


def _fold_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    folded: dict[str, str] = {}
    for key, value in attributes.items():
        norm_key = _normalise_value(key)
        norm_value = _normalise_value(value) if value is not None else ""
        if norm_key and norm_value:
            folded[norm_key] = norm_value
    return folded


def _make_entry(
    card: ProductCard, shared: dict[frozenset[tuple[str, str]], frozenset[tuple[str, str]]] | None = None,
    strings: dict[str, str] | None = None,
) -> _Entry:
    """``shared`` (the index's) maps each attribute set to one instance of it; ``strings`` (a
    load's, shared with the search index) each name to one instance of it."""
    name_key = normalise_name(card.name)
    if strings is not None:
        name_key = strings.setdefault(name_key, name_key)
    attributes = _fold_attributes(card.attributes)
    brand = _normalise_value(card.brand) if card.brand else ""
    unit, pack = _first_stated(attributes, _UNIT_KEYS), _first_stated(attributes, _PACK_KEYS)
    stated = frozenset((key, value) for key, value in attributes.items() if key not in _GATE_KEYS)
    if shared is not None:
        stated = shared.setdefault(stated, stated)
    return _Entry(
        card=card,
        name_key=name_key,
        brand_key=sys.intern(brand) if brand else None,
        unit=sys.intern(unit) if unit else unit,
        pack=sys.intern(pack) if pack else pack,
        attributes=stated,
    )


def _category_key(category: str) -> str:
    return _normalise_value(category)


def _stock_lookup(available: Callable[[int], int] | Mapping[int, int]) -> Callable[[int], int]:
    if isinstance(available, Mapping):
        get = available.get
        return lambda product_id: get(product_id, 0)  # unknown = nothing on hand
    return available


# --------------------------------------------------------------------------- #
# Index
# --------------------------------------------------------------------------- #


class SubstituteIndex:
    """Category-partitioned, price-sorted index of product cards.

    Thread-safe, so a refresh may load cards in a worker thread while the event loop
    chooses: the lock covers changes and the copy of one price band, not the scoring.
    """

    def __init__(self, cards: Iterable[ProductCard] = ()) -> None:
        self._lock = threading.RLock()
        self._by_id: dict[int, _Entry] = {}
        self._categories: dict[str, _Category] = {}
        # Catalogues repeat a few attribute sets (colour x finish) across thousands of cards.
        self._attribute_sets: dict[frozenset[tuple[str, str]], frozenset[tuple[str, str]]] = {}
        self._bulk_load(cards)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._by_id

    def _bulk_load(self, cards: Iterable[ProductCard]) -> None:
        # Last card wins for a repeated id, matching upsert semantics; sorting
        # each category once is O(n log n) instead of n sorted inserts.
        for card in cards:
            self._by_id[card.product_id] = _make_entry(card, self._attribute_sets)
        grouped: dict[str, list[_Entry]] = {}
        for entry in self._by_id.values():
            grouped.setdefault(_category_key(entry.card.category), []).append(entry)
        for key, entries in grouped.items():
            entries.sort(key=_sort_key)
            self._categories[key] = _Category(entries)

    def upsert(self, card: ProductCard, *, strings: dict[str, str] | None = None) -> None:
        """Add a card or replace the one with the same product_id (``strings``: see _make_entry)."""
        current = self._by_id.get(card.product_id)
        if current is not None and current.card == card:
            return  # a refresh re-reads unchanged cards: nothing to move
        with self._lock:
            entry = _make_entry(card, self._attribute_sets, strings)
            self.remove(card.product_id)
            self._by_id[card.product_id] = entry
            key = _category_key(card.category)
            bucket = self._categories.get(key)
            if bucket is None:
                bucket = self._categories[key] = _Category()
            bucket.add(entry)

    def upsert_many(self, cards: Iterable[ProductCard], *, strings: dict[str, str] | None = None) -> None:
        for card in cards:
            self.upsert(card, strings=strings)

    def remove(self, product_id: int) -> None:
        """Forget a product; unknown ids are ignored so deletes can be replayed."""
        with self._lock:
            entry = self._by_id.pop(product_id, None)
            if entry is None:
                return
            key = _category_key(entry.card.category)
            bucket = self._categories[key]
            bucket.discard(entry)
            if not bucket.entries:
                del self._categories[key]

    def choose(
        self,
        product: ProductCard,
        available: Callable[[int], int] | Mapping[int, int],
        *,
        band: PriceBand = PriceBand(),
        limit: int = 3,
        exclude: Collection[int] = (),
        boost: Mapping[int, float] | None = None,
    ) -> list[Substitute]:
        """Best in-stock substitutes for ``product``, best first, at most ``limit``.

        ``boost`` adds to the score of the products it names (by product id).
        """
        if limit <= 0:
            return []
        with self._lock:
            bucket = self._categories.get(_category_key(product.category))
            in_band = list(bucket.in_band(band.bounds(product.price))) if bucket else []
        if not in_band:
            return []
        # Use the caller's card (it may be fresher than the indexed one) but
        # normalised exactly as indexed cards are.
        target = _make_entry(product)
        candidates = self._eligible(target, in_band, available, exclude)
        if not candidates:
            return []
        scores = self._score(target, candidates, boost or {})
        return _top(target.card.price, candidates, scores, limit)

    # -- steps of choose(), cheapest filters first ----------------------------

    @staticmethod
    def _eligible(
        target: _Entry,
        in_band: list[_Entry],
        available: Callable[[int], int] | Mapping[int, int],
        exclude: Collection[int],
    ) -> list[_Entry]:
        stock = _stock_lookup(available)
        skip = set(exclude)
        skip.add(target.card.product_id)
        unit, pack = target.unit, target.pack
        eligible: list[_Entry] = []
        # Hot loop over up to a few thousand entries, so checks are inlined.
        # Unit/pack size only conflict when BOTH sides state them: a card that
        # is silent about its size is not evidence of a different size.
        for entry in in_band:
            card = entry.card
            if card.product_id in skip:
                continue
            if unit is not None and entry.unit is not None and entry.unit != unit:
                continue
            if pack is not None and entry.pack is not None and entry.pack != pack:
                continue
            # Stock last: it may be a callable the caller made expensive.
            on_hand = stock(card.product_id)
            if on_hand > 0 and on_hand > card.safety_stock:
                eligible.append(entry)
        return eligible

    @staticmethod
    def _score(target: _Entry, candidates: list[_Entry], boost: Mapping[int, float]) -> list[float]:
        names = _name_similarity(target.name_key, [e.name_key for e in candidates])
        wanted = target.attributes
        attribute_step = ATTRIBUTE_WEIGHT / len(wanted) if wanted else 0.0
        brand = target.brand_key
        scores: list[float] = []
        for entry, name_score in zip(candidates, names):
            score = NAME_WEIGHT * name_score
            if wanted:
                score += attribute_step * len(wanted & entry.attributes)
            if brand is not None and entry.brand_key == brand:
                score += BRAND_WEIGHT
            if boost:
                score += boost.get(entry.card.product_id, 0.0)
            # Rounded so float noise cannot reorder equal scores; ties then
            # fall through to the deterministic price/SKU order in _top.
            scores.append(round(score, 6))
        return scores


def _top(
    price: Decimal, candidates: list[_Entry], scores: list[float], limit: int
) -> list[Substitute]:
    """Best ``limit`` by score, ties by |price difference| then SKU then id.

    Only candidates scoring at least the limit-th best score can make the cut,
    so the full (Decimal-based) tie-break key is built for that handful only.
    """
    if len(scores) > limit:
        threshold = heapq.nlargest(limit, scores)[-1]
        shortlist = [i for i, score in enumerate(scores) if score >= threshold]
    else:
        shortlist = list(range(len(scores)))

    def rank(i: int) -> tuple[float, Decimal, str, int]:
        card = candidates[i].card
        return -scores[i], abs(card.price - price), card.sku, card.product_id

    shortlist.sort(key=rank)
    return [
        Substitute(candidates[i].card, scores[i], candidates[i].card.price - price)
        for i in shortlist[:limit]
    ]


def _name_similarity(query: str, choices: list[str]) -> list[float]:
    """Per-choice similarity in 0..1, in the order of ``choices``.

    Mean of token_set_ratio (forgives extra words: "red lipstick" ~ "matte red
    lipstick") and token_sort_ratio (penalises them, so a bare subset does not
    score a perfect 100).  Both are word-order-insensitive; with CJK split into
    characters they become character-bag similarity for Chinese names.
    ``process.extract`` (not ``cdist``) keeps numpy an optional dependency.
    """
    scores = [0.0] * len(choices)
    if not query:
        return scores
    for scorer in (fuzz.token_set_ratio, fuzz.token_sort_ratio):
        for _, value, index in process.extract(
            query, choices, scorer=scorer, processor=None, limit=None
        ):
            scores[index] += value / 200.0
    return scores
