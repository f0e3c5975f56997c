"""The feature catalog: the single source of truth for every feature's name, group, formula, window,
inputs, units and the TA-Lib function it equals.

`compute.py` evaluates the catalog stage by stage (a feature may only read base columns and features
of earlier stages); the `features` table gets one DOUBLE column per entry, in catalog order; the
feature version hash is taken over the entries and the FeatureSettings; docs/FEATURES.md is
generated from it (`render_markdown`), and `trading-cycle features` prints `format_catalog()`.

Notation used in the formulas: Q = point-in-time adjusted price (see _base), C/H/L/O = adjusted
close/high/low/open, V = split-adjusted volume, R = daily log return ln(C_t/C_{t-1}), RB = the
benchmark's log return over the same span, A = settings.annualization (252). Windows count the
symbol's usable bars. "warmup" = leading bars for which the value is null on a complete series.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from trading_assets.domain.features import benchmark as bm
from trading_assets.domain.features import cross_section as xsec
from trading_assets.domain.features import liquidity as liq
from trading_assets.domain.features import momentum as mom
from trading_assets.domain.features import oscillators as osc
from trading_assets.domain.features import returns as ret
from trading_assets.domain.features import trend
from trading_assets.domain.features import volatility as vol
from trading_assets.domain.features._base import CLOSE, Recursion, col, rec, safe_div
from trading_assets.settings import FeatureSettings

# Stages at or above this are cross-sectional (evaluated over the session's symbols, benchmark excluded).
CROSS_SECTION_STAGE = 5

# Bump when an implementation changes without its formula text changing (part of the version hash).
CATALOG_REVISION = 1

GROUPS = (
    "returns",
    "volatility",
    "moving_averages",
    "momentum",
    "oscillators",
    "liquidity",
    "cross_sectional",
    "benchmark",
    "price",
)
# unit -> how compute.py rescales the Q-unit value to session t's units
UNITS = {
    "price": "x F_t (price level in session t's units)",
    "shares": "x S_t (shares in session t's units)",
    "dollars": "dollars",
    "decimal": "decimal (unitless)",
    "log": "log return",
    "annualized": "annualized decimal",
    "percent": "percent",
    "index": "oscillator scale",
    "flag": "1.0 / 0.0",
    "rank": "percentile rank in [0, 1]",
    "z": "standard deviations",
}


@dataclass(frozen=True)
class FeatureSpec:
    """One catalog entry. `build(settings)` returns the polars expression (in Q units)."""

    name: str
    group: str
    formula: str
    window: int  # bars the formula looks at (its longest window; 1 for a same-bar formula)
    warmup: int  # leading null bars of a complete series (the first value is at bar index `warmup`)
    inputs: tuple[str, ...]  # price fields ("close", "high", ...) or the features it is built on
    unit: str
    build: Callable[[FeatureSettings], pl.Expr] = dataclasses.field(compare=False, repr=False)
    stage: int = 1
    talib: str = ""  # the TA-Lib call it equals, when one exists
    # the recursions (EMA, Wilder, EWMA) the feature reads with `rec(key)`, evaluated as columns at the
    # start of its stage; the only per-feature code the incremental daily path needs
    # (features/incremental.py): every other feature just needs its trailing window of bars
    recursions: Callable[[FeatureSettings], tuple[Recursion, ...]] | None = dataclasses.field(default=None, compare=False, repr=False)
    # bars before t its own formula reads, when that is more than window - 1 (max_dd_252: a window of
    # drawdowns, each from a peak over its own window); features/incremental.py sizes its frames by it
    reach: int | None = dataclasses.field(default=None, compare=False)

    def describe(self) -> dict:
        """The entry as plain data (everything but the builder): hashed into the feature version."""
        return {
            "name": self.name,
            "group": self.group,
            "formula": self.formula,
            "window": self.window,
            "warmup": self.warmup,
            "inputs": list(self.inputs),
            "unit": self.unit,
            "stage": self.stage,
            "talib": self.talib,
        }


_ENTRIES: list[FeatureSpec] = []


def _add(name, group, formula, window, warmup, inputs, unit, build, stage=1, talib="", recursions=None, reach=None):
    _ENTRIES.append(FeatureSpec(name, group, formula, window, warmup, tuple(inputs), unit, build, stage, talib, recursions, reach))


_CLOSE, _HLC, _OHLC, _CV, _HLCV = ("close",), ("high", "low", "close"), ("open", "high", "low", "close"), ("close", "volume"), ("high", "low", "close", "volume")
_MONTHS = {"1m": 21, "3m": 63, "6m": 126, "12m": 252}

# --- returns -------------------------------------------------------------------------------------
for n in (1, 5, 10, 20, 60, 120, 252):
    _add(f"logret_{n}", "returns", f"ln(C_t / C_t-{n})", n + 1, n, _CLOSE, "log", lambda s, n=n: ret.log_return(n))
for n in (1, 5, 10, 20, 60):
    _add(f"ret_{n}", "returns", f"C_t / C_t-{n} - 1", n + 1, n, _CLOSE, "decimal", lambda s, n=n: ret.simple_return(n))
for n in (20, 60, 252):
    _add(f"dd_{n}", "returns", f"C_t / max(C over {n}) - 1", n, n - 1, _CLOSE, "decimal", lambda s, n=n: ret.drawdown(n))
_add(
    "max_dd_252", "returns", "max over the last 252 bars j of 1 - C_j / max(C over the up-to-252 bars ending j)",
    252, 251, _CLOSE, "decimal", lambda s: ret.max_drawdown_proxy(252), reach=2 * 252 - 1,
)

# --- volatility ----------------------------------------------------------------------------------
for n in (5, 10, 20, 60, 120, 252):
    _add(f"vol_{n}", "volatility", f"stdev(R over {n}, ddof=1) * sqrt(A)", n + 1, n, _CLOSE, "annualized",
         lambda s, n=n: vol.rolling_vol(n, s.annualization))
for n in (20, 60):
    _add(f"ewma_vol_{n}", "volatility", f"sqrt(A * s2_t), s2_t = (1-a) s2_t-1 + a R_t^2, a = 2/({n}+1), s2_1 = R_1^2",
         n + 1, n, _CLOSE, "annualized", lambda s, n=n: vol.ewma_vol(f"ewma_vol_{n}", n, s.annualization),
         recursions=lambda s, n=n: (vol.ewma_variance(f"ewma_vol_{n}", 2.0 / (n + 1)),))
_add("ewma_vol_fast", "volatility", "sqrt(A * s2_t), s2_t = lambda s2_t-1 + (1-lambda) R_t^2, lambda = ewma_lambda_fast (0.94, RiskMetrics)",
     21, 20, _CLOSE, "annualized", lambda s: vol.ewma_vol("ewma_vol_fast", s.ewma_min_obs, s.annualization),
     recursions=lambda s: (vol.ewma_variance("ewma_vol_fast", 1.0 - s.ewma_lambda_fast),))
_add("ewma_vol_slow", "volatility", "sqrt(A * s2_t), s2_t = lambda s2_t-1 + (1-lambda) R_t^2, lambda = ewma_lambda_slow (0.97)",
     21, 20, _CLOSE, "annualized", lambda s: vol.ewma_vol("ewma_vol_slow", s.ewma_min_obs, s.annualization),
     recursions=lambda s: (vol.ewma_variance("ewma_vol_slow", 1.0 - s.ewma_lambda_slow),))
for n in (20, 60):
    _add(f"realized_vol_{n}", "volatility", f"sqrt(A / {n} * sum(R^2 over {n}))", n + 1, n, _CLOSE, "annualized",
         lambda s, n=n: vol.realized_vol(n, s.annualization))
_add("downside_vol_60", "volatility", "sqrt(A / 60 * sum(min(R, 0)^2 over 60))", 61, 60, _CLOSE, "annualized",
     lambda s: vol.downside_vol(60, s.annualization))
_add("parkinson_vol_20", "volatility", "sqrt(A * mean(ln(H/L)^2 over 20) / (4 ln 2))", 20, 19, ("high", "low"), "annualized",
     lambda s: vol.parkinson_vol(20, s.annualization))
_add("garman_klass_vol_20", "volatility", "sqrt(A * mean(0.5 ln(H/L)^2 - (2 ln2 - 1) ln(C/O)^2 over 20))", 20, 19, _OHLC, "annualized",
     lambda s: vol.garman_klass_vol(20, s.annualization))
_add("vol_ratio_20_60", "volatility", "vol_20 / vol_60", 61, 60, ("vol_20", "vol_60"), "decimal",
     lambda s: safe_div(col("vol_20"), col("vol_60")), stage=2)
_add("trange_1", "volatility", "max(H_t, C_t-1) - min(L_t, C_t-1)", 2, 1, _HLC, "price", lambda s: vol.true_range(), talib="TRANGE(high, low, close)")
for n in (14, 20):
    _add(f"atr_{n}", "volatility", f"Wilder mean of the true range: seed mean(TR_1..TR_{n}), then ((n-1) ATR_t-1 + TR_t) / n",
         n + 1, n, _HLC, "price", lambda s, n=n: vol.atr(n), talib=f"ATR(high, low, close, {n})",
         recursions=lambda s, n=n: (vol.atr_recursion(n),))
    _add(f"natr_{n}", "volatility", f"100 * atr_{n} / C", n + 1, n, (f"atr_{n}", "close"), "percent",
         lambda s, n=n: vol.natr(f"atr_{n}"), stage=2, talib=f"NATR(high, low, close, {n})")

# --- moving averages -----------------------------------------------------------------------------
for n in (10, 20, 50, 100, 200):
    _add(f"sma_{n}", "moving_averages", f"mean(C over {n})", n, n - 1, _CLOSE, "price", lambda s, n=n: trend.sma(n), talib=f"SMA(close, {n})")
for n in (5, 10, 12, 20, 26, 50, 100, 200):
    _add(f"ema_{n}", "moving_averages", f"seed SMA_{n} at bar {n - 1}, then EMA_t-1 + 2/({n}+1) (C_t - EMA_t-1)", n, n - 1, _CLOSE, "price",
         lambda s, n=n: trend.ema(n), talib=f"EMA(close, {n})", recursions=lambda s, n=n: (trend.ema_recursion(n),))
for n in (5, 10, 20, 50, 100, 200):
    _add(f"ema_slope_{n}", "moving_averages", f"ema_{n},t / ema_{n},t-1 - 1", n + 1, n, (f"ema_{n}",), "decimal",
         lambda s, n=n: trend.slope(f"ema_{n}"), stage=2)
for n in (20, 50, 200):
    _add(f"sma_slope_{n}", "moving_averages", f"sma_{n},t / sma_{n},t-1 - 1", n + 1, n, (f"sma_{n}",), "decimal",
         lambda s, n=n: trend.slope(f"sma_{n}"), stage=2)
for kind, n in (("sma", 20), ("sma", 50), ("sma", 200), ("ema", 20), ("ema", 50), ("ema", 200)):
    _add(f"px_{kind}_{n}", "moving_averages", f"C / {kind}_{n} - 1", n, n - 1, ("close", f"{kind}_{n}"), "decimal",
         lambda s, m=f"{kind}_{n}": trend.price_vs(m), stage=2)
_add("sma_20_50_spread", "moving_averages", "sma_20 / sma_50 - 1", 50, 49, ("sma_20", "sma_50"), "decimal",
     lambda s: trend.spread("sma_20", "sma_50"), stage=2)
_add("sma_50_above_200", "moving_averages", "1.0 if sma_50 > sma_200 else 0.0", 200, 199, ("sma_50", "sma_200"), "flag",
     lambda s: trend.above("sma_50", "sma_200"), stage=2)
_add("ema_20_above_50", "moving_averages", "1.0 if ema_20 > ema_50 else 0.0", 50, 49, ("ema_20", "ema_50"), "flag",
     lambda s: trend.above("ema_20", "ema_50"), stage=2)
_add("golden_cross", "moving_averages", "1.0 if sma_50 > sma_200 at t and sma_50 <= sma_200 at t-1, else 0.0", 201, 200,
     ("sma_50", "sma_200"), "flag", lambda s: trend.cross_up("sma_50", "sma_200"), stage=2)
_add("death_cross", "moving_averages", "1.0 if sma_50 < sma_200 at t and sma_50 >= sma_200 at t-1, else 0.0", 201, 200,
     ("sma_50", "sma_200"), "flag", lambda s: trend.cross_down("sma_50", "sma_200"), stage=2)
_add("macd_12_26", "moving_averages", "ema_12 - ema_26", 26, 25, ("ema_12", "ema_26"), "price",
     lambda s: trend.difference("ema_12", "ema_26"), stage=2, talib="MACD(close, 12, 26, 9)[0] (after TA-Lib's later seed decays)")
_add("macd_signal_12_26_9", "moving_averages", "EMA_9 of macd_12_26 (seed: mean of its first 9 values)", 34, 33, ("macd_12_26",), "price",
     lambda s: rec("macd_signal_12_26_9"), stage=3, talib="MACD(close, 12, 26, 9)[1] (after TA-Lib's later seed decays)",
     recursions=lambda s: (trend.ema_of_recursion("macd_signal_12_26_9", "macd_12_26", 9, 25),))
_add("macd_hist_12_26_9", "moving_averages", "macd_12_26 - macd_signal_12_26_9", 34, 33, ("macd_12_26", "macd_signal_12_26_9"), "price",
     lambda s: trend.difference("macd_12_26", "macd_signal_12_26_9"), stage=4, talib="MACD(close, 12, 26, 9)[2] (after TA-Lib's later seed decays)")

# --- momentum ------------------------------------------------------------------------------------
for label, n in _MONTHS.items():
    _add(f"mom_{label}", "momentum", f"C_t / C_t-{n} - 1", n + 1, n, _CLOSE, "decimal", lambda s, n=n: ret.simple_return(n))
_add("mom_12_1", "momentum", "C_t-21 / C_t-252 - 1", 253, 252, _CLOSE, "decimal", lambda s: ret.lagged_return(21, 252))
_add("mom_6_1", "momentum", "C_t-21 / C_t-126 - 1", 127, 126, _CLOSE, "decimal", lambda s: ret.lagged_return(21, 126))
for n in (5, 10, 20, 60):
    _add(f"roc_{n}", "momentum", f"100 * (C_t / C_t-{n} - 1)", n + 1, n, _CLOSE, "percent", lambda s, n=n: mom.roc(n), talib=f"ROC(close, {n})")
_add("mom_accel", "momentum", "mom_1m - mom_3m / 3", 64, 63, ("mom_1m", "mom_3m"), "decimal",
     lambda s: mom.acceleration("mom_1m", "mom_3m", 3.0), stage=2)
_add("mom_12_1_vol_adj", "momentum", "mom_12_1 / vol_252", 253, 252, ("mom_12_1", "vol_252"), "decimal",
     lambda s: mom.risk_adjusted("mom_12_1", "vol_252"), stage=2)

# --- oscillators ---------------------------------------------------------------------------------
for n in (7, 14, 21):
    _add(f"rsi_{n}", "oscillators", f"100 AG/(AG+AL), Wilder means (1/{n}) of gains/losses of C, seeded by the first {n}", n + 1, n,
         _CLOSE, "index", lambda s, n=n: osc.rsi(n), talib=f"RSI(close, {n})", recursions=lambda s, n=n: osc.wilder_gain_loss(n))
_add("cmo_14", "oscillators", "100 (AG-AL)/(AG+AL) with rsi_14's Wilder means = 2 rsi_14 - 100", 15, 14, ("rsi_14",), "index",
     lambda s: osc.cmo_from_rsi("rsi_14"), stage=2, talib="CMO(close, 14)")
for n in (20, 60, 120):
    _add(f"zscore_{n}", "oscillators", f"(C - mean(C over {n})) / stdev(C over {n}, ddof=1)", n, n - 1, _CLOSE, "z", lambda s, n=n: osc.zscore(n))
_add("bb_pctb_20", "oscillators", "(C - lower) / (upper - lower), bands SMA_20 +- 2 stdev_20 (population)", 20, 19, _CLOSE, "decimal",
     lambda s: osc.bollinger_pctb(20, 2.0), talib="BBANDS(close, 20, 2, 2, SMA): (close - lower) / (upper - lower)")
_add("bb_width_20", "oscillators", "4 stdev_20 (population) / SMA_20", 20, 19, _CLOSE, "decimal",
     lambda s: osc.bollinger_width(20, 2.0), talib="BBANDS(close, 20, 2, 2, SMA): (upper - lower) / middle")
_add("stoch_k_14", "oscillators", "SMA_3(100 (C - LL_14) / (HH_14 - LL_14))", 16, 15, _HLC, "index",
     lambda s: osc.stoch_k(14, 3), talib="STOCH(high, low, close, 14, 3, SMA, 3, SMA)[0] (slowk)")
_add("stoch_d_14", "oscillators", "SMA_3(stoch_k_14)", 18, 17, _HLC, "index",
     lambda s: osc.stoch_d(14, 3, 3), talib="STOCH(high, low, close, 14, 3, SMA, 3, SMA)[1] (slowd)")
_add("willr_14", "oscillators", "-100 (HH_14 - C) / (HH_14 - LL_14)", 14, 13, _HLC, "index", lambda s: osc.williams_r(14), talib="WILLR(high, low, close, 14)")
_add("mfi_14", "oscillators", "100 PMF/(PMF+NMF): flows TP*V, TP = (H+L+C)/3, summed over 14 bars where TP rose / fell", 15, 14, _HLCV,
     "index", lambda s: osc.mfi(14), talib="MFI(high, low, close, volume, 14)")
_add("breakout_20", "oscillators", "1.0 if C_t > max(H_t-20 .. H_t-1), else 0.0", 21, 20, ("high", "close"), "flag", lambda s: osc.breakout(20))
_add("breakdown_20", "oscillators", "1.0 if C_t < min(L_t-20 .. L_t-1), else 0.0", 21, 20, ("low", "close"), "flag", lambda s: osc.breakdown(20))
_add("dist_high_252", "oscillators", "C / max(H over 252) - 1", 252, 251, ("high", "close"), "decimal", lambda s: osc.distance_to_high(252))
_add("dist_low_252", "oscillators", "C / min(L over 252) - 1", 252, 251, ("low", "close"), "decimal", lambda s: osc.distance_to_low(252))

# --- liquidity -----------------------------------------------------------------------------------
for label, n in (("1d", 1), ("5d", 5), ("21d", 21), ("63d", 63)):
    _add(f"adv_shares_{label}", "liquidity", f"mean(V over {n})", n, n - 1, ("volume",), "shares", lambda s, n=n: liq.adv_shares(n))
    _add(f"adv_dollar_{label}", "liquidity", f"mean(close * volume over {n}) (raw, split-invariant)", n, n - 1, _CV, "dollars",
         lambda s, n=n: liq.adv_dollar(n))
_add("volume_ratio_20", "liquidity", "V_t / mean(V over 20)", 20, 19, ("volume",), "decimal", lambda s: liq.volume_ratio(20))
_add("volume_trend_5_63", "liquidity", "mean(V over 5) / mean(V over 63) - 1", 63, 62, ("volume",), "decimal", lambda s: liq.volume_trend(5, 63))
_add("volume_zscore_20", "liquidity", "(V_t - mean(V over 20)) / stdev(V over 20, ddof=1)", 20, 19, ("volume",), "z", lambda s: liq.volume_zscore(20))
_add("trade_intensity_63", "liquidity", "V_t / median(V over 63)", 63, 62, ("volume",), "decimal", lambda s: liq.trade_intensity(63))
_add("amihud_21", "liquidity", "mean(|R| / (close * volume) over 21) * 1e6", 22, 21, _CV, "decimal", lambda s: liq.amihud(21))
_add("up_volume_20", "liquidity", "sum(V where R > 0) / sum(V) over 20", 21, 20, _CV, "decimal", lambda s: liq.up_volume_share(20))

# --- cross-sectional -----------------------------------------------------------------------------
for n in (60, 252):
    _add(f"sharpe_proxy_{n}", "cross_sectional", f"mean(R over {n}) / stdev(R over {n}, ddof=1) * sqrt(A)", n + 1, n, _CLOSE, "decimal",
         lambda s, n=n: xsec.sharpe_proxy(n, s.annualization))
_add("calmar_proxy_252", "cross_sectional", "mom_12m / max_dd_252 (null when max_dd_252 = 0)", 253, 252, ("mom_12m", "max_dd_252"), "decimal",
     lambda s: xsec.calmar_proxy("mom_12m", "max_dd_252"), stage=2)
_RANKED = (
    ("vol_rank_20", "vol_20", 20),
    ("rank_mom_1m", "mom_1m", 21),
    ("rank_mom_3m", "mom_3m", 63),
    ("rank_mom_6m", "mom_6m", 126),
    ("rank_mom_12_1", "mom_12_1", 252),
    ("rank_rsi_14", "rsi_14", 14),
    ("rank_zscore_20", "zscore_20", 19),
    ("rank_px_sma_200", "px_sma_200", 199),
    ("rank_sharpe_60", "sharpe_proxy_60", 60),
    ("rank_volume_ratio_20", "volume_ratio_20", 19),
    ("rank_adv_dollar_21d", "adv_dollar_21d", 20),
    ("rank_beta_60", "beta_60", 60),
)
for name, source, warm in _RANKED:
    _add(name, "cross_sectional", f"(rank_avg({source}) - 1) / (N - 1) across the session's symbols", warm + 1, warm, (source,), "rank",
         lambda s, c=source: xsec.percentile_rank(c), stage=CROSS_SECTION_STAGE)
_add("xs_z_mom_12_1", "cross_sectional", "(mom_12_1 - mean) / stdev across the session's symbols", 253, 252, ("mom_12_1",), "z",
     lambda s: xsec.xs_zscore("mom_12_1"), stage=CROSS_SECTION_STAGE)
_add("xs_rel_logret_1", "cross_sectional", "logret_1 - mean(logret_1) across the session's symbols", 2, 1, ("logret_1",), "log",
     lambda s: xsec.xs_demean("logret_1"), stage=CROSS_SECTION_STAGE)

# --- benchmark -----------------------------------------------------------------------------------
_BENCH = (
    ("beta", bm.beta, "cov(R, RB) / var(RB)", "decimal"),
    ("corr", bm.correlation, "cov(R, RB) / (stdev(R) stdev(RB))", "decimal"),
    ("alpha", bm.alpha, "(mean(R) - beta mean(RB)) * A", "annualized"),
    ("r2", bm.r_squared, "corr^2", "decimal"),
    ("te", bm.tracking_error, "stdev(R - RB, ddof=1) * sqrt(A)", "annualized"),
)
for n in (60, 252):
    for stem, fn, text, unit in _BENCH:
        _add(f"{stem}_{n}", "benchmark", f"{text} over the {n} bars' pairs", n + 1, n, ("close", "benchmark close"), unit,
             lambda s, fn=fn, n=n: fn(n, s.beta_min_coverage, s.annualization))
_add("idio_vol_60", "benchmark", "sqrt(var(R) - cov(R, RB)^2 / var(RB)) * sqrt(A) over the 60 bars' pairs", 61, 60,
     ("close", "benchmark close"), "annualized", lambda s: bm.idiosyncratic_vol(60, s.beta_min_coverage, s.annualization))
for n in (60, 252):
    _add(f"rel_strength_{n}", "benchmark", f"sum(R - RB) over the {n} bars' pairs", n + 1, n, ("close", "benchmark close"), "log",
         lambda s, n=n: bm.relative_strength(n, s.beta_min_coverage, s.annualization))

# --- price ---------------------------------------------------------------------------------------
_add("close_adj", "price", "C_t * F_t = the raw close of session t (the adjusted series in session t's units)", 1, 0, _CLOSE, "dollars",
     lambda s: col(CLOSE))

CATALOG: tuple[FeatureSpec, ...] = tuple(_ENTRIES)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CATALOG)
BY_NAME: dict[str, FeatureSpec] = {f.name: f for f in CATALOG}
del _ENTRIES


def recursions(settings: FeatureSettings) -> list[tuple[int, Recursion]]:
    """(stage, recursion) of every recursive feature, in catalog order (keys are unique)."""
    out = [(f.stage, r) for f in CATALOG if f.recursions is not None for r in f.recursions(settings)]
    keys = [r.key for _, r in out]
    if len(set(keys)) != len(keys):
        raise ValueError(f"recursion keys must be unique: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return out


def reach(name: str) -> int:
    """Bars before t that feature `name`'s value at t reads, through its inputs too (recursions aside:
    their state carries the rest): its own (`reach`, else window - 1) or an input feature's, whichever
    is longer. Checked by the equivalence tests (features/test_incremental.py)."""
    f = BY_NAME[name]
    own = f.reach if f.reach is not None else f.window - 1
    return max([own, *(reach(i) for i in f.inputs if i in BY_NAME)])


# The bars before session t that any feature's value at t reads, besides its recursions' states (what
# a daily run reads instead of the whole history; features/incremental.py). The longest is
# max_dd_252: a 252-bar maximum of drawdowns each measured from a 252-bar peak = 2 x 252 - 1 = 503
# bars back; the rest need <= 253. A margin on top; the equivalence test
# (features/test_incremental.py) fails if a feature added to the catalog needs more.
TRAILING_BARS = 512
if max(reach(f.name) for f in CATALOG) > TRAILING_BARS - 4:
    raise AssertionError("a catalog feature reaches further back than TRAILING_BARS allows: raise it")


def feature_version(settings: FeatureSettings) -> str:
    """sha256 of the catalog entries, the catalog revision and the FeatureSettings (first 16 hex digits)."""
    payload = {
        "revision": CATALOG_REVISION,
        "catalog": [f.describe() for f in CATALOG],
        "settings": dataclasses.asdict(settings),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def sql_columns() -> dict[str, str]:
    """{feature name: DuckDB type} for the wide features table (all DOUBLE)."""
    return {f.name: "DOUBLE" for f in CATALOG}


def format_catalog() -> str:
    """The catalog as a plain-text table (name, group, formula): what `trading-cycle features` prints."""
    w_name = max(len(f.name) for f in CATALOG)
    w_group = max(len(f.group) for f in CATALOG)
    lines = [f"{'name':<{w_name}}  {'group':<{w_group}}  formula", f"{'-' * w_name}  {'-' * w_group}  {'-' * 7}"]
    for f in CATALOG:
        talib = f"   [= TA-Lib {f.talib}]" if f.talib else ""
        lines.append(f"{f.name:<{w_name}}  {f.group:<{w_group}}  {f.formula}{talib}")
    lines.append(f"{len(CATALOG)} features in {len({f.group for f in CATALOG})} groups")
    return "\n".join(lines) + "\n"


def render_markdown() -> str:
    """docs/FEATURES.md, generated from the catalog (a test checks the committed file is up to date)."""
    out = [
        "# Feature catalog",
        "",
        "Generated from `trading_assets/domain/features/catalog.py` by `render_markdown()`; do not edit by hand.",
        "Regenerate with `python -m trading_assets.domain.features > docs/FEATURES.md`.",
        "",
        "Notation: C/H/L/O = point-in-time adjusted close/high/low/open (Q_s = P_s / F_s, F = cumulative",
        "price factor of the symbol's corporate actions with ex-date <= s), V = split-adjusted volume,",
        "R = ln(C_t / C_t-1), RB = the benchmark's log return over the same span, A = annualization (252).",
        "Windows count the symbol's usable bars; `warmup` = leading bars that are null on a complete series.",
        "Price-level features are rescaled by F_t and share-level ones by S_t, so they are in session t's units.",
        "",
        f"{len(CATALOG)} features.",
        "",
    ]
    for group in GROUPS:
        rows = [f for f in CATALOG if f.group == group]
        out += [f"## {group} ({len(rows)})", "", "| name | formula | window | warmup | unit | TA-Lib |", "|---|---|---|---|---|---|"]
        for f in rows:
            formula = f.formula.replace("|", "\\|")
            out.append(f"| `{f.name}` | {formula} | {f.window} | {f.warmup} | {f.unit} | {f.talib} |")
        out.append("")
    return "\n".join(out)
