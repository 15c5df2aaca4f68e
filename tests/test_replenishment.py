"""Replenishment rules as tables: cover, stockout date, policy, order size, transfers, lead times."""

from __future__ import annotations

import datetime
from statistics import NormalDist

import numpy as np
import pytest

from bot.planning.forecast import Forecast, History, forecast
from bot.planning.replenishment import (
    Policy,
    Transfer,
    days_of_cover,
    demand_quantile,
    learned_lead_time,
    order_quantity,
    plan_transfers,
    policy,
    stockout_dates,
)

TODAY = datetime.date(2026, 12, 2)


def known(mu, sd=0.0) -> Forecast:
    mu = np.atleast_1d(np.asarray(mu, float))
    return Forecast(
        daily_demand=mu,
        demand_class=np.full(mu.shape, "smooth"),
        daily_sd=np.broadcast_to(np.asarray(sd, float), mu.shape),
        weekday_profile=np.ones((mu.size, 7)),
    )


@pytest.mark.parametrize(
    ("available", "arriving", "demand", "cover"),
    [
        (20, 0, 4, 5.0),
        (20, 8, 4, 7.0),
        (0, 0, 2, 0.0),
        (-3, 0, 2, 0.0),  # oversold: no cover, not negative cover
        (5, 0, 0, np.inf),
        (0, 0, 0, np.inf),
    ],
)
def test_days_of_cover(available, arriving, demand, cover) -> None:
    assert days_of_cover(np.array([available]), np.array([arriving]), np.array([demand]))[0] == cover


def test_stockout_dates() -> None:
    assert stockout_dates(TODAY, np.array([0.0, 2.9, 14.0, np.inf, 1e12])) == [
        TODAY,
        TODAY + datetime.timedelta(days=2),
        TODAY + datetime.timedelta(days=14),
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("mean", "var", "level", "units"),
    [  # checked against scipy.stats (poisson.ppf, nbinom.ppf with r = mean^2 / (var - mean))
        (4, 4, 0.90, 7),  # Poisson
        (4, 4, 0.98, 9),
        (4, 2, 0.90, 7),  # less spread than Poisson: taken as Poisson
        (2, 6, 0.95, 7),  # negative binomial: a longer tail than the normal's 2 + 1.645 * 2.45 = 6.03
        (0.3, 0.9, 0.90, 1),
        (0.3, 0.3, 0.50, 0),
        (0.05, 0.05, 0.90, 0),  # so rare that no stock at all serves 9 cycles in 10
        (50, 400, 0.95, 87),
        (0, 0, 0.98, 0),
    ],
)
def test_lead_time_demand_quantile(mean, var, level, units) -> None:
    assert demand_quantile(np.array([mean], float), np.array([var], float), np.array([level])).tolist() == [units]


def test_a_large_mean_takes_the_normal_quantile() -> None:
    q = demand_quantile(np.array([10_000.0]), np.array([40_000.0]), np.array([0.95]))[0]
    assert q == np.ceil(10_000 + NormalDist().inv_cdf(0.95) * 200 - 0.5)


def test_policy_from_lead_time_demand_and_service_level() -> None:
    f = Forecast(daily_demand=np.full(3, 4.0), demand_class=np.full(3, "smooth"), daily_sd=np.full(3, 2.0),
                 weekday_profile=np.ones((3, 7)))
    pol = policy(f, np.array([9, 9, 9]), np.array(["A", "B", "C"]))
    # 9 days + 1 between checks + (4 + 16 - 4) / 32 = half a day of overshoot = 10.5 days at 4 a
    # day and 4 per day of variance: 42 units, variance 42, a Poisson count
    assert pol.reorder_point.tolist() == [56, 53, 50]
    assert pol.order_up_to == pytest.approx(pol.reorder_point + 28)  # 7 days of demand on top
    assert pol.safety_stock == pytest.approx(pol.reorder_point - 42)
    assert pol.reorder_point[0] > pol.reorder_point[1] > pol.reorder_point[2]


def test_weekly_swings_raise_the_reorder_point() -> None:
    calm = known([4.0], sd=2.0)
    swinging = Forecast(daily_demand=np.array([4.0]), demand_class=np.array(["smooth"]), daily_sd=np.array([2.0]),
                        weekday_profile=np.ones((1, 7)), week_sd=np.array([20.0]))
    lead, abc = np.array([7]), np.array(["B"])
    assert policy(swinging, lead, abc).reorder_point[0] > policy(calm, lead, abc).reorder_point[0] + 10


def test_unknown_abc_class_is_refused() -> None:
    with pytest.raises(ValueError, match="D"):
        policy(known([1.0]), np.array([7]), np.array(["D"]))


@pytest.mark.parametrize(
    ("position", "pack", "qty"),
    [
        (30, None, 0),  # above the reorder point
        (20, None, 30),  # at it: up to 50
        (19.5, None, 31),  # fractional need rounds up
        (-4, None, 54),  # backorders are covered too
        (20, 12, 36),  # 30 rounded up to packs of 12
        (20, 10, 30),  # already whole packs
        (20, 0, 30),  # no pack size
        (20, np.nan, 30),
        (49.9, 6, 0),  # above the reorder point: no pack either
    ],
)
def test_order_quantity_in_whole_packs(position, pack, qty) -> None:
    pol = Policy(reorder_point=np.array([20.0]), order_up_to=np.array([50.0]), safety_stock=np.array([5.0]))
    packs = None if pack is None else np.array([pack])
    assert order_quantity(np.array([position]), pol, packs).tolist() == [qty]


@pytest.mark.parametrize("abc", ["A", "B", "C"])
def test_a_slow_seller_with_a_few_units_is_not_pushed_to_buy(abc: str) -> None:
    sold = np.zeros((1, 365))
    sold[0, 3::10] = 1  # one unit every ten days
    f = forecast(History(sold=sold, in_stock=np.ones(sold.shape, bool), first_day=np.zeros(1, int),
                         category=np.zeros(1, int), end=TODAY))
    assert f.demand_class[0] == "intermittent"
    pol = policy(f, np.array([7]), np.array([abc]))
    assert pol.reorder_point[0] <= 4  # about one unit is expected over the lead time
    assert order_quantity(np.array([5]), pol).tolist() == [0]
    assert order_quantity(np.array([0]), pol)[0] >= 1  # empty, it is bought


def transfers(available, demand=(2.0, 2.0), rop=(10.0, 10.0), lead=(14, 14), **kw) -> list[Transfer]:
    return plan_transfers(np.array([7, 7]), np.array([1, 2]), np.array(available), np.array(demand),
                          np.array(rop), np.array(lead), **kw)


def test_an_empty_warehouse_is_filled_from_a_piled_up_one() -> None:
    # the target is filled to its reorder point + 7 days: 10 + 14 = 24
    assert transfers([0, 200]) == [Transfer(product=7, source=2, target=1, qty=24)]


@pytest.mark.parametrize(
    ("available", "kw", "why"),
    [
        ([0, 51], {}, "the donor keeps 10 + 14 x 2 + 7 x 2 = 52"),
        ([11, 200], {}, "the target is above its reorder point"),
        ([0, 200], {"lead": (1, 1)}, "the supplier is as fast as a transfer"),
        ([0, 53], {"min_qty": 2}, "one spare unit is below the minimum"),
    ],
)
def test_no_transfer(available, kw, why) -> None:
    assert transfers(available, **kw) == [], why


def test_a_donor_short_of_units_gives_what_it_can_spare() -> None:
    assert transfers([0, 60]) == [Transfer(product=7, source=2, target=1, qty=8)]


def test_moved_units_never_move_back() -> None:
    available = np.array([0.0, 80.0])
    (move,) = transfers(available)
    after = available + [move.qty, -move.qty]
    assert transfers(after) == []
    assert transfers(after[::-1]) == []


def test_transfers_only_within_a_product_and_most_urgent_first() -> None:
    moves = plan_transfers(
        np.array([1, 1, 1, 2]), np.array([10, 20, 30, 10]), np.array([40, 2, 0, 500]),
        np.array([1.0, 1.0, 1.0, 1.0]), np.array([5.0, 5.0, 5.0, 5.0]), np.array([7, 7, 7, 7]),
    )
    # product 1's donor (40) keeps 5 + 7 + 7 = 19 and spares 21; warehouse 30 is emptier than 20
    assert moves == [Transfer(1, 10, 30, 12), Transfer(1, 10, 20, 9)]


D = datetime.date


@pytest.mark.parametrize(
    ("samples", "days", "on_time", "n"),
    [
        ([], 10.0, None, 0),
        ([(D(2026, 1, 1), D(2026, 1, 8), D(2026, 1, 6))], 10.0, 1.0, 1),  # too few: the catalog's
        (
            [(D(2026, 1, 1), D(2026, 1, 8), D(2026, 1, 1) + datetime.timedelta(days=d)) for d in (5, 7, 9)],
            9.0, 2 / 3, 3,
        ),
        (
            [(D(2026, 1, 1), None, D(2026, 1, 1) + datetime.timedelta(days=d)) for d in range(1, 21)],
            18.0, None, 20,  # p90 of 1..20 by nearest rank: the 18th
        ),
        (
            [(D(2026, 2, 1), D(2026, 2, 5), D(2026, 1, 20))] * 3,  # received before ordered: bad rows
            10.0, None, 0,
        ),
    ],
)
def test_learned_lead_time(samples, days, on_time, n) -> None:
    stats = learned_lead_time(samples, catalog_days=10)
    assert stats.days == days
    assert stats.samples == n
    assert stats.on_time_rate == (None if on_time is None else pytest.approx(on_time))


def test_sales_in_spells_raise_the_reorder_point() -> None:
    def rop(sold) -> float:
        f = forecast(History(sold=np.array([sold], float), in_stock=np.ones((1, len(sold)), bool),
                             first_day=np.zeros(1, int), category=np.zeros(1, int), end=TODAY))
        return float(policy(f, np.array([7]), np.array(["B"])).reorder_point[0])

    spells = np.tile([1.0] * 5 + [0.0] * 30, 6)  # 30 units in 210 days, in bursts
    scattered = np.zeros(210)
    scattered[np.random.default_rng(1).choice(210, 30, replace=False)] = 1  # 30 units, any day
    # though the spells' rate is lower now (the last burst was a month ago), what follows a sale
    # is five days of sales, and the reorder point is reached by a sale
    assert rop(spells) >= rop(scattered) + 2
