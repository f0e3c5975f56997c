"""The `features` asset through dg.materialize(): window replace, provenance, checks, quality flags."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_assets.defs.features import (
    CHECK_EVERY_SESSION_HAS_FEATURES,
    CHECK_FINITE_FEATURES,
    FEATURES_LOOKBACK_SESSIONS,
    features_asset,
)
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain.features import FEATURE_NAMES, compute_features, feature_version
from trading_assets.settings import FeatureSettings
from trading_assets_tests.features.market import make_bars, no_actions

HISTORY_START = date(2022, 1, 3)
SYMBOLS = ["AAA", "BBB", "CCC"]


@pytest.fixture
def market() -> pl.DataFrame:
    return make_bars(SYMBOLS, HISTORY_START, 320)


@pytest.fixture
def loaded(warehouse, market, monkeypatch):
    monkeypatch.setenv("TRADING_HISTORY_START", HISTORY_START.isoformat())
    universe = pl.DataFrame(
        {
            "symbol": SYMBOLS + ["SPY"],
            "name": SYMBOLS + ["SPDR S&P 500"],
            "sector": ["Tech", "Energy", "Health", "Benchmark"],
            "is_benchmark": [False, False, False, True],
            "source_file": "test",
        }
    )
    warehouse.replace_table("universe", universe)
    _write_prices(warehouse, market)
    return warehouse


def _write_prices(wh, bars: pl.DataFrame) -> None:
    wh.replace_table(
        "price_history",
        bars.with_columns(pl.col("close").alias("adj_close"), pl.lit("synthetic").alias("provider"), pl.lit(True).alias("is_synthetic")),
    )


def _run(wh, partition: str | None = None, start: str | None = None, end: str | None = None, pipeline: PipelineConfig | None = None):
    resources = {"warehouse": WarehouseResource(db_path=str(wh.db_path), audit_dir=str(wh.audit_dir)), "pipeline": pipeline or PipelineConfig()}
    if partition:
        return dg.materialize([features_asset], partition_key=partition, resources=resources, raise_on_error=False)
    tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    return dg.materialize([features_asset], tags=tags, resources=resources, raise_on_error=False)


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def _table(wh) -> pl.DataFrame:
    return wh.read("SELECT * FROM features ORDER BY date, symbol")


def test_asset_declares_its_lineage_and_checks():
    deps = {d.asset_key.to_user_string(): d.partition_mapping for d in features_asset.get_asset_spec().deps}
    assert set(deps) == {"price_history", "corporate_actions", "data_quality"}
    assert all(m.start_offset == -FEATURES_LOOKBACK_SESSIONS and m.end_offset == 0 for m in deps.values())
    assert {c.name: c.blocking for c in features_asset.check_specs} == {CHECK_EVERY_SESSION_HAS_FEATURES: True, CHECK_FINITE_FEATURES: False}
    assert features_asset.group_names_by_key[dg.AssetKey("features")] == "features"


def test_single_session_then_range_gives_identical_rows(loaded, market):
    days = market["date"].unique().sort()
    last = days[-1]
    result = _run(loaded, partition=str(last))
    assert result.success
    table = _table(loaded)
    assert table.height == 4 and table["date"].unique().to_list() == [last]
    meta = result.asset_materializations_for_node("features")[0].metadata
    assert meta["rows"].value == 4 and meta["feature_count"].value == len(FEATURE_NAMES)
    assert meta["feature_version"].value == feature_version(FeatureSettings())
    assert meta["bars_read"].value == market.height and meta["history_start"].value == str(HISTORY_START)
    assert all(c.passed for c in _checks(result).values())
    assert set(table["feature_version"]) == {feature_version(FeatureSettings())}
    assert table["run_id"][0] == result.run_id and table["computed_at"].is_not_null().all()

    # the same session inside a 5-session range run: identical values (run-boundary independence),
    # and the rerun replaces rather than duplicates
    result = _run(loaded, start=str(days[-5]), end=str(last))
    assert result.success
    ranged = _table(loaded)
    assert ranged.height == 5 * 4 and ranged.select("date", "symbol").is_unique().all()
    volatile = ["computed_at", "run_id"]
    assert ranged.filter(pl.col("date") == last).drop(volatile).equals(table.drop(volatile))

    # the table equals the domain computation on the same bars
    expected = compute_features(market, no_actions(), "SPY", None, FeatureSettings()).filter(pl.col("date") >= days[-5]).sort("date", "symbol")
    assert ranged.select(expected.columns).equals(expected)


def test_quality_failed_bar_is_flagged_and_excluded(loaded, market):
    days = market["date"].unique().sort()
    bad_day, last = days[-3], days[-1]
    loaded.replace_table(
        "data_quality_log",
        pl.DataFrame({"date": [bad_day], "symbol": ["BBB"], "score": [0.2], "passed": [False], "reason_codes": [["RETURN_OUTLIER"]]}),
    )
    assert _run(loaded, start=str(days[-3]), end=str(last)).success
    table = _table(loaded)
    row = table.filter((pl.col("date") == bad_day) & (pl.col("symbol") == "BBB"))
    assert row["quality_flagged"][0] is True and row["rsi_14"][0] is None
    assert table.filter(pl.col("date") != bad_day)["quality_flagged"].sum() == 0
    # the next session's features are computed as if the bad bar did not exist
    without = compute_features(market.filter(~((pl.col("date") == bad_day) & (pl.col("symbol") == "BBB"))), no_actions(), "SPY", None, FeatureSettings())
    nxt = (pl.col("date") == last) & (pl.col("symbol") == "BBB")
    assert table.filter(nxt)["vol_20"][0] == without.filter(nxt)["vol_20"][0]


def test_blocking_check_fails_when_a_session_has_no_rows(loaded, market):
    days = market["date"].unique().sort()
    _write_prices(loaded, market.filter(pl.col("date") != days[-2]))
    result = _run(loaded, start=str(days[-3]), end=str(days[-1]))
    check = _checks(result)[CHECK_EVERY_SESSION_HAS_FEATURES]
    assert not check.passed and check.metadata["empty_sessions"].value == [str(days[-2])]


def test_non_finite_values_are_listed_by_symbol(loaded, market):
    last = market["date"].max()
    huge = market.with_columns(
        pl.when((pl.col("symbol") == "CCC") & (pl.col("date") == last)).then(1e307).otherwise(pl.col("volume")).alias("volume"),
    )
    _write_prices(loaded, huge)
    result = _run(loaded, partition=str(last))
    assert result.success  # non-blocking
    check = _checks(result)[CHECK_FINITE_FEATURES]
    assert not check.passed
    assert check.metadata["symbols_with_non_finite"].value == ["CCC"]
    by_symbol = check.metadata["by_symbol"].value
    assert by_symbol["CCC"]["adv_dollar_1d"] == 1


def test_run_limited_to_symbols_writes_only_those(loaded, market):
    last = str(market["date"].max())
    assert _run(loaded, partition=last).success
    before = _table(loaded)
    result = _run(loaded, partition=last, pipeline=PipelineConfig(symbols=["AAA"]))
    assert result.success
    after = _table(loaded)
    assert after.height == before.height  # others kept, AAA replaced
    assert after.filter(pl.col("symbol") == "AAA")["run_id"][0] == result.run_id
    assert after.filter(pl.col("symbol") == "BBB")["run_id"][0] != result.run_id
    # AAA's cross-sectional ranks are still computed against the whole universe
    cols = [c for c in FEATURE_NAMES]
    assert after.filter(pl.col("symbol") == "AAA").select(cols).equals(before.filter(pl.col("symbol") == "AAA").select(cols))
    bad = _run(loaded, partition=last, pipeline=PipelineConfig(symbols=["NOPE"]))
    assert not bad.success
