"""Render the charts /report and /stats send, for docs/reports.md (docs/img/report_*.png) and
docs/recovery.md (docs/img/stats_uplift_*.png).

    python benchmarks/make_report_images.py [--out docs/img]

The report: a seeded synthetic shop of 80 cosmetics (English and Chinese names, as real catalogs
mix them) over 56 days, through the same code as the bot: `files.render`, English charts, plus
the ABC and stockout charts in Chinese.

The control group: a seeded simulation of the shop tests/test_holdout.py builds: 3,000 regulars
drawn with HOLDOUT_PERCENT=20, 35 % of the offered and 20 % of the held out buying a 10.00 product
within the window, half of the offered with a 10 % coupon they redeem when they buy. Drawn through
the same code as /stats: `comparison`'s figures, `uplift.compare` and `uplift_chart.uplift_png`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_report import generate  # noqa: E402 - benchmarks/, beside this script

from bot.delivery.templates import Templates  # noqa: E402
from bot.recovery.comparison import Comparison  # noqa: E402
from bot.recovery.funnel import FunnelReport  # noqa: E402
from bot.recovery.uplift import compare  # noqa: E402
from bot.reports import charts, files  # noqa: E402
from bot.reports.charts import Font  # noqa: E402
from bot.reports.uplift_chart import uplift_png  # noqa: E402

NAMES = [
    "Velvet Lipstick Red", "丝绒口红 正红", "Matte Lipstick Rose", "唇釉 豆沙色", "Lip Gloss Clear", "保湿润唇膏",
    "Liquid Foundation 02", "气垫粉底 自然色", "Setting Powder", "遮瑕膏 浅色", "Mascara Volume", "防水睫毛膏",
    "Eyeliner Black", "眼影盘 大地色", "Brow Pencil Brown", "腮红 蜜桃", "Highlighter Gold", "卸妆水 500ml",
    "Cleansing Balm", "洗面奶 氨基酸", "Toner Hydrating", "精华液 烟酰胺", "Serum Vitamin C", "面霜 修护",
    "Night Cream", "眼霜 抗皱", "Sunscreen SPF50", "防晒喷雾", "Sheet Mask x10", "泥膜 清洁",
    "Body Lotion", "护手霜 玫瑰", "Shampoo Repair", "护发精油", "Hair Mask", "香水 小苍兰 50ml",
    "Perfume Oud 30ml", "指甲油 酒红", "Nail Remover", "化妆刷 套装",
]
FUNNEL = FunnelReport(
    datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC), {}, {},
    affected=212, contacted=188, not_contactable=24, reached=176, pressed=121, substitute_taken=58, waited=49,
    cancelled=14, bought=83, coupons_issued=40, coupons_redeemed=17, revenue_substitutes_cents=412_350,
    revenue_redemptions_cents=198_900, restock_notified=96,
)


def simulated(seed: int = 24) -> Comparison:
    rng = np.random.default_rng(seed)
    held_out = rng.random(3000) < 0.20
    coupon = rng.random(3000) < 0.5
    bought = rng.random(3000) < np.where(held_out, 0.20, 0.35)
    revenue = bought * (1000 - np.where(coupon & ~held_out, 100, 0))
    result = compare(bought[~held_out], revenue[~held_out], bought[held_out], revenue[held_out])
    return Comparison(datetime(2026, 11, 7, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC), 10, 20, result)


def write(target: Path, content: bytes) -> None:
    target.write_bytes(content)
    print(f"{target} {len(content) / 1024:.0f} KB")


def report_images(out: Path, templates: Templates, font: Font) -> None:
    names = [NAMES[i % len(NAMES)] for i in range(80)]
    data = generate(80, 56, seed=11, names=names)
    for locale, wanted in (("en", None), ("zh", {"abc.png", "stockouts.png"})):
        for photo in files.render(templates, locale, data, FUNNEL, font).photos:
            if wanted is None or photo.filename in wanted:
                write(out / f"report_{photo.filename[:-4]}_{locale}.png", photo.content)


def uplift_images(out: Path, templates: Templates, font: Font) -> None:
    comparison = simulated()
    for locale in ("en", "zh"):
        write(out / f"stats_uplift_{locale}.png", uplift_png(templates, locale, comparison, 30, font))
    print(templates.render("en", "stats_holdout", c=comparison))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    font = charts.find_font()
    if not font.cjk:
        sys.exit("no CJK font found (apt-get install fonts-noto-cjk): the Chinese charts would be English")
    templates = Templates()
    report_images(out, templates, font)
    uplift_images(out, templates, font)


if __name__ == "__main__":
    main()
