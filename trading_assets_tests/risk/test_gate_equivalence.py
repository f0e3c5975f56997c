"""The column-wise risk gate gives, bit for bit, the GateResult of the row-by-row gate it replaced
(gate_reference.py) on random sessions that reach every rule: missing and stale prices, pre-risk
REJECTs, negative targets, risk-off regimes, recovery phases, HALTED / REDUCING, sector and gross
breaches, tail / CVaR scaling and breaches, ADV caps, tiny orders, pre-risk codes that the gate
also uses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trading_assets.domain import reasons as rc
from trading_assets.domain import risk
from trading_assets.settings import RiskSettings
from trading_assets_tests.risk import gate_reference

PRE_CODES = [rc.POSITIVE_EDGE, rc.NEGATIVE_EDGE, rc.DATA_QUALITY, rc.HIGH_DISAGREEMENT, rc.BELOW_TRADE_THRESHOLD,
             rc.SECTOR_LIMIT, rc.RISK_OVERRIDE, rc.NO_DECISION]


def random_session(rng: np.random.Generator) -> tuple[risk.GateInput, RiskSettings]:
    n = int(rng.integers(1, 40))
    t = int(rng.choice([0, 1, 5, 60, 252]))
    price = rng.uniform(5, 200, n)
    price[rng.random(n) < 0.05] = np.nan
    price[rng.random(n) < 0.02] = 0.0
    price_ok = rng.random(n) > 0.05
    nav = float(rng.choice([1e6, 1e5, 3e4]))
    held = rng.random(n) < 0.5
    qty = np.where(held, np.floor(rng.uniform(0, 0.12, n) * nav / rng.uniform(5, 200, n) + 1), 0.0)
    target = np.clip(rng.normal(0.04, 0.06, n), -0.05, 0.3)
    target[rng.random(n) < 0.1] = np.nan
    returns = rng.standard_t(4, size=(t, n)) * rng.uniform(0.005, 0.04)
    if t and n:
        returns[rng.random((t, n)) < 0.05] = np.nan
        returns[:, rng.random(n) < 0.1] = 0.0  # names with no variance
    adv = rng.choice([np.nan, 0.0, 50.0, 2_000.0, 1e7], size=n, p=[0.05, 0.03, 0.1, 0.2, 0.62])
    vol = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.05, 0.8, n))
    x = risk.GateInput(
        symbols=[f"S{i}" for i in range(n)],
        sectors=[f"sec{int(k)}" for k in rng.integers(0, 4, n)],
        price=price,
        current_qty=qty,
        nav=nav,
        target_raw=target,
        pre_reject=rng.random(n) < 0.1,
        pre_codes=[[str(c) for c in rng.choice(PRE_CODES, size=int(rng.integers(0, 3)), replace=False)]
                   for _ in range(n)],
        regime=[str(r) for r in rng.choice(["neutral", "risk_off", "risk_on"], size=n)],
        vol=vol,
        adv=adv,
        returns=returns,
        trading_state=str(rng.choice([risk.ACTIVE] * 4 + [risk.REDUCING, risk.HALTED])),
        drawdown=float(rng.uniform(0, 0.25)),
        recovery_phase=int(rng.integers(0, 5)),
        price_ok=price_ok if rng.random() < 0.7 else None,
    )
    s = RiskSettings()
    if rng.random() < 0.5:  # tight limits: scaling, infeasible scaling and the final rejections
        s = dataclasses.replace(s, cvar_limit=float(rng.uniform(0.001, 0.03)),
                                tail_prob_limit=float(10 ** rng.uniform(-9, -1.3)),
                                tail_loss_threshold=float(rng.uniform(0.005, 0.05)),
                                max_gross_leverage=float(rng.uniform(0.3, 1.2)), max_sector=float(rng.uniform(0.05, 0.3)))
    return x, s


def assert_same(a: risk.GateResult, b: risk.GateResult) -> None:
    assert a.decision == b.decision
    for name in ("order_qty", "approved_weight", "current_weight"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), strict=True)
    assert a.reason_codes == b.reason_codes
    assert a.adjustments == b.adjustments
    assert (a.cvar, a.tail_prob, a.gross) == (b.cvar, b.tail_prob, b.gross)
    assert a.sector_exposure == b.sector_exposure and a.warnings == b.warnings and a.factors == b.factors


@pytest.mark.parametrize("seed", range(8))
def test_gate_equals_reference(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    slots_set = [0]
    row_codes = risk._row_codes

    def recording(pre_codes, bits):
        slots_set[0] |= int(np.bitwise_or.reduce(bits)) if len(bits) else 0
        return row_codes(pre_codes, bits)

    monkeypatch.setattr(risk, "_row_codes", recording)
    for _ in range(150):
        x, s = random_session(rng)
        assert_same(risk.gate(x, s), gate_reference.gate(x, s))
    if seed == 0:  # the random sessions reach every rule of the gate (every reason-code slot)
        assert slots_set[0] == (1 << len(risk._SLOTS)) - 1, f"{slots_set[0]:b}"
