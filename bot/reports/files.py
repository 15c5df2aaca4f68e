"""What a report sends: the pictures, the CSVs (through `bot.csv_safe`) and the caption, and
/report's entry point that reads the data and draws them (drawing and writing off the event loop).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from bot.csv_safe import csv_document
from bot.db import Database
from bot.delivery.templates import Templates, money
from bot.delivery.transport import File
from bot.clock import shop_today
from bot.recovery import comparison
from bot.recovery.comparison import Comparison
from bot.recovery.funnel import FunnelReport
from bot.reports import analysis, charts
from bot.reports.charts import Font
from bot.reports.data import ReportData, load, load_comparison, load_funnel, rules_of
from bot.settings import Settings

CSV_COLUMNS = (
    "sku", "warehouse", "abc", "daily_demand", "days_of_cover", "turnover", "stockout_days", "xyz", "name",
    "units_sold", "revenue", "lost_sales", "on_hand", "stock_value", "days_since_sale", "slow_mover",
)


@dataclass(frozen=True, slots=True)
class ReportFiles:
    caption: str  # HTML, under the first picture
    photos: list[File]
    csv: File
    recovery_csv: File | None = None  # offered against held out, while there is a control group

    @property
    def documents(self) -> list[File]:
        return [self.csv] if self.recovery_csv is None else [self.csv, self.recovery_csv]


def render(templates: Templates, locale: str, data: ReportData, funnel_report: FunnelReport | None,
           font: Font | None = None, against: Comparison | None = None) -> ReportFiles:
    font = font or charts.find_font()
    t = charts.labeller(templates, charts.chart_locale(templates, locale, font))
    r = data.report
    pareto = analysis.pareto(r)
    photos = [File("photo", "abc.png", charts.pareto_chart(
        font, t, product_share=pareto.product_share, revenue_share=pareto.revenue_share, counts=pareto.counts,
        shares=pareto.shares, a_share=data.rules.a_share, b_share=data.rules.b_share, days=data.days))]
    counts, shares = analysis.abc_xyz_matrix(r)
    photos.append(File("photo", "abc_xyz.png", charts.matrix_chart(font, t, counts=counts, revenue_share=shares,
                                                                   days=data.days)))
    photos.append(File("photo", "stockouts.png", charts.stockout_chart(data, font, t)))
    photos.append(File("photo", "slow_movers.png", charts.slow_chart(data, font, t)))
    if funnel_report is not None:
        photos.append(File("photo", "funnel.png", charts.funnel_picture(font, t, funnel_report, data.days)))
    period = f"{data.first.isoformat()}_{data.last.isoformat()}"
    recovery_csv = None
    if against is not None and against.has_control_group:
        recovery_csv = File("document", f"recovery_{period}.csv",
                            csv_document(comparison.CSV_COLUMNS, comparison.csv_rows(against)),
                            templates.label(locale, "holdout_csv_caption"))
    return ReportFiles(
        caption=caption(templates, locale, data),
        photos=photos,
        csv=File("document", f"report_{period}.csv", csv_bytes(data), templates.label(locale, "report_csv_caption")),
        recovery_csv=recovery_csv,
    )


def caption(templates: Templates, locale: str, data: ReportData) -> str:
    r = data.report

    def day(d: date) -> datetime:  # a shop day, at noon so the `day` filter shows that date
        return datetime.combine(d, datetime.min.time().replace(hour=12), tzinfo=templates.zone)

    return templates.label(
        locale, "report_caption", first=day(data.first), last=day(data.last), days=data.days,
        revenue=money(int(r.revenue_cents.sum())), products=len(data.skus),
        a=int((r.abc == "A").sum()), b=int((r.abc == "B").sum()), c=int((r.abc == "C").sum()),
        stockout_days=int(r.stockout_days.sum()), lost=money(int(r.lost_cents.sum())), slow=int(r.slow.sum()),
        tied_up=money(int(r.stock_value_cents[r.slow].sum())),
    )


def _decimal(value: float, places: int) -> str:
    return "" if value != value or value in (np.inf, -np.inf) else f"{value:.{places}f}"  # NaN: empty


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def csv_bytes(data: ReportData) -> bytes:
    """One row per product and warehouse, UTF-8 with a BOM (spreadsheets on Chinese Windows).

    Rows are formatted one at a time: 100,000 rows never sit in memory as lists of strings.
    """
    r = data.report
    abc, xyz = r.abc.tolist(), r.xyz.tolist()
    names = data.names
    revenue = (r.sold * data.prices[r.product]).tolist()
    columns = zip(
        r.product.tolist(), data.warehouses, r.daily_demand.tolist(), r.days_of_cover.tolist(), r.turnover.tolist(),
        r.stockout_days.tolist(), r.sold.tolist(), revenue, r.lost_cents.tolist(), data.stock_now.tolist(),
        r.stock_value_cents.tolist(), data.last_sale_age.tolist(), r.slow.tolist(), strict=True,
    )
    rows = (
        (data.skus[p], warehouse, abc[p], _decimal(demand, 2), _decimal(cover, 1), _decimal(turnover, 2), out,
         xyz[p], names[p], sold, _money(rev), _money(lost), int(on_hand), _money(value),
         "" if age == np.inf else int(age), "yes" if slow else "")
        for p, warehouse, demand, cover, turnover, out, sold, rev, lost, on_hand, value, age, slow in columns
    )
    return csv_document(CSV_COLUMNS, rows)


async def build(session: AsyncSession, db: Database, settings: Settings, templates: Templates, *, days: int,
                locale: str, until: date | None = None) -> ReportFiles | None:
    """/report: the files for one user; None when there is nothing to report.

    The history and the funnel are read in a read-only session, so a long read never holds
    SQLite's write lock; the update's own session is committed before drawing, which takes seconds."""
    until = until or shop_today(settings.zone)
    async with db.read_session() as reader:
        data = await load(reader, days=days, until=until, rules=rules_of(settings))
        if data.empty:
            return None
        funnel_report = await load_funnel(reader, settings, days)
        against = await load_comparison(reader, settings, days)
    await session.commit()
    return await asyncio.to_thread(render, templates, locale, data, funnel_report, against=against)

