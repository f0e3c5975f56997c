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


# --- vectorized audit (append_audit_frame, json_values, json_object) ------------------------------
def _legacy_audit(events: list[dict], now) -> tuple[list[dict], dict[str, list[str]]]:
    """The row-by-row append_audit this replaced (reference): table rows and JSONL lines per file."""
    import hashlib

    rows, by_file = [], {}
    for e in events:
        payload = json.dumps(e.get("payload", {}), sort_keys=True, default=str)
        d = e.get("date")
        ident = json.dumps([e.get("run_id"), e["event_type"], str(d), e.get("symbol"), payload], default=str)
        rows.append({"event_id": hashlib.sha256(ident.encode()).hexdigest()[:24], "ts": now, "run_id": e.get("run_id"),
                     "cycle_id": e.get("cycle_id"), "event_type": e["event_type"], "date": d,
                     "symbol": e.get("symbol"), "payload": payload})
    for r in rows:
        month = r["date"].strftime("%Y-%m") if r["date"] else now.strftime("%Y-%m")
        line = json.dumps({**r, "ts": r["ts"].isoformat(), "payload": json.loads(r["payload"])}, default=str)
        by_file.setdefault(f"audit-{month}.jsonl", []).append(line)
    return rows, by_file


_AWKWARD_FLOATS = [0.0, -0.0, 1.0, 0.1, 1e-4, 9.99e-5, 1e-5, -3.2e-7, 5e-324, 123.456, 1e15, 9.999999999999998e15,
                   1e16, 1.2345678901234568e17, 1e22, float("nan"), float("inf"), float("-inf"), 2.0**53, 1 / 3]


def test_json_values_write_what_json_dumps_writes():
    import numpy as np

    rng = np.random.default_rng(0)
    floats = _AWKWARD_FLOATS + list(10.0 ** rng.uniform(-12, 20, 20000) * rng.choice([-1, 1], 20000)) + [None]
    s = pl.Series("x", floats, dtype=pl.Float64)
    from trading_assets.store.warehouse import json_values

    assert json_values(s).to_list() == [json.dumps(v) for v in floats]
    strings = ["plain", 'quo"te', "back\\slash", "tab\tnew\nline", "caf\u00e9", "\u2603", "", None, "~ !#[]{}", "\x7f"]
    assert json_values(pl.Series("s", strings)).to_list() == [json.dumps(v) for v in strings]
    lists = [["A", "B"], [], None, ["caf\u00e9", 'q"'], ["X"]]
    assert json_values(pl.Series("l", lists, dtype=pl.List(pl.String))).to_list() == [json.dumps(v) for v in lists]
    assert json_values(pl.Series("l", [["A"], [], None], dtype=pl.List(pl.String))).to_list() == ['["A"]', "[]", "null"]
    days = [date(2024, 1, 2), None]
    assert json_values(pl.Series("d", days)).to_list() == [json.dumps(d, default=str) for d in days]
    assert json_values(pl.Series("i", [1, None, -7])).to_list() == ["1", "null", "-7"]
    assert json_values(pl.Series("b", [True, None, False])).to_list() == ["true", "null", "false"]


def test_json_object_is_json_dumps_with_sorted_keys():
    from trading_assets.store.warehouse import json_object, json_values

    rows = [{"b": 1.5e-6, "a": "x", "c": ["P", "Q"]}, {"b": None, "a": 'y"', "c": []}]
    cols = {k: json_values(pl.Series(k, [r[k] for r in rows], dtype=dt))
            for k, dt in (("a", pl.String), ("b", pl.Float64), ("c", pl.List(pl.String)))}
    nested = pl.Series("n", [json.dumps({"z": 1, "k": [1, 2]}, sort_keys=True), "{}"])
    got = json_object({**cols, "nested": nested}).to_list()
    want = [json.dumps({**r, "nested": n}, sort_keys=True) for r, n in zip(rows, [{"z": 1, "k": [1, 2]}, {}])]
    assert got == want


def test_append_audit_matches_the_row_by_row_reference(warehouse, monkeypatch):
    """event_id, table rows and JSONL lines are what the row-by-row implementation wrote."""
    from datetime import datetime

    import trading_assets.store.warehouse as wmod

    now = datetime(2024, 5, 6, 7, 8, 9, 123456)

    class _Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return now

    monkeypatch.setattr(wmod, "datetime", _Clock)
    monkeypatch.setattr(wmod, "_AUDIT_CHUNK", 3)  # several chunks
    events = [
        {"event_type": "decision", "run_id": "r1", "cycle_id": "c", "date": date(2024, 1, 2), "symbol": "AAA",
         "payload": {"x": 1, "w": 1e-5, "nan": float("nan"), "d": date(2024, 1, 1), "s": 'q"\\\u00e9', "l": ["A"]}},
        {"event_type": "order", "run_id": "r1", "cycle_id": None, "date": date(2024, 2, 1), "symbol": None,
         "payload": {"b": {"z": 2, "a": None}}},
        {"event_type": "cycle", "date": None, "payload": {}},
        {"event_type": "fill", "run_id": "r1", "cycle_id": "c", "date": date(2024, 1, 3), "symbol": "B\u00e9",
         "payload": {"price": float("inf")}},
        {"event_type": "fill", "run_id": "r2", "cycle_id": "c", "date": date(2024, 1, 3), "symbol": "C",
         "payload": {"price": 101.25, "tab": "a\tb"}},
    ]
    assert warehouse.append_audit(events) == len(events)
    rows, by_file = _legacy_audit(events, now)
    got = warehouse.read("SELECT * FROM audit_log")
    assert got.rows() == pl.DataFrame(rows, schema=dict(zip(got.columns, got.dtypes))).rows()
    files = sorted(p.name for p in warehouse.audit_dir.iterdir())
    assert files == sorted(by_file)
    for name, lines in by_file.items():
        assert (warehouse.audit_dir / name).read_text(encoding="utf-8").splitlines() == lines


def test_append_audit_frame_takes_payload_text(warehouse):
    frame = pl.DataFrame({"event_type": ["decision", "order"], "run_id": ["r", "r"], "date": [date(2024, 1, 2)] * 2,
                          "symbol": ["A", "B"], "payload": ['{"a": 1}', '{"b": [1, 2]}']})
    assert warehouse.append_audit_frame(frame) == 2
    got = warehouse.read("SELECT symbol, cycle_id, payload FROM audit_log ORDER BY symbol")
    assert got.rows() == [("A", None, '{"a": 1}'), ("B", None, '{"b": [1, 2]}')]
    lines = (warehouse.audit_dir / "audit-2024-01.jsonl").read_text().splitlines()
    assert [json.loads(x)["payload"] for x in lines] == [{"a": 1}, {"b": [1, 2]}]
    assert warehouse.append_audit_frame(frame.clear()) == 0


def test_cancelled_fill_prices_are_null_and_an_old_warehouse_is_migrated(tmp_path):
    """fills.price is nullable; a warehouse made when cancelled fills stored NaN under NOT NULL gets the
    constraint dropped and its NaN prices turned into NULL by ensure_schema (twice: idempotent)."""
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE fills (order_id VARCHAR PRIMARY KEY, date DATE NOT NULL, order_date DATE NOT NULL, symbol VARCHAR NOT NULL, "
        "side VARCHAR NOT NULL, quantity DOUBLE NOT NULL, price DOUBLE NOT NULL, commission DOUBLE NOT NULL, "
        "slippage_cost DOUBLE NOT NULL, status VARCHAR NOT NULL, reason VARCHAR, run_id VARCHAR)"
    )
    con.execute(
        "INSERT INTO fills VALUES ('a', '2024-01-03', '2024-01-02', 'AAA', 'BUY', 10, 'NaN'::DOUBLE, 0, 0, 'CANCELLED', 'x', 'r'), "
        "('b', '2024-01-03', '2024-01-02', 'BBB', 'BUY', 10, 10.5, 1, 0.05, 'FILLED', NULL, 'r')"
    )
    con.close()
    wh = Warehouse(db, tmp_path / "audit")
    wh.ensure_schema()
    wh.ensure_schema()
    rows = dict(wh.read("SELECT order_id, price FROM fills ORDER BY order_id").rows())
    assert rows == {"a": None, "b": 10.5}
    nullable = wh.read("SELECT is_nullable FROM information_schema.columns WHERE table_name = 'fills' AND column_name = 'price'")
    assert nullable["is_nullable"][0] == "YES"
