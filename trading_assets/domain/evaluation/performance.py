"""The book against its benchmarks: daily figures, risk/return metrics and PnL attribution.

Pure (polars, numpy). Annualization A = 252 sessions a year; the risk-free rate is 0 (there is no
rate setting: every ratio below is on raw returns). Notation: r_t the series' simple return of
session t, b_t the benchmark's, a_t = r_t - b_t the active return; sums run over the n sessions of
the horizon that have both values (since inception: the book's first session .. t; rolling w: the
w sessions ending at t, NULL until the book has w sessions).

Daily figures (`daily_figures`), session t, NAV_{t-1} the NAV at the previous close (the initial
capital on the book's first session, = NAV_1 / (1 + daily_return_1)):
    net_return_t       = NAV_t / NAV_{t-1} - 1                       (after every cost)
    costs_t            = commission_t + slippage_t, over the fills of t (FILLED; slippage_cost =
                         |fill price - open| * quantity, execution.py), in dollars
    cost_fraction_t    = costs_t / NAV_{t-1}    (commission_fraction, slippage_fraction alike)
    gross_return_t     = net_return_t + cost_fraction_t              (what the book made before costs)
    turnover_t         = sum_fills |quantity * price| / NAV_{t-1}    (traded notional / NAV)
    gross_exposure_t   = sum_i |MV_i,t| / NAV_t,  net_exposure_t = sum_i MV_i,t / NAV_t
    cum_return_t       = prod_{s<=t} (1 + r_s) - 1,  drawdown_t = 1 - L_t / max_{s<=t} L_s
                         with L the level prod (1 + r), L = 1 before the first session.
Benchmarks (`benchmark_returns`), from the bars' adj_close (the provider's split- and
dividend-adjusted close; = close when the provider has none, as in the local S&P folder):
    benchmark_return_t = adj_close_t / adj_close_{t-1} - 1 of the benchmark symbol (SPY), t-1 the
                         previous NYSE session; a ratio of consecutive adjusted closes is known at t
                         even when the provider back-adjusts its levels later.
    ew_return_t        = mean_i (adj_close_i,t / adj_close_i,t-1 - 1) over the universe's
                         non-benchmark symbols with a positive adj_close at both t-1 and t: the
                         equal-weight universe rebalanced daily. Daily rebalanced (not buy-and-hold)
                         because it is a per-session quantity that needs no inception date, and
                         names entering or leaving the universe need no rule; buy-and-hold drifts to
                         the winners and its value depends on the start.
A missing benchmark return counts as 0 in levels (the benchmark's first session has no previous
close) and is left out of the relative sums.

Metrics (`metrics_frame`), for each series (book net, book gross, benchmark, equal weight) and
horizon, with m = mean(r), s = std(r, ddof 1):
    cum_return   = prod (1 + r) - 1 over the horizon
    cagr         = (1 + cum_return) ^ (A / n) - 1
    volatility   = s * sqrt(A)
    sharpe       = m / s * sqrt(A)
    sortino      = m * A / (sqrt(mean(min(r, 0)^2)) * sqrt(A))   (downside over all n sessions)
    max_drawdown = max_t (1 - L_t / max_{s<=t} L_s) over the levels of the horizon, the level
                   before its first session included (1 before inception); positive fraction.
                   Since inception also its dates: peak (the high before the worst trough; the
                   session before the book's first when it is the initial capital), trough, recovery (the first
                   session after the trough back at the peak's level; NULL = not yet, as of t).
    calmar       = cagr / max_drawdown (NULL when max_drawdown = 0)
    beta         = cov(r, b) / var(b)        (population moments: ddof cancels)
    alpha        = (1 + mean(r - beta * b)) ^ A - 1                   (annualized, compounded)
    tracking_error    = std(a, ddof 1) * sqrt(A)
    information_ratio = mean(a) * A / tracking_error
These are empyrical's definitions (sharpe_ratio, sortino_ratio, annual_volatility, annual_return,
calmar_ratio, alpha_beta, excess_sharpe x sqrt(A)); the tests check them against it on real SPY
returns. Since-inception sums are cumulative sums; rolling ones differences of them; rolling max
drawdown scans a window of w + 1 levels.

Attribution (`attribution`), symbol i, session t (exact: sum_i pnl_i,t = NAV_t - NAV_{t-1}, the
book's only cash flows being fills, commissions and dividends, domain/portfolio.py):
    pnl_i,t = MV_i,t - MV_i,t-1 + sum_sells (q * price) - sum_buys (q * price) - commission_i,t
              + dividend_i,t * q_i,t-1
    contribution_i,t = pnl_i,t / NAV_{t-1}
summed by GICS sector (universe; UNKNOWN when absent) and by the final decision on i at t-1
(risk_decisions: the decision that set the position carried into t and the orders filled at the
open of t; NONE when there is none).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

ANNUALIZATION = 252
HORIZONS: tuple[tuple[str, int | None], ...] = (("inception", None), ("rolling_63", 63), ("rolling_252", 252))
SERIES_BOOK, SERIES_GROSS, SERIES_BENCH, SERIES_EW = "book", "book_gross", "benchmark", "equal_weight"
NO_DECISION, NO_SECTOR = "NONE", "UNKNOWN"

DAILY_SCHEMA = {
    "date": pl.Date, "nav": pl.Float64, "nav_prev": pl.Float64, "net_return": pl.Float64,
    "gross_return": pl.Float64, "commission": pl.Float64, "slippage": pl.Float64, "costs": pl.Float64,
    "commission_fraction": pl.Float64, "slippage_fraction": pl.Float64, "cost_fraction": pl.Float64,
    "traded_notional": pl.Float64, "turnover": pl.Float64, "gross_exposure": pl.Float64,
    "net_exposure": pl.Float64, "benchmark_return": pl.Float64, "ew_return": pl.Float64,
    "ew_count": pl.Int32, "cum_return": pl.Float64, "cum_gross_return": pl.Float64,
    "benchmark_cum_return": pl.Float64, "ew_cum_return": pl.Float64, "drawdown": pl.Float64,
}
METRIC_COLUMNS = ("n_sessions", "cum_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                  "dd_peak_date", "dd_trough_date", "dd_recovery_date", "calmar",
                  "beta", "alpha", "tracking_error", "information_ratio",
                  "beta_ew", "alpha_ew", "tracking_error_ew", "information_ratio_ew")
METRICS_SCHEMA = {
    "date": pl.Date, "series": pl.String, "horizon": pl.String, "n_sessions": pl.Int32,
    **{c: pl.Float64 for c in ("cum_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown")},
    "dd_peak_date": pl.Date, "dd_trough_date": pl.Date, "dd_recovery_date": pl.Date,
    **{c: pl.Float64 for c in METRIC_COLUMNS[10:]},
}
ATTRIBUTION_SCHEMA = {"date": pl.Date, "dimension": pl.String, "bucket": pl.String, "pnl": pl.Float64,
                      "contribution": pl.Float64, "n_symbols": pl.Int32}


# --- inputs ---------------------------------------------------------------------------------------
def benchmark_returns(bars: pl.DataFrame, calendar_sessions: list[date], benchmark: str,
                      exclude: set[str] | frozenset[str] = frozenset()) -> pl.DataFrame:
    """(date, benchmark_return, ew_return, ew_count) for calendar_sessions[1:] (see the module docstring).

    bars: date, symbol, adj_close over calendar_sessions (its first session is the one before the
    first row wanted); exclude: symbols left out of the equal weight (the benchmarks)."""
    days = pl.DataFrame({"date": calendar_sessions[1:], "prev": calendar_sessions[:-1]},
                        schema={"date": pl.Date, "prev": pl.Date})
    px = bars.select("date", "symbol", pl.col("adj_close").cast(pl.Float64)).filter(
        pl.col("adj_close").is_finite() & (pl.col("adj_close") > 0))  # one bar per (date, symbol): price_history's key
    r = (px.join(days, on="date", how="inner")
         .join(px.rename({"date": "prev", "adj_close": "adj_prev"}), on=["prev", "symbol"], how="inner")
         .select("date", "symbol", (pl.col("adj_close") / pl.col("adj_prev") - 1.0).alias("r")))
    bench = r.filter(pl.col("symbol") == benchmark).select("date", pl.col("r").alias("benchmark_return"))
    ew = (r.filter(~pl.col("symbol").is_in(sorted(set(exclude) | {benchmark})))
          .group_by("date").agg(pl.col("r").mean().alias("ew_return"), pl.len().cast(pl.Int32).alias("ew_count")))
    return (days.select("date").join(bench, on="date", how="left").join(ew, on="date", how="left")
            .with_columns(pl.col("ew_count").fill_null(0)).sort("date"))


def fill_totals(fills: pl.DataFrame) -> pl.DataFrame:
    """Per fill session: commission, slippage and traded notional (sum |q * price|) of FILLED fills."""
    f = fills.filter(pl.col("status") == "FILLED")
    return (f.group_by("date").agg(pl.col("commission").sum(), pl.col("slippage_cost").sum().alias("slippage"),
                                   (pl.col("quantity") * pl.col("price")).abs().sum().alias("traded_notional"))
            .sort("date"))


# --- daily figures ---------------------------------------------------------------------------------
def _levels(r: np.ndarray) -> np.ndarray:
    """L_0 = 1 (before the first session), L_t = prod_{s<=t} (1 + r_s); NaN returns count as 0."""
    return np.concatenate([[1.0], np.cumprod(1.0 + np.nan_to_num(r, nan=0.0))])


CUMULATIVE = ("cum_return", "cum_gross_return", "benchmark_cum_return", "ew_cum_return", "drawdown")
CORE_COLUMNS = tuple(c for c in DAILY_SCHEMA if c not in CUMULATIVE)


def daily_core(portfolio: pl.DataFrame, totals: pl.DataFrame, bench: pl.DataFrame,
               nav_before: float | None = None) -> pl.DataFrame:
    """The per-session columns of DAILY_SCHEMA (CORE_COLUMNS: no cumulative ones), one row per portfolio
    session. nav_before: NAV at the close before the first row (None: the book's first session,
    NAV_0 = NAV_1 / (1 + daily_return_1), the initial capital)."""
    p = portfolio.sort("date")
    if p.height == 0:
        return pl.DataFrame(schema={c: DAILY_SCHEMA[c] for c in CORE_COLUMNS})
    first_prev = p["nav"][0] / (1.0 + p["daily_return"][0]) if nav_before is None else nav_before
    df = (p.select("date", "nav", "gross_exposure", "net_exposure")
          .with_columns(pl.col("nav").shift(1).fill_null(first_prev).alias("nav_prev"))
          .join(totals, on="date", how="left").join(bench, on="date", how="left")
          .with_columns(pl.col("commission", "slippage", "traded_notional").fill_null(0.0),
                        pl.col("ew_count").fill_null(0)))
    df = df.with_columns(
        (pl.col("nav") / pl.col("nav_prev") - 1.0).alias("net_return"),
        (pl.col("commission") + pl.col("slippage")).alias("costs"),
        (pl.col("commission") / pl.col("nav_prev")).alias("commission_fraction"),
        (pl.col("slippage") / pl.col("nav_prev")).alias("slippage_fraction"),
        ((pl.col("commission") + pl.col("slippage")) / pl.col("nav_prev")).alias("cost_fraction"),
        (pl.col("traded_notional") / pl.col("nav_prev")).alias("turnover"),
        (pl.col("gross_exposure") / pl.col("nav")).alias("gross_exposure"),
        (pl.col("net_exposure") / pl.col("nav")).alias("net_exposure"),
    ).with_columns((pl.col("net_return") + pl.col("cost_fraction")).alias("gross_return"))
    return df.select(list(CORE_COLUMNS)).cast({c: DAILY_SCHEMA[c] for c in CORE_COLUMNS})


def add_cumulative(core: pl.DataFrame) -> pl.DataFrame:
    """DAILY_SCHEMA rows: the core rows (from the book's first session, in order) with the cumulative
    columns, each over every row up to it."""
    df = core.sort("date")
    lv = _levels(df["net_return"].to_numpy().astype(float))
    cols = {
        "cum_return": lv[1:] - 1.0,
        "cum_gross_return": _levels(df["gross_return"].to_numpy().astype(float))[1:] - 1.0,
        "benchmark_cum_return": _levels(df["benchmark_return"].to_numpy().astype(float))[1:] - 1.0,
        "ew_cum_return": _levels(df["ew_return"].to_numpy().astype(float))[1:] - 1.0,
        "drawdown": 1.0 - lv[1:] / np.maximum.accumulate(lv)[1:],
    }
    df = df.with_columns(*(pl.Series(k, v, dtype=pl.Float64) for k, v in cols.items()))
    return df.select(list(DAILY_SCHEMA)).cast(DAILY_SCHEMA)


def daily_figures(portfolio: pl.DataFrame, totals: pl.DataFrame, bench: pl.DataFrame) -> pl.DataFrame:
    """One row per portfolio session (DAILY_SCHEMA; formulas in the module docstring) from the book's
    first session: `daily_core` then `add_cumulative`.

    portfolio: date, nav, daily_return, gross_exposure, net_exposure (dollars) from the book's first
    session; totals: `fill_totals`; bench: `benchmark_returns` (sessions without one -> NULL)."""
    return add_cumulative(daily_core(portfolio, totals, bench))


# --- metrics ---------------------------------------------------------------------------------------
def _window_sum(x: np.ndarray, w: int | None) -> np.ndarray:
    """sum over the horizon ending at each row: since inception (w None) or the last w rows (NaN before)."""
    c = np.cumsum(x)
    if w is None:
        return c
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        out[w - 1:] = c[w - 1:] - np.concatenate([[0.0], c[:-w]])
    return out


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a / b
    return np.where(np.isfinite(out), out, np.nan)


def return_stats(r: np.ndarray, w: int | None, ann: int = ANNUALIZATION) -> dict[str, np.ndarray]:
    """n_sessions, cum_return, cagr, volatility, sharpe, sortino per row (module docstring)."""
    ok = np.isfinite(r)
    x = np.where(ok, r, 0.0)
    n = _window_sum(ok.astype(float), w)
    s1, s2 = _window_sum(x, w), _window_sum(x * x, w)
    d2 = _window_sum(np.minimum(x, 0.0) ** 2, w)
    lg = _window_sum(np.log1p(x), w)
    m = _div(s1, n)
    var = _div(s2 - n * m * m, n - 1.0)
    sd = np.sqrt(np.where(var > 0, var, np.nan))
    cum = np.expm1(lg)
    cagr = np.where(n >= 1, np.exp(_div(lg * ann, n)) - 1.0, np.nan)
    return {
        "n_sessions": n, "cum_return": cum, "cagr": cagr, "volatility": sd * np.sqrt(ann),
        "sharpe": np.where(n >= 2, _div(m, sd) * np.sqrt(ann), np.nan),
        "sortino": np.where(n >= 2, _div(m * ann, np.sqrt(_div(d2, n)) * np.sqrt(ann)), np.nan),
    }


def relative_stats(r: np.ndarray, b: np.ndarray, w: int | None, ann: int = ANNUALIZATION) -> dict[str, np.ndarray]:
    """beta, alpha, tracking_error, information_ratio of r against b per row (module docstring)."""
    ok = np.isfinite(r) & np.isfinite(b)
    x, y = np.where(ok, r, 0.0), np.where(ok, b, 0.0)
    n = _window_sum(ok.astype(float), w)
    sx, sy = _window_sum(x, w), _window_sum(y, w)
    sxy, syy = _window_sum(x * y, w), _window_sum(y * y, w)
    a = x - y
    sa, saa = _window_sum(a, w), _window_sum(a * a, w)
    mx, my, ma = _div(sx, n), _div(sy, n), _div(sa, n)
    beta = _div(_div(sxy, n) - mx * my, _div(syy, n) - my * my)
    alpha = np.power(1.0 + mx - beta * my, ann) - 1.0
    var_a = _div(saa - n * ma * ma, n - 1.0)
    te = np.sqrt(np.where(var_a > 0, var_a, np.nan)) * np.sqrt(ann)
    enough = n >= 2
    return {"beta": np.where(enough, beta, np.nan), "alpha": np.where(enough, alpha, np.nan),
            "tracking_error": np.where(enough, te, np.nan),
            "information_ratio": np.where(enough, _div(ma * ann, te), np.nan)}


def drawdown_since_inception(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row t: max drawdown of levels L_0..L_t and the level indices (0 = before the first session,
    k = after return k-1) of its peak, trough and recovery (-1: none yet)."""
    lv = _levels(r)
    n = len(r)
    mdd, peak_i, trough_i, rec_i = np.zeros(n), np.full(n, -1), np.full(n, -1), np.full(n, -1)
    run_peak, cur_mdd, cur_peak, cur_trough, cur_rec = 0, 0.0, -1, -1, -1
    for k in range(1, n + 1):
        if cur_trough >= 0 and cur_rec < 0 and lv[k] >= lv[cur_peak]:
            cur_rec = k
        if lv[k] > lv[run_peak]:
            run_peak = k
        dd = 1.0 - lv[k] / lv[run_peak]
        if dd > cur_mdd:
            cur_mdd, cur_peak, cur_trough, cur_rec = dd, run_peak, k, -1
        mdd[k - 1], peak_i[k - 1], trough_i[k - 1], rec_i[k - 1] = cur_mdd, cur_peak, cur_trough, cur_rec
    return mdd, peak_i, trough_i, rec_i


def rolling_max_drawdown(r: np.ndarray, w: int) -> np.ndarray:
    """Per row t >= w - 1: max drawdown over the w + 1 levels L_{t-w+1-1} .. L_{t+1}; NaN before."""
    lv = _levels(r)
    out = np.full(len(r), np.nan)
    if len(r) >= w:
        win = np.lib.stride_tricks.sliding_window_view(lv, w + 1)
        out[w - 1:] = (1.0 - win / np.maximum.accumulate(win, axis=1)).max(axis=1)
    return out


def series_metrics(dates: list[date], r: np.ndarray, bench: np.ndarray | None, ew: np.ndarray | None,
                   horizon: str, w: int | None, before_first: date | None = None) -> dict[str, list | np.ndarray]:
    """Every METRIC_COLUMNS value per row for one series and horizon. dates: the sessions of r;
    before_first: the session before the first one (the date of level 0, NULL when None)."""
    st = return_stats(r, w)
    out: dict = {k: st[k] for k in ("n_sessions", "cum_return", "cagr", "volatility", "sharpe", "sortino")}
    nan = np.full(len(r), np.nan)
    if w is None:
        mdd, pk, tr, rc = drawdown_since_inception(r)
        level_date = [before_first, *dates]
        out["dd_peak_date"] = [level_date[i] if i >= 0 else None for i in pk]
        out["dd_trough_date"] = [level_date[i] if i >= 0 else None for i in tr]
        out["dd_recovery_date"] = [level_date[i] if i >= 0 else None for i in rc]
    else:
        mdd = rolling_max_drawdown(r, w)
        out["dd_peak_date"] = out["dd_trough_date"] = out["dd_recovery_date"] = [None] * len(r)
    out["max_drawdown"] = mdd
    out["calmar"] = np.where(mdd > 0, _div(st["cagr"], mdd), np.nan)
    for suffix, other in (("", bench), ("_ew", ew)):
        rel = relative_stats(r, other, w) if other is not None else {}
        for k in ("beta", "alpha", "tracking_error", "information_ratio"):
            out[k + suffix] = rel.get(k, nan)
    return out


def metrics_frame(daily: pl.DataFrame, before_first: date | None = None, keep_from: date | None = None) -> pl.DataFrame:
    """METRICS_SCHEMA rows: every (session, series, horizon) of the daily figures (from the book's first
    session), only the sessions >= keep_from when given (the metrics still use every row before).

    Series: book (net_return), book_gross (gross_return), benchmark (benchmark_return) and
    equal_weight (ew_return), the last two only when they have at least one return. Relative
    metrics: against the benchmark (beta, alpha, ...) and the equal weight (beta_ew, ...)."""
    if daily.height == 0:
        return pl.DataFrame(schema=METRICS_SCHEMA)
    dates = daily["date"].to_list()
    k0 = 0 if keep_from is None else next((i for i, d in enumerate(dates) if d >= keep_from), len(dates))
    kept = pl.Series("date", dates[k0:], dtype=pl.Date)
    b = daily["benchmark_return"].to_numpy().astype(float)
    e = daily["ew_return"].to_numpy().astype(float)
    has_b, has_e = bool(np.isfinite(b).any()), bool(np.isfinite(e).any())
    series = [(SERIES_BOOK, daily["net_return"].to_numpy().astype(float)),
              (SERIES_GROSS, daily["gross_return"].to_numpy().astype(float))]
    series += [(SERIES_BENCH, b)] if has_b else []
    series += [(SERIES_EW, e)] if has_e else []
    frames = []
    for name, r in series:
        for horizon, w in HORIZONS:
            m = series_metrics(dates, r, b if has_b else None, e if has_e else None, horizon, w, before_first)
            cols: dict[str, pl.Series] = {"date": kept, "series": pl.Series([name] * len(kept), dtype=pl.String),
                                         "horizon": pl.Series([horizon] * len(kept), dtype=pl.String)}
            for c in METRIC_COLUMNS:
                v = m[c]
                if isinstance(v, np.ndarray):
                    cols[c] = pl.Series(c, v[k0:], dtype=pl.Float64).fill_nan(None)
                else:
                    cols[c] = pl.Series(c, v[k0:], dtype=pl.Date)
            frames.append(pl.DataFrame(cols).cast(METRICS_SCHEMA))
    return pl.concat(frames).sort("date", "series", "horizon")


# --- attribution ---------------------------------------------------------------------------------
def attribution(sessions: list[date], prev_session: dict[date, date], positions: pl.DataFrame, fills: pl.DataFrame,
                dividends: pl.DataFrame, decisions: pl.DataFrame, sectors: dict[str, str],
                nav_prev: dict[date, float]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(ATTRIBUTION_SCHEMA rows, per-session reconciliation) for `sessions` (module docstring).

    positions: date, symbol, quantity, market_value at the sessions and the one before the first;
    fills: date, symbol, side, quantity, price, commission, status of the sessions; dividends: date,
    symbol, value (per share, ex-date = date); decisions: date, symbol, decision at the previous
    sessions; prev_session: session -> the one before; nav_prev: session -> NAV_{t-1}.
    The reconciliation frame: date, pnl (sum over symbols), the caller compares it with NAV_t - NAV_{t-1}."""
    if not sessions:
        return pl.DataFrame(schema=ATTRIBUTION_SCHEMA), pl.DataFrame(schema={"date": pl.Date, "pnl": pl.Float64})
    days = pl.DataFrame({"date": sessions, "prev": [prev_session[d] for d in sessions]},
                        schema={"date": pl.Date, "prev": pl.Date})
    f64 = pl.Float64
    pos = positions.select("date", "symbol", pl.col("quantity").cast(f64), pl.col("market_value").cast(f64))
    zero = pl.lit(0.0, f64)
    # one frame of per-(session, symbol) terms, summed: the holdings at t, at t-1 (with the shares that
    # earn t's dividend), the fills' cash and the dividends per share of t
    cur = pos.join(days.select("date"), on="date", how="semi").select(
        "date", "symbol", pl.col("market_value").alias("mv"), zero.alias("mv_prev"), zero.alias("q_prev"),
        zero.alias("flow"), zero.alias("div"))
    prev = pos.rename({"date": "prev"}).join(days, on="prev", how="inner").select(
        "date", "symbol", zero.alias("mv"), pl.col("market_value").alias("mv_prev"), pl.col("quantity").alias("q_prev"),
        zero.alias("flow"), zero.alias("div"))
    f = fills.filter(pl.col("status") == "FILLED").select(
        "date", "symbol", zero.alias("mv"), zero.alias("mv_prev"), zero.alias("q_prev"),
        (pl.when(pl.col("side") == "SELL").then(1.0).otherwise(-1.0) * pl.col("quantity").cast(f64)
         * pl.col("price").cast(f64) - pl.col("commission").cast(f64)).alias("flow"), zero.alias("div"))
    dv = dividends.select("date", "symbol", zero.alias("mv"), zero.alias("mv_prev"), zero.alias("q_prev"),
                          zero.alias("flow"), pl.col("value").cast(f64).alias("div"))
    terms = pl.concat([cur, prev, f]).group_by("date", "symbol").agg(pl.all().sum())
    # a dividend counts only on shares held at t-1 (a name not held has no row in terms to join)
    terms = terms.join(dv.group_by("date", "symbol").agg(pl.col("div").sum().alias("d")), on=["date", "symbol"],
                       how="left").with_columns(pl.col("d").fill_null(0.0))
    per = (terms.with_columns((pl.col("mv") - pl.col("mv_prev") + pl.col("flow") + pl.col("d") * pl.col("q_prev"))
                              .alias("pnl"))
           .join(days, on="date", how="left")
           .join(decisions.select(pl.col("date").alias("prev"), "symbol", "decision"), on=["prev", "symbol"], how="left")
           .with_columns(pl.col("decision").fill_null(NO_DECISION),
                         pl.col("symbol").replace_strict(sectors, default=NO_SECTOR, return_dtype=pl.String).alias("sector")))
    navp = pl.DataFrame({"date": list(nav_prev), "nav_prev": list(nav_prev.values())},
                        schema={"date": pl.Date, "nav_prev": pl.Float64})
    parts = []
    for dim, col in (("sector", "sector"), ("decision", "decision")):
        parts.append(per.group_by("date", pl.col(col).alias("bucket"))
                     .agg(pl.col("pnl").sum(), pl.len().cast(pl.Int32).alias("n_symbols"))
                     .with_columns(pl.lit(dim).alias("dimension")))
    out = (pl.concat(parts).join(navp, on="date", how="left")
           .with_columns((pl.col("pnl") / pl.col("nav_prev")).alias("contribution"))
           .select(list(ATTRIBUTION_SCHEMA)).cast(ATTRIBUTION_SCHEMA).sort("date", "dimension", "bucket"))
    recon = per.group_by("date").agg(pl.col("pnl").sum()).sort("date")
    return out, recon


def monthly_returns(daily: pl.DataFrame, column: str = "net_return") -> pl.DataFrame:
    """(year, month, return) with return = prod (1 + r) - 1 over the month's sessions."""
    return (daily.group_by(pl.col("date").dt.year().alias("year"), pl.col("date").dt.month().alias("month"))
            .agg(((1.0 + pl.col(column).fill_null(0.0)).product() - 1.0).alias("return")).sort("year", "month"))
