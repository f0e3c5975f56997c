"""Benchmark-relative features: rolling regression of the symbol's daily log returns y = R on the
benchmark's log returns over the same span x = RB (see _base), over n bars.

Only bars where both returns exist count (k pairs); the value is null until the symbol has n
returns and while k < coverage * n. With sums over the window (Sx, Sy, Sxx, Syy, Sxy):

    var_x = (Sxx - Sx^2/k)/(k-1),  var_y = (Syy - Sy^2/k)/(k-1),  cov = (Sxy - Sx Sy/k)/(k-1)
    beta = cov / var_x                 corr = cov / sqrt(var_x var_y)        r2 = corr^2
    alpha = (Sy/k - beta Sx/k) * A     (annualized intercept, log-return decimal)
    te = sqrt(var_y + var_x - 2 cov) * sqrt(A)   (annualized tracking error = stdev(y - x))
    idio_vol = sqrt(var_y - cov^2/var_x) * sqrt(A)  (annualized residual volatility)
    rel_strength = (Sy - Sx)            (log return in excess of the benchmark over the window)
"""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features._base import I, R, RB, col, null, safe_div, safe_sqrt, ts


WINDOWS = (60, 252)


def _sum_name(n: int, what: str) -> str:
    return f"_b{n}_{what}"


def window_sums() -> list[pl.Expr]:
    """Internal columns _b{n}_{k,sx,sy,sxx,syy,sxy} for every window n in WINDOWS: the pair count and
    the sums above, computed once per window (compute.py adds them before the catalog stages, so the
    13 benchmark features share 12 rolling sums instead of recomputing ~80)."""
    valid = col(R).is_not_null() & col(RB).is_not_null()
    x = pl.when(valid).then(col(RB)).otherwise(0.0)
    y = pl.when(valid).then(col(R)).otherwise(0.0)
    parts = {"k": valid.cast(pl.Float64), "sx": x, "sy": y, "sxx": x * x, "syy": y * y, "sxy": x * y}
    return [ts(e.rolling_sum(n)).alias(_sum_name(n, what)) for n in WINDOWS for what, e in parts.items()]


def _stat(n: int, coverage: float, annualization: int, what: str) -> pl.Expr:
    if n not in WINDOWS:
        raise ValueError(f"benchmark window {n} has no sums: add it to benchmark.WINDOWS")
    k, sx, sy, sxx, syy, sxy = (col(_sum_name(n, w)) for w in ("k", "sx", "sy", "sxx", "syy", "sxy"))
    var_x = (sxx - sx**2 / k) / (k - 1)
    var_y = (syy - sy**2 / k) / (k - 1)
    cov = (sxy - sx * sy / k) / (k - 1)
    beta = safe_div(cov, var_x)
    # rounding can push |corr| a hair above 1 for a symbol that moves exactly with the benchmark
    corr = safe_div(cov, safe_sqrt(var_x * var_y)).clip(-1.0, 1.0)
    value = {
        "beta": beta,
        "corr": corr,
        "r2": corr**2,
        "alpha": (sy / k - beta * sx / k) * annualization,
        # var_x + var_y - 2 cov can round just below 0 for a symbol equal to the benchmark
        "te": (var_y + var_x - 2.0 * cov).clip(lower_bound=0.0).sqrt() * annualization**0.5,
        "idio_vol": (var_y - safe_div(cov**2, var_x)).clip(lower_bound=0.0).sqrt() * annualization**0.5,
        "rel_strength": sy - sx,
    }[what]
    enough = (col(I) >= n) & (k >= max(3.0, coverage * n))
    return pl.when(enough).then(value).otherwise(null())


def beta(n: int, coverage: float, annualization: int) -> pl.Expr:
    """beta_n = cov(R, RB) / var(RB) over n bars."""
    return _stat(n, coverage, annualization, "beta")


def correlation(n: int, coverage: float, annualization: int) -> pl.Expr:
    """corr_n = cov(R, RB) / (stdev(R) stdev(RB)) over n bars, in [-1, 1]."""
    return _stat(n, coverage, annualization, "corr")


def r_squared(n: int, coverage: float, annualization: int) -> pl.Expr:
    """r2_n = corr_n^2, in [0, 1]: the share of variance the benchmark explains."""
    return _stat(n, coverage, annualization, "r2")


def alpha(n: int, coverage: float, annualization: int) -> pl.Expr:
    """alpha_n = (mean(R) - beta_n mean(RB)) * A: annualized regression intercept."""
    return _stat(n, coverage, annualization, "alpha")


def tracking_error(n: int, coverage: float, annualization: int) -> pl.Expr:
    """te_n = stdev(R - RB, ddof=1) * sqrt(A): annualized tracking error."""
    return _stat(n, coverage, annualization, "te")


def idiosyncratic_vol(n: int, coverage: float, annualization: int) -> pl.Expr:
    """idio_vol_n = stdev of the regression residual (ddof=1 on the variances) * sqrt(A)."""
    return _stat(n, coverage, annualization, "idio_vol")


def relative_strength(n: int, coverage: float, annualization: int) -> pl.Expr:
    """rel_strength_n = sum(R - RB) over the n bars' valid pairs: log return in excess of the benchmark."""
    return _stat(n, coverage, annualization, "rel_strength")
