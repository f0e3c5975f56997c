"""The regime agent: market state from the benchmark and the cross-section, pinned by hand."""

from __future__ import annotations

import math

import polars as pl
import pytest

from trading_assets.domain.agents import RISK_OFF, RISK_ON, NEUTRAL, market_state
from trading_assets.domain.agents.regime import RegimeAgent
from trading_assets.settings import AgentSettings
from trading_assets_tests.agents.helpers import D1, D2, frame, one

S = AgentSettings()


def _bull() -> pl.DataFrame:
    return frame(
        [
            {"symbol": "SPY", "px_sma_200": 0.05, "sma_50_above_200": 1.0, "vol_20": 0.12, "ewma_vol_20": 0.12},
            {"symbol": "A", "px_sma_200": 0.10, "beta_60": 1.5},
            {"symbol": "B", "px_sma_200": 0.05, "beta_60": None},
            {"symbol": "C", "px_sma_200": -0.02, "beta_60": 5.0},
        ]
    )


def test_bull_market_is_risk_on_with_hand_computed_evidence_and_capm_mu():
    out = RegimeAgent().compute(_bull(), S, benchmark="SPY")
    # trend tanh(0.05/0.05), cross +1, vol 0.12 <= 0.15 -> +1, breadth 2 * 2/3 - 1
    score = (math.tanh(1.0) + 1.0 + 1.0 + 1.0 / 3.0) / 4
    sigma_m = 0.12 / math.sqrt(252)
    assert out["state"].to_list() == [RISK_ON] * 4  # every symbol of the session, the benchmark too
    a = one(out, "A")
    assert a["mu"] == pytest.approx(0.02 * sigma_m * score * 1.5, rel=1e-12)
    assert one(out, "B")["mu"] == pytest.approx(0.02 * sigma_m * score * 1.0, rel=1e-12)  # beta missing -> 1
    assert one(out, "C")["mu"] == pytest.approx(0.02 * sigma_m * score * 3.0, rel=1e-12)  # beta capped at 3
    assert one(out, "SPY")["mu"] == pytest.approx(0.02 * sigma_m * score, rel=1e-12)
    assert a["confidence"] == pytest.approx(1.0)  # 4 of 4 evidence, all positive
    assert a["sigma"] == pytest.approx(0.20 / math.sqrt(252), rel=1e-12)  # the symbol's own sigma
    assert a["explanation"].startswith("regime=risk_on trend=0.76 cross=1.0 vol=1.0 breadth=0.33")


def test_bear_market_is_risk_off_and_mu_negative():
    f = frame(
        [
            {"symbol": "SPY", "px_sma_200": -0.08, "sma_50_above_200": 0.0, "vol_20": 0.35},
            {"symbol": "A", "px_sma_200": -0.10},
            {"symbol": "B", "px_sma_200": -0.01},
        ]
    )
    out = RegimeAgent().compute(f, S, benchmark="SPY")
    assert set(out["state"]) == {RISK_OFF}
    assert (out["mu"] < 0).all()


def test_mixed_evidence_is_neutral_and_vol_evidence_is_linear_between_the_levels():
    f = frame(
        [
            {"symbol": "SPY", "px_sma_200": 0.0, "sma_50_above_200": 1.0, "vol_20": 0.22},
            {"symbol": "A", "px_sma_200": 0.10},
            {"symbol": "B", "px_sma_200": -0.10},
        ]
    )
    m = market_state(f, S, "SPY").row(0, named=True)
    assert m["e_vol"] == pytest.approx((0.40 - 0.44) / 0.10)  # -0.4
    assert m["e_breadth"] == pytest.approx(0.0)
    assert m["score"] == pytest.approx((0.0 + 1.0 - 0.4 + 0.0) / 4)
    assert m["regime"] == NEUTRAL
    assert m["coherence"] == pytest.approx(0.6 / 1.4)


def test_without_the_benchmark_breadth_alone_decides_with_median_sigma():
    f = _bull().filter(pl.col("symbol") != "SPY")
    out = RegimeAgent().compute(f, S, benchmark="SPY")
    m = market_state(f, S, "SPY").row(0, named=True)
    assert m["coverage"] == pytest.approx(0.25) and m["score"] == pytest.approx(1 / 3)
    assert set(out["state"]) == {RISK_ON}
    assert one(out, "B")["mu"] == pytest.approx(0.02 * (0.20 / math.sqrt(252)) * (1 / 3), rel=1e-12)
    assert one(out, "B")["confidence"] == pytest.approx(0.25)


def test_no_evidence_leaves_the_regime_unknown_and_the_agent_silent():
    f = frame([{"symbol": "A", "px_sma_200": None}])
    r = one(RegimeAgent().compute(f, S, benchmark="SPY"), "A")
    assert r["state"] is None and r["mu"] is None and r["confidence"] == 0.0
    assert r["explanation"].startswith("silent: no market evidence")


def test_each_session_has_its_own_state():
    bull = _bull()
    bear = frame(
        [{"symbol": "SPY", "px_sma_200": -0.08, "sma_50_above_200": 0.0, "vol_20": 0.35}, {"symbol": "A", "px_sma_200": -0.1}],
        D2,
    )
    states = market_state(pl.concat([bull, bear]), S, "SPY")
    assert states.select("date", "regime").rows() == [(D1, RISK_ON), (D2, RISK_OFF)]


def test_inverted_vol_levels_are_a_clear_error():
    with pytest.raises(ValueError, match="must exceed"):
        market_state(_bull(), AgentSettings(regime_risk_off_vol=0.1, regime_risk_on_vol=0.2), "SPY")
