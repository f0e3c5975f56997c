"""Guarantee 8 (#16): a systemic data fault halts its session, not the run.

On one session of a range, four of the five symbols come without open, high and low (as in a
vendor's broken file): more than max_failing_share (25%) of the universe fails quality there. By
default (on_systemic_fault = halt_session) that session is HALTED -- every decision REJECT with
SYSTEMIC_DATA_FAULT, the fills due at its open cancelled, no order, positions held -- the check reports
it (ERROR, non-blocking, the session in its metadata), one session_halted audit row records it, and
every other session is traded exactly as in a clean run up to it. With on_systemic_fault = stop_run
the blocking policy check stops the run, as before #16, and nothing downstream of data_quality is
written. (The same through the CLI on a messy real file: test_messy_real_file.py.)
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from trading_assets.defs.quality import QUALITY_SHARE_WITHIN_LIMIT, QUALITY_SYSTEMIC_FAULT_POLICY, SESSION_HALTED
from trading_assets.domain import reasons as rc
from trading_assets.domain.execution import CANCELLED
from trading_assets.providers.synthetic import Defect, SyntheticProvider
from trading_assets.universe import load_universe
from trading_assets_tests.reliability.conftest import SEED, SHORT, SYMBOLS, rows_until, run_graph

S = SHORT
BAD = S[25]  # the book trades from the 21st session: positions and pending orders exist by then
STRIPPED = SYMBOLS[:4]  # 4 of 5 symbols: 80% of the universe fails on BAD


def _broken_market():
    defects = [Defect("null_field", sym, BAD, field=f) for sym in STRIPPED for f in ("open", "high", "low")]
    return [SyntheticProvider(SEED, load_universe(), defects=defects)]


def _check(run, name):
    [ev] = [e.event_specific_data for e in run.result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == name]
    return ev


# The seed's book (kelly_diagonal) trades every session on this 5-name market, so the session before the
# fault has orders due at its open; the default optimizer (kelly_mv) trades only when the edge pays for the
# cost, and on this market it has none due there. Both runs of the comparison use the same method.
DIAGONAL = {"TRADING_PORTFOLIO_METHOD": "kelly_diagonal"}


@pytest.fixture(scope="module")
def halted(tmp_path_factory):
    run = run_graph(tmp_path_factory.mktemp("halt"), S[0], S[-1], provider_factory=_broken_market, env=DIAGONAL)
    assert run.success, run.failed_steps()
    return run


@pytest.fixture(scope="module")
def diagonal_reference(tmp_path_factory):
    """The clean run of S with the same method as `halted`."""
    run = run_graph(tmp_path_factory.mktemp("clean-diagonal"), S[0], S[-1], env=DIAGONAL)
    assert run.success, run.failed_steps()
    return run


def test_the_session_is_halted_and_the_run_succeeds(halted):
    wh = halted.wh
    sq = wh.read("SELECT date, failing, symbols, halted FROM session_quality ORDER BY date")
    assert sq.height == len(S)
    assert sq.filter(pl.col("halted"))["date"].to_list() == [BAD]
    assert sq.filter(pl.col("date") == BAD).select("failing", "symbols").row(0) == (4, 5)
    ev = _check(halted, QUALITY_SHARE_WITHIN_LIMIT)
    assert not ev.passed and ev.severity.value == "ERROR" and not ev.blocking
    [h] = ev.metadata["halted_sessions"].value
    assert h["date"] == BAD.isoformat() and h["failing_share"] == 0.8 and h["examples"] == sorted(STRIPPED)
    assert h["top_codes"]["MISSING_FIELD"] == 4
    assert BAD.isoformat() in ev.description
    policy = _check(halted, QUALITY_SYSTEMIC_FAULT_POLICY)
    assert policy.passed and policy.blocking


def test_every_decision_of_the_halted_session_is_a_reject(halted):
    wh = halted.wh
    dec = wh.read("SELECT symbol, pre_risk_decision, reason_codes FROM decisions WHERE date = ?", [BAD])
    assert dec.height == 5 and set(dec["pre_risk_decision"]) == {rc.REJECT}
    assert all(rc.SYSTEMIC_DATA_FAULT in c for c in dec["reason_codes"].to_list())
    final = wh.read("SELECT decision, reason_codes, order_quantity FROM risk_decisions WHERE date = ?", [BAD])
    assert set(final["decision"]) == {rc.REJECT} and final["order_quantity"].abs().max() == 0.0
    assert all(rc.SYSTEMIC_DATA_FAULT in c for c in final["reason_codes"].to_list())


def test_no_fill_no_order_positions_held(halted):
    wh = halted.wh
    prev = S[S.index(BAD) - 1]
    due = wh.read("SELECT status, price, reason FROM fills WHERE date = ?", [BAD])
    assert due.height > 0, "the test needs orders from the session before to prove they are cancelled"
    assert set(due["status"]) == {CANCELLED} and due["price"].null_count() == due.height
    assert all(rc.SYSTEMIC_DATA_FAULT in r for r in due["reason"].to_list())
    assert wh.read("SELECT count(*) AS n FROM orders WHERE date = ?", [BAD])["n"][0] == 0
    q = "SELECT symbol, quantity FROM positions WHERE date = ? ORDER BY symbol"
    held = wh.read(q, [BAD])
    assert held.height > 0 and held.equals(wh.read(q, [prev]))
    warnings = json.loads(wh.read("SELECT warnings FROM portfolio WHERE date = ?", [BAD])["warnings"][0])
    assert any(rc.SYSTEMIC_DATA_FAULT in w for w in warnings)
    # the rest of the range trades: orders after the halted session
    assert wh.read("SELECT count(*) AS n FROM orders WHERE date > ?", [BAD])["n"][0] > 0


def test_the_halt_is_audited(halted):
    rows = halted.wh.read("SELECT date, payload FROM audit_log WHERE event_type = ?", [SESSION_HALTED])
    assert rows["date"].to_list() == [BAD]
    payload = json.loads(rows["payload"][0])
    assert payload["reason"] == rc.SYSTEMIC_DATA_FAULT and payload["on_systemic_fault"] == "halt_session"
    assert payload["failing"] == 4 and payload["examples"] == sorted(STRIPPED)


def test_sessions_before_the_fault_equal_the_clean_run(halted, diagonal_reference):
    prev = S[S.index(BAD) - 1]
    for table in ("data_quality_log", "features", "decisions", "risk_decisions", "orders", "positions", "portfolio"):
        assert rows_until(halted.wh, table, prev).equals(rows_until(diagonal_reference.wh, table, prev)), table


def test_stop_run_keeps_the_old_behaviour(tmp_path):
    run = run_graph(tmp_path, S[0], S[-1], provider_factory=_broken_market, env={"TRADING_ON_SYSTEMIC_FAULT": "stop_run"})
    assert not run.success
    policy = _check(run, QUALITY_SYSTEMIC_FAULT_POLICY)
    assert not policy.passed and policy.blocking and policy.severity.value == "ERROR"
    assert [h["date"] for h in policy.metadata["halted_sessions"].value] == [BAD.isoformat()]
    wh = run.wh
    assert wh.read("SELECT count(*) AS n FROM data_quality_log")["n"][0] > 0
    for table in ("features", "decisions", "risk_decisions", "orders", "portfolio"):
        assert wh.read(f"SELECT count(*) AS n FROM {table}")["n"][0] == 0, table
