"""Momentum features on the adjusted close Q (scale-free)."""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features._base import C, col, safe_div, ts


def roc(n: int) -> pl.Expr:
    """roc_n = 100 * (Q_t / Q_{t-n} - 1) (TA-Lib ROC); percent. Warm-up n bars."""
    return ts((col(C) / col(C).shift(n) - 1.0) * 100.0)


def acceleration(short_column: str, long_column: str, ratio: float) -> pl.Expr:
    """mom_accel = mom_short - mom_long / ratio (e.g. mom_1m - mom_3m/3): recent momentum above its
    longer-run monthly pace."""
    return col(short_column) - col(long_column) / ratio


def risk_adjusted(mom_column: str, vol_column: str) -> pl.Expr:
    """momentum / annualized volatility (null when the volatility is 0)."""
    return safe_div(col(mom_column), col(vol_column))
