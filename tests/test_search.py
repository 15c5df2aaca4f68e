"""What a sales rep notices when typing ``/stock <text>``."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from bot.inventory.cards import ProductCard
from bot.inventory.search import SearchHit, SearchIndex

LIPSTICK = ProductCard(1, "LIP-00042", "Maybelline Ruby Red Lipstick 3.5g", "Lipstick", "Maybelline")
LIP_GLAZE = ProductCard(2, "GLZ-00007", "雅诗兰黛 丝绒哑光唇釉 正红色", "彩妆", "雅诗兰黛")
LENTILS = ProductCard(3, "LEN-00001", "Organic Red Lentils 500g", "Groceries", "Tilda")
LOOKALIKE = ProductCard(4, "LIP-00420", "Lip Balm LIP-00042 Collector Edition", "Lip care", "Nivea")
PHONE = ProductCard(5, "PHN-00015", "Apple iPhone 15 Pro 256GB", "Phones", "Apple")
DIOR = ProductCard(6, "LIP-00999", "迪奥烈艳蓝金口红 999", "口红", "Dior")
NOODLES = ProductCard(7, "NDL-00003", "康师傅 红烧牛肉方便面 五连包", "方便食品", "康师傅")
CABLE = ProductCard(8, "CBL-00100", "Anker USB-C Cable 2m Black", "Cables", "Anker")

CATALOG = [LIPSTICK, LIP_GLAZE, LENTILS, LOOKALIKE, PHONE, DIOR, NOODLES, CABLE]


def _noise(n: int) -> list[ProductCard]:
    """Unrelated products so ranking is tested against a crowd, not a handful."""
    rng = random.Random(3)
    words = ["Velvet", "Matte", "Classic", "Honey", "Green Tea", "Speaker", "Charger", "Mascara", "Serum", "Rice"]
    colours = ["Rose", "Nude", "Gold", "Mint", "Berry", "Silver"]
    return [
        ProductCard(1000 + i, f"NSE-{i:05d}", f"{rng.choice(words)} {rng.choice(words)} {rng.choice(colours)}", "Misc")
        for i in range(n)
    ]


@pytest.fixture
def index() -> SearchIndex:
    return SearchIndex([*CATALOG, *_noise(500)])


def ids(hits: list[SearchHit]) -> list[int]:
    return [h.product_id for h in hits]


# --- finding things -------------------------------------------------------------


def test_typo_still_finds_the_lipstick(index: SearchIndex) -> None:
    assert ids(index.search("lipstik red"))[0] == LIPSTICK.product_id


def test_transposed_letters_count_as_one_typo(index: SearchIndex) -> None:
    assert ids(index.search("lipstcik"))[0] == LIPSTICK.product_id


def test_short_word_with_a_dropped_or_swapped_letter_still_counts(index: SearchIndex) -> None:
    assert ids(index.search("rde lipstick"))[0] == LIPSTICK.product_id
    assert ids(index.search("lipstick rde"))[0] == LIPSTICK.product_id
    assert ids(index.search("rde"))[0] in {LIPSTICK.product_id, LENTILS.product_id}


def test_pinyin_finds_chinese_name(index: SearchIndex) -> None:
    hits = index.search("chunyou")
    assert ids(hits)[0] == LIP_GLAZE.product_id
    assert hits[0].matched_on == "pinyin"


def test_spaced_pinyin_and_longer_pinyin_runs_also_work(index: SearchIndex) -> None:
    assert ids(index.search("chun you"))[0] == LIP_GLAZE.product_id
    assert ids(index.search("niuroufangbianmian"))[0] == NOODLES.product_id


def test_pinyin_initials_help_but_rank_below_exact_hits(index: SearchIndex) -> None:
    hits = index.search("cy")
    assert LIP_GLAZE.product_id in ids(hits)
    glaze = next(h for h in hits if h.product_id == LIP_GLAZE.product_id)
    assert glaze.matched_on == "pinyin_initials"
    assert glaze.score < index.search("唇釉")[0].score


def test_chinese_substring_finds_product(index: SearchIndex) -> None:
    assert ids(index.search("唇釉"))[0] == LIP_GLAZE.product_id
    assert ids(index.search("牛肉方便面"))[0] == NOODLES.product_id


def test_single_chinese_character_finds_product(index: SearchIndex) -> None:
    assert LIP_GLAZE.product_id in ids(index.search("釉"))


def test_brand_and_category_are_searchable(index: SearchIndex) -> None:
    dior = index.search("dior")
    assert ids(dior)[0] == DIOR.product_id and dior[0].matched_on == "brand"
    assert ids(index.search("phones"))[0] == PHONE.product_id


def test_prefix_of_a_word_finds_it_while_typing(index: SearchIndex) -> None:
    assert ids(index.search("iphon"))[0] == PHONE.product_id


# --- ranking ------------------------------------------------------------------------


def test_exact_sku_ranks_first_even_when_a_name_contains_it(index: SearchIndex) -> None:
    hits = index.search("LIP-00042")
    assert ids(hits)[:2] == [LIPSTICK.product_id, LOOKALIKE.product_id]
    assert hits[0].matched_on == "sku" and hits[0].score == 100


def test_sku_is_case_and_separator_insensitive(index: SearchIndex) -> None:
    assert ids(index.search("lip00042"))[0] == LIPSTICK.product_id
    assert ids(index.search("lip 00042"))[0] == LIPSTICK.product_id


def test_sku_prefix_ranks_above_name_matches(index: SearchIndex) -> None:
    hits = index.search("LIP-00")
    assert set(ids(hits)[:3]) == {LIPSTICK.product_id, LOOKALIKE.product_id, DIOR.product_id}
    assert [h.matched_on for h in hits[:3]] == ["sku_prefix"] * 3


def test_exact_word_hit_outranks_fuzzy_hit(index: SearchIndex) -> None:
    hits = index.search("red lentils")
    assert ids(hits)[0] == LENTILS.product_id
    assert hits[0].matched_on == "name"


def test_scores_are_sorted_best_first(index: SearchIndex) -> None:
    scores = [h.score for h in index.search("red", limit=10)]
    assert scores == sorted(scores, reverse=True)


def test_limit_is_respected(index: SearchIndex) -> None:
    assert len(index.search("velvet", limit=3)) == 3
    assert index.search("velvet", limit=0) == []


# --- input a phone keyboard produces ------------------------------------------------------


def test_full_width_input_matches(index: SearchIndex) -> None:
    assert ids(index.search("ＬＩＰ－０００４２"))[0] == LIPSTICK.product_id
    assert ids(index.search("ｉＰｈｏｎｅ"))[0] == PHONE.product_id


def test_nonsense_returns_nothing(index: SearchIndex) -> None:
    for query in ["qwxzvbn", "zxqv wqkj", "🙂🔥💄", "   ", "\x00\x1b\u200b", "", "!!!???"]:
        assert index.search(query) == [], query


def test_huge_query_does_not_raise(index: SearchIndex) -> None:
    rng = random.Random(1)
    junk = "".join(rng.choice("abcdefghij klmnop 红色唇釉🙂\x00") for _ in range(5000))
    assert isinstance(index.search(junk), list)
    assert isinstance(index.search("lipstick " * 600), list)
    assert ids(index.search("red lipstick" + " " * 4990))[0] == LIPSTICK.product_id


# --- keeping fresh ------------------------------------------------------------------------


def test_upsert_of_renamed_product_finds_new_name_not_old(index: SearchIndex) -> None:
    index.upsert(replace(LENTILS, name="Golden Quinoa 1kg"))
    assert ids(index.search("quinoa"))[0] == LENTILS.product_id
    assert LENTILS.product_id not in ids(index.search("lentils"))
    assert len(index) == len(CATALOG) + 500


def test_upsert_with_new_sku_moves_the_sku(index: SearchIndex) -> None:
    index.upsert(replace(PHONE, sku="PHN-99999"))
    assert all(h.matched_on != "sku" for h in index.search("PHN-00015"))
    assert index.search("PHN-99999")[0].product_id == PHONE.product_id


def test_upsert_new_product_is_found(index: SearchIndex) -> None:
    index.upsert(ProductCard(9, "TEA-00001", "西湖龙井 绿茶 250g", "茶叶", "狮峰"))
    assert ids(index.search("longjing"))[0] == 9
    assert ids(index.search("TEA-00001"))[0] == 9


def test_removed_product_is_gone(index: SearchIndex) -> None:
    index.remove(LIPSTICK.product_id)
    assert LIPSTICK.product_id not in ids(index.search("lipstick red", limit=50))
    assert LIPSTICK.product_id not in ids(index.search("LIP-00042", limit=50))
    index.remove(12345)  # unknown id: no error


QUERIES = ["quinoa", "lentils", "PHN-99999", "PHN-00015", "longjing", "TEA-00001", "lipstik red", "chunyou",
           "LIP-0004", "velvet rose", "kouhong", "红烧", "speaker mint"]
CHANGED = [replace(LENTILS, name="Golden Quinoa 1kg"), replace(PHONE, sku="PHN-99999"),
           ProductCard(9, "TEA-00001", "西湖龙井 绿茶 250g", "茶叶", "狮峰")]


@pytest.mark.parametrize("reloaded", [CHANGED, [*CATALOG, *_noise(500), *CHANGED]], ids=["a-few", "everything"])
def test_an_index_kept_fresh_answers_like_one_built_from_the_current_catalog(
    index: SearchIndex, reloaded: list[ProductCard]
) -> None:
    # A refresh brings either a few changed cards or the whole catalog again (an import).
    index.upsert_many(reloaded)
    current = {card.product_id: card for card in [*CATALOG, *_noise(500), *CHANGED]}
    fresh = SearchIndex(current.values())
    assert len(index) == len(fresh)
    for query in QUERIES:
        assert index.search(query, limit=10) == fresh.search(query, limit=10), query


def test_any_product_id_is_indexed() -> None:
    teapot = ProductCard(2**40, "TEA-77777", "Clay Teapot 500ml", "Teaware")
    index = SearchIndex([*CATALOG, teapot])
    assert index.search("TEA-77777")[0].product_id == teapot.product_id
    assert index.search("teapot")[0].product_id == teapot.product_id
    index.remove(teapot.product_id)
    assert index.search("teapot") == []


def test_empty_index_answers_empty() -> None:
    assert SearchIndex().search("lipstick") == []


async def test_search_async_returns_the_same_as_search(index: SearchIndex) -> None:
    for query in ["lipstik red", "chunyou", "LIP-00042", "qwxzvbn"]:
        assert await index.search_async(query) == index.search(query)
