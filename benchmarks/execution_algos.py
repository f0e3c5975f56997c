"""Execution algorithms compared on the SAME decisions: market_on_open vs twap vs vwap (issue #15).

    python benchmarks/execution_algos.py --warehouse /tmp/exec/moo/data/trading.duckdb [--workdir /tmp/exec/algos]
        [--algos market_on_open,twap,vwap] [--leftover cancel] [--participation-cap 0.10]

--warehouse is the DuckDB file of a finished whole-graph run (e.g. the real S&P folder, README's command).
For each algorithm the file is copied to <workdir>/<algo>.duckdb and only the book (risk gate, orders,
fills, executions, positions, NAV) is walked again over every session of the run's portfolio table
(defs.book_walk.write_book, no Dagster), with execution.algo (and the leftover policy and cap) changed
and everything else as `load_settings()` reads it (TRADING_HISTORY_START must be the run's). So the
decisions are identical and only the execution differs.
Prints per algorithm:
- orders, parents that filled, share fill ratio = filled / ordered shares;
- implementation shortfall, notional-weighted over the filled parents, e = +1 buy / -1 sell:
    vs arrival (the open)  sum e (avg - open) q / sum open q * 1e4   (bps; includes spread + impact)
    vs VWAP proxy          sum e (avg - TP) q / sum TP q * 1e4,   TP = (H + L + C) / 3
  and the median of the per-order figures;
- costs: spread + impact (fills.slippage_cost), commission, both in dollars and bps of traded notional;
- leftover: shares not done within the participation cap, and their notional at the open;
- the book: final NAV, total return, CAGR, annualized volatility, Sharpe (daily mean / std * sqrt 252,
  no risk-free rate), max drawdown, and each algorithm's return minus market_on_open's.
Then the same ORDERS (market_on_open's, so no path dependence) executed by each algorithm on their
fill sessions through PaperBroker.execute: the execution effect alone (shortfall, costs, the dollar
difference against market_on_open: sum e (avg_algo - avg_moo) q over the orders both filled).
--same-orders-only skips the book walks and prints that table from the warehouse's orders.
Seeded and deterministic: the same warehouse and settings print the same figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def walk(db: Path, algo: str, args) -> dict:
    from trading_assets.brokers import get_broker
    from trading_assets.defs.book_walk import write_book
    from trading_assets.settings import load_settings
    from trading_assets.store.warehouse import Warehouse

    s = load_settings()
    s = s.replace(execution=dataclasses.replace(s.execution, algo=algo, leftover=args.leftover,
                                                participation_cap=args.participation_cap))
    wh = Warehouse(db, db.parent / f"{db.stem}-audit")
    wh.ensure_schema()
    sessions = wh.read("SELECT DISTINCT date FROM portfolio ORDER BY date")["date"].to_list()
    t0 = time.perf_counter()
    write_book(wh, s, get_broker(s), sessions, f"bench-{algo}")
    seconds = time.perf_counter() - t0
    return {"algo": algo, "seconds": seconds, **figures(wh)}


def figures(wh) -> dict:
    f = wh.read("SELECT * FROM fills")
    p = wh.read("SELECT date, nav, daily_return, drawdown FROM portfolio ORDER BY date")
    n_exec = int(wh.read("SELECT count(*) AS n FROM executions")["n"][0])
    filled = f.filter(pl.col("status") == "FILLED")
    e = pl.when(pl.col("side") == "BUY").then(1.0).otherwise(-1.0)
    q, avg = pl.col("quantity"), pl.col("price")
    g = filled.select(
        (e * (avg - pl.col("arrival_price")) * q).sum().alias("is_arr_num"),
        (pl.col("arrival_price") * q).sum().alias("is_arr_den"),
        (e * (avg - pl.col("vwap_proxy")) * q).filter(pl.col("vwap_proxy").is_not_null()).sum().alias("is_vwap_num"),
        (pl.col("vwap_proxy") * q).filter(pl.col("vwap_proxy").is_not_null()).sum().alias("is_vwap_den"),
        pl.col("shortfall_arrival_bps").median().alias("is_arr_med"),
        pl.col("shortfall_vwap_bps").median().alias("is_vwap_med"),
        (avg * q).sum().alias("traded"),
        pl.col("slippage_cost").sum().alias("cost"),
        pl.col("commission").sum().alias("commission"),
    ).row(0, named=True)
    left = f.filter(pl.col("leftover_quantity") > 0)
    nav = p["nav"].to_list()
    r = p["daily_return"].drop_nulls()
    years = len(nav) / 252
    sd = r.std() or math.nan
    return {
        "orders": f.height, "filled_parents": filled.height,
        "fill_ratio": float(f["quantity"].sum() / f["ordered_quantity"].sum()) if f.height else math.nan,
        "is_arrival_bps": g["is_arr_num"] / g["is_arr_den"] * 1e4, "is_arrival_median_bps": g["is_arr_med"],
        "is_vwap_bps": g["is_vwap_num"] / g["is_vwap_den"] * 1e4 if g["is_vwap_den"] else math.nan,
        "is_vwap_median_bps": g["is_vwap_med"],
        "traded": g["traded"], "cost": g["cost"], "commission": g["commission"],
        "cost_bps": g["cost"] / g["traded"] * 1e4, "commission_bps": g["commission"] / g["traded"] * 1e4,
        "leftover_parents": left.height, "leftover_shares": float(left["leftover_quantity"].sum() or 0.0),
        "leftover_notional": float((left["leftover_quantity"] * left["arrival_price"]).sum() or 0.0),
        "executions": n_exec, "final_nav": nav[-1], "total_return": nav[-1] / 1e6 - 1 if nav else math.nan,
        "cagr": (nav[-1] / 1e6) ** (1 / years) - 1, "vol": sd * math.sqrt(252),
        "sharpe": (r.mean() / sd) * math.sqrt(252), "max_drawdown": float(p["drawdown"].max()),
        "first": str(p["date"][0]), "last": str(p["date"][-1]), "sessions": p.height,
    }


def same_orders(db: Path, args) -> None:
    """The market_on_open orders of `db`, executed by each algorithm on their fill sessions (no book)."""
    from trading_assets.domain import calendar
    from trading_assets.domain import execution as ex
    from trading_assets.domain.execution_algos import MARKET_ON_OPEN
    from trading_assets.settings import load_settings
    from trading_assets.store.warehouse import Warehouse

    wh = Warehouse(db, db.parent / f"{db.stem}-audit")
    orders = wh.read("SELECT order_id, date, symbol, side, quantity, reference_price, mode, cycle_id, expected_volume, "
                     "sigma_daily FROM orders ORDER BY date, symbol")
    px = wh.read("SELECT date, symbol, open, high, low, close FROM price_history")
    splits = set(wh.read("SELECT date, symbol FROM corporate_actions WHERE action = 'split'").rows())
    bars = {}
    for d, sym, o, h, lo, c in px.iter_rows():
        bars.setdefault(d, {})[sym] = (o, h, lo, c)
    by_fill: dict = {}
    skipped = 0
    for row in orders.iter_rows():
        fd = calendar.next_session(row[1])
        if fd not in bars or (fd, row[2]) in splits:  # past the data, or a split at the fill open
            skipped += 1
            continue
        by_fill.setdefault(fd, []).append(row)
    s0 = load_settings()
    out = {}
    for algo in args.algos.split(","):
        s = s0.replace(execution=dataclasses.replace(s0.execution, algo=algo, leftover=args.leftover,
                                                     participation_cap=args.participation_cap))
        broker = ex.PaperBroker(s.execution, s.costs, seed=s.seed)
        rows = []
        for fd, rs in by_fill.items():
            day = bars[fd]
            fills, _ = broker.execute([r + (algo,) for r in rs], fd, {k: v[0] for k, v in day.items() if v[0] is not None},
                                      {}, {r[2]: day[r[2]] for r in rs if r[2] in day})
            rows.extend(fills)
        out[algo] = pl.DataFrame(rows, schema=ex.FILL_SCHEMA, orient="row")
    base = out.get(MARKET_ON_OPEN)
    print(f"\nThe same {sum(len(v) for v in by_fill.values()):,} orders (market_on_open's; {skipped} skipped: a split at "
          "the fill open or no next session), executed by each algorithm\n")
    print("| | " + " | ".join(out) + " |")
    print("|---|" + "---|" * len(out))
    stats = {}
    for algo, f in out.items():
        ok = f.filter(pl.col("status") == "FILLED")
        e = pl.when(pl.col("side") == "BUY").then(1.0).otherwise(-1.0)
        g = ok.select((e * (pl.col("price") - pl.col("arrival_price")) * pl.col("quantity")).sum().alias("a"),
                      (pl.col("arrival_price") * pl.col("quantity")).sum().alias("b"),
                      (e * (pl.col("price") - pl.col("vwap_proxy")) * pl.col("quantity")).sum().alias("c"),
                      (pl.col("vwap_proxy") * pl.col("quantity")).sum().alias("d"),
                      pl.col("slippage_cost").sum().alias("cost"), pl.col("commission").sum().alias("comm"),
                      (pl.col("quantity").sum() / pl.col("ordered_quantity").sum()).alias("ratio")).row(0, named=True)
        extra = math.nan
        if base is not None:
            j = ok.join(base.filter(pl.col("status") == "FILLED").select("order_id", pl.col("price").alias("p0")),
                        on="order_id")
            extra = float(j.select((e * (pl.col("price") - pl.col("p0")) * pl.col("quantity")).sum()).item())
        stats[algo] = {**g, "extra": extra, "n": ok.height}
    for label, fmt in [("filled parents", "{n:,}"), ("share fill ratio", "{ratio:.5f}"),
                       ("shortfall vs arrival (bps, notional-weighted)", "IS_A"),
                       ("shortfall vs VWAP proxy (bps, notional-weighted)", "IS_V"),
                       ("shortfall vs arrival ($)", "{a:,.0f}"), ("spread + impact ($)", "{cost:,.0f}"),
                       ("commission ($)", "{comm:,.0f}"), ("paid more than market_on_open on the same fills ($)", "{extra:+,.0f}")]:
        cells = []
        for st in stats.values():
            if fmt == "IS_A":
                cells.append(f"{st['a'] / st['b'] * 1e4:+.2f}")
            elif fmt == "IS_V":
                cells.append(f"{st['c'] / st['d'] * 1e4:+.2f}")
            else:
                cells.append(fmt.format(**st))
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warehouse", required=True, type=Path)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/execution_algos"))
    ap.add_argument("--algos", default="market_on_open,twap,vwap")
    ap.add_argument("--leftover", default="cancel", choices=("cancel", "carry"))
    ap.add_argument("--participation-cap", type=float, default=0.10)
    ap.add_argument("--same-orders-only", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.same_orders_only:
        same_orders(args.warehouse, args)
        return 0
    rows = []
    for algo in args.algos.split(","):
        db = args.workdir / f"{algo}.duckdb"
        shutil.copyfile(args.warehouse, db)
        rows.append(walk(db, algo, args))
        print(f"{algo}: book walked in {rows[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    base = next((r for r in rows if r["algo"] == "market_on_open"), rows[0])
    print(f"\nSame decisions, {base['sessions']} sessions {base['first']}..{base['last']}; leftover={args.leftover}, "
          f"participation cap {args.participation_cap:.0%}\n")
    head = ["", *[r["algo"] for r in rows]]
    lines = [
        ("orders (parents)", "{orders:,}"), ("parents with a fill", "{filled_parents:,}"),
        ("share fill ratio", "{fill_ratio:.4f}"), ("child executions", "{executions:,}"),
        ("shortfall vs arrival, notional-weighted (bps)", "{is_arrival_bps:+.2f}"),
        ("shortfall vs arrival, median order (bps)", "{is_arrival_median_bps:+.2f}"),
        ("shortfall vs VWAP proxy (H+L+C)/3, notional-weighted (bps)", "{is_vwap_bps:+.2f}"),
        ("shortfall vs VWAP proxy, median order (bps)", "{is_vwap_median_bps:+.2f}"),
        ("traded notional ($)", "{traded:,.0f}"), ("spread + impact cost ($)", "{cost:,.0f}"),
        ("spread + impact (bps of traded)", "{cost_bps:.2f}"), ("commission ($)", "{commission:,.0f}"),
        ("leftover parents / shares", "{leftover_parents:,} / {leftover_shares:,.0f}"),
        ("leftover notional at the open ($)", "{leftover_notional:,.0f}"),
        ("final NAV ($)", "{final_nav:,.0f}"), ("total return", "{total_return:+.2%}"), ("CAGR", "{cagr:+.2%}"),
        ("volatility (ann.)", "{vol:.2%}"), ("Sharpe (no rf)", "{sharpe:.3f}"), ("max drawdown", "{max_drawdown:.2%}"),
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, fmt in lines:
        print(f"| {label} | " + " | ".join(fmt.format(**r) for r in rows) + " |")
    print("| total return minus market_on_open | " + " | ".join(
        f"{(r['total_return'] - base['total_return']) * 1e4:+.0f} bps" for r in rows) + " |")
    if "market_on_open" in args.algos.split(","):
        same_orders(args.workdir / "market_on_open.duckdb", args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
