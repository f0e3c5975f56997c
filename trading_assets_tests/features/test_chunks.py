"""window_chunks (the features asset's chunked computation) and replace_window_in_chunks (its chunked,
one-transaction write): the same bits as compute_features / Warehouse.replace_window."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_assets.store.staged_writes import replace_window_in_chunks
from trading_assets.domain.features import compute_features
from trading_assets.domain.features.compute import window_chunks
from trading_assets.settings import FeatureSettings
from trading_assets_tests.features.market import ACTION_SCHEMA, make_bars

SETTINGS = FeatureSettings()
SYMBOLS = [f"S{i:02d}" for i in range(11)]


def _bits(frame: pl.DataFrame) -> str:
    """Hash of every column's bytes and null mask: equal only for bit-identical frames (NaN included)."""
    h = hashlib.sha256()
    for name in frame.columns:
        s = frame[name]
        h.update(f"{name}:{s.dtype}".encode())
        h.update("\x00".join(s.fill_null("<null>").to_list()).encode() if s.dtype == pl.String else s.to_numpy().tobytes())
        h.update(s.is_null().to_numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def inputs():
    bars = make_bars(SYMBOLS, date(2021, 1, 4), 420)
    days = bars["date"].unique().sort()
    # a late starter, a hole in the benchmark, an incomplete bar, an overflow, shuffled rows
    bars = bars.filter(~((pl.col("symbol") == "S03") & (pl.col("date") < days[150])))
    bars = bars.filter(~((pl.col("symbol") == "SPY") & (pl.col("date") == days[300])))
    bars = bars.with_columns(
        pl.when((pl.col("symbol") == "S05") & (pl.col("date") == days[260])).then(None).otherwise(pl.col("close")).alias("close"),
        pl.when((pl.col("symbol") == "S06") & (pl.col("date") == days[-2])).then(1e307).otherwise(pl.col("volume")).alias("volume"),
    ).sample(fraction=1.0, shuffle=True, seed=5)
    actions = pl.DataFrame(
        {"date": [days[200], days[310]], "symbol": ["S01", "S08"], "action": ["split", "dividend"], "value": [2.0, 0.5], "price_factor": [0.5, 0.99]},
        schema=ACTION_SCHEMA,
    )
    bad = pl.DataFrame({"date": [days[290], days[-1]], "symbol": ["S02", "S09"]})
    return bars, actions, bad, days


@pytest.fixture(scope="module")
def whole(inputs):
    bars, actions, bad, _ = inputs
    return compute_features(bars, actions, "SPY", bad, SETTINGS)


@pytest.mark.parametrize("chunk", [1, 4, 1000])
@pytest.mark.parametrize("window", [(0, -1), (-1, -1), (250, 300), (2, 2)])
def test_chunks_are_the_whole_computation_bit_for_bit(inputs, whole, chunk, window):
    bars, actions, bad, days = inputs
    start, end = days[window[0]], days[window[1]]
    parts = list(window_chunks(bars, actions, "SPY", bad, SETTINGS, start, end, chunk_symbols=chunk))
    assert all(p["symbol"].n_unique() <= chunk for p in parts)
    got = pl.concat(parts)
    expected = whole.filter(pl.col("date").is_between(start, end))
    assert got.height == expected.height > 0
    assert got.equals(expected) and _bits(got) == _bits(expected)


def test_chunks_limited_to_symbols_keep_the_universe_ranks(inputs, whole):
    bars, actions, bad, days = inputs
    only = ["S00", "S07", "SPY"]
    got = pl.concat(list(window_chunks(bars, actions, "SPY", bad, SETTINGS, days[-5], days[-1], symbols=only, chunk_symbols=3)))
    expected = whole.filter(pl.col("date").is_between(days[-5], days[-1]) & pl.col("symbol").is_in(only))
    assert _bits(got) == _bits(expected)


def test_chunks_without_the_benchmark_and_on_empty_bars(inputs):
    bars, actions, bad, days = inputs
    no_spy = bars.filter(pl.col("symbol") != "SPY")
    got = pl.concat(list(window_chunks(no_spy, actions, "SPY", bad, SETTINGS, days[0], days[-1], chunk_symbols=2)))
    assert _bits(got) == _bits(compute_features(no_spy, actions, "SPY", bad, SETTINGS))
    assert list(window_chunks(bars.head(0), actions, "SPY", None, SETTINGS, days[0], days[-1])) == []
    with pytest.raises(ValueError, match="duplicate"):
        list(window_chunks(pl.concat([bars, bars.head(1)]), actions, "SPY", None, SETTINGS, days[0], days[-1]))


def _frames(n: int, fail_at: int | None = None):
    days = [date(2024, 1, 2), date(2024, 1, 3)]
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("boom")
        yield pl.DataFrame({"date": days, "symbol": [f"X{i}"] * 2, "history_rows": [1, 2], "rsi_14": [np.nan, float(i)]}).with_columns(pl.col("history_rows").cast(pl.Int32))


@pytest.mark.parametrize("in_memory_max_rows", [1_000_000, 0, 3])  # all in memory, all Parquet, switch mid-window
def test_replace_window_in_chunks_is_one_transaction(warehouse, monkeypatch, in_memory_max_rows):
    import trading_assets.store.staged_writes as staged_writes

    monkeypatch.setattr(staged_writes, "STAGE_IN_MEMORY_MAX_ROWS", in_memory_max_rows)
    warehouse.ensure_columns("features", {"rsi_14": "DOUBLE"})
    whole = pl.concat(list(_frames(3)))
    warehouse.replace_window("features", whole, date(2024, 1, 2), date(2024, 1, 3))
    reference = warehouse.table_hash("features")
    assert replace_window_in_chunks(warehouse, "features", _frames(3), date(2024, 1, 2), date(2024, 1, 3)) == 6
    assert warehouse.table_hash("features") == reference
    # a failure while the chunks are produced leaves the table as it was
    with pytest.raises(RuntimeError, match="boom"):
        replace_window_in_chunks(warehouse, "features", _frames(3, fail_at=2), date(2024, 1, 2), date(2024, 1, 3))
    assert warehouse.table_hash("features") == reference
    with pytest.raises(ValueError, match="outside the window"):
        replace_window_in_chunks(warehouse, "features", _frames(1), date(2024, 1, 3), date(2024, 1, 3))
    assert warehouse.table_hash("features") == reference
    # limited to symbols: the others stay
    replace_window_in_chunks(warehouse, "features", iter([whole.filter(pl.col("symbol") == "X1")]), date(2024, 1, 2), date(2024, 1, 3), symbols=["X1"])
    assert warehouse.table_hash("features") == reference
    assert replace_window_in_chunks(warehouse, "features", iter([]), date(2024, 1, 2), date(2024, 1, 3), symbols=["X2"]) == 0
    assert warehouse.read("SELECT count(*) AS n FROM features")["n"][0] == 4
    nan = warehouse.read("SELECT rsi_14 FROM features WHERE symbol = 'X0' AND date = '2024-01-02'")["rsi_14"][0]
    assert np.isnan(nan)
    # rows land in chunk order whichever way they were staged
    replace_window_in_chunks(warehouse, "features", _frames(3), date(2024, 1, 2), date(2024, 1, 3))
    assert warehouse.read("SELECT symbol FROM features")["symbol"].to_list() == ["X0", "X0", "X1", "X1", "X2", "X2"]
