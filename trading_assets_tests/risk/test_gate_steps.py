"""The gate as steps (domain/risk_gate.py): the rules test_risk_gate.py does not hand-check, a new rule
as one function + one list entry, and properties on random books: after the gate every limit holds
for what it buys; a reduction is never rejected for adding risk; every step's code is reachable."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from trading_assets.domain import reasons as rc
from trading_assets.domain import risk, risk_gate
from trading_assets.settings import RiskSettings
from trading_assets_tests.risk.test_risk_gate import NAV, S, gi

RISK_ADDING = {rc.LEVERAGE_LIMIT, rc.CVAR_BREACH, rc.REDUCING_ONLY}


# --- rules by hand --------------------------------------------------------------------------------
def test_buys_into_a_sector_that_held_names_keep_above_its_limit_are_rejected():
    # S0 (Tech, pre-risk REJECT: fixed) holds 16% > 15%; S1 (Tech) wants 5%, S2 (Energy) 5%
    r = risk.gate(gi([0.16, 0.05, 0.05], sectors=["Tech", "Tech", "Energy"], qty=[1600.0, 0.0, 0.0],
                     pre_reject=[True, False, False], pre_codes=[[rc.DATA_QUALITY], [], []]), S)
    assert r.decision == [rc.REJECT, rc.REJECT, rc.EXECUTE_BUY]
    assert rc.SECTOR_LIMIT in r.reason_codes[1] and r.order_qty.tolist() == [0.0, 0.0, 500.0]
    assert "sector Tech would be 21.00% > 15%: buy rejected" in json.loads(r.adjustments[1])["notes"]
    assert "sector_scale" not in json.loads(r.adjustments[1])  # the fixed name alone breaches: scaling cannot help
    assert r.warnings == ["sector Tech at 16.00% above 15% (positions the gate could not trade)"]


def test_final_tail_probability_above_its_limit_rejects_the_buys_and_keeps_the_sells():
    # a held name the gate cannot trade (no price today) carries the tail: the buy is rejected, the sell goes
    t = 252
    rng = np.random.default_rng(5)
    ret = np.column_stack([rng.normal(0, 0.05, t), rng.normal(0, 0.01, t), rng.normal(0, 0.01, t)])
    s = dataclasses.replace(S, tail_prob_limit=0.001, cvar_limit=1.0)  # S0 alone: P(T4 > 4.7) ~ 0.005
    x = gi([0.05, 0.05, 0.0], qty=[3000.0, 0.0, 500.0], returns=ret)
    x.price_ok = np.array([False, True, True])  # S0: marked at its last close (30% of NAV), not tradable today
    r = risk.gate(x, s)
    assert r.decision == [rc.REJECT, rc.REJECT, rc.EXECUTE_SELL]
    assert rc.TAIL_RISK in r.reason_codes[1] and rc.NO_PRICE in r.reason_codes[0]
    assert r.proposed_qty.tolist() == [0.0, 500.0, -500.0] and r.order_qty.tolist() == [0.0, 0.0, -500.0]
    assert r.tail_prob > s.tail_prob_limit


def test_negative_target_means_hold_none_and_says_so():
    r = risk.gate(gi([-0.03, 0.02], qty=[300.0, 0.0]), S)
    assert r.order_qty.tolist() == [-300.0, 200.0] and r.decision == [rc.EXECUTE_SELL, rc.EXECUTE_BUY]
    assert json.loads(r.adjustments[0])["notes"] == ["negative raw target -0.0300 -> 0 (long-only book)"]
    assert r.reason_codes[0] == [rc.POSITION_REDUCTION]


def test_no_close_today_holds_the_position_and_rejects():
    x = gi([0.05, 0.05], qty=[100.0, 0.0], price=[100.0, 100.0])
    x.price_ok = np.array([False, True])
    r = risk.gate(x, S)
    assert r.decision == [rc.REJECT, rc.EXECUTE_BUY] and r.order_qty[0] == 0.0
    assert r.reason_codes[0] == [rc.NO_PRICE]
    assert r.approved_weight[0] == pytest.approx(100 * 100.0 / NAV)  # marked at its last close


def test_unchanged_book_has_empty_adjustments():
    r = risk.gate(gi([0.05], qty=[500.0]), S)
    assert r.decision == [rc.HOLD] and r.adjustments == ["{}"] and r.reason_codes == [[]]


def test_a_new_rule_is_one_function_and_one_list_entry():
    def no_buys_above_50_dollars(g: risk_gate.GateState) -> None:
        """A made-up rule: no buy of a name priced above 50."""
        g.reject_buys(g.price > 50, rc.RISK_OVERRIDE, "price above 50: buy rejected")

    steps = (*risk_gate.GATE_STEPS, no_buys_above_50_dollars)
    r = risk_gate.gate(gi([0.05, 0.05], price=[100.0, 40.0]), S, steps)
    assert r.decision == [rc.REJECT, rc.EXECUTE_BUY]
    assert r.reason_codes[0] == [rc.RISK_OVERRIDE]
    assert json.loads(r.adjustments[0]) == {"notes": ["price above 50: buy rejected"]}
    assert r.order_qty.tolist() == [0.0, 1250.0]


def test_the_ledger_records_codes_in_step_order_once_and_values_per_row():
    led = risk_gate.Ledger(3)
    led.code(np.array([True, False, True]), rc.SECTOR_LIMIT)
    led.code(np.array([True, True, False]), rc.VOL_SCALED)
    led.code(np.array([True, False, False]), rc.SECTOR_LIMIT)
    led.adjust(np.array([True, True, False]), "vol_scale", 0.5)
    led.adjust(np.array([False, True, True]), "sector_scale", np.array([9.0, 0.25, 0.75]))
    led.note(np.array([False, False, True]), "why")
    assert led.reason_codes([[], [rc.VOL_SCALED], [rc.DATA_QUALITY]]) == [
        [rc.SECTOR_LIMIT, rc.VOL_SCALED], [rc.VOL_SCALED], [rc.DATA_QUALITY, rc.SECTOR_LIMIT]]
    assert [json.loads(a) for a in led.adjustments()] == [
        {"vol_scale": 0.5}, {"sector_scale": 0.25, "vol_scale": 0.5}, {"notes": ["why"], "sector_scale": 0.75}]
    assert led.adjustments()[1] == json.dumps({"vol_scale": 0.5, "sector_scale": 0.25}, sort_keys=True)


# --- properties on random books --------------------------------------------------------------------
PRE_CODES = [rc.POSITIVE_EDGE, rc.NEGATIVE_EDGE, rc.DATA_QUALITY, rc.HIGH_DISAGREEMENT, rc.BELOW_TRADE_THRESHOLD,
             rc.SECTOR_LIMIT, rc.RISK_OVERRIDE, rc.NO_DECISION]


def random_session(rng: np.random.Generator) -> tuple[risk.GateInput, RiskSettings]:
    """Random sessions that reach every rule: missing and stale prices, pre-risk REJECTs, negative
    targets, risk-off regimes, recovery phases, HALTED / REDUCING, sector and gross breaches, tail /
    CVaR scaling and breaches, ADV caps, tiny orders, pre-risk codes the gate also uses."""
    n = int(rng.integers(1, 40))
    t = int(rng.choice([0, 1, 5, 60, 252]))
    price = rng.uniform(5, 200, n)
    price[rng.random(n) < 0.05] = np.nan
    price[rng.random(n) < 0.02] = 0.0
    nav = float(rng.choice([1e6, 1e5, 3e4]))
    held = rng.random(n) < 0.5
    qty = np.where(held, np.floor(rng.uniform(0, 0.12, n) * nav / rng.uniform(5, 200, n) + 1), 0.0)
    target = np.clip(rng.normal(0.04, 0.06, n), -0.05, 0.3)
    target[rng.random(n) < 0.1] = np.nan
    returns = rng.standard_t(4, size=(t, n)) * rng.uniform(0.005, 0.04)
    if t and n:
        returns[rng.random((t, n)) < 0.05] = np.nan
        returns[:, rng.random(n) < 0.1] = 0.0  # names with no variance
    x = risk.GateInput(
        symbols=[f"S{i}" for i in range(n)], sectors=[f"sec{int(k)}" for k in rng.integers(0, 4, n)],
        price=price, current_qty=qty, nav=nav, target_raw=target, pre_reject=rng.random(n) < 0.1,
        pre_codes=[[str(c) for c in rng.choice(PRE_CODES, size=int(rng.integers(0, 3)), replace=False)]
                   for _ in range(n)],
        regime=[str(r) for r in rng.choice(["neutral", "risk_off", "risk_on"], size=n)],
        vol=np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.05, 0.8, n)),
        adv=rng.choice([np.nan, 0.0, 50.0, 2_000.0, 1e7], size=n, p=[0.05, 0.03, 0.1, 0.2, 0.62]),
        returns=returns, trading_state=str(rng.choice([risk.ACTIVE] * 4 + [risk.REDUCING, risk.HALTED])),
        drawdown=float(rng.uniform(0, 0.25)), recovery_phase=int(rng.integers(0, 5)),
        price_ok=(rng.random(n) > 0.05) if rng.random() < 0.7 else None,
    )
    s = RiskSettings()
    if rng.random() < 0.5:  # tight limits: scaling, infeasible scaling and the final rejections
        s = dataclasses.replace(s, cvar_limit=float(rng.uniform(0.001, 0.03)),
                                tail_prob_limit=float(10 ** rng.uniform(-9, -1.3)),
                                tail_loss_threshold=float(rng.uniform(0.005, 0.05)),
                                max_gross_leverage=float(rng.uniform(0.3, 1.2)), max_sector=float(rng.uniform(0.05, 0.3)))
    return x, s


def check_properties(x: risk.GateInput, s: RiskSettings, r: risk.GateResult) -> None:
    tol = 1e-6
    buys = [i for i, d in enumerate(r.decision) if d == rc.EXECUTE_BUY]
    # the blocking check's rules
    assert risk.limit_violations(r.decision, r.approved_weight, r.current_weight, r.order_qty, x.sectors, s) == []
    if buys:  # whatever it buys, the final book is within every limit
        assert r.gross <= s.max_gross_leverage + tol
        assert r.cvar <= s.cvar_limit + 1e-9 and r.tail_prob <= s.tail_prob_limit + 1e-9
        for i in buys:
            assert r.approved_weight[i] <= s.max_single_name + tol
            assert r.sector_exposure.get(x.sectors[i], 0.0) <= s.max_sector + tol
            assert abs(r.order_qty[i]) <= np.floor(s.max_adv_fraction * x.adv[i])
    fixed_reject = (np.asarray(x.pre_reject) | ~(np.isfinite(x.price) & (x.price > 0))
                    | (np.zeros(len(x.symbols), bool) if x.price_ok is None else ~np.asarray(x.price_ok, bool)))
    for i, d in enumerate(r.decision):
        # a reduction is never rejected for adding risk
        if r.proposed_qty[i] < 0:
            assert d == rc.EXECUTE_SELL or x.trading_state == risk.HALTED or fixed_reject[i], (i, d, r.reason_codes[i])
            assert r.order_qty[i] == r.proposed_qty[i]
        if d == rc.REJECT and RISK_ADDING & set(r.reason_codes[i]) - set(x.pre_codes[i]):
            assert r.proposed_qty[i] > 0
        assert len(set(r.reason_codes[i])) == len(r.reason_codes[i])
        assert r.reason_codes[i][:len(x.pre_codes[i])] == list(x.pre_codes[i])
        json.loads(r.adjustments[i])
    np.testing.assert_allclose(r.approved_weight, (x.current_qty + r.order_qty) * np.where(
        np.isfinite(x.price) & (x.price > 0), x.price, 0.0) / x.nav)


def test_random_books_hold_every_limit_and_never_reject_a_reduction():
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for _ in range(1000):
        x, s = random_session(rng)
        r = risk.gate(x, s)
        check_properties(x, s, r)
        for pre, codes in zip(x.pre_codes, r.reason_codes):
            seen |= set(codes[len(pre):])
    assert seen >= {rc.NO_PRICE, rc.TRADING_HALTED, rc.RISK_OVERRIDE, rc.VOL_SCALED, rc.DRAWDOWN_SCALED,
                        rc.REGIME_RISK_OFF, rc.RECOVERY_PHASE, rc.SINGLE_NAME_LIMIT, rc.SECTOR_LIMIT,
                        rc.LEVERAGE_SCALED, rc.TAIL_RISK, rc.CVAR_SCALED, rc.ADV_LIMIT, rc.BELOW_TRADE_THRESHOLD,
                        rc.REDUCING_ONLY, rc.LEVERAGE_LIMIT, rc.CVAR_BREACH, rc.POSITION_REDUCTION,
                        rc.POSITION_INCREASE}, seen  # the random books reach every step's code
