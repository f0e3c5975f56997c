"""Volatility agent: the low-volatility anomaly, and the best sigma forecast of the stack.

Components:
    c_rank  = tanh((0.5 - vol_rank_20) / rank_scale)               (calmer than the cross-section -> positive)
    c_trend = tanh((1 - ewma_vol_20 / vol_60) / trend_scale)        (volatility falling -> positive)
    c_level = tanh((target - vol_20) / target)                      (below the absolute calm level -> positive)
Sigma (its own forecast): sigma_d = sqrt(b * ewma_vol_20^2 + (1 - b) * vol_60^2) / sqrt(A), with
b = volatility_blend (fast EWMA vs slow window: EWMA reacts, the 60-session window anchors);
when either is missing, the default sigma_d of `base.py`.
Then the shared recipe (`base.py`) with IC = AgentSettings.volatility_scale.
"""

from __future__ import annotations

import math

import polars as pl

from trading_assets.domain.agents.base import Component, ScoreAgent, daily_sigma, finite, tanh_of
from trading_assets.settings import AgentSettings


class VolatilityAgent(ScoreAgent):
    name = "volatility"
    version = "1"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("vol_rank_20", "ewma_vol_20", "vol_60", "vol_20")

    def components(self, settings: AgentSettings) -> list[Component]:
        ratio = finite("ewma_vol_20") / finite("vol_60")
        return [
            Component("rank", tanh_of(0.5 - finite("vol_rank_20"), settings.volatility_rank_scale)),
            Component("trend", tanh_of(1.0 - pl.when(ratio.is_finite()).then(ratio), settings.volatility_trend_scale)),
            Component("level", tanh_of(settings.volatility_target - finite("vol_20"), settings.volatility_target)),
        ]

    def ic(self, settings: AgentSettings) -> float:
        return settings.volatility_scale

    def sigma_daily(self, settings: AgentSettings) -> pl.Expr:
        b = settings.volatility_blend
        blend = (b * finite("ewma_vol_20") ** 2 + (1.0 - b) * finite("vol_60") ** 2).sqrt() / math.sqrt(
            settings.annualization
        )
        return pl.coalesce(blend, daily_sigma(settings))
