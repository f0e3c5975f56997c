"""Regime agent: the market state (risk_on | neutral | risk_off) from the benchmark and the cross-section.

Market evidence per session (b = the benchmark's row; each in [-1, 1], null when missing):
    e_trend   = tanh(px_sma_200_b / trend_scale)                   (benchmark above its 200-session line)
    e_cross   = 2 * sma_50_above_200_b - 1                          (golden / death cross state)
    e_vol     = clip((v_on + v_off - 2 * vol_20_b) / (v_off - v_on), -1, 1)
                (+1 at or below regime_risk_on_vol, -1 at or above regime_risk_off_vol, linear between)
    e_breadth = 2 * share(px_sma_200 > 0 among the session's non-benchmark symbols) - 1
Market score S_m = mean of the available evidence; coverage = n_avail / 4; coherence =
|sum e| / sum |e|. State: risk_on if S_m >= threshold, risk_off if S_m <= -threshold, else neutral;
null (and the agent silent) when no evidence exists for the session.

Per symbol i (CAPM view: the market's expected move times the symbol's beta):
    beta_i  = clip(beta_60_i, 0, beta_cap), 1 when missing (the benchmark itself: 1)
    sigma_m = the benchmark's daily sigma (base.daily_sigma); when the benchmark row is missing,
              the median daily sigma of the session's symbols
    mu_i    = h * IC * sigma_m * S_m * beta_i        (IC = AgentSettings.regime_scale)
    sigma_i = sqrt(h) * sigma_d,i
    confidence_i = coverage * coherence (the same for every symbol of the session)
The state is written in the `state` column of every row of the session. Only same-session rows are
used, so a session's regime never depends on the run's window.
"""

from __future__ import annotations

import math

import polars as pl

from trading_assets.domain.agents.base import (
    KEYS,
    OUTPUT_SCHEMA,
    daily_sigma,
    empty_output,
    finite,
    fmt,
    params_hash,
    tanh_of,
    validate_input,
)
from trading_assets.settings import AgentSettings

RISK_ON, NEUTRAL, RISK_OFF = "risk_on", "neutral", "risk_off"
REGIMES = (RISK_ON, NEUTRAL, RISK_OFF)
_EVIDENCE = ("e_trend", "e_cross", "e_vol", "e_breadth")


def market_state(features: pl.DataFrame, settings: AgentSettings, benchmark: str | None) -> pl.DataFrame:
    """One row per session: date, the four evidence values, score, coverage, coherence, regime, sigma_m."""
    on, off = settings.regime_risk_on_vol, settings.regime_risk_off_vol
    if not off > on:
        raise ValueError(f"regime_risk_off_vol ({off}) must exceed regime_risk_on_vol ({on})")
    is_bench = pl.col("symbol") == pl.lit(benchmark) if benchmark else pl.lit(False)
    frame = features.with_columns(_bench=is_bench, _sd=daily_sigma(settings))
    dates = frame.select("date").unique()
    bench = frame.filter(pl.col("_bench")).select(
        "date",
        e_trend=tanh_of(finite("px_sma_200"), settings.regime_trend_scale),
        e_cross=2.0 * (finite("sma_50_above_200") > 0).cast(pl.Float64) - 1.0,
        e_vol=((on + off - 2.0 * finite("vol_20")) / (off - on)).clip(-1.0, 1.0),
        _sd_bench=pl.col("_sd"),
    )
    px = finite("px_sma_200")
    cross = (
        frame.filter(~pl.col("_bench"))
        .group_by("date")
        .agg(
            _above=(px > 0).sum(),
            _known=px.is_not_null().sum(),
            _sd_median=pl.col("_sd").median(),
        )
        .select(
            "date",
            pl.when(pl.col("_known") > 0).then(2.0 * pl.col("_above") / pl.col("_known") - 1.0).alias("e_breadth"),
            "_sd_median",
        )
    )
    m = dates.join(bench, on="date", how="left").join(cross, on="date", how="left")
    es = [pl.col(e) for e in _EVIDENCE]
    n_avail = pl.sum_horizontal([e.is_not_null().cast(pl.Int32) for e in es])
    total = pl.sum_horizontal([e.fill_null(0.0) for e in es])
    absolute = pl.sum_horizontal([e.abs().fill_null(0.0) for e in es])
    thr = settings.regime_threshold
    m = m.with_columns(
        score=pl.when(n_avail > 0).then(total / n_avail),
        coverage=n_avail / len(_EVIDENCE),
        coherence=pl.when(absolute > 0).then(total.abs() / absolute).otherwise(0.0),
        sigma_m=pl.coalesce(pl.col("_sd_bench"), pl.col("_sd_median")),
    ).with_columns(
        regime=pl.when(pl.col("score").is_null()).then(None)
        .when(pl.col("score") >= thr).then(pl.lit(RISK_ON))
        .when(pl.col("score") <= -thr).then(pl.lit(RISK_OFF))
        .otherwise(pl.lit(NEUTRAL))
    )  # fmt: skip
    return m.select("date", *_EVIDENCE, "score", "coverage", "coherence", "regime", "sigma_m").sort("date")


class RegimeAgent:
    name = "regime"
    version = "1"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("px_sma_200", "sma_50_above_200", "vol_20", "ewma_vol_20", "beta_60")

    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None) -> pl.DataFrame:
        validate_input(features, self.features(settings), self.name)
        if features.height == 0:
            return empty_output()
        h = settings.horizon_sessions
        state = market_state(features, settings, benchmark)
        beta = pl.when(pl.col("symbol") == pl.lit(benchmark or "")).then(1.0).otherwise(
            finite("beta_60").clip(0.0, settings.regime_beta_cap).fill_null(1.0)
        )
        frame = features.select(*KEYS, "beta_60", "ewma_vol_20", "vol_20").join(state, on="date", how="left")
        frame = frame.with_columns(_beta=beta, _sd=daily_sigma(settings))
        ok = pl.col("score").is_not_null() & pl.col("sigma_m").is_not_null() & (pl.col("sigma_m") > 0) & (pl.col("_sd") > 0)
        explanation = pl.concat_str(
            [
                pl.lit("regime="), pl.col("regime").fill_null("unknown"),
                pl.lit(" trend="), fmt(pl.col("e_trend"), 2), pl.lit(" cross="), fmt(pl.col("e_cross"), 2),
                pl.lit(" vol="), fmt(pl.col("e_vol"), 2), pl.lit(" breadth="), fmt(pl.col("e_breadth"), 2),
                pl.lit(" | S="), fmt(pl.col("score"), 3), pl.lit(" beta="), fmt(pl.col("_beta"), 2),
            ]
        )  # fmt: skip
        why_silent = (
            pl.when(pl.col("score").is_null())
            .then(pl.lit("silent: no market evidence for the session (no benchmark row, no breadth)"))
            .otherwise(pl.lit("silent: daily volatility missing or not > 0"))
        )
        out = frame.select(
            *KEYS,
            agent=pl.lit(self.name),
            mu=pl.when(ok).then(h * settings.regime_scale * pl.col("sigma_m") * pl.col("score") * pl.col("_beta")),
            sigma=pl.when(pl.col("_sd") > 0).then(math.sqrt(h) * pl.col("_sd")),
            confidence=pl.when(ok).then((pl.col("coverage") * pl.col("coherence")).clip(0.0, 1.0)).otherwise(0.0),
            explanation=pl.when(ok).then(explanation).otherwise(why_silent),
            agent_version=pl.lit(f"{self.name}@{self.version}+{params_hash(settings)}"),
            state=pl.col("regime"),
        )
        return out.cast(OUTPUT_SCHEMA).sort(*KEYS)  # type: ignore[arg-type]
