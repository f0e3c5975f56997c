"""Order ids, paper fills, the broker switch, one book step by hand."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_assets.domain import execution as ex
from trading_assets.domain import portfolio as pf
from trading_assets.domain import reasons as rc
from trading_assets.settings import ExecutionSettings, load_settings

D = date(2024, 3, 1)


def test_order_id_is_stable_and_sensitive_to_every_input():
    a = ex.order_id(D, "AAPL", "BUY", 100, "c1")
    assert a == ex.order_id(D, "AAPL", "BUY", 100.0, "c1")
    assert a == hashlib.sha256(b"2024-03-01|AAPL|BUY|100|c1").hexdigest()[:20]
    assert len(a) == 20 and int(a, 16) >= 0
    variants = [ex.order_id(date(2024, 3, 4), "AAPL", "BUY", 100, "c1"), ex.order_id(D, "MSFT", "BUY", 100, "c1"),
                ex.order_id(D, "AAPL", "SELL", 100, "c1"), ex.order_id(D, "AAPL", "BUY", 101, "c1"),
                ex.order_id(D, "AAPL", "BUY", 100, "c2")]
    assert len({a, *variants}) == 6
    with pytest.raises(ValueError):
        ex.order_id(D, "AAPL", "BUY", 10.5, "c1")


def test_make_orders_skips_zero_and_sides_by_sign():
    o = ex.make_orders(D, ["B", "A", "C"], [0.0, 10.0, -5.0], [1.0, 2.0, 3.0], "c", "paper")
    assert o.select("symbol", "side", "quantity").rows() == [("A", "BUY", 10.0), ("C", "SELL", 5.0)]


def test_paper_fill_by_hand():
    s = ExecutionSettings(slippage_bps=5.0, commission_per_share=0.005, min_commission=1.0)
    orders = ex.make_orders(D, ["A", "B", "C", "S"], [100.0, -1000.0, 10.0, 3.0], [50.0, 20.0, 9.0, 7.0], "c", "paper")
    fills = ex.PaperBroker(s).fill(orders, date(2024, 3, 4), {"A": 50.0, "B": 20.0, "S": 8.0}, {"S": 2.0})
    a, b, c, sp = fills.sort("symbol").iter_rows(named=True)
    assert a["price"] == pytest.approx(50.025) and a["commission"] == 1.0 and a["slippage_cost"] == pytest.approx(2.5)
    assert b["price"] == pytest.approx(19.99) and b["commission"] == pytest.approx(5.0)
    assert b["slippage_cost"] == pytest.approx(10.0)
    assert c["status"] == ex.CANCELLED and np.isnan(c["price"]) and c["reason"].startswith(rc.ORDER_CANCELLED)
    assert sp["quantity"] == 6.0  # a 2:1 split at the fill open doubles the open order


def test_get_broker_paper_and_live_refusal():
    s = load_settings({})
    assert isinstance(ex.get_broker(s), ex.PaperBroker)
    live = s.replace(execution=ExecutionSettings(mode="live"))
    with pytest.raises(ex.BrokerNotConfigured, match="no broker is configured"):
        ex.get_broker(live)
    with pytest.raises(ex.BrokerNotConfigured, match="unknown broker"):
        ex.get_broker(s.replace(execution=ExecutionSettings(mode="live", broker="ibkr")))
    with pytest.raises(ValueError):
        ex.get_broker(s.replace(execution=ExecutionSettings(mode="backtest")))


def test_positions_consistency_detects_a_mismatch():
    fills = pl.DataFrame([("o1", D, D, "A", "BUY", 10.0, 1.0, 1.0, 0.0, ex.FILLED, None),
                          ("o2", D, D, "B", "SELL", 5.0, 1.0, 1.0, 0.0, ex.FILLED, None)],
                         schema=ex.FILL_SCHEMA, orient="row")
    assert ex.positions_consistency({"A": 5.0, "B": 5.0, "C": 2.0}, {"C": 2.0}, fills, {"A": 15.0, "C": 4.0}) == []
    bad = ex.positions_consistency({"A": 5.0}, {}, fills, {"A": 16.0, "B": -5.0})
    assert [v["symbol"] for v in bad] == ["A"]


def _inputs(day, targets, opens, closes, actions=None):
    syms = sorted(targets)
    return pf.SessionInputs(
        date=day, cycle_id=f"{day}-h",
        decisions=pl.DataFrame({"symbol": syms, "mu_hat": [0.001] * len(syms), "sigma_hat": [0.01] * len(syms),
                                "target_weight_raw": [targets[s] for s in syms],
                                "pre_risk_decision": ["EXECUTE_BUY"] * len(syms),
                                "reason_codes": [["POSITIVE_EDGE"]] * len(syms), "regime": ["neutral"] * len(syms)}),
        prices=pl.DataFrame({"symbol": syms, "open": [opens[s] for s in syms], "close": [closes[s] for s in syms]}),
        features=pl.DataFrame({"symbol": syms, "adv_shares_21d": [1e9] * len(syms), "vol_20": [0.05] * len(syms)}),
        returns=np.zeros((252, len(syms))), return_symbols=syms, sectors={s: f"sec{s}" for s in syms},
        actions=actions,
    )


def test_two_sessions_by_hand():
    s = load_settings({})
    st = pf.initial_state(s)
    d1, d2, d3 = date(2024, 3, 1), date(2024, 3, 4), date(2024, 3, 5)
    r1 = pf.step(st, _inputs(d1, {"A": 0.05}, {"A": 99.0}, {"A": 100.0}), s)
    assert r1.portfolio["nav"] == 1e6 and r1.orders["quantity"].to_list() == [500.0]
    # fill 500 at 101 * 1.0005 = 101.0505, commission 2.5; close 102
    r2 = pf.step(r1.state, _inputs(d2, {"A": 0.05}, {"A": 101.0}, {"A": 102.0}), s)
    cash = 1e6 - 500 * 101.0505 - 2.5
    assert r2.portfolio["cash"] == pytest.approx(cash)
    assert r2.portfolio["nav"] == pytest.approx(cash + 500 * 102.0)
    assert r2.portfolio["daily_return"] == pytest.approx((cash + 500 * 102.0) / 1e6 - 1)
    assert r2.positions.row(0, named=True)["avg_cost"] == pytest.approx(101.0505)
    # a 2:1 split (price_factor 0.5) and a 0.10 dividend at d3: 1000 shares, cash + 0.10 * 500
    acts = pl.DataFrame({"symbol": ["A", "A"], "action": ["split", "dividend"], "value": [2.0, 0.10],
                         "price_factor": [0.5, 0.999]})
    r3 = pf.step(r2.state, _inputs(d3, {"A": 0.05}, {"A": 51.0}, {"A": 51.0}, acts), s)
    pos = r3.positions.row(0, named=True)
    assert pos["quantity"] == 1000.0 and pos["avg_cost"] == pytest.approx(101.0505 / 2)
    extra = r2.orders["quantity"].sum() if r2.orders.height else 0.0  # no order expected at d2 (below threshold)
    assert extra == 0.0
    assert r3.portfolio["cash"] == pytest.approx(cash + 0.10 * 500)
    assert r3.portfolio["nav"] == pytest.approx(cash + 50.0 + 1000 * 51.0)
