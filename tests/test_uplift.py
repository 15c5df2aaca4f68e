"""The control group's draw and statistics, as pure functions (bot/recovery/holdout.py, uplift.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from bot.recovery import holdout
from bot.recovery.uplift import MIN_GROUP, compare, mean_difference, share_difference, wilson
from bot.settings import SettingsError, load_settings

# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score).
NEWCOMBE = [
    # bought a, n a, bought b, n b, difference, low, high
    (56, 70, 48, 80, 0.2000, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.6000, 0.1705, 0.8090),
    (5, 56, 0, 29, 0.0893, -0.0381, 0.1926),
    (0, 10, 0, 20, 0.0000, -0.1611, 0.2775),
    (0, 10, 0, 10, 0.0000, -0.2775, 0.2775),
    (10, 10, 0, 10, 1.0000, 0.6075, 1.0000),
]


@pytest.mark.parametrize(("a", "n_a", "b", "n_b", "value", "low", "high"), NEWCOMBE)
def test_share_difference_is_newcombes_hybrid_score_interval(a: int, n_a: int, b: int, n_b: int, value: float,
                                                             low: float, high: float) -> None:
    found = share_difference(a, n_a, b, n_b)
    assert (round(found.value, 4), round(found.low, 4), round(found.high, 4)) == (value, low, high)


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
])
def test_wilson_score_interval(k: int, n: int, low: float, high: float) -> None:
    assert tuple(round(x, 4) for x in wilson(k, n)) == (low, high)


def test_mean_difference_is_welchs_interval() -> None:
    found = mean_difference(np.array([1, 2, 3, 4]), np.array([2, 4, 6, 8]))
    # se = sqrt(1.6667 / 4 + 6.6667 / 4) = 1.4434; 1.96 x 1.4434 = 2.8290
    assert (round(found.value, 4), round(found.low, 4), round(found.high, 4)) == (-2.5, -5.329, 0.329)


@pytest.mark.parametrize(("n_offered", "n_held_out", "says"), [
    (1000, MIN_GROUP - 1, False), (MIN_GROUP - 1, 1000, False), (MIN_GROUP, MIN_GROUP, True), (0, 0, False),
])
def test_too_few_in_either_group_gives_no_figure(n_offered: int, n_held_out: int, says: bool) -> None:
    offered = np.arange(n_offered) % 3 == 0
    held_out = np.arange(n_held_out) % 5 == 0
    result = compare(offered, offered * 1000, held_out, held_out * 1000)
    assert result.offered.customers == n_offered and result.held_out.customers == n_held_out
    assert result.offered.bought == int(offered.sum()) and result.held_out.revenue_cents == int(held_out.sum()) * 1000
    assert (result.uplift is not None) is says and (result.incremental_revenue_cents is not None) is says
    assert result.too_few is not says


def test_incremental_revenue_is_the_offered_customers_times_the_difference_per_customer() -> None:
    offered_revenue = np.array([1000, 0, 0, 900] * 25)  # 100 customers, 4.75 a customer
    held_out_revenue = np.array([1000, 0, 0, 0] * 10)  # 40 customers, 2.50 a customer
    result = compare(offered_revenue > 0, offered_revenue, held_out_revenue > 0, held_out_revenue)
    assert result.incremental_revenue_cents is not None
    assert result.incremental_revenue_cents.value == 100 * (475 - 250)
    assert result.incremental_revenue_cents.low < 100 * (475 - 250) < result.incremental_revenue_cents.high
    assert result.uplift is not None and round(result.uplift.value, 4) == 0.25


def test_the_uplift_interval_covers_the_true_uplift_about_95_times_in_100() -> None:
    """Many small shops with a 20 % control group, 20 % buying when held out and 35 % when
    offered: Newcombe's interval should hold the true 0.15 close to 95 % of the time (the Wald
    interval, at this size, is known to fall short)."""
    rng = np.random.default_rng(24)
    trials, n_offered, n_held_out = 2000, 160, 40
    bought_offered = rng.binomial(n_offered, 0.35, trials)
    bought_held_out = rng.binomial(n_held_out, 0.20, trials)
    covered = sum(0.15 in share_difference(int(a), n_offered, int(b), n_held_out)
                  for a, b in zip(bought_offered, bought_held_out, strict=True))
    assert 0.93 <= covered / trials <= 0.97


@dataclass(frozen=True)
class Person:
    customer_id: int
    vip: bool = False
    contactable: bool = True


def test_the_draw_is_fixed_by_cause_and_customer() -> None:
    # Pinned: a change of hash, key or encoding would move customers between groups of stockouts
    # already running (a retry or a second process must draw the same).
    assert [f"{holdout.draw(cause, customer):.6f}" for cause, customer in ((1, 1), (1, 2), (2, 1))] == PINNED
    assert holdout.draw(1, 2) != holdout.draw(2, 1)


PINNED = ["0.829988", "0.983415", "0.818652"]


def test_the_draw_holds_out_the_percent_asked_and_independently_per_stockout() -> None:
    people = [Person(c) for c in range(1, 20_001)]
    first = holdout.split(people, 1001, percent=20, vips=False)
    second = holdout.split(people, 1002, percent=20, vips=False)
    # 20 % of 20,000: 4,000 with a standard deviation of 57; 5 of them either way is far off.
    assert abs(len(first.held_out) - 4000) < 5 * 57 and abs(len(second.held_out) - 4000) < 5 * 57
    assert len(first.offered) + len(first.held_out) == 20_000 and len(first.randomised) == 20_000
    both = {p.customer_id for p in first.held_out} & {p.customer_id for p in second.held_out}
    assert abs(len(both) - 800) < 5 * 27  # independent draws: 4 % held out twice
    assert holdout.split(people, 1001, percent=20, vips=False).held_out == first.held_out


def test_vips_and_customers_who_cannot_be_messaged_are_never_drawn() -> None:
    people = [Person(c, vip=c % 2 == 0, contactable=c % 3 != 0) for c in range(1, 3001)]
    drawn = holdout.split(people, 5, percent=50, vips=False)
    assert all(not p.vip and p.contactable for p in drawn.held_out)
    assert drawn.randomised == {p.customer_id for p in people if not p.vip and p.contactable}
    with_vips = holdout.split(people, 5, percent=50, vips=True)
    assert any(p.vip for p in with_vips.held_out)
    assert with_vips.randomised == {p.customer_id for p in people if p.contactable}
    off = holdout.split(people, 5, percent=0, vips=True)
    assert off.offered == people and not off.held_out and not off.randomised


@pytest.mark.parametrize(("name", "value"), [("HOLDOUT_PERCENT", "51"), ("HOLDOUT_PERCENT", "-1"),
                                             ("HOLDOUT_PERCENT", "ten"), ("HOLDOUT_VIPS", "maybe")])
def test_a_wrong_holdout_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"setting {name}:"):
        load_settings(_env_file=None, **{name: value})
