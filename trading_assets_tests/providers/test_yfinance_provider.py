"""The yfinance provider, offline: the real yf.download code path fed recorded Yahoo v8 chart
responses through a fake session (conftest.FakeYahooSession), plus frames built from real Yahoo
price series (yahoo_price_repair_cases.parquet) through an injected download function."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import polars as pl
import pytest
from curl_cffi.requests import exceptions as curl_exc

from trading_assets.providers.base import (
    ACTION_SCHEMA,
    BAR_SCHEMA,
    EMPTY_RESPONSE,
    MALFORMED_RESPONSE,
    NETWORK_ERROR,
    RATE_LIMITED,
    TIMEOUT,
    Provider,
    ProviderError,
)
from trading_assets.providers.yfinance_provider import YFinanceProvider, frame_to_bars
from trading_assets_tests.conftest import SHARED_DATA
from trading_assets_tests.providers.conftest import CHART_DIR, FakeYahooSession

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")


def _chart(name: str) -> dict:
    return json.loads((CHART_DIR / name).read_text())["chart"]["result"][0]


def _day(ts: int) -> date:
    return datetime.fromtimestamp(ts, tz=timezone.utc).date()


def test_ten_aapl_bars_from_the_recorded_chart(yf_offline):
    session = FakeYahooSession({"AAPL": "scheb_historicalData.json"})
    p = YFinanceProvider(session=session)
    assert isinstance(p, Provider) and p.name == "yfinance" and not p.is_synthetic
    r = p.fetch(["AAPL"], date(2024, 9, 30), date(2024, 10, 11))
    assert dict(r.bars.schema) == BAR_SCHEMA and dict(r.actions.schema) == ACTION_SCHEMA
    assert r.bars.height == 10 and r.missing == () and r.actions.height == 0
    res = _chart("scheb_historicalData.json")
    q = res["indicators"]["quote"][0]
    assert r.bars["date"].to_list() == [_day(t) for t in res["timestamp"]]
    for ours, theirs in (("open", "open"), ("high", "high"), ("low", "low"), ("close", "close"), ("volume", "volume")):
        np.testing.assert_allclose(r.bars[ours].to_numpy(), np.asarray(q[theirs], dtype=float), rtol=1e-6)
    np.testing.assert_allclose(r.bars["adj_close"].to_numpy(), res["indicators"]["adjclose"][0]["adjclose"], rtol=1e-6)
    first = r.bars.row(0, named=True)
    assert first["date"] == date(2024, 9, 30) and first["open"] == pytest.approx(230.04, abs=1e-4)
    assert first["volume"] == 54_541_900
    # one chart request for the prices (plus the timezone probe), in our window with the lookback
    price_calls = [c for c in session.chart_calls if "period1" in c[1]]
    assert len(price_calls) == 1 and price_calls[0][1]["events"] == "div,splits,capitalGains"
    # the window is honoured: a shorter request returns only its sessions
    r2 = YFinanceProvider(session=FakeYahooSession({"AAPL": "scheb_historicalData.json"})).fetch(
        ["AAPL"], date(2024, 10, 7), date(2024, 10, 9)
    )
    assert r2.bars["date"].to_list() == [date(2024, 10, 7), date(2024, 10, 8), date(2024, 10, 9)]


def test_dividends_from_the_monthly_fixture(yf_offline):
    p = YFinanceProvider(session=FakeYahooSession({"AAPL": "scheb_dividendData.json"}))
    r = p.fetch(["AAPL"], date(2019, 11, 1), date(2024, 10, 31))
    res = _chart("scheb_dividendData.json")
    divs = r.actions.filter(pl.col("action") == "dividend")
    assert divs.height == len(res["events"]["dividends"]) == 20
    assert sorted(divs["value"].to_list()) == sorted(e["amount"] for e in res["events"]["dividends"].values())
    # price_factor = 1 - d / previous delivered close (monthly bars here): 2020-02 uses the 2020-01 close
    feb = divs.filter(pl.col("date") == date(2020, 2, 1)).row(0, named=True)
    assert feb["value"] == pytest.approx(0.1925)
    assert feb["price_factor"] == pytest.approx(1 - 0.1925 / 77.37750244140625, rel=1e-9)
    # the first bar's dividend has no previous close in the response: null, never guessed
    assert divs.filter(pl.col("date") == date(2019, 11, 1))["price_factor"].to_list() == [None]
    # raw Close and Yahoo's Adj Close both kept (they differ by the dividends)
    b = r.bars.filter(pl.col("date") == date(2019, 11, 1)).row(0, named=True)
    assert b["close"] == pytest.approx(66.8125) and b["adj_close"] == pytest.approx(64.65072631835938, rel=1e-6)


def test_four_for_one_split_from_the_monthly_fixture(yf_offline):
    p = YFinanceProvider(session=FakeYahooSession({"AAPL": "scheb_splitData.json"}))
    r = p.fetch(["AAPL"], date(2019, 11, 1), date(2024, 10, 31))
    splits = r.actions.filter(pl.col("action") == "split")
    # Yahoo's Close is already split-adjusted: ratio recorded, nothing left to apply
    assert splits.select("symbol", "action", "value", "price_factor").rows() == [("AAPL", "split", 4.0, 1.0)]
    assert splits["date"].item().isoformat()[:7] == "2020-08"
    assert r.bars.height == 61


def test_symbols_absent_from_a_nonempty_response_are_missing(yf_offline):
    session = FakeYahooSession({"AAPL": "scheb_historicalData.json"})  # others: the no-data fixture
    r = YFinanceProvider(session=session, batch_size=2, workers=2).fetch(
        ["AAPL", "CAPIO", "MSFT"], date(2024, 9, 30), date(2024, 10, 11)
    )
    assert r.missing == ("CAPIO", "MSFT")
    assert r.bars["symbol"].unique().to_list() == ["AAPL"] and r.bars.height == 10


def test_unreachable_yahoo_gives_an_empty_frame_and_a_failure(yf_offline):
    dns = curl_exc.DNSError("Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com")
    p = YFinanceProvider(session=FakeYahooSession(fail=dns), sleep=lambda s: None)
    # yfinance itself does not raise: it logs and returns an empty frame ...
    frame = yf_offline.download(
        ["AAPL"], start="2024-09-30", end="2024-10-12", auto_adjust=False, actions=True, group_by="ticker",
        threads=False, progress=False, session=FakeYahooSession(fail=dns),
    )
    assert frame.empty
    # ... which the provider turns into a typed failure naming the logged cause
    with pytest.raises(ProviderError, match="DNSError|Could not resolve") as e:
        p.fetch(["AAPL", "MSFT"], date(2024, 9, 30), date(2024, 10, 11))
    assert e.value.reason == EMPTY_RESPONSE


def test_rate_limit_backs_off_exponentially_then_succeeds(yf_offline):
    sleeps: list[float] = []
    # 429 on the first 4 chart requests: the timezone probe and price request of attempts 1 and 2
    session = FakeYahooSession({"AAPL": "scheb_historicalData.json"}, status_429_first=4)
    p = YFinanceProvider(session=session, max_retries=3, sleep=sleeps.append)
    r = p.fetch(["AAPL"], date(2024, 9, 30), date(2024, 10, 11))
    assert r.bars.height == 10
    assert sleeps == [2.0, 4.0]


def test_rate_limit_exhausted_is_rate_limited(yf_offline):
    sleeps: list[float] = []
    session = FakeYahooSession({"AAPL": "scheb_historicalData.json"}, status_429_first=10_000)
    p = YFinanceProvider(session=session, max_retries=3, sleep=sleeps.append, backoff_s=0.5)
    with pytest.raises(ProviderError) as e:
        p.fetch(["AAPL"], date(2024, 9, 30), date(2024, 10, 11))
    assert e.value.reason == RATE_LIMITED
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (curl_exc.DNSError("Could not resolve host"), NETWORK_ERROR),
        (ConnectionResetError("reset by peer"), NETWORK_ERROR),
        (curl_exc.Timeout("Operation timed out after 20001 milliseconds"), TIMEOUT),
        (TimeoutError("timed out"), TIMEOUT),
        (KeyError("chart"), MALFORMED_RESPONSE),
    ],
)
def test_raised_errors_are_typed(exc, reason):
    def download(*args, **kwargs):
        raise exc

    with pytest.raises(ProviderError) as e:
        YFinanceProvider(download=download).fetch(["AAPL"], date(2024, 9, 30), date(2024, 10, 11))
    assert e.value.reason == reason


def test_parallel_batches_partial_failure_lists_the_failed_batch():
    calls: list[tuple] = []

    def download(symbols, **kwargs):
        calls.append(tuple(symbols))
        if "BAD" in symbols:
            raise curl_exc.DNSError("Could not resolve host")
        idx = pd.DatetimeIndex(["2024-10-01", "2024-10-02"])
        cols = {}
        for s in symbols:
            for k, v in (("Open", 10.0), ("High", 11.0), ("Low", 9.0), ("Close", 10.5), ("Adj Close", 10.4), ("Volume", 1e6)):
                cols[(s, k)] = [v, v + 1]
        return pd.DataFrame(cols, index=idx)

    p = YFinanceProvider(batch_size=2, workers=3, download=download)
    r = p.fetch(["A", "B", "C", "BAD", "E"], date(2024, 10, 1), date(2024, 10, 2))
    assert sorted(calls) == [("A", "B"), ("C", "BAD"), ("E",)]
    assert r.missing == ("C", "BAD")
    assert r.bars["symbol"].unique().sort().to_list() == ["A", "B", "E"] and r.bars.height == 6
    assert r.bars.filter(pl.col("symbol") == "E")["close"].to_list() == [10.5, 11.5]


def _case_frame(case: str) -> tuple[str, pd.DataFrame, pl.DataFrame]:
    """A real Yahoo series from the repair cases, shaped like yf.download(group_by="ticker") output."""
    d = pl.read_parquet(SHARED_DATA / "yahoo_price_repair_cases.parquet").filter(pl.col("case") == case).sort("ts_utc")
    ticker = d["ticker"][0]
    idx = pd.DatetimeIndex([s[:10] for s in d["ts_local"].to_list()])
    cols = {
        (ticker, "Open"): d["open"].to_numpy(),
        (ticker, "High"): d["high"].to_numpy(),
        (ticker, "Low"): d["low"].to_numpy(),
        (ticker, "Close"): d["close"].to_numpy(),
        (ticker, "Adj Close"): d["adj_close"].to_numpy(),
        (ticker, "Volume"): d["volume"].to_numpy(),
        (ticker, "Dividends"): d["dividends"].to_numpy(),
        (ticker, "Stock Splits"): d["stock_splits"].to_numpy(),
    }
    return ticker, pd.DataFrame(cols, index=idx), d


def test_real_yahoo_series_dividends_and_nan_rows():
    if not (SHARED_DATA / "yahoo_price_repair_cases.parquet").exists():
        pytest.skip("yahoo_price_repair_cases.parquet is absent")
    ticker, frame, d = _case_frame("CALM-1d-no-bad-divs")
    first, last = d["ts_local"][0][:10], d["ts_local"][-1][:10]
    bars, actions = frame_to_bars(frame, [ticker], date.fromisoformat(first), date.fromisoformat(last))
    assert bars.height == d.height
    divs = d.with_columns(pl.col("close").shift(1).alias("prev")).filter(pl.col("dividends") > 0)
    assert actions.height == divs.height > 0
    np.testing.assert_allclose(actions["price_factor"], 1 - divs["dividends"] / divs["prev"], rtol=1e-12)
    # padding rows (yfinance re-indexes tickers on the union of dates) are not bars
    padded = pd.concat([frame, pd.DataFrame(np.nan, index=pd.DatetimeIndex(["2030-01-02"]), columns=frame.columns)])
    bars2, _ = frame_to_bars(padded, [ticker], date.fromisoformat(first), date(2030, 12, 31))
    assert bars2.height == d.height


def test_real_yahoo_series_with_a_split_and_null_rows():
    if not (SHARED_DATA / "yahoo_price_repair_cases.parquet").exists():
        pytest.skip("yahoo_price_repair_cases.parquet is absent")
    ticker, frame, d = _case_frame("RGL-L-1d-bad-div")
    bars, actions = frame_to_bars(frame, [ticker], date(2000, 1, 1), date(2030, 1, 1))
    split = actions.filter(pl.col("action") == "split").row(0, named=True)
    assert split["price_factor"] == 1.0 and split["value"] == d.filter(pl.col("stock_splits") > 0)["stock_splits"].item()
    # PSH.L: 2 rows with no price and no volume (Yahoo placeholders; yfinance's keepna=False drops them)
    ticker, frame, d = _case_frame("PSH-L-1d-bad-div")
    bars, _ = frame_to_bars(frame, [ticker], date(2000, 1, 1), date(2030, 1, 1))
    assert bars.height == d.height - 2 and bars["close"].null_count() == 0
    # a bar with SOME fields missing is a bar: kept as delivered, NaN stored as null
    frame.iloc[5, frame.columns.get_loc((ticker, "Open"))] = np.nan
    bars, _ = frame_to_bars(frame, [ticker], date(2000, 1, 1), date(2030, 1, 1))
    assert bars.height == d.height - 2 and bars["open"].null_count() == 1 and bars["open"].is_nan().sum() == 0


def test_frame_without_required_columns_serves_nothing():
    idx = pd.DatetimeIndex(["2024-10-01"])
    frame = pd.DataFrame({("AAA", "Open"): [1.0], ("AAA", "Volume"): [5.0], ("BBB", "Open"): [1.0], ("BBB", "High"): [1.0],
                          ("BBB", "Low"): [1.0], ("BBB", "Close"): [1.0], ("BBB", "Volume"): [1.0]}, index=idx)
    bars, _ = frame_to_bars(frame, ["AAA", "BBB"], date(2024, 10, 1), date(2024, 10, 1))
    assert bars["symbol"].to_list() == ["BBB"] and bars["adj_close"].to_list() == [1.0]


def test_router_falls_back_from_rate_limited_yahoo_to_the_next_provider(yf_offline):
    """The real yfinance code path answering HTTP 429 throughout: RATE_LIMITED, and the router
    serves the symbols from the next provider (here the local files)."""
    from trading_assets.providers.local_files import LocalFilesProvider
    from trading_assets.providers.router import DataRouter

    folder = SHARED_DATA / "prices"
    if not folder.exists():
        pytest.skip(f"{folder} is absent")
    sleeps: list[float] = []
    yahoo = YFinanceProvider(
        session=FakeYahooSession({"AAPL": "scheb_historicalData.json"}, status_429_first=10_000),
        max_retries=2,
        sleep=sleeps.append,
    )
    history = pl.DataFrame(
        {"provider": ["yfinance"] * 40 + ["local"] * 40, "symbols_requested": [5] * 80,
         "symbols_served": [5] * 40 + [0] * 40, "success": [True] * 40 + [False] * 40,
         "quality": [1.0] * 40 + [None] * 40, "latency_ms": [100.0] * 80}
    )
    r = DataRouter([yahoo, LocalFilesProvider(folder)], seed=3, metrics_history=history).route(
        ["AAPL", "MSFT"], date(2017, 1, 3), date(2017, 1, 31)
    )
    assert r.order == ("yfinance", "local")
    assert r.metrics.select("provider", "success", "failure_reason").rows() == [
        ("yfinance", False, RATE_LIMITED),
        ("local", True, None),
    ]
    assert sleeps == [2.0, 4.0]
    assert r.unserved == () and set(r.bars["provider"]) == {"local"} and r.bars.height == 2 * 20
