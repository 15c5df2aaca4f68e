"""Report charts as PNG bytes, for a phone screen: matplotlib's object API, no pyplot. The chart
kinds first (bars, Pareto, matrix, funnel), then the report's own pictures drawn with them.

No pyplot means no global figure state: each chart is its own `Figure` on its own Agg canvas,
so charts may be drawn in worker threads (`asyncio.to_thread`) while the bot serves. Every
chart is 900 px wide with large type (a phone shows it about 360 points wide), a handful of
colours, and margins that leave room for every label (constrained layout, or worked out from the
type sizes).

Chinese text needs a CJK font. `find_font` looks for one by file through matplotlib's font
manager (Debian's fonts-noto-cjk); without one, charts fall back to English labels and product
SKUs, so a missing font never shows as boxes. A product name is shown only when the font has a
glyph for each of its characters.
"""

from __future__ import annotations

import functools
import html
import io
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bot.delivery.templates import Templates, money
from bot.recovery.funnel import FunnelReport
from bot.reports.data import MAX_DAYS, ReportData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 150
WIDTH_IN = 6.0  # 900 px: large type relative to the width a phone shows
BASE_PT = 14
TITLE_PT = 18
CLASS_COLOURS = {"A": "#2e7d32", "B": "#f9a825", "C": "#9e9e9e"}
LOST = "#c62828"
UNSOLD = "#6a1b9a"
OVERSTOCK = "#90a4ae"
FUNNEL = "#1565c0"
MUTED = "#616161"
LABEL_CHARS = 26
ROW_IN = 0.55  # height of one bar's row, inches
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Noto Sans CJK JP")
LATIN_FAMILY = "DejaVu Sans"  # ships with matplotlib

Label = Callable[..., str]  # t(key, **values): a message label in the chart's language


@dataclass(frozen=True, slots=True)
class Font:
    families: tuple[str, ...]  # tried in turn for each glyph
    coverage: tuple[frozenset[int], ...]  # the code points of each family
    cjk: bool

    def covers(self, text: str) -> bool:
        return all(any(ord(ch) in points for points in self.coverage) for ch in text)

    def for_text(self, text: str) -> list[str]:
        """The first family that has every glyph of `text` (one look for every label, and one
        font is cheaper to lay out), else all of them, for matplotlib to fall back glyph by glyph."""
        for family, points in zip(self.families, self.coverage, strict=True):
            if all(ord(ch) in points for ch in text if not ch.isspace()):
                return [family]
        return list(self.families)


def _font(families: tuple[str, ...], cjk: bool) -> Font:
    from matplotlib import font_manager  # deferred (heavy): only reports draw, see _figure

    coverage = []
    for family in families:
        path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        coverage.append(frozenset(font_manager.get_font(path).get_charmap()))
    return Font(families, tuple(coverage), cjk)


@functools.cache
def latin_font() -> Font:
    return _font((LATIN_FAMILY,), cjk=False)


@functools.cache
def find_font() -> Font:
    """The CJK font when one is installed (looked up once per process), else Latin only."""
    from matplotlib import font_manager  # deferred (heavy): only reports draw, see _figure

    known = {entry.name for entry in font_manager.fontManager.ttflist}
    if not known.intersection(CJK_FAMILIES):
        # Installed after matplotlib built its font cache: register the files themselves.
        for path in font_manager.findSystemFonts():
            name = path.rsplit("/", 1)[-1].lower()
            if any(key in name for key in ("notosanscjk", "notosanssc", "sourcehansans", "wqy")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        known = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:
            return _font((family, LATIN_FAMILY), cjk=True)
    return latin_font()


def product_label(font: Font, sku: str, name: str, warehouse: str | None = None) -> str:
    """`SKU name` shortened for a bar label; the SKU alone where the font lacks a glyph."""
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in "CZ" or ch == " ").strip()
    text = f"{sku} {name}" if name and font.covers(name) else sku
    if len(text) > LABEL_CHARS:
        text = text[: LABEL_CHARS - 1].rstrip() + "…"
    if not font.covers(text):
        text = sku
    return f"{text} · {warehouse}" if warehouse else text


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    note: str  # written at the end of the bar
    colour: str


def _figure(height_in: float, *, constrained: bool = True) -> Figure:
    # Imported here: matplotlib takes a while to load and only reports need it.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # No glyph hinting: at this size (14 pt at 150 dpi, ~29 px) it changes nothing a reader sees,
    # and it is most of the time matplotlib 3.11 spends on each label (a 15-row chart: ~250 ->
    # ~200 ms of CPU). The only rcParam the bot sets; charts are its only use of matplotlib.
    matplotlib.rcParams["text.hinting"] = "no_hinting"
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def _line_in(points: float) -> float:
    return points * 1.35 / 72  # a line of text at that size, with the font's leading


def _png(fig: Figure, font: Font) -> bytes:
    from matplotlib.text import Text  # deferred (heavy): only reports draw, see _figure

    for ax in fig.axes:
        ax.tick_params(labelfontfamily=[LATIN_FAMILY])  # numbers; named ticks are set below
    for text in fig.findobj(Text):
        text.set_fontfamily(font.for_text(text.get_text()))
    buffer = io.BytesIO()
    # The lightest compression: a fraction of the default's encoding time for a larger file
    # (still well under the 1 MB a chart may take).
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _title(fig: Figure, title: str, subtitle: str | None = None) -> None:
    fig.suptitle(title, fontsize=TITLE_PT, fontweight="bold", x=0.02, ha="left")
    if subtitle:
        fig.supxlabel(subtitle, fontsize=BASE_PT - 1, color=MUTED, x=0.02, ha="left")


def _empty(fig: Figure, message: str) -> None:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=BASE_PT + 2, color=MUTED, wrap=True)


def bar_chart(font: Font, title: str, bars: Sequence[Bar], *, empty: str, subtitle: str | None = None) -> bytes:
    """One row per bar, largest on top: the label on the left and the value on the right, above a
    bar that may use the whole width. Phone-shaped: the text gets the full width instead of
    sharing it with the bars, and nothing needs an axis to be read."""
    height = max(4.0, 1.5 + ROW_IN * len(bars))
    # Laid out by hand: the constrained layout engine measures every label in an extra pass,
    # a third of the drawing time, for margins that follow from the type sizes anyway.
    fig = _figure(height, constrained=False)
    pad = 0.08  # inches around the edges
    top = pad + _line_in(TITLE_PT) * (title.count("\n") + 1) + 0.1
    bottom = pad + (_line_in(BASE_PT - 1) * (subtitle.count("\n") + 1) + 0.05 if subtitle else 0.0)
    fig.suptitle(title, fontsize=TITLE_PT, fontweight="bold", x=0.02, y=1 - pad / height, ha="left", va="top")
    if subtitle:
        fig.supxlabel(subtitle, fontsize=BASE_PT - 1, color=MUTED, x=0.02, y=pad / height, ha="left", va="bottom")
    left, right = pad / WIDTH_IN, 1 - pad / WIDTH_IN
    ax = fig.add_axes((left, bottom / height, right - left, 1 - (top + bottom) / height))
    if not bars:
        ax.set_axis_off()
        ax.text(0.5, 0.5, empty, ha="center", va="center", fontsize=BASE_PT + 2, color=MUTED, wrap=True)
        return _png(fig, font)
    rows = np.arange(len(bars))[::-1].astype(float)
    top = max(bar.value for bar in bars) or 1.0
    ax.barh(rows - 0.18, [max(bar.value, top * 0.004) for bar in bars], height=0.34,
            color=[bar.colour for bar in bars])
    edge = ax.get_yaxis_transform()  # x in axes fractions, y in rows
    for y, bar in zip(rows, bars, strict=True):
        ax.text(0, y + 0.06, bar.label, transform=edge, ha="left", va="bottom", fontsize=BASE_PT)
        ax.text(1, y + 0.06, bar.note, transform=edge, ha="right", va="bottom", fontsize=BASE_PT,
                fontweight="bold")
    ax.set_xlim(0, top)
    ax.set_ylim(-0.5, len(bars) - 0.3)
    ax.set_axis_off()
    return _png(fig, font)


def pareto_chart(font: Font, t: Label, *, product_share: np.ndarray, revenue_share: np.ndarray,
                 counts: dict[str, int], shares: dict[str, float], a_share: float, b_share: float,
                 days: int) -> bytes:
    fig = _figure(7.0)
    _title(fig, t("chart_abc_title"), t("chart_period", days=days))
    if len(product_share) < 2:
        _empty(fig, t("chart_no_sales"))
        return _png(fig, font)
    ax = fig.add_subplot()
    x, y = product_share * 100, revenue_share * 100
    a_end = float(np.interp(a_share * 100, y, x)) if y[-1] >= a_share * 100 else x[-1]
    b_end = float(np.interp(b_share * 100, y, x)) if y[-1] >= b_share * 100 else x[-1]
    bounds = {"A": (0.0, a_end), "B": (a_end, b_end), "C": (b_end, 100.0)}
    for cls, (start, end) in bounds.items():
        ax.axvspan(start, end, color=CLASS_COLOURS[cls], alpha=0.18, lw=0)
        ax.text((start + end) / 2 if end - start > 12 else start + 1, 6 if cls != "C" else 40,
                t("chart_class_note", cls=cls, n=counts[cls], share=round(shares[cls] * 100)),
                fontsize=BASE_PT - 1, ha="center" if end - start > 12 else "left",
                color={"A": CLASS_COLOURS["A"], "B": "#8d6e00", "C": MUTED}[cls], fontweight="bold")
    ax.plot(x, y, color="#212121", lw=2.5)
    for share in (a_share, b_share):
        ax.axhline(share * 100, color=MUTED, lw=1, ls="--")
        ax.text(101, share * 100, f"{share:.0%}", va="center", fontsize=BASE_PT - 2, color=MUTED)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 102)
    ax.set_xlabel(t("chart_abc_x"), fontsize=BASE_PT)
    ax.set_ylabel(t("chart_abc_y"), fontsize=BASE_PT)
    ax.tick_params(labelsize=BASE_PT - 1)
    ax.xaxis.set_major_formatter("{x:.0f}%")
    ax.yaxis.set_major_formatter("{x:.0f}%")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _png(fig, font)


def matrix_chart(font: Font, t: Label, *, counts: np.ndarray, revenue_share: np.ndarray, days: int) -> bytes:
    """ABC rows x XYZ columns: products in each cell and their share of revenue."""
    columns = [0, 1, 2] + ([3] if counts[:, 3].any() else [])
    fig = _figure(6.0)
    _title(fig, t("chart_matrix_title"), t("chart_matrix_note"))
    ax = fig.add_subplot()
    shown = revenue_share[:, columns]
    ax.imshow(shown, cmap="Greens", vmin=0, vmax=max(float(shown.max()), 0.01), aspect="auto")
    for row in range(3):
        for col, source in enumerate(columns):
            dark = shown[row, col] > 0.55 * max(float(shown.max()), 0.01)
            ax.text(col, row, t("chart_matrix_cell", n=int(counts[row, source]),
                                share=round(float(revenue_share[row, source]) * 100)),
                    ha="center", va="center", fontsize=BASE_PT + 4, color="white" if dark else "#212121")
    names = ["chart_xyz_x", "chart_xyz_y", "chart_xyz_z", "chart_xyz_none"]
    ax.set_xticks(range(len(columns)), [t(names[c]) for c in columns], fontsize=BASE_PT - 1)
    ax.set_yticks(range(3), [t("chart_abc_row", cls=cls) for cls in "ABC"], fontsize=BASE_PT + 4,
                  fontweight="bold")
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _png(fig, font)


def funnel_chart(font: Font, t: Label, stages: Sequence[tuple[str, int]], *, title: str, subtitle: str) -> bytes:
    """Each stage as a bar with its count and its share of the first stage; the subtitle (the
    revenue kept, what the funnel is for) stands under the title."""
    base = stages[0][1] if stages else 0
    bars = [
        Bar(label, count, f"{count} ({round(100 * count / base)}%)" if base else str(count), FUNNEL)
        for label, count in stages
    ]
    if not base:
        bars = []
    return bar_chart(font, f"{title}\n{subtitle}", bars, empty=t("chart_no_stockouts_period"))


# --- the report's pictures (synchronous: run them in a worker thread) ----------------------------

TOP = 15  # bars in the stockout and slow-mover charts


def chart_locale(templates: Templates, locale: str, font: Font) -> str:
    """Chinese charts need a CJK font; without one they are drawn in English."""
    return locale if font.cjk or locale == "en" else "en"


def labeller(templates: Templates, locale: str) -> Label:
    return lambda key, **values: html.unescape(templates.label(locale, key, **values))


def funnel_stages(t: Label, r: FunnelReport) -> list[tuple[str, int]]:
    return [
        (t("funnel_affected"), r.affected), (t("funnel_contacted"), r.contacted),
        (t("stats_reached"), r.reached), (t("stats_pressed"), r.pressed),
        (t("stats_taken"), r.substitute_taken), (t("stats_waited"), r.waited), (t("stats_bought"), r.bought),
    ]


def funnel_picture(font: Font, t: Label, r: FunnelReport, days: int) -> bytes:
    """The recovery funnel as /stats and the report show it."""
    return funnel_chart(font, t, funnel_stages(t, r), title=t("stats_chart_title", days=days),
                        subtitle=t("stats_chart_subtitle", kept=money(r.revenue_kept_cents)))


def funnel_png(templates: Templates, locale: str, r: FunnelReport, days: int, font: Font | None = None) -> bytes:
    font = font or find_font()
    return funnel_picture(font, labeller(templates, chart_locale(templates, locale, font)), r, days)


def _series_label(data: ReportData, font: Font, i: int) -> str:
    p = int(data.report.product[i])
    return product_label(font, data.skus[p], data.names[p],
                                data.warehouses[i] if data.several_warehouses else None)


def stockout_chart(data: ReportData, font: Font, t: Label) -> bytes:
    r = data.report
    # Rank by lost sales, then by days out (a product with no known demand still shows).
    score = r.lost_cents.astype(np.float64) * (MAX_DAYS + 1) + r.stockout_days
    top = r.top(np.where(r.stockout_days > 0, score, 0), TOP)
    bars = [Bar(_series_label(data, font, i), float(r.lost_cents[i]),
                t("chart_stockout_note", days=int(r.stockout_days[i]), lost=money(int(r.lost_cents[i]))), LOST)
            for i in top]
    return bar_chart(font, t("chart_stockouts_title"), bars, empty=t("chart_no_stockouts"),
                            subtitle=t("chart_stockouts_subtitle", n=len(bars), total=money(int(r.lost_cents.sum()))))


def slow_chart(data: ReportData, font: Font, t: Label) -> bytes:
    r = data.report
    top = r.top(np.where(r.slow, r.stock_value_cents, 0), TOP)
    bars = []
    for i in top:
        value = money(int(r.stock_value_cents[i]))
        note = (t("chart_slow_note_unsold", value=value) if r.slow_unsold[i]
                else t("chart_slow_note_cover", value=value, cover=round(float(r.days_of_cover[i]))))
        bars.append(Bar(_series_label(data, font, i), float(r.stock_value_cents[i]), note,
                        UNSOLD if r.slow_unsold[i] else OVERSTOCK))
    return bar_chart(
        font, t("chart_slow_title"), bars, empty=t("chart_no_slow"),
        subtitle=t("chart_slow_subtitle", n=len(bars), count=int(r.slow.sum()),
                   total=money(int(r.stock_value_cents[r.slow].sum())), days=data.rules.slow_days,
                   cover=round(data.rules.slow_cover_days)),
    )

