"""Benchmark SubstituteIndex on a deterministic synthetic catalogue.

    python benchmarks/bench_substitutes.py [--products 100000] [--lookups 1000]

The catalogue mixes English and Chinese names, brands, attributes
(colour/finish/unit/pack_size) and a skewed category size distribution (a few
big categories, a long tail), because the largest category bounds the worst
lookup.  About 85 % of products are in stock.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from common import percentile  # benchmarks/common.py, beside this script

from bot.inventory.cards import ProductCard
from bot.inventory.substitutes import SubstituteIndex

EN_NOUNS = [
    "lipstick", "lip gloss", "mascara", "eyeliner", "foundation", "concealer",
    "blush", "bronzer", "shampoo", "conditioner", "hair oil", "body lotion",
    "hand cream", "face serum", "toner", "sunscreen", "cleanser", "face mask",
    "perfume", "nail polish", "eye shadow", "primer", "setting spray", "lip balm",
]
ZH_NOUNS = [
    "口红", "唇釉", "睫毛膏", "眼线笔", "粉底液", "遮瑕膏", "腮红", "修容粉",
    "洗发水", "护发素", "护发精油", "身体乳", "护手霜", "精华液", "爽肤水", "防晒霜",
    "洁面乳", "面膜", "香水", "指甲油", "眼影", "妆前乳", "定妆喷雾", "润唇膏",
]
EN_ADJ = ["velvet", "matte", "glossy", "hydrating", "long wear", "silky", "ultra",
          "soft", "radiant", "daily", "pro", "natural", "intense", "fresh", "classic"]
ZH_ADJ = ["丝绒", "哑光", "水润", "持久", "保湿", "柔滑", "轻薄", "自然", "亮泽", "清爽", "经典"]
COLOURS = [("red", "正红色"), ("rose", "玫瑰色"), ("nude", "裸色"), ("coral", "珊瑚色"),
           ("berry", "莓果色"), ("pink", "粉色"), ("brown", "棕色"), ("plum", "梅子色"),
           ("peach", "蜜桃色"), ("mauve", "豆沙色"), ("black", "黑色"), ("clear", "透明")]
FINISHES = ["matte", "satin", "gloss", "shimmer", "cream"]
UNITS = [("ml", ["15", "30", "50", "100", "200"]), ("g", ["3.5", "10", "50", "100"]),
         ("pcs", ["1", "2", "5", "10"])]
EN_BRANDS = ["Glow", "Lumière", "Northwind", "Aster", "Velora", "Pure Lab", "Kind Skin",
             "Maple", "Orchid", "Nova", "Sable", "Iris & Co", "Blue Fern", "Halo", "Tide"]
ZH_BRANDS = ["花西子", "完美日记", "珀莱雅", "自然堂", "百雀羚", "薇诺娜", "毛戈平", "卡姿兰"]


def build_catalogue(products: int, categories: int, rng: random.Random) -> list[ProductCard]:
    # Zipf-like (s=0.5) category sizes: the biggest holds ~5 % of 100k products.
    weights = [1 / math.sqrt(rank + 1) for rank in range(categories)]
    base_price = [Decimal(round(math.exp(rng.uniform(math.log(3), math.log(300))), 2))
                  for _ in range(categories)]
    noun_of = [rng.randrange(len(EN_NOUNS)) for _ in range(categories)]
    unit_of = [rng.randrange(len(UNITS)) for _ in range(categories)]
    category_of = rng.choices(range(categories), weights=weights, k=products)
    cards: list[ProductCard] = []
    for product_id, cat in enumerate(category_of, start=1):
        cards.append(_make_card(product_id, cat, noun_of[cat], unit_of[cat], base_price[cat], rng))
    return cards


def _make_card(product_id: int, cat: int, noun: int, unit_idx: int, base: Decimal,
               rng: random.Random) -> ProductCard:
    colour_en, colour_zh = rng.choice(COLOURS)
    chinese = rng.random() < 0.3
    if chinese:
        brand = rng.choice(ZH_BRANDS)
        name = f"{brand}{rng.choice(ZH_ADJ)}{ZH_NOUNS[noun]} {colour_zh}"
    else:
        brand = rng.choice(EN_BRANDS)
        name = f"{brand} {rng.choice(EN_ADJ).title()} {EN_NOUNS[noun].title()} {colour_en.title()}"
        if rng.random() < 0.3:
            name += f" No. {rng.randint(1, 99)}"
    unit, sizes = UNITS[unit_idx]
    attributes = {"colour": colour_en, "finish": rng.choice(FINISHES)}
    if rng.random() < 0.8:  # some catalogues leave size fields empty
        attributes["unit"] = unit
        attributes["pack_size"] = rng.choice(sizes[:2]) if rng.random() < 0.7 else rng.choice(sizes)
    price = (base * Decimal(str(round(rng.uniform(0.5, 2.0), 3)))).quantize(Decimal("0.01"))
    return ProductCard(
        product_id=product_id,
        sku=f"SKU-{cat:03d}-{product_id:07d}",
        name=name,
        category=f"cat-{cat:03d}",
        brand=brand if rng.random() < 0.9 else None,
        price_cents=int(price * 100),
        attributes=attributes,
        safety_stock=rng.choice([0, 0, 0, 1, 2, 3]),
    )


def build_stock(cards: Sequence[ProductCard], rng: random.Random) -> dict[int, int]:
    return {c.product_id: (rng.randint(1, 60) if rng.random() < 0.85 else 0) for c in cards}


def time_calls(call: Callable[[], object], repeat: int) -> list[float]:
    timings: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        call()
        timings.append((time.perf_counter_ns() - start) / 1e6)
    return sorted(timings)


def row(label: str, timings: Sequence[float]) -> str:
    cells = [percentile(timings, p) for p in (50, 95, 99)] + [timings[-1]]
    return f"| {label} | " + " | ".join(f"{v:.3f}" for v in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--categories", type=int, default=120)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    cards = build_catalogue(args.products, args.categories, rng)
    stock = build_stock(cards, rng)
    sizes = sorted((sum(1 for _ in g) for g in _group_sizes(cards)), reverse=True)

    start = time.perf_counter()
    index = SubstituteIndex(cards)
    build_s = time.perf_counter() - start

    targets = [rng.choice(cards) for _ in range(args.lookups)]
    for product in targets[:50]:  # warm caches and the allocator
        index.choose(product, stock)

    lookups = iter(targets)
    map_timings = time_calls(lambda: index.choose(next(lookups), stock), len(targets))
    lookups = iter(targets)
    getter = stock.get
    fn_timings = time_calls(lambda: index.choose(next(lookups), lambda pid: getter(pid, 0)),
                            len(targets))
    lookups = iter(targets)
    excl_timings = time_calls(
        lambda: (p := next(lookups), index.choose(p, stock, exclude={p.product_id + 1})),
        len(targets),
    )
    returned = [len(index.choose(p, stock)) for p in targets]

    updates = iter(rng.sample(cards, min(len(cards), args.lookups)))
    upsert_timings = time_calls(lambda: index.upsert(_repriced(next(updates))),
                                min(len(cards), args.lookups))

    print(f"python {platform.python_version()} | products {len(cards):,} | "
          f"categories {len(sizes)} (largest {sizes[0]:,}, median {sizes[len(sizes) // 2]:,}) | "
          f"in stock {sum(1 for v in stock.values() if v):,}")
    print(f"build: {build_s:.2f} s")
    print(f"results per lookup: mean {statistics.mean(returned):.2f}, "
          f"empty {sum(1 for n in returned if n == 0)} of {len(returned)}")
    print()
    print(f"| operation ({args.lookups} calls) | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    print(row("choose(), availability dict", map_timings))
    print(row("choose(), availability callable", fn_timings))
    print(row("choose(), with exclude", excl_timings))
    print(row("upsert() (reprice)", upsert_timings))


def _group_sizes(cards: Sequence[ProductCard]) -> list[list[ProductCard]]:
    groups: dict[str, list[ProductCard]] = {}
    for c in cards:
        groups.setdefault(c.category, []).append(c)
    return list(groups.values())


def _repriced(card: ProductCard) -> ProductCard:
    return ProductCard(card.product_id, card.sku, card.name, card.category, card.brand,
                       int((card.price * Decimal("1.05")).quantize(Decimal("0.01")) * 100),
                       card.attributes, card.safety_stock)


if __name__ == "__main__":
    main()
