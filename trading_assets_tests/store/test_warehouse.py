"""The warehouse's promises: idempotent partition replace, rollback on error, append-only audit, PIT reads."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from datetime import date

import duckdb
import polars as pl
import pytest

from trading_assets.store.warehouse import Warehouse, WarehouseLockedError

ALL_TABLES = {
    "universe", "price_history", "corporate_actions", "features", "model_outputs", "decisions", "risk_decisions",
    "orders", "fills", "positions", "portfolio", "audit_log", "cycle_meta", "provider_metrics", "data_quality_log",
}


def _bars(days, symbols=("AAA", "BBB"), close=10.0):
    return pl.DataFrame(
        [
            {"date": d, "symbol": s, "open": close, "high": close + 1, "low": close - 1, "close": close,
             "adj_close": close, "volume": 1000.0, "duplicate_count": 0, "provider": "synthetic", "is_synthetic": True}
            for d in days for s in symbols
        ]
    )


def test_schema_has_every_table_and_is_idempotent(warehouse):
    warehouse.ensure_schema()  # twice: no error
    tables = set(warehouse.read("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'")["table_name"])
    assert ALL_TABLES <= tables


def test_replace_window_is_idempotent(warehouse):
    days = [date(2024, 1, 2), date(2024, 1, 3)]
    for _ in range(3):
        warehouse.replace_window("price_history", _bars(days), days[0], days[-1])
    assert warehouse.read("SELECT count(*) AS n FROM price_history")["n"][0] == 4


def test_replace_window_touches_only_its_window(warehouse):
    warehouse.replace_window("price_history", _bars([date(2024, 1, 2)], close=1.0), date(2024, 1, 2), date(2024, 1, 2))
    warehouse.replace_window("price_history", _bars([date(2024, 1, 3)], close=2.0), date(2024, 1, 3), date(2024, 1, 3))
    warehouse.replace_window("price_history", _bars([date(2024, 1, 3)], close=3.0), date(2024, 1, 3), date(2024, 1, 3))
    got = dict(warehouse.read("SELECT date, max(close) AS c FROM price_history GROUP BY date ORDER BY date").rows())
    assert got == {date(2024, 1, 2): 1.0, date(2024, 1, 3): 3.0}


def test_failed_write_leaves_previous_rows_intact(warehouse):
    days = [date(2024, 1, 2)]
    warehouse.replace_window("price_history", _bars(days, close=5.0), days[0], days[0])
    before = warehouse.table_hash("price_history")
    broken = _bars(days, close=6.0).with_columns(pl.lit(None, dtype=pl.String).alias("provider"))  # NOT NULL violated
    with pytest.raises(duckdb.Error):
        warehouse.replace_window("price_history", broken, days[0], days[0])
    assert warehouse.table_hash("price_history") == before
    assert warehouse.read("SELECT close FROM price_history")["close"].to_list() == [5.0, 5.0]


def test_rows_outside_the_window_are_refused(warehouse):
    with pytest.raises(ValueError, match="outside the window"):
        warehouse.replace_window("price_history", _bars([date(2024, 1, 4)]), date(2024, 1, 2), date(2024, 1, 3))


def test_audit_is_append_only_and_mirrored_to_jsonl(warehouse):
    ev = {"event_type": "decision", "run_id": "r1", "cycle_id": "c", "date": date(2024, 1, 2), "symbol": "AAA", "payload": {"x": 1}}
    warehouse.append_audit([ev])
    warehouse.append_audit([{**ev, "run_id": "r2"}])
    rows = warehouse.read("SELECT run_id, payload FROM audit_log ORDER BY run_id")
    assert rows["run_id"].to_list() == ["r1", "r2"]
    assert json.loads(rows["payload"][0]) == {"x": 1}
    lines = (warehouse.audit_dir / "audit-2024-01.jsonl").read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == ["r1", "r2"]


def test_point_in_time_read_never_returns_later_rows(warehouse):
    days = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]
    warehouse.replace_window("price_history", _bars(days), days[0], days[-1])
    got = warehouse.read_window("price_history", date(2024, 1, 1), date(2024, 1, 3))
    assert got["date"].max() == date(2024, 1, 3)


def test_symbols_go_in_as_parameters_not_sql(warehouse):
    warehouse.replace_window("price_history", _bars([date(2024, 1, 2)]), date(2024, 1, 2), date(2024, 1, 2))
    got = warehouse.read_window("price_history", date(2024, 1, 1), date(2024, 1, 3), symbols=["AAA' OR '1'='1"])
    assert got.height == 0


def _hold_write_lock(path, seconds, ready):
    con = duckdb.connect(path)
    ready.set()
    time.sleep(seconds)
    con.close()


def test_reader_retries_while_a_writer_holds_the_lock(warehouse):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_write_lock, args=(str(warehouse.db_path), 1.5, ready))
    p.start()
    try:
        assert ready.wait(30)
        impatient = Warehouse(warehouse.db_path, lock_timeout_s=0.2)
        with pytest.raises(WarehouseLockedError, match="locked by another writing process"):
            impatient.read("SELECT 1 AS x")
        patient = Warehouse(warehouse.db_path, lock_timeout_s=60)
        assert patient.read("SELECT 1 AS x")["x"][0] == 1  # succeeds once the writer lets go
    finally:
        p.join(30)
