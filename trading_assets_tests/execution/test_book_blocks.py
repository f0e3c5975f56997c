"""The book in blocks gives what the whole window at once gives: the inputs read a block of sessions
at a time, the walk / writes / audit a few months at a time, the run_book chained over blocks, the
column-wise screens of the checks."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_assets.defs import book_audit, book_checks, book_inputs, book_walk
from trading_assets.domain import calendar
from trading_assets.domain import execution as ex
from trading_assets.domain import portfolio as pf
from trading_assets.domain import reasons as rc
from trading_assets.domain import risk
from trading_assets.settings import load_settings
from trading_assets.store.warehouse import Warehouse
from trading_assets_tests.execution.book_fixtures import book_tables, fill_market, materialize_book
from trading_assets_tests.execution.test_execution import _random_sessions

WINDOW3 = calendar.sessions(date(2024, 2, 20), date(2024, 4, 12))  # three calendar months, 38 sessions


def market3(wh: Warehouse) -> Warehouse:
    """fill_market over WINDOW3, with return gaps: C listed only from mid-window, D missing a stretch."""
    fill_market(wh, WINDOW3)
    with wh.transaction() as con:
        con.execute("DELETE FROM features WHERE symbol = 'C' AND date < ?", [WINDOW3[12]])
        con.execute("DELETE FROM features WHERE symbol = 'D' AND date BETWEEN ? AND ?", [WINDOW3[3], WINDOW3[20]])
        con.execute("UPDATE features SET logret_1 = NULL WHERE symbol = 'B' AND date = ?", [WINDOW3[7]])
    return wh


def test_session_inputs_in_blocks_equal_one_read(warehouse):
    wh, s = market3(warehouse), load_settings({})
    whole = list(book_inputs.session_inputs(wh, WINDOW3, s, block_sessions=10_000))
    for block in (1, 5, 21):
        parts = list(book_inputs.session_inputs(wh, WINDOW3, s, block_sessions=block))
        assert [x.date for x in parts] == WINDOW3
        for a, b in zip(whole, parts):
            assert (a.cycle_id, a.return_symbols, a.sectors) == (b.cycle_id, b.return_symbols, b.sectors)
            for name in ("decisions", "prices", "features", "actions"):
                assert getattr(a, name).equals(getattr(b, name), null_equal=True), (block, a.date, name)
            np.testing.assert_array_equal(a.returns, b.returns, strict=True)
    # the history rolls in: the first session already has its rows (the EVT tail model's longer window), C's column
    # is 0 before it lists
    assert whole[0].returns.shape == (max(s.risk.cvar_lookback, s.risk.tail_lookback), len(whole[0].return_symbols))
    c = whole[0].return_symbols.index("C")
    assert not whole[0].returns[:, c].any() and whole[-1].returns[-5:, c].all()


def test_write_blocks_are_whole_months_within_the_row_budget():
    sessions = calendar.sessions(date(2024, 1, 2), date(2024, 12, 31))
    blocks = book_walk.write_blocks(sessions, 100, 100 * 70)
    assert [d for b in blocks for d in b] == sessions
    for b in blocks:
        months = {(d.year, d.month) for d in b}
        assert len(b) * 100 <= 100 * 70 or len(months) == 1
        for other in blocks:  # no month in two blocks
            assert other is b or not months & {(d.year, d.month) for d in other}
    assert len(blocks) == 4 and book_walk.write_blocks(sessions, 100, 10**9) == [sessions]  # quarters
    assert all(len(b) <= 23 for b in book_walk.write_blocks(sessions, 100, 1))  # a month alone when above it


def test_run_book_chained_over_blocks_equals_one_walk():
    s = load_settings({})
    sessions = _random_sessions()
    whole = pf.run_book(pf.initial_state(s), sessions, s)
    state, parts = pf.initial_state(s), []
    for lo, hi in ((0, 7), (7, 8), (8, 30)):
        out = pf.run_book(state, sessions[lo:hi], s)
        parts.append(out)
        state = out.state
    for name in ("risk_decisions", "orders", "fills", "positions", "portfolio"):
        assert getattr(whole, name).equals(pl.concat([getattr(p, name) for p in parts]), null_equal=True), name
    assert whole.state.positions == state.positions and whole.state.pending_orders.equals(state.pending_orders)


def test_frames_out_of_order_are_sorted():
    a = pl.DataFrame({"date": [date(2024, 1, 3), date(2024, 1, 3)], "symbol": ["B", "A"]})
    b = pl.DataFrame({"date": [date(2024, 1, 2)], "symbol": ["C"]})
    assert pf._by_date_symbol([a, b], {}).rows() == [(date(2024, 1, 2), "C"), (date(2024, 1, 3), "A"),
                                                     (date(2024, 1, 3), "B")]
    assert pf._by_date_symbol([b, a.reverse()], {}).rows() == pf._by_date_symbol([a, b], {}).rows()


def _jsonl_lines(audit_dir) -> dict[str, list[str]]:
    out = {}
    for f in sorted(audit_dir.glob("*.jsonl")):
        out[f.name] = [json.dumps({k: v for k, v in json.loads(line).items() if k not in ("event_id", "ts", "run_id")})
                       for line in f.read_text().splitlines()]
    return out


def test_book_in_blocks_equals_one_block(tmp_path, monkeypatch):
    """Each month its own block (walk, five table replaces, audit), 5-session reads, 1-event audit chunks:
    the same tables, audit rows, audit files (line by line, in order) and metadata as one block."""
    results, n_blocks = {}, []
    write_blocks = book_walk.write_blocks
    monkeypatch.setattr(book_walk, "write_blocks", lambda *a: n_blocks.append(len(write_blocks(*a))) or write_blocks(*a))
    for name in ("one", "blocks"):
        if name == "blocks":
            monkeypatch.setattr(book_walk, "_WRITE_BLOCK_ROWS", 1)
            monkeypatch.setattr(book_inputs, "_READ_BLOCK_ROWS", 1)
            monkeypatch.setattr(book_audit, "_AUDIT_EVENTS_PER_CHUNK", 1)
        wh = Warehouse(tmp_path / name / "trading.duckdb", tmp_path / name / "audit")
        wh.ensure_schema()
        market3(wh)
        res = materialize_book(wh, WINDOW3[0], WINDOW3[-1])
        assert res.success and all(e.passed for e in res.get_asset_check_evaluations())
        mats = [e.event_specific_data.materialization for e in res.get_asset_materialization_events()]
        meta = {m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
                for m in mats if m.partition == WINDOW3[-1].isoformat()}
        checks = {e.check_name: (e.passed, {k: v.value for k, v in e.metadata.items()})
                  for e in res.get_asset_check_evaluations()}
        audit = wh.read("SELECT * EXCLUDE (event_id, ts, run_id) FROM audit_log ORDER BY ALL")
        results[name] = (book_tables(wh), audit, _jsonl_lines(wh.audit_dir), meta, checks)
    (t1, a1, j1, m1, c1), (t2, a2, j2, m2, c2) = results["one"], results["blocks"]
    for table in t1:
        assert t1[table].equals(t2[table], null_equal=True), table
    assert a1.equals(a2) and a1.height > 0
    assert j1 == j2 and len(j1) == 3  # one file per month, same lines in the same order
    assert m1 == m2 and set(m1) == {"risk_decisions", "orders", "positions", "portfolio"}
    assert c1 == c2 and n_blocks == [1, 3]


# --- the checks' column-wise screens find what checking every session finds --------------------
def _every_session(rd: pl.DataFrame, settings) -> list[dict]:
    bad = []
    for (d,), g in rd.partition_by("date", as_dict=True).items():
        v = risk.limit_violations(g["decision"].to_list(), g["approved_weight"].to_numpy(), g["current_weight"].to_numpy(),
                                  g["order_quantity"].to_numpy(), g["sector"].to_list(), settings.risk)
        syms = g["symbol"].to_list()
        bad += [{"date": str(d), "symbol": syms[int(m[1:m.index(" ")])], "violation": m} for m in v]
    return bad


def test_limit_breaches_equal_checking_every_session():
    s = load_settings({})
    rd = pf.run_book(pf.initial_state(s), _random_sessions(), s).risk_decisions
    assert book_checks.limit_breaches(rd, s) == [] == _every_session(rd, s)
    i = rd.with_row_index("i")
    buys = i.filter(pl.col("decision") == rc.EXECUTE_BUY)["i"].to_list()
    holds = i.filter(pl.col("decision") == rc.HOLD)["i"].to_list()
    w = rd["approved_weight"].to_list()
    q = rd["order_quantity"].to_list()
    dec = rd["decision"].to_list()
    w[buys[0]] = 0.2  # a buy above the single-name limit (and its sector, its book)
    w[buys[5]] = 0.10 + 1e-6 + 5e-10  # within the screen's slack, above the tolerance
    w[buys[9]] = 0.10 + 1e-6 - 5e-10  # within the tolerance: not a breach
    q[holds[0]] = 3.0  # a HOLD with an order
    dec[holds[1]] = rc.EXECUTE_SELL  # a SELL with no order
    w[holds[2]] = -0.01  # a negative weight
    bad = rd.with_columns(approved_weight=pl.Series(w), order_quantity=pl.Series(q), decision=pl.Series(dec))
    want = sorted(_every_session(bad, s), key=lambda v: (v["date"], v["symbol"], v["violation"]))
    got = sorted(book_checks.limit_breaches(bad, s), key=lambda v: (v["date"], v["symbol"], v["violation"]))
    assert got == want and len(want) >= 6
    assert book_checks.check_decisions(bad, s)["passed"] is False


def test_check_positions_equals_the_frame_by_frame_check():
    s = load_settings({})
    sessions = _random_sessions()
    out = pf.run_book(pf.initial_state(s), sessions, s)
    days = [x.date for x in sessions]

    def frame_by_frame(o, prev):
        bad = []
        pos_by, fills_by = o.positions.partition_by("date", as_dict=True), o.fills.partition_by("date", as_dict=True)
        for d in days:
            p = pos_by.get((d,))
            cur = dict(zip(p["symbol"].to_list(), p["quantity"].to_list())) if p is not None else {}
            f = fills_by.get((d,), pl.DataFrame(schema=ex.FILL_SCHEMA))
            bad += [{"date": str(d), **v} for v in ex.positions_consistency(prev, o.split_ratios.get(d, {}), f, cur)]
            prev = cur
        return bad

    assert book_checks.check_positions(out, {}, days) == [] == frame_by_frame(out, {})
    q = out.positions["quantity"].to_list()
    q[10] += 1.0
    q[-1] -= 2.0
    broken = pf.BookOutput(out.risk_decisions, out.orders, out.fills, out.positions.with_columns(quantity=pl.Series(q)),
                           out.portfolio, out.split_ratios, out.state)
    got = book_checks.check_positions(broken, {"S01": 3.0}, days)
    assert got == frame_by_frame(broken, {"S01": 3.0}) and len(got) >= 3
