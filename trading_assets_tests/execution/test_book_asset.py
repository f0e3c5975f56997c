"""The book multi-asset materialized through Dagster against a tmp warehouse of hand-made inputs."""

from __future__ import annotations

import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trading_assets.defs import book as book_defs
from trading_assets.defs import book_audit, book_inputs
from trading_assets.domain import execution as ex
from trading_assets.domain import reasons as rc
from trading_assets_tests.execution.book_fixtures import WINDOW, book_tables, fill_market, materialize_book


DIAGONAL = {"portfolio": {"method": "kelly_diagonal"}}


@pytest.fixture
def market(warehouse):
    fill_market(warehouse)
    return warehouse


def test_graph_shape():
    a = book_defs.book
    assert {k.to_user_string() for k in a.keys} == {"risk_decisions", "orders", "positions", "portfolio"}
    # No declared self-dependency: Dagster 1.13's backfill daemon never runs a self-dependent asset with
    # other assets, which would split every UI backfill in two runs. The previous-session state is read,
    # and its absence refused, by the book itself (test_gap_and_live_mode_refuse_before_writing).
    own = set(a.keys)
    for spec in a.specs:
        assert not {d.asset_key for d in spec.deps} & {spec.key}, spec.key
    assert {d.asset_key.to_user_string() for s in a.specs for d in s.deps} - {k.to_user_string() for k in own} == {
        "meta_decisions", "agent_outputs", "features", "price_history", "universe", "corporate_actions"
    }  # agent_outputs: the GARCH sigma of the gate's volatility scaling
    assert {c.name for c in a.check_specs} == {book_defs.CHECK_DECISIONS_WITHIN_LIMITS, book_defs.CHECK_UNIQUE_ORDER_IDS,
                                             book_defs.CHECK_POSITIONS_MATCH_FILLS}


def test_range_run_positions_rerun_and_split_runs(market, tmp_path):
    # the hand-made targets (14% capped, a sell on the 5th session) are the Meta-Brain's: kelly_diagonal
    res = materialize_book(market, WINDOW[0], WINDOW[-1], settings_overrides=DIAGONAL)
    assert all(e.passed for e in res.get_asset_check_evaluations())
    t = book_tables(market)
    rd, fills, pos, port = t["risk_decisions"], t["fills"], t["positions"], t["portfolio"]
    # exactly one final decision per non-benchmark symbol per session
    assert rd.height == 4 * len(WINDOW) and "SPY" not in rd["symbol"].to_list()
    # the name asking for 14% never gets more than 10%; Tech (A + B) never above 15%
    assert rd["approved_weight"].max() <= 0.10 + 1e-9
    tech = rd.filter(pl.col("sector") == "Tech").group_by("date").agg(pl.col("approved_weight").sum())
    assert tech["approved_weight"].max() <= 0.15 + 1e-9
    # C is a pre-risk REJECT on the 4th session: REJECT, no order, position kept
    c4 = rd.filter((pl.col("symbol") == "C") & (pl.col("date") == WINDOW[3])).row(0, named=True)
    assert c4["decision"] == rc.REJECT and c4["order_quantity"] == 0 and rc.DATA_QUALITY in c4["reason_codes"]
    # A's target drops to 2% on the 5th session: a sell
    a5 = rd.filter((pl.col("symbol") == "A") & (pl.col("date") == WINDOW[4])).row(0, named=True)
    assert a5["decision"] == rc.EXECUTE_SELL and a5["order_quantity"] < 0
    # D has no open on the 3rd session: its order from the 2nd is CANCELLED
    d3 = fills.filter((pl.col("symbol") == "D") & (pl.col("date") == WINDOW[2])).row(0, named=True)
    assert d3["status"] == ex.CANCELLED
    # nothing traded, so no price: NULL in the table, never NaN (SQL aggregates would propagate a NaN)
    assert d3["price"] is None and d3["commission"] == 0.0
    nan_prices = market.read("SELECT count(*) AS n FROM fills WHERE isnan(price)")["n"][0]
    null_prices = market.read("SELECT count(*) FILTER (WHERE price IS NULL) AS n, count(*) FILTER (WHERE status = 'CANCELLED') AS c FROM fills")
    assert nan_prices == 0 and null_prices["n"][0] == null_prices["c"][0] >= 1
    # positions = running sum of FILLED fills
    signed = fills.filter(pl.col("status") == ex.FILLED).with_columns(
        pl.when(pl.col("side") == "BUY").then(pl.col("quantity")).otherwise(-pl.col("quantity")).alias("q"))
    for day in WINDOW:
        running = signed.filter(pl.col("date") <= day).group_by("symbol").agg(pl.col("q").sum()).filter(pl.col("q") != 0)
        held = pos.filter(pl.col("date") == day).select("symbol", pl.col("quantity").alias("q"))
        assert dict(running.rows()) == dict(held.rows()), day
    # NAV = cash + market value, every session
    mv = pos.group_by("date").agg(pl.col("market_value").sum())
    chk = port.join(mv, on="date", how="left").with_columns(pl.col("market_value").fill_null(0.0))
    assert (chk["nav"] - chk["cash"] - chk["market_value"]).abs().max() < 1e-6
    assert port["nav"][0] == pytest.approx(1_000_000.0)  # first session: flat book, initial capital
    # audit: every decision, order and fill
    audit = market.read("SELECT event_type, count(*) AS n FROM audit_log GROUP BY 1")
    assert dict(audit.rows()) == {"decision": rd.height, "order": t["orders"].height, "fill": fills.height}
    payload = json.loads(market.read("SELECT payload FROM audit_log WHERE event_type = 'decision' LIMIT 1")["payload"][0])
    assert payload["provenance"]["providers"] == {"synthetic": 5} and payload["provenance"]["feature_version"] == ["fv1"]

    # a rerun of one session in the middle leaves every table identical
    materialize_book(market, WINDOW[5], WINDOW[5], settings_overrides=DIAGONAL)
    t2 = book_tables(market)
    for name in t:
        assert_frame_equal(t[name], t2[name])
    n_audit = market.read("SELECT count(*) AS n FROM audit_log")["n"][0]
    assert n_audit > sum(dict(audit.rows()).values())  # reruns append, never replace

    # [a..c] in one run == [a..b] then [b+1..c]
    from trading_assets.store.warehouse import Warehouse

    other = Warehouse(tmp_path / "split.duckdb", tmp_path / "audit2")
    other.ensure_schema()
    fill_market(other)
    materialize_book(other, WINDOW[0], WINDOW[4], settings_overrides=DIAGONAL)
    materialize_book(other, WINDOW[5], WINDOW[-1], settings_overrides=DIAGONAL)
    t3 = book_tables(other)
    for name in t:
        assert_frame_equal(t[name], t3[name])


def test_gap_and_live_mode_refuse_before_writing(market):
    materialize_book(market, WINDOW[0], WINDOW[1])
    with pytest.raises(Exception, match="materialize"):
        materialize_book(market, WINDOW[4], WINDOW[4])  # sessions 2..3 missing: path dependence
    before = market.table_hash("orders")
    with pytest.raises(Exception, match="no broker is configured"):
        materialize_book(market, WINDOW[2], WINDOW[2], mode="live")
    assert market.table_hash("orders") == before
    assert market.read("SELECT count(*) AS n FROM portfolio")["n"][0] == 2


def test_audit_in_month_chunks_equals_one_chunk(market, monkeypatch):
    """The audit is written a few months at a time: same entries as in one piece, each file written in order."""
    from trading_assets.domain import portfolio as pf
    from trading_assets.settings import load_settings
    from trading_assets.store.warehouse import Warehouse

    settings = load_settings({})
    sessions = WINDOW
    state, _ = book_inputs.load_state_before(market, sessions[0], settings)
    out = pf.run_book(state, book_inputs.session_inputs(market, sessions, settings), settings)
    prov = book_inputs.provenance(market, sessions[0], sessions[-1], settings)
    one = Warehouse(market.db_path.parent / "one.duckdb", market.db_path.parent / "audit_one")
    many = Warehouse(market.db_path.parent / "many.duckdb", market.db_path.parent / "audit_many")
    for wh in (one, many):
        wh.ensure_schema()
    n1 = book_audit.append_audit(one, out, prov, "r", settings)
    monkeypatch.setattr(book_audit, "_AUDIT_EVENTS_PER_CHUNK", 1)
    assert len(book_audit._month_chunks(out, 1)) == 1  # one month in WINDOW: a month is never split
    n2 = book_audit.append_audit(many, out, prov, "r", settings)
    assert n1 == n2 == out.risk_decisions.height + out.orders.height + out.fills.height
    q = "SELECT * EXCLUDE (ts) FROM audit_log ORDER BY ALL"
    assert one.read(q).equals(many.read(q))
    ev = book_audit.audit_events(out, prov, "r", settings)
    d = ev.filter(pl.col("event_type") == "decision").row(0, named=True)
    r = out.risk_decisions.row(0, named=True)
    want = {"decision": r["decision"], "reason_codes": r["reason_codes"], "current_weight": r["current_weight"],
            "target_weight_raw": r["target_weight_raw"], "approved_weight": r["approved_weight"],
            "order_quantity": r["order_quantity"], "adjustments": json.loads(r["adjustments"]),
            "trading_state": r["trading_state"], "pre_risk_decision": r["pre_risk_decision"],
            "provenance": prov.get(r["date"], {})}
    assert d["payload"] == json.dumps(want, sort_keys=True, default=str)
    f = ev.filter(pl.col("event_type") == "fill").row(0, named=True)
    assert f["cycle_id"] == book_inputs.cycle_id_for(out.fills["order_date"][0], settings)
