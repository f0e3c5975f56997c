"""Order ids, paper fills, the broker switch, one book step by hand."""

from __future__ import annotations

import math

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
    assert c["status"] == ex.CANCELLED and c["price"] is None and c["reason"].startswith(rc.ORDER_CANCELLED)
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
                         schema=dict(list(ex.FILL_SCHEMA.items())[:11]), orient="row")
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
    s = load_settings({"TRADING_PORTFOLIO_METHOD": "kelly_diagonal"})  # the book of the Meta-Brain's targets
    st = pf.initial_state(s)
    d1, d2, d3 = date(2024, 3, 1), date(2024, 3, 4), date(2024, 3, 5)
    r1 = pf.step(st, _inputs(d1, {"A": 0.05}, {"A": 99.0}, {"A": 100.0}), s)
    assert r1.portfolio["nav"] == 1e6 and r1.orders["quantity"].to_list() == [500.0]
    # fill 500 at 101 * (1 + 5 bp + impact), commission 2.5; close 102. Impact (domain/costs.py) of 500
    # shares of a 1e9-share ADV name with daily vol 0.05 / sqrt(252) (the order carries both from t)
    sig = 0.05 / math.sqrt(252)
    px = 101.0 * (1 + 5e-4 + 0.142 * sig * (500 / 1e9) ** 0.6 + 0.5 * 0.314 * sig * (500 / 1e9) ** 0.891)
    assert r1.orders.row(0, named=True)["expected_volume"] == 1e9 and r1.orders["sigma_daily"][0] == sig
    r2 = pf.step(r1.state, _inputs(d2, {"A": 0.05}, {"A": 101.0}, {"A": 102.0}), s)
    cash = 1e6 - 500 * px - 2.5
    assert r2.portfolio["cash"] == pytest.approx(cash)
    assert r2.portfolio["nav"] == pytest.approx(cash + 500 * 102.0)
    assert r2.portfolio["daily_return"] == pytest.approx((cash + 500 * 102.0) / 1e6 - 1)
    assert r2.positions.row(0, named=True)["avg_cost"] == pytest.approx(px)
    # a 2:1 split (price_factor 0.5) and a 0.10 dividend at d3: 1000 shares, cash + 0.10 * 500
    acts = pl.DataFrame({"symbol": ["A", "A"], "action": ["split", "dividend"], "value": [2.0, 0.10],
                         "price_factor": [0.5, 0.999]})
    r3 = pf.step(r2.state, _inputs(d3, {"A": 0.05}, {"A": 51.0}, {"A": 51.0}, acts), s)
    pos = r3.positions.row(0, named=True)
    assert pos["quantity"] == 1000.0 and pos["avg_cost"] == pytest.approx(px / 2)
    extra = r2.orders["quantity"].sum() if r2.orders.height else 0.0  # no order expected at d2 (below threshold)
    assert extra == 0.0
    assert r3.portfolio["cash"] == pytest.approx(cash + 0.10 * 500)
    assert r3.portfolio["nav"] == pytest.approx(cash + 50.0 + 1000 * 51.0)


# --- the walk on rows (run_book builds each table once) -------------------------------------------
def _random_sessions(n_sym=12, n_sess=30, seed=5):
    from trading_assets.domain import calendar

    rng = np.random.default_rng(seed)
    days = calendar.sessions(date(2024, 1, 2), date(2024, 3, 29))[:n_sess]
    syms = [f"S{i:02d}" for i in range(n_sym)]
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_sess, n_sym)), axis=0))
    out = []
    for k, d in enumerate(days):
        live = [s for j, s in enumerate(syms) if (k + j) % 9]  # names come and go (held-only rows, no decision)
        reject = rng.random(len(live)) < 0.15
        opens = [None if (k * 7 + j) % 23 == 0 else float(close[k, syms.index(s)]) for j, s in enumerate(live)]
        acts = (pl.DataFrame({"symbol": [syms[1]], "action": ["split"], "value": [2.0], "price_factor": [0.5]})
                if k == 12 else None)
        out.append(pf.SessionInputs(
            date=d, cycle_id=f"{d}-t",
            decisions=pl.DataFrame({"symbol": live, "mu_hat": [0.001] * len(live), "sigma_hat": [0.01] * len(live),
                                    "target_weight_raw": list(np.clip(rng.normal(0.06, 0.05, len(live)), -0.02, 0.2)),
                                    "pre_risk_decision": ["REJECT" if r else "EXECUTE_BUY" for r in reject],
                                    "reason_codes": [["DATA_QUALITY"] if r else ["POSITIVE_EDGE"] for r in reject],
                                    "regime": ["risk_off" if k > 20 else "neutral"] * len(live)}),
            prices=pl.DataFrame({"symbol": live, "open": opens,
                                 "close": [None if (k + j) % 17 == 0 else float(close[k, syms.index(s)])
                                           for j, s in enumerate(live)]}, schema={"symbol": pl.String, "open": pl.Float64,
                                                                                   "close": pl.Float64}),
            features=pl.DataFrame({"symbol": live, "adv_shares_21d": [5e3 if j % 5 == 0 else 1e7 for j in range(len(live))],
                                   "vol_20": [0.2] * len(live)}),
            returns=rng.normal(0, 0.015, (60, n_sym)), return_symbols=syms, sectors={s: f"sec{i % 3}" for i, s in enumerate(syms)},
            actions=acts))
    return out


def test_run_book_equals_chaining_step(monkeypatch):
    """run_book (rows, frames built every few sessions) gives exactly the frames of step() session by session."""
    monkeypatch.setattr(pf, "_FLUSH_SESSIONS", 7)  # several blocks and a partial last one
    s = load_settings({})
    sessions = _random_sessions()
    out = pf.run_book(pf.initial_state(s), sessions, s)
    st, parts = pf.initial_state(s), {k: [] for k in ("risk_decisions", "orders", "fills", "positions")}
    rows = []
    for x in sessions:
        r = pf.step(st, x, s)
        for k in parts:
            parts[k].append(getattr(r, k))
        rows.append(r.portfolio)
        st = r.state
    for k, v in parts.items():
        assert getattr(out, k).equals(pl.concat(v).sort("date", "symbol"), null_equal=True), k
    assert out.portfolio.equals(pl.DataFrame(rows, schema=pf.PORTFOLIO_SCHEMA, orient="row"), null_equal=True)
    assert out.state.pending_orders.equals(st.pending_orders) and out.state.positions == st.positions
    assert out.fills.height and out.orders.height and (out.fills["status"] == ex.CANCELLED).any()
    assert out.risk_decisions.schema == pl.Schema(pf.RISK_DECISION_SCHEMA)


def test_run_book_uses_a_broker_without_fill_rows():
    """A broker implementing only the Broker protocol (fill on frames) gets the same fills."""
    s = load_settings({})
    paper = ex.PaperBroker(s.execution)

    class FramesOnly:
        name = "frames"

        def fill(self, orders, fill_date, opens, split_ratios):
            return paper.fill(orders, fill_date, opens, split_ratios)

    sessions = _random_sessions(n_sess=15)
    a = pf.run_book(pf.initial_state(s), sessions, s, FramesOnly())
    b = pf.run_book(pf.initial_state(s), sessions, s, paper)
    assert a.fills.equals(b.fills, null_equal=True) and a.portfolio.equals(b.portfolio, null_equal=True)


def test_order_and_fill_rows_match_the_frames():
    s = ExecutionSettings()
    rows = ex.order_rows(D, ["B", "A", "C"], [0.0, 10.0, -5.0], [1.0, 2.0, 3.0], "c", "paper")
    frame = ex.make_orders(D, ["B", "A", "C"], [0.0, 10.0, -5.0], [1.0, 2.0, 3.0], "c", "paper")
    assert frame.rows() == rows and [r[2] for r in rows] == ["A", "C"]
    broker = ex.PaperBroker(s)
    fills = broker.fill(frame.select(reversed(frame.columns)), date(2024, 3, 4), {"A": 2.0}, {"C": 0.1})
    from_rows = pl.DataFrame(broker.fill_rows(rows, date(2024, 3, 4), {"A": 2.0}, {"C": 0.1}),
                             schema=ex.FILL_SCHEMA, orient="row")
    assert fills.equals(from_rows, null_equal=True)
    assert fills["status"].to_list() == [ex.FILLED, ex.CANCELLED]
    with pytest.raises(ValueError, match="duplicate"):
        ex.order_rows(D, ["A", "A"], [1.0, 1.0], [1.0, 1.0], "c", "paper")
