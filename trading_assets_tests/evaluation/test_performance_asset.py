"""The performance asset through Dagster on the book's hand-made market: tables, check, plots in the
metadata, point in time (prices changed after t change no row <= t) and run-boundary independence."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from trading_assets.defs.performance import CHECK_ATTRIBUTION_RECONCILES, TABLES
from trading_assets.defs.performance import performance as performance_asset
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.store.warehouse import Warehouse
from trading_assets_tests.execution.book_fixtures import WINDOW, fill_market, materialize_book


def _spy_drift(wh: Warehouse) -> None:
    """The fixture's SPY is flat: give it a path so beta and tracking error are defined."""
    with wh.connect() as con:
        con.execute("UPDATE price_history SET adj_close = 400 * (1 + 0.003 * ((day(date) * 7) % 5 - 2)) "
                    "WHERE symbol = 'SPY'")


def _materialize_performance(wh: Warehouse, first, last):
    return dg.materialize(
        [performance_asset],
        resources={"warehouse": WarehouseResource(db_path=str(wh.db_path), audit_dir=str(wh.audit_dir)),
                   "pipeline": PipelineConfig()},
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": last.isoformat()},
        raise_on_error=True,
    )


def _tables(wh: Warehouse) -> dict[str, pl.DataFrame]:
    keys = {"performance": ["date"], "performance_metrics": ["date", "series", "horizon"],
            "performance_attribution": ["date", "dimension", "bucket"]}
    return {t: wh.read(f"SELECT * FROM {t}").drop("run_id").sort(keys[t]) for t in TABLES}


@pytest.fixture
def market(warehouse):
    fill_market(warehouse)
    _spy_drift(warehouse)
    materialize_book(warehouse, WINDOW[0], WINDOW[-1])
    return warehouse


def test_performance_tables_check_and_plots(market):
    res = _materialize_performance(market, WINDOW[0], WINDOW[-1])
    t = _tables(market)
    port = market.read("SELECT date, nav FROM portfolio ORDER BY date")
    p = t["performance"]
    assert p["date"].to_list() == WINDOW and p["nav"].to_list() == port["nav"].to_list()
    assert p["turnover"][0] == 0 and p["turnover"][1] > 0  # decided on the first session, filled at the next open
    assert p["costs"][1] > 0
    assert (p["gross_return"] >= p["net_return"]).all() and p["benchmark_return"].null_count() == 1
    m = t["performance_metrics"]
    assert set(m["series"]) == {"book", "book_gross", "benchmark", "equal_weight"}
    assert m.height == len(WINDOW) * 4 * 3
    assert m.filter(pl.col("horizon") != "inception")["sharpe"].null_count() == m.filter(pl.col("horizon") != "inception").height
    a = t["performance_attribution"]
    by = a.group_by("date", "dimension").agg(pl.col("pnl").sum()).join(
        p.select("date", (pl.col("nav") - pl.col("nav_prev")).alias("dnav")), on="date")
    assert (by["pnl"] - by["dnav"]).abs().max() < 1e-6
    assert {"EXECUTE_BUY", "EXECUTE_SELL"} <= set(a.filter(pl.col("dimension") == "decision")["bucket"])
    checks = res.get_asset_check_evaluations()
    assert [c.check_name for c in checks] == [CHECK_ATTRIBUTION_RECONCILES] and checks[0].passed
    events = {m.partition: m.metadata for m in res.asset_materializations_for_node("performance")}
    assert sorted(events) == [d.isoformat() for d in WINDOW]
    last = events[WINDOW[-1].isoformat()]  # the plots only on the last session's materialization
    assert last["plots"].value.count("](data:image/png;base64,iVBOR") == 2
    assert not any("plots" in md for k, md in events.items() if k != WINDOW[-1].isoformat())
    assert "| book (net) | inception |" in last["summary"].value


def test_point_in_time_and_run_boundaries(market, tmp_path):
    _materialize_performance(market, WINDOW[0], WINDOW[-1])
    before = _tables(market)
    t = WINDOW[5]
    # change every price after t, then rerun the book and performance over the whole window
    with market.connect() as con:
        con.execute("UPDATE price_history SET close = close * 1.3, adj_close = adj_close * 0.7, open = open * 1.2 "
                    "WHERE date > ?", [t])
    materialize_book(market, WINDOW[0], WINDOW[-1])
    _materialize_performance(market, WINDOW[0], WINDOW[-1])
    after = _tables(market)
    for name in TABLES:
        b, a = (x.filter(pl.col("date") <= t) for x in (before[name], after[name]))
        assert b.height > 0 and b.equals(a), name
        assert not before[name].filter(pl.col("date") > t).equals(after[name].filter(pl.col("date") > t)), name
    # the window in two runs writes what one run wrote
    with market.connect() as con:
        for name in TABLES:
            con.execute(f"DELETE FROM {name}")
    _materialize_performance(market, WINDOW[0], WINDOW[3])
    _materialize_performance(market, WINDOW[4], WINDOW[-1])
    split = _tables(market)
    for name in TABLES:
        assert split[name].equals(after[name]), name


def test_refuses_a_window_the_book_has_not_walked(market):
    with pytest.raises(dg.Failure, match="materialize the book"):
        from datetime import timedelta

        from trading_assets.domain import calendar

        nxt = calendar.next_session(WINDOW[-1] + timedelta(days=0))
        _materialize_performance(market, WINDOW[0], nxt)
