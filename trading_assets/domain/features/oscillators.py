"""Oscillators on the adjusted series Q (all scale-free)."""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features._base import C, H, I, L, V, Recursion, col, flag, null, rec, safe_div, ts


def wilder_gain_loss(n: int) -> tuple[Recursion, Recursion]:
    """AG_n, AL_n: Wilder averages (alpha 1/n, seeded by the mean of the first n at bar n) of the gains
    max(dQ, 0) and the losses max(-dQ, 0) of the adjusted close."""
    d = col(C).diff()
    return (Recursion(f"rsi_{n}_gain", d.clip(lower_bound=0.0), 1.0 / n, n, n),
            Recursion(f"rsi_{n}_loss", (-d).clip(lower_bound=0.0), 1.0 / n, n, n))


def rsi(n: int) -> pl.Expr:
    """rsi_n = 100 * AG / (AG + AL) (TA-Lib RSI): AG, AL = Wilder averages (alpha 1/n, seeded by the
    mean of the first n) of the gains max(dQ, 0) and losses max(-dQ, 0); in [0, 100]. Null if
    AG + AL = 0 (a flat series; TA-Lib writes 0). Warm-up n bars."""
    ag, al = rec(f"rsi_{n}_gain"), rec(f"rsi_{n}_loss")
    return 100.0 * safe_div(ag, ag + al)


def cmo_from_rsi(rsi_column: str) -> pl.Expr:
    """cmo_n = 2 rsi_n - 100 (= 100 (AG - AL)/(AG + AL) with the same Wilder averages; TA-Lib CMO)."""
    return 2.0 * col(rsi_column) - 100.0


def zscore(n: int) -> pl.Expr:
    """zscore_n = (Q_t - mean(Q, n)) / stdev(Q, n, ddof=1); null if the stdev is 0. Warm-up n-1."""
    return ts(safe_div(col(C) - col(C).rolling_mean(n), col(C).rolling_std(n, ddof=1)))


def bollinger_pctb(n: int, k: float) -> pl.Expr:
    """bb_pctb_n = (Q - lower) / (upper - lower), bands = SMA_n +- k * stdev_n (population stdev, as
    TA-Lib BBANDS); 0 at the lower band, 1 at the upper. Null if the stdev is 0. Warm-up n-1."""
    mid, sd = col(C).rolling_mean(n), col(C).rolling_std(n, ddof=0)
    return ts(safe_div(col(C) - (mid - k * sd), 2.0 * k * sd))


def bollinger_width(n: int, k: float) -> pl.Expr:
    """bb_width_n = (upper - lower) / middle = 2 k stdev_n / SMA_n (population stdev). Warm-up n-1."""
    return ts(safe_div(2.0 * k * col(C).rolling_std(n, ddof=0), col(C).rolling_mean(n)))


def _fast_k(n: int) -> pl.Expr:
    hh, ll = col(H).rolling_max(n), col(L).rolling_min(n)
    return 100.0 * safe_div(col(C) - ll, hh - ll)


def stoch_k(n: int, slow: int) -> pl.Expr:
    """stoch_k_n = SMA_slow(fastK), fastK = 100 (Q - LL_n) / (HH_n - LL_n) over highs/lows of n bars
    (TA-Lib STOCH slowk, SMA smoothing); in [0, 100]. Null on a zero range. Warm-up n-1 + slow-1."""
    return ts(_fast_k(n).rolling_mean(slow))


def stoch_d(n: int, slow_k: int, slow_d: int) -> pl.Expr:
    """stoch_d_n = SMA_slow_d(stoch_k) (TA-Lib STOCH slowd). Warm-up n-1 + slow_k-1 + slow_d-1."""
    return ts(_fast_k(n).rolling_mean(slow_k).rolling_mean(slow_d))


def williams_r(n: int) -> pl.Expr:
    """willr_n = -100 (HH_n - Q) / (HH_n - LL_n) (TA-Lib WILLR); in [-100, 0]. Warm-up n-1."""
    hh, ll = col(H).rolling_max(n), col(L).rolling_min(n)
    return ts(-100.0 * safe_div(hh - col(C), hh - ll))


MFI_ZERO = 1e-8


def mfi(n: int) -> pl.Expr:
    """mfi_n = 100 * PMF / (PMF + NMF) (TA-Lib MFI): TP = (H + L + Q)/3, money flow TP * V, PMF/NMF =
    sums over n bars of the flow on bars where TP rose / fell by more than 1e-8 vs the bar before. Warm-up n bars."""
    tp = (col(H) + col(L) + col(C)) / 3.0
    flow = tp * col(V)
    change = tp - tp.shift(1)
    # |change| < 1e-8 counts as unchanged, as in TA-Lib (TA_IS_ZERO): equal typical prices summed in
    # a different order differ by ~1e-14 and must not count as a rise or a fall
    pos = pl.when(col(I) == 0).then(null()).when(change > MFI_ZERO).then(flow).otherwise(0.0)
    neg = pl.when(col(I) == 0).then(null()).when(change < -MFI_ZERO).then(flow).otherwise(0.0)
    ps, ns = pos.rolling_sum(n), neg.rolling_sum(n)
    return ts(100.0 * safe_div(ps, ps + ns))


def breakout(n: int) -> pl.Expr:
    """breakout_n = 1.0 if Q_t > max(H_{t-n..t-1}) (above the highest high of the n bars before), else 0.0."""
    return ts(flag(col(C) > col(H).rolling_max(n).shift(1)))


def breakdown(n: int) -> pl.Expr:
    """breakdown_n = 1.0 if Q_t < min(L_{t-n..t-1}) (below the lowest low of the n bars before), else 0.0."""
    return ts(flag(col(C) < col(L).rolling_min(n).shift(1)))


def distance_to_high(n: int) -> pl.Expr:
    """dist_high_n = Q_t / max(H over n bars) - 1 (<= 0 on consistent bars). Warm-up n-1."""
    return ts(safe_div(col(C), col(H).rolling_max(n)) - 1.0)


def distance_to_low(n: int) -> pl.Expr:
    """dist_low_n = Q_t / min(L over n bars) - 1 (>= 0 on consistent bars). Warm-up n-1."""
    return ts(safe_div(col(C), col(L).rolling_min(n)) - 1.0)
