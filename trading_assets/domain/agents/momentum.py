"""Momentum agent: persistent trends continue (Jegadeesh-Titman 12-1 momentum, time-series trend).

Components (AgentSettings.momentum_components, each (feature, scale)):
    c_i = tanh(x_i / scale_i)  for x_i in mom_12_1, mom_6m, mom_3m, px_sma_200 by default
then the shared recipe of `base.py`: S = mean of the available c_i, confidence = coverage * coherence,
mu = h * IC * sigma_d * S with IC = AgentSettings.momentum_scale, sigma = sqrt(h) * sigma_d.
During warm-up (mom_12_1 needs 252 sessions) the shorter components still speak, at lower coverage.
"""

from __future__ import annotations

from trading_assets.domain.agents.base import Component, ScoreAgent, finite, tanh_of
from trading_assets.settings import AgentSettings


class MomentumAgent(ScoreAgent):
    name = "momentum"
    version = "1"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return (*(f for f, _ in settings.momentum_components), "ewma_vol_20", "vol_20")

    def components(self, settings: AgentSettings) -> list[Component]:
        return [Component(f, tanh_of(finite(f), scale)) for f, scale in settings.momentum_components]

    def ic(self, settings: AgentSettings) -> float:
        return settings.momentum_scale
