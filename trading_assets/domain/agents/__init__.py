"""The agent stack (pure): nine agents, one module each, behind the protocol in `base.py` (six stateless,
three with history and fitted state: garch, hmm_regime, evt_tail).

mu, sigma: expected simple return and its standard deviation over AgentSettings.horizon_sessions
sessions (default 1: the next session, as decimals); confidence in [0, 1].
"""

from trading_assets.domain.agents.base import (
    AGENT_FIT_SCHEMA,
    MARKET,
    OUTPUT_SCHEMA,
    Agent,
    AgentContext,
    Component,
    FittedAgent,
    HistoryAgent,
    HistoryNeed,
    ScoreAgent,
)
from trading_assets.domain.agents.regime import NEUTRAL, REGIMES, RISK_OFF, RISK_ON, market_state
from trading_assets.domain.agents.registry import (
    AGENTS,
    REGIME_AGENT,
    TRAINED_AGENTS,
    agent_names,
    check_disabled,
    enabled_agents,
    enabled_trained,
    history_columns,
    history_sessions,
    invalid_outputs,
    is_fitted_agent,
    is_history_agent,
    required_features,
    run_agents,
    trained_variants,
)

__all__ = [
    "AGENT_FIT_SCHEMA",
    "AgentContext",
    "FittedAgent",
    "HistoryAgent",
    "HistoryNeed",
    "MARKET",
    "history_columns",
    "history_sessions",
    "is_fitted_agent",
    "is_history_agent",
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
    "check_disabled",
    "enabled_agents",
    "enabled_trained",
    "invalid_outputs",
    "market_state",
    "required_features",
    "run_agents",
]
