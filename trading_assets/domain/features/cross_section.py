"""Cross-sectional features (across the symbols present on the same session) and the risk-adjusted
return proxies the cross-sectional ranks are built on."""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features._base import MEMBER, R, col, null, safe_div, ts, xs


def _member(column: str) -> pl.Expr:
    # the benchmark row is not a member of the cross-section (MEMBER is false there): its value is
    # left out of every session statistic and its own cross-sectional value is null
    return pl.when(col(MEMBER)).then(col(column)).otherwise(null())


def percentile_rank(column: str) -> pl.Expr:
    """rank_x = (rank_avg(x) - 1) / (N - 1) across the session's member symbols with a value, in [0, 1]
    (ties share their average rank; 0 = lowest). Null when x is null or fewer than 2 symbols have it."""
    x = _member(column)
    n = x.count()
    return xs(pl.when(n >= 2).then((x.rank("average") - 1.0) / (n - 1)).otherwise(null()))


def xs_zscore(column: str) -> pl.Expr:
    """xs_z_x = (x - mean_date(x)) / stdev_date(x, ddof=1) across the session's members; null if < 2 or stdev 0."""
    x = _member(column)
    return xs(pl.when(x.count() >= 2).then(safe_div(x - x.mean(), x.std())).otherwise(null()))


def xs_demean(column: str) -> pl.Expr:
    """x - mean_date(x): the symbol's value relative to the session's cross-sectional (members') average."""
    x = _member(column)
    return xs(x - x.mean())


def sharpe_proxy(n: int, annualization: int) -> pl.Expr:
    """sharpe_proxy_n = mean(R, n) / stdev(R, n, ddof=1) * sqrt(A) (zero risk-free rate). Warm-up n."""
    return ts(safe_div(col(R).rolling_mean(n), col(R).rolling_std(n, ddof=1))) * annualization**0.5


def calmar_proxy(ret_column: str, mdd_column: str) -> pl.Expr:
    """calmar_proxy = simple return over the window / max drawdown proxy over it; null if no drawdown."""
    return safe_div(col(ret_column), col(mdd_column))
