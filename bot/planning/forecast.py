"""Daily demand forecast per (product, warehouse) series: pure, vectorised numpy, no database.

Method (docs/forecast.md explains it for purchasers):

- Demand is what customers took on days the shelf was not empty. A day that ended with nothing on
  hand is *censored*: it says how much could be sold, not how much was wanted. Such days (and days
  before the series existed) are left out of every rate and every recursion: they are skipped, never
  read as zeros. So a product that sold 4 a day and then sat empty for a month still forecasts ~4.
- Each series is classified by ADI (observed days per day with a sale) and CV² (squared coefficient
  of variation of the non-zero sale sizes), with the Syntetos–Boylan cut-offs 1.32 and 0.49:
  smooth (ADI < 1.32, CV² < 0.49), erratic (ADI < 1.32), intermittent (CV² < 0.49), lumpy (neither).
  A series younger than `new_product_days` is "new"; an established one with no sale on any observed
  day is "none" (demand 0).
- smooth and erratic: the in-stock-day average of the last `level_days` observed days, corrected
  for the weekday mix of those days by a weekday profile (shrunk towards flat while data is thin).
- intermittent: SBA, Croston's method with the Syntetos–Boylan bias correction (1 - alpha/2) z / p.
- lumpy: TSB (Teunter–Syntetos–Babai): probability of a sale times its size, both smoothed (at
  `lumpy_alpha`); the probability keeps decaying while nothing sells, so a dying product fades
  instead of freezing.
- new: the category's pooled rate (the mean forecast of the established series of the same
  category) blended with the product's own in-stock days by Bühlmann credibility: the pool counts
  as k of the product's own days, k = mean daily variance / variance of rates between the
  category's products (capped at `new_product_days`), so a category of look-alikes is trusted
  longer than one whose products differ widely.
- Waitlist sign-ups (`extra_daily`) are demand the shop could not serve and are added on top.

SBA and TSB are initialised as statsforecast does (first size, first interval, first occurrence
flag), so they equal statsforecast's CrostonSBA / TSB run on the series with censored days removed.

Invariants: every output is finite and >= 0; a series' forecast depends only on its own row (and,
for new series, the established series of its category); `weekday_profile` rows have mean 1.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

DEMAND_CLASSES = ("none", "smooth", "intermittent", "erratic", "lumpy", "new")
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
LEVEL_DAYS = 56  # observed days behind the smooth/erratic level: 8 weeks, every weekday 8 times
PROFILE_PRIOR_UNITS = 10.0  # a weekday needs well over 10 units sold to pull away from flat
# Lumpy sizes are heavy-tailed: at 0.1 one big order moves the size by a tenth of its excess.
# Measured on the benchmark (two seeds): TSB at 0.1 ties the 28-day average on lumpy series,
# at 0.05 it beats it; the chance of a sale still fades by 5 % a day without one.
LUMPY_ALPHA = 0.05
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
    daily_demand: np.ndarray  # (S,) units/day, waitlist extra included
    demand_class: np.ndarray  # (S,) str, one of DEMAND_CLASSES
    daily_sd: np.ndarray  # (S,) std of daily demand, for safety stock
    weekday_profile: np.ndarray  # (S, 7) multipliers by weekday (Monday first), mean 1; ones unless smooth/erratic


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


def sba(sold: np.ndarray, observed: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """Syntetos–Boylan approximation of Croston, per row, skipping unobserved days.

    Croston smooths the size z of each non-zero demand and the interval p (observed days since the
    previous demand) with the same `alpha`, each starting from its first value; the forecast is
    (1 - alpha/2) z / p. Trailing days without demand leave it unchanged (a property of Croston).
    """
    y = _masked(sold, observed)
    has, z, p = _first_demand(y, observed)
    y_t, hit_t, obs_t = _by_day(y, observed)
    since = np.zeros(y.shape[0])
    for t in range(y_t.shape[0]):
        hit = hit_t[t]
        since += obs_t[t]
        z += alpha * hit * (y_t[t] - z)
        p += alpha * hit * (since - p)
        since *= 1.0 - hit
    return np.where(has, (1.0 - alpha / 2.0) * z / p, 0.0)


def tsb(sold: np.ndarray, observed: np.ndarray, alpha_d: float = 0.1, alpha_p: float = 0.1) -> np.ndarray:
    """Teunter–Syntetos–Babai, per row, skipping unobserved days.

    The size z is smoothed on demand days only (from the first size); the probability of demand is
    smoothed every observed day from the first observed day's 0/1; the forecast is probability x size.
    """
    y = _masked(sold, observed)
    has, z, _ = _first_demand(y, observed)
    prob = (y[np.arange(y.shape[0]), observed.argmax(axis=1)] > 0).astype(float)
    y_t, hit_t, obs_t = _by_day(y, observed)
    for t in range(y_t.shape[0]):
        hit = hit_t[t]
        prob += alpha_p * obs_t[t] * (hit - prob)
        z += alpha_d * hit * (y_t[t] - z)
    return np.where(has, prob * z, 0.0)


def _weekday_matrix(weekdays: np.ndarray) -> np.ndarray:
    """(D, 7) one-hot of each column's weekday: `values @ it` sums values by weekday."""
    return (np.asarray(weekdays)[:, None] == np.arange(7)[None, :]).astype(float)


def weekday_profile(sold: np.ndarray, observed: np.ndarray, weekdays: np.ndarray) -> np.ndarray:
    """(S, 7) weekday multipliers, mean 1, from observed days; shrunk to flat while data is thin.

    Each weekday's mean is blended with the mean of the weekday means at PROFILE_PRIOR_UNITS units'
    worth of pseudo-days, so a slow seller's few sales cannot carve a shape, while thousands of
    units can. Weekdays are weighed equally, not by how often they were in stock: a product sold
    out every weekend still gets its weekend share. Rows with no sale are flat.
    """
    by_weekday = _weekday_matrix(weekdays)
    return _profile(_masked(sold, observed) @ by_weekday, observed.astype(float) @ by_weekday)


def _profile(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    seen = counts > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(seen, sums / counts, 0.0)
        centre = raw.sum(axis=1) / seen.sum(axis=1)
        prior_days = PROFILE_PRIOR_UNITS / centre
        means = (sums + (prior_days * centre)[:, None]) / (counts + prior_days[:, None])
        prof = means / means.mean(axis=1, keepdims=True)
    prof[~(centre > 0)] = 1.0
    return prof


def recent(observed: np.ndarray, days: int) -> np.ndarray:
    """The last `days` observed days of each row (stockout days do not use up the window)."""
    from_end = np.cumsum(observed[:, ::-1], axis=1, dtype=np.int32)[:, ::-1]
    return observed & (from_end <= days)


def _forecast_block(
    history: History, rows: slice, *, alpha: float, lumpy_alpha: float, level_days: int
) -> tuple[np.ndarray, ...]:
    observed = history.observed(rows)
    y = _masked(history.sold[rows], observed)
    squares = y * y
    n_all = observed.sum(axis=1)
    total, total_sq = y.sum(axis=1), squares.sum(axis=1)
    cls = classify(*_adi_cv2(n_all, (y > 0).sum(axis=1), total, total_sq))

    by_weekday = _weekday_matrix(history.weekdays())
    prof = _profile(y @ by_weekday, observed.astype(float) @ by_weekday)
    last = recent(observed, level_days)
    y_last = np.where(last, y, 0.0)
    sums_last = y_last @ by_weekday  # (s, 7) units sold in the window, by weekday
    days_last = last.astype(float) @ by_weekday
    n_last = days_last.sum(axis=1)
    weights = (days_last * prof).sum(axis=1)  # days in the window, weighted by their weekday's share
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(weights > 0, sums_last.sum(axis=1) / weights, 0.0)
        # the spread around the weekday-shaped level: the weekly rhythm is foreseen, not risk;
        # sum of (y - level * prof)^2 over the window, expanded so no (s, D) temporary is needed
        miss_sq = ((y_last * y_last).sum(axis=1) - 2 * level * (sums_last * prof).sum(axis=1)
                   + level**2 * (days_last * prof**2).sum(axis=1))
        sd_last = np.where(n_last > 0, np.sqrt(np.maximum(miss_sq, 0.0) / n_last), 0.0)
        mean_all = np.where(n_all > 0, total / n_all, 0.0)
        sd_all = np.sqrt(np.maximum(np.where(n_all > 0, total_sq / n_all - mean_all**2, 0.0), 0.0))

    rate = np.zeros(len(cls))
    sd = np.zeros(len(cls))
    steady = (cls == "smooth") | (cls == "erratic")
    rate[steady], sd[steady] = level[steady], sd_last[steady]
    methods = {
        "intermittent": lambda y, o: sba(y, o, alpha),
        "lumpy": lambda y, o: tsb(y, o, lumpy_alpha, lumpy_alpha),
    }
    for name, method in methods.items():
        pick = cls == name
        if pick.any():
            rate[pick] = method(y[pick], observed[pick])
            # the long-run spread of the series; scaled down (variance in proportion to the mean)
            # while the rate is below its long-run mean, so a fading product lets its safety stock
            # go, but never up: one big order must not inflate the reorder point right after it
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(mean_all[pick] > 0, rate[pick] / mean_all[pick], 1.0)
            sd[pick] = sd_all[pick] * np.sqrt(np.minimum(share, 1.0))
    prof[~steady] = 1.0
    return cls, rate, sd, prof, n_all, mean_all, sd_all


def forecast(
    history: History,
    *,
    extra_daily: np.ndarray | None = None,
    new_product_days: int = 56,
    alpha: float = 0.1,
    lumpy_alpha: float = LUMPY_ALPHA,
    level_days: int = LEVEL_DAYS,
) -> Forecast:
    """Forecast every series of `history`; `alpha` smooths SBA, `lumpy_alpha` TSB (size and chance).

    `extra_daily` (S,) adds units/day the shop could not serve (waitlist sign-ups) to the demand.
    """
    n = history.sold.shape[0]
    cls = np.empty(n, dtype="<U12")
    rate, sd, n_own, mean_own, sd_own = (np.zeros(n) for _ in range(5))
    prof = np.ones((n, 7))
    for start in range(0, n, CHUNK):
        rows = slice(start, min(start + CHUNK, n))
        cls[rows], rate[rows], sd[rows], prof[rows], n_own[rows], mean_own[rows], sd_own[rows] = _forecast_block(
            history, rows, alpha=alpha, lumpy_alpha=lumpy_alpha, level_days=level_days
        )

    life = history.n_days - np.asarray(history.first_day)
    new = life < new_product_days
    if new.any():
        pooled_rate, pooled_var, prior_days = _pooled(np.asarray(history.category), ~new, rate, sd**2)
        prior_days = np.minimum(prior_days, new_product_days)
        own_days, k = n_own[new], prior_days[new]
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.where(own_days > 0, own_days / (own_days + k), 0.0)  # credibility of its own days
        rate[new] = own * mean_own[new] + (1 - own) * pooled_rate[new]
        sd[new] = np.sqrt(own * sd_own[new] ** 2 + (1 - own) * pooled_var[new])
        cls[new] = "new"
        prof[new] = 1.0

    if extra_daily is not None:
        extra = np.asarray(extra_daily, dtype=float)
        if extra.shape != (n,):
            raise ValueError(f"extra_daily must have one value per series ({n}), got {extra.shape}")
        rate = rate + np.maximum(extra, 0.0)
    return Forecast(daily_demand=rate, demand_class=cls, daily_sd=sd, weekday_profile=prof)


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
