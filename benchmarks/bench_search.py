"""Benchmark for bot.inventory.search.SearchIndex on a synthetic catalog.

    python benchmarks/bench_search.py [--products 100000] [--queries 1000] [--seed 7] [--impl both|new|old]

Builds a deterministic English + Chinese catalog (cosmetics, groceries,
electronics), then reports build time, memory growth, query latency
percentiles per query kind, a simple relevance check per kind, upsert/remove
cost, and a naive ``process.extract(WRatio)`` baseline for comparison.
``--impl both`` (the default) builds the index as it was before issue 9
(``search_baseline.py``) beside the current one, prints both side by side and
checks that every query gets the same hits from both.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from common import describe, percentile  # benchmarks/common.py, beside this script
from rapidfuzz import fuzz, process

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.inventory.cards import ProductCard  # noqa: E402
from bot.inventory.search import SearchHit, SearchIndex  # noqa: E402
from search_baseline import SearchIndex as BaselineIndex  # noqa: E402
from bot.inventory.search_text import normalise, pinyin_forms  # noqa: E402

# --- vocabulary ------------------------------------------------------------------
# (sku prefix, english type, english category, chinese type, chinese category)
EN_TYPES = {
    "cosmetics": [
        ("LIP", "Lipstick", "Lipstick"), ("LGL", "Lip Gloss", "Lip Makeup"), ("FND", "Foundation", "Face"),
        ("MSC", "Mascara", "Eyes"), ("EYL", "Eyeliner", "Eyes"), ("BLS", "Blush", "Face"),
        ("SRM", "Serum", "Skincare"), ("MST", "Moisturizer", "Skincare"), ("CLN", "Cleanser", "Skincare"),
        ("SUN", "Sunscreen SPF50", "Skincare"), ("NLP", "Nail Polish", "Nails"), ("PRF", "Perfume", "Fragrance"),
    ],
    "groceries": [
        ("RCE", "Jasmine Rice", "Rice & Grains"), ("NDL", "Instant Noodles", "Noodles"), ("OIL", "Olive Oil", "Oils"),
        ("TEA", "Green Tea", "Tea"), ("COF", "Coffee Beans", "Coffee"), ("CHO", "Dark Chocolate", "Snacks"),
        ("LEN", "Red Lentils", "Pulses"), ("SOY", "Soy Sauce", "Condiments"), ("HNY", "Honey", "Spreads"),
        ("BIS", "Butter Biscuits", "Snacks"), ("JUI", "Orange Juice", "Drinks"), ("MLK", "Oat Milk", "Dairy Alternatives"),
    ],
    "electronics": [
        ("PHN", "Smartphone", "Phones"), ("CBL", "USB-C Cable", "Cables"), ("CHG", "Fast Charger", "Chargers"),
        ("EAR", "Wireless Earbuds", "Audio"), ("HDP", "Headphones", "Audio"), ("SPK", "Bluetooth Speaker", "Audio"),
        ("PWB", "Power Bank", "Chargers"), ("WCH", "Smart Watch", "Wearables"), ("MSE", "Wireless Mouse", "Computer"),
        ("KBD", "Mechanical Keyboard", "Computer"), ("SSD", "Portable SSD", "Storage"), ("TAB", "Tablet", "Tablets"),
    ],
}
EN_BRANDS = {
    "cosmetics": ["Maybelline", "L'Oreal", "Revlon", "Estee Lauder", "Lancome", "Clinique", "NARS", "Fenty", "Dior", "Chanel", "MAC", "Shiseido"],
    "groceries": ["Tesco", "Nestle", "Lipton", "Barilla", "Heinz", "Kellogg", "Lindt", "Twinings", "Oatly", "Tilda", "Nissin", "Kikkoman"],
    "electronics": ["Apple", "Samsung", "Xiaomi", "Anker", "Sony", "Huawei", "Logitech", "Belkin", "JBL", "Lenovo", "Baseus", "OnePlus"],
}
EN_ADJ = ["Velvet", "Matte", "Ultra", "Classic", "Organic", "Premium", "Pro", "Mini", "Max", "Lite", "Hydrating",
          "Long Lasting", "Natural", "Extra", "Soft", "Deluxe", "Everyday", "Limited Edition", "Plus", "Fresh"]
EN_VARIANT = ["Ruby Red", "Rose", "Nude", "Coral", "Berry", "Black", "White", "Silver", "Midnight Blue", "Gold",
              "Vanilla", "Mint", "Original", "Spicy", "Lemon", "Peach", "Cherry", "Graphite", "Pink", "Green"]
EN_SIZE = ["3.5g", "5ml", "30ml", "50ml", "100ml", "250g", "500g", "1kg", "2kg", "1L", "64GB", "128GB", "256GB",
           "1m", "2m", "20W", "65W", "10000mAh", "Pack of 6", "Set"]

# (sku prefix, chinese type, chinese category)
CN_TYPES = [
    ("LIP", "口红", "彩妆"), ("GLZ", "唇釉", "彩妆"), ("FND", "粉底液", "彩妆"), ("MSC", "睫毛膏", "彩妆"),
    ("SRM", "精华液", "护肤"), ("MSK", "面膜", "护肤"), ("SUN", "防晒霜", "护肤"), ("CLN", "洗面奶", "护肤"),
    ("RCE", "大米", "粮油"), ("NDL", "方便面", "方便食品"), ("OIL", "花生油", "粮油"), ("TEA", "绿茶", "茶叶"),
    ("SOY", "酱油", "调味品"), ("MLK", "牛奶", "乳制品"), ("CHO", "巧克力", "零食"), ("SNK", "薯片", "零食"),
    ("PHN", "手机", "数码"), ("CBL", "数据线", "数码配件"), ("CHG", "充电器", "数码配件"), ("EAR", "蓝牙耳机", "音频"),
    ("PWB", "充电宝", "数码配件"), ("WCH", "智能手表", "穿戴设备"), ("SPK", "音箱", "音频"), ("KBD", "键盘", "电脑外设"),
]
CN_BRANDS = ["雅诗兰黛", "兰蔻", "迪奥", "完美日记", "花西子", "百雀羚", "自然堂", "欧莱雅", "金龙鱼", "福临门", "康师傅",
             "统一", "海天", "蒙牛", "伊利", "三只松鼠", "良品铺子", "小米", "华为", "荣耀", "绿联", "倍思", "漫步者", "罗技"]
CN_ADJ = ["丝绒", "哑光", "保湿", "持久", "滋润", "清爽", "经典", "加大", "迷你", "有机", "高端", "轻薄", "无糖", "低脂", "新款", "限量"]
CN_VARIANT = ["正红色", "豆沙色", "玫瑰色", "番茄色", "珊瑚色", "原味", "香辣味", "牛肉味", "抹茶味", "黑色", "白色", "银色", "蓝色", "粉色"]
CN_PINYIN_QUERIES = {  # type word -> what a rep types (joined, spaced, initials)
    "口红": ["kouhong", "kou hong", "kh"], "唇釉": ["chunyou", "chun you", "cy"], "粉底液": ["fendiye", "fen di ye", "fdy"],
    "睫毛膏": ["jiemaogao", "jie mao gao", "jmg"], "面膜": ["mianmo", "mian mo", "mm"], "防晒霜": ["fangshaishuang", "fang shai shuang", "fss"],
    "方便面": ["fangbianmian", "fang bian mian", "fbm"], "酱油": ["jiangyou", "jiang you", "jy"], "充电宝": ["chongdianbao", "chong dian bao", "cdb"],
    "蓝牙耳机": ["lanyaerji", "lan ya er ji", "lyej"], "数据线": ["shujuxian", "shu ju xian", "sjx"], "巧克力": ["qiaokeli", "qiao ke li", "qkl"],
}


_SYLLABLES = ["ve", "lo", "ra", "bri", "tix", "zen", "ka", "mi", "lu", "no", "sta", "ro", "qu", "ae", "li", "ne",
              "ter", "mon", "ix", "vo", "sa", "del", "ha", "pi", "cor", "ny", "tal", "us", "gre", "fi"]
_HANZI = "春夏秋冬山水云月星光花草竹松梅兰心悦美雅丽清新韵彩霞晨曦锦绣金玉珍珠翠青红白墨紫橙蓝天海风雪"


def _line_names(rng: random.Random) -> tuple[list[str], list[str]]:
    """Product-line names ("Velotix", "云锦") make the vocabulary realistically large:
    real catalogs have tens of thousands of distinct words, and fuzzy matching
    cost grows with the vocabulary, not with the catalog."""
    english = sorted({"".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).title() for _ in range(12000)})
    chinese = sorted({rng.choice(_HANZI) + rng.choice(_HANZI) for _ in range(3000)})
    return english, chinese


def build_catalog(n: int, rng: random.Random) -> list[ProductCard]:
    lines = _line_names(rng)
    cards: list[ProductCard] = []
    for pid in range(1, n + 1):
        maker = _chinese_card if rng.random() < 0.35 else _english_card
        cards.append(maker(pid, rng, lines))
    return cards


def _english_card(pid: int, rng: random.Random, lines: tuple[list[str], list[str]]) -> ProductCard:
    domain = rng.choice(list(EN_TYPES))
    prefix, kind, category = rng.choice(EN_TYPES[domain])
    brand = rng.choice(EN_BRANDS[domain])
    words = [brand, rng.choice(EN_ADJ), kind, rng.choice(EN_VARIANT), rng.choice(EN_SIZE)]
    if rng.random() < 0.7:
        words.insert(1, rng.choice(lines[0]))
    if rng.random() < 0.3:
        words.insert(2, rng.choice(EN_ADJ))
    if rng.random() < 0.3:  # shade / model number
        words.insert(-1, f"#{rng.randint(100, 999)}" if domain == "cosmetics" else f"X{rng.randint(1, 99)}")
    return ProductCard(pid, f"{prefix}-{pid:06d}", " ".join(words), category, brand, rng.randint(100, 99999))


def _chinese_card(pid: int, rng: random.Random, lines: tuple[list[str], list[str]]) -> ProductCard:
    prefix, kind, category = rng.choice(CN_TYPES)
    brand = rng.choice(CN_BRANDS)
    line = rng.choice(lines[1]) + "系列" if rng.random() < 0.5 else ""
    name = f"{brand} {line}{rng.choice(CN_ADJ)}{kind} {rng.choice(CN_VARIANT)} {rng.choice(EN_SIZE)}"
    return ProductCard(pid, f"{prefix}-{pid:06d}", name, category, brand, rng.randint(100, 99999))


# --- queries -------------------------------------------------------------------------

Judge = Callable[[list[SearchHit]], bool]


@dataclass(frozen=True, slots=True)
class Query:
    kind: str
    text: str
    ok: Judge  # relevance check on the result list ("did the rep get something right?")


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.choice(["drop", "swap", "sub", "dup"])
    if op == "drop":
        return word[:i] + word[i + 1 :]
    if op == "swap":
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    if op == "sub":
        return word[:i] + rng.choice(string.ascii_lowercase) + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _top_name_has(words: list[str]) -> Judge:
    wanted = [normalise(w) for w in words]
    return lambda hits: bool(hits) and all(w in normalise(hits[0].name) for w in wanted)


def _top_is(pid: int) -> Judge:
    return lambda hits: bool(hits) and hits[0].product_id == pid


def _empty(hits: list[SearchHit]) -> bool:
    return not hits


def _any_top(hits: list[SearchHit]) -> bool:
    return True


def make_queries(cards: list[ProductCard], n: int, rng: random.Random) -> list[Query]:
    english = [c for c in cards if c.name.isascii()]
    chinese = [c for c in cards if not c.name.isascii()]
    makers: list[tuple[float, Callable[[], Query]]] = [
        (0.15, lambda: _q_sku(rng.choice(cards), rng)),
        (0.10, lambda: _q_sku_prefix(rng.choice(cards), rng)),
        (0.20, lambda: _q_name(rng.choice(english), rng, typos=0)),
        (0.20, lambda: _q_name(rng.choice(english), rng, typos=rng.choice([1, 2]))),
        (0.10, lambda: _q_chinese(rng.choice(chinese), rng)),
        (0.10, lambda: _q_pinyin(rng)),
        (0.10, lambda: _q_nonsense(rng)),
        (0.05, lambda: _q_fullwidth(rng.choice(cards), rng)),
    ]
    weights = [w for w, _ in makers]
    return [rng.choices(makers, weights)[0][1]() for _ in range(n)]


def _q_sku(card: ProductCard, rng: random.Random) -> Query:
    text = card.sku if rng.random() < 0.5 else card.sku.lower()
    return Query("exact_sku", text, _top_is(card.product_id))


def _q_sku_prefix(card: ProductCard, rng: random.Random) -> Query:
    text = card.sku[: rng.randint(5, len(card.sku) - 1)]
    return Query("sku_prefix", text, lambda hits: bool(hits) and hits[0].sku.startswith(text))


def _q_name(card: ProductCard, rng: random.Random, typos: int) -> Query:
    words = card.name.split()
    k = rng.randint(2, min(3, len(words)))
    start = rng.randrange(0, len(words) - k + 1)
    chosen = words[start : start + k]
    if rng.random() < 0.3:
        rng.shuffle(chosen)
    typed = list(chosen)
    for i in rng.sample(range(len(typed)), min(typos, len(typed))):
        typed[i] = _typo(typed[i], rng)
    kind = "name" if typos == 0 else f"name_{typos}typo"
    return Query(kind, " ".join(typed), _top_name_has(chosen))


def _q_chinese(card: ProductCard, rng: random.Random) -> Query:
    part = rng.choice([p for p in card.name.split() if not p.isascii()])
    if len(part) > 2 and rng.random() < 0.6:
        size = rng.randint(2, len(part))
        at = rng.randrange(0, len(part) - size + 1)
        part = part[at : at + size]
    return Query("chinese", part, _top_name_has([part]))


def _q_pinyin(rng: random.Random) -> Query:
    word, forms = rng.choice(list(CN_PINYIN_QUERIES.items()))
    form = rng.choices(forms, [0.6, 0.25, 0.15])[0]
    kind = "pinyin_initials" if " " not in form and len(form) <= 4 and form != forms[0] else "pinyin"
    # Initials are ambiguous by nature, so they only need *some* answer.
    return Query(kind, form, _any_top if kind == "pinyin_initials" else _top_name_has([word]))


def _q_nonsense(rng: random.Random) -> Query:
    choice = rng.randrange(6)
    if choice == 0:
        text = "".join(rng.choice("qxzjvkw") for _ in range(rng.randint(5, 10)))
    elif choice == 1:
        text = "🙂🔥💄" * rng.randint(1, 5)
    elif choice == 2:
        text = " \t\n " * rng.randint(1, 3)
    elif choice == 3:
        text = "".join(rng.choice(string.ascii_letters + string.digits + " ") for _ in range(5000))
    elif choice == 4:
        text = "\x00\x1b[31m\u200b\ufeff"
    else:
        text = "zxqv wqkj"
    ok = _any_top if choice == 3 else _empty  # 5,000 random chars may legitimately hit something
    return Query("nonsense", text, ok)


def _q_fullwidth(card: ProductCard, rng: random.Random) -> Query:
    fw = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in card.sku)
    return Query("fullwidth_sku", fw, _top_is(card.product_id))


# --- measurement ------------------------------------------------------------------------


def rss_mib() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Run:
    impl: str
    index: SearchIndex | BaselineIndex
    build_s: float
    grown_mib: float
    by_kind: dict[str, list[float]]
    ok_by_kind: dict[str, int]
    every: list[float]
    results: list[list[SearchHit]]


IMPLS = {"new": SearchIndex, "old": BaselineIndex}
CLOCK = time.perf_counter  # --clock cpu: time.thread_time, for a machine other jobs keep busy


def build(impl: str, cards: list[ProductCard]) -> tuple[SearchIndex | BaselineIndex, float, float]:
    before = rss_mib()
    t0 = CLOCK()
    index = IMPLS[impl](cards)
    build_s = CLOCK() - t0
    return index, build_s, rss_mib() - before


def warm_pinyin(cards: list[ProductCard]) -> None:
    """Fill pypinyin's lazy tables and the per-run cache first, so neither build is charged for them."""
    for card in cards:
        pinyin_forms((normalise(card.name), normalise(card.brand or ""), normalise(card.category)))


def retained_bytes(index: object) -> int:
    """getsizeof over everything the index reaches, except the cards it shares with the caller
    and interned strings (brands, categories, tokens of the vocabulary count once)."""
    seen: set[int] = set()
    stack = [index]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (ProductCard, type)) or callable(obj) and not hasattr(obj, "__dict__"):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__slots__") or hasattr(obj, "__dict__"):
            names = list(getattr(obj, "__dict__", {}))
            for klass in type(obj).__mro__:
                names.extend(getattr(klass, "__slots__", ()))
            stack.extend(getattr(obj, name) for name in names if hasattr(obj, name) and name != "_lock")
    return total


def measure(impl: str, index: SearchIndex | BaselineIndex, build_s: float, grown: float,
            queries: list[Query]) -> Run:
    for q in queries[:50]:  # warm caches (lru_cache, allocator) before timing
        index.search(q.text)
    run = Run(impl, index, build_s, grown, {}, {}, [], [])
    for q in queries:
        t = CLOCK()
        hits = index.search(q.text)
        ms = (CLOCK() - t) * 1000
        run.every.append(ms)
        run.results.append(hits)
        run.by_kind.setdefault(q.kind, []).append(ms)
        run.ok_by_kind[q.kind] = run.ok_by_kind.get(q.kind, 0) + q.ok(hits)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--impl", choices=("both", "new", "old"), default="both")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this thread's CPU time, unaffected by other processes on the machine")
    parser.add_argument("--walk", action="store_true", help="also sum getsizeof over each index (slow)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    rng = random.Random(args.seed)

    cards = build_catalog(args.products, rng)
    queries = make_queries(cards, args.queries, rng)
    warm_pinyin(cards)
    impls = ["new", "old"] if args.impl == "both" else [args.impl]
    # Both indexes stay alive while the other is built, so neither RSS delta reuses
    # memory the other freed; the queries then run on each in turn.
    built = {impl: build(impl, cards) for impl in impls}
    runs = [measure(impl, *built[impl], queries) for impl in impls]

    print(f"{describe()} | products={len(cards)} queries={len(queries)} seed={args.seed} clock={args.clock}")
    for run in runs:
        walked = f", getsizeof walk {retained_bytes(run.index) / 2**20:.0f} MiB" if args.walk else ""
        print(f"{run.impl}: build {run.build_s:.2f} s, RSS growth {run.grown_mib:.0f} MiB "
              f"({run.grown_mib * 2**20 / len(cards):,.0f} B per product){walked}, "
              f"vocabulary {len(run.index._vocab)} tokens")  # noqa: SLF001 - diagnostics only
    print()
    head = " | ".join(f"{run.impl} p50 ms | {run.impl} p95 ms | {run.impl} max ms | {run.impl} relevant" for run in runs)
    print(f"| query kind | n | {head} |")
    print("|---|---:|" + "---:|---:|---:|---:|" * len(runs))
    for kind in sorted(runs[0].by_kind):
        print(f"| {kind} | {len(runs[0].by_kind[kind])} | " + " | ".join(cells(run.by_kind[kind], run.ok_by_kind[kind]) for run in runs) + " |")
    print("| **all** | " + f"{len(queries)} | " + " | ".join(cells(run.every, sum(run.ok_by_kind.values())) for run in runs) + " |")
    if len(runs) == 2:
        same = sum(_hits_key(a) == _hits_key(b) for a, b in zip(runs[0].results, runs[1].results))
        print(f"\nsame hits (id, score, matched_on, order) from old and new: {same}/{len(queries)} queries")
    print()
    for run in runs:
        upsert_ms = _time_upserts(run.index, cards, random.Random(args.seed + 1))
        print(f"{run.impl}: upsert (rename) p50/p95/max: {upsert_ms[0]:.3f} / {upsert_ms[1]:.3f} / "
              f"{upsert_ms[2]:.3f} ms; remove p50: {upsert_ms[3]:.3f} ms")
    baseline = _baseline(cards, queries, rng)
    print(f"baseline process.extract(WRatio) over all names, {baseline[2]} queries: "
          f"p50 {baseline[0]:.1f} ms, p95 {baseline[1]:.1f} ms")


def cells(samples: list[float], ok: int) -> str:
    return (f"{percentile(samples, 50):.2f} | {percentile(samples, 95):.2f} | {max(samples):.2f} | "
            f"{ok}/{len(samples)}")


def _hits_key(hits: list[SearchHit]) -> list[tuple[int, float, str]]:
    return [(h.product_id, h.score, h.matched_on) for h in hits]


def _time_upserts(index: SearchIndex | BaselineIndex, cards: list[ProductCard], rng: random.Random) -> tuple[float, float, float, float]:
    upserts: list[float] = []
    removes: list[float] = []
    for card in rng.sample(cards, 200):
        renamed = replace(card, name=card.name + f" v{rng.randint(2, 9)} {rng.choice(EN_VARIANT)}")
        t = CLOCK()
        index.upsert(renamed)
        upserts.append((CLOCK() - t) * 1000)
    for card in rng.sample(cards, 200):
        t = CLOCK()
        index.remove(card.product_id)
        removes.append((CLOCK() - t) * 1000)
        index.upsert(card)
    return statistics.median(upserts), percentile(upserts, 95), max(upserts), statistics.median(removes)


def _baseline(cards: list[ProductCard], queries: list[Query], rng: random.Random) -> tuple[float, float, int]:
    names = [c.name for c in cards]
    sample = [q for q in rng.sample(queries, min(40, len(queries))) if len(q.text) < 100]
    times: list[float] = []
    for q in sample:
        t = time.perf_counter()
        process.extract(q.text, names, scorer=fuzz.WRatio, limit=5)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), percentile(times, 95), len(sample)


if __name__ == "__main__":
    main()
