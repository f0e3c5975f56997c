"""[evaluation] performance: the book against its benchmarks, per session (tables performance,
performance_metrics, performance_attribution; formulas in domain/evaluation/performance.py).

Reads (nothing after the window end): the portfolio from the book's first session (the
since-inception metrics of session t use every session up to t), the performance table's own rows
before the window when it has them all (else those daily figures are recomputed from the book's first
session), fills (FILLED: costs, notional) and price_history adj_close (benchmark, equal weight) of the
sessions computed; positions, dividends
(corporate_actions) and final decisions (risk_decisions) of the window and the session before it
for the attribution; universe sectors. Writes the window's rows of the three tables (one
transaction each). Row t is a function of rows <= t only, so a window run alone or inside a longer
range writes the same rows (test_performance_point_in_time).

Metadata: the last session's headline figures; on the last session's materialization of a range run,
two PNG plots as markdown images (NAV vs the benchmarks on a log scale with the drawdown underneath;
monthly returns heatmap), since the book's first session. A single-session run does not draw: the
evaluation_plots asset draws the same pictures after it (defs/evaluation_plots.py says why).
"""

from __future__ import annotations

import dataclasses
from datetime import date

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain.evaluation import performance as perf
from trading_assets.settings import Settings
from trading_assets.store.warehouse import Warehouse

CHECK_ATTRIBUTION_RECONCILES = "attribution_reconciles_to_nav"
TABLES = ("performance", "performance_metrics", "performance_attribution")
RECONCILE_TOLERANCE = 1e-6  # |sum of attributed PnL - (NAV_t - NAV_{t-1})| / NAV_{t-1}: float rounding only


@dataclasses.dataclass
class PerformanceWrite:
    """What `write_performance` wrote over a window, and the since-inception frames metadata plots."""

    daily: pl.DataFrame  # from the book's first session to the window end
    metrics_last: pl.DataFrame  # metrics rows of the window's last session
    attribution_rows: int
    max_reconcile_error: float  # worst |attributed - NAV change| / NAV_{t-1} over the window
    reconcile_failures: list[dict]
    benchmark: str


def _read(wh: Warehouse, sql: str, params: list, schema: dict) -> pl.DataFrame:
    df = wh.read(sql, params)
    return pl.DataFrame(schema=schema) if df.height == 0 else df.cast({k: v for k, v in schema.items() if k in df.columns})


def compute_performance(wh: Warehouse, settings: Settings, sessions: list[date]) -> tuple[pl.DataFrame, pl.DataFrame,
                                                                                              pl.DataFrame, pl.DataFrame]:
    """(daily since inception, metrics of the window, attribution of the window, reconciliation of the window).

    The daily figures of the sessions before the window come from the performance table when it holds
    every one of them (what a daily cycle finds: its own earlier rows, computed by the same formulas),
    else they are computed from the book's first session; either way the rows are the same
    (test_point_in_time_and_run_boundaries runs a window in two parts)."""
    start, end = sessions[0], sessions[-1]
    port_schema = {"date": pl.Date, "nav": pl.Float64, "daily_return": pl.Float64,
                   "gross_exposure": pl.Float64, "net_exposure": pl.Float64}
    portfolio = _read(wh, "SELECT date, nav, daily_return, gross_exposure, net_exposure FROM portfolio "
                          "WHERE date <= ? ORDER BY date", [end], port_schema)
    have = set(portfolio["date"].to_list())
    missing = [d for d in sessions if d not in have]
    if missing:
        raise dg.Failure(f"performance: the book has no portfolio row at {len(missing)} session(s) of the window "
                         f"(first {missing[0]}): materialize the book (portfolio) for them first")
    inception = portfolio["date"][0]
    universe = wh.read("SELECT symbol, sector, is_benchmark FROM universe")
    bench_syms = set(universe.filter(pl.col("is_benchmark"))["symbol"].to_list()) | {settings.benchmark}
    core_schema = {c: perf.DAILY_SCHEMA[c] for c in perf.CORE_COLUMNS}
    prefix = _read(wh, f"SELECT {', '.join(perf.CORE_COLUMNS)} FROM performance WHERE date < ? ORDER BY date",
                   [start], core_schema)
    before = portfolio.filter(pl.col("date") < start)["date"]
    reuse = prefix.height == before.len() and prefix["date"].equals(before)
    first = start if reuse else inception  # the first session computed here
    bars = _read(wh, "SELECT date, symbol, adj_close FROM price_history WHERE date BETWEEN ? AND ?",
                 [calendar.previous_session(first), end], {"date": pl.Date, "symbol": pl.String, "adj_close": pl.Float64})
    bench = perf.benchmark_returns(bars, calendar.sessions(calendar.previous_session(first), end), settings.benchmark,
                                   bench_syms)
    del bars
    fill_schema = {"date": pl.Date, "symbol": pl.String, "side": pl.String, "quantity": pl.Float64,
                   "price": pl.Float64, "commission": pl.Float64, "slippage_cost": pl.Float64, "status": pl.String}
    fills = _read(wh, "SELECT date, symbol, side, quantity, price, commission, slippage_cost, status FROM fills "
                      "WHERE date BETWEEN ? AND ? AND status = 'FILLED'", [first, end], fill_schema)
    nav_before = float(prefix["nav"][-1]) if reuse and prefix.height else None
    core = perf.daily_core(portfolio.filter(pl.col("date") >= first), perf.fill_totals(fills), bench, nav_before)
    daily = perf.add_cumulative(pl.concat([prefix, core]) if reuse else core)
    metrics = perf.metrics_frame(daily, calendar.previous_session(inception), keep_from=start)

    prev = calendar.previous_session(start)
    positions = _read(wh, "SELECT date, symbol, quantity, market_value FROM positions WHERE date BETWEEN ? AND ?",
                      [prev, end], {"date": pl.Date, "symbol": pl.String, "quantity": pl.Float64,
                                    "market_value": pl.Float64})
    dividends = _read(wh, "SELECT date, symbol, value FROM corporate_actions WHERE action = 'dividend' "
                          "AND date BETWEEN ? AND ?", [start, end],
                      {"date": pl.Date, "symbol": pl.String, "value": pl.Float64})
    decisions = _read(wh, "SELECT date, symbol, decision FROM risk_decisions WHERE date BETWEEN ? AND ?",
                      [prev, calendar.previous_session(end)],
                      {"date": pl.Date, "symbol": pl.String, "decision": pl.String})
    cal = calendar.sessions(prev, end)
    in_window = daily.filter(pl.col("date").is_between(start, end))
    attribution, recon = perf.attribution(
        sessions, dict(zip(cal[1:], cal[:-1])), positions, fills.filter(pl.col("date") >= start),
        dividends, decisions, dict(zip(universe["symbol"].to_list(), universe["sector"].to_list())),
        dict(zip(in_window["date"].to_list(), in_window["nav_prev"].to_list())))
    recon = (in_window.select("date", "nav", "nav_prev").join(recon, on="date", how="left")
             .with_columns(pl.col("pnl").fill_null(0.0))
             .with_columns(((pl.col("pnl") - (pl.col("nav") - pl.col("nav_prev"))).abs() / pl.col("nav_prev"))
                           .alias("error")))
    return daily, metrics, attribution, recon


def write_performance(wh: Warehouse, settings: Settings, sessions: list[date], run_id: str) -> PerformanceWrite:
    """Compute and replace the window's rows of the three tables: the asset's body without Dagster."""
    start, end = sessions[0], sessions[-1]
    daily, metrics, attribution, recon = compute_performance(wh, settings, sessions)
    run = pl.lit(run_id, pl.String).alias("run_id")
    window_daily = (daily.filter(pl.col("date").is_between(start, end))
                    .with_columns(pl.lit(settings.benchmark, pl.String).alias("benchmark"), run))
    wh.replace_window("performance", window_daily, start, end)
    wh.replace_window("performance_metrics", metrics.with_columns(run), start, end)
    wh.replace_window("performance_attribution", attribution.with_columns(run), start, end)
    bad = recon.filter(pl.col("error") > RECONCILE_TOLERANCE)
    return PerformanceWrite(
        daily=daily, metrics_last=metrics.filter(pl.col("date") == end), attribution_rows=attribution.height,
        max_reconcile_error=float(recon["error"].max() or 0.0) if recon.height else 0.0,
        reconcile_failures=[{"date": str(d), "attributed": p, "nav_change": n - q}
                            for d, n, q, p, _ in bad.head(50).iter_rows()],
        benchmark=settings.benchmark)


def _fmt(v, pct: bool = True) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.2f}%" if pct else f"{v:.2f}"


def summary_markdown(metrics_last: pl.DataFrame, benchmark: str) -> str:
    """Markdown table: since-inception and rolling-252 figures of the book, gross, benchmark, equal weight."""
    names = {perf.SERIES_BOOK: "book (net)", perf.SERIES_GROSS: "book (gross)", perf.SERIES_BENCH: benchmark,
             perf.SERIES_EW: "equal weight"}
    lines = ["| series | horizon | cum. return | CAGR | vol | Sharpe | Sortino | max DD | Calmar | beta | alpha | IR |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in metrics_last.sort("series", "horizon").iter_rows(named=True):
        if r["horizon"] == "rolling_63":
            continue
        lines.append(f"| {names.get(r['series'], r['series'])} | {r['horizon']} | {_fmt(r['cum_return'])} | "
                     f"{_fmt(r['cagr'])} | {_fmt(r['volatility'])} | {_fmt(r['sharpe'], False)} | "
                     f"{_fmt(r['sortino'], False)} | {_fmt(r['max_drawdown'])} | {_fmt(r['calmar'], False)} | "
                     f"{_fmt(r['beta'], False)} | {_fmt(r['alpha'])} | {_fmt(r['information_ratio'], False)} |")
    return "\n".join(lines)


def plots_markdown(daily: pl.DataFrame, benchmark: str) -> str:
    """The two plots as markdown images (since inception)."""
    from trading_assets.reporting import plots

    nav = plots.nav_vs_benchmarks(daily, benchmark)
    heat = plots.monthly_heatmap(perf.monthly_returns(daily))
    return (plots.markdown_image(nav, "NAV vs benchmarks (log) and drawdown") + "\n\n"
            + plots.markdown_image(heat, "Monthly net returns"))


@dg.asset(
    group_name="evaluation",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[dg.AssetDep("portfolio", partition_mapping=SAME_SESSION),
          dg.AssetDep("price_history", partition_mapping=SAME_SESSION),
          dg.AssetDep("universe")],
    check_specs=[dg.AssetCheckSpec(CHECK_ATTRIBUTION_RECONCILES, asset="performance",
                                   description="sector and decision PnL attribution sum to each session's NAV change")],
    description=(
        "The book against SPY and the equal-weight universe per session: gross/net returns, costs, turnover, "
        "exposures, cumulative return, CAGR, volatility, Sharpe, Sortino, max drawdown and dates, Calmar, beta, "
        "alpha, tracking error, information ratio since inception and rolling 63/252; PnL by sector and decision. "
        "Tables: performance, performance_metrics, performance_attribution."
    ),
    kinds={"duckdb"},
)
def performance(context, warehouse: WarehouseResource, pipeline: PipelineConfig):
    settings = pipeline.settings()
    start, end, sessions = window_of(context)
    w = write_performance(warehouse.get(), settings, sessions, context.run.run_id)
    last = w.daily.filter(pl.col("date") == end).row(0, named=True)
    book = w.metrics_last.filter((pl.col("series") == perf.SERIES_BOOK) & (pl.col("horizon") == "inception"))
    b = book.row(0, named=True) if book.height else {}
    # The plots (~150 KB of PNG) go on the last session's materialization of a RANGE run only: a range
    # run records one materialization per session, and each would carry its own copy in the event log;
    # a single-session run (the daily cycle) leaves the drawing (~0.5 s of matplotlib) to
    # evaluation_plots, run by the draw_evaluation_plots sensor after it.
    pictures = ({"plots": dg.MetadataValue.md(plots_markdown(w.daily, w.benchmark))} if len(sessions) > 1
                else {"pictures": "drawn after the run by evaluation_plots (a single-session run does not draw)"})
    context.add_asset_metadata(pictures, asset_key=dg.AssetKey("performance"), partition_key=end.isoformat())
    yield dg.MaterializeResult(
        asset_key="performance",
        metadata={
            "window": f"{start}..{end}", "sessions": len(sessions),
            "nav": last["nav"], "cum_return": last["cum_return"],
            "benchmark_cum_return": last["benchmark_cum_return"], "ew_cum_return": last["ew_cum_return"],
            "cagr": b.get("cagr"), "sharpe": b.get("sharpe"), "max_drawdown": b.get("max_drawdown"),
            "turnover_annualized": float(w.daily["turnover"].mean() or 0.0) * perf.ANNUALIZATION,
            "costs_since_inception": float(w.daily["costs"].sum() or 0.0),
            "attribution_rows": w.attribution_rows,
            "summary": dg.MetadataValue.md(summary_markdown(w.metrics_last, w.benchmark)),
        },
    )
    yield dg.AssetCheckResult(
        asset_key="performance", check_name=CHECK_ATTRIBUTION_RECONCILES, passed=not w.reconcile_failures,
        metadata={"max_relative_error": w.max_reconcile_error, "failures": dg.MetadataValue.json(w.reconcile_failures)},
    )
