"""Demand forecast per (product, warehouse) series: pure, vectorised numpy, no database.

Method (docs/forecast.md explains it for purchasers, with what was measured on real data):

- Demand is what customers took on days the shelf was not empty. A day that ended with nothing on
  hand is *censored*: it says how much could be sold, not how much was wanted. Such days (and days
  before the series existed) are left out of every rate and every recursion: they are skipped, never
  read as zeros. So a product that sold 4 a day and then sat empty for a month still forecasts ~4.
- Every established series is forecast by TSB (Teunter–Syntetos–Babai): the chance of a sale on an
  observed day times the size of a sale, both exponentially smoothed with the constants of the
  column's period (`PERIODS`: a day, a month). The chance keeps falling while nothing sells, so a
  product whose demand falls is followed, and one that stopped selling fades.
- Days have weekdays: a weekday profile (multipliers, mean 1) is learnt from observed days and held
  close to the category's pooled shape while the series' own units are few. It turns the TSB rate,
  learnt on whatever weekdays were in stock, into an all-week rate (`daily_demand`), and shapes
  what each coming day sells (`Forecast.daily_path`, `Forecast.demand_over`).
- Series are still classed by ADI (observed days per day with a sale) and CV² (squared coefficient
  of variation of the sale sizes) with the Syntetos–Boylan cut-offs 1.32 and 0.49 (smooth,
  erratic, intermittent, lumpy): the class says which spread feeds safety stock and is what
  purchasers see. A series younger than the period's `new_after` is "new"; an established one
  with no sale on any observed day is "none" (demand 0).
- new: the category's pooled rate (the mean forecast of the established series of the same
  category) blended with the product's own in-stock days by Bühlmann credibility: the pool counts
  as k of the product's own days, k = mean daily variance / variance of rates between the
  category's products (capped at `new_after`), so a category of look-alikes is trusted
  longer than one whose products differ widely.
- Waitlist sign-ups (`extra_daily`) are demand the shop could not serve and are added on top.

TSB is initialised as statsforecast does (first size, first occurrence flag), so `tsb` equals
statsforecast's TSB run on the series with censored days removed.

Invariants: every output is finite and >= 0; a series' rate depends only on its own row (and, for
new series and the weekday prior, the series of its category); `weekday_profile` rows have mean 1.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

DEMAND_CLASSES = ("none", "smooth", "intermittent", "erratic", "lumpy", "new")
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
LEVEL_DAYS = 56  # observed days behind the smooth/erratic spread: 8 weeks, every weekday 8 times
# A weekday needs well over 100 units sold to pull away from its category's shape. Measured on M5
# (docs/forecast.md): shrinking towards flat at 10 units gave RMSSE .6890, towards the category at
# 100 units .6853; most items sell too little to carve a weekly shape of their own.
PROFILE_PRIOR_UNITS = 100.0
AFTER_SALE_PRIOR = 5  # sale days of evidence at the average rate that `after_sale` starts from
WARM_UP_WEEKS = 4  # weeks a TSB recursion runs before its week-ahead misses are counted
CHUNK = 4096  # series per block: bounds the float64 temporaries to a few CHUNK x days x 8 bytes


@dataclass(frozen=True)
class History:
    """Dense daily history built by the caller; row s is one (product, warehouse) series.

    sold: (S, D) units sold per day, oldest day first. in_stock: (S, D) bool, False where the day
    ended with nothing on hand (censored) or is unknown or before the series existed.
    first_day: (S,) column of the series' first day. category: (S,) int code, pools new products.
    end: the date of column D-1.
    """

    sold: np.ndarray
    in_stock: np.ndarray
    first_day: np.ndarray
    category: np.ndarray
    end: datetime.date

    def __post_init__(self) -> None:
        if self.sold.ndim != 2 or self.sold.shape != self.in_stock.shape:
            raise ValueError(f"sold {self.sold.shape} and in_stock {self.in_stock.shape} must be the same (S, D)")
        n = self.sold.shape[0]
        if self.first_day.shape != (n,) or self.category.shape != (n,):
            raise ValueError("first_day and category need one entry per series")

    @property
    def n_days(self) -> int:
        return self.sold.shape[1]

    def weekdays(self) -> np.ndarray:
        """(D,) weekday of each column, Monday = 0 as in `date.weekday()`."""
        return (self.end.weekday() - np.arange(self.n_days - 1, -1, -1)) % 7

    def observed(self, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """(s, D) bool: the days that count as demand evidence (in stock, and the series existed)."""
        alive = np.arange(self.n_days)[None, :] >= np.asarray(self.first_day[rows])[:, None]
        return np.asarray(self.in_stock[rows], dtype=bool) & alive


@dataclass(frozen=True)
class Forecast:
    """Per series: the rate of an average day of the week (what is stored and what days of cover
    divide by), and what a given day or stretch of days is expected to sell."""

    daily_demand: np.ndarray  # (S,) units/day over a whole week, waitlist extra included
    demand_class: np.ndarray  # (S,) str, one of DEMAND_CLASSES
    daily_sd: np.ndarray  # (S,) spread of one day's demand around the forecast, for safety stock
    weekday_profile: np.ndarray  # (S, 7) multipliers by weekday (Monday first), mean 1
    rate_sd: np.ndarray | None = None  # (S,) how far the rate itself may be off; None: 0
    week_sd: np.ndarray | None = None  # (S,) root mean squared miss of a week-ahead forecast; NaN/None: from daily_sd
    after_sale: np.ndarray | None = None  # (S,) demand right after a sale / average demand; None: 1
    first_weekday: int = 0  # weekday of the first day forecast (the day after the history ends)

    def daily_path(self, days: int) -> np.ndarray:
        """(S, days): each day's expected demand from the first forecast day on, weekday-shaped."""
        weekdays = (self.first_weekday + np.arange(days)) % 7
        return self.daily_demand[:, None] * self.weekday_profile[:, weekdays]

    def demand_over(self, days: np.ndarray | float) -> np.ndarray:
        """(S,) expected demand over the next `days` (per series, may be fractional): whole weeks
        at the weekly rate, the remaining days at their weekdays' shares."""
        days = np.broadcast_to(np.maximum(np.asarray(days, dtype=float), 0.0), self.daily_demand.shape)
        weeks, rest = np.divmod(days, 7.0)
        shares = self.weekday_profile[:, (self.first_weekday + np.arange(7)) % 7]
        before = np.concatenate([np.zeros((len(days), 1)), np.cumsum(shares, axis=1)], axis=1)  # (S, 8)
        whole = np.floor(rest).astype(int)
        rows = np.arange(len(days))
        partial = before[rows, whole] + (rest - whole) * shares[rows, np.minimum(whole, 6)]
        return self.daily_demand * (7.0 * weeks + partial)


def classify(adi: np.ndarray, cv2: np.ndarray) -> np.ndarray:
    """Syntetos–Boylan quadrant for each series; NaN ADI (no sale observed) gives "none"."""
    adi = np.asarray(adi, dtype=float)
    cv2 = np.asarray(cv2, dtype=float)
    frequent = adi < ADI_CUTOFF
    steady = cv2 < CV2_CUTOFF
    out = np.where(frequent, np.where(steady, "smooth", "erratic"), np.where(steady, "intermittent", "lumpy"))
    return np.where(np.isnan(adi), "none", out).astype("<U12")


def _masked(sold: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Sales as floats on observed days, 0 elsewhere; a negative day (returns) is not demand."""
    y = np.where(observed, sold, 0).astype(float)
    return np.maximum(y, 0.0, out=y)


def demand_stats(sold: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ADI and CV² per row from observed days only; NaN ADI where no sale was observed.

    ADI = observed days / observed days with a sale. CV² = population variance / mean² of the
    non-zero sizes (0 with a single sale).
    """
    y = _masked(sold, observed)
    return _adi_cv2(observed.sum(axis=1), (y > 0).sum(axis=1), y.sum(axis=1), (y * y).sum(axis=1))


def _adi_cv2(n_obs, n_hit, total, squares) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        adi = np.where(n_hit > 0, n_obs / n_hit, np.nan)
        mean = total / n_hit
        cv2 = np.where(n_hit > 0, squares / n_hit / mean**2 - 1.0, 0.0)
    return adi, np.maximum(cv2, 0.0)


def _first_demand(y: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: has a demand, its first size, and its interval (observed days up to and incl. it)."""
    hit = observed & (y > 0)
    has = hit.any(axis=1)
    first = hit.argmax(axis=1)
    rows = np.arange(y.shape[0])
    size = np.where(has, y[rows, first], 0.0)
    interval = np.where(has, np.cumsum(observed, axis=1, dtype=np.int32)[rows, first], 1.0)
    return has, size, interval


def _by_day(y: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Day-major copies for the recursions: sizes, demand flags and observed flags as floats."""
    y_t = np.ascontiguousarray(y.T)
    return y_t, (y_t > 0).astype(float), np.ascontiguousarray(observed.T, dtype=float)


def tsb(sold: np.ndarray, observed: np.ndarray, alpha_d: float = 0.1, alpha_p: float = 0.1) -> np.ndarray:
    """Teunter–Syntetos–Babai, per row, skipping unobserved days.

    The size z is smoothed on demand days only (from the first size); the probability of demand is
    smoothed every observed day from the first observed day's 0/1; the forecast is probability x size.
    The same recursion as the engine's (`tsb_by_weekday`), without the weekdays.
    """
    y = _masked(sold, observed)
    return tsb_by_weekday(y, np.asarray(observed, dtype=bool), np.zeros(y.shape[1], dtype=int), alpha_d, alpha_p)[0]


def _weekday_matrix(weekdays: np.ndarray) -> np.ndarray:
    """(D, 7) one-hot of each column's weekday: `values @ it` sums values by weekday."""
    return (np.asarray(weekdays)[:, None] == np.arange(7)[None, :]).astype(float)


def weekday_profile(
    sold: np.ndarray, observed: np.ndarray, weekdays: np.ndarray, category: np.ndarray | None = None
) -> np.ndarray:
    """(S, 7) weekday multipliers, mean 1, from observed days; held close to the category's shape
    while a series' own data is thin.

    Each weekday's mean is blended with the category's weekday shape at PROFILE_PRIOR_UNITS units'
    worth of pseudo-days, so a slow seller's few sales cannot carve a shape of their own and take
    the shape its category's shoppers have, while thousands of units can. Weekdays are weighed
    equally, not by how often they were in stock: a product sold out every weekend still gets its
    weekend share. Without a category every series is its own (a flat prior).
    """
    by_weekday = _weekday_matrix(weekdays)
    y = _masked(sold, observed)
    sums, counts = y @ by_weekday, observed.astype(float) @ by_weekday
    if category is None:
        return _profile(sums, counts, np.ones((len(sums), 7)))
    return _profile(sums, counts, _category_shape(np.asarray(category), sums, counts))


def _category_shape(category: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(S, 7): the weekday shape of each series' category, from all its series' units pooled."""
    _, inverse = np.unique(category, return_inverse=True)
    pooled_sums = np.zeros((inverse.max(initial=-1) + 1, 7))
    pooled_counts = np.zeros_like(pooled_sums)
    np.add.at(pooled_sums, inverse, sums)
    np.add.at(pooled_counts, inverse, counts)
    return _profile(pooled_sums, pooled_counts, np.ones_like(pooled_sums), prior_units=0.0)[inverse]


def _profile(sums: np.ndarray, counts: np.ndarray, prior: np.ndarray, prior_units: float | None = None) -> np.ndarray:
    """Weekday multipliers (mean 1) from units and days by weekday, shrunk towards `prior` (mean 1)."""
    units = PROFILE_PRIOR_UNITS if prior_units is None else prior_units
    seen = counts > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(seen, sums / counts, 0.0)
        centre = raw.sum(axis=1) / seen.sum(axis=1)
        prior_days = units / centre
        means = (sums + (prior_days * centre)[:, None] * prior) / (counts + prior_days[:, None])
        prof = means / means.mean(axis=1, keepdims=True)
    bare = ~(centre > 0) | ~np.isfinite(prof).all(axis=1)
    prof[bare] = prior[bare]
    return prof


def recent(observed: np.ndarray, days: int) -> np.ndarray:
    """The last `days` observed days of each row (stockout days do not use up the window)."""
    from_end = np.cumsum(observed[:, ::-1], axis=1, dtype=np.int32)[:, ::-1]
    return observed & (from_end <= days)


def tsb_by_weekday(
    y: np.ndarray, observed: np.ndarray, weekdays: np.ndarray, alpha_d: float, alpha_p: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TSB (as `tsb`); (S, 7) how much each weekday weighs in its chance of a sale; and the mean
    squared error of its own week-ahead forecasts (NaN with fewer than 3 weeks to judge).

    The weekday weights follow the same smoothing as the chance, over the same observed days, so
    the weekday mix behind the rate is known: a rate learnt while weekends were sold out is a
    weekday rate, and dividing by the profile's weighted mean turns it back into an all-week one.

    The week-ahead error is what a lead time risks: at the start of each week (counted back from
    the last day) the rate then known times the week's observed days, against what they sold,
    scaled to 7 days; weeks with fewer than 4 observed days, and weeks before the series has
    WARM_UP_WEEKS weeks of observed days (the recursion is still settling), are not judged. It holds the day-to-day noise, the wandering of
    demand from week to week and the rate's own misses together, which no daily spread shows.
    """
    n, days = y.shape
    has, z, _ = _first_demand(y, observed)
    rows = np.arange(n)
    first = observed.argmax(axis=1)
    prob = (y[rows, first] > 0).astype(float)
    mix = np.zeros((n, 7))
    mix[rows, np.asarray(weekdays)[first]] = 1.0
    predicted, sold, seen, age = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    settled = np.zeros(n, bool)
    miss_sq, judged = np.zeros(n), np.zeros(n)
    y_t, hit_t, obs_t = _by_day(y, observed)
    for t in range(days):
        if (days - t) % 7 == 0:  # a week starts: what the forecast says now
            predicted[:] = prob * z
            settled[:] = age >= WARM_UP_WEEKS * 7
            sold[:], seen[:] = 0.0, 0.0
        sold += y_t[t]
        seen += obs_t[t]
        age += obs_t[t]
        hit, step = hit_t[t], alpha_p * obs_t[t]
        prob += step * (hit - prob)
        z += alpha_d * hit * (y_t[t] - z)
        mix *= (1.0 - step)[:, None]
        mix[:, weekdays[t]] += step
        if (days - t - 1) % 7 == 0:  # the week ends: how far off it was
            full = (seen >= 4) & settled
            with np.errstate(divide="ignore", invalid="ignore"):
                miss = np.where(full, (sold - predicted * seen) * 7.0 / seen, 0.0)
            miss_sq += miss**2
            judged += full
    with np.errstate(divide="ignore", invalid="ignore"):
        week_mse = np.where(judged >= 3, miss_sq / judged, np.nan)
    return np.where(has, prob * z, 0.0), mix, week_mse


@dataclass(frozen=True)
class Period:
    """Constants for one length of history column: what a day of data is worth differs from a month.

    Chosen on real data (docs/forecast.md, "Measured"): daily M5 series want slow smoothing (a
    day says little), monthly carparts series fast smoothing of the size and a little slower of
    the chance of a sale; only days have weekdays.
    """

    alpha_size: float
    alpha_chance: float
    weekly: bool  # columns are days: learn the weekday profile and apply it
    new_after: int  # columns of life before a series stands on its own sales


PERIODS = {"day": Period(0.05, 0.05, True, 56), "month": Period(0.3, 0.2, False, 2)}


def _forecast_block(history: History, rows: slice, period: Period) -> dict[str, np.ndarray]:
    """Per series of the block: everything the forecast needs, reduced to (s,) and (s, 7) arrays."""
    observed = history.observed(rows)
    y = _masked(history.sold[rows], observed)
    weekdays = history.weekdays()
    by_weekday = _weekday_matrix(weekdays)
    last = recent(observed, LEVEL_DAYS)
    y_last = np.where(last, y, 0.0)
    raw, mix, week_mse = tsb_by_weekday(y, observed, weekdays, period.alpha_size, period.alpha_chance)
    return {"week_var": week_mse, "after_sale": _after_sale(y, observed),
        "n_obs": observed.sum(axis=1), "n_hit": (y > 0).sum(axis=1), "total": y.sum(axis=1),
        "squares": (y * y).sum(axis=1), "sums": y @ by_weekday, "counts": observed.astype(float) @ by_weekday,
        "sums_last": y_last @ by_weekday, "days_last": last.astype(float) @ by_weekday,
        "squares_last": (y_last * y_last).sum(axis=1), "raw_rate": raw, "mix": mix,
    }


def _after_sale(y: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """How much faster a series sells in the week after a day with a sale than on average, shrunk
    towards 1 (AFTER_SALE_PRIOR days with a sale at the average rate); 1 without evidence.

    A reorder point is reached by a sale, so the lead time it must cover starts right after one.
    Where sales come in spells (a project, a season, a regular who buys twice), that week sells
    more than an average week, and a reorder point sized for an average week runs out more often
    than its service level says (measured on M5: class C served 87 % of cycles for a 90 % target).
    """
    hit = (y > 0) & observed
    sold = np.concatenate([np.zeros((len(y), 1)), np.cumsum(y, axis=1)], axis=1)
    seen = np.concatenate([np.zeros((len(y), 1)), np.cumsum(observed, axis=1, dtype=float)], axis=1)
    ahead = np.minimum(np.arange(y.shape[1]) + 1 + 7, y.shape[1])  # days t+1 .. t+7, cut at the end
    after = sold[:, ahead] - sold[:, 1:]
    after_days = seen[:, ahead] - seen[:, 1:]
    units = np.where(hit, after, 0.0).sum(axis=1)
    days = np.where(hit, after_days, 0.0).sum(axis=1)
    n_obs = observed.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n_obs > 0, y.sum(axis=1) / n_obs, 0.0)
        prior_days = AFTER_SALE_PRIOR * 7.0
        return np.where(rate > 0, (units + prior_days * rate) / ((days + prior_days) * rate), 1.0)


def _spread(b: dict[str, np.ndarray], cls: np.ndarray, rate: np.ndarray, prof: np.ndarray) -> np.ndarray:
    """The daily spread the forecast does not foresee (see `Forecast.daily_sd`)."""
    n_last = b["days_last"].sum(axis=1)
    weights = (b["days_last"] * prof).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(weights > 0, b["sums_last"].sum(axis=1) / weights, 0.0)
        # sum of (y - level * prof)^2 over the last LEVEL_DAYS observed days, expanded from the
        # weekday sums so no (S, D) temporary is needed: a steady weekly rhythm is not risk
        miss_sq = (b["squares_last"] - 2 * level * (b["sums_last"] * prof).sum(axis=1)
                   + level**2 * (b["days_last"] * prof**2).sum(axis=1))
        sd_last = np.where(n_last > 0, np.sqrt(np.maximum(miss_sq, 0.0) / n_last), 0.0)
        mean_all = np.where(b["n_obs"] > 0, b["total"] / b["n_obs"], 0.0)
        sd_all = np.sqrt(np.maximum(np.where(b["n_obs"] > 0, b["squares"] / b["n_obs"] - mean_all**2, 0.0), 0.0))
        # intermittent and lumpy: the long-run spread, scaled down (variance in proportion to the
        # mean) while the rate is below its long-run mean, so a fading product lets its safety stock
        # go, but never up: one big order must not inflate the reorder point right after it
        share = np.where(mean_all > 0, rate / mean_all, 1.0)
    steady = (cls == "smooth") | (cls == "erratic")
    return np.where(steady, sd_last, sd_all * np.sqrt(np.minimum(share, 1.0)))


def forecast(
    history: History,
    *,
    extra_daily: np.ndarray | None = None,
    period: str = "day",
    new_product_days: int | None = None,
) -> Forecast:
    """Forecast every series of `history` (columns are `period`s: "day" or "month").

    `extra_daily` (S,) adds units per period the shop could not serve (waitlist sign-ups).
    `new_product_days`: columns of life before a series stands on its own (the period's default).
    """
    constants = PERIODS[period]
    n = history.sold.shape[0]
    blocks = [_forecast_block(history, slice(start, min(start + CHUNK, n)), constants)
              for start in range(0, max(n, 1), CHUNK)]  # an empty history is one empty block
    b = {key: np.concatenate([block[key] for block in blocks]) for key in blocks[0]}

    cls = classify(*_adi_cv2(b["n_obs"], b["n_hit"], b["total"], b["squares"]))
    if constants.weekly:
        prof = _profile(b["sums"], b["counts"], _category_shape(np.asarray(history.category), b["sums"], b["counts"]))
    else:
        prof = np.ones((n, 7))
    with np.errstate(divide="ignore", invalid="ignore"):
        mix_mean = (b["mix"] * prof).sum(axis=1)  # the profile's weight in the days the rate learnt from
        rate = np.where(mix_mean > 0, b["raw_rate"] / mix_mean, b["raw_rate"])
    sd = _spread(b, cls, rate, prof)
    n_own = b["n_obs"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_own = np.where(n_own > 0, b["total"] / n_own, 0.0)
        sd_own = np.sqrt(np.maximum(np.where(n_own > 0, b["squares"] / n_own - mean_own**2, 0.0), 0.0))

    week_sd = np.sqrt(b["week_var"]) if constants.weekly else np.full(n, np.nan)
    new_after = constants.new_after if new_product_days is None else new_product_days
    life = history.n_days - np.asarray(history.first_day)
    new = life < new_after
    if new.any():
        pooled_rate, pooled_var, prior_days = _pooled(np.asarray(history.category), ~new, rate, sd**2)
        prior_days = np.minimum(prior_days, new_after)
        own_days, k = n_own[new], prior_days[new]
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(own_days > 0, own_days / (own_days + k), 0.0)  # credibility of its own days
        rate[new] = own * mean_own[new] + (1 - own) * pooled_rate[new]
        sd[new] = np.sqrt(own * sd_own[new] ** 2 + (1 - own) * pooled_var[new])
        cls[new] = "new"
        week_sd[new] = np.nan  # too few weeks of its own: its blended daily spread stands in

    if extra_daily is not None:
        extra = np.asarray(extra_daily, dtype=float)
        if extra.shape != (n,):
            raise ValueError(f"extra_daily must have one value per series ({n}), got {extra.shape}")
        rate = rate + np.maximum(extra, 0.0)
    # the rate is an exponentially weighted mean: its own error, as a share of the daily spread,
    # is sqrt(alpha / (2 - alpha)) (new products: as uncertain as their blend, at least that)
    alpha = constants.alpha_chance
    return Forecast(daily_demand=rate, demand_class=cls, daily_sd=sd, weekday_profile=prof,
                    rate_sd=sd * np.sqrt(alpha / (2 - alpha)), week_sd=week_sd,
                    after_sale=np.where(new, 1.0, b["after_sale"]),
                    first_weekday=(history.end.weekday() + 1) % 7 if constants.weekly else 0)


def _pooled(
    category: np.ndarray, established: np.ndarray, rate: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per series: the pooled rate and daily variance of its category's established series, and
    how many of its own days that pool is worth (Bühlmann credibility).

    The pool is worth k = (mean daily variance) / (variance of the rates between products) days:
    a category whose products all sell alike is a strong prior, one whose products differ widely
    gives way to a few days of the product's own sales. A category with fewer than two established
    series borrows the figures of all established series; with none at all, the rate is 0.
    """
    codes, inverse = np.unique(category, return_inverse=True)
    k = len(codes)
    est = inverse[established]
    count = np.bincount(est, minlength=k).astype(float)
    r, v = rate[established], var[established]

    def per_category(values: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.bincount(est, weights=values, minlength=k) / count

    def worth(epv: np.ndarray | float, spread: np.ndarray | float) -> np.ndarray:
        vhm = np.maximum(np.asarray(spread) - np.asarray(epv) / LEVEL_DAYS, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(vhm > 0, np.asarray(epv) / np.where(vhm > 0, vhm, 1.0), np.inf)

    if not established.any():
        zeros = np.zeros(len(category))
        return zeros, zeros, zeros
    cat_rate, cat_var = per_category(r), per_category(v)
    spread = per_category(r * r) - cat_rate**2
    spread *= count / np.maximum(count - 1, 1)  # between-product variance, unbiased
    cat_k = worth(cat_var, spread)
    all_k = worth(v.mean(), r.var(ddof=1) if r.size > 1 else 0.0)
    thin = count < 2
    cat_rate[thin], cat_var[thin], cat_k[thin] = r.mean(), v.mean(), all_k
    return cat_rate[inverse], cat_var[inverse], cat_k[inverse]


def moving_average(history: History, days: int = 28) -> np.ndarray:
    """The round-1 rate: units sold over the last `days` calendar days / `days`, stockouts counted as 0."""
    window = min(days, history.n_days)
    return np.asarray(history.sold[:, history.n_days - window :], dtype=float).sum(axis=1) / days
