"""Volatility features. Daily log returns R_t = ln(Q_t/Q_{t-1}); A = settings.annualization (252)."""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features._base import C, H, I, L, LN2, O, R, Recursion, col, null, rec, safe_div, safe_sqrt, ts


def rolling_vol(n: int, annualization: int) -> pl.Expr:
    """vol_n = stdev(R_{t-n+1..t}, ddof=1) * sqrt(A); annualized decimal. Warm-up n bars."""
    return ts(col(R).rolling_std(n, ddof=1)) * annualization**0.5


def ewma_variance(key: str, alpha: float) -> Recursion:
    """s2_1 = R_1^2 (the first return, bar 1);  s2_t = (1 - alpha) s2_{t-1} + alpha R_t^2."""
    return Recursion(key, col(R) ** 2, alpha, 1, 1)


def ewma_vol(key: str, min_obs: int, annualization: int) -> pl.Expr:
    """EWMA volatility (zero mean, RiskMetrics form), annualized decimal: ewma_vol = sqrt(A * s2_t)
    with s2 the recursion `key` (ewma_variance: alpha = 2/(n+1) for ewma_vol_n, alpha = 1 - lambda
    for the lambda-based ones). Null until min_obs returns have been seen (bar index >= min_obs: a
    symbol's usable bars are consecutive, so bar k has seen k returns)."""
    s2 = pl.when(col(I) >= min_obs).then(rec(key)).otherwise(null())
    return (s2 * annualization).sqrt()


def realized_vol(n: int, annualization: int) -> pl.Expr:
    """realized_vol_n = sqrt(A/n * sum(R^2 over n bars)); no mean subtracted. Warm-up n bars."""
    return ts((col(R) ** 2).rolling_mean(n) * annualization).sqrt()


def downside_vol(n: int, annualization: int) -> pl.Expr:
    """downside_vol_n = sqrt(A/n * sum(min(R, 0)^2 over n bars)); semi-deviation about 0. Warm-up n."""
    return ts((col(R).clip(upper_bound=0.0) ** 2).rolling_mean(n) * annualization).sqrt()


def parkinson_vol(n: int, annualization: int) -> pl.Expr:
    """parkinson_vol_n = sqrt(A * mean(ln(H/L)^2 over n bars) / (4 ln 2)); range-based. Warm-up n-1."""
    return ts(((col(H) / col(L)).log() ** 2).rolling_mean(n) * (annualization / (4.0 * LN2))).sqrt()


def garman_klass_vol(n: int, annualization: int) -> pl.Expr:
    """garman_klass_vol_n = sqrt(A * mean(0.5 ln(H/L)^2 - (2 ln2 - 1) ln(C/O)^2 over n bars)).

    Null if the mean is negative (possible only with inconsistent bars). Warm-up n-1 bars.
    """
    daily = 0.5 * (col(H) / col(L)).log() ** 2 - (2.0 * LN2 - 1.0) * (col(C) / col(O)).log() ** 2
    return safe_sqrt(ts(daily.rolling_mean(n)) * annualization)


def _tr() -> pl.Expr:
    prev = col(C).shift(1)
    # max/min_horizontal skip nulls, so the first bar (no previous close) is nulled explicitly
    return pl.when(col(I) == 0).then(null()).otherwise(pl.max_horizontal(col(H), prev) - pl.min_horizontal(col(L), prev))


def true_range() -> pl.Expr:
    """trange = max(H_t, C_{t-1}) - min(L_t, C_{t-1}) (TA-Lib TRANGE); price units. Null on the first bar."""
    return ts(_tr())


def atr_recursion(n: int) -> Recursion:
    """ATR_n = Wilder average of the true range (TA-Lib ATR): seed mean(TR_1..TR_n) at bar n, then
    ATR_t = ((n-1) ATR_{t-1} + TR_t) / n."""
    return Recursion(f"atr_{n}", _tr(), 1.0 / n, n, n)


def atr(n: int) -> pl.Expr:
    """atr_n = the recursion atr_recursion(n); price units. Warm-up n bars."""
    return rec(f"atr_{n}")


def natr(atr_column: str) -> pl.Expr:
    """natr_n = 100 * ATR_n / close (TA-Lib NATR); percent of price. Warm-up n bars."""
    return 100.0 * safe_div(col(atr_column), col(C))
