"""Moving-average (trend) features on the adjusted close Q.

SMA/EMA/MACD values are price levels: computed on Q and rescaled by F_t (catalog unit "price"),
so they are in session t's price units; slopes, positions and crosses are scale-free.
"""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features._base import C, Recursion, col, flag, null, rec, safe_div, ts


def sma(n: int) -> pl.Expr:
    """sma_n = mean(Q_{t-n+1..t}) (TA-Lib SMA); price units. Warm-up n-1 bars."""
    return ts(col(C).rolling_mean(n))


def ema_recursion(n: int) -> Recursion:
    """EMA_n of Q (TA-Lib EMA): seed SMA_n at bar n-1, then EMA_t = EMA_{t-1} + k (Q_t - EMA_{t-1}), k = 2/(n+1)."""
    return Recursion(f"ema_{n}", col(C), 2.0 / (n + 1), n - 1, n)


def ema(n: int) -> pl.Expr:
    """ema_n = the recursion ema_recursion(n); price units. Warm-up n-1 bars."""
    return rec(f"ema_{n}")


def slope(ma_column: str) -> pl.Expr:
    """ma_slope = MA_t / MA_{t-1} - 1 (one-bar relative change of the average, on Q). Warm-up: MA's + 1."""
    return ts(col(ma_column) / col(ma_column).shift(1) - 1.0)


def price_vs(ma_column: str) -> pl.Expr:
    """px_ma = close / MA - 1 (relative distance of the close from the average)."""
    return safe_div(col(C), col(ma_column)) - 1.0


def spread(fast_column: str, slow_column: str) -> pl.Expr:
    """fast / slow - 1 (relative gap between two averages)."""
    return safe_div(col(fast_column), col(slow_column)) - 1.0


def above(fast_column: str, slow_column: str) -> pl.Expr:
    """1.0 if fast_t > slow_t else 0.0."""
    return flag(col(fast_column) > col(slow_column))


def _known(cond: pl.Expr, before: pl.Expr) -> pl.Expr:
    # Kleene logic makes False & null = False: a cross needs both sessions known, else null
    return pl.when(before.is_null()).then(null()).otherwise(flag(cond))


def cross_up(fast_column: str, slow_column: str) -> pl.Expr:
    """1.0 on the bar where fast_t > slow_t and fast_{t-1} <= slow_{t-1} (a golden cross), else 0.0."""
    now = col(fast_column) > col(slow_column)
    before = col(fast_column).shift(1) <= col(slow_column).shift(1)
    return ts(_known(now & before, before))


def cross_down(fast_column: str, slow_column: str) -> pl.Expr:
    """1.0 on the bar where fast_t < slow_t and fast_{t-1} >= slow_{t-1} (a death cross), else 0.0."""
    now = col(fast_column) < col(slow_column)
    before = col(fast_column).shift(1) >= col(slow_column).shift(1)
    return ts(_known(now & before, before))


def difference(a_column: str, b_column: str) -> pl.Expr:
    """a - b (e.g. MACD line = EMA_12 - EMA_26, histogram = MACD - signal); price units."""
    return col(a_column) - col(b_column)


def ema_of_recursion(key: str, column: str, n: int, first_index: int) -> Recursion:
    """EMA of a feature column that starts at bar `first_index`: seed = mean of its first n values
    (at bar first_index + n - 1), then k = 2/(n+1) (TA-Lib's MACD signal line)."""
    return Recursion(key, col(column), 2.0 / (n + 1), first_index + n - 1, n)
