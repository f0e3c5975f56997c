"""Each agent pinned on hand-made feature frames, with the numbers computed by hand (math.tanh)."""

from __future__ import annotations

import math

import polars as pl
import pytest

from trading_assets.domain.agents import (
    AGENTS,
    OUTPUT_SCHEMA,
    Agent,
    Component,
    ScoreAgent,
    agent_names,
    invalid_outputs,
    run_agents,
)
from trading_assets.domain.agents.liquidity import LiquidityAgent
from trading_assets.domain.agents.mean_reversion import MeanReversionAgent
from trading_assets.domain.agents.momentum import MomentumAgent
from trading_assets.domain.agents.pattern import PatternAgent
from trading_assets.domain.agents.volatility import VolatilityAgent
from trading_assets.domain.agents.base import finite
from trading_assets.settings import AgentSettings
from trading_assets_tests.agents.helpers import D1, D2, frame, one

S = AgentSettings()
SD = 0.20 / math.sqrt(252)  # daily sigma of the neutral row (ewma_vol_20 = 0.20)


# --- momentum -----------------------------------------------------------------------------------
def test_momentum_clean_uptrend_is_positive_with_hand_computed_mu():
    f = frame([{"symbol": "X", "mom_12_1": 0.30, "mom_6m": 0.20, "mom_3m": 0.10, "px_sma_200": 0.10}])
    r = one(MomentumAgent().compute(f, S))
    score = math.tanh(1.0)  # every component is tanh(x / scale) = tanh(1)
    assert r["mu"] == pytest.approx(0.05 * SD * score, rel=1e-12)
    assert r["mu"] > 0
    assert r["sigma"] == pytest.approx(SD, rel=1e-12)
    assert r["confidence"] == pytest.approx(1.0)
    assert "mom_12_1=0.76" in r["explanation"]


def test_momentum_downtrend_is_the_mirror_image():
    up = frame([{"symbol": "X", "mom_12_1": 0.30, "mom_6m": 0.10, "mom_3m": 0.05, "px_sma_200": 0.02}])
    down = frame([{"symbol": "X", "mom_12_1": -0.30, "mom_6m": -0.10, "mom_3m": -0.05, "px_sma_200": -0.02}])
    ru, rd = one(MomentumAgent().compute(up, S)), one(MomentumAgent().compute(down, S))
    assert rd["mu"] == pytest.approx(-ru["mu"], rel=1e-12) and rd["mu"] < 0
    assert rd["confidence"] == pytest.approx(ru["confidence"])


def test_momentum_warm_up_uses_available_components_at_lower_coverage():
    f = frame([{"symbol": "X", "mom_12_1": None, "mom_6m": 0.20, "mom_3m": 0.10, "px_sma_200": 0.10}])
    r = one(MomentumAgent().compute(f, S))
    assert r["mu"] == pytest.approx(0.05 * SD * math.tanh(1.0), rel=1e-12)  # mean of 3 x tanh(1)
    assert r["confidence"] == pytest.approx(0.75)  # coverage 3/4, coherence 1
    assert "mom_12_1=na" in r["explanation"]


def test_momentum_silent_without_any_component_and_without_sigma():
    f = frame(
        [
            {"symbol": "X", "mom_12_1": None, "mom_6m": None, "mom_3m": None, "px_sma_200": None},
            {"symbol": "Y", "mom_6m": 0.2, "ewma_vol_20": None, "vol_20": None},
        ]
    )
    out = MomentumAgent().compute(f, S)
    for sym in ("X", "Y"):
        r = one(out, sym)
        assert r["mu"] is None and r["confidence"] == 0.0 and r["explanation"].startswith("silent")


def test_momentum_conflicting_components_cancel_to_zero_confidence():
    f = frame([{"symbol": "X", "mom_12_1": 0.30, "mom_3m": -0.10}])  # tanh(1) and -tanh(1), others 0
    r = one(MomentumAgent().compute(f, S))
    assert r["mu"] == pytest.approx(0.0, abs=1e-18)
    assert r["confidence"] == 0.0


def test_sigma_falls_back_to_vol_20_and_nan_counts_as_missing():
    f = frame([{"symbol": "X", "ewma_vol_20": float("nan"), "vol_20": 0.30, "mom_3m": 0.10, "mom_6m": float("inf")}])
    r = one(MomentumAgent().compute(f, S))
    assert r["sigma"] == pytest.approx(0.30 / math.sqrt(252), rel=1e-12)
    # inf is missing evidence: 3 of 4 components available, mean of (0, tanh(1), 0)
    assert r["mu"] == pytest.approx(0.05 * 0.30 / math.sqrt(252) * math.tanh(1.0) / 3, rel=1e-12)
    assert "mom_6m=na" in r["explanation"]


def test_horizon_scales_mu_by_h_and_sigma_by_sqrt_h():
    f = frame([{"symbol": "X", "mom_3m": 0.10}])
    r1 = one(MomentumAgent().compute(f, S))
    r5 = one(MomentumAgent().compute(f, AgentSettings(horizon_sessions=5)))
    assert r5["mu"] == pytest.approx(5 * r1["mu"], rel=1e-12)
    assert r5["sigma"] == pytest.approx(math.sqrt(5) * r1["sigma"], rel=1e-12)


# --- mean reversion ----------------------------------------------------------------------------
def test_mean_reversion_oversold_spike_is_positive_and_confident():
    f = frame([{"symbol": "X", "zscore_20": -2.5, "rsi_14": 22.0, "bb_pctb_20": -0.1}])
    r = one(MeanReversionAgent().compute(f, S))
    score = (math.tanh(2.5 / 2.0) + math.tanh(28.0 / 20.0) + math.tanh(0.6 / 0.5)) / 3
    assert r["mu"] == pytest.approx(0.02 * SD * score, rel=1e-12) and r["mu"] > 0
    assert r["confidence"] == pytest.approx(1.0)  # |z| 2.5 >= full_z 2, all three agree


def test_mean_reversion_overbought_is_negative():
    f = frame([{"symbol": "X", "zscore_20": 2.2, "rsi_14": 81.0, "bb_pctb_20": 1.15}])
    assert one(MeanReversionAgent().compute(f, S))["mu"] < 0


def test_mean_reversion_near_the_mean_is_barely_confident():
    f = frame([{"symbol": "X", "zscore_20": -0.5, "rsi_14": 45.0, "bb_pctb_20": 0.4}])
    r = one(MeanReversionAgent().compute(f, S))
    assert r["confidence"] == pytest.approx(0.25)  # coverage 1 * coherence 1 * |z| / 2


# --- volatility ----------------------------------------------------------------------------------
def test_volatility_calm_and_calming_name_is_positive_with_blended_sigma():
    f = frame([{"symbol": "X", "vol_rank_20": 0.1, "ewma_vol_20": 0.12, "vol_60": 0.18, "vol_20": 0.10}])
    r = one(VolatilityAgent().compute(f, S))
    sd = math.sqrt(0.7 * 0.12**2 + 0.3 * 0.18**2) / math.sqrt(252)
    score = (math.tanh(0.4 / 0.25) + math.tanh((1 - 0.12 / 0.18) / 0.25) + math.tanh(0.05 / 0.15)) / 3
    assert r["sigma"] == pytest.approx(sd, rel=1e-12)
    assert r["mu"] == pytest.approx(0.02 * sd * score, rel=1e-12) and r["mu"] > 0
    assert r["confidence"] == pytest.approx(1.0)


def test_volatility_stormy_name_is_negative():
    f = frame([{"symbol": "X", "vol_rank_20": 0.95, "ewma_vol_20": 0.60, "vol_60": 0.35, "vol_20": 0.55}])
    assert one(VolatilityAgent().compute(f, S))["mu"] < 0


# --- liquidity -----------------------------------------------------------------------------------
def test_liquidity_thin_name_is_penalized():
    f = frame([{"symbol": "X", "adv_dollar_21d": 1.0e6}])  # a fifth of the 5M minimum
    r = one(LiquidityAgent().compute(f, S))
    score = (math.tanh(math.log(0.2)) + 0.0) / 2
    assert r["mu"] == pytest.approx(0.01 * SD * score, rel=1e-12) and r["mu"] < 0
    assert r["confidence"] == pytest.approx(1.0)


def test_liquidity_zero_adv_is_the_full_penalty_and_volume_confirms_moves():
    f = frame(
        [
            {"symbol": "Z", "adv_dollar_21d": 0.0},
            {"symbol": "UP", "volume_ratio_20": 2.0, "logret_5": 0.03},
            {"symbol": "DN", "volume_ratio_20": 2.0, "logret_5": -0.03},
        ]
    )
    out = LiquidityAgent().compute(f, S)
    assert one(out, "Z")["mu"] == pytest.approx(0.01 * SD * (-1.0 / 2), rel=1e-12)
    up = one(out, "UP")["mu"]
    assert up == pytest.approx(0.01 * SD * math.tanh(math.log(2.0) / 0.5) / 2, rel=1e-12) and up > 0
    assert one(out, "DN")["mu"] == pytest.approx(-up, rel=1e-12)


# --- pattern -------------------------------------------------------------------------------------
def test_pattern_golden_cross_with_breakout_is_positive():
    f = frame([{"symbol": "X", "golden_cross": 1.0, "breakout_20": 1.0}])
    r = one(PatternAgent().compute(f, S))
    assert r["mu"] == pytest.approx(0.01 * SD * 0.5, rel=1e-12)  # (1 + 1 + 0 + 0) / 4
    assert r["confidence"] == pytest.approx(1.0)
    assert "cross=1.0" in r["explanation"] and "breakout=1.0" in r["explanation"]


def test_pattern_bearish_patterns_and_silence_without_patterns():
    f = frame(
        [
            {"symbol": "BEAR", "death_cross": 1.0, "bb_pctb_20": 1.2, "stoch_k_14": 85.0, "stoch_d_14": 90.0},
            {"symbol": "OVERSOLD", "stoch_k_14": 15.0, "stoch_d_14": 10.0},
            {"symbol": "NONE"},
        ]
    )
    out = PatternAgent().compute(f, S)
    assert one(out, "BEAR")["mu"] == pytest.approx(0.01 * SD * (-3 / 4), rel=1e-12)
    assert one(out, "OVERSOLD")["mu"] == pytest.approx(0.01 * SD * (1 / 4), rel=1e-12)
    none = one(out, "NONE")
    assert none["mu"] == 0.0 and none["confidence"] == 0.0


# --- protocol, registry, runner ------------------------------------------------------------------
def test_registry_has_the_nine_agents_with_unique_names_and_the_protocol():
    assert agent_names() == ["momentum", "mean_reversion", "volatility", "liquidity", "pattern", "regime",
                             "garch", "hmm_regime", "evt_tail"]
    assert all(isinstance(a, Agent) for a in AGENTS)


def test_run_agents_one_row_per_date_symbol_agent_sorted_with_the_schema():
    f = frame([{"symbol": "B"}, {"symbol": "A", "mom_3m": 0.1}, {"symbol": "SPY"}])
    out = run_agents(f, S, benchmark="SPY")
    assert out.schema == pl.Schema(OUTPUT_SCHEMA)
    assert out.height == 3 * 6
    assert out.select("date", "symbol", "agent").rows() == sorted(out.select("date", "symbol", "agent").rows())
    assert out["agent_version"].str.starts_with("momentum@1+").sum() == 3
    assert invalid_outputs(out).height == 0
    assert ((out["confidence"] >= 0) & (out["confidence"] <= 1)).all()


def test_a_seventh_agent_is_one_class_and_one_registry_entry():
    class Seventh(ScoreAgent):
        name = "seventh"

        def features(self, settings):
            return ("rsi_14", "ewma_vol_20", "vol_20")

        def components(self, settings):
            return [Component("rsi", (finite("rsi_14") - 50.0) / 50.0)]

        def ic(self, settings):
            return 0.01

    f = frame([{"symbol": "X", "rsi_14": 75.0}])
    out = run_agents(f, S, agents=(*AGENTS, Seventh()))
    assert one(out, "X", "seventh")["mu"] == pytest.approx(0.01 * SD * 0.5, rel=1e-12)
    assert out.height == 7
    with pytest.raises(ValueError, match="unique"):
        run_agents(f, S, agents=(*AGENTS, MomentumAgent()))


def test_bad_input_gives_clear_errors():
    f = frame([{"symbol": "X"}])
    with pytest.raises(ValueError, match="lacks columns.*mom_12_1"):
        MomentumAgent().compute(f.drop("mom_12_1"), S)
    with pytest.raises(ValueError, match="duplicate"):
        run_agents(pl.concat([f, f]), S)
    assert run_agents(f.clear(), S).height == 0


def test_sessions_are_independent_and_output_is_order_invariant():
    day1 = frame([{"symbol": "A", "mom_3m": 0.1}, {"symbol": "B", "zscore_20": -2.2}, {"symbol": "SPY", "vol_20": 0.3}], D1)
    day2 = frame([{"symbol": "A", "mom_3m": -0.1}, {"symbol": "B", "golden_cross": 1.0}, {"symbol": "SPY", "px_sma_200": -0.1}], D2)
    both = run_agents(pl.concat([day1, day2]), S, "SPY")
    alone = pl.concat([run_agents(day1, S, "SPY"), run_agents(day2, S, "SPY")])
    assert both.equals(alone)
    shuffled = pl.concat([day2, day1]).sample(fraction=1.0, shuffle=True, seed=3)
    assert run_agents(shuffled, S, "SPY").equals(both)


def test_invalid_outputs_flags_contract_breaks():
    f = frame([{"symbol": "X", "mom_3m": 0.1}])
    good = run_agents(f, S)
    broken = pl.concat(
        [
            good.head(1).with_columns(mu=pl.lit(float("nan"))),
            good.slice(1, 1).with_columns(sigma=pl.lit(0.0)),
            good.slice(2, 1).with_columns(confidence=pl.lit(1.5)),
            good.slice(3, 1).with_columns(mu=pl.lit(None, pl.Float64), confidence=pl.lit(0.5)),
        ]
    )
    problems = invalid_outputs(broken)["problem"].to_list()
    assert problems == ["non-finite value", "sigma <= 0", "confidence outside [0, 1]", "confident without mu or sigma"]
