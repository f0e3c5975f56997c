"""Provider speed: the synthetic market (261 symbols x 5 years) and the local provider on the S&P 500 folder.

Run: /work/venv/bin/python benchmarks/providers.py [--repeat N]
Prints wall-clock figures; nothing is asserted (tests never time anything).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

from trading_assets.domain import calendar
from trading_assets.providers.local_files import LocalFilesProvider, _CACHE
from trading_assets.providers.router import DataRouter
from trading_assets.providers.synthetic import SyntheticProvider
from trading_assets.universe import load_universe

SP500 = Path(__file__).resolve().parents[2] / "shared" / "data" / "prices"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    universe = load_universe()
    symbols = universe["symbol"].to_list()
    start, end = date(2020, 1, 2), date(2024, 12, 31)
    calendar.sessions(start, end)  # load the exchange calendar once (not the provider's cost)

    cold, warm = [], []
    for _ in range(args.repeat):
        p = SyntheticProvider(7, universe)
        t, r = timed(lambda: p.fetch(symbols, start, end))
        cold.append(t)
        t, _ = timed(lambda: p.fetch(symbols, start, end))
        warm.append(t)
    print(f"synthetic: {len(symbols)} symbols x {start}..{end}: {r.bars.height:,} bars, {r.actions.height:,} actions")
    print(f"  new provider (paths generated from 2000-01-03): median {statistics.median(cold):.3f} s  (runs: {', '.join(f'{x:.3f}' for x in cold)})")
    print(f"  same provider again (paths cached):             median {statistics.median(warm):.3f} s")

    t, rr = timed(lambda: DataRouter([SyntheticProvider(7, universe)], seed=7).route(symbols, start, end))
    print(f"router over synthetic (validation, dedupe, labels): {t:.3f} s for {rr.bars.height:,} rows")

    if not SP500.exists():
        print(f"local: {SP500} absent, skipped")
        return
    import polars as pl

    all_syms = pl.read_parquet(SP500 / "sp500_2013_2018.parquet", columns=["symbol"])["symbol"].unique().sort().to_list()
    loads, fetches = [], []
    for _ in range(args.repeat):
        _CACHE.clear()
        p = LocalFilesProvider(SP500)
        t, r = timed(lambda: p.fetch(all_syms, date(2013, 1, 1), date(2018, 12, 31)))
        loads.append(t)
        t, _ = timed(lambda: p.fetch(all_syms[:50], date(2016, 1, 1), date(2016, 12, 31)))
        fetches.append(t)
    print(f"local: {SP500}: {r.bars.height:,} rows, {len(all_syms)} symbols")
    print(f"  first fetch (scan + all rows):        median {statistics.median(loads):.3f} s")
    print(f"  cached fetch (50 symbols, one year):  median {statistics.median(fetches):.3f} s")


if __name__ == "__main__":
    main()
