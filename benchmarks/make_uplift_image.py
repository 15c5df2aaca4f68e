"""Render the /stats picture of the control group, for docs/recovery.md (docs/img/stats_uplift_*.png).

    python benchmarks/make_uplift_image.py [--out docs/img]

A seeded simulation of the shop tests/test_holdout.py builds: 3,000 regulars drawn with
HOLDOUT_PERCENT=20, 35 % of the offered and 20 % of the held out buying a 10.00 product within the
window, half of the offered with a 10 % coupon they redeem when they buy. Drawn through the same
code as /stats: `comparison`'s figures, `uplift.compare` and `uplift_chart.uplift_png`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.delivery.templates import Templates  # noqa: E402
from bot.planning import charts  # noqa: E402
from bot.recovery.comparison import Comparison  # noqa: E402
from bot.recovery.uplift import compare  # noqa: E402
from bot.reports.uplift_chart import uplift_png  # noqa: E402


def simulated(seed: int = 24) -> Comparison:
    rng = np.random.default_rng(seed)
    held_out = rng.random(3000) < 0.20
    coupon = rng.random(3000) < 0.5
    bought = rng.random(3000) < np.where(held_out, 0.20, 0.35)
    revenue = bought * (1000 - np.where(coupon & ~held_out, 100, 0))
    result = compare(bought[~held_out], revenue[~held_out], bought[held_out], revenue[held_out])
    return Comparison(datetime(2026, 11, 7, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC), 10, 20, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    font = charts.find_font()
    if not font.cjk:
        sys.exit("no CJK font found (apt-get install fonts-noto-cjk): the Chinese chart would be English")
    comparison = simulated()
    templates = Templates()
    for locale in ("en", "zh"):
        target = out / f"stats_uplift_{locale}.png"
        target.write_bytes(uplift_png(templates, locale, comparison, 30, font))
        print(f"{target} {target.stat().st_size / 1024:.0f} KB")
    print(templates.render("en", "stats_holdout", c=comparison))


if __name__ == "__main__":
    main()
