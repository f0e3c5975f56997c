"""Liquidity features. V = volume / S_t (split-adjusted shares), DV = close * volume (raw dollars).

Share-level features (adv_shares_*) are rescaled by S_t (catalog unit "shares") so they are in the
share units of session t; dollar volume needs no adjustment (a split changes price and shares
inversely), and ratios are scale-free.
"""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features._base import DV, I, R, V, col, null, safe_div, ts


def adv_shares(n: int) -> pl.Expr:
    """adv_shares_n = mean(V over n bars); shares (session t units). Warm-up n-1."""
    return ts(col(V).rolling_mean(n))


def adv_dollar(n: int) -> pl.Expr:
    """adv_dollar_n = mean(close * volume over n bars); dollars. Warm-up n-1."""
    return ts(col(DV).rolling_mean(n))


def volume_ratio(n: int) -> pl.Expr:
    """volume_ratio_n = V_t / mean(V_{t-n+1..t}); 1 = an average session. Null if the mean is 0."""
    return ts(safe_div(col(V), col(V).rolling_mean(n)))


def volume_trend(short: int, long: int) -> pl.Expr:
    """volume_trend_s_l = mean(V, s) / mean(V, l) - 1: is recent volume rising vs its longer average."""
    return ts(safe_div(col(V).rolling_mean(short), col(V).rolling_mean(long)) - 1.0)


def volume_zscore(n: int) -> pl.Expr:
    """volume_zscore_n = (V_t - mean(V, n)) / stdev(V, n, ddof=1); null if the stdev is 0."""
    return ts(safe_div(col(V) - col(V).rolling_mean(n), col(V).rolling_std(n, ddof=1)))


def trade_intensity(n: int) -> pl.Expr:
    """trade_intensity_n = V_t / median(V over n bars): today's activity vs a typical (robust) session."""
    return ts(safe_div(col(V), col(V).rolling_median(n)))


def amihud(n: int) -> pl.Expr:
    """amihud_n = mean(|R_t| / DV_t over n bars) * 1e6: absolute log return per million dollars traded
    (Amihud illiquidity). A zero-dollar-volume bar has no value, so its windows are null. Warm-up n."""
    term = pl.when(col(DV) > 0).then(col(R).abs() / col(DV) * 1e6).otherwise(null())
    return ts(term.rolling_mean(n))


def up_volume_share(n: int) -> pl.Expr:
    """up_volume_n = sum(V on bars with R > 0) / sum(V) over n bars, in [0, 1]. Warm-up n bars."""
    up = pl.when(col(I) == 0).then(null()).when(col(R) > 0).then(col(V)).otherwise(0.0)
    vol = pl.when(col(I) == 0).then(null()).otherwise(col(V))
    return ts(safe_div(up.rolling_sum(n), vol.rolling_sum(n)))
