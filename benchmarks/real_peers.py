"""statsforecast's models as peers, and the accuracy measures, for benchmarks/bench_forecast_real.py.

Each peer is run through its own `forecast(y, h)` (statsforecast 2.1.1, the `.[bench]` extra) one
series at a time on the whole history before the origin, from the series' first sale (before it an
M5 item was not on sale). CPU is `time.process_time()` around the model calls alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def peer_models(season: int) -> dict[str, Callable[[], object]]:
    """Name -> factory. `season` 7 for daily data, 12 for monthly."""
    from statsforecast import models as m

    windows = (7, 28) if season == 7 else (6, 12)
    peers: dict[str, Callable[[], object]] = {
        "AutoETS": lambda: m.AutoETS(season_length=season),
        "ADIDA": m.ADIDA,
        "IMAPA": m.IMAPA,
        "TSB(0.1,0.1)": lambda: m.TSB(alpha_d=0.1, alpha_p=0.1),
        "CrostonClassic": m.CrostonClassic,
        "CrostonOptimized": m.CrostonOptimized,
        "CrostonSBA": m.CrostonSBA,
        "SESOptimized": m.SimpleExponentialSmoothingOptimized,
        "HistoricAverage": m.HistoricAverage,
    }
    for w in windows:
        peers[f"WindowAverage({w})"] = lambda w=w: m.WindowAverage(window_size=w)
    if season == 7:
        peers["SeasonalWindowAverage(7x4)"] = lambda: m.SeasonalWindowAverage(season_length=7, window_size=4)
    return peers


def run_peer(
    factory: Callable[[], object], train: np.ndarray, rows: np.ndarray, horizon: int, *, trim: bool = True
) -> tuple[np.ndarray, float]:
    """Forecasts (len(rows), horizon) of one peer and its CPU seconds. `trim`: start each series at
    its first sale (M5, where an item before it was not on sale), else use all of it (carparts)."""
    out = np.full((len(rows), horizon), np.nan)
    model = factory()
    starts = first_sale(train) if trim else np.zeros(train.shape[0], dtype=int)
    cpu = 0.0
    for k, i in enumerate(rows):
        y = train[i, starts[i]:]
        t0 = time.process_time()
        out[k] = model.forecast(y=y, h=horizon)["mean"]
        if not np.isfinite(out[k]).all():  # too short for the model from its first sale: all of it
            out[k] = model.forecast(y=train[i], h=horizon)["mean"]
        cpu += time.process_time() - t0
    return out, cpu


def first_sale(train: np.ndarray) -> np.ndarray:
    hit = train > 0
    return np.where(hit.any(axis=1), hit.argmax(axis=1), train.shape[1] - 1)


@dataclass(frozen=True)
class Scale:
    """Per series: the in-sample one-step naive errors that RMSSE and MASE divide by (M5's rule:
    from the first sale on)."""

    squared: np.ndarray
    absolute: np.ndarray

    @staticmethod
    def of(train: np.ndarray) -> Scale:
        starts = first_sale(train)
        diffs = np.diff(train, axis=1)
        valid = np.arange(1, train.shape[1])[None, :] > starts[:, None]
        n = valid.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return Scale(squared=np.where(valid, diffs**2, 0).sum(axis=1) / n,
                         absolute=np.where(valid, np.abs(diffs), 0).sum(axis=1) / n)


def measures(fc: np.ndarray, actual: np.ndarray, scale: Scale, weights: np.ndarray) -> dict[str, float]:
    """RMSSE and MASE (means over series), revenue-weighted RMSSE, the error of the horizon total
    (sum over series of |forecast total - actual total| / sum of actual totals) and bias
    (sum forecast / sum actual - 1). A series with no sale before the origin has no scale and is
    left out (M5: an item not on sale yet)."""
    keep = np.isfinite(scale.squared) & (scale.squared > 0)
    fc, actual, weights = fc[keep], actual[keep], weights[keep]
    scale = Scale(scale.squared[keep], scale.absolute[keep])
    rmsse = np.sqrt(((fc - actual) ** 2).mean(axis=1) / scale.squared)
    mase = np.abs(fc - actual).mean(axis=1) / scale.absolute
    totals = fc.sum(axis=1), actual.sum(axis=1)
    return {
        "rmsse": float(rmsse.mean()),
        "mase": float(mase.mean()),
        "wrmsse": float((rmsse * weights).sum() / weights.sum()),
        "total_err": float(np.abs(totals[0] - totals[1]).sum() / totals[1].sum()),
        "bias": float(totals[0].sum() / totals[1].sum() - 1.0),
        "n": int(len(rmsse)),
    }
