"""Base columns and expression helpers shared by the feature builders (pure polars).

The feature builders never see raw provider prices: `compute.py` first builds, per (symbol, date),
the point-in-time adjusted series below (docs/ARCHITECTURE.md "Prices and adjustments"):

    F_t  = product of price_factor over the symbol's actions with ex-date <= t   (price factor)
    S_t  = product of 1/price_factor over its splits with ex-date <= t          (share factor)
    Q_t  = P_t / F_t  for P in open, high, low, close  (units of the symbol's first session)
    V_t  = volume_t / S_t                               (shares in first-session units)

Features are computed on Q and V; price-level features are multiplied by F_t and share-level ones
by S_t at the end (so they are in the units of session t), return-like features are scale-free.
Every builder returns an expression in "Q units"; `catalog.FeatureSpec.unit` says which rescaling
applies. Rows are the symbol's usable bars in date order: a window of n is n bars of the symbol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

# --- base column names (internal; dropped from the output) ------------------------------------
I = "_i"  # 0-based index of the bar within its symbol's usable series
C = "_c"  # Q close
H = "_h"  # Q high
L = "_l"  # Q low
O = "_o"  # Q open
F = "_f"  # cumulative price factor F_t
S = "_s"  # cumulative share factor S_t
V = "_v"  # volume / S_t
DV = "_dv"  # raw close * raw volume (dollars traded that session; split-invariant)
R = "_r"  # ln(Q_t / Q_{t-1}): daily log return (null on the first bar)
RB = "_rb"  # benchmark log return over the same span as R (null when the benchmark lacks either end)
CLOSE = "close"  # raw close as delivered (= Q_t * F_t)
MEMBER = "_member"  # true for the symbols of the cross-section (every symbol but the benchmark)

LN2 = math.log(2.0)


def col(name: str) -> pl.Expr:
    return pl.col(name)


def ts(expr: pl.Expr) -> pl.Expr:
    """Evaluate a time-series expression per symbol (rows are in (symbol, date) order)."""
    return expr.over("symbol")


def xs(expr: pl.Expr) -> pl.Expr:
    """Evaluate a cross-sectional expression per session."""
    return expr.over("date")


def null() -> pl.Expr:
    return pl.lit(None, dtype=pl.Float64)


def safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null where den is 0 (an undefined ratio is missing, never +-inf or NaN)."""
    return pl.when(den != 0).then(num / den).otherwise(null())


def safe_sqrt(x: pl.Expr) -> pl.Expr:
    """sqrt(x), null where x < 0 (only reachable through rounding of a variance near 0 or a bad estimator)."""
    return pl.when(x >= 0).then(x.sqrt()).otherwise(null())


def flag(cond: pl.Expr) -> pl.Expr:
    """1.0 / 0.0 for a boolean condition; null stays null (warm-up is never reported as 0.0)."""
    return cond.cast(pl.Float64)


# --- recursions (EMA, Wilder, EWMA): named state so a daily run can continue them ---------------
REC_PREFIX = "_rec_"  # column of a recursion's value y_k (Q units), per symbol and bar
CARRY_PREFIX = "_carry_"  # incremental runs: y at the carry bar, from the stored state (features/incremental.py)
ICARRY = "_icarry"  # incremental runs: the carry bar's index I (null: the symbol is computed from its first bar)


@dataclass(frozen=True)
class Recursion:
    """A first-order recursion of a per-symbol input x (TA-Lib style):

        y_k = null                           for bar index k < seed_at
        y_k = mean(x_{k-n_seed+1} .. x_k)    for k = seed_at       (the seed; n_seed = 1: y = x_k)
        y_k = (1 - alpha) y_{k-1} + alpha x_k  for k > seed_at

    EMA(n): alpha = 2/(n+1), seed = SMA(n) at k = n-1. Wilder (RSI, ATR): alpha = 1/n, seed = mean of
    the first n values at k = n (the first value needs a previous close). EWMA variance: n_seed = 1 at
    the first return. A feature whose value depends on its whole past declares its recursions in the
    catalog (FeatureSpec.recursions) and reads them with `rec(key)`: compute.py evaluates each one as
    a column, so its last value is a state a daily run can continue from (features/incremental.py),
    where every other feature only needs its trailing window of bars.
    """

    key: str  # unique name; the column is REC_PREFIX + key
    x: pl.Expr  # the input, Q units (evaluated per symbol)
    alpha: float
    seed_at: int
    n_seed: int


def rec(key: str) -> pl.Expr:
    """The value y_k of the recursion `key` on the bar (a column compute.py adds before the stage)."""
    return col(REC_PREFIX + key)


def recursion_expr(r: Recursion, incremental: bool = False) -> pl.Expr:
    """The column of recursion r (see Recursion). incremental: a symbol with a carry (ICARRY not null)
    starts from the stored y at bar ICARRY instead of its seed; the recursion then runs through the
    same operations as from the first bar (polars' ewm_mean with adjust=False starts at its first
    non-null value exactly), so the continued values equal the full recomputation's bit for bit."""
    seed = r.x if r.n_seed == 1 else r.x.rolling_mean(r.n_seed)
    z = pl.when(col(I) < r.seed_at).then(null()).when(col(I) == r.seed_at).then(seed).otherwise(r.x)
    if incremental:
        carry = col(CARRY_PREFIX + r.key)
        z = pl.when(col(I) < col(ICARRY)).then(null()).when(col(I) == col(ICARRY)).then(carry).otherwise(z)
    return ts(z.ewm_mean(alpha=r.alpha, adjust=False)).alias(REC_PREFIX + r.key)
