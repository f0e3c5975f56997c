"""Liquidity agent: volume that confirms a move, and a penalty on names too thin to trade.

Components:
    c_adv  = tanh(min(0, ln(adv_dollar_21d / min_adv)) / adv_scale)          (in [-1, 0]: only penalizes
             names whose 21-session dollar ADV is below liquidity_min_dollar_adv; zero ADV -> -1)
    c_flow = tanh(ln(volume_ratio_20) / flow_scale) * sign(logret_5)         (heavy volume in the direction
             of the 5-session move -> that direction; a move on thin volume -> against it)
Then the shared recipe (`base.py`) with IC = AgentSettings.liquidity_scale.
"""

from __future__ import annotations

import polars as pl

from trading_assets.domain.agents.base import Component, ScoreAgent, finite, tanh_of
from trading_assets.settings import AgentSettings


def _finite(x: pl.Expr) -> pl.Expr:
    return pl.when(x.is_finite()).then(x)


class LiquidityAgent(ScoreAgent):
    name = "liquidity"
    version = "1"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("adv_dollar_21d", "volume_ratio_20", "logret_5", "ewma_vol_20", "vol_20")

    def components(self, settings: AgentSettings) -> list[Component]:
        adv = finite("adv_dollar_21d")
        log_adv = pl.when(adv >= 0).then((adv / settings.liquidity_min_dollar_adv).log())
        c_adv = tanh_of(pl.min_horizontal(log_adv, pl.lit(0.0)), settings.liquidity_adv_scale)
        vr = finite("volume_ratio_20")
        c_flow = tanh_of(_finite(vr.log()), settings.liquidity_flow_scale) * finite("logret_5").sign()
        # min_horizontal ignores nulls: keep a missing ADV missing
        return [Component("adv", pl.when(adv.is_not_null()).then(c_adv)), Component("flow", _finite(c_flow))]

    def ic(self, settings: AgentSettings) -> float:
        return settings.liquidity_scale
