"""Every feature with a TA-Lib equivalent equals TA-Lib on real series from ../shared/data.

Tolerance: 1e-6 relative on every row after the first 250 sessions of a series (where TA-Lib's
own seeding differs, as for MACD, the difference has decayed by then); before that, on every row
TA-Lib defines, the recursive indicators with the same seed must agree too (checked at 1e-9).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from trading_assets.domain.features import compute_features
from trading_assets.settings import FeatureSettings
from trading_assets_tests.conftest import SHARED_DATA, requires_shared_data

# Complete series (1,259 sessions), plus DHR (10 missing days in 2015, i.e. a gap inside the series)
# and a late starter (FTV, listed 2016) whose first 250 rows are its first 250 sessions.
SYMBOLS = ("AAPL", "MSFT", "XOM", "JPM", "NVDA", "KO", "DHR", "FTV")
AFTER = 250

EMPTY_ACTIONS = pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "action": pl.String, "value": pl.Float64, "price_factor": pl.Float64})


@pytest.fixture(scope="module")
def real():
    if not (SHARED_DATA / "prices").exists():
        pytest.skip("real data folder is absent")
    bars = pl.read_parquet(SHARED_DATA / "prices" / "sp500_2013_2018.parquet").filter(pl.col("symbol").is_in(SYMBOLS))
    # only complete bars, so that TA-Lib and the features see the same series (incomplete bars are
    # excluded from the series by design; tested in test_compute.py)
    bars = bars.drop_nulls()
    feats = compute_features(bars, EMPTY_ACTIONS, "AAPL", None, FeatureSettings())
    return bars.sort("symbol", "date"), feats.sort("symbol", "date")


def _series(real, symbol):
    bars, feats = real
    b = bars.filter(pl.col("symbol") == symbol)
    f = feats.filter(pl.col("symbol") == symbol)
    assert b.height == f.height and b["date"].equals(f["date"])
    arr = {c: b[c].cast(pl.Float64).to_numpy() for c in ("open", "high", "low", "close", "volume")}
    return arr, f


def _talib_cases(a):
    h, l, c, v = a["high"], a["low"], a["close"], a["volume"]
    up, mid, lo = talib.BBANDS(c, 20, 2.0, 2.0, talib.MA_Type.SMA)
    slowk, slowd = talib.STOCH(h, l, c, 14, 3, talib.MA_Type.SMA, 3, talib.MA_Type.SMA)
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    cases = {
        "trange_1": talib.TRANGE(h, l, c),
        "bb_pctb_20": (c - lo) / (up - lo),
        "bb_width_20": (up - lo) / mid,
        "stoch_k_14": slowk,
        "stoch_d_14": slowd,
        "willr_14": talib.WILLR(h, l, c, 14),
        "mfi_14": talib.MFI(h, l, c, v, 14),
        "cmo_14": talib.CMO(c, 14),
        "macd_12_26": macd,
        "macd_signal_12_26_9": signal,
        "macd_hist_12_26_9": hist,
    }
    for n in (7, 14, 21):
        cases[f"rsi_{n}"] = talib.RSI(c, n)
    for n in (14, 20):
        cases[f"atr_{n}"] = talib.ATR(h, l, c, n)
        cases[f"natr_{n}"] = talib.NATR(h, l, c, n)
    for n in (5, 10, 12, 20, 26, 50, 100, 200):
        cases[f"ema_{n}"] = talib.EMA(c, n)
    for n in (10, 20, 50, 100, 200):
        cases[f"sma_{n}"] = talib.SMA(c, n)
    for n in (5, 10, 20, 60):
        cases[f"roc_{n}"] = talib.ROC(c, n)
    return cases


# features whose seed equals TA-Lib's: equal on every row TA-Lib defines, not only after 250
SAME_SEED = {"macd_12_26", "macd_signal_12_26_9", "macd_hist_12_26_9"}


@requires_shared_data
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_features_equal_talib_on_real_series(real, symbol):
    a, f = _series(real, symbol)
    assert f.height > AFTER + 100, f"{symbol}: series too short to test"
    cases = _talib_cases(a)
    mandatory = {"rsi_7", "rsi_14", "rsi_21", "atr_14", "atr_20", "ema_5", "ema_20", "ema_50", "ema_200", "sma_20", "sma_50",
                 "sma_200", "roc_5", "roc_10", "roc_20", "roc_60", "bb_pctb_20", "stoch_k_14", "stoch_d_14"}
    assert mandatory <= set(cases)
    for name, expected in cases.items():
        got = f[name].to_numpy().astype(float)  # nulls -> nan
        tail = slice(AFTER, None)
        assert np.isfinite(expected[tail]).all() and np.isfinite(got[tail]).all(), f"{symbol} {name}: missing values after {AFTER}"
        np.testing.assert_allclose(got[tail], expected[tail], rtol=1e-6, atol=0, err_msg=f"{symbol} {name}")
        if name not in SAME_SEED:
            # everywhere TA-Lib has a value we have the same one (same seed), and we never have a
            # value where TA-Lib is still warming up, except stoch_k (TA-Lib aligns slowk with slowd)
            defined = np.isfinite(expected)
            np.testing.assert_allclose(got[defined], expected[defined], rtol=1e-9, atol=1e-12, err_msg=f"{symbol} {name} (all rows)")
            if name != "stoch_k_14":
                assert np.array_equal(np.isfinite(got), defined), f"{symbol} {name}: warm-up differs from TA-Lib"
