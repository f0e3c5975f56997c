"""The three portfolio methods on one warehouse: the book re-walked with each, timed, and compared.

    /work/venv/bin/python benchmarks/portfolio_methods.py --db DIR/trading.duckdb [--methods kelly_mv,kelly_diagonal,topk_dropout]
        [--daily-repeats 5] [--out FILE.json] [--daily-only]

DIR is a warehouse a whole `trading-cycle` range run wrote (e.g. the real S&P folder, 2013-02-08..2018-02-07:
see the README). For each method the book's body (defs/book_walk.write_book, no Dagster) replaces the
window's book tables (the decisions, features and prices are the run's, so the methods see the same
inputs); printed per method: the book step's wall and CPU time, then the median wall time of a daily
book (the window's last session alone, `--daily-repeats` times), and the book's figures over the window:
average invested fraction (gross exposure / NAV), daily turnover (traded value / NAV), costs (commission +
slippage incl. impact, % of the initial capital), total return, CAGR, Sharpe (daily mean / std * sqrt(252)),
max drawdown; the same for SPY (adjusted close, the benchmark file) and the equal-weight universe
(daily rebalanced, close to close) over the same sessions. The last method run stays in the warehouse.
Prints figures; asserts nothing about time. Run it niced, alone (2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import date

import numpy as np
import polars as pl


def figures(daily: np.ndarray) -> dict:
    daily = daily[np.isfinite(daily)]
    nav = np.cumprod(1 + daily)
    years = len(daily) / 252
    peak = np.maximum.accumulate(nav)
    sd = daily.std(ddof=1) if len(daily) > 1 else float("nan")
    return {"total_return": float(nav[-1] - 1), "cagr": float(nav[-1] ** (1 / years) - 1),
            "sharpe": float(daily.mean() / sd * math.sqrt(252)) if sd > 0 else float("nan"),
            "max_drawdown": float((1 - nav / peak).max())}


def book_figures(wh, start: date, end: date, capital: float) -> dict:
    p = wh.read("SELECT date, nav, gross_exposure, daily_return FROM portfolio WHERE date BETWEEN ? AND ? ORDER BY date",
                [start, end])
    f = wh.read("SELECT sum(quantity * price) AS traded, sum(commission) AS comm, sum(slippage_cost) AS slip, "
                "count(*) AS n FROM fills WHERE status = 'FILLED' AND date BETWEEN ? AND ?", [start, end])
    daily = p["daily_return"].to_numpy()[1:]
    out = figures(daily)
    nav_mean = float(p["nav"].mean())
    out |= {"invested": float((p["gross_exposure"] / p["nav"]).mean()),
            "turnover_daily": float((f["traded"][0] or 0.0) / nav_mean / max(p.height, 1)),
            "costs_pct_capital": float(((f["comm"][0] or 0.0) + (f["slip"][0] or 0.0)) / capital),
            "fills": int(f["n"][0])}
    return out


def reference_figures(wh, start: date, end: date, benchmark: str) -> dict:
    px = wh.read("SELECT date, symbol, close, adj_close FROM price_history WHERE date BETWEEN ? AND ? ORDER BY date, symbol",
                 [start, end])
    spy = px.filter(pl.col("symbol") == benchmark).sort("date")
    spy_ret = (spy["adj_close"].fill_null(spy["close"]).pct_change()).to_numpy()[1:]
    ew = (px.filter(pl.col("symbol") != benchmark).sort("symbol", "date")
          .with_columns((pl.col("close") / pl.col("close").shift(1).over("symbol") - 1).alias("r"))
          .filter(pl.col("r").is_finite() & (pl.col("r").abs() < 0.5))  # a bad bar is not a return
          .group_by("date").agg(pl.col("r").mean()).sort("date"))
    return {"SPY": figures(spy_ret), "equal_weight": figures(ew["r"].to_numpy()[1:])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--methods", default="kelly_mv,kelly_diagonal,topk_dropout")
    ap.add_argument("--daily-repeats", type=int, default=5)
    ap.add_argument("--out")
    ap.add_argument("--daily-only", action="store_true", help="time the daily book only (the window's book as it is)")
    a = ap.parse_args()
    from pathlib import Path

    from trading_assets.defs.book_walk import write_book
    from trading_assets.domain import calendar
    from trading_assets.domain import execution as ex
    from trading_assets.settings import load_settings
    from trading_assets.store import warehouse as W

    db = Path(a.db)
    wh = W.Warehouse(db, db.parent / "audit")
    wh.ensure_schema()  # a warehouse of an older build gets the tables added since (empty)
    span = wh.read("SELECT min(date) AS a, max(date) AS b FROM decisions")
    start, end = span["a"][0], span["b"][0]
    sessions = calendar.sessions(start, end)
    results = {}
    for method in a.methods.split(","):
        settings = load_settings({"TRADING_PORTFOLIO_METHOD": method})
        share = getattr(W, "share_database", None)
        if share:
            share(wh.db_path)
        try:
            wall = cpu = float("nan")
            if not a.daily_only:
                t0, c0 = time.perf_counter(), time.process_time()
                write_book(wh, settings, ex.get_broker(settings), sessions, f"bench-{method}")
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            daily, daily_cpu = [], []
            for _ in range(a.daily_repeats):
                t, c = time.perf_counter(), time.process_time()
                write_book(wh, settings, ex.get_broker(settings), sessions[-1:], f"bench-{method}-daily")
                daily.append(time.perf_counter() - t)
                daily_cpu.append(time.process_time() - c)
        finally:
            if share:
                W.unshare_database(wh.db_path)
        res = {"book_wall_s": wall, "book_cpu_s": cpu, "daily_book_median_s": float(np.median(daily)),
               "daily_book_cpu_median_s": float(np.median(daily_cpu)),
               **book_figures(wh, start, end, settings.execution.initial_capital)}
        if method == "kelly_mv":
            st = wh.read("SELECT optimizer_status AS s, count(*) AS n FROM portfolio WHERE date BETWEEN ? AND ? GROUP BY 1",
                         [start, end])
            res["optimizer_statuses"] = dict(st.iter_rows())
        results[method] = res
        print(f"{method}: book {wall:.1f} s wall, {cpu:.1f} s CPU ({len(sessions)} sessions); daily book median "
              f"{res['daily_book_median_s']:.2f} s wall, {res['daily_book_cpu_median_s']:.2f} s CPU", flush=True)
    results |= reference_figures(wh, start, end, load_settings({}).benchmark)
    cols = ("invested", "turnover_daily", "costs_pct_capital", "total_return", "cagr", "sharpe", "max_drawdown")
    print(f"\n{start}..{end}, {len(sessions)} sessions")
    print("| | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.4f}" if c in r else "" for c in cols) + " |")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
