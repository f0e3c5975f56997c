"""The agent registry and the runner. A new agent = one module + one line in AGENTS.

History agents (base.HistoryAgent: garch, hmm_regime, evt_tail) run only when the caller passes an
AgentContext (the agent_outputs asset does, with their history and fits); a caller with same-session
features only (no context) gets the stateless agents."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from trading_assets.domain.agents.base import KEYS, OUTPUT_SCHEMA, Agent, AgentContext
from trading_assets.domain.agents.evt_tail import EvtTailAgent
from trading_assets.domain.agents.garch_vol import GarchVolAgent
from trading_assets.domain.agents.hmm_regime import HmmRegimeAgent
from trading_assets.domain.agents.liquidity import LiquidityAgent
from trading_assets.domain.agents.mean_reversion import MeanReversionAgent
from trading_assets.domain.agents.momentum import MomentumAgent
from trading_assets.domain.agents.pattern import PatternAgent
from trading_assets.domain.agents.regime import RegimeAgent
from trading_assets.domain.agents.volatility import VolatilityAgent
from trading_assets.domain.agents.gbm_cross_section import GbmCrossSection
from trading_assets.domain.agents.gbm_ranker import GbmRanker
from trading_assets.domain.agents.trained import TrainedAgent, Variant
from trading_assets.domain.agents.ranknet import RankNetAgent
from trading_assets.domain.agents.trained_momentum import TrainedMomentum
from trading_assets.domain.agents.transformer import TransformerAgent
from trading_assets.settings import AgentSettings

AGENTS: tuple[Agent, ...] = (
    MomentumAgent(),
    MeanReversionAgent(),
    VolatilityAgent(),
    LiquidityAgent(),
    PatternAgent(),
    RegimeAgent(),
    GarchVolAgent(),
    HmmRegimeAgent(),
    EvtTailAgent(),
)
REGIME_AGENT = "regime"  # the heuristic regime agent (MetaBrainSettings.regime_agents orders the state sources)


def is_history_agent(agent) -> bool:
    """True for agents that read trailing history (they define `history`)."""
    return callable(getattr(agent, "history", None))


def is_fitted_agent(agent) -> bool:
    return is_history_agent(agent) and callable(getattr(agent, "fit", None)) and callable(getattr(agent, "fit_sessions", None))


def history_columns(settings: AgentSettings, agents: Sequence[Agent] = AGENTS) -> list[str]:
    """Every per-symbol history column the history agents read (sorted, unique)."""
    return sorted({c for a in agents if is_history_agent(a) for c in a.history(settings).features})


def history_sessions(settings: AgentSettings, agents: Sequence[Agent] = AGENTS) -> int:
    """The most trailing sessions any history agent reads before a session it scores (0 if none)."""
    return max((a.history(settings).sessions for a in agents if is_history_agent(a)), default=0)

def _deep(*factories) -> tuple:
    """The deep families when PyTorch is installed (the [deep] extra); none otherwise, said once."""
    from trading_assets.domain.deep import deep_unavailable_reason

    reason = deep_unavailable_reason()
    if reason is not None:
        import logging

        logging.getLogger("trading_assets").warning(reason)
        return ()
    return tuple(f() for f in factories)


# Agents fitted on history at cadence sessions (trained.py): one module + one line here.
_DEEP_FAMILIES = (RankNetAgent, TransformerAgent)
TRAINED_AGENTS: tuple[TrainedAgent, ...] = (
    GbmCrossSection(),
    GbmRanker(),
    TrainedMomentum(),
    *_deep(*_DEEP_FAMILIES),  # shadows until promoted; absent without torch
)


def check_disabled(settings: AgentSettings) -> tuple[str, ...]:
    """settings.disabled, validated: every name must be an agent of AGENTS or a trained family of
    TRAINED_AGENTS (the deep families' names count even without torch, where they are absent anyway)."""
    agents = [a.name for a in AGENTS]
    families = list(dict.fromkeys([a.name for a in TRAINED_AGENTS] + [f.name for f in _DEEP_FAMILIES]))
    unknown = sorted(set(settings.disabled) - set(agents) - set(families))
    if unknown:
        raise ValueError(f"agents.disabled: unknown agent or model family name(s) {unknown}; "
                         f"agents: {agents}; model families: {families}")
    return tuple(settings.disabled)


def enabled_agents(settings: AgentSettings, agents: Sequence[Agent] = AGENTS) -> tuple[Agent, ...]:
    """The agents a run runs: `agents` minus settings.disabled (validated, check_disabled)."""
    off = set(check_disabled(settings))
    return tuple(a for a in agents if a.name not in off)


def enabled_trained(settings: AgentSettings, agents: Sequence[TrainedAgent] = TRAINED_AGENTS) -> tuple[TrainedAgent, ...]:
    """The trained families a run trains and scores: `agents` minus settings.disabled (validated)."""
    off = set(check_disabled(settings))
    return tuple(a for a in agents if a.name not in off)


def trained_variants(agents: Sequence[TrainedAgent] = TRAINED_AGENTS, settings=None) -> list[tuple[TrainedAgent, Variant]]:
    """Every (family, variant) pair, families in registry order, the initial champion first."""
    from trading_assets.settings import ModelSettings

    s = settings or ModelSettings()
    pairs = [(a, v) for a in agents for v in a.variants(s)]
    names = [v.name for _, v in pairs] + [a.name for a in AGENTS]
    if len(set(names)) != len(names):
        raise ValueError(f"agent and variant names must be unique: {names}")
    return pairs


def agent_names(agents: Sequence[Agent] = AGENTS) -> list[str]:
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"agent names must be unique: {names}")
    return names


def required_features(settings: AgentSettings, agents: Sequence[Agent] = AGENTS) -> list[str]:
    """Every feature column the agents read (sorted, unique)."""
    return sorted({f for a in agents for f in a.features(settings)})


def run_agents(
    features: pl.DataFrame,
    settings: AgentSettings,
    benchmark: str | None = None,
    agents: Sequence[Agent] = AGENTS,
    context: AgentContext | None = None,
) -> pl.DataFrame:
    """Every agent on `features` -> the long model_outputs frame, one row per (date, symbol, agent),
    sorted by (date, symbol, agent). History agents run only with a `context` (module docstring)."""
    agent_names(agents)
    if features.height == 0:
        return pl.DataFrame(schema=OUTPUT_SCHEMA)
    frames = [
        a.compute(features, settings, benchmark, context=context.for_agent(a.name)) if is_history_agent(a)
        else a.compute(features, settings, benchmark)
        for a in agents
        if context is not None or not is_history_agent(a)
    ]
    return pl.concat(frames, how="vertical").sort(*KEYS, "agent")


def invalid_outputs(outputs: pl.DataFrame) -> pl.DataFrame:
    """Rows that break the output contract: NaN/inf in mu, sigma or confidence; sigma <= 0;
    confidence outside [0, 1] or null; a speaking row (confidence > 0) without mu or sigma.
    Null mu/sigma on a silent row (confidence 0) is by design. Adds a `problem` column."""
    mu, sigma, conf = pl.col("mu"), pl.col("sigma"), pl.col("confidence")
    nan_or_inf = lambda c: c.is_not_null() & ~c.is_finite()  # noqa: E731
    problem = (
        pl.when(nan_or_inf(mu) | nan_or_inf(sigma) | nan_or_inf(conf)).then(pl.lit("non-finite value"))
        .when(sigma.is_not_null() & (sigma <= 0)).then(pl.lit("sigma <= 0"))
        .when(conf.is_null() | (conf < 0) | (conf > 1)).then(pl.lit("confidence outside [0, 1]"))
        .when((conf > 0) & (mu.is_null() | sigma.is_null())).then(pl.lit("confident without mu or sigma"))
    )  # fmt: skip
    return outputs.with_columns(problem=problem).filter(pl.col("problem").is_not_null())
