"""Report numbers a shop can check by hand: ABC/XYZ, stockout days, lost sales, turnover, cover."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import numpy as np
import pytest

from bot.db import Database
from bot.inventory.stock import warehouse_ids
from bot.models import DemandForecast, SalesDay
from bot.reports import analysis
from bot.reports.data import carry_forward, load, parse_days, rules_of
from bot.reports.files import csv_bytes
from bot.settings import SettingsError, load_settings
from tests.factories import add_product

UNTIL = date(2026, 11, 30)  # the report covers the 28 days before: 2 Nov .. 29 Nov
DAYS = 28
FIRST = UNTIL - timedelta(days=DAYS)


def history(product_id: int, warehouse_id: int, rows: dict[int, tuple[int, int | None]]) -> list[SalesDay]:
    """A product's days, as {day of the period: (sold, on_hand at its end)}."""
    return [SalesDay(product_id=product_id, warehouse_id=warehouse_id, day=FIRST + timedelta(days=d), sold=sold,
                     on_hand=on_hand, source="import") for d, (sold, on_hand) in rows.items()]


async def known_shop(db: Database) -> None:
    async with db.transaction() as session:
        hot = await add_product(session, "HOT", price="10.00", stock={"SH": 100})
        out = await add_product(session, "OUT", price="20.00", stock={"SH": 0})
        dead = await add_product(session, "DEAD", price="5.00", stock={"SH": 30})
        sh = (await warehouse_ids(session, ["SH"], create=False))["SH"]
        # HOT: 40 a day every day, 100 left each evening. No forecast: demand falls back to
        # the in-stock average.
        session.add_all(history(hot.id, sh, {d: (40, 100) for d in range(DAYS)}))
        # OUT: 5 a day with 50 left for 18 days, then empty at the end of day 18; days 19..27
        # have no row, so they keep day 18's stock (0): 10 stockout days. It has a forecast.
        session.add_all(history(out.id, sh, {**{d: (5, 50) for d in range(18)}, 18: (0, 0)}))
        session.add(DemandForecast(product_id=out.id, warehouse_id=sh, daily_demand=6.0, demand_class="smooth",
                                   days_of_cover=0.0))
        # DEAD: never sold; one row on the first day (30 on hand), carried through the period.
        session.add_all(history(dead.id, sh, {0: (0, 30)}))


async def test_csv_of_a_known_history_matches_the_hand_computation(db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    await known_shop(db)
    # The history reaches back 28 days: a slow mover is "no sale in 28 days" here.
    settings = settings.model_copy(update={"SLOW_MOVER_DAYS": DAYS})
    async with db.read_session() as session:
        data = await load(session, days=DAYS, until=UNTIL, rules=rules_of(settings))
    rows = {row["sku"]: row for row in csv.DictReader(io.StringIO(csv_bytes(data).decode("utf-8-sig")))}

    # Revenue: HOT 28 x 40 = 1,120 units x 10.00 = 11,200.00; OUT 18 x 5 = 90 units x 20.00
    # = 1,800.00; DEAD 0. Total 13,000.00. Ranked: HOT starts at 0 % (< 80 %): A; OUT starts
    # at 11,200 / 13,000 = 86.2 % (< 95 %): B; DEAD has no revenue: C.
    assert {sku: row["abc"] for sku, row in rows.items()} == {"HOT": "A", "OUT": "B", "DEAD": "C"}
    assert (rows["HOT"]["revenue"], rows["OUT"]["revenue"], rows["DEAD"]["revenue"]) == ("11200.00", "1800.00", "0.00")
    # Stockout days: days ending at 0. OUT: day 18 and the nine carried days after it.
    assert {sku: row["stockout_days"] for sku, row in rows.items()} == {"HOT": "0", "OUT": "10", "DEAD": "0"}
    # Daily demand: HOT has no forecast: 1,120 sold over 28 in-stock days = 40.00. OUT: its
    # forecast, 6.00 (the in-stock average would be 90 / 18 = 5). DEAD: 0 / 28 = 0.
    assert {sku: row["daily_demand"] for sku, row in rows.items()} == {"HOT": "40.00", "OUT": "6.00", "DEAD": "0.00"}
    # Lost sales = stockout days x daily demand x price: OUT 10 x 6 x 20.00 = 1,200.00.
    assert {sku: row["lost_sales"] for sku, row in rows.items()} == {"HOT": "0.00", "OUT": "1200.00", "DEAD": "0.00"}
    # Turnover = cost of goods sold / average stock value, cost = price, so units sold /
    # average units on hand: HOT 1,120 / 100 = 11.20; OUT 90 / ((18 x 50 + 10 x 0) / 28)
    # = 90 / 32.142857 = 2.80; DEAD 0 / 30 = 0.00.
    assert {sku: row["turnover"] for sku, row in rows.items()} == {"HOT": "11.20", "OUT": "2.80", "DEAD": "0.00"}
    # Cover: HOT 100 on hand / 40 a day = 2.5 days; OUT: the forecast's 0.0; DEAD: no demand.
    assert {sku: row["days_of_cover"] for sku, row in rows.items()} == {"HOT": "2.5", "OUT": "0.0", "DEAD": ""}
    # XYZ over 4 whole weeks: HOT 280 every week: CV 0, X. OUT weeks 35, 35, 20, 0: mean 22.5,
    # std sqrt((12.5² + 12.5² + 2.5² + 22.5²) / 4) = 14.36, CV 0.64: Y. DEAD never sold: Z.
    assert {sku: row["xyz"] for sku, row in rows.items()} == {"HOT": "X", "OUT": "Y", "DEAD": "Z"}
    # Slow mover: DEAD holds 30 x 5.00 = 150.00 and sold nothing in 28 days.
    assert (rows["DEAD"]["slow_mover"], rows["DEAD"]["stock_value"], rows["HOT"]["slow_mover"]) == ("yes", "150.00", "")
    assert list(rows["HOT"])[:7] == ["sku", "warehouse", "abc", "daily_demand", "days_of_cover", "turnover",
                                     "stockout_days"]
    assert {row["warehouse"] for row in rows.values()} == {"SH"}


async def test_abc_thresholds_follow_the_settings(db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    await known_shop(db)
    strict = settings.model_copy(update={"ABC_A_SHARE": 0.5, "ABC_B_SHARE": 0.9})
    async with db.read_session() as session:
        data = await load(session, days=DAYS, until=UNTIL, rules=rules_of(strict))
    # OUT starts at 86.2 %: past B's 90 %? No, below it: still B. Lower B to 0.85 and it is C.
    assert dict(zip(data.skus, data.report.abc, strict=True)) == {"HOT": "A", "OUT": "B", "DEAD": "C"}
    stricter = analysis.Rules(a_share=0.5, b_share=0.85)
    async with db.read_session() as session:
        data = await load(session, days=DAYS, until=UNTIL, rules=stricter)
    assert dict(zip(data.skus, data.report.abc, strict=True)) == {"HOT": "A", "OUT": "C", "DEAD": "C"}


async def test_no_sale_in_60_days_needs_60_days_of_history(db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    await known_shop(db)  # 28 days of history
    async with db.read_session() as session:
        data = await load(session, days=DAYS, until=UNTIL, rules=rules_of(settings))
        older = await load(session, days=DAYS, until=UNTIL + timedelta(days=40),
                                          rules=rules_of(settings))
    slow = dict(zip(data.skus, data.report.slow, strict=True))
    assert not slow["DEAD"]  # a shop that just started has not seen 60 days without a sale
    # 40 days later the history reaches back 68 days: DEAD, still holding 30, has not sold in 60.
    assert dict(zip(older.skus, older.report.slow, strict=True))["DEAD"]


@pytest.mark.parametrize(
    ("weekly", "expected"),
    [
        ([[10, 10, 10, 10]], "X"),  # CV 0
        ([[12, 8, 12, 8]], "X"),  # mean 10, std 2: 0.2
        ([[20, 0, 20, 0]], "Z"),  # mean 10, std 10: exactly 1.0 is Z
        ([[15, 5, 15, 5]], "Y"),  # std 5: 0.5 is Y
        ([[0, 0, 0, 0]], "Z"),  # never sold
        ([[7]], "-"),  # one week: no XYZ
    ],
)
def test_xyz_by_variation_of_weekly_units(weekly: list[list[int]], expected: str) -> None:
    assert "".join(analysis.xyz_classes(np.array(weekly))) == expected


def test_unknown_stock_keeps_the_last_known_level() -> None:
    nan = np.nan
    filled = carry_forward(np.array([[nan, 5, nan, 0, nan], [3, nan, nan, nan, 1]], dtype=np.float32))
    np.testing.assert_array_equal(filled, np.array([[nan, 5, 5, 0, 0], [3, 3, 3, 3, 1]], dtype=np.float32))


def test_a_series_out_of_stock_all_period_has_no_demand_from_history() -> None:
    stats = analysis.series_stats(np.zeros((1, 14), dtype=np.int32), np.zeros((1, 14), dtype=np.float32))
    report = analysis.build(stats, product=np.array([0]), price_cents=np.array([500]), forecast=np.array([np.nan]),
                           forecast_cover=np.array([np.nan]), stock_now=np.array([0.0]),
                           last_sale_age=np.array([np.inf]))
    # 14 stockout days, but nothing shows what it would have sold: no lost sales invented.
    assert (int(report.stockout_days[0]), int(report.lost_cents[0]), bool(report.slow[0])) == (14, 0, False)
    assert np.isnan(report.turnover[0]) and np.isnan(report.days_of_cover[0])


def test_b_share_must_lie_above_a_share() -> None:
    with pytest.raises(SettingsError, match="ABC_B_SHARE"):
        load_settings(_env_file=None, ABC_A_SHARE="0.9", ABC_B_SHARE="0.8")
    assert rules_of(load_settings(_env_file=None, ABC_A_SHARE="0.7")).a_share == 0.7


@pytest.mark.parametrize(
    ("text", "days"),
    [(None, 30), ("", 30), ("7", 7), ("365", 365), ("1", 1), ("0", None), ("366", None), ("-5", None),
     ("abc", None), ("7 days", None), ("99999999999", None), ("３", 3), ("²", None)],
)
def test_report_days_are_bounded(text: str | None, days: int | None) -> None:
    assert parse_days(text) == days
