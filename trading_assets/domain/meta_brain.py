"""The Meta-Brain: from the agents' (mu, sigma, confidence) to one pre-risk decision per (session, symbol).

Units: mu and sigma as the agents give them (expected simple return and its standard deviation over
the agents' horizon, daily decimals by default). All parameters: `MetaBrainSettings`.

For a (session t, symbol i), the ACTIVE agents k are those with finite mu_k, sigma_k > 0 and
confidence c_k >= min_confidence (the others are silent). Then:

1. Confidence-weighted ensemble
       w_k   = c_k / sum_j c_j
       mu_hat = sum_k w_k * mu_k
2. Disagreement (confidence-weighted population variance of the agents' mu)
       D = Var_k(mu_k) = sum_k w_k * (mu_k - mu_hat)^2            (0 with one agent)
3. sigma_hat: the standard deviation of the agents' mixture (law of total variance)
       sigma_hat^2 = sum_k w_k * sigma_k^2 + D
   When settings.sigma_agent names an agent (default "garch") whose row for (t, i) has a finite
   sigma > 0 (its GARCH forecast, or the trailing fallback it reports), that sigma is every active
   agent's sigma_k: sigma_hat^2 = sigma_garch^2 + D (one volatility model for the symbol; the agents
   disagree about mu, not about how volatile the name is). The sigma agent need not be active.
4. Disagreement penalty
       mu_hat_adj = mu_hat * exp(-beta * D)                         (beta = disagreement_beta)
   HIGH_DISAGREEMENT (informational) when exp(-beta * D) < high_disagreement_penalty.
5. Robust z-score across the session's scored symbols (not REJECTed, benchmark excluded):
       m = median(mu_hat_adj), MAD = median(|mu_hat_adj - m|)
       z = (mu_hat_adj - m) / (1.4826 * MAD)                          if MAD > 0
       z = (mu_hat_adj - m) / (1.2533 * MeanAD), MeanAD = mean|x - m|  if MAD = 0 < MeanAD
           (the modified z-score's fallback, Iglewicz-Hoaglin / IBM: sqrt(pi/2) = 1.2533 makes the mean
            absolute deviation a consistent sigma estimate for normal data; MAD = 0 happens when more
            than half the cross-section shares one value, e.g. a universe mostly silent at 0)
       z = 0                                                          if every value equals m
   then, when z_clip > 0, z = clip(z, -z_clip, z_clip) and Z_CLIPPED (informational) when |z| was beyond.
6. Fractional Kelly, the raw target weight before risk (long-only book):
       kelly_fraction    = gamma * mu_hat_adj / sigma_hat^2           (gamma = kelly_gamma)
       target_weight_raw = max(0, kelly_fraction)
7. Pre-risk decision, relative to a flat long-only book (the meta_decisions asset is stateless; the
   risk gate compares the target with the current position):
       REJECT [DATA_QUALITY]   the symbol's data_quality_log row for t failed or is missing
       REJECT [SYSTEMIC_DATA_FAULT]  the session is halted (domain/session_health.py): every symbol
       REJECT [UNCONFIRMED_MOVE]     the quality row is MOVE_UNCONFIRMED: an extreme move without a
                                     corporate action that the next sessions have not confirmed yet
       REJECT [NO_FEATURES]    no features row (hence no agent output) for t (also added to a DATA_QUALITY reject)
       REJECT [NO_SIGNAL]      every agent silent
       EXECUTE_BUY [POSITIVE_EDGE]   target_weight_raw >= min_trade_weight
       EXECUTE_SELL [NEGATIVE_EDGE]  mu_hat_adj < 0 and -kelly_fraction >= min_trade_weight
                                     (the book should not hold it)
       HOLD [BELOW_TRADE_THRESHOLD]  otherwise
   REJECTed rows carry null mu_hat .. target_weight_raw (nothing was estimated from bad inputs).

Every output row is computed from the same session's rows only, so a session's decisions are the same
whether it is run alone or inside a multi-year range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import polars as pl

from trading_assets.domain import reasons
from trading_assets.settings import MetaBrainSettings

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD -> standard deviation for normal data
MOVE_UNCONFIRMED = "MOVE_UNCONFIRMED"  # the quality code of a held extreme move (domain/quality.py)
MEANAD_TO_SIGMA = 1.2533  # sqrt(pi / 2): mean absolute deviation -> standard deviation for normal data

DECISION_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "mu_hat": pl.Float64(),
    "sigma_hat": pl.Float64(),
    "disagreement": pl.Float64(),
    "mu_hat_adj": pl.Float64(),
    "z_score": pl.Float64(),
    "kelly_fraction": pl.Float64(),
    "target_weight_raw": pl.Float64(),
    "pre_risk_decision": pl.String(),
    "reason_codes": pl.List(pl.String()),
    "n_agents": pl.Int32(),
    "regime": pl.String(),
}
# the values a non-REJECT decision must have finite (nonfinite_rows)
FINITE_COLUMNS = ("mu_hat", "sigma_hat", "z_score", "kelly_fraction", "target_weight_raw")
VALUE_COLUMNS = ("mu_hat", "sigma_hat", "disagreement", "mu_hat_adj", "z_score", "kelly_fraction", "target_weight_raw")


def active_outputs(outputs: pl.DataFrame, settings: MetaBrainSettings) -> pl.DataFrame:
    """The agent rows that speak: finite mu, finite sigma > 0, confidence >= min_confidence."""
    return outputs.filter(
        pl.col("mu").is_finite()
        & pl.col("sigma").is_finite()
        & (pl.col("sigma") > 0)
        & pl.col("confidence").is_finite()
        & (pl.col("confidence") >= settings.min_confidence)
        & (pl.col("confidence") > 0)
    )


def ensemble(outputs: pl.DataFrame, settings: MetaBrainSettings) -> pl.DataFrame:
    """Steps 1-4 per (date, symbol) with at least one active agent:
    date, symbol, n_agents, mu_hat, disagreement, sigma_hat, penalty, mu_hat_adj."""
    by = ("date", "symbol")
    # sorted first so that every floating-point sum runs in the same order on every run
    act = active_outputs(outputs, settings).sort(*by, "agent")
    sigma_agent = getattr(settings, "sigma_agent", "")
    if sigma_agent:
        src = outputs.filter(
            (pl.col("agent") == sigma_agent) & pl.col("sigma").is_finite() & (pl.col("sigma") > 0)
        ).select(*by, _sig_src=pl.col("sigma"))
        if src.height:
            act = act.join(src, on=list(by), how="left").with_columns(
                sigma=pl.coalesce("_sig_src", "sigma")).drop("_sig_src").sort(*by, "agent")
    act = act.with_columns(_w=pl.col("confidence") / pl.col("confidence").sum().over(*by))
    act = act.with_columns(_mu_hat=(pl.col("_w") * pl.col("mu")).sum().over(*by))
    out = act.group_by(*by).agg(
        n_agents=pl.len().cast(pl.Int32),
        mu_hat=pl.col("_mu_hat").first(),
        # D as sum w (mu - mu_hat)^2 directly (not E[mu^2] - mu_hat^2: no cancellation error)
        disagreement=(pl.col("_w") * (pl.col("mu") - pl.col("_mu_hat")) ** 2).sum(),
        _s2=(pl.col("_w") * pl.col("sigma") ** 2).sum(),
    )
    out = out.with_columns(
        sigma_hat=(pl.col("_s2") + pl.col("disagreement")).sqrt(),
        penalty=(-settings.disagreement_beta * pl.col("disagreement")).exp(),
    ).with_columns(mu_hat_adj=pl.col("mu_hat") * pl.col("penalty"))
    return out.select("date", "symbol", "n_agents", "mu_hat", "disagreement", "sigma_hat", "penalty", "mu_hat_adj").sort(
        "date", "symbol"
    )


def robust_z(values: pl.Expr, z_clip: float) -> tuple[pl.Expr, pl.Expr]:
    """Step 5 as expressions over one session's cross-section (use with .over("date")):
    returns (z after clipping, whether it was clipped). Nulls are ignored in the statistics."""
    med = values.median()
    dev = (values - med).abs()
    mad = dev.median()
    mean_ad = dev.mean()
    raw = (
        pl.when(mad > 0).then((values - med) / (MAD_TO_SIGMA * mad))
        .when(mean_ad > 0).then((values - med) / (MEANAD_TO_SIGMA * mean_ad))
        .otherwise(pl.when(values.is_not_null()).then(0.0))
    )  # fmt: skip
    if z_clip and z_clip > 0:
        return raw.clip(-z_clip, z_clip), raw.abs() > z_clip
    return raw, pl.lit(False)


def session_regime(outputs: pl.DataFrame, regime_agent: str | Sequence[str] = "regime") -> pl.DataFrame:
    """date -> regime: the state of the first agent of `regime_agent` (a name or names in priority
    order) that reports one on the session (one state per agent and session; an error otherwise)."""
    names = [regime_agent] if isinstance(regime_agent, str) else list(regime_agent)
    states = (
        outputs.filter(pl.col("agent").is_in(names) & pl.col("state").is_not_null())
        .group_by("date", "agent")
        .agg(regime=pl.col("state").unique().sort())
    )
    bad = states.filter(pl.col("regime").list.len() > 1)
    if bad.height:
        raise ValueError(f"a regime agent reported several states on one session: {bad.head(3).to_dicts()}")
    rank = {n: i for i, n in enumerate(names)}
    states = states.with_columns(pl.col("regime").list.first(), _rank=pl.col("agent").replace_strict(rank, return_dtype=pl.Int32))
    return states.sort("date", "_rank").group_by("date", maintain_order=True).first().select("date", "regime").sort("date")


def decide(
    outputs: pl.DataFrame,
    quality: pl.DataFrame,
    settings: MetaBrainSettings,
    exclude_symbols: Iterable[str] = (),
    regime_agent: str | Sequence[str] | None = None,
    halted_sessions: Iterable = (),
) -> pl.DataFrame:
    """Steps 1-7: the decisions frame (DECISION_SCHEMA), one row per (date, symbol), sorted.

    outputs: model_outputs rows (date, symbol, agent, mu, sigma, confidence, state).
    quality: data_quality_log rows (date, symbol, passed[, reason_codes: MOVE_UNCONFIRMED -> REJECT]).
    halted_sessions: the sessions halted for a systemic data fault (every row REJECT).
    exclude_symbols: no decision for these (the benchmark); they still inform the regime agent upstream.
    regime_agent: the agent(s) whose state is the session's regime, in priority order (default
    settings.regime_agents: the HMM's filtered state, the heuristic agent's while the HMM has no fit).
    Rows: every (date, symbol) present in `outputs` or `quality`, minus the excluded symbols.
    """
    excluded = list(exclude_symbols)
    keys = (
        pl.concat([outputs.select("date", "symbol"), quality.select("date", "symbol")])
        .unique()
        .filter(~pl.col("symbol").is_in(excluded))
    )
    if quality.select(pl.struct("date", "symbol").is_duplicated().any()).item():
        raise ValueError("data_quality_log has duplicate (date, symbol) rows")
    has_outputs = outputs.select("date", "symbol").unique().with_columns(_has_out=pl.lit(True))
    ens = ensemble(outputs.filter(~pl.col("symbol").is_in(excluded)), settings)
    held = pl.col("reason_codes").list.contains(MOVE_UNCONFIRMED) if "reason_codes" in quality.columns else pl.lit(False)
    halted = pl.Series("date", list(halted_sessions), dtype=pl.Date)
    frame = (
        keys.join(quality.select("date", "symbol", _passed=pl.col("passed"), _held=held), on=["date", "symbol"], how="left")
        .join(has_outputs, on=["date", "symbol"], how="left")
        .join(ens, on=["date", "symbol"], how="left")
        .join(session_regime(outputs, regime_agent if regime_agent is not None
                             else getattr(settings, "regime_agents", ("regime",))), on="date", how="left")
        .with_columns(
            _dq_fail=pl.col("_passed").fill_null(False).not_(),
            _no_feat=pl.col("_has_out").is_null(),
            n_agents=pl.col("n_agents").fill_null(0),
            _halted=pl.col("date").is_in(halted.implode()),
            _held=pl.col("_held").fill_null(False),
        )
        .with_columns(
            _reject=pl.col("_dq_fail") | pl.col("_no_feat") | (pl.col("n_agents") == 0) | pl.col("_halted") | pl.col("_held")
        )
    )
    # Nothing is estimated for a REJECT: blank its values before the cross-section statistics.
    blank = [pl.when(~pl.col("_reject")).then(pl.col(c)).alias(c) for c in ("mu_hat", "sigma_hat", "disagreement", "penalty", "mu_hat_adj")]
    frame = frame.with_columns(blank)
    z, clipped = robust_z(pl.col("mu_hat_adj"), settings.z_clip)
    kelly = settings.kelly_gamma * pl.col("mu_hat_adj") / pl.col("sigma_hat") ** 2
    frame = frame.with_columns(z_score=z.over("date"), _clipped=clipped.over("date").fill_null(False), kelly_fraction=kelly)
    # long-only: a negative Kelly fraction means "hold none", never a short
    frame = frame.with_columns(
        target_weight_raw=pl.when(pl.col("kelly_fraction").is_not_null()).then(
            pl.max_horizontal(pl.col("kelly_fraction"), pl.lit(0.0))
        )
    )
    thr = settings.min_trade_weight
    decision = (
        pl.when(pl.col("_reject")).then(pl.lit(reasons.REJECT))
        .when(pl.col("target_weight_raw") >= thr).then(pl.lit(reasons.EXECUTE_BUY))
        .when((pl.col("mu_hat_adj") < 0) & (-pl.col("kelly_fraction") >= thr)).then(pl.lit(reasons.EXECUTE_SELL))
        .otherwise(pl.lit(reasons.HOLD))
    )  # fmt: skip
    frame = frame.with_columns(pre_risk_decision=decision)
    code = lambda cond, name: pl.when(cond).then(pl.lit(name))  # noqa: E731
    dec = pl.col("pre_risk_decision")
    codes = pl.concat_list(
        code(pl.col("_dq_fail"), reasons.DATA_QUALITY),
        code(pl.col("_halted"), reasons.SYSTEMIC_DATA_FAULT),
        code(pl.col("_held"), reasons.UNCONFIRMED_MOVE),
        code(pl.col("_no_feat"), reasons.NO_FEATURES),
        code((pl.col("n_agents") == 0) & ~pl.col("_dq_fail") & ~pl.col("_no_feat") & ~pl.col("_halted") & ~pl.col("_held"), reasons.NO_SIGNAL),
        code(dec.eq(reasons.EXECUTE_BUY), reasons.POSITIVE_EDGE),
        code(dec.eq(reasons.EXECUTE_SELL), reasons.NEGATIVE_EDGE),
        code(dec.eq(reasons.HOLD), reasons.BELOW_TRADE_THRESHOLD),
        code(~pl.col("_reject") & (pl.col("penalty") < settings.high_disagreement_penalty), reasons.HIGH_DISAGREEMENT),
        code(~pl.col("_reject") & pl.col("_clipped"), reasons.Z_CLIPPED),
    ).list.drop_nulls()
    frame = frame.with_columns(reason_codes=codes)
    return frame.select(list(DECISION_SCHEMA)).cast(DECISION_SCHEMA).sort("date", "symbol")  # type: ignore[arg-type]


# --- summaries used by the asset's metadata, its checks and the cycle summary -------------------------
def decision_counts(decisions: pl.DataFrame) -> dict[str, int]:
    """{decision: rows} over the frame, every decision named (0 when absent)."""
    counts = dict(decisions.group_by("pre_risk_decision").len().iter_rows()) if decisions.height else {}
    return {d: int(counts.get(d, 0)) for d in reasons.DECISIONS}


def top_decisions(decisions: pl.DataFrame, decision: str = reasons.EXECUTE_BUY, n: int = 5) -> list[dict]:
    """The n strongest rows of one decision ({symbol, mu_hat, sigma_hat, conviction = z_score}):
    buys by z descending, sells by z ascending; ties by symbol."""
    rows = decisions.filter(pl.col("pre_risk_decision") == decision)
    descending = decision != reasons.EXECUTE_SELL
    rows = rows.sort(["z_score", "symbol"], descending=[descending, False], nulls_last=True).head(n)
    return [
        {"symbol": r["symbol"], "mu_hat": r["mu_hat"], "sigma_hat": r["sigma_hat"], "conviction": r["z_score"]}
        for r in rows.iter_rows(named=True)
    ]


def nonfinite_rows(decisions: pl.DataFrame) -> pl.DataFrame:
    """Rows that are not REJECT but carry a null, NaN or infinite mu_hat, sigma_hat or z_score
    (REJECT rows are null by design)."""
    bad = pl.lit(False)
    for c in FINITE_COLUMNS:
        bad = bad | ~pl.col(c).is_finite().fill_null(False)
    return decisions.filter((pl.col("pre_risk_decision") != reasons.REJECT) & bad)


def high_disagreement_rows(decisions: pl.DataFrame) -> pl.DataFrame:
    """Rows flagged HIGH_DISAGREEMENT."""
    return decisions.filter(pl.col("reason_codes").list.contains(reasons.HIGH_DISAGREEMENT))
