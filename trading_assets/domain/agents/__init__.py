"""The agent stack (pure): six agents, one module each, behind the protocol in `base.py`.

mu, sigma: expected simple return and its standard deviation over AgentSettings.horizon_sessions
sessions (default 1: the next session, as decimals); confidence in [0, 1].
"""

from trading_assets.domain.agents.base import OUTPUT_SCHEMA, Agent, Component, ScoreAgent
from trading_assets.domain.agents.regime import NEUTRAL, REGIMES, RISK_OFF, RISK_ON, market_state
from trading_assets.domain.agents.registry import (
    AGENTS,
    REGIME_AGENT,
    TRAINED_AGENTS,
    agent_names,
    invalid_outputs,
    required_features,
    run_agents,
    trained_variants,
)

__all__ = [
    "AGENTS",
    "Agent",
    "Component",
    "NEUTRAL",
    "OUTPUT_SCHEMA",
    "REGIMES",
    "REGIME_AGENT",
    "TRAINED_AGENTS",
    "trained_variants",
    "RISK_OFF",
    "RISK_ON",
    "ScoreAgent",
    "agent_names",
    "invalid_outputs",
    "market_state",
    "required_features",
    "run_agents",
]
