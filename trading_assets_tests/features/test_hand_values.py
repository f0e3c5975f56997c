"""Hand-computed values for the features TA-Lib lacks: beta/alpha/R-squared/tracking error, EWMA
volatility, cross-sectional ranks, crosses, breakouts, drawdowns."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import stats

from trading_assets.domain import calendar
from trading_assets.domain.features import compute_features
from trading_assets.domain.features import cross_section as xsec
from trading_assets.domain.features import returns as ret
from trading_assets.domain.features import trend
from trading_assets.domain.features._base import C, H, I, MEMBER
from trading_assets.domain.features import oscillators as osc
from trading_assets.settings import FeatureSettings
from trading_assets_tests.features.market import no_actions

SETTINGS = FeatureSettings()


def _bars_from_returns(returns: dict[str, np.ndarray], start=date(2022, 1, 3)) -> pl.DataFrame:
    """Flat bars (O=H=L=C) whose closes have exactly the given daily log returns."""
    n = len(next(iter(returns.values()))) + 1
    days = calendar.sessions(start, date(start.year + 3, 1, 1))[:n]
    frames = []
    for sym, r in returns.items():
        close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
        frames.append(pl.DataFrame({"date": days, "symbol": sym, "open": close, "high": close, "low": close, "close": close, "volume": 1e6}))
    return pl.concat(frames)


def test_beta_alpha_r2_te_on_an_exact_linear_series():
    """y = 2 x + 0.001 exactly: beta 2, corr 1, R^2 1, alpha 0.001 * 252, te = stdev(x + 0.001) sqrt(252)."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 0.01, 70)
    y = 2.0 * x + 0.001
    f = compute_features(_bars_from_returns({"SPY": x, "YYY": y}), no_actions(), "SPY", None, SETTINGS)
    last = f.filter(pl.col("symbol") == "YYY").sort("date").row(-1, named=True)
    w = x[-60:]
    assert last["beta_60"] == pytest.approx(2.0, rel=1e-9)
    assert last["corr_60"] == pytest.approx(1.0, abs=1e-12)
    assert last["r2_60"] == pytest.approx(1.0, abs=1e-12)
    assert last["alpha_60"] == pytest.approx(0.001 * 252, rel=1e-6)
    assert last["te_60"] == pytest.approx(np.std(w + 0.001, ddof=1) * np.sqrt(252), rel=1e-9)
    assert last["idio_vol_60"] == pytest.approx(0.0, abs=1e-6)
    assert last["rel_strength_60"] == pytest.approx(np.sum(y[-60:] - w), rel=1e-9)
    assert last["beta_252"] is None  # only 70 returns: the 252 window is still warming up
    first = f.filter(pl.col("symbol") == "YYY").sort("date")["beta_60"]
    assert first[:60].is_null().all() and first[60] is not None


def test_beta_family_matches_scipy_linregress_on_noisy_series():
    rng = np.random.default_rng(9)
    x = rng.normal(0.0003, 0.011, 300)
    y = 0.7 * x + rng.normal(0.0002, 0.008, 300)
    f = compute_features(_bars_from_returns({"SPY": x, "NNN": y}), no_actions(), "SPY", None, SETTINGS)
    last = f.filter(pl.col("symbol") == "NNN").sort("date").row(-1, named=True)
    for n in (60, 252):
        xs, ys = x[-n:], y[-n:]
        fit = stats.linregress(xs, ys)
        assert last[f"beta_{n}"] == pytest.approx(fit.slope, rel=1e-9)
        assert last[f"corr_{n}"] == pytest.approx(fit.rvalue, rel=1e-9)
        assert last[f"r2_{n}"] == pytest.approx(fit.rvalue**2, rel=1e-9)
        assert last[f"alpha_{n}"] == pytest.approx(fit.intercept * 252, rel=1e-7)
        assert last[f"te_{n}"] == pytest.approx(np.std(ys - xs, ddof=1) * np.sqrt(252), rel=1e-9)
    resid = y[-60:] - (stats.linregress(x[-60:], y[-60:]).intercept + stats.linregress(x[-60:], y[-60:]).slope * x[-60:])
    assert last["idio_vol_60"] == pytest.approx(np.std(resid, ddof=1) * np.sqrt(252), rel=1e-7)


def test_beta_coverage_rule_when_the_benchmark_misses_sessions():
    """Pairs need both returns; with 10% of the window missing (settings.beta_min_coverage = 0.9) beta
    is still defined and equals the regression on the remaining pairs; with more it is null."""
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 0.01, 80)
    y = 1.5 * x + rng.normal(0.0, 0.004, 80)
    bars = _bars_from_returns({"SPY": x, "KKK": y})
    days = bars["date"].unique().sort()
    missing = [days[70]]  # removes the benchmark returns of bars 70 and 71 (both ends unknown)
    f = compute_features(bars.filter(~((pl.col("symbol") == "SPY") & pl.col("date").is_in(missing))), no_actions(), "SPY", None, SETTINGS)
    last = f.filter(pl.col("symbol") == "KKK").sort("date").row(-1, named=True)
    keep = np.ones(60, dtype=bool)
    keep[[60 - 11, 60 - 10]] = False  # returns 70 and 71 of 80 are bars 70, 71: positions 49, 50 of the last 60
    xs, ys = x[-60:][keep], y[-60:][keep]
    assert last["beta_60"] == pytest.approx(stats.linregress(xs, ys).slope, rel=1e-9)
    many = [days[k] for k in range(30, 75, 3)]  # 15 missing bars -> ~30 lost pairs of 60
    g = compute_features(bars.filter(~((pl.col("symbol") == "SPY") & pl.col("date").is_in(many))), no_actions(), "SPY", None, SETTINGS)
    assert g.filter(pl.col("symbol") == "KKK").sort("date")["beta_60"][-1] is None


def test_ewma_vol_follows_its_recursion():
    """s2_1 = r_1^2, s2_t = (1-a) s2_t-1 + a r_t^2; vol = sqrt(252 s2); null before min_obs returns."""
    r = np.array([0.01, -0.02, 0.015, 0.0, -0.005, 0.03, -0.01, 0.02] * 4)
    f = compute_features(_bars_from_returns({"EEE": r}), no_actions(), "SPY", None, SETTINGS).sort("date")

    def recursion(alpha):
        s2, out = None, []
        for x in r:
            s2 = x * x if s2 is None else (1 - alpha) * s2 + alpha * x * x
            out.append(np.sqrt(252 * s2))
        return np.array(out)

    # bar 0 has no return, so bar k carries the k-th return
    exp20 = recursion(2 / 21)
    got20 = f["ewma_vol_20"].to_numpy()
    assert np.isnan(got20[:20]).all()
    np.testing.assert_allclose(got20[20:], exp20[19:], rtol=1e-12)
    exp_fast = recursion(1 - SETTINGS.ewma_lambda_fast)
    np.testing.assert_allclose(f["ewma_vol_fast"].to_numpy()[SETTINGS.ewma_min_obs :], exp_fast[SETTINGS.ewma_min_obs - 1 :], rtol=1e-12)
    # constant |r|: the EWMA variance is r^2 whatever the weights
    const = compute_features(_bars_from_returns({"CON": np.array([0.01, -0.01] * 15)}), no_actions(), "SPY", None, SETTINGS).sort("date")
    assert const["ewma_vol_20"][-1] == pytest.approx(0.01 * np.sqrt(252), rel=1e-12)


def test_percentile_rank_by_hand():
    frame = pl.DataFrame(
        {
            "date": [1, 1, 1, 1, 1, 2, 3, 3],
            "symbol": ["a", "b", "c", "d", "e", "a", "a", "b"],
            "x": [3.0, 1.0, 2.0, 2.0, None, 5.0, 1.0, 1.0],
            MEMBER: True,
        }
    )
    got = frame.with_columns(xsec.percentile_rank("x").alias("r"), xsec.xs_zscore("x").alias("z"), xsec.xs_demean("x").alias("d"))
    # session 1: values 1, 2, 2, 3 -> ranks 1, 2.5, 2.5, 4 -> (rank-1)/3; session 2: one value -> null;
    # session 3: a tie of two -> both 0.5
    assert got["r"].to_list() == [1.0, 0.0, 0.5, 0.5, None, None, 0.5, 0.5]
    sd = np.std([3.0, 1.0, 2.0, 2.0], ddof=1)
    assert got["z"][0] == pytest.approx((3.0 - 2.0) / sd) and got["z"][5] is None and got["z"][6] is None
    assert got["d"].to_list()[:4] == [1.0, -1.0, 0.0, 0.0]
    # a non-member (the benchmark) is left out of the session and gets null
    masked = frame.with_columns(pl.col("symbol").ne("a").alias(MEMBER)).with_columns(xsec.percentile_rank("x").alias("r"))
    assert masked["r"].to_list()[:5] == [None, 0.0, 0.75, 0.75, None]


def test_ranks_in_compute_are_the_sessions_percentiles():
    rng = np.random.default_rng(4)
    rets = {s: rng.normal(0.0005 * k, 0.01 + 0.004 * k, 300) for k, s in enumerate(["R1", "R2", "R3", "R4", "R5"])}
    rets["SPY"] = rng.normal(0.0, 0.01, 300)
    f = compute_features(_bars_from_returns(rets), no_actions(), "SPY", None, SETTINGS)
    last = f.filter(pl.col("date") == f["date"].max()).sort("symbol")
    members = last.filter(pl.col("symbol") != "SPY")
    vols = members["vol_20"].to_numpy()
    expected = (stats.rankdata(vols) - 1) / (len(vols) - 1)
    np.testing.assert_allclose(members["vol_rank_20"].to_numpy(), expected)
    rsi = members["rsi_14"].to_numpy()
    np.testing.assert_allclose(members["rank_rsi_14"].to_numpy(), (stats.rankdata(rsi) - 1) / 4)
    assert last.filter(pl.col("symbol") == "SPY")["vol_rank_20"][0] is None  # the benchmark is not ranked


def test_golden_and_death_cross_by_hand():
    frame = pl.DataFrame(
        {
            "symbol": ["a"] * 6,
            "fast": [None, 1.0, 3.0, 3.0, 1.0, 1.0],
            "slow": [None, 2.0, 2.0, 2.0, 2.0, 2.0],
        }
    )
    got = frame.with_columns(
        trend.cross_up("fast", "slow").alias("golden"), trend.cross_down("fast", "slow").alias("death"), trend.above("fast", "slow").alias("above")
    )
    assert got["golden"].to_list() == [None, None, 1.0, 0.0, 0.0, 0.0]
    assert got["death"].to_list() == [None, None, 0.0, 0.0, 1.0, 0.0]
    assert got["above"].to_list() == [None, 0.0, 1.0, 1.0, 0.0, 0.0]


def test_breakout_drawdown_and_max_drawdown_by_hand():
    close = [10.0, 12.0, 9.0, 11.0, 13.0, 6.0, 7.0]
    high = [10.5, 12.5, 9.5, 11.5, 12.9, 6.5, 7.5]
    frame = pl.DataFrame({"symbol": ["a"] * 7, C: close, H: high, I: list(range(7))})
    got = frame.with_columns(
        osc.breakout(3).alias("bo"), ret.drawdown(3).alias("dd"), ret.max_drawdown_proxy(3).alias("mdd")
    )
    # breakout_3 at t: close_t > max(high_t-3..t-1): t=3: 11 > max(10.5, 12.5, 9.5)? no; t=4: 13 > 12.5 yes
    assert got["bo"].to_list() == [None, None, None, 0.0, 1.0, 0.0, 0.0]
    # dd_3: close / max(close of 3) - 1: t=2: 9/12 - 1; t=5: 6/13 - 1
    assert got["dd"][2] == pytest.approx(9 / 12 - 1) and got["dd"][5] == pytest.approx(6 / 13 - 1) and got["dd"][1] is None
    # max_dd_3 at t=6: max over j=4,5,6 of 1 - c_j / max(c over the 3 bars ending j) = max(0, 1-6/13, 1-7/13)
    assert got["mdd"][6] == pytest.approx(1 - 6 / 13)
    assert got["mdd"][3] == pytest.approx(max(0.0, 1 - 9 / 12, 1 - 11 / 12))
