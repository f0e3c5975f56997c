"""Mean-reversion agent: stretched prices snap back (short-horizon reversal at oscillator extremes).

Components:
    c_z    = tanh(-zscore_20 / z_scale)                 (below the 20-session mean -> positive)
    c_rsi  = tanh((50 - rsi_14) / rsi_scale)            (oversold RSI -> positive)
    c_pctb = tanh((0.5 - bb_pctb_20) / pctb_scale)      (below the lower Bollinger band -> positive)
Extra confidence factor: min(1, |zscore_20| / full_z) (0 when zscore_20 is missing): reversion is only
credible at extremes, so a price near its mean leaves the agent nearly silent.
Then the shared recipe (`base.py`) with IC = AgentSettings.mean_reversion_scale.
"""

from __future__ import annotations

import polars as pl

from trading_assets.domain.agents.base import Component, ScoreAgent, finite, tanh_of
from trading_assets.settings import AgentSettings


class MeanReversionAgent(ScoreAgent):
    name = "mean_reversion"
    version = "1"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("zscore_20", "rsi_14", "bb_pctb_20", "ewma_vol_20", "vol_20")

    def components(self, settings: AgentSettings) -> list[Component]:
        return [
            Component("z20", tanh_of(-finite("zscore_20"), settings.mean_reversion_z_scale)),
            Component("rsi14", tanh_of(50.0 - finite("rsi_14"), settings.mean_reversion_rsi_scale)),
            Component("pctb", tanh_of(0.5 - finite("bb_pctb_20"), settings.mean_reversion_pctb_scale)),
        ]

    def ic(self, settings: AgentSettings) -> float:
        return settings.mean_reversion_scale

    def extra_confidence(self, settings: AgentSettings) -> pl.Expr:
        return (finite("zscore_20").abs() / settings.mean_reversion_full_z).clip(0.0, 1.0).fill_null(0.0)
