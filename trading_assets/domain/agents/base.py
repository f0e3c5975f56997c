"""The agent protocol and the shared scoring scaffold (pure polars).

An agent is a name, a version, the feature columns it reads, and a pure function from a features
frame (one or many sessions, one row per (date, symbol)) to one row per (date, symbol) with:

    mu          expected simple return over the horizon h = AgentSettings.horizon_sessions
                (h = 1: the next session's return, as a decimal)
    sigma       standard deviation of that return (decimal, > 0)
    confidence  in [0, 1]; 0 = the agent is silent for this row
    explanation a short text naming the evidence
    state       an optional categorical state (the regime agent's market state; null otherwise)

Scoring agents (all but the regime agent) share one recipe:

    components   c_i in [-1, 1] (null when its feature is missing: warm-up)
    score        S = sum_i c_i / n_avail                      (mean of the available components)
    coverage     n_avail / n
    coherence    |sum_i c_i| / sum_i |c_i|                     (1 = every component agrees in sign,
                                                                0 = they cancel or all are 0)
    confidence   coverage * coherence * extra                  (extra: an agent-specific factor in [0,1])
    sigma_d      daily volatility: ewma_vol_20 / sqrt(A), or vol_20 / sqrt(A) when the EWMA is missing
                 (A = AgentSettings.annualization)
    mu           h * IC * sigma_d * S                          (Grinold: alpha = IC * volatility * score)
    sigma        sqrt(h) * sigma_d

A row is silent (mu null, confidence 0, explanation says why) when no component is available or
sigma_d is missing or not > 0. Non-finite feature values (NaN, inf) count as missing. Rows are
sorted by (date, symbol); the result depends on each row alone, except for agents that declare a
cross-section (the regime agent), which use only rows of the same date: no row ever sees another
session, so a session's output does not depend on the run's window.

Agents with history and fitted state (the statistical agents: garch, hmm_regime, evt_tail) extend the
protocol additively (`HistoryAgent`, `FittedAgent` below): they declare the per-symbol feature columns
and the number of trailing sessions they read (`history`), and receive an `AgentContext` in `compute`
with that history (never a row after the block's last session) and their stored fits. A fitted agent
refits on a fixed calendar grid (`calendar.cadence_session`: every `cadence` sessions from the
calendar's first session; per symbol, on the symbol's own phase of it when the agent staggers its
refits: history.phase), each fit a deterministic function of the returns in its window; between
refits it filters forward with the fitted parameters. So a session's output is the same whether it is
run alone or inside a multi-year range: it depends on the grid fit at or before it and on the data up
to it, never on where the run window starts. Fits persist in the agent_fits table (AGENT_FIT_SCHEMA).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Protocol, runtime_checkable

import polars as pl

from trading_assets.settings import AgentSettings

OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "agent": pl.String(),
    "mu": pl.Float64(),
    "sigma": pl.Float64(),
    "confidence": pl.Float64(),
    "explanation": pl.String(),
    "agent_version": pl.String(),
    "state": pl.String(),
}
KEYS = ("date", "symbol")


@runtime_checkable
class Agent(Protocol):
    """What every agent provides. Register a new one in `registry.py` (one line)."""

    name: str
    version: str

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        """The feature columns it reads."""
        ...

    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None) -> pl.DataFrame:
        """One row per (date, symbol) of `features`, with the OUTPUT_SCHEMA columns."""
        ...


AGENT_FIT_SCHEMA: dict[str, pl.DataType] = {
    "fit_date": pl.Date(),  # the grid session whose close ends the fit window
    "agent": pl.String(),
    "symbol": pl.String(),  # MARKET for a market-level fit (the HMM)
    "params": pl.String(),  # JSON of the fitted parameters
    "converged": pl.Boolean(),
    "n_obs": pl.Int32(),
    "loglik": pl.Float64(),
    "message": pl.String(),  # why a fit failed or was not converged ('' when fine)
    "agent_version": pl.String(),
}
MARKET = "MARKET"  # the symbol of market-level fits


@dataclass(frozen=True)
class HistoryNeed:
    """What a history agent reads besides the session's features: per-symbol feature columns over the
    `sessions` sessions before (and including) each session it scores."""

    features: tuple[str, ...]
    sessions: int


@dataclass
class AgentContext:
    """What the runner hands a history agent: `history` = (date, symbol, *columns) rows from far enough
    back up to the last session being scored (nothing later); `fits` = the agent_fits rows it needs
    (AGENT_FIT_SCHEMA; missing ones are computed by the caller through `fit` first); `extra` = a free
    slot for other extensions (e.g. loaded models)."""

    history: pl.DataFrame
    fits: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=AGENT_FIT_SCHEMA))
    extra: dict[str, Any] = field(default_factory=dict)

    def for_agent(self, name: str) -> "AgentContext":
        fits = self.fits.filter(pl.col("agent") == name) if self.fits.height else self.fits
        return AgentContext(history=self.history, fits=fits, extra=self.extra)


@runtime_checkable
class HistoryAgent(Protocol):
    """An agent that also reads trailing history (and may be fitted). compute(..., context=AgentContext)."""

    name: str
    version: str

    def features(self, settings: AgentSettings) -> tuple[str, ...]: ...

    def history(self, settings: AgentSettings) -> HistoryNeed: ...

    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None,
                context: AgentContext | None = None) -> pl.DataFrame: ...


@runtime_checkable
class FittedAgent(HistoryAgent, Protocol):
    """A history agent with fitted state: `fit_sessions` = the grid sessions whose fits the given
    sessions may use; `fit(history, fit_dates, settings, benchmark)` -> AGENT_FIT_SCHEMA rows (one per
    fit date and symbol; failures are rows with converged False and a message, never an exception).
    Per-symbol agents (not `market_level`) also give `fit_dates(frame, settings)` = frame + `_grid`, the
    fit date serving each (date, symbol) row (the symbol's own phase of the grid when they stagger their
    refits), and take `fit(..., symbols={fit date: symbols})` to fit only those pairs, all in one batch."""

    def fit_sessions(self, sessions: Sequence[date], settings: AgentSettings) -> list[date]: ...

    def fit(self, history: pl.DataFrame, fit_dates: Sequence[date], settings: AgentSettings,
            benchmark: str | None = None) -> pl.DataFrame: ...


def agent_version(agent: Any, settings: AgentSettings) -> str:
    """'name@version+params_hash' (the agent_version column)."""
    return f"{agent.name}@{agent.version}+{params_hash(settings)}"


@dataclass(frozen=True)
class Component:
    """One piece of evidence: a label and a polars expression valued in [-1, 1] (null = missing)."""

    label: str
    expr: pl.Expr


def finite(name: str) -> pl.Expr:
    """The column with NaN and +-inf turned into null (missing evidence, never a number)."""
    c = pl.col(name).cast(pl.Float64)
    return pl.when(c.is_finite()).then(c).otherwise(None)


def tanh_of(x: pl.Expr, scale: float) -> pl.Expr:
    """tanh(x / scale): a bounded component in (-1, 1), linear near 0 with slope 1/scale."""
    if not scale > 0:
        raise ValueError(f"a component scale must be > 0, got {scale}")
    return (x / scale).tanh()


def daily_sigma(settings: AgentSettings) -> pl.Expr:
    """sigma_d = ewma_vol_20 / sqrt(A), falling back to vol_20 / sqrt(A) (annualized -> daily)."""
    root = math.sqrt(settings.annualization)
    return pl.coalesce(finite("ewma_vol_20"), finite("vol_20")) / root


def params_hash(settings: AgentSettings) -> str:
    """First 8 hex digits of sha256 over the agent settings (part of agent_version)."""
    text = json.dumps(asdict(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def fmt(x: pl.Expr, digits: int = 3) -> pl.Expr:
    """A number for the explanation text ('na' when missing)."""
    return pl.when(x.is_null()).then(pl.lit("na")).otherwise(x.round(digits).cast(pl.String))


def validate_input(features: pl.DataFrame, needed: Sequence[str], agent: str) -> None:
    """Clear errors for a frame the agent cannot read (never a silent drop)."""
    missing = [c for c in (*KEYS, *needed) if c not in features.columns]
    if missing:
        raise ValueError(f"agent {agent!r}: the features frame lacks columns {missing}")
    if features.height and features.select(pl.struct(*KEYS).is_duplicated().any()).item():
        raise ValueError(f"agent {agent!r}: duplicate (date, symbol) rows in the features frame")


def empty_output() -> pl.DataFrame:
    return pl.DataFrame(schema=OUTPUT_SCHEMA)


class ScoreAgent:
    """Base of the scoring agents: subclasses give the components, the IC and optional extras."""

    name: str = ""
    version: str = "1"

    # --- what subclasses define -----------------------------------------------------------
    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        raise NotImplementedError

    def components(self, settings: AgentSettings) -> list[Component]:
        raise NotImplementedError

    def ic(self, settings: AgentSettings) -> float:
        raise NotImplementedError

    def sigma_daily(self, settings: AgentSettings) -> pl.Expr:
        return daily_sigma(settings)

    def extra_confidence(self, settings: AgentSettings) -> pl.Expr:
        """A factor in [0, 1] multiplying the confidence (default 1)."""
        return pl.lit(1.0)

    # --- the shared recipe ----------------------------------------------------------------
    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None) -> pl.DataFrame:
        needed = self.features(settings)
        validate_input(features, needed, self.name)
        if features.height == 0:
            return empty_output()
        comps = self.components(settings)
        n = len(comps)
        labels = [f"_c{i}" for i in range(n)]
        h = settings.horizon_sessions
        frame = features.select(*KEYS, *needed).with_columns(
            [c.expr.alias(lbl) for c, lbl in zip(comps, labels)]
            + [self.sigma_daily(settings).alias("_sd"), self.extra_confidence(settings).alias("_extra")]
        )
        cs = [pl.col(lbl) for lbl in labels]
        n_avail = pl.sum_horizontal([c.is_not_null().cast(pl.Int32) for c in cs])
        total = pl.sum_horizontal([c.fill_null(0.0) for c in cs])
        absolute = pl.sum_horizontal([c.abs().fill_null(0.0) for c in cs])
        frame = frame.with_columns(
            _n=n_avail,
            _score=pl.when(n_avail > 0).then(total / n_avail),
            _coh=pl.when(absolute > 0).then(total.abs() / absolute).otherwise(0.0),
        )
        ok = (pl.col("_n") > 0) & pl.col("_sd").is_not_null() & (pl.col("_sd") > 0)
        conf = (pl.col("_n") / n) * pl.col("_coh") * pl.col("_extra").fill_null(0.0).clip(0.0, 1.0)
        evidence = [pl.concat_str([pl.lit(f"{c.label}="), fmt(pl.col(lbl), 2)]) for c, lbl in zip(comps, labels)]
        why_silent = (
            pl.when(pl.col("_n") == 0)
            .then(pl.lit("silent: no component available (warm-up or missing features)"))
            .otherwise(pl.lit("silent: daily volatility missing or not > 0"))
        )
        explanation = pl.concat_str(
            [*[e + pl.lit(" ") for e in evidence], pl.lit("| S="), fmt(pl.col("_score"), 3),
             pl.lit(" coverage="), fmt(pl.col("_n") / n, 2)]
        )
        out = frame.select(
            *KEYS,
            agent=pl.lit(self.name),
            mu=pl.when(ok).then(h * self.ic(settings) * pl.col("_sd") * pl.col("_score")),
            sigma=pl.when(pl.col("_sd") > 0).then(math.sqrt(h) * pl.col("_sd")),
            confidence=pl.when(ok).then(conf.clip(0.0, 1.0)).otherwise(0.0),
            explanation=pl.when(ok).then(explanation).otherwise(why_silent),
            agent_version=pl.lit(f"{self.name}@{self.version}+{params_hash(settings)}"),
            state=pl.lit(None, dtype=pl.String),
        )
        return out.cast(OUTPUT_SCHEMA).sort(*KEYS)  # type: ignore[arg-type]
