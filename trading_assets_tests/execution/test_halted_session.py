"""A HALTED session in the book (#16): the paper broker fills nothing at its open (t-1's orders are
CANCELLED with SYSTEMIC_DATA_FAULT, price NULL), no order is made, positions are held and marked at the
last valid close where the session has none; the next session trades again."""

from __future__ import annotations

import dataclasses
import json
from datetime import date

import polars as pl
import pytest

from trading_assets.domain import execution as ex
from trading_assets.domain import portfolio as pf
from trading_assets.domain import reasons as rc
from trading_assets.settings import load_settings
from trading_assets_tests.execution.test_execution import _inputs

D1, D2, D3, D4 = date(2024, 3, 1), date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


def _rejected(x: pf.SessionInputs) -> pf.SessionInputs:
    """What meta_decisions writes on a halted session: every decision REJECT SYSTEMIC_DATA_FAULT."""
    dec = x.decisions.with_columns(
        pre_risk_decision=pl.lit(rc.REJECT),
        reason_codes=pl.lit([rc.SYSTEMIC_DATA_FAULT], dtype=pl.List(pl.String)),
        target_weight_raw=pl.lit(None, dtype=pl.Float64),
    )
    return dataclasses.replace(x, decisions=dec, halted=True)


def test_a_halted_session_cancels_fills_orders_nothing_and_holds_marks():
    s = load_settings({"TRADING_PORTFOLIO_METHOD": "kelly_diagonal"})  # the hand-made targets are the book's
    r1 = pf.step(pf.initial_state(s), _inputs(D1, {"A": 0.05, "B": 0.05}, {"A": 99.0, "B": 49.0}, {"A": 100.0, "B": 50.0}), s)
    assert sorted(r1.orders["symbol"]) == ["A", "B"] and r1.orders["quantity"].to_list() == [500.0, 1000.0]
    # D2 halted: A has no close (marked at D1's 100), B's close is there (marked at 55)
    halted = _rejected(_inputs(D2, {"A": 0.09, "B": 0.09}, {"A": 101.0, "B": 51.0}, {"A": None, "B": 55.0}))
    r2 = pf.step(r1.state, halted, s)
    assert r2.fills["status"].to_list() == [ex.CANCELLED, ex.CANCELLED]
    assert r2.fills["price"].to_list() == [None, None] and r2.fills["commission"].to_list() == [0.0, 0.0]
    assert all(rc.SYSTEMIC_DATA_FAULT in why for why in r2.fills["reason"].to_list())
    assert r2.orders.height == 0
    assert r2.risk_decisions["decision"].to_list() == [rc.REJECT, rc.REJECT]
    assert r2.risk_decisions["order_quantity"].to_list() == [0.0, 0.0]
    assert r2.positions.height == 0 and r2.portfolio["nav"] == pytest.approx(1e6) and r2.portfolio["cash"] == pytest.approx(1e6)
    assert any(rc.SYSTEMIC_DATA_FAULT in w for w in json.loads(r2.portfolio["warnings"]))
    # D3 trades again: new orders from the (unchanged, flat) book
    r3 = pf.step(r2.state, _inputs(D3, {"A": 0.05}, {"A": 100.0}, {"A": 100.0}), s)
    assert r3.orders["symbol"].to_list() == ["A"]


def test_positions_are_held_through_a_halted_session_and_marked_at_the_last_close():
    s = load_settings({"TRADING_PORTFOLIO_METHOD": "kelly_diagonal"})  # the hand-made targets are the book's
    r1 = pf.step(pf.initial_state(s), _inputs(D1, {"A": 0.05}, {"A": 99.0}, {"A": 100.0}), s)
    r2 = pf.step(r1.state, _inputs(D2, {"A": 0.05}, {"A": 100.0}, {"A": 100.0}), s)  # fills 500 A
    assert r2.positions["quantity"].to_list() == [500.0]
    # a halted D3 that would have sold everything: A's close is missing, so it is marked at D2's 100
    r3 = pf.step(r2.state, _rejected(_inputs(D3, {"A": 0.0}, {"A": None}, {"A": None})), s)
    assert r3.positions["quantity"].to_list() == [500.0] and r3.positions["close"].to_list() == [100.0]
    assert r3.orders.height == 0 and r3.fills.height == 0
    assert r3.portfolio["nav"] == pytest.approx(r2.portfolio["nav"])
    # the same session not halted, with the target at 0, would sell
    r3b = pf.step(r2.state, _inputs(D3, {"A": 0.0}, {"A": 100.0}, {"A": 100.0}), s)
    assert r3b.orders["side"].to_list() == [ex.SELL]
