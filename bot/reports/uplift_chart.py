"""The /stats picture of the control group: the share who bought, offered against held out, each
with its 95 % Wilson interval, and the uplift and revenue added (or "too few to say") beneath.

Drawn with the report charts' own figure and type sizes (bot/reports/charts.py), so it reads like
the funnel picture it is sent with; synchronous, for a worker thread.
"""

from __future__ import annotations

from bot.delivery.templates import Templates, money
from bot.reports import charts
from bot.reports.charts import BASE_PT, FUNNEL, MUTED, OVERSTOCK, TITLE_PT, Font
from bot.recovery.comparison import Comparison
from bot.recovery.uplift import wilson

HEIGHT_IN = 4.6


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def uplift_png(templates: Templates, locale: str, comparison: Comparison, days: int, font: Font | None = None) -> bytes:
    font = font or charts.find_font()
    t = charts.labeller(templates, charts.chart_locale(templates, locale, font))
    r = comparison.result
    fig = charts._figure(HEIGHT_IN, constrained=False)
    fig.suptitle(t("holdout_chart_title", days=days), fontsize=TITLE_PT, fontweight="bold", x=0.02, y=0.97,
                 ha="left", va="top")
    ax = fig.add_axes((0.03, 0.34, 0.94, 0.48))
    ax.set_axis_off()
    if not comparison.has_control_group:
        ax.text(0.5, 0.5, t("holdout_chart_none"), ha="center", va="center", fontsize=BASE_PT + 2, color=MUTED,
                wrap=True)
        return charts._png(fig, font)
    groups = [(t("holdout_chart_offered", n=r.offered.customers), r.offered, FUNNEL),
              (t("holdout_chart_held_out", n=r.held_out.customers), r.held_out, OVERSTOCK)]
    highest = max(wilson(g.bought, g.customers)[1] for _label, g, _c in groups if g.customers)
    for y, (label, group, colour) in zip((1.0, 0.0), groups, strict=True):
        ax.text(0, y + 0.12, label, ha="left", va="bottom", fontsize=BASE_PT)
        if not group.customers:
            continue
        share = group.bought / group.customers
        low, high = wilson(group.bought, group.customers)  # rounding can put 0 bought a hair above low
        ax.barh(y - 0.12, max(share, highest * 0.004), height=0.32, color=colour)
        ax.errorbar(share, y - 0.12, xerr=[[max(share - low, 0.0)], [max(high - share, 0.0)]], fmt="none", ecolor="#212121",
                    elinewidth=1.6, capsize=6)
        ax.text(highest * 1.02, y + 0.12, t("holdout_chart_share", share=f"{100 * share:.1f}"), ha="right",
                va="bottom", fontsize=BASE_PT, fontweight="bold")
    ax.set_xlim(0, highest * 1.02 or 1.0)
    ax.set_ylim(-0.45, 1.5)
    if r.uplift is None or r.incremental_revenue_cents is None:
        summary = t("holdout_chart_too_few", n=r.min_group)
    else:
        m = r.incremental_revenue_cents
        summary = t("holdout_chart_uplift", value=_points(r.uplift.value), low=_points(r.uplift.low),
                    high=_points(r.uplift.high), added=money(int(m.value)), added_low=money(int(m.low)),
                    added_high=money(int(m.high)))
    fig.text(0.02, 0.06, summary + "\n" + t("holdout_chart_whiskers", window=comparison.window_days),
             fontsize=BASE_PT - 1, color=MUTED, ha="left", va="bottom", wrap=True)
    return charts._png(fig, font)
