"""Decision quality on the real S&P 500 folder: runs the WHOLE graph, prints what the decisions were worth.

    python benchmarks/decision_quality.py                         # run (minutes) then print
    python benchmarks/decision_quality.py --reuse /tmp/dq         # print from that run's warehouse, no run
    python benchmarks/decision_quality.py --workdir /tmp/dq-twap --settings '{"execution": {"algo": "twap"}}'

The run is `trading-cycle --source local --data-dir ../shared/data/prices --data-dir
../shared/data/benchmark/spy_1993_2018.parquet --universe ../shared/data/sp500_sectors_2018.parquet
--start 2013-02-08 --end 2018-02-07` in a fresh process with TRADING_DATA_DIR=<workdir>/data,
DAGSTER_HOME=<workdir>/dagster_home and TRADING_HISTORY_START=<start>; --settings passes settings
overrides (JSON, nested by section) to it, so a book method or an execution algorithm is compared on
the same data by changing one field and the workdir. It prints:
1. every source's signal quality over the whole run from the signal_quality table (sources that
   forecast appear by themselves: agents, models, the Meta-Brain, the approved weights): sessions,
   mean IC, mean rank IC, ICIR = mean / std of the daily rank IC, t = Newey-West t of the mean daily
   rank IC with h - 1 lags (= ICIR x sqrt(n) for h = 1: overlapping labels), hit rate,
   top-minus-bottom quintile spread, coverage, per horizon;
2. the book against SPY and the equal-weight universe from the performance tables: return, CAGR,
   volatility, Sharpe, max drawdown, Calmar, beta, information ratio, turnover a year, costs; plus the
   equal-weight buy-and-hold of the names present on the first session;
3. where the run's time went: the Dagster run's duration and each step's (the evaluation steps'
   share is issue #11's speed target: <= 10% of the backfill).
Benchmark returns: SPY's adj_close close to close (the SPY file's dividend-adjusted close: a total
return); the S&P folder is split-adjusted only, so the book and the equal weight earn price returns
(no dividends): the comparison with SPY favours SPY by its dividend yield (~2% a year).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_DATA = [SHARED / "prices", SHARED / "benchmark" / "spy_1993_2018.parquet"]
DEFAULT_UNIVERSE = SHARED / "sp500_sectors_2018.parquet"
EVALUATION_STEPS = ("performance", "signal_quality", "labels", "evaluation_plots")


def run_graph(workdir: Path, args) -> dict:
    """The whole graph in one `trading-cycle` run; returns the run's JSON plus wall seconds."""
    data, home = workdir / "data", workdir / "dagster_home"
    data.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
    env.update({"TRADING_DATA_DIR": str(data), "DAGSTER_HOME": str(home), "TRADING_HISTORY_START": args.start,
                "PYTHONPATH": str(ROOT)})
    cmd = [sys.executable, "-m", "trading_assets.cli", "--source", "local", "--universe", str(Path(args.universe).resolve()),
           "--start", args.start, "--end", args.end]
    for p in args.data_dir or DEFAULT_DATA:
        cmd += ["--data-dir", str(Path(p).resolve())]
    if args.settings:
        cmd += ["--settings", args.settings]
    print("running:", " ".join(cmd), file=sys.stderr)
    t0 = time.perf_counter()
    # in the run's own data folder: `python -m` puts the working directory first on sys.path, so a stray module
    # in the caller's directory (a scratch attr.py ...) would shadow a package of the run
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=data)
    wall = time.perf_counter() - t0
    (workdir / "run.log").write_text(proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"the run failed (exit {proc.returncode}); log: {workdir / 'run.log'}\n{proc.stdout[-3000:]}")
    out = json.loads(proc.stdout)
    out["wall_seconds"] = wall
    (workdir / "run.json").write_text(json.dumps(out, indent=2))
    return out


def step_times(workdir: Path, run_id: str) -> list[tuple[str, float]]:
    os.environ["DAGSTER_HOME"] = str(workdir / "dagster_home")
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        stats = instance.get_run_step_stats(run_id)
        run = instance.get_run_stats(run_id)
    steps = [(s.step_key, (s.end_time or 0) - (s.start_time or 0)) for s in stats]
    return [("(run)", (run.end_time or 0) - (run.start_time or 0))] + sorted(steps, key=lambda x: -x[1])


def print_tables(workdir: Path, run: dict | None) -> None:
    import polars as pl

    from trading_assets.domain.evaluation import performance as perf
    from trading_assets.reporting import tables as tb
    from trading_assets.store.warehouse import Warehouse

    wh = Warehouse(workdir / "data" / "trading.duckdb", workdir / "data" / "audit")
    have = set(wh.read("SELECT table_name FROM information_schema.tables")["table_name"].to_list())
    daily = wh.read("SELECT * FROM performance ORDER BY date")
    start, end = daily["date"][0], daily["date"][-1]
    settings_hash = wh.read("SELECT settings_hash FROM cycle_meta ORDER BY date DESC LIMIT 1")
    n_sym = wh.read("SELECT count(*) AS n FROM universe WHERE NOT is_benchmark")["n"][0]
    print(f"# Decision quality, {start} .. {end} ({len(daily)} sessions, {n_sym} symbols, "
          f"settings {settings_hash['settings_hash'][0] if settings_hash.height else '?'})")
    print()
    print("## Signal quality per source (rank IC against the tradable forward return open(s+1) -> open(s+1+h))")
    if "signal_quality" in have:
        s = tb.signal_summary(wh.read("SELECT * FROM signal_quality ORDER BY date"))
        for hz in sorted(set(s["horizon"].to_list())):
            print(f"\nhorizon {hz}:")
            print(tb.text_table(*tb.rows_of(s.filter(pl.col("horizon") == hz), tb.SIGNAL_COLUMNS, ("source", "source"))))
    else:
        print("(no signal_quality table in this warehouse: the asset is not in this build)")
    print()
    print("## The book against SPY and the equal-weight universe (whole run, risk-free 0, 252 sessions a year)")
    m = tb.period_metrics(daily).with_columns(
        pl.col("series").map_elements(lambda x: tb.series_name(x, "SPY (adj close, total return)"), return_dtype=pl.String))
    cols = [c for c in tb.PERF_COLUMNS if c[0] in ("cum_return", "cagr", "volatility", "sharpe", "max_drawdown", "calmar",
                                                  "beta", "information_ratio", "turnover_annual", "cost_fraction", "costs")]
    universe = wh.read("SELECT symbol FROM universe WHERE is_benchmark")["symbol"].to_list()
    bars = wh.read("SELECT date, symbol, adj_close FROM price_history WHERE date BETWEEN ? AND ?",
                   [perf_start(daily), end])
    bh = tb.buy_and_hold(bars, set(universe))
    r = bh["return"].to_numpy()
    st = perf.return_stats(r, None)
    mdd = perf.drawdown_since_inception(r)[0]
    bh_row = pl.DataFrame({"series": ["equal weight buy-and-hold"], "cum_return": [st["cum_return"][-1]],
                           "cagr": [st["cagr"][-1]], "volatility": [st["volatility"][-1]], "sharpe": [st["sharpe"][-1]],
                           "max_drawdown": [mdd[-1]], "calmar": [st["cagr"][-1] / mdd[-1]]})
    m = pl.concat([m, bh_row], how="diagonal_relaxed")
    print(tb.text_table(*tb.rows_of(m, cols, ("series", "series"))))
    nav0 = float(daily["nav_prev"][0])
    print(f"\ncosts paid: {tb.fmt(float(daily['commission'].sum()), 'money')} commission + "
          f"{tb.fmt(float(daily['slippage'].sum()), 'money')} slippage = {tb.fmt(float(daily['costs'].sum()), 'money')} "
          f"({100 * float(daily['costs'].sum()) / nav0:.1f}% of the initial capital {tb.fmt(nav0, 'money')}); "
          f"traded {tb.fmt(float(daily['traded_notional'].sum()), 'money')} = "
          f"{float(daily['turnover'].sum()):.1f} x NAV; final NAV {tb.fmt(float(daily['nav'][-1]), 'money')}")
    if run is not None:
        steps = step_times(workdir, run["run_id"])
        total = steps[0][1]
        ev = sum(t for k, t in steps[1:] if k in EVALUATION_STEPS)
        print()
        print(f"## Time: wall {run['wall_seconds']:.1f} s, Dagster run {total:.1f} s; evaluation steps "
              f"({', '.join(k for k, _ in steps[1:] if k in EVALUATION_STEPS)}) {ev:.1f} s = {100 * ev / total:.1f}% of the run")
        print(", ".join(f"{k} {t:.1f} s" for k, t in steps[1:]))


def perf_start(daily):
    from trading_assets.domain import calendar

    return calendar.previous_session(daily["date"][0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/decision_quality"), help="where the run's data and Dagster home go")
    p.add_argument("--reuse", type=Path, metavar="WORKDIR", help="print from this workdir's warehouse, no run")
    p.add_argument("--data-dir", action="append", type=Path, help="default: the S&P folder and the SPY file")
    p.add_argument("--universe", type=Path, default=DEFAULT_UNIVERSE)
    p.add_argument("--start", default="2013-02-08")
    p.add_argument("--end", default="2018-02-07")
    p.add_argument("--settings", metavar="JSON", help="settings overrides for the run (trading-cycle --settings)")
    args = p.parse_args()
    if args.reuse:
        run_file = args.reuse / "run.json"
        print_tables(args.reuse, json.loads(run_file.read_text()) if run_file.exists() else None)
        return
    workdir = args.workdir.resolve()  # Dagster wants an absolute DAGSTER_HOME
    run = run_graph(workdir, args)
    print_tables(workdir, run)


if __name__ == "__main__":
    main()
