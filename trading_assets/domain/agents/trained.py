"""The protocol of a TRAINED agent (fitted on history at cadence sessions) and the shared scoring recipe.

A trained agent is a family of model variants. The first variant is the initial champion (its agent
name is the family name); the others are challengers scored every session as shadows (agent name
"<family>.<variant suffix>"). The scaffold (domain/models, defs/models.py, defs/signals.py) does
everything else: the cadence, the purge, the per-session rank-gauss features (domain/models/normalize),
the artifact files and MLflow, the promotion, and the score -> (mu, sigma, confidence) recipe below.
A new trained model = one module implementing `TrainedAgent` + one line in registry.TRAINED_AGENTS.

Score -> output, for variant v on session t (symbols of the session with a score; benchmark excluded):

    z_i      = (score_i - mean_t(score)) / sd_t(score)          the session z-score (sd with ddof 0;
                                                                 sd = 0 -> z = 0), clipped to [-3, 3]
    sigma_d  = ewma_vol_20 / sqrt(A), else vol_20 / sqrt(A)      (as the heuristic agents, base.py)
    IC_t, t_t  the variant's rolling out-of-sample rank IC and its t-statistic as of t (domain/models/oos.py:
               labels known at t only, the last ModelSettings.ic_window label sessions)
    mu       = h * max(IC_t, 0) * sigma_d * z_i                  (Grinold: alpha = IC x volatility x score)
    sigma    = sqrt(h) * sigma_d
    confidence = clip(t_t / confidence_full_t, 0, 1)             (0 when IC_t <= 0: not earned)

Silent rows (confidence 0, mu null) say why in `explanation`: NOT_TRAINED (no model serves t: too little
history), NO_OOS_HISTORY (fewer than ic_min_sessions out-of-sample label sessions), NO_EDGE (IC_t <= 0
or t_t <= 0), NO_FEATURES / NO_SIGMA, NON_FINITE_SCORE (the model returned NaN or inf for that row). The raw score is kept in model_outputs.score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from trading_assets.settings import AgentSettings, ModelSettings

NOT_TRAINED = "NOT_TRAINED"
NO_OOS_HISTORY = "NO_OOS_HISTORY"
NO_EDGE = "NO_EDGE"
NON_FINITE_SCORE = "NON_FINITE_SCORE"
Z_CLIP = 3.0


@dataclass(frozen=True)
class Variant:
    """One configuration of a family. name: the agent name it scores under (the family name for the
    initial champion). params: hyperparameters (hashed into the model version). window_years: None =
    the settings' window (expanding by default), N = a sliding N-year window."""

    name: str
    params: tuple[tuple[str, object], ...] = field(default_factory=tuple)
    window_years: int | None = None

    def params_dict(self) -> dict:
        return dict(self.params)


@runtime_checkable
class TrainedAgent(Protocol):
    name: str  # the family (= the initial champion's agent name)
    version: str  # bump when fit/predict change (part of every model version hash)
    kind: str  # "learned" | "stats" | "deep": what trains it (informational)

    def features(self, settings: ModelSettings) -> tuple[str, ...]:
        """The feature columns it reads (normalized per session by the scaffold)."""
        ...

    def variants(self, settings: ModelSettings) -> tuple[Variant, ...]:
        """The initial champion first, then the challengers (scored as shadows)."""
        ...

    def fit(self, train: pl.DataFrame, variant: Variant, settings: ModelSettings, seed: int) -> bytes:
        """train: date, symbol, the features (rank-gauss per session, Float32), label (the h = 1 fwd_return),
        sorted by (date, symbol). Returns the model artifact (deterministic bytes)."""
        ...

    def predict(self, artifact: bytes, x: pl.DataFrame, variant: Variant, settings: ModelSettings) -> np.ndarray:
        """Scores (higher = better expected next-session return) for the rows of x (features as in fit)."""
        ...


# --- optional capabilities of a family (additive: a family that defines none is a plain TrainedAgent) -----
#   lookback_sessions(variant) -> int       sessions of features BEFORE each scored/training session the
#                                           model reads (a sequence model); 0 when absent
#   fit_with_history(train, history, variant, settings, seed) -> bytes
#   predict_with_history(artifact, x, history, variant, settings) -> (scores, latents (n, k) or None)
#                                           history = every session's normalized rows from lookback
#                                           sessions before the first row of train / x to its last
#   starts_as_shadow: bool, incumbent: str  a family that reaches the Meta-Brain only by beating the
#                                           incumbent family's champion under the promotion rule
#   cadence_multiple: int                   retrains every cadence x this sessions (costly models)


def lookback_sessions(agent: TrainedAgent, variant: Variant) -> int:
    """Sessions of history before a row that the family reads (0 for per-row models)."""
    f = getattr(agent, "lookback_sessions", None)
    return int(f(variant)) if f is not None else 0


def fit_family(agent: TrainedAgent, train: pl.DataFrame, history: pl.DataFrame | None, variant: Variant, settings: ModelSettings,
               seed: int) -> bytes:
    """agent.fit, or fit_with_history for a family that reads sequences."""
    if hasattr(agent, "fit_with_history"):
        if history is None:
            raise ValueError(f"{agent.name} reads {lookback_sessions(agent, variant)} sessions of history: pass them")
        return agent.fit_with_history(train, history, variant, settings, seed)
    return agent.fit(train, variant, settings, seed)


def predict_family(agent: TrainedAgent, artifact: bytes, x: pl.DataFrame, variant: Variant, settings: ModelSettings,
                   history: pl.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(scores for the rows of x, latents or None): agent.predict, or predict_with_history."""
    if hasattr(agent, "predict_with_history"):
        if history is None:
            raise ValueError(f"{agent.name} reads {lookback_sessions(agent, variant)} sessions of history: pass them")
        return agent.predict_with_history(artifact, x, history, variant, settings)
    return agent.predict(artifact, x, variant, settings), None


def cadence_multiple(agent: TrainedAgent, settings: ModelSettings, variant: Variant | None = None) -> int:
    """How many cadences between two retrains of a variant: settings.deep_cadence_multiple for every
    variant of a deep family; otherwise 1 for the family's first variant (the initial champion) and
    settings.shadow_cadence_multiple for its challengers. Fixed by the variant's place in the family, not
    by its role of the day (a promoted challenger keeps its cadence): the role is decided by agent_outputs
    after model_training, so a role-dependent cadence could not be the same in a range run and in the
    daily runs it replays."""
    if getattr(agent, "kind", "") == "deep":
        return max(1, int(settings.deep_cadence_multiple))
    if variant is None or variant.name == agent.name:
        return 1
    return max(1, int(settings.shadow_cadence_multiple))


def finite_scores(scored: pl.DataFrame) -> pl.DataFrame:
    """A model's NaN or infinite score (e.g. a sequence model on a symbol with too short a history) becomes a
    missing score with reason NON_FINITE_SCORE: that row is silent, and the session's z-scores of the other
    symbols stay finite (one NaN would turn every mu of the session into NaN)."""
    ok = pl.col("score").is_finite().fill_null(False)
    return scored.with_columns(
        reason=pl.when(ok).then(pl.lit(None, pl.String)).otherwise(pl.lit(f"{NON_FINITE_SCORE}: the model's score is NaN or infinite")),
        score=pl.when(ok).then(pl.col("score")),
    )


def session_z(score: pl.Expr) -> pl.Expr:
    """(score - session mean) / session sd (ddof 0), 0 when sd = 0, clipped to [-Z_CLIP, Z_CLIP] (use .over("date"))."""
    sd = score.std(ddof=0)
    return pl.when(sd > 0).then((score - score.mean()) / sd).otherwise(pl.when(score.is_not_null()).then(0.0)).clip(-Z_CLIP, Z_CLIP)


def scores_to_outputs(
    scored: pl.DataFrame, calibration: pl.DataFrame, agents: AgentSettings, models: ModelSettings
) -> pl.DataFrame:
    """The module docstring's recipe.

    scored: date, symbol, agent, score (null = no model), model_version, role, ewma_vol_20, vol_20,
    reason (why score is null, or null). calibration: agent, date, ic_n, ic_mean, ic_t (oos.rolling_ic_asof).
    Returns model_outputs rows: date, symbol, agent, mu, sigma, confidence, explanation, agent_version,
    state, score, role, model_version."""
    h = agents.horizon_sessions
    root = math.sqrt(agents.annualization)
    sd_expr = pl.coalesce(
        pl.when(pl.col("ewma_vol_20").is_finite()).then(pl.col("ewma_vol_20")),
        pl.when(pl.col("vol_20").is_finite()).then(pl.col("vol_20")),
    ) / root
    f = scored.join(calibration.select("agent", "date", "ic_n", "ic_mean", "ic_t"), on=["agent", "date"], how="left")
    f = f.with_columns(_sd=sd_expr, _z=session_z(pl.col("score")).over("date", "agent"))
    edge = pl.col("ic_mean").fill_null(0.0).clip(lower_bound=0.0)
    conf = (pl.col("ic_t").fill_null(0.0) / models.confidence_full_t).clip(0.0, 1.0)
    reason = (
        pl.when(pl.col("score").is_null()).then(pl.col("reason").fill_null(pl.lit("NO_FEATURES")))
        .when(pl.col("ic_n").is_null()).then(pl.lit(NO_OOS_HISTORY))
        .when((pl.col("ic_mean") <= 0) | (pl.col("ic_t").fill_null(0.0) <= 0)).then(pl.lit(NO_EDGE))
        .when(pl.col("_sd").is_null() | (pl.col("_sd") <= 0)).then(pl.lit("NO_SIGMA"))
    )  # fmt: skip
    f = f.with_columns(_why=reason)
    speaks = pl.col("_why").is_null()
    r = lambda e, d=4: pl.when(e.is_null()).then(pl.lit("na")).otherwise(e.round(d).cast(pl.String))  # noqa: E731
    text = pl.concat_str(
        [pl.lit("score="), r(pl.col("score")), pl.lit(" z="), r(pl.col("_z"), 2), pl.lit(" | oos rank IC="), r(pl.col("ic_mean")),
         pl.lit(" t="), r(pl.col("ic_t"), 2), pl.lit(" n="), pl.col("ic_n").cast(pl.String).fill_null("0"), pl.lit(" | model "),
         pl.col("model_version").fill_null("none"), pl.lit(" ("), pl.col("role"), pl.lit(")")]
    )
    out = f.select(
        "date", "symbol", "agent",
        mu=pl.when(speaks).then(h * edge * pl.col("_sd") * pl.col("_z")),
        sigma=pl.when(pl.col("_sd") > 0).then(math.sqrt(h) * pl.col("_sd")),
        confidence=pl.when(speaks).then(conf).otherwise(0.0),
        explanation=pl.when(speaks).then(text).otherwise(pl.concat_str([pl.lit("silent: "), pl.col("_why"), pl.lit(" | "), text])),
        agent_version=pl.col("agent_version"),
        state=pl.lit(None, dtype=pl.String),
        score=pl.col("score").cast(pl.Float64),
        role=pl.col("role"),
        model_version=pl.col("model_version"),
    )  # fmt: skip
    return out.sort("date", "symbol", "agent")
