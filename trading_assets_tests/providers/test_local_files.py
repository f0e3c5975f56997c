"""The local-files provider on the real S&P 500 folder and on small folders written by the tests."""

from __future__ import annotations

import os
from datetime import date

import polars as pl
import pytest

from trading_assets.providers.base import (
    ACTION_SCHEMA,
    BAR_SCHEMA,
    MALFORMED_RESPONSE,
    NOT_CONFIGURED,
    Provider,
    ProviderError,
)
from trading_assets.providers.local_files import LocalFilesProvider, load_folder
from trading_assets_tests.conftest import requires_shared_data

FULL = (date(2013, 1, 1), date(2018, 12, 31))


@pytest.fixture(scope="module")
def sp500(request):
    from trading_assets_tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "prices"
    if not folder.exists():
        pytest.skip(f"{folder} is absent")
    provider = LocalFilesProvider(folder)
    symbols = pl.read_parquet(folder / "sp500_2013_2018.parquet", columns=["symbol"])["symbol"].unique().sort().to_list()
    return provider, symbols, provider.fetch(symbols, *FULL)


@requires_shared_data
def test_real_folder_loads_as_is(sp500):
    provider, symbols, r = sp500
    assert isinstance(provider, Provider) and provider.name == "local" and not provider.is_synthetic
    assert len(symbols) == 505
    assert r.bars.height == 619_040 and r.bars["symbol"].n_unique() == 505
    assert dict(r.bars.schema) == BAR_SCHEMA and dict(r.actions.schema) == ACTION_SCHEMA
    assert r.actions.height == 0 and r.missing == ()
    assert r.bars["date"].min() == date(2013, 2, 8) and r.bars["date"].max() == date(2018, 2, 7)
    assert r.bars["date"].n_unique() == 1259
    assert r.bars.equals(r.bars.sort(["date", "symbol"], maintain_order=True))
    # no adj_close in the file -> adj_close = close
    assert r.bars.select((pl.col("adj_close") == pl.col("close")) | pl.col("close").is_null()).to_series().all()


@requires_shared_data
def test_real_defects_are_delivered_unchanged(sp500):
    _, _, r = sp500
    b = r.bars

    def row(symbol, day):
        out = b.filter((pl.col("symbol") == symbol) & (pl.col("date") == day))
        assert out.height == 1
        return out.row(0, named=True)

    aos = row("AOS", date(2014, 5, 19))
    assert aos["high"] < aos["low"]
    chd = row("CHD", date(2014, 5, 19))
    assert chd["open"] == pytest.approx(18.77) and chd["low"] > 30
    dhr = row("DHR", date(2016, 1, 12))
    assert dhr["open"] is None and dhr["volume"] == 0
    spg = row("SPG", date(2014, 5, 28))
    assert spg["close"] == pytest.approx(165.42) and spg["low"] == pytest.approx(174.5)
    assert row("DISCA", date(2014, 8, 7))["close"] < 0.6 * row("DISCA", date(2014, 8, 6))["close"]
    assert row("BHF", date(2017, 7, 26))["volume"] == 3
    # late starters keep their late start; a gap stays a gap
    assert b.filter(pl.col("symbol") == "DHR").height < 1259


@requires_shared_data
def test_filters_symbols_and_dates_and_lists_missing(sp500):
    provider, _, _ = sp500
    r = provider.fetch(["MSFT", "AAPL", "NOPE"], date(2014, 1, 2), date(2014, 1, 10))
    assert r.missing == ("NOPE",)
    assert r.bars["symbol"].unique().sort().to_list() == ["AAPL", "MSFT"]
    assert r.bars["date"].unique().sort().to_list() == [date(2014, 1, d) for d in (2, 3, 6, 7, 8, 9, 10)]
    aapl = r.bars.filter((pl.col("symbol") == "AAPL") & (pl.col("date") == date(2014, 1, 2))).row(0, named=True)
    raw = pl.read_parquet(provider.data_dir / "sp500_2013_2018.parquet").filter(
        (pl.col("symbol") == "AAPL") & (pl.col("date") == date(2014, 1, 2))
    ).row(0, named=True)
    assert aapl["close"] == raw["close"] and aapl["volume"] == float(raw["volume"])
    # a window outside the data: nothing served, everything missing (not an error)
    assert provider.fetch(["AAPL"], date(2020, 1, 1), date(2020, 2, 1)).missing == ("AAPL",)


def _write_csv(path, rows):
    pl.DataFrame(rows).write_csv(path)


def test_csv_folder_with_duplicates_actions_and_per_symbol_files(tmp_path):
    _write_csv(
        tmp_path / "long.csv",
        {
            "Date": ["2020-01-02", "2020-01-03", "2020-01-03", "2020-01-06"],
            "Symbol": ["AAA", "AAA", "AAA", "AAA"],
            "Open": [10.0, 11.0, 11.5, 12.0],
            "High": [10.5, 11.2, 11.6, 12.4],
            "Low": [9.5, 10.8, 11.4, 11.9],
            "Close": [10.2, 11.1, 11.5, 12.1],
            "Adj Close": [10.0, 11.0, 11.4, 12.0],
            "Volume": [100, 200, 300, 400],
        },
    )
    # a per-symbol file: no symbol column, the stem names it
    _write_csv(
        tmp_path / "bbb.csv",
        {"date": ["2020-01-02"], "open": [5.0], "high": [5.5], "low": [4.5], "close": [5.2], "volume": [1000]},
    )
    _write_csv(
        tmp_path / "corporate_actions.csv",
        {"date": ["2020-01-03"], "symbol": ["AAA"], "action": ["dividend"], "value": [0.1], "price_factor": [1 - 0.1 / 10.2]},
    )
    r = LocalFilesProvider(tmp_path).fetch(["AAA", "BBB"], date(2020, 1, 1), date(2020, 1, 31))
    aaa = r.bars.filter(pl.col("symbol") == "AAA")
    assert aaa.height == 4  # the duplicate is returned as it is (the router counts it)
    assert aaa.filter(pl.col("date") == date(2020, 1, 3))["open"].to_list() == [11.0, 11.5]  # file order kept
    assert aaa["adj_close"].to_list() == [10.0, 11.0, 11.4, 12.0]
    bbb = r.bars.filter(pl.col("symbol") == "BBB").row(0, named=True)
    assert bbb["adj_close"] == bbb["close"] == 5.2 and bbb["volume"] == 1000.0
    assert r.actions.to_dicts() == [
        {"date": date(2020, 1, 3), "symbol": "AAA", "action": "dividend", "value": 0.1, "price_factor": pytest.approx(1 - 0.1 / 10.2)}
    ]


def test_cache_is_keyed_by_file_mtimes(tmp_path):
    path = tmp_path / "p.csv"
    data = {"date": ["2020-01-02"], "symbol": ["AAA"], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1]}
    _write_csv(path, data)
    first = load_folder(tmp_path)
    assert load_folder(tmp_path)[0] is first[0]  # scanned once
    data["close"] = [2.0]
    _write_csv(path, data)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert LocalFilesProvider(tmp_path).fetch(["AAA"], date(2020, 1, 1), date(2020, 1, 3)).bars["close"].to_list() == [2.0]


def test_missing_and_unconfigured_folders(tmp_path):
    with pytest.raises(ProviderError, match="does not exist") as e:
        LocalFilesProvider(tmp_path / "nowhere").fetch(["AAA"], date(2020, 1, 1), date(2020, 1, 2))
    assert e.value.reason == NOT_CONFIGURED
    with pytest.raises(ProviderError, match="TRADING_LOCAL_DATA_DIR") as e:
        LocalFilesProvider(None).fetch(["AAA"], date(2020, 1, 1), date(2020, 1, 2))
    assert e.value.reason == NOT_CONFIGURED
    with pytest.raises(ProviderError, match="no CSV or Parquet files") as e:
        LocalFilesProvider(tmp_path).fetch(["AAA"], date(2020, 1, 1), date(2020, 1, 2))
    assert e.value.reason == NOT_CONFIGURED


def test_corrupt_and_malformed_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(ProviderError, match="broken.parquet") as e:
        LocalFilesProvider(tmp_path).fetch(["AAA"], date(2020, 1, 1), date(2020, 1, 2))
    assert e.value.reason == MALFORMED_RESPONSE
    bad.unlink()
    _write_csv(tmp_path / "nocols.csv", {"date": ["2020-01-02"], "symbol": ["AAA"], "close": [1.0]})
    with pytest.raises(ProviderError, match=r"nocols.csv: missing column\(s\) open, high, low, volume") as e:
        LocalFilesProvider(tmp_path).fetch(["AAA"], date(2020, 1, 1), date(2020, 1, 2))
    assert e.value.reason == MALFORMED_RESPONSE
    (tmp_path / "nocols.csv").unlink()
    _write_csv(
        tmp_path / "baddate.csv",
        {"date": ["yesterday"], "symbol": ["AAA"], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1]},
    )
    with pytest.raises(ProviderError, match="baddate.csv") as e:
        LocalFilesProvider(tmp_path).fetch(["AAA"], date(2020, 1, 1), date(2020, 1, 2))
    assert e.value.reason == MALFORMED_RESPONSE


def _bars_file(path, symbol: str, closes: list[float], first: date = date(2024, 1, 2)) -> None:
    from trading_assets.domain import calendar

    days = calendar.sessions(first, date(2024, 3, 1))[: len(closes)]
    pl.DataFrame({"date": days, "symbol": [symbol] * len(days), "open": closes, "high": closes, "low": closes,
                  "close": closes, "adj_close": [c * 0.9 for c in closes], "volume": [1000] * len(days)}).write_parquet(path)


def test_several_paths_folders_and_files(tmp_path):
    from trading_assets.providers.local_files import local_paths
    from trading_assets.settings import load_settings

    folder = tmp_path / "stocks"
    folder.mkdir()
    _bars_file(folder / "a.parquet", "AAA", [10.0, 11.0, 12.0])
    bench = tmp_path / "bench" / "spy_1993_2018.parquet"  # one file, its name is not a symbol (the column is)
    bench.parent.mkdir()
    _bars_file(bench, "SPY", [100.0, 101.0, 102.0])
    joined = os.pathsep.join([str(folder), str(bench)])
    assert local_paths(joined) == (folder, bench) and local_paths([folder, str(bench)]) == (folder, bench)
    s = load_settings({"TRADING_LOCAL_DATA_DIR": joined, "TRADING_DATA_DIR": str(tmp_path)})
    assert (s.local_data_dir, s.local_data_extra) == (folder.resolve(), (bench.resolve(),))
    assert load_settings({"TRADING_LOCAL_DATA_DIR": str(folder), "TRADING_DATA_DIR": str(tmp_path)}).local_data_dir == folder.resolve()
    from trading_assets.providers.registry import build_providers

    (registered,) = build_providers(["local"], s)
    for p in (LocalFilesProvider(joined), registered):
        r = p.fetch(["AAA", "SPY", "ZZZ"], date(2024, 1, 1), date(2024, 1, 31))
        assert r.bars.height == 6 and r.missing == ("ZZZ",)
        assert r.bars.filter(pl.col("symbol") == "SPY")["adj_close"].to_list() == pytest.approx([90.0, 90.9, 91.8])
        assert r.bars.equals(r.bars.sort(["date", "symbol"], maintain_order=True))
    # a path that does not exist is a clear NOT_CONFIGURED naming it
    with pytest.raises(ProviderError) as err:
        LocalFilesProvider([folder, tmp_path / "nope.parquet"]).fetch(["AAA"], date(2024, 1, 1), date(2024, 1, 31))
    assert err.value.reason == NOT_CONFIGURED and "nope.parquet" in str(err.value)


def test_cli_takes_repeated_and_joined_data_dirs(tmp_path, monkeypatch):
    from trading_assets import cli

    folder, other = tmp_path / "a", tmp_path / "b.parquet"
    folder.mkdir()
    _bars_file(folder / "x.parquet", "AAPL", [10.0, 11.0])
    _bars_file(other, "SPY", [100.0, 101.0])
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("TRADING_HISTORY_START", "2024-01-02")
    for argv in (["--data-dir", str(folder), "--data-dir", str(other)],
                 ["--data-dir", os.pathsep.join([str(folder), str(other)])]):
        settings, _, _ = cli._build_settings(cli._run_parser().parse_args([*argv, "--date", "2024-01-03"]))
        assert (settings.local_data_dir, settings.local_data_extra) == (folder.resolve(), (other.resolve(),))
        assert settings.providers == ("local",)
    with pytest.raises(cli.CliError, match="no such folder or file"):
        cli._build_settings(cli._run_parser().parse_args(["--data-dir", str(tmp_path / "gone"), "--date", "2024-01-03"]))
