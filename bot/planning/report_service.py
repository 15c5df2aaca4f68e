"""/report and the weekly report: load a period from the database, run the report math, draw the
charts and write the CSV (drawing and writing off the event loop).

The history is read in chunks of products into dense series x days arrays (`reports.series_stats`
reduces each chunk), so memory stays bounded however large the catalog. A day without a history
row keeps the stock of the last day before it that has one (the bot records a day when stock
changes); its sales are 0.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import and_, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from bot.csv_safe import csv_document
from bot.db import Database
from bot.delivery import attachments
from bot.delivery.outbox import STAFF_PRIORITY, Outgoing
from bot.delivery.quiet import local_day
from bot.delivery.templates import Templates, money
from bot.delivery.transport import File
from bot.inventory.catalog import Catalog
from bot.models import DemandForecast, Product, Role, SalesDay, StockLevel, Warehouse, utcnow
from bot.planning import charts, reports
from bot.planning.charts import Bar, Font
from bot.recovery import funnel
from bot.recovery.funnel import FunnelReport
from bot.settings import Settings
from bot.shop.staff import locale_of, staff_with_role

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
MAX_DAYS = 365
TOP = 15
CHUNK_PRODUCTS = 5_000
KEEP_FILES = timedelta(days=35)
SLOW_MOVER_BOOST = 0.05  # added to a substitute's 0..1 score (bot/inventory/substitutes.py)
CSV_COLUMNS = (
    "sku", "warehouse", "abc", "daily_demand", "days_of_cover", "turnover", "stockout_days", "xyz", "name",
    "units_sold", "revenue", "lost_sales", "on_hand", "stock_value", "days_since_sale", "slow_mover",
)


def parse_days(text: str | None) -> int | None:
    """DAYS of `/report [DAYS]`: 1..365, default 30; None when it is not that."""
    text = (text or "").strip()
    if not text:
        return DEFAULT_DAYS
    if not text.isdecimal() or len(text) > 3:
        return None
    days = int(text)
    return days if 1 <= days <= MAX_DAYS else None


@dataclass(frozen=True, slots=True)
class ReportData:
    """A period's report with what the charts and the CSV need to name things."""

    first: date  # first day of the period (shop days)
    days: int
    skus: Sequence[str]  # per product
    names: Sequence[str]
    warehouses: Sequence[str]  # per series: the warehouse code
    several_warehouses: bool
    prices: np.ndarray  # per product, integer cents
    stock_now: np.ndarray  # per series
    last_sale_age: np.ndarray  # per series, inf: never sold
    report: reports.Report
    rules: reports.Rules

    @property
    def last(self) -> date:
        return self.first + timedelta(days=self.days - 1)

    @property
    def empty(self) -> bool:
        return len(self.warehouses) == 0


def rules_of(settings: Settings) -> reports.Rules:
    return reports.Rules(
        a_share=settings.ABC_A_SHARE, b_share=settings.ABC_B_SHARE, slow_days=settings.SLOW_MOVER_DAYS,
        slow_cover_days=float(settings.SLOW_MOVER_COVER_DAYS),
    )


def carry_forward(on_hand: np.ndarray) -> np.ndarray:
    """Fill each unknown day with the last known stock before it (NaN before the first)."""
    known = ~np.isnan(on_hand)
    where = np.where(known, np.arange(on_hand.shape[1]), 0)
    np.maximum.accumulate(where, axis=1, out=where)
    filled = np.take_along_axis(on_hand, where, axis=1)
    seen = np.maximum.accumulate(known, axis=1)
    return np.where(seen, filled, np.nan).astype(on_hand.dtype, copy=False)


async def load(session: AsyncSession, *, days: int, until: date, rules: reports.Rules,
               chunk_products: int = CHUNK_PRODUCTS) -> ReportData:
    """The `days` shop days before `until` (not included)."""
    first = until - timedelta(days=days)
    in_period = and_(SalesDay.day >= first, SalesDay.day < until)
    keys = union(
        select(StockLevel.product_id, StockLevel.warehouse_id),
        select(SalesDay.product_id, SalesDay.warehouse_id).where(in_period),
        select(DemandForecast.product_id, DemandForecast.warehouse_id),
    ).subquery()
    pairs = np.array((await session.execute(select(keys).order_by(*keys.c))).all(), dtype=np.int64).reshape(-1, 2)
    product_ids = np.unique(pairs[:, 0])
    catalogue = {
        pid: (sku, name, price) for pid, sku, name, price in await session.execute(
            select(Product.id, Product.sku, Product.name, Product.price_cents).where(
                Product.id.in_(select(keys.c.product_id)))
        )
    }
    codes = dict((await session.execute(select(Warehouse.id, Warehouse.code))).all())
    index = {(int(p), int(w)): i for i, (p, w) in enumerate(pairs)}
    n = len(pairs)
    product = np.searchsorted(product_ids, pairs[:, 0])
    stock_now = np.zeros(n)
    for pid, wid, on_hand in await session.execute(
        select(StockLevel.product_id, StockLevel.warehouse_id, StockLevel.on_hand)
    ):
        stock_now[index[(pid, wid)]] = on_hand
    forecast = np.full(n, np.nan)
    forecast_cover = np.full(n, np.nan)
    for pid, wid, demand, cover in await session.execute(
        select(DemandForecast.product_id, DemandForecast.warehouse_id, DemandForecast.daily_demand,
               DemandForecast.days_of_cover)
    ):
        i = index[(pid, wid)]
        forecast[i] = demand
        forecast_cover[i] = np.nan if cover is None else cover
    last_sale_age = np.full(n, np.inf)
    for pid, wid, last in await session.execute(
        select(SalesDay.product_id, SalesDay.warehouse_id, func.max(SalesDay.day))
        .where(SalesDay.sold > 0, SalesDay.day < until).group_by(SalesDay.product_id, SalesDay.warehouse_id)
    ):
        if (pid, wid) in index:
            last_sale_age[index[(pid, wid)]] = (until - last).days - 1  # 0: sold on the last day
    oldest = await session.scalar(select(func.min(SalesDay.day)).where(SalesDay.day < until))
    chunks = []
    for start in range(0, len(product_ids), chunk_products):
        ids = product_ids[start : start + chunk_products]
        lo = int(np.searchsorted(pairs[:, 0], ids[0], side="left"))
        hi = int(np.searchsorted(pairs[:, 0], ids[-1], side="right"))
        sold = np.zeros((hi - lo, days), dtype=np.int32)
        on_hand = np.full((hi - lo, days), np.nan, dtype=np.float32)
        rows = (await session.execute(
            select(SalesDay.product_id, SalesDay.warehouse_id, SalesDay.day, SalesDay.sold, SalesDay.on_hand)
            .where(in_period, SalesDay.product_id >= int(ids[0]), SalesDay.product_id <= int(ids[-1]))
        )).all()
        if rows:
            series = np.fromiter((index[(r[0], r[1])] - lo for r in rows), dtype=np.int64, count=len(rows))
            day = np.fromiter(((r[2] - first).days for r in rows), dtype=np.int64, count=len(rows))
            sold[series, day] = np.fromiter((r[3] for r in rows), dtype=np.int32, count=len(rows))
            on_hand[series, day] = np.fromiter((np.nan if r[4] is None else r[4] for r in rows), dtype=np.float32,
                                               count=len(rows))
        chunks.append(reports.series_stats(sold, carry_forward(on_hand)))
    return assemble(
        first=first, days=days, skus=[catalogue[int(p)][0] for p in product_ids],
        names=[catalogue[int(p)][1] for p in product_ids],
        prices=np.array([catalogue[int(p)][2] for p in product_ids], dtype=np.int64),
        warehouses=[codes[int(w)] for w in pairs[:, 1]], product=product, stats=reports.concat(chunks),
        forecast=forecast, forecast_cover=forecast_cover, stock_now=stock_now, last_sale_age=last_sale_age,
        rules=rules, history_days=(until - oldest).days if oldest else 0,
    )


def assemble(*, first: date, days: int, skus: Sequence[str], names: Sequence[str], prices: np.ndarray,
             warehouses: Sequence[str], product: np.ndarray, stats: reports.SeriesStats, forecast: np.ndarray,
             forecast_cover: np.ndarray, stock_now: np.ndarray, last_sale_age: np.ndarray,
             rules: reports.Rules, history_days: float = np.inf) -> ReportData:
    """The report of loaded (or generated) arrays: products, then one entry per series."""
    report = reports.build(
        stats, product=product, price_cents=prices, forecast=forecast, forecast_cover=forecast_cover,
        stock_now=stock_now, last_sale_age=last_sale_age, rules=rules, history_days=history_days,
    )
    return ReportData(
        first=first, days=days, skus=skus, names=names, warehouses=warehouses,
        several_warehouses=len(set(warehouses)) > 1, prices=prices, stock_now=stock_now,
        last_sale_age=last_sale_age, report=report, rules=rules,
    )


# --- pictures and the CSV (synchronous: run them in a worker thread) -----------------------------


def chart_locale(templates: Templates, locale: str, font: Font) -> str:
    """Chinese charts need a CJK font; without one they are drawn in English."""
    return locale if font.cjk or locale == "en" else "en"


def labeller(templates: Templates, locale: str) -> charts.Label:
    return lambda key, **values: html.unescape(templates.label(locale, key, **values))


@dataclass(frozen=True, slots=True)
class ReportFiles:
    caption: str  # HTML, under the first picture
    photos: list[File]
    csv: File


def funnel_stages(t: charts.Label, r: FunnelReport) -> list[tuple[str, int]]:
    return [
        (t("funnel_affected"), r.affected), (t("funnel_contacted"), r.contacted),
        (t("stats_reached"), r.reached), (t("stats_pressed"), r.pressed),
        (t("stats_taken"), r.substitute_taken), (t("stats_waited"), r.waited), (t("stats_bought"), r.bought),
    ]


def funnel_png(templates: Templates, locale: str, r: FunnelReport, days: int, font: Font | None = None) -> bytes:
    font = font or charts.find_font()
    t = labeller(templates, chart_locale(templates, locale, font))
    return charts.funnel_chart(font, t, funnel_stages(t, r), title=t("stats_chart_title", days=days),
                               subtitle=t("stats_chart_subtitle", kept=money(r.revenue_kept_cents)))


def _series_label(data: ReportData, font: Font, i: int) -> str:
    p = int(data.report.product[i])
    return charts.product_label(font, data.skus[p], data.names[p],
                                data.warehouses[i] if data.several_warehouses else None)


def render(templates: Templates, locale: str, data: ReportData, funnel_report: FunnelReport | None,
           font: Font | None = None) -> ReportFiles:
    font = font or charts.find_font()
    t = labeller(templates, chart_locale(templates, locale, font))
    r = data.report
    pareto = reports.pareto(r)
    photos = [File("photo", "abc.png", charts.pareto_chart(
        font, t, product_share=pareto.product_share, revenue_share=pareto.revenue_share, counts=pareto.counts,
        shares=pareto.shares, a_share=data.rules.a_share, b_share=data.rules.b_share, days=data.days))]
    counts, shares = reports.abc_xyz_matrix(r)
    photos.append(File("photo", "abc_xyz.png", charts.matrix_chart(font, t, counts=counts, revenue_share=shares,
                                                                   days=data.days)))
    photos.append(File("photo", "stockouts.png", stockout_chart(data, font, t)))
    photos.append(File("photo", "slow_movers.png", slow_chart(data, font, t)))
    if funnel_report is not None:
        photos.append(File("photo", "funnel.png", charts.funnel_chart(
            font, t, funnel_stages(t, funnel_report), title=t("stats_chart_title", days=data.days),
            subtitle=t("stats_chart_subtitle", kept=money(funnel_report.revenue_kept_cents)))))
    name = f"report_{data.first.isoformat()}_{data.last.isoformat()}.csv"
    return ReportFiles(
        caption=caption(templates, locale, data),
        photos=photos,
        csv=File("document", name, csv_bytes(data), templates.label(locale, "report_csv_caption")),
    )


def stockout_chart(data: ReportData, font: Font, t: charts.Label) -> bytes:
    r = data.report
    # Rank by lost sales, then by days out (a product with no known demand still shows).
    score = r.lost_cents.astype(np.float64) * (MAX_DAYS + 1) + r.stockout_days
    top = r.top(np.where(r.stockout_days > 0, score, 0), TOP)
    bars = [Bar(_series_label(data, font, i), float(r.lost_cents[i]),
                t("chart_stockout_note", days=int(r.stockout_days[i]), lost=money(int(r.lost_cents[i]))), charts.LOST)
            for i in top]
    return charts.bar_chart(font, t("chart_stockouts_title"), bars, empty=t("chart_no_stockouts"),
                            subtitle=t("chart_stockouts_subtitle", n=len(bars), total=money(int(r.lost_cents.sum()))))


def slow_chart(data: ReportData, font: Font, t: charts.Label) -> bytes:
    r = data.report
    top = r.top(np.where(r.slow, r.stock_value_cents, 0), TOP)
    bars = []
    for i in top:
        value = money(int(r.stock_value_cents[i]))
        note = (t("chart_slow_note_unsold", value=value) if r.slow_unsold[i]
                else t("chart_slow_note_cover", value=value, cover=round(float(r.days_of_cover[i]))))
        bars.append(Bar(_series_label(data, font, i), float(r.stock_value_cents[i]), note,
                        charts.UNSOLD if r.slow_unsold[i] else charts.OVERSTOCK))
    return charts.bar_chart(
        font, t("chart_slow_title"), bars, empty=t("chart_no_slow"),
        subtitle=t("chart_slow_subtitle", n=len(bars), count=int(r.slow.sum()),
                   total=money(int(r.stock_value_cents[r.slow].sum())), days=data.rules.slow_days,
                   cover=round(data.rules.slow_cover_days)),
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


# --- the two entry points ------------------------------------------------------------------------


def shop_today(settings: Settings) -> date:
    return date.fromisoformat(local_day(utcnow(), settings.zone))


async def build(session: AsyncSession, db: Database, settings: Settings, templates: Templates, *, days: int,
                locale: str, until: date | None = None) -> ReportFiles | None:
    """/report: the files for one user; None when there is nothing to report.

    The history and the funnel are read in a read-only session, so a long read never holds
    SQLite's write lock; the update's own session is committed before drawing, which takes seconds."""
    until = until or shop_today(settings)
    async with db.read_session() as reader:
        data = await load(reader, days=days, until=until, rules=rules_of(settings))
        if data.empty:
            return None
        funnel_report = await _funnel(reader, settings, days)
    await session.commit()
    return await asyncio.to_thread(render, templates, locale, data, funnel_report)


async def _funnel(session: AsyncSession, settings: Settings, days: int) -> FunnelReport:
    now = utcnow()
    return await funnel.build_report(session, since=now - timedelta(days=days), until=now,
                                     attribution_days=settings.ATTRIBUTION_DAYS)


async def report_recipients(session: AsyncSession, admin_ids: frozenset[int]) -> list[int]:
    found = set(admin_ids)
    for role in (Role.ADMIN, Role.PURCHASER):
        found.update(await staff_with_role(session, role))
    return sorted(found)


async def weekly_report(db: Database, settings: Settings, templates: Templates, *, days: int = DEFAULT_DAYS,
                        until: date | None = None) -> int:
    """The job: queue the report for each admin and purchaser, once per shop week; returns how many."""
    until = until or shop_today(settings)
    year, week, _ = until.isocalendar()
    async with db.read_session() as session:
        recipients = await report_recipients(session, settings.ADMIN_IDS)
        locales = {user: await locale_of(session, user, settings.DEFAULT_LOCALE) for user in recipients}
        data = await load(session, days=days, until=until, rules=rules_of(settings)) if recipients else None
        funnel_report = await _funnel(session, settings, days) if data and not data.empty else None
    async with db.transaction() as session:
        await attachments.forget_sent(session, utcnow() - KEEP_FILES)
    if data is None or data.empty:
        return 0
    files = {
        locale: await asyncio.to_thread(render, templates, locale, data, funnel_report)
        for locale in sorted(set(locales.values()))
    }
    queued = 0
    async with db.transaction() as session:
        for user, locale in locales.items():
            bundle = files[locale]
            text = templates.label(locale, "report_weekly_caption", caption=bundle.caption)
            message = Outgoing(f"weekly_report:{year}-W{week:02d}:{user}", user, "weekly_report", text,
                               priority=STAFF_PRIORITY)
            if await attachments.enqueue_with_files(session, message, [*bundle.photos, bundle.csv]):
                queued += 1
    return queued


# --- slow movers as substitutes ------------------------------------------------------------------


async def slow_mover_ids(session: AsyncSession, *, until: date, rules: reports.Rules) -> set[int]:
    """Products in stock that are slow movers, all warehouses together: no sale in `slow_days`
    days (once the history reaches back that far), or every forecast of it over
    `slow_cover_days` days of cover. (The report also estimates cover without a forecast; this
    cheap query, run for the substitute boost, uses the forecasts only.)"""
    oldest = await session.scalar(select(func.min(SalesDay.day)).where(SalesDay.day < until))
    covered = (
        select(DemandForecast.product_id).group_by(DemandForecast.product_id)
        .having(func.min(DemandForecast.days_of_cover) > rules.slow_cover_days)
    )
    slow = [Product.id.in_(covered)]
    if oldest is not None and (until - oldest).days >= rules.slow_days:
        recent = select(SalesDay.product_id).where(
            SalesDay.sold > 0, SalesDay.day >= until - timedelta(days=rules.slow_days), SalesDay.day < until)
        slow.append(Product.id.not_in(recent))
    return set(await session.scalars(select(Product.id).where(Product.on_hand_total > 0, or_(*slow))))


async def refresh_slow_movers(db: Database, settings: Settings, catalog: Catalog) -> int:
    """The job: when a product runs out, in-stock slow movers of its category rank a little
    higher as substitutes (SLOW_MOVER_BOOST): selling them frees the stock they tie up."""
    async with db.read_session() as session:
        found = await slow_mover_ids(session, until=shop_today(settings), rules=rules_of(settings))
    catalog.substitute_boost = dict.fromkeys(found, SLOW_MOVER_BOOST)
    return len(found)
