"""domain/evaluation/performance.py: every metric against empyrical-reloaded on real returns (AAPL from
the S&P folder against SPY's adjusted close, 2013-02-08..2018-02-07) and against hand-computed values."""

from __future__ import annotations

import math
from datetime import date

import empyrical as ep
import numpy as np
import polars as pl
import pytest

from trading_assets.domain import calendar
from trading_assets.domain.evaluation import performance as perf

A = 252


@pytest.fixture(scope="module")
def real_returns():
    from trading_assets_tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "prices").exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    spy = (pl.read_parquet(SHARED_DATA / "benchmark" / "spy_1993_2018.parquet")
           .filter(pl.col("date").is_between(date(2013, 2, 8), date(2018, 2, 7))).sort("date"))
    aapl = (pl.read_parquet(SHARED_DATA / "prices" / "sp500_2013_2018.parquet")
            .filter(pl.col("symbol") == "AAPL").sort("date"))
    j = spy.select("date", pl.col("adj_close").alias("b")).join(aapl.select("date", pl.col("close").alias("r")), on="date")
    r = (j["r"] / j["r"].shift(1) - 1).to_numpy()[1:]
    b = (j["b"] / j["b"].shift(1) - 1).to_numpy()[1:]
    assert len(r) > 1200 and np.isfinite(r).all() and np.isfinite(b).all()
    return r, b


def _empyrical(r: np.ndarray, b: np.ndarray) -> dict[str, float]:
    mdd = -ep.max_drawdown(np.r_[0.0, r])  # the level before the first session counts as a peak
    alpha, beta = ep.alpha_beta(r, b)
    return {
        "cum_return": ep.cum_returns_final(r), "cagr": ep.annual_return(r), "volatility": ep.annual_volatility(r),
        "sharpe": ep.sharpe_ratio(r), "sortino": ep.sortino_ratio(r), "max_drawdown": mdd,
        "calmar": ep.annual_return(r) / mdd, "beta": beta, "alpha": alpha,
        "tracking_error": ep.annual_volatility(r - b), "information_ratio": ep.excess_sharpe(r, b) * math.sqrt(A),
    }


def _ours(m: dict, t: int) -> dict[str, float]:
    return {k: float(m[k][t]) for k in ("cum_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                                        "calmar", "beta", "alpha", "tracking_error", "information_ratio")}


def test_every_metric_matches_empyrical_since_inception(real_returns):
    r, b = real_returns
    dates = calendar.sessions(date(2013, 2, 11), date(2018, 2, 7))[: len(r)]
    m = perf.series_metrics(dates, r, b, None, "inception", None, date(2013, 2, 8))
    for t in (1, 62, 300, len(r) - 1):  # every row is the metric of the returns up to it
        want = _empyrical(r[: t + 1], b[: t + 1])
        got = _ours(m, t)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), (k, t)


@pytest.mark.parametrize("w", [63, 252])
def test_every_metric_matches_empyrical_rolling(real_returns, w):
    r, b = real_returns
    dates = calendar.sessions(date(2013, 2, 11), date(2018, 2, 7))[: len(r)]
    m = perf.series_metrics(dates, r, b, b, f"rolling_{w}", w)
    assert all(math.isnan(m["sharpe"][t]) and math.isnan(m["max_drawdown"][t]) for t in range(w - 1))
    for t in (w - 1, w + 17, len(r) - 1):
        want = _empyrical(r[t + 1 - w: t + 1], b[t + 1 - w: t + 1])
        got = _ours(m, t)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), (k, t)
        assert m["beta_ew"][t] == pytest.approx(want["beta"], rel=1e-9)


def test_max_drawdown_dates_on_real_returns(real_returns):
    r, _ = real_returns
    dates = calendar.sessions(date(2013, 2, 11), date(2018, 2, 7))[: len(r)]
    mdd, peak, trough, rec = perf.drawdown_since_inception(r)
    lv = np.r_[1.0, np.cumprod(1 + r)]
    t = len(r) - 1
    k = int(np.argmax(1 - lv / np.maximum.accumulate(lv)))  # the worst trough (level index)
    assert trough[t] == k and lv[peak[t]] == pytest.approx(lv[: k + 1].max())
    assert rec[t] == k + 1 + int(np.argmax(lv[k + 1:] >= lv[peak[t]]))
    assert mdd[t] == pytest.approx(-ep.max_drawdown(np.r_[0.0, r]), rel=1e-12)
    assert dates[rec[t] - 1] > dates[trough[t] - 1]


def test_hand_computed_tiny_case():
    # r = (+10%, -20%, +5%), b = (+5%, -10%, +1%), three sessions
    d = calendar.sessions(date(2024, 1, 2), date(2024, 1, 5))  # Jan 2 (level 0), 3, 4, 5
    r, b = np.array([0.10, -0.20, 0.05]), np.array([0.05, -0.10, 0.01])
    m = perf.series_metrics(d[1:], r, b, None, "inception", None, d[0])
    # mean = -1/60; sum of squared deviations = 0.0516667, var = 31/1200, sd = 0.1607275
    assert m["sharpe"][2] == pytest.approx(-1 / 60 / math.sqrt(31 / 1200) * math.sqrt(252), rel=1e-12)
    assert m["sharpe"][2] == pytest.approx(-1.6461097835, rel=1e-9)
    assert m["volatility"][2] == pytest.approx(math.sqrt(31 / 1200 * 252), rel=1e-12)
    # downside: sqrt((0 + 0.04 + 0) / 3); sortino = -1/60 * 252 / (sqrt(0.04/3) * sqrt(252)) = -2.2912878
    assert m["sortino"][2] == pytest.approx(-2.2912878475, rel=1e-9)
    # levels 1, 1.1, 0.88, 0.924: cum -7.6%, max DD 1 - 0.88/1.1 = 20%, peak Jan 3, trough Jan 4, no recovery
    assert m["cum_return"][2] == pytest.approx(-0.076, abs=1e-12)
    assert m["max_drawdown"][2] == pytest.approx(0.2, abs=1e-12)
    assert (m["dd_peak_date"][2], m["dd_trough_date"][2], m["dd_recovery_date"][2]) == (d[1], d[2], None)
    assert m["cagr"][2] == pytest.approx(0.924 ** 84 - 1, rel=1e-12)
    assert m["calmar"][2] == pytest.approx((0.924 ** 84 - 1) / 0.2, rel=1e-12)
    # beta = (0.0255/3 - (1/60)(0.04/3)) / (0.0126/3 - (0.04/3)^2) = 0.00827778 / 0.00402222 = 745/362
    assert m["beta"][2] == pytest.approx(745 / 362, rel=1e-12)
    assert m["alpha"][2] == pytest.approx((1 - 1 / 60 + 745 / 362 * 0.04 / 3) ** 252 - 1, rel=1e-9)
    # active a = (0.05, -0.10, 0.04): mean -1/300, var = ((0.05+1/300)^2+(-0.1+1/300)^2+(0.04+1/300)^2)/2
    var_a = ((0.05 + 1 / 300) ** 2 + (-0.1 + 1 / 300) ** 2 + (0.04 + 1 / 300) ** 2) / 2
    assert m["tracking_error"][2] == pytest.approx(math.sqrt(var_a * 252), rel=1e-12)
    assert m["information_ratio"][2] == pytest.approx(-1 / 300 * 252 / math.sqrt(var_a * 252), rel=1e-12)
    # the first row: one session, no dispersion yet
    assert math.isnan(m["sharpe"][0]) and m["cum_return"][0] == pytest.approx(0.10)
    # a fourth session back above 1.1 recovers the drawdown
    m4 = perf.series_metrics(d[1:] + [date(2024, 1, 8)], np.r_[r, 0.20], None, None, "inception", None, d[0])
    assert m4["dd_recovery_date"][3] == date(2024, 1, 8) and m4["dd_peak_date"][3] == d[1]
    # a first-session loss: the peak is the initial capital, dated the session before the first
    m5 = perf.series_metrics(d[1:3], np.array([-0.1, 0.05]), None, None, "inception", None, d[0])
    assert m5["dd_peak_date"][1] == d[0] and m5["max_drawdown"][1] == pytest.approx(0.1)


def test_daily_figures_hand_computed():
    d1, d2 = date(2024, 1, 3), date(2024, 1, 4)
    portfolio = pl.DataFrame({"date": [d1, d2], "nav": [1010.0, 1005.0], "daily_return": [0.01, 1005 / 1010 - 1],
                              "gross_exposure": [505.0, 300.0], "net_exposure": [505.0, -100.0]})
    fills = pl.DataFrame({"date": [d1, d2], "symbol": ["A", "A"], "side": ["BUY", "SELL"], "quantity": [10.0, 4.0],
                          "price": [50.0, 51.0], "commission": [1.0, 1.0], "slippage_cost": [0.25, 0.1],
                          "status": ["FILLED", "FILLED"]})
    bench = pl.DataFrame({"date": [d1, d2], "benchmark_return": [None, 0.02], "ew_return": [0.01, -0.01],
                          "ew_count": [3, 3]}, schema={"date": pl.Date, "benchmark_return": pl.Float64,
                                                       "ew_return": pl.Float64, "ew_count": pl.Int32})
    out = perf.daily_figures(portfolio, perf.fill_totals(fills), bench).to_dicts()
    a, b = out
    assert a["nav_prev"] == pytest.approx(1000.0) and a["net_return"] == pytest.approx(0.01)
    assert a["costs"] == pytest.approx(1.25) and a["cost_fraction"] == pytest.approx(0.00125)
    assert a["gross_return"] == pytest.approx(0.01125) and a["turnover"] == pytest.approx(0.5)
    assert a["gross_exposure"] == pytest.approx(0.5) and a["benchmark_cum_return"] == 0.0
    assert b["nav_prev"] == 1010.0 and b["net_return"] == pytest.approx(1005 / 1010 - 1)
    assert b["commission_fraction"] == pytest.approx(1 / 1010) and b["slippage_fraction"] == pytest.approx(0.1 / 1010)
    assert b["turnover"] == pytest.approx(204 / 1010) and b["net_exposure"] == pytest.approx(-100 / 1005)
    assert b["cum_return"] == pytest.approx(0.005) and b["cum_gross_return"] == pytest.approx(1.01125 * (1005 / 1010 + 1.1 / 1010) - 1)
    assert b["benchmark_cum_return"] == pytest.approx(0.02) and b["ew_cum_return"] == pytest.approx(1.01 * 0.99 - 1)
    assert b["drawdown"] == pytest.approx(1 - 1005 / 1010)


def test_benchmark_and_equal_weight_returns():
    d0, d1, d2 = calendar.sessions(date(2024, 1, 2), date(2024, 1, 4))
    rows = [(d0, "SPY", 100.0), (d1, "SPY", 101.0), (d2, "SPY", 99.99),
            (d0, "X", 10.0), (d1, "X", 11.0),            # no bar at d2: no return at d2
            (d1, "Y", 20.0), (d2, "Y", 22.0),            # starts at d1
            (d0, "Z", 50.0), (d2, "Z", 60.0),            # a gap at d1: no return at d2 either
            (d1, "Q", 0.0), (d2, "Q", 5.0)]              # a zero price is not a price
    bars = pl.DataFrame(rows, schema={"date": pl.Date, "symbol": pl.String, "adj_close": pl.Float64}, orient="row")
    out = perf.benchmark_returns(bars, [d0, d1, d2], "SPY", {"SPY"}).to_dicts()
    assert [o["date"] for o in out] == [d1, d2]
    assert out[0]["benchmark_return"] == pytest.approx(0.01) and out[1]["benchmark_return"] == pytest.approx(-0.01)
    assert out[0]["ew_return"] == pytest.approx(0.1) and out[0]["ew_count"] == 1
    assert out[1]["ew_return"] == pytest.approx(0.1) and out[1]["ew_count"] == 1


def test_attribution_hand_computed():
    t0, t1 = date(2024, 1, 2), date(2024, 1, 3)
    positions = pl.DataFrame({"date": [t0, t0, t1, t1, t1], "symbol": ["A", "B", "A", "B", "C"],
                              "quantity": [10.0, 5.0, 6.0, 5.0, 2.0], "market_value": [1000.0, 250.0, 612.0, 245.0, 62.0]})
    fills = pl.DataFrame({"date": [t1, t1], "symbol": ["A", "C"], "side": ["SELL", "BUY"], "quantity": [4.0, 2.0],
                          "price": [101.0, 30.0], "commission": [1.0, 1.0], "slippage_cost": [0.2, 0.015],
                          "status": ["FILLED", "FILLED"]})
    dividends = pl.DataFrame({"date": [t1], "symbol": ["B"], "value": [0.5]})
    decisions = pl.DataFrame({"date": [t0, t0, t0], "symbol": ["A", "B", "C"],
                              "decision": ["EXECUTE_SELL", "HOLD", "EXECUTE_BUY"]})
    out, recon = perf.attribution([t1], {t1: t0}, positions, fills, dividends, decisions,
                                  {"A": "Tech", "B": "Tech", "C": "Health"}, {t1: 2000.0})
    # A: 612 - 1000 + 4 * 101 - 1 = 15; B: 245 - 250 + 0.5 * 5 = -2.5; C: 62 - 2 * 30 - 1 = 1
    got = {(r["dimension"], r["bucket"]): (r["pnl"], r["n_symbols"], r["contribution"]) for r in out.to_dicts()}
    assert got == {("sector", "Tech"): (pytest.approx(12.5), 2, pytest.approx(12.5 / 2000)),
                   ("sector", "Health"): (pytest.approx(1.0), 1, pytest.approx(1 / 2000)),
                   ("decision", "EXECUTE_SELL"): (pytest.approx(15.0), 1, pytest.approx(15 / 2000)),
                   ("decision", "HOLD"): (pytest.approx(-2.5), 1, pytest.approx(-2.5 / 2000)),
                   ("decision", "EXECUTE_BUY"): (pytest.approx(1.0), 1, pytest.approx(1 / 2000))}
    # the NAV change: cash +404 - 1 - 60 - 1 + 2.5, holdings 919 - 1250: 13.5
    assert recon["pnl"].to_list() == [pytest.approx(13.5)]
