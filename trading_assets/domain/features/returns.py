"""Return features on the adjusted close Q (scale-free, so split/dividend adjustments cancel)."""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features._base import C, col, ts


def log_return(n: int) -> pl.Expr:
    """logret_n = ln(Q_t / Q_{t-n}); unitless log return over n bars. Warm-up: n bars."""
    return ts((col(C) / col(C).shift(n)).log())


def simple_return(n: int) -> pl.Expr:
    """ret_n = Q_t / Q_{t-n} - 1; unitless simple return over n bars. Warm-up: n bars."""
    return ts(col(C) / col(C).shift(n) - 1.0)


def lagged_return(near: int, far: int) -> pl.Expr:
    """Q_{t-near} / Q_{t-far} - 1 (e.g. 12-1 momentum: near 21, far 252); skips the last `near` bars."""
    return ts(col(C).shift(near) / col(C).shift(far) - 1.0)


def drawdown(n: int) -> pl.Expr:
    """dd_n = Q_t / max(Q_{t-n+1..t}) - 1, in (-1, 0]: distance below the n-bar closing high."""
    return ts(col(C) / col(C).rolling_max(n) - 1.0)


def max_drawdown_proxy(n: int) -> pl.Expr:
    """max_dd_n = max over j in [t-n+1, t] of (1 - Q_j / max(Q over the up-to-n bars ending j)).

    The worst drawdown seen in the last n bars, each measured from the highest close of the n bars
    before it (a peak may lie before the window, so this is >= the in-window maximum drawdown; in
    the first n-1 bars the peak is taken over the bars available). In [0, 1); warm-up n-1 bars.
    """
    peak = col(C).rolling_max(n, min_samples=1)
    return ts((1.0 - col(C) / peak).rolling_max(n))
