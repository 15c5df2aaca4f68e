"""Forecast accuracy, a 365-day replenishment replay, and forecast speed at 100k series.

    python benchmarks/bench_forecast.py                # 10,000 products, replay 1,000, scale 100,000
    python benchmarks/bench_forecast.py --quick        # 2,000 / 300 / 10,000: a fast look
    python benchmarks/bench_forecast.py --products 20000 --replay-products 3000 --scale-products 100000

A seeded generator writes 2 years of daily demand per product (smooth with a weekday shape, a
drift and one-day promotions; intermittent; lumpy; ~8 % new products), then censors stockout
windows: ~40 % of products were out 5-20 days within the last 28, half had older gaps too. A
stockout day sells part of its demand (the last units) and counts as not in stock.

1. Accuracy: forecast at the end of history against the next 28 days of true demand, per demand
   class (the engine's class), new engine vs the round-1 28-day average: RMSSE (mean over series,
   scaled by the in-sample one-step naive error on in-stock days) and bias (sum forecast / sum
   actual - 1), also for the products with >= 5 stockout days in the last 28.
2. Replay: 365 days of the same processes, each policy on its own simulated shelf. New: forecast
   refit every --refit days on the last 730 days of its own (censored) history, `policy()` with
   ABC service levels, `order_quantity()` checked daily. Old (round 1): catalog reorder point =
   lead-time demand + N days of safety stock (N = 3, 7, 14: one replay each; set once from the last
   year's true rate, the way a purchaser sets it), checked daily; when available and position are at or below it, order
   safety stock + 28-day average x lead time - position, at least up to reorder point + 1 (the
   code of round-1 `reorder.suggest`). Orders arrive after the lead time; unmet demand is lost.
3. Speed: `forecast()` on --scale-products x 730 days (int16 sales, bool in-stock), in a child
   process so its peak RSS is its own; the 28-day average timed alongside.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import time

import numpy as np
from common import describe  # benchmarks/common.py, beside this script

from bot.planning.abc import abc_classes
from bot.planning.forecast import DEMAND_CLASSES, History, forecast, moving_average
from bot.planning.replenishment import order_quantity, policy

HISTORY_DAYS = 730
HORIZON = 28
END = datetime.date(2026, 11, 29)
CATEGORIES = 60
WEEK_SHAPE = np.array([0.85, 0.9, 0.95, 1.0, 1.1, 1.35, 0.85])  # Monday first
LEAD_TIMES = np.array([3, 5, 7, 10, 14, 21])
GEN_CHUNK = 1000


def generate(n: int, days: int, history_days: int, seed: int, keep_demand: bool = True) -> dict[str, np.ndarray]:
    """True demand (n, days) and censoring of the first `history_days`; deterministic per seed."""
    out = {
        "demand": np.zeros((n, days if keep_demand else 0), np.float32),
        "sold": np.zeros((n, history_days), np.int16),
        "in_stock": np.zeros((n, history_days), bool),
        "kind": np.empty(n, "<U12"),
        "category": np.zeros(n, np.int32),
        "first_day": np.zeros(n, np.int32),
        "out_recent": np.zeros(n, np.int32),
    }
    cat_scale = np.random.default_rng(seed).lognormal(0.0, 0.7, CATEGORIES)
    for start in range(0, n, GEN_CHUNK):
        rows = slice(start, min(n, start + GEN_CHUNK))
        block = _generate_block(rows.stop - rows.start, days, history_days, cat_scale,
                                np.random.default_rng([seed, start]))
        if not keep_demand:
            del block["demand"]
        for key, value in block.items():
            out[key][rows] = value
    return out


def _generate_block(c: int, days: int, hd: int, cat_scale: np.ndarray, rng: np.random.Generator) -> dict:
    kind = rng.choice(np.array(["smooth", "intermittent", "lumpy"]), size=c, p=[0.55, 0.25, 0.20])
    category = rng.integers(0, CATEGORIES, c)
    scale = cat_scale[category] * rng.lognormal(0.0, 0.5, c)
    t = np.arange(days)
    weekdays = (END.weekday() - (hd - 1) + t) % 7

    # smooth: Poisson around a drifting level with a weekday shape and one-day promotions (x2.5)
    shape = WEEK_SHAPE[None, :] ** rng.uniform(0.0, 1.5, (c, 1))
    shape /= shape.mean(axis=1, keepdims=True)
    drift = np.exp(rng.normal(0.0, 0.2, (c, 1)) * (t[None, :] - hd) / 365)
    promo = np.where(rng.random((c, days)) < 1 / 45, 2.5, 1.0)
    rate = 2.5 * scale[:, None] * shape[:, weekdays] * drift * promo
    smooth = rng.poisson(rate).astype(np.float32)
    # intermittent: a sale on a share of days, of a steady size; lumpy: rarer, sizes spread wide
    p_int = rng.uniform(0.03, 0.4, (c, 1))
    size_int = 1 + rng.poisson(0.3 * scale[:, None], (c, days))
    intermittent = (rng.random((c, days)) < p_int) * size_int
    p_lumpy = rng.uniform(0.02, 0.3, (c, 1))
    size_lumpy = np.ceil(rng.lognormal(np.log(3 * scale)[:, None], 1.0, (c, days)))
    lumpy = (rng.random((c, days)) < p_lumpy) * np.minimum(size_lumpy, 2000)
    demand = np.where((kind == "smooth")[:, None], smooth,
                      np.where((kind == "intermittent")[:, None], intermittent, lumpy)).astype(np.float32)

    first_day = np.zeros(c, np.int32)
    new = rng.random(c) < 0.08
    first_day[new] = hd - rng.integers(5, 56, new.sum())
    demand[t[None, :] < first_day[:, None]] = 0

    in_stock = t[None, :hd] >= first_day[:, None]
    out_recent = np.zeros(c, np.int32)
    recent = (rng.random(c) < 0.4) & ~new
    length = rng.integers(5, 21, c)
    begin = hd - 28 + (rng.random(c) * (28 - length + 1)).astype(int)
    for i in np.flatnonzero(recent):
        in_stock[i, begin[i] : begin[i] + length[i]] = False
        out_recent[i] = length[i]
    older = (rng.random(c) < 0.5) & ~new
    for i in np.flatnonzero(older):
        for _ in range(rng.integers(1, 4)):
            n_out = rng.integers(3, 31)
            s = rng.integers(0, hd - 60 - n_out)
            in_stock[i, s : s + n_out] = False
    hist = demand[:, :hd]
    # a stockout day sells part of its demand before the shelf empties, then nothing until restock
    starts = ~in_stock & np.concatenate([np.ones((c, 1), bool), in_stock[:, :-1]], axis=1)
    sold = np.where(in_stock, hist, np.where(starts, np.floor(hist * rng.random((c, hd))), 0))
    sold[t[None, :hd] < first_day[:, None]] = 0
    kind = np.where(new, "new", kind)
    return {"demand": demand, "sold": np.minimum(sold, 32767).astype(np.int16), "in_stock": in_stock,
            "kind": kind, "category": category, "first_day": first_day, "out_recent": out_recent}


def rmsse(sold, observed, actual, fcst) -> np.ndarray:
    """Per series: RMSE over the horizon / RMSE of the one-step naive forecast on in-stock day pairs."""
    both = observed[:, 1:] & observed[:, :-1]
    diff = np.diff(sold.astype(float), axis=1)
    pairs = both.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(both, diff * diff, 0).sum(axis=1) / pairs
        return np.sqrt(((actual - fcst) ** 2).mean(axis=1) / scale)


def accuracy(n: int, seed: int) -> None:
    data = generate(n, HISTORY_DAYS + HORIZON, HISTORY_DAYS, seed)
    h = History(sold=data["sold"], in_stock=data["in_stock"], first_day=data["first_day"],
                category=data["category"], end=END)
    f = forecast(h)
    old = moving_average(h)
    actual = data["demand"][:, HISTORY_DAYS:].astype(float)
    horizon_wd = (END.weekday() + 1 + np.arange(HORIZON)) % 7
    new_daily = f.daily_demand[:, None] * f.weekday_profile[:, horizon_wd]
    old_daily = np.repeat(old[:, None], HORIZON, axis=1)
    observed = h.observed()
    r_new = rmsse(h.sold, observed, actual, new_daily)
    r_old = rmsse(h.sold, observed, actual, old_daily)

    print(f"\n1. accuracy: {n:,} products, forecast at day {HISTORY_DAYS} vs the next {HORIZON} days of true demand")
    print(f"{'group':<34}{'series':>7}{'RMSSE new':>11}{'RMSSE 28d':>11}{'bias new':>10}{'bias 28d':>10}")
    groups = [(f"class {c}", f.demand_class == c) for c in DEMAND_CLASSES if c != "none"]
    groups += [("generated new (<8 weeks)", data["kind"] == "new"),
               (">= 5 stockout days in last 28", data["out_recent"] >= 5),
               ("  of which smooth", (data["out_recent"] >= 5) & (f.demand_class == "smooth")),
               ("no stockout in last 28", data["out_recent"] == 0),
               ("all", np.ones(n, bool))]
    for label, pick in groups:
        if not pick.any():
            continue
        ok = pick & np.isfinite(r_new) & np.isfinite(r_old)
        total = actual[pick].sum()
        bias_new = f.daily_demand[pick].sum() * HORIZON / total - 1
        bias_old = old[pick].sum() * HORIZON / total - 1
        print(f"{label:<34}{pick.sum():>7}{r_new[ok].mean():>11.3f}{r_old[ok].mean():>11.3f}"
              f"{bias_new:>+10.1%}{bias_old:>+10.1%}")


def replay(n: int, seed: int, days: int, refit: int, old_safety_days: list[int]) -> None:
    data = generate(n, HISTORY_DAYS + days, HISTORY_DAYS, seed + 1)
    rng = np.random.default_rng(seed + 2)
    lead = rng.choice(LEAD_TIMES, n)
    price = rng.lognormal(3.0, 1.0, n)
    observed0 = data["in_stock"] & (np.arange(HISTORY_DAYS)[None, :] >= data["first_day"][:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        true_rate = data["demand"][:, HISTORY_DAYS - 365 : HISTORY_DAYS].sum(axis=1) / np.minimum(
            365, HISTORY_DAYS - data["first_day"])
    abc = abc_classes(true_rate * price)
    start_stock = np.array([data["demand"][i, HISTORY_DAYS : HISTORY_DAYS + lead[i] + 7].sum() for i in range(n)])
    demand = data["demand"]
    del observed0

    results = {}
    runs = ["new"] + [f"old {d}d" for d in old_safety_days]
    for name in runs:
        if name != "new":
            cat_safety = np.ceil(int(name.split()[1][:-1]) * true_rate)
            cat_rop = np.ceil(true_rate * lead) + cat_safety
        started = time.perf_counter()
        sold = np.zeros((n, HISTORY_DAYS + days), np.int32)
        sold[:, :HISTORY_DAYS] = data["sold"]
        in_stock = np.zeros((n, HISTORY_DAYS + days), bool)
        in_stock[:, :HISTORY_DAYS] = data["in_stock"]
        on_hand = start_stock.astype(float)
        on_order = np.zeros(n)
        arrivals = np.zeros((n, days + LEAD_TIMES.max() + 1))
        served = wanted = stock_sum = orders = 0.0
        per_class = {c: [0.0, 0.0] for c in "ABC"}
        kinds = ("smooth", "intermittent", "lumpy", "new")
        per_kind = {k: np.zeros(3) for k in kinds}  # served, wanted, stock
        pol = None
        for d in range(days):
            t = HISTORY_DAYS + d
            on_hand += arrivals[:, d]
            on_order -= arrivals[:, d]
            want = demand[:, t].astype(float)
            sale = np.minimum(want, on_hand)
            on_hand -= sale
            sold[:, t] = sale
            in_stock[:, t] = on_hand > 0
            served += sale.sum()
            wanted += want.sum()
            for c in "ABC":
                per_class[c][0] += sale[abc == c].sum()
                per_class[c][1] += want[abc == c].sum()
            stock_sum += on_hand.sum()
            for k in kinds:
                pick = data["kind"] == k
                per_kind[k] += (sale[pick].sum(), want[pick].sum(), on_hand[pick].sum())
            position = on_hand + on_order
            if name == "new":
                if d % refit == 0:
                    lo = t + 1 - HISTORY_DAYS
                    h = History(sold=sold[:, lo : t + 1], in_stock=in_stock[:, lo : t + 1],
                                first_day=np.maximum(data["first_day"] - lo, 0), category=data["category"],
                                end=END + datetime.timedelta(days=d + 1))
                    pol = policy(forecast(h), lead, abc)
                qty = order_quantity(position, pol).astype(float)
            else:
                avg28 = sold[:, t - 27 : t + 1].sum(axis=1) / 28
                due = (on_hand <= cat_rop) & (position <= cat_rop)
                level = np.maximum(cat_safety + np.ceil(avg28 * lead), cat_rop + 1)
                qty = np.where(due, np.maximum(level - position, 0), 0.0)
            on_order += qty
            arrivals[np.arange(n), d + lead] += qty
            orders += (qty > 0).sum()
        results[name] = {
            "fill": served / wanted,
            "stock": stock_sum / days,
            "orders": orders / n * 365 / days,
            "class_fill": {c: s / w if w else float("nan") for c, (s, w) in per_class.items()},
            "kinds": {k: (v[0] / v[1], v[2] / days) for k, v in per_kind.items()},
            "seconds": time.perf_counter() - started,
        }

    print(f"\n2. replay: {n:,} products x {days} days, lead times {LEAD_TIMES.tolist()} days, "
          f"new policy refit every {refit} day(s)")
    print(f"{'policy':<10}{'fill rate':>10}{'fill A':>8}{'fill B':>8}{'fill C':>8}"
          f"{'avg stock (units)':>19}{'orders/product/yr':>19}{'wall s':>8}")
    for name, r in results.items():
        cf = r["class_fill"]
        print(f"{name:<10}{r['fill']:>10.2%}{cf['A']:>8.2%}{cf['B']:>8.2%}{cf['C']:>8.2%}"
              f"{r['stock']:>19,.0f}{r['orders']:>19.1f}{r['seconds']:>8.1f}")
    base = f"old {7 if 7 in old_safety_days else old_safety_days[0]}d"
    print(f"avg stock new / {base}: {results['new']['stock'] / results[base]['stock']:.2f}")
    print("by generated kind, fill rate / avg stock (units):")
    print(f"{'kind':<14}" + "".join(f"{name:>22}" for name in results))
    for k in results["new"]["kinds"]:
        cells = (results[name]["kinds"][k] for name in results)
        print(f"{k:<14}" + "".join(f"{fill:>10.2%} /{stock:>9,.0f}" for fill, stock in cells))


def scale_child(n: int, seed: int) -> None:
    """Runs in its own process: generate n x 730, then time forecast() and the 28-day average."""
    data = generate(n, HISTORY_DAYS, HISTORY_DAYS, seed, keep_demand=False)
    h = History(sold=data.pop("sold"), in_stock=data.pop("in_stock"), first_day=data["first_day"],
                category=data["category"], end=END)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started, cpu = time.perf_counter(), time.process_time()
    f = forecast(h)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    moving_average(h)
    ma_seconds = time.perf_counter() - started
    classes = {c: int((f.demand_class == c).sum()) for c in DEMAND_CLASSES}
    print(json.dumps({"seconds": seconds, "cpu": cpu, "ma_seconds": ma_seconds, "peak_mib": peak, "before_mib": before,
                      "classes": classes}))


def scale(n: int, seed: int) -> None:
    child = subprocess.run([sys.executable, __file__, "--scale-child", str(n), "--seed", str(seed)],
                           capture_output=True, text=True, check=True)
    r = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"\n3. speed: forecast() on {n:,} series x {HISTORY_DAYS} days (int16 sales + bool in-stock "
          f"= {n * HISTORY_DAYS * 3 / 2**20:,.0f} MiB of input)")
    print(f"forecast(): {r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU (all threads); "
          f"28-day average: {r['ma_seconds']:.2f} s")
    print(f"peak RSS of the process: {r['peak_mib']:,.0f} MiB (before forecast(): {r['before_mib']:,.0f} MiB, "
          f"generator included)")
    print(f"classes: {r['classes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--replay-products", type=int, default=1_000)
    parser.add_argument("--replay-days", type=int, default=365)
    parser.add_argument("--refit", type=int, default=1, help="days between forecast refits in the replay")
    parser.add_argument("--scale-products", type=int, default=100_000)
    parser.add_argument("--old-safety-days", default="3,7,14",
                        help="catalog safety stock of the old policy, in days of demand (one replay each)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", choices=["accuracy", "replay", "scale"], action="append", default=[])
    parser.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        scale_child(args.scale_child, args.seed)
        return
    if args.quick:
        args.products, args.replay_products, args.scale_products = 2_000, 300, 10_000
    print(f"machine: {describe()}, numpy {np.__version__}; seed {args.seed}")
    if "accuracy" not in args.skip:
        accuracy(args.products, args.seed)
    if "replay" not in args.skip:
        replay(args.replay_products, args.seed, args.replay_days, args.refit,
               [int(x) for x in args.old_safety_days.split(",")])
    if "scale" not in args.skip:
        scale(args.scale_products, args.seed)


if __name__ == "__main__":
    main()
