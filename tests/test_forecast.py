"""Demand forecast: censored days, classes, TSB against hand tables, weekday path, periods, new products, waitlist."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from bot.planning.forecast import (
    History,
    classify,
    demand_stats,
    forecast,
    moving_average,
    tsb,
    weekday_profile,
)
from bot.planning.replenishment import days_of_cover

END = datetime.date(2026, 11, 29)  # a Sunday


def history(sold, in_stock=None, first_day=None, category=None) -> History:
    sold = np.atleast_2d(np.asarray(sold, dtype=float))
    n = sold.shape[0]
    return History(
        sold=sold,
        in_stock=np.ones(sold.shape, bool) if in_stock is None else np.atleast_2d(np.asarray(in_stock, bool)),
        first_day=np.zeros(n, int) if first_day is None else np.asarray(first_day),
        category=np.zeros(n, int) if category is None else np.asarray(category),
        end=END,
    )


def test_stockout_days_are_left_out_not_read_as_zero_demand() -> None:
    sold = np.concatenate([np.tile([3, 5, 4, 4, 3, 5, 4], 13)[:90], np.zeros(30)])  # 4 a day
    in_stock = np.arange(120) < 90  # the last 30 days ended with nothing on hand
    h = history([sold], [in_stock])

    f = forecast(h)

    assert f.demand_class[0] == "smooth"
    assert f.daily_demand[0] == pytest.approx(4, rel=0.03)
    assert moving_average(h)[0] == 0  # the old rate: nobody wants it
    # 20 units and a 14-day supplier: it runs out before a new order could arrive
    cover = days_of_cover(np.array([20]), np.array([0]), f.daily_demand)
    assert cover[0] < 14


def test_censored_day_sales_do_not_count() -> None:
    # a stockout day's sale (the last units went) is censored too: only full days are evidence
    h = history([[2, 2, 2, 9, 2, 2]], [[1, 1, 1, 0, 1, 1]])
    assert forecast(h, new_product_days=0).daily_demand[0] == pytest.approx(2)


def test_returns_are_not_negative_demand() -> None:
    returned = forecast(history([[2, 2, -6, 2, 2, 2]]), new_product_days=0).daily_demand[0]
    assert returned == pytest.approx(forecast(history([[2, 2, 0, 2, 2, 2]]), new_product_days=0).daily_demand[0])


@pytest.mark.parametrize(
    ("adi", "cv2", "expected"),
    [
        (1.0, 0.1, "smooth"),
        (1.31, 0.48, "smooth"),
        (1.32, 0.1, "intermittent"),
        (10.0, 0.0, "intermittent"),
        (1.0, 0.49, "erratic"),
        (1.2, 2.0, "erratic"),
        (1.32, 0.49, "lumpy"),
        (30.0, 3.0, "lumpy"),
        (np.nan, 0.0, "none"),
    ],
)
def test_class_quadrants(adi: float, cv2: float, expected: str) -> None:
    assert classify(np.array([adi]), np.array([cv2]))[0] == expected


def test_adi_and_cv2_count_observed_days_only() -> None:
    # observed: 0 3 . 0 1 0 -> 5 observed days, 2 sales of 3 and 1 (mean 2, variance 1)
    adi, cv2 = demand_stats(np.array([[0, 3, 5, 0, 1, 0]]), np.array([[1, 1, 0, 1, 1, 1]], bool))
    assert adi[0] == pytest.approx(2.5)
    assert cv2[0] == pytest.approx(0.25)


def test_one_unit_every_ten_days_is_intermittent() -> None:
    sold = np.zeros(200)
    sold[5::10] = 1
    f = forecast(history([sold]))
    assert f.demand_class[0] == "intermittent"
    assert 0.07 < f.daily_demand[0] < 0.11


# Hand table, from the published recursion (sizes start at their first value, the chance at the
# first observed day's flag, as in statsforecast). Observed series 0 3 0 0 2 0 4:
#   TSB (alpha_d 0.1, alpha_p 0.2): sizes 3, 2, 4 -> z = 3, 2.9, 3.01; probability from day 0's flag 0:
#   0, .2, .16, .128, .3024, .24192, .393536 -> TSB = .393536 * 3.01 = 1.18454336
SERIES = [0, 3, 0, 0, 2, 0, 4]
# the same observed days with stockout days (marked 0 in stock) in between, selling odd amounts
CENSORED = ([0, 3, 7, 0, 0, 2, 0, 1, 0, 4], [1, 1, 0, 1, 1, 1, 0, 0, 1, 1])


@pytest.mark.parametrize(
    ("sold", "in_stock", "tsb_expected"),
    [
        (SERIES, [1] * 7, 1.18454336),
        (*CENSORED, 1.18454336),
        ([5], [1], 1.0 * 5),
        ([0, 0, 0, 2], [1, 1, 1, 1], 0.2 * 2),  # probability 0, 0, 0, .2
        ([0, 0, 0], [1, 1, 1], 0.0),
        ([3, 3], [0, 0], 0.0),  # nothing observed
    ],
)
def test_tsb_matches_hand_tables(sold, in_stock, tsb_expected) -> None:
    sold = np.array([sold], float)
    observed = np.array([in_stock], bool)
    assert tsb(sold, observed, alpha_d=0.1, alpha_p=0.2)[0] == pytest.approx(tsb_expected, abs=1e-8)


def test_reading_stockouts_as_zeros_would_change_tsb() -> None:
    sold, in_stock = (np.array([x]) for x in CENSORED)
    as_zeros = np.where(in_stock == 1, sold, 0)
    assert tsb(as_zeros, np.ones_like(in_stock, bool), 0.1, 0.2)[0] < 1.0


def test_a_product_that_stopped_selling_fades() -> None:
    sold = np.array([SERIES + [0] * 30], float)
    observed = np.ones(sold.shape, bool)
    assert tsb(sold, observed)[0] < 0.2 * tsb(np.array([SERIES], float), np.ones((1, 7), bool))[0]


def test_a_falling_level_is_followed() -> None:
    # one a day for a year, then one every fourth day for eight weeks: what sells now is 0.25 a day
    sold = np.concatenate([np.ones(365), np.tile([1.0, 0, 0, 0], 14)])
    assert forecast(history([sold])).daily_demand[0] == pytest.approx(0.25, abs=0.05)


def test_statsforecast_agrees_when_installed() -> None:
    pytest.importorskip("statsforecast")
    from statsforecast.models import TSB

    rng = np.random.default_rng(11)
    for _ in range(20):
        y = (rng.random(120) < 0.2) * rng.integers(1, 9, 120)
        y[rng.integers(0, 40)] = 3  # at least one sale
        in_stock = rng.random(120) > 0.15
        kept = y[in_stock].astype(float)
        if not (kept > 0).any():
            continue
        sold, observed = y[None, :].astype(float), in_stock[None, :]
        expected_tsb = TSB(alpha_d=0.1, alpha_p=0.3).forecast(kept, h=1)["mean"][0]
        assert tsb(sold, observed, 0.1, 0.3)[0] == pytest.approx(expected_tsb, rel=1e-6)


def test_new_product_takes_its_categorys_pooled_rate() -> None:
    days = 120
    sold = np.zeros((7, days))
    sold[0], sold[1] = np.tile([1, 5, 3], 40), np.tile([5, 1, 3], 40)  # category 1: alike, 3 a day
    sold[2], sold[3] = 1, 20  # category 2: products differ widely
    sold[5, -14:] = sold[6, -14:] = 6  # new, 14 days at 6 a day, one in each category
    first_day = np.array([0, 0, 0, 0, days - 3, days - 14, days - 14])
    in_stock = np.arange(days)[None, :] >= first_day[:, None]
    in_stock[4] = False  # created three days ago, not on the shelf yet
    f = forecast(history(sold, in_stock, first_day, category=np.array([1, 1, 2, 2, 1, 1, 2])))

    assert list(f.demand_class[4:]) == ["new", "new", "new"]
    assert f.daily_demand[4] == pytest.approx(3, rel=0.05)  # no day of its own yet: the category's rate
    assert 3 < f.daily_demand[5] < 4  # among look-alikes, two weeks at 6 are mostly luck
    assert f.daily_demand[6] == pytest.approx(6, rel=0.05)  # where products differ, its own days count


def test_waitlist_adds_demand_the_shop_could_not_serve() -> None:
    sold = np.zeros((2, 100))
    sold[0] = 2
    f = forecast(history(sold), extra_daily=np.array([0.5, 0.25]))
    assert f.daily_demand == pytest.approx([2.5, 0.25])
    assert list(f.demand_class) == ["smooth", "none"]


def test_weekday_profile_weighs_the_days_left_after_stockouts() -> None:
    days = 52 * 7
    weekdays = (END.weekday() - np.arange(days - 1, -1, -1)) % 7
    sold = np.where(weekdays >= 5, 6.0, 3.0)  # weekends sell double: the true mean is 27/7 a day
    in_stock = ~((weekdays >= 5) & (np.arange(days) >= days - 56))  # the last 8 weekends sold out
    f = forecast(history([sold], [in_stock]))

    assert f.weekday_profile[0].mean() == pytest.approx(1)
    assert f.weekday_profile[0, 5] == pytest.approx(2 * f.weekday_profile[0, 0], rel=0.05)
    # a plain in-stock average of the last 8 weeks would see only weekdays: 3 a day
    assert f.daily_demand[0] == pytest.approx(27 / 7, rel=0.03)


def test_a_steady_weekly_rhythm_is_not_counted_as_risk() -> None:
    weekdays = (END.weekday() - np.arange(139, -1, -1)) % 7
    rhythm = np.array([2, 2, 2, 3, 4, 9, 6], float)[weekdays]  # the same every week
    shuffled = np.random.default_rng(3).permutation(rhythm)  # same sales, no rhythm
    f = forecast(history([rhythm, shuffled]))
    assert f.daily_demand[0] == pytest.approx(4, rel=0.02)
    assert f.daily_sd[0] < 0.3 * f.daily_sd[1]  # the shape is held a little towards the category's


def test_one_big_order_does_not_inflate_the_spread_and_a_fading_product_sheds_it() -> None:
    steady = np.zeros(300)
    steady[::5] = 2  # 2 units every fifth day
    lump = steady.copy()
    lump[-1] = 40  # then one customer takes 40
    uneven = np.zeros(300)
    uneven[::5] = np.tile([1, 9], 30)  # lumpy: sizes 1 and 9
    fading = np.concatenate([uneven[:200], np.zeros(100)])  # then nothing sold for 100 days
    f = forecast(history([steady, lump, uneven, fading]))

    assert list(f.demand_class) == ["intermittent", "lumpy", "lumpy", "lumpy"]
    assert f.daily_demand[1] > f.daily_demand[0]
    assert f.daily_sd[1] <= np.std(lump)  # the long-run spread, not blown up by the jump in rate
    assert f.daily_demand[3] < 0.02 * f.daily_demand[2]  # TSB lets it fade...
    assert f.daily_sd[3] < 0.2 * f.daily_sd[2]  # ...and its safety stock with it


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError):
        History(sold=np.zeros((2, 5)), in_stock=np.ones((2, 4), bool), first_day=np.zeros(2, int),
                category=np.zeros(2, int), end=END)
    with pytest.raises(ValueError):
        forecast(history(np.ones((2, 60))), extra_daily=np.ones(3))


def test_the_weekday_profile_shapes_the_coming_days_and_keeps_the_weekly_rate() -> None:
    weekdays = (END.weekday() - np.arange(52 * 7 - 1, -1, -1)) % 7
    sold = np.where(weekdays >= 5, 60.0, 30.0)  # plenty of units: its own shape, weekends double
    f = forecast(history([sold]))
    assert f.first_weekday == 0  # END is a Sunday: the first day forecast is a Monday
    path = f.daily_path(7)[0]
    assert path[:5] == pytest.approx([30] * 5, rel=0.02)
    assert path[5:] == pytest.approx([60] * 2, rel=0.02)
    assert f.daily_demand[0] == pytest.approx(path.mean())  # the stored rate is the week's average


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (0, 0.0),
        (1, 0.5),  # Monday
        (5, 2.5),  # Monday..Friday
        (6, 4.0),  # ...and Saturday at 1.5
        (7, 7.0),  # a whole week is the weekly rate
        (9.5, 8.25),  # a week, Monday, Tuesday and half a Wednesday
        (21, 21.0),
    ],
)
def test_demand_over_a_stretch_follows_the_weekdays(days, expected) -> None:
    from bot.planning.forecast import Forecast

    profile = np.array([[0.5, 0.5, 0.5, 0.5, 0.5, 1.5, 3.0]])  # mean 1
    f = Forecast(daily_demand=np.array([1.0]), demand_class=np.array(["smooth"]), daily_sd=np.zeros(1),
                 weekday_profile=profile, first_weekday=0)
    assert f.demand_over(days)[0] == pytest.approx(expected)


def test_a_slow_seller_takes_its_categorys_weekday_shape() -> None:
    weekdays = (END.weekday() - np.arange(52 * 7 - 1, -1, -1)) % 7
    busy = np.where(weekdays == 5, 40.0, 10.0)  # the category sells most on Saturdays
    slow = np.zeros(52 * 7)
    slow[::9] = 1  # a unit every ninth day, on any weekday: no shape of its own to speak of
    prof = weekday_profile(np.array([busy, slow]), np.ones((2, 52 * 7), bool), weekdays, np.array([1, 1]))
    assert prof[1].argmax() == 5
    assert prof[1, 5] > 2 * prof[1, 0]
    assert prof.mean(axis=1) == pytest.approx([1, 1])


def test_monthly_history_uses_monthly_constants_and_no_weekdays() -> None:
    sold = np.array([[4.0] * 36 + [0, 0, 1, 0, 0, 0, 1, 0, 0]])  # a part that went quiet
    h = history(sold)
    monthly = forecast(h, period="month")
    assert monthly.weekday_profile == pytest.approx(np.ones((1, 7)))
    assert monthly.demand_over(3)[0] == pytest.approx(3 * monthly.daily_demand[0])
    # a month carries a month of evidence: nine quiet months pull the rate down far more than
    # nine quiet days would
    assert monthly.daily_demand[0] < 0.5 * forecast(h).daily_demand[0]
    assert monthly.daily_demand[0] < 1.0


def test_week_ahead_misses_are_measured_from_the_forecasts_own_errors() -> None:
    days = 26 * 7
    steady = np.full(days, 2.0)
    weekdays = (END.weekday() - np.arange(days - 1, -1, -1)) % 7
    rhythm = np.array([1, 1, 1, 2, 2, 4, 3], float)[weekdays]  # the same total every week
    wandering = np.repeat(np.tile([1.0, 5.0], 13), 7)  # a slow week, a busy week, ...
    f = forecast(history([steady, rhythm, wandering]))
    assert f.week_sd[0] == pytest.approx(0.0, abs=1e-9)
    assert f.week_sd[1] < 1.0  # every week sells 14: a weekly rhythm is foreseen
    assert f.week_sd[2] > 10  # each week misses by about 14 units either way
    young = forecast(history([steady[-20:]]), new_product_days=0)
    assert np.isnan(young.week_sd[0])  # under 4 weeks to settle plus 3 to judge: the daily spread stands in


def test_sales_in_spells_sell_more_right_after_a_sale() -> None:
    spells = np.tile([1.0] * 5 + [0.0] * 30, 10)  # a unit a day for five days, then a month of nothing
    regular = np.zeros(350)
    regular[::7] = 1  # one unit every Monday
    f = forecast(history([spells, regular]))
    assert f.daily_demand[0] == pytest.approx(f.daily_demand[1], rel=0.8)  # alike on average...
    assert f.after_sale[0] > 1.5  # ...but a sale announces more of them
    assert f.after_sale[1] < 1.2
