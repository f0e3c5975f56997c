"""Pattern agent: discrete chart events (crosses, breakouts, Bollinger and stochastic extremes).

Components (each in {-1, 0, +1}; 0 = no pattern today):
    c_cross    = golden_cross - death_cross                      (sma_50 crossing sma_200: continuation)
    c_breakout = breakout_20                                     (close above the prior 20-session high)
    c_stoch    = +1 if stoch_k_14 < low and stoch_k_14 > stoch_d_14 (bullish turn while oversold),
                 -1 if stoch_k_14 > high and stoch_k_14 < stoch_d_14 (bearish turn while overbought), else 0
    c_bb       = +1 if bb_pctb_20 < 0 (below the lower band), -1 if bb_pctb_20 > 1, else 0  (reversal)
Then the shared recipe (`base.py`) with IC = AgentSettings.pattern_scale. With no pattern firing,
every component is 0: coherence 0, so confidence 0 (the agent is silent).
"""

from __future__ import annotations

import polars as pl

from trading_assets.domain.agents.base import Component, ScoreAgent, finite
from trading_assets.settings import AgentSettings


class PatternAgent(ScoreAgent):
    name = "pattern"
    version = "1"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return (
            "golden_cross", "death_cross", "breakout_20", "stoch_k_14", "stoch_d_14", "bb_pctb_20",
            "ewma_vol_20", "vol_20",
        )  # fmt: skip

    def components(self, settings: AgentSettings) -> list[Component]:
        k, d, pctb = finite("stoch_k_14"), finite("stoch_d_14"), finite("bb_pctb_20")
        stoch = (
            pl.when(k.is_null() | d.is_null()).then(None)
            .when((k < settings.pattern_stoch_low) & (k > d)).then(1.0)
            .when((k > settings.pattern_stoch_high) & (k < d)).then(-1.0)
            .otherwise(0.0)
        )  # fmt: skip
        bb = pl.when(pctb.is_null()).then(None).when(pctb < 0).then(1.0).when(pctb > 1).then(-1.0).otherwise(0.0)
        return [
            Component("cross", (finite("golden_cross") > 0).cast(pl.Float64) - (finite("death_cross") > 0).cast(pl.Float64)),
            Component("breakout", (finite("breakout_20") > 0).cast(pl.Float64)),
            Component("stoch", stoch),
            Component("bb", bb),
        ]

    def ic(self, settings: AgentSettings) -> float:
        return settings.pattern_scale
