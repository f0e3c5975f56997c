"""Period summaries of the research record (pure polars): what the tear sheet and
benchmarks/decision_quality.py print.

    period_daily(daily)      the performance rows of a period with every cumulative column rebased to
                             its first session (growth of 1 from the period's start, drawdown within it)
    period_metrics(daily)    one row per series (book, book_gross, benchmark, equal_weight): the
                             domain's since-inception metrics over the period, plus the book's mean
                             annualized turnover (mean daily turnover x 252) and costs (dollars, and
                             sum of cost_fraction = fraction of NAV paid)
    signal_summary(sq)       one row per (source, horizon) of signal_quality rows: n sessions,
                             mean IC, mean rank IC, its sample std, ICIR = mean / std (per session,
                             not annualized), t = the Newey-West t-statistic of the mean with
                             h - 1 lags over the calendar sessions (= mean / std * sqrt(n) for h = 1;
                             domain/evaluation/ic.py: overlapping h-session labels would otherwise
                             overstate t by about sqrt(h)), mean hit rate, mean top-minus-bottom
                             quintile spread, mean coverage
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from trading_assets.domain.evaluation import performance as perf

_CUM = {"cum_return": "net_return", "cum_gross_return": "gross_return",
        "benchmark_cum_return": "benchmark_return", "ew_cum_return": "ew_return"}


def period_daily(daily: pl.DataFrame) -> pl.DataFrame:
    """The rows with cum_* and drawdown recomputed from the first row (levels = 1 before it)."""
    d = daily.sort("date")
    cols = []
    for cum, ret in _CUM.items():
        lv = np.cumprod(1.0 + np.nan_to_num(d[ret].to_numpy().astype(float), nan=0.0))
        cols.append(pl.Series(cum, lv - 1.0))
        if cum == "cum_return":
            lv0 = np.concatenate([[1.0], lv])
            cols.append(pl.Series("drawdown", (1.0 - lv0 / np.maximum.accumulate(lv0))[1:]))
    return d.with_columns(cols)


def period_metrics(daily: pl.DataFrame) -> pl.DataFrame:
    """Per series: n_sessions, cum_return, cagr, volatility, sharpe, sortino, max_drawdown (+ dates),
    calmar, beta/alpha/tracking_error/information_ratio vs the benchmark and the equal weight, and
    for the book the annualized turnover and the costs."""
    d = daily.sort("date")
    if d.height == 0:
        return pl.DataFrame()
    from trading_assets.domain import calendar

    m = perf.metrics_frame(d.select(list(perf.DAILY_SCHEMA)), calendar.previous_session(d["date"][0]))
    last = m.filter((pl.col("date") == d["date"][-1]) & (pl.col("horizon") == "inception")).drop("date", "horizon")
    turnover = float(d["turnover"].mean() or 0.0) * perf.ANNUALIZATION
    return last.with_columns(
        pl.when(pl.col("series").is_in([perf.SERIES_BOOK, perf.SERIES_GROSS])).then(turnover).alias("turnover_annual"),
        pl.when(pl.col("series") == perf.SERIES_BOOK).then(float(d["costs"].sum() or 0.0)).alias("costs"),
        pl.when(pl.col("series") == perf.SERIES_BOOK).then(float(d["cost_fraction"].sum() or 0.0)).alias("cost_fraction"),
    ).sort(pl.col("series").replace_strict({perf.SERIES_BOOK: 0, perf.SERIES_GROSS: 1, perf.SERIES_BENCH: 2,
                                            perf.SERIES_EW: 3}, default=9))


def signal_summary(sq: pl.DataFrame) -> pl.DataFrame:
    """Per (source, horizon) over the given signal_quality rows (module docstring)."""
    if sq.height == 0:
        return pl.DataFrame(schema={"source": pl.String, "horizon": pl.Int64, "n": pl.UInt32})
    opt = [c for c in ("ic", "hit_rate", "spread", "coverage") if c in sq.columns]
    g = (sq.filter(pl.col("rank_ic").is_not_null())
         .group_by("source", "horizon")
         .agg(pl.len().alias("n"), pl.col("rank_ic").mean().alias("rank_ic_mean"),
              pl.col("rank_ic").std(ddof=1).alias("rank_ic_std"),
              *(pl.col(c).mean().alias(f"{c}_mean") for c in opt)))
    return (g.with_columns((pl.col("rank_ic_mean") / pl.col("rank_ic_std")).alias("icir"))
            .join(_overlap_t(sq), on=["source", "horizon"], how="left")
            .sort("horizon", "source"))


def _overlap_t(sq: pl.DataFrame) -> pl.DataFrame:
    """(source, horizon, t): the Newey-West t of the mean daily rank IC, lags h - 1, on the calendar grid."""
    from trading_assets.domain import calendar
    from trading_assets.domain.evaluation.ic import newey_west_t, overlap_lags

    rows = sq.filter(pl.col("rank_ic").is_not_null()).select("source", "horizon", "date", "rank_ic").sort("source", "horizon", "date")
    out = []
    for (source, horizon), part in rows.group_by("source", "horizon", maintain_order=True):
        days = calendar.sessions(part["date"][0], part["date"][-1])
        pos = {d: i for i, d in enumerate(days)}
        grid = np.full(len(days), np.nan)
        grid[[pos[d] for d in part["date"].to_list()]] = part["rank_ic"].to_numpy()
        out.append((source, horizon, newey_west_t(grid, overlap_lags(horizon))))
    return pl.DataFrame(out, schema={"source": pl.String, "horizon": sq.schema["horizon"], "t": pl.Float64}, orient="row")


def fmt(v, kind: str = "pct") -> str:
    """A figure for a table cell: pct (2 decimals, %), num (2 decimals), num4, int, money; n/a for NULL/NaN."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if kind == "pct":
        return f"{100 * v:.2f}%"
    if kind == "num4":
        return f"{v:+.4f}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "money":
        return f"{v:,.0f}"
    if kind == "date":
        return str(v)
    return f"{v:.2f}"


PERF_COLUMNS = (("cum_return", "return", "pct"), ("cagr", "CAGR", "pct"), ("volatility", "vol", "pct"),
                ("sharpe", "Sharpe", "num"), ("sortino", "Sortino", "num"), ("max_drawdown", "max DD", "pct"),
                ("dd_peak_date", "DD peak", "date"), ("dd_trough_date", "DD trough", "date"),
                ("dd_recovery_date", "recovered", "date"), ("calmar", "Calmar", "num"),
                ("beta", "beta", "num"), ("alpha", "alpha", "pct"), ("tracking_error", "TE", "pct"),
                ("information_ratio", "IR", "num"), ("beta_ew", "beta EW", "num"), ("information_ratio_ew", "IR EW", "num"),
                ("turnover_annual", "turnover/yr", "num"), ("cost_fraction", "costs/NAV", "pct"),
                ("costs", "costs $", "money"))
SIGNAL_COLUMNS = (("n", "sessions", "int"), ("ic_mean", "IC", "num4"), ("rank_ic_mean", "rank IC", "num4"),
                  ("icir", "ICIR", "num"), ("t", "t", "num"), ("hit_rate_mean", "hit rate", "pct"),
                  ("spread_mean", "Q5-Q1", "pct"), ("coverage_mean", "coverage", "pct"))


def series_name(series: str, benchmark: str) -> str:
    return {perf.SERIES_BOOK: "book (net)", perf.SERIES_GROSS: "book (gross of costs)", perf.SERIES_BENCH: benchmark,
            perf.SERIES_EW: "equal weight (daily rebal.)"}.get(series, series)


def rows_of(frame: pl.DataFrame, columns, first: tuple[str, str]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of `frame` for the given (column, title, kind) columns present."""
    cols = [c for c in columns if c[0] in frame.columns]
    header = [first[1]] + [t for _, t, _ in cols]
    body = [[str(r[first[0]])] + [fmt(r[c], k) for c, _, k in cols] for r in frame.iter_rows(named=True)]
    return header, body


def text_table(header: list[str], body: list[list[str]]) -> str:
    """A fixed-width text table."""
    w = [max(len(x) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(c.rjust(n) if i else c.ljust(n) for i, (c, n) in enumerate(zip(cells, w)))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * n for n in w), *(line(r) for r in body)])


def buy_and_hold(bars: pl.DataFrame, exclude: set[str] | frozenset[str] = frozenset()) -> pl.DataFrame:
    """(date, return) of the equal-weight buy-and-hold of the names that have a bar on the first date:
    V_t = mean_i adj_close_i,t / adj_close_i,first (a name without a bar at t keeps its last value, as
    cash would), return_t = V_t / V_{t-1} - 1 from the second date. For comparison only (it drifts to
    the winners and depends on its start; performance uses the daily-rebalanced equal weight)."""
    px = (bars.filter(~pl.col("symbol").is_in(sorted(exclude)) & pl.col("adj_close").is_finite() & (pl.col("adj_close") > 0))
          .select("date", "symbol", "adj_close"))
    if px.height == 0:
        return pl.DataFrame(schema={"date": pl.Date, "return": pl.Float64})
    first = px["date"].min()
    base = px.filter(pl.col("date") == first).select("symbol", pl.col("adj_close").alias("p0"))
    wide = (px.join(base, on="symbol").with_columns((pl.col("adj_close") / pl.col("p0")).alias("g"))
            .pivot(on="symbol", index="date", values="g").sort("date"))
    g = wide.drop("date").fill_null(strategy="forward")
    v = g.mean_horizontal().to_numpy()
    return pl.DataFrame({"date": wide["date"][1:], "return": v[1:] / v[:-1] - 1.0})
