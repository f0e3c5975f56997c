"""The features asset's incremental daily path through Dagster on a real DuckDB file: a range run stores
the state after its last session, a daily run continues it (equal to the full recomputation within
test_incremental.py's tolerance), and every invalidation recomputes the symbol from its first session
(bit for bit the full path): a bar revised or delivered late, a corporate action recorded late, an
inferred action, a changed quality verdict, a feature_version change, a gap in the runs. And point in
time: prices after t change neither the state after t nor the features up to t."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_assets.defs.features import features_asset
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain.features import compute_features
from trading_assets.domain.features.catalog import TRAILING_BARS
from trading_assets.settings import FeatureSettings
from trading_assets_tests.features.market import make_bars, no_actions
from trading_assets_tests.features.test_incremental import compare

HISTORY_START = date(2022, 1, 3)
SYMBOLS = ["AAA", "BBB", "CCC"]
N = TRAILING_BARS + 30


@pytest.fixture
def market() -> pl.DataFrame:
    return make_bars(SYMBOLS, HISTORY_START, N)


@pytest.fixture
def days(market) -> list[date]:
    return market["date"].unique().sort().to_list()


@pytest.fixture
def loaded(warehouse, market, monkeypatch):
    monkeypatch.setenv("TRADING_HISTORY_START", HISTORY_START.isoformat())
    universe = pl.DataFrame({"symbol": SYMBOLS + ["SPY"], "name": SYMBOLS + ["SPDR"], "sector": ["Tech", "Energy", "Health", "Benchmark"],
                             "is_benchmark": [False, False, False, True], "source_file": "test"})  # fmt: skip
    warehouse.replace_table("universe", universe)
    _write_prices(warehouse, market)
    return warehouse


def _write_prices(wh, bars: pl.DataFrame) -> None:
    wh.replace_table("price_history", bars.with_columns(pl.col("close").alias("adj_close"), pl.lit("synthetic").alias("provider"),
                                                        pl.lit(True).alias("is_synthetic")))  # fmt: skip


def _run(wh, start: date, end: date | None = None, overrides: dict | None = None):
    pipeline = PipelineConfig(settings_overrides=overrides) if overrides else PipelineConfig()
    resources = {"warehouse": WarehouseResource(db_path=str(wh.db_path), audit_dir=str(wh.audit_dir)), "pipeline": pipeline}
    if end is None or end == start:
        result = dg.materialize([features_asset], partition_key=str(start), resources=resources)
    else:
        tags = {"dagster/asset_partition_range_start": str(start), "dagster/asset_partition_range_end": str(end)}
        result = dg.materialize([features_asset], tags=tags, resources=resources)
    meta = result.asset_materializations_for_node("features")[0].metadata
    return {"continued": meta["symbols_continued"].value, "recomputed": meta["symbols_recomputed"].value, "bars_read": meta["bars_read"].value}


def _features(wh, day: date) -> pl.DataFrame:
    return wh.read("SELECT * FROM features WHERE date = ? ORDER BY symbol", [day]).drop("feature_version", "computed_at", "run_id")


def _expected(bars, day, actions=None, bad=None) -> pl.DataFrame:
    full = compute_features(bars, no_actions() if actions is None else actions, "SPY", bad, FeatureSettings())
    return full.filter(pl.col("date") == day).sort("date", "symbol")


def test_a_daily_run_continues_the_state_of_the_run_before(loaded, market, days):
    meta = _run(loaded, days[0], days[-3])
    assert meta["continued"] == 0
    state = loaded.read("SELECT * FROM feature_state ORDER BY symbol")
    assert state["as_of"].unique().to_list() == [days[-3]] and state["symbol"].to_list() == ["AAA", "BBB", "CCC", "SPY"]
    assert (state["history_rows"] == N - 2).all() and (state["tail_start"] == days[N - 2 - TRAILING_BARS]).all()

    meta = _run(loaded, days[-2])
    assert meta["continued"] == 4 and meta["recomputed"]["total"] == 0
    assert meta["bars_read"] == 4 * (TRAILING_BARS + 1)  # the tail and the session, not the history
    compare(_features(loaded, days[-2]), _expected(market, days[-2]))
    meta = _run(loaded, days[-1])
    assert meta["continued"] == 4
    compare(_features(loaded, days[-1]), _expected(market, days[-1]))
    # a rerun of the same session continues the same state (the state after days[-2] is kept)
    before = _features(loaded, days[-1])
    assert _run(loaded, days[-1])["continued"] == 4
    assert _features(loaded, days[-1]).equals(before)
    assert loaded.read("SELECT DISTINCT as_of FROM feature_state ORDER BY 1")["as_of"].to_list() == days[-3:]


def _prepared(loaded, days):
    _run(loaded, days[0], days[-2])


@pytest.mark.parametrize("change", ["revised_bar", "late_bar", "late_action", "inferred_action", "verdict"])
def test_a_changed_input_recomputes_the_symbol_from_its_first_session(loaded, market, days, change):
    _prepared(loaded, days)
    old = days[40]  # long before the trailing bars: only the stored recursions remember it
    bars, actions, bad = market, None, None
    if change == "revised_bar":
        bars = market.with_columns(pl.when((pl.col("symbol") == "BBB") & (pl.col("date") == old)).then(pl.col("close") * 1.01)
                                   .otherwise(pl.col("close")).alias("close"))  # fmt: skip
        _write_prices(loaded, bars)
    elif change == "late_bar":  # BBB's bar of `old` was missing when the state was taken, delivered now
        _write_prices(loaded, market.filter(~((pl.col("symbol") == "BBB") & (pl.col("date") == old))))
        _run(loaded, days[0], days[-2])
        _write_prices(loaded, market)
    elif change == "late_action":
        actions = pl.DataFrame({"date": [old], "symbol": ["BBB"], "action": ["dividend"], "value": [0.5], "price_factor": [0.99]})
        loaded.append("corporate_actions", actions.with_columns(pl.lit("synthetic").alias("provider")))
    elif change == "inferred_action":
        loaded.append("inferred_actions", pl.DataFrame({
            "date": [days[45]], "symbol": ["BBB"], "ex_date": [old], "action": ["level_shift"], "ratio": [0.98],
            "price_factor": [0.98], "provenance": ["inferred"]}))  # fmt: skip
        actions = pl.DataFrame({"date": [old], "symbol": ["BBB"], "action": ["level_shift"], "value": [0.98], "price_factor": [0.98]})
    elif change == "verdict":  # a rerun of quality now fails an old bar
        loaded.append("data_quality_log", pl.DataFrame({"date": [old], "symbol": ["BBB"], "score": [0.2], "passed": [False],
                                                        "reason_codes": [["RETURN_OUTLIER"]]}))  # fmt: skip
        bad = pl.DataFrame({"date": [old], "symbol": ["BBB"]})
    meta = _run(loaded, days[-1])
    # BBB recomputed, and the benchmark with it (its whole history feeds BBB's benchmark features)
    assert meta["continued"] == 2
    assert meta["recomputed"] == {"total": 2, "no_state": 0, "other_version": 0, "inputs_changed": 1, "benchmark_for_full": 1}
    got = _features(loaded, days[-1])
    want = _expected(bars, days[-1], actions, bad)
    # the recomputed symbol is the full path's, bit for bit; the continued ones within the tolerance
    full = pl.col("symbol").is_in(["BBB", "SPY"])
    assert got.filter(full).select(want.columns).equals(want.filter(full))
    compare(got.select(want.columns), want)


def test_an_action_on_the_session_itself_keeps_the_state(loaded, market, days):
    # a 2:1 split with ex-date = the daily run's session: point in time, it leaves the bars up to the
    # session before (and the state) unchanged
    _prepared(loaded, days)
    t = days[-1]
    after = (pl.col("symbol") == "CCC") & (pl.col("date") >= t)
    bars = market.with_columns(*(pl.when(after).then(pl.col(c) / 2).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")),
                               pl.when(after).then(pl.col("volume") * 2).otherwise(pl.col("volume")).alias("volume"))  # fmt: skip
    _write_prices(loaded, bars)
    actions = pl.DataFrame({"date": [t], "symbol": ["CCC"], "action": ["split"], "value": [2.0], "price_factor": [0.5]})
    loaded.append("corporate_actions", actions.with_columns(pl.lit("synthetic").alias("provider")))
    assert _run(loaded, t)["continued"] == 4
    compare(_features(loaded, t), _expected(bars, t, actions))


def test_a_feature_version_change_or_a_gap_recomputes_everything(loaded, market, days):
    _run(loaded, days[0], days[-3])
    # a gap: no run for days[-2], so no state after it
    assert _run(loaded, days[-1])["recomputed"] == {"total": 4, "no_state": 4, "other_version": 0, "inputs_changed": 0}
    want = _expected(market, days[-1])
    assert _features(loaded, days[-1]).select(want.columns).equals(want)
    _run(loaded, days[-2])
    meta = _run(loaded, days[-1], overrides={"features": {"ewma_lambda_fast": 0.9}})
    assert meta["recomputed"] == {"total": 4, "no_state": 0, "other_version": 4, "inputs_changed": 0}
    want = compute_features(market, no_actions(), "SPY", None, FeatureSettings(ewma_lambda_fast=0.9))
    want = want.filter(pl.col("date") == days[-1]).sort("date", "symbol")
    assert _features(loaded, days[-1]).select(want.columns).equals(want)


def test_point_in_time_prices_after_t_change_neither_the_state_nor_the_rows_up_to_t(loaded, market, days, tmp_path):
    t = days[-2]
    _run(loaded, days[0], days[-3])
    _run(loaded, t)
    _run(loaded, days[-1])
    state_t = loaded.read("SELECT * EXCLUDE (computed_at, run_id) FROM feature_state WHERE as_of <= ? ORDER BY ALL", [t])
    rows_t = loaded.read("SELECT * EXCLUDE (computed_at, run_id) FROM features WHERE date <= ? ORDER BY date, symbol", [t])
    # the same runs on a market whose prices after t differ
    later = pl.col("date") > t
    _write_prices(loaded, market.with_columns(*(pl.when(later).then(pl.col(c) * 1.3).otherwise(pl.col(c)).alias(c)
                                                for c in ("open", "high", "low", "close"))))  # fmt: skip
    loaded.replace_window("features", pl.DataFrame(schema={"date": pl.Date}), days[0], days[-1])
    loaded.replace_window("feature_state", pl.DataFrame(schema={"as_of": pl.Date}), days[0], days[-1], date_column="as_of")
    _run(loaded, days[0], days[-3])
    assert _run(loaded, t)["continued"] == 4
    _run(loaded, days[-1])
    assert loaded.read("SELECT * EXCLUDE (computed_at, run_id) FROM feature_state WHERE as_of <= ? ORDER BY ALL", [t]).equals(state_t)
    assert loaded.read("SELECT * EXCLUDE (computed_at, run_id) FROM features WHERE date <= ? ORDER BY date, symbol", [t]).equals(rows_t)
    assert not loaded.read("SELECT * EXCLUDE (computed_at, run_id) FROM features WHERE date = ?", [days[-1]]).equals(
        rows_t.filter(pl.col("date") == t))
