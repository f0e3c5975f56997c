"""The risk gate on hand-made portfolios: each limit, each adjustment, the decision rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from trading_assets.domain import reasons as rc
from trading_assets.domain import risk
from trading_assets.settings import RiskSettings

S = RiskSettings()
NAV = 1_000_000.0


def gi(targets, *, sectors=None, qty=None, price=None, pre_reject=None, regime=None, vol=None, adv=None,
       returns=None, state=risk.ACTIVE, dd=0.0, phase=0, pre_codes=None) -> risk.GateInput:
    """A gate input with price 100 for every name, flat book, ample ADV, calm uncorrelated history."""
    n = len(targets)
    return risk.GateInput(
        symbols=[f"S{i}" for i in range(n)],
        sectors=sectors or [f"sec{i}" for i in range(n)],
        price=np.array(price if price is not None else [100.0] * n, dtype=float),
        current_qty=np.array(qty if qty is not None else [0.0] * n, dtype=float),
        nav=NAV,
        target_raw=np.array(targets, dtype=float),
        pre_reject=np.array(pre_reject if pre_reject is not None else [False] * n),
        pre_codes=pre_codes or [[] for _ in range(n)],
        regime=regime or ["neutral"] * n,
        vol=np.array(vol if vol is not None else [0.05] * n, dtype=float),
        adv=np.array(adv if adv is not None else [1e9] * n, dtype=float),
        returns=np.zeros((252, n)) if returns is None else returns,
        trading_state=state,
        drawdown=dd,
        recovery_phase=phase,
    )


# --- limits ----------------------------------------------------------------------------------------
def test_single_name_14_percent_is_capped_at_10():
    r = risk.gate(gi([0.14, 0.05]), S)
    assert r.order_qty.tolist() == [1000.0, 500.0]  # 10% and 5% of 1e6 at 100
    assert r.approved_weight[0] == pytest.approx(0.10)
    assert rc.SINGLE_NAME_LIMIT in r.reason_codes[0] and rc.SINGLE_NAME_LIMIT not in r.reason_codes[1]
    assert json.loads(r.adjustments[0])["single_name_cap"] == 0.10
    assert r.decision == [rc.EXECUTE_BUY, rc.EXECUTE_BUY]


def test_sector_20_percent_is_scaled_pro_rata_to_15():
    r = risk.gate(gi([0.09, 0.07, 0.04, 0.05], sectors=["Tech", "Tech", "Tech", "Energy"]), S)
    # 0.09 + 0.07 + 0.04 = 0.20 -> x 0.75 -> 0.0675, 0.0525, 0.03; Energy untouched
    assert r.order_qty.tolist() == [675.0, 525.0, 300.0, 500.0]
    assert r.sector_exposure["Tech"] == pytest.approx(0.15)
    assert json.loads(r.adjustments[0])["sector_scale"] == pytest.approx(0.75)
    assert rc.SECTOR_LIMIT in r.reason_codes[1] and rc.SECTOR_LIMIT not in r.reason_codes[3]


def test_gross_leverage_scaled_to_one():
    # 12 names x 10% = 1.2x gross -> each x (1/1.2)
    r = risk.gate(gi([0.10] * 12), S)
    assert r.gross == pytest.approx(12 * math.floor(0.10 / 1.2 * NAV / 100) * 100 / NAV)
    assert r.gross <= 1.0
    assert all(rc.LEVERAGE_SCALED in c for c in r.reason_codes)


def test_adv_caps_the_order_at_10_percent_of_adv():
    r = risk.gate(gi([0.10], adv=[5000.0]), S)
    assert r.order_qty.tolist() == [500.0]  # wanted 1000 shares
    assert rc.ADV_LIMIT in r.reason_codes[0]
    r2 = risk.gate(gi([0.10], adv=[float("nan")]), S)  # unknown liquidity: no order
    assert r2.order_qty.tolist() == [0.0] and rc.ADV_LIMIT in r2.reason_codes[0]


def test_cvar_by_hand_on_a_tiny_history():
    # 10 sessions, two names; alpha = 0.8 -> k = ceil(0.2 * 10) = 2 worst losses
    r = np.array([[0.01, 0.02], [-0.03, -0.01], [0.02, 0.00], [-0.05, 0.01], [0.00, -0.04],
                  [0.01, 0.01], [-0.02, -0.02], [0.03, 0.00], [0.00, 0.01], [-0.01, 0.00]])
    w = np.array([0.5, 0.5])
    # book returns: .015 -.02 .01 -.02 -.02 .01 -.02 .015 .005 -.005 -> losses sorted: .02 .02 .02 .02 ...
    assert risk.cvar_historical(r, w, 0.8) == pytest.approx(0.02)
    w2 = np.array([1.0, 0.0])  # losses of name 0: .05, .03 -> mean 0.04
    assert risk.cvar_historical(r, w2, 0.8) == pytest.approx(0.04)
    # alpha 0.95 on 20 sessions -> k = 1 (not 2: (1-0.95)*20 is 1.0000000000000009 in floats)
    r20 = np.vstack([r, r * 0.5])
    assert risk.cvar_historical(r20, w2, 0.95) == pytest.approx(0.05)
    # homogeneous: CVaR(2w) = 2 CVaR(w)
    assert risk.cvar_historical(r, 2 * w2, 0.8) == pytest.approx(0.08)


def test_cvar_limit_scales_the_book_under_it():
    rng = np.random.default_rng(1)
    hist = rng.normal(0, 0.3, size=(252, 2))  # absurdly volatile names; tail check off to isolate CVaR
    s = RiskSettings(tail_prob_limit=1.0)
    r = risk.gate(gi([0.10, 0.10], returns=hist), s)
    assert r.cvar <= S.cvar_limit + 1e-9
    raw_cvar = risk.cvar_historical(hist, np.array([0.10, 0.10]), 0.95)
    scale = json.loads(r.adjustments[0])["cvar_scale"]
    assert raw_cvar > S.cvar_limit and scale == pytest.approx(S.cvar_limit / raw_cvar, rel=1e-6)  # homogeneous
    assert rc.CVAR_SCALED in r.reason_codes[0]
    assert r.decision == [rc.EXECUTE_BUY, rc.EXECUTE_BUY]


def test_cvar_breach_that_scaling_cannot_fix_rejects_the_buys_only():
    hist = np.zeros((252, 3))
    hist[:20, 0] = -0.5  # name 0 is a disaster in 20 of 252 sessions: CVaR of holding it is huge
    # name 0 is held and pre-risk REJECTed (cannot be traded), name 1 wants to buy, name 2 wants to sell
    r = risk.gate(gi([0.10, 0.05, 0.0], qty=[1000, 0, 500], pre_reject=[True, False, False], returns=hist,
                     pre_codes=[[rc.DATA_QUALITY], [], []]), S)
    assert r.decision == [rc.REJECT, rc.REJECT, rc.EXECUTE_SELL]
    assert rc.CVAR_BREACH in r.reason_codes[1]
    assert r.order_qty.tolist() == [0.0, 0.0, -500.0]
    assert any("CVaR" in w for w in r.warnings)


def test_leverage_limit_rejects_buys_when_untradable_names_fill_the_book():
    # 11 names held at 10% each and pre-risk REJECTed (frozen): gross 1.1x; a 12th name wants to buy
    qty = [1000.0] * 11 + [0.0]
    r = risk.gate(gi([0.10] * 12, qty=qty, pre_reject=[True] * 11 + [False], sectors=[f"s{i}" for i in range(12)]), S)
    assert r.decision[-1] == rc.REJECT and r.order_qty[-1] == 0
    assert rc.LEVERAGE_LIMIT in r.reason_codes[-1] or rc.LEVERAGE_SCALED in r.reason_codes[-1]
    assert all(d == rc.REJECT for d in r.decision[:11])


def test_tail_probability_student_t_by_hand():
    # sigma = sqrt(2), nu = 4 -> scale = sqrt(2) * sqrt(2/4) = 1 -> P(T_4 > 2) = 0.0580 (t table)
    assert risk.tail_probability(math.sqrt(2.0), 2.0, 4.0) == pytest.approx(0.05805826175, rel=1e-8)
    # nu -> infinity: the normal tail
    assert risk.tail_probability(0.01, 0.02, 1e7) == pytest.approx(stats.norm.sf(2.0), rel=1e-4)


# --- adjustments -----------------------------------------------------------------------------------
def test_drawdown_10_percent_gives_exp_minus_half():
    assert risk.drawdown_factor(0.10, 5.0) == pytest.approx(math.exp(-0.5))
    r = risk.gate(gi([0.05], dd=0.05), S)  # DD 5%: exp(-0.25); ACTIVE
    assert r.order_qty.tolist() == [math.floor(0.05 * math.exp(-0.25) * NAV / 100)]
    assert json.loads(r.adjustments[0])["drawdown_scale"] == pytest.approx(math.exp(-0.25))
    assert rc.DRAWDOWN_SCALED in r.reason_codes[0]


def test_risk_off_is_0_7x():
    r = risk.gate(gi([0.05, 0.05], regime=["risk_off", "neutral"]), S)
    assert r.order_qty.tolist() == [350.0, 500.0]
    assert rc.REGIME_RISK_OFF in r.reason_codes[0] and rc.REGIME_RISK_OFF not in r.reason_codes[1]


def test_volatility_scaling_to_the_target():
    # two perfectly correlated names with vol 30%: book of 0.3 + 0.3 has sigma = 0.18 -> x 0.15/0.18
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.01, 252)
    hist = np.column_stack([x, x])
    loose = RiskSettings(max_single_name=1.0, max_sector=1.0, cvar_limit=1.0, tail_prob_limit=1.0)
    r = risk.gate(gi([0.3, 0.3], vol=[0.3, 0.3], returns=hist, sectors=["a", "b"]), loose)
    assert json.loads(r.adjustments[0])["vol_scale"] == pytest.approx(0.15 / 0.18)
    assert r.order_qty.tolist() == [math.floor(0.3 * 0.15 / 0.18 * NAV / 100)] * 2


def test_recovery_phases_20_40_60_80_100():
    s = RiskSettings(recovery_sessions_per_phase=2)
    st, ph, n = risk.next_trading_state(0.12, risk.ACTIVE, 0, 0, s)
    assert (st, ph) == (risk.REDUCING, 0)
    st, ph, n = risk.next_trading_state(0.25, st, ph, n, s)
    assert st == risk.HALTED
    st, ph, n = risk.next_trading_state(0.15, st, ph, n, s)
    assert st == risk.REDUCING
    factors = []
    for _ in range(10):  # DD back below 10%: phase 1 starts, each phase lasts 2 sessions
        st, ph, n = risk.next_trading_state(0.05, st, ph, n, s)
        factors.append(risk.recovery_factor(ph, s.recovery_phases))
    assert factors == [0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1.0, 1.0]
    assert (st, ph) == (risk.ACTIVE, 0)
    # a new breach in the middle of a recovery resets it
    st, ph, n = risk.next_trading_state(0.05, risk.REDUCING, 0, 0, s)
    st, ph, n = risk.next_trading_state(0.05, st, ph, n, s)
    st, ph, n = risk.next_trading_state(0.05, st, ph, n, s)
    assert ph == 2
    st, ph, n = risk.next_trading_state(0.11, st, ph, n, s)
    st, ph, n = risk.next_trading_state(0.05, st, ph, n, s)
    assert (st, ph, n) == (risk.ACTIVE, 1, 1)


def test_recovery_phase_scales_targets():
    for phase, f in enumerate(S.recovery_phases[:-1], start=1):
        r = risk.gate(gi([0.05], phase=phase), S)
        assert r.order_qty.tolist() == [math.floor(0.05 * f * NAV / 100)]
        assert rc.RECOVERY_PHASE in r.reason_codes[0]


# --- decision rules --------------------------------------------------------------------------------
def test_halted_rejects_everything_and_trades_nothing():
    r = risk.gate(gi([0.05, 0.0], qty=[0, 1000], state=risk.HALTED, dd=0.25), S)
    assert r.decision == [rc.REJECT, rc.REJECT]
    assert r.order_qty.tolist() == [0.0, 0.0]
    assert all({rc.TRADING_HALTED, rc.RISK_OVERRIDE} <= set(c) for c in r.reason_codes)


def test_reducing_allows_sells_and_rejects_buys():
    r = risk.gate(gi([0.05, 0.02], qty=[0, 1000], state=risk.REDUCING, dd=0.12), S)
    assert r.decision == [rc.REJECT, rc.EXECUTE_SELL]
    assert rc.REDUCING_ONLY in r.reason_codes[0] and rc.RISK_OVERRIDE in r.reason_codes[0]
    # target 0.02 * exp(-0.6) -> 109 shares; sell 891
    assert r.order_qty.tolist() == [0.0, math.floor(0.02 * math.exp(-5 * 0.12) * NAV / 100) - 1000.0]


def test_buy_sell_hold_and_pre_risk_reject():
    r = risk.gate(gi([0.05, 0.02, 0.05, 0.08], qty=[0, 500, 500, 300], pre_reject=[False, False, False, True],
                     pre_codes=[[], [], [], [rc.DATA_QUALITY]]), S)
    assert r.decision == [rc.EXECUTE_BUY, rc.EXECUTE_SELL, rc.HOLD, rc.REJECT]
    assert r.order_qty.tolist() == [500.0, -300.0, 0.0, 0.0]
    assert rc.POSITION_INCREASE in r.reason_codes[0] and rc.POSITION_REDUCTION in r.reason_codes[1]
    assert r.reason_codes[3] == [rc.DATA_QUALITY]
    assert r.approved_weight[3] == pytest.approx(0.03)  # the rejected name's position is held as is
    assert "held as is" in json.loads(r.adjustments[3])["notes"][0]


def test_tiny_orders_are_held_unless_a_limit_forces_the_sell():
    r = risk.gate(gi([0.051, 0.10], qty=[500, 1010]), S)  # +10 shares = 0.1% of NAV; 1010 = 10.1% > 10%
    assert r.decision == [rc.HOLD, rc.EXECUTE_SELL]
    assert rc.BELOW_TRADE_THRESHOLD in r.reason_codes[0]
    assert r.order_qty.tolist() == [0.0, -10.0]


def test_limit_violations_flags_a_bad_book():
    ok = risk.gate(gi([0.14, 0.12, 0.08], sectors=["T", "T", "E"]), S)
    assert risk.limit_violations(ok.decision, ok.approved_weight, ok.current_weight, ok.order_qty,
                                 ["T", "T", "E"], S) == []
    bad = risk.limit_violations([rc.EXECUTE_BUY, rc.HOLD], np.array([0.12, 0.05]), np.zeros(2),
                                np.array([100.0, 5.0]), ["T", "E"], S)
    assert any("single-name" in v for v in bad) and any("non-zero order" in v for v in bad)


# --- what the portfolio row records of the gate ---------------------------------------------------------
def test_the_portfolio_row_records_the_scales_and_the_books_tail_fit():
    from trading_assets.domain import portfolio as pf
    from trading_assets.domain import tail_risk as tr

    rng = np.random.default_rng(11)
    hist = rng.standard_t(3, size=(756, 2)) * 0.01  # heavy tails: 38 exceedances of the 95% quantile
    loose = RiskSettings(max_single_name=1.0, max_sector=1.0, cvar_limit=1.0, tail_prob_limit=1.0)
    model = tr.BookTailModel(0.95, 25, 756)
    x = gi([0.3, 0.3], vol=[0.5, 0.5], returns=hist, sectors=["a", "b"])  # book vol ~0.21 > the 15% target
    r = risk.gate(risk.GateInput(**{**x.__dict__, "tail_model": model}), loose)
    row = pf._gate_factors(r.factors)
    e = model.estimate(hist, r.approved_weight, loose.tail_loss_threshold, loose.cvar_confidence)
    assert e.method == "evt" and row["tail_method"] == "evt"
    assert (row["tail_threshold"], row["tail_xi"], row["tail_beta"], row["tail_exceedances"]) == (e.threshold, e.xi, e.beta, e.n_exceed)
    assert r.cvar == e.expected_shortfall and r.tail_prob == e.probability  # the figures the row stands beside
    assert row["vol_scale"] == r.factors["vol_scale"] < 1.0
    assert row["vol_scale"] == pytest.approx(json.loads(r.adjustments[0])["vol_scale"], abs=1e-10)  # the ledger rounds
    assert row["drawdown_scale"] == row["recovery_scale"] == 1.0

    short = risk.gate(risk.GateInput(**{**x.__dict__, "returns": hist[-252:], "tail_model": model}), loose)
    srow = pf._gate_factors(short.factors)  # 252 losses -> 13 exceedances < 25: the historical measures
    assert srow["tail_method"] == "historical" and srow["tail_xi"] is None and srow["tail_exceedances"] == 13
    assert pf._gate_factors(risk.gate(x, loose).factors)["tail_method"] == "historical"  # no tail model at all
