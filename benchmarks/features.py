"""Benchmark of the feature computation (prints figures; no assertions).

    /work/venv/bin/python benchmarks/features.py [--repeat 3] [--big 2000] [--no-warehouse]
    /work/venv/bin/python benchmarks/features.py --chunk 50 --symbols 2000 [--window 1]

1. compute_features on a seeded synthetic market of 250 symbols (+ the benchmark) x 1,260 sessions
   (target <= 3 s on a 2-core machine) and of 2,000 symbols x 1,260 sessions;
2. the cost of "recompute from history_start every run": one daily run of the asset's work outside
   Dagster (read 1,260 sessions of 250 symbols from DuckDB, compute, replace one session's rows).
--chunk K: instead, the asset's chunked computation (window_chunks, K symbols per chunk) of the last
   --window sessions (0 = all) of --symbols symbols, once, in this fresh process, so the peak RSS it
   prints is that computation's (with the market). Every run prints the process's peak RSS at the end
   (resource.getrusage; /usr/bin/time -v gives the same "Maximum resident set size").
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trading_assets.domain import calendar  # noqa: E402
from trading_assets.domain.features import FEATURE_NAMES, compute_features, feature_version  # noqa: E402
from trading_assets.domain.features.catalog import sql_columns  # noqa: E402
from trading_assets.settings import FeatureSettings  # noqa: E402

ACTIONS = pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "action": pl.String, "value": pl.Float64, "price_factor": pl.Float64})


def market(n_symbols: int, n_sessions: int, seed: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Random-walk OHLCV for n_symbols + SPY, and one 2:1 split per 50 symbols (so adjustments run)."""
    rng = np.random.default_rng(seed)
    days = calendar.sessions(date(2019, 1, 2), date(2025, 12, 31))[:n_sessions]
    n = n_symbols + 1
    r = rng.normal(0.0003, 0.015, (n, n_sessions))
    close = 50.0 * np.exp(np.cumsum(r, axis=1))
    open_ = close * np.exp(rng.normal(0, 0.004, close.shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, close.shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, close.shape)))
    volume = np.round(np.exp(rng.normal(14, 0.5, close.shape)))
    symbols = [f"S{i:04d}" for i in range(n_symbols)] + ["SPY"]
    bars = pl.DataFrame(
        {
            "date": np.tile(np.array(days, dtype="datetime64[D]"), n),
            "symbol": np.repeat(symbols, n_sessions),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    split_syms = symbols[: n_symbols : 50]
    actions = pl.DataFrame(
        {"date": [days[n_sessions // 2]] * len(split_syms), "symbol": split_syms, "action": "split", "value": 2.0, "price_factor": 0.5},
        schema=ACTIONS.schema,
    )
    return bars, actions


def time_compute(bars: pl.DataFrame, actions: pl.DataFrame, repeat: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (all threads) seconds per run: on a shared machine the CPU time shows the
    work itself when other processes stretch the wall clock."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        compute_features(bars, actions, "SPY", None, FeatureSettings())
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def daily_run_cost(bars: pl.DataFrame, actions: pl.DataFrame) -> dict[str, float]:
    from trading_assets.store.warehouse import Warehouse

    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(Path(tmp) / "bench.duckdb", Path(tmp) / "audit")
        wh.ensure_schema()
        wh.replace_table(
            "price_history",
            bars.with_columns(pl.col("close").alias("adj_close"), pl.lit("synthetic").alias("provider"), pl.lit(True).alias("is_synthetic")),
        )
        wh.replace_table("corporate_actions", actions.with_columns(pl.lit("synthetic").alias("provider")))
        wh.ensure_columns("features", sql_columns())
        end = bars["date"].max()
        symbols = bars["symbol"].unique().sort().to_list()
        t0 = time.perf_counter()
        read = wh.read_window("price_history", bars["date"].min(), end, symbols=symbols, columns=["date", "symbol", "open", "high", "low", "close", "volume"])
        acts = wh.read("SELECT date, symbol, action, value, price_factor FROM corporate_actions WHERE date <= ?", [end])
        t1 = time.perf_counter()
        feats = compute_features(read, acts, "SPY", None, FeatureSettings())
        t2 = time.perf_counter()
        frame = feats.filter(pl.col("date") == end).with_columns(pl.lit(feature_version(FeatureSettings())).alias("feature_version"))
        wh.replace_window("features", frame, end, end)
        t3 = time.perf_counter()
    return {"read": t1 - t0, "compute": t2 - t1, "write_one_session": t3 - t2, "total": t3 - t0}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chunked_run(n_symbols: int, n_sessions: int, chunk: int, window: int) -> None:
    from trading_assets.domain.features.compute import window_chunks

    bars, actions = market(n_symbols, n_sessions)
    days = bars["date"].unique().sort()
    start, end = (days[-window] if window else days[0]), days[-1]
    print(f"market {bars.height:,} bars: peak RSS so far {peak_rss_mb():.0f} MB")
    t, c = time.perf_counter(), time.process_time()
    chunks = window_chunks(bars, actions, "SPY", None, FeatureSettings(), start, end, chunk_symbols=chunk)
    del bars
    rows = sum(frame.height for frame in chunks)
    print(
        f"window_chunks {n_symbols} symbols (+SPY) x {n_sessions} sessions, window {start}..{end} ({rows:,} rows), "
        f"{chunk} symbols per chunk: wall {time.perf_counter() - t:.2f} s, CPU {time.process_time() - c:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=1260)
    ap.add_argument("--big", type=int, default=2000, help="symbols of the large run (0 = skip)")
    ap.add_argument("--no-warehouse", action="store_true")
    ap.add_argument("--chunk", type=int, default=0, help="symbols per chunk: run window_chunks instead (see above)")
    ap.add_argument("--symbols", type=int, default=2000, help="symbols of the --chunk run")
    ap.add_argument("--window", type=int, default=1, help="sessions of the --chunk run's window (0 = all)")
    args = ap.parse_args()
    print(f"polars {pl.__version__}, {os.cpu_count()} cores, {len(FEATURE_NAMES)} features")
    if args.chunk:
        chunked_run(args.symbols, args.sessions, args.chunk, args.window)
        print(f"peak RSS {peak_rss_mb():.0f} MB")
        return
    for n_symbols in [250] + ([args.big] if args.big else []):
        bars, actions = market(n_symbols, args.sessions)
        times, cpu = time_compute(bars, actions, args.repeat)
        print(
            f"compute_features {n_symbols} symbols (+SPY) x {args.sessions} sessions = {bars.height:,} rows: "
            f"wall min {min(times):.2f} s, median {statistics.median(times):.2f} s over {len(times)} runs; "
            f"CPU min {min(cpu):.2f} s ({bars.height * len(FEATURE_NAMES) / min(times) / 1e6:.1f} M values/s); "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        if n_symbols == 250 and not args.no_warehouse:
            cost = daily_run_cost(bars, actions)
            print(
                "daily run (DuckDB read of the whole history -> compute -> replace one session): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in cost.items())
            )
    print(f"peak RSS {peak_rss_mb():.0f} MB (the largest compute_features run above holds the whole history's features)")


if __name__ == "__main__":
    main()
