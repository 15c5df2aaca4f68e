"""What a customer sees when the product they wanted has run out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.inventory.cards import ProductCard
from bot.inventory.substitutes import PriceBand, Substitute, SubstituteIndex, normalise_name
from bot.settings import Settings

PLENTY = 100


def card(
    product_id: int,
    name: str,
    *,
    price: str = "10.00",
    category: str = "lipstick",
    brand: str | None = None,
    sku: str | None = None,
    safety_stock: int = 0,
    **attributes: str,
) -> ProductCard:
    return ProductCard(
        product_id=product_id,
        sku=sku or f"SKU-{product_id:04d}",
        name=name,
        category=category,
        brand=brand,
        price_cents=int(Decimal(price) * 100),
        attributes=attributes,
        safety_stock=safety_stock,
    )


def in_stock(*cards: ProductCard) -> dict[int, int]:
    return {c.product_id: PLENTY for c in cards}


def ids(result: list[Substitute]) -> list[int]:
    return [s.card.product_id for s in result]


WANTED = card(1, "Velvet Matte Lipstick Ruby Red", brand="Glow", colour="red", finish="matte")


# --- who may be offered -------------------------------------------------------


def test_out_of_stock_product_is_never_offered_even_if_available_map_says_so() -> None:
    other = card(2, "Velvet Matte Lipstick Rose")
    index = SubstituteIndex([WANTED, other])
    result = index.choose(WANTED, in_stock(WANTED, other))
    assert ids(result) == [2]


def test_out_of_stock_candidate_is_not_offered() -> None:
    gone = card(2, "Velvet Matte Lipstick Ruby Red", brand="Glow")
    there = card(3, "Satin Lipstick Coral")
    index = SubstituteIndex([WANTED, gone, there])
    assert ids(index.choose(WANTED, {2: 0, 3: 5})) == [3]
    # A product the caller knows nothing about counts as not in stock.
    assert ids(index.choose(WANTED, {3: 5})) == [3]


def test_candidate_at_its_safety_stock_is_not_offered_but_one_above_is() -> None:
    reserved = card(2, "Velvet Matte Lipstick Ruby", safety_stock=4)
    index = SubstituteIndex([WANTED, reserved])
    assert index.choose(WANTED, {2: 4}) == []
    assert ids(index.choose(WANTED, {2: 5})) == [2]


def test_availability_may_be_a_callable() -> None:
    other = card(2, "Velvet Matte Lipstick Rose")
    index = SubstituteIndex([WANTED, other])
    asked: list[int] = []

    def available(product_id: int) -> int:
        asked.append(product_id)
        return 3

    assert ids(index.choose(WANTED, available)) == [2]
    assert 1 not in asked  # the product itself is never even looked up


def test_other_category_is_not_offered() -> None:
    gloss = card(2, "Velvet Matte Lipstick Ruby Red", category="lip gloss", brand="Glow")
    index = SubstituteIndex([WANTED, gloss])
    assert index.choose(WANTED, in_stock(gloss)) == []


def test_category_match_ignores_case_and_spacing() -> None:
    other = card(2, "Velvet Matte Lipstick Rose", category="  LipStick ")
    index = SubstituteIndex([WANTED, other])
    assert ids(index.choose(WANTED, in_stock(other))) == [2]


def test_two_pack_is_not_offered_for_a_one_pack() -> None:
    single = card(1, "Hand Cream", category="hand care", pack_size="1", unit="ml")
    double = card(2, "Hand Cream", category="hand care", pack_size="2", unit="ml")
    index = SubstituteIndex([single, double])
    assert index.choose(single, in_stock(double)) == []


def test_pack_size_counts_when_only_one_side_states_it() -> None:
    single = card(1, "Hand Cream", category="hand care", pack_size="1")
    unstated = card(2, "Hand Cream Deluxe", category="hand care")
    index = SubstituteIndex([single, unstated])
    assert ids(index.choose(single, in_stock(unstated))) == [2]
    assert ids(index.choose(unstated, in_stock(single))) == [1]


def test_pack_size_and_unit_compare_after_normalising() -> None:
    wanted = card(1, "Serum", category="serum", pack_size="30", unit="ml")
    same = card(2, "Serum Plus", category="serum", size=" 30 ", unit=" ML ")
    other_unit = card(3, "Serum Max", category="serum", pack_size="30", unit="g")
    bigger = card(4, "Serum Mega", category="serum", size="50")
    index = SubstituteIndex([wanted, same, other_unit, bigger])
    assert ids(index.choose(wanted, in_stock(same, other_unit, bigger))) == [2]


# --- price band -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "offered"),
    [
        ("70.00", True),   # -30 %: inclusive
        ("69.99", False),
        ("69.00", False),  # -31 %
        ("120.00", True),  # +20 %: inclusive
        ("120.01", False),
        ("121.00", False),  # +21 %
    ],
)
def test_price_band_edges_are_inclusive(price: str, offered: bool) -> None:
    wanted = card(1, "Lipstick Red", price="100.00")
    candidate = card(2, "Lipstick Red", price=price)
    index = SubstituteIndex([wanted, candidate])
    assert bool(index.choose(wanted, in_stock(candidate))) is offered


def test_custom_price_band() -> None:
    wanted = card(1, "Lipstick Red", price="100.00")
    pricier = card(2, "Lipstick Red", price="150.00")
    index = SubstituteIndex([wanted, pricier])
    assert index.choose(wanted, in_stock(pricier)) == []
    wide = PriceBand(below=Decimal("0.10"), above=Decimal("0.50"))
    assert ids(index.choose(wanted, in_stock(pricier), band=wide)) == [2]


def test_price_band_comes_from_the_shop_settings(settings: Settings) -> None:
    wanted = card(1, "Lipstick Red", price="100.00")
    pricier = card(2, "Lipstick Red", price="150.00")
    index = SubstituteIndex([wanted, pricier])
    shop = settings.model_copy(update={"SUBSTITUTE_PRICE_ABOVE": Decimal("0.50")})
    assert ids(index.choose(wanted, in_stock(pricier), band=PriceBand.from_settings(shop))) == [2]
    assert index.choose(wanted, in_stock(pricier), band=PriceBand.from_settings(settings)) == []


def test_unpriced_product_has_no_price_filter() -> None:
    wanted = card(1, "Lipstick Red", price="0")
    cheap = card(2, "Lipstick Red", price="1.00")
    dear = card(3, "Lipstick Red", price="500.00")
    index = SubstituteIndex([wanted, cheap, dear])
    assert sorted(ids(index.choose(wanted, in_stock(cheap, dear)))) == [2, 3]


def test_invalid_band_is_rejected() -> None:
    with pytest.raises(ValueError):
        PriceBand(below=Decimal("1.5"))
    with pytest.raises(ValueError):
        PriceBand(above=Decimal("-0.1"))


def test_price_difference_is_a_decimal_and_exact() -> None:
    wanted = card(1, "Lipstick Red", price="19.99")
    cheaper = card(2, "Lipstick Red", price="14.00")
    dearer = card(3, "Lipstick Red", price="23.98")
    index = SubstituteIndex([wanted, cheaper, dearer])
    by_id = {s.card.product_id: s for s in index.choose(wanted, in_stock(cheaper, dearer))}
    assert isinstance(by_id[2].price_difference, Decimal)
    assert by_id[2].price_difference == Decimal("-5.99")
    assert by_id[3].price_difference == Decimal("3.99")


# --- ranking --------------------------------------------------------------------


def test_closest_name_ranks_first() -> None:
    close = card(2, "Velvet Matte Lipstick Ruby")
    far = card(3, "Glossy Balm Tint")
    index = SubstituteIndex([WANTED, far, close])
    assert ids(index.choose(WANTED, in_stock(close, far))) == [2, 3]


def test_same_brand_ranks_first_when_names_are_alike() -> None:
    other_brand = card(2, "Velvet Matte Lipstick Rose", brand="Shine")
    same_brand = card(3, "Velvet Matte Lipstick Rose", brand=" GLOW ")
    index = SubstituteIndex([WANTED, other_brand, same_brand])
    assert ids(index.choose(WANTED, in_stock(other_brand, same_brand))) == [3, 2]


def test_same_brand_does_not_beat_a_much_closer_name() -> None:
    same_brand = card(2, "Glossy Balm Tint", brand="Glow")
    close = card(3, "Velvet Matte Lipstick Ruby Red", brand="Shine")
    index = SubstituteIndex([WANTED, same_brand, close])
    assert ids(index.choose(WANTED, in_stock(same_brand, close))) == [3, 2]


def test_shared_attributes_rank_first_when_names_are_alike() -> None:
    plain = card(2, "Velvet Lipstick", colour="pink", finish="satin")
    matching = card(3, "Velvet Lipstick", colour="Red", finish="MATTE")
    index = SubstituteIndex([WANTED, plain, matching])
    result = index.choose(WANTED, in_stock(plain, matching))
    assert ids(result) == [3, 2]
    assert result[0].score > result[1].score


def test_chinese_names_rank_sensibly() -> None:
    wanted = card(1, "唇釉 豆沙色", category="彩妆")
    red = card(2, "唇釉 正红色", category="彩妆")
    shampoo = card(3, "洗发水", category="彩妆")
    index = SubstituteIndex([wanted, shampoo, red])
    result = index.choose(wanted, in_stock(red, shampoo))
    assert ids(result) == [2, 3]
    assert result[0].score > result[1].score


def test_chinese_names_without_spaces_still_compare_by_character() -> None:
    wanted = card(1, "丝绒哑光唇膏", category="彩妆")
    close = card(2, "丝绒唇膏", category="彩妆")
    far = card(3, "保湿面霜", category="彩妆")
    index = SubstituteIndex([wanted, far, close])
    assert ids(index.choose(wanted, in_stock(close, far))) == [2, 3]


def test_full_width_and_case_do_not_change_the_name() -> None:
    assert normalise_name("ＬＩＰ－Ｇｌｏｓｓ") == normalise_name("lip gloss")
    assert normalise_name("唇釉豆沙色") == "唇 釉 豆 沙 色"


def test_ties_go_to_the_smaller_price_difference_then_sku() -> None:
    wanted = card(1, "Lipstick Red", price="10.00")
    far = card(2, "Lipstick Red", price="11.50", sku="A")
    near_b = card(3, "Lipstick Red", price="9.50", sku="C")
    near_a = card(4, "Lipstick Red", price="10.50", sku="B")
    index = SubstituteIndex([wanted, far, near_b, near_a])
    assert ids(index.choose(wanted, in_stock(far, near_b, near_a))) == [4, 3, 2]


def test_exclude_gives_the_next_best() -> None:
    best = card(2, "Velvet Matte Lipstick Ruby Red", brand="Glow")
    second = card(3, "Velvet Matte Lipstick Ruby")
    third = card(4, "Satin Lipstick Coral")
    index = SubstituteIndex([WANTED, best, second, third])
    stock = in_stock(best, second, third)
    assert ids(index.choose(WANTED, stock, limit=1)) == [2]
    assert ids(index.choose(WANTED, stock, limit=1, exclude={2})) == [3]
    assert ids(index.choose(WANTED, stock, limit=1, exclude=[2, 3])) == [4]


def test_limit_is_respected() -> None:
    others = [card(i, f"Lipstick shade {i}") for i in range(2, 12)]
    index = SubstituteIndex([WANTED, *others])
    stock = in_stock(*others)
    assert len(index.choose(WANTED, stock)) == 3
    assert len(index.choose(WANTED, stock, limit=5)) == 5
    assert index.choose(WANTED, stock, limit=0) == []


def test_unknown_category_gives_nothing() -> None:
    index = SubstituteIndex([WANTED])
    lonely = card(9, "Mystery", category="nowhere")
    assert index.choose(lonely, {}) == []


# --- freshness ------------------------------------------------------------------


def test_upsert_adds_and_replaces() -> None:
    index = SubstituteIndex([WANTED])
    assert len(index) == 1
    assert index.choose(WANTED, {2: 5}) == []

    index.upsert(card(2, "Velvet Matte Lipstick Rose", price="11.00"))
    assert len(index) == 2
    assert ids(index.choose(WANTED, {2: 5})) == [2]

    # Repriced out of the band, then moved to another category: both take effect.
    index.upsert(card(2, "Velvet Matte Lipstick Rose", price="99.00"))
    assert len(index) == 2
    assert index.choose(WANTED, {2: 5}) == []
    index.upsert(card(2, "Velvet Matte Lipstick Rose", price="11.00", category="gloss"))
    assert index.choose(WANTED, {2: 5}) == []
    index.upsert(card(2, "Velvet Matte Lipstick Rose", price="11.00"))
    result = index.choose(WANTED, {2: 5})
    assert ids(result) == [2] and result[0].card.price == Decimal("11.00")


def test_remove_forgets_and_ignores_unknown_ids() -> None:
    other = card(2, "Velvet Matte Lipstick Rose")
    index = SubstituteIndex([WANTED, other])
    index.remove(2)
    index.remove(2)
    index.remove(12345)
    assert len(index) == 1
    assert index.choose(WANTED, in_stock(other)) == []


def test_same_price_entries_are_removed_precisely() -> None:
    same_price = [card(i, f"Lipstick {i}") for i in range(2, 8)]
    index = SubstituteIndex([WANTED, *same_price])
    index.remove(4)
    index.upsert(card(9, "Lipstick 9"))
    result = ids(index.choose(WANTED, in_stock(*same_price, card(9, "x")), limit=10))
    assert sorted(result) == [2, 3, 5, 6, 7, 9]


def test_caller_card_is_used_for_the_product() -> None:
    # The index may hold a stale card for the product; the caller's wins.
    other = card(2, "Lipstick Red", price="20.00")
    index = SubstituteIndex([card(1, "Lipstick Red", price="10.00"), other])
    assert index.choose(card(1, "Lipstick Red", price="10.00"), in_stock(other)) == []
    assert ids(index.choose(card(1, "Lipstick Red", price="19.00"), in_stock(other))) == [2]
