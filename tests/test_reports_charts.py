"""Charts are real pictures a phone can show, in the user's language, with every glyph drawn."""

from __future__ import annotations

import struct
import warnings
from datetime import UTC, date, datetime

import numpy as np
import pytest

from bot.delivery.templates import Templates
from bot.reports import analysis, charts
from bot.reports.charts import Font
from bot.reports.data import ReportData, assemble
from bot.recovery.funnel import FunnelReport
from bot.reports.files import render

TEMPLATES = Templates()
NAMES = ["Velvet Lipstick Red", "丝绒口红 正红", "唇釉 豆沙色", "Setting Powder", "面霜 修护 🌹", "Mascara"]
FUNNEL = FunnelReport(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC), {}, {}, affected=20,
                      contacted=18, reached=17, pressed=9, substitute_taken=4, waited=3, bought=6,
                      revenue_substitutes_cents=12_345)


def sample(sold_scale: int = 1, stock: float = 20.0) -> ReportData:
    """Six products over three weeks: one runs out for a week, one never sells, one is overstocked."""
    rng = np.random.default_rng(3)
    days = 21
    sold = rng.poisson([[6], [4], [2], [1], [0], [3]], size=(6, days)).astype(np.int32) * sold_scale
    on_hand = np.full((6, days), stock, dtype=np.float32)
    on_hand[1, 10:17] = 0
    sold[1, 10:17] = 0
    on_hand[5] = 900  # far more than three weeks of sales
    return assemble(
        first=date(2026, 11, 9), days=days, skus=[f"SKU-{i}" for i in range(6)], names=NAMES,
        prices=np.array([1250, 8800, 6400, 3000, 15000, 4500]), warehouses=["SH"] * 6, product=np.arange(6),
        stats=analysis.series_stats(sold, on_hand), forecast=np.full(6, np.nan), forecast_cover=np.full(6, np.nan),
        stock_now=on_hand[:, -1].astype(float), last_sale_age=np.array([0, 0, 0, 1, np.inf, 0]),
        rules=analysis.Rules(slow_days=14, slow_cover_days=60),
    )


def png_size(content: bytes) -> tuple[int, int]:
    assert content[:8] == b"\x89PNG\r\n\x1a\n" and content[12:16] == b"IHDR"
    width, height = struct.unpack(">II", content[16:24])
    return width, height


def fonts() -> list[Font]:
    found = charts.find_font()
    return [found, charts.latin_font()] if found.cjk else [found]


@pytest.mark.parametrize("locale", ["en", "zh"])
@pytest.mark.parametrize("font", fonts(), ids=lambda f: f.families[0])
def test_every_chart_renders_a_phone_sized_png_without_missing_glyphs(locale: str, font: Font) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        files = render(TEMPLATES, locale, sample(), FUNNEL, font)
        stats_png = charts.funnel_png(TEMPLATES, locale, FUNNEL, 30, font)
    assert [p.filename for p in files.photos] == ["abc.png", "abc_xyz.png", "stockouts.png", "slow_movers.png",
                                                  "funnel.png"]
    for content in [p.content for p in files.photos] + [stats_png]:
        width, height = png_size(content)
        assert len(content) < 1_000_000
        assert width == 900 and 500 <= height <= 2000


def test_a_chart_with_a_glyph_the_font_lacks_fails_under_the_warnings_filter() -> None:
    """The guard above can fail: Chinese text drawn with a Latin-only font is caught."""
    with warnings.catch_warnings(), pytest.raises(UserWarning, match="missing from font"):
        warnings.simplefilter("error")
        bar = charts.Bar("x", 1.0, "x", charts.LOST)
        forced = Font(("DejaVu Sans",), (frozenset(range(0x30000)),), cjk=False)  # claims to cover everything
        charts.bar_chart(forced, "缺货", [bar], empty="")


def test_without_a_cjk_font_chinese_users_get_english_charts_and_skus() -> None:
    latin = charts.latin_font()
    assert charts.chart_locale(TEMPLATES, "zh", latin) == "en"
    assert charts.product_label(latin, "LIP-2", "丝绒口红 正红") == "LIP-2"
    assert charts.product_label(latin, "LIP-1", "Velvet Lipstick") == "LIP-1 Velvet Lipstick"
    cjk = charts.find_font()
    if cjk.cjk:
        assert charts.chart_locale(TEMPLATES, "zh", cjk) == "zh"
        assert charts.product_label(cjk, "LIP-2", "丝绒口红 正红") == "LIP-2 丝绒口红 正红"


@pytest.mark.parametrize(
    ("name", "warehouse", "expected"),
    [
        ("Velvet Lipstick Red Extra Long Name", None, "SKU-1 Velvet Lipstick Red…"),
        ("面霜 修护 🌹", None, "SKU-1"),  # the emoji has no glyph: the SKU alone
        ("Line\nbreak\tname", "BJ", "SKU-1 Linebreakname · BJ"),
        ("", None, "SKU-1"),
    ],
)
def test_product_labels_are_short_and_drawable(name: str, warehouse: str | None, expected: str) -> None:
    assert charts.product_label(charts.latin_font(), "SKU-1", name, warehouse) == expected


def test_a_quiet_period_still_gives_readable_pictures() -> None:
    quiet = sample(sold_scale=0, stock=0.0)
    empty_funnel = FunnelReport(FUNNEL.since, FUNNEL.until, {}, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        files = render(TEMPLATES, "en", quiet, empty_funnel, charts.latin_font())
    assert all(png_size(p.content)[0] == 900 for p in files.photos)
    assert "Revenue 0.00" in files.caption
