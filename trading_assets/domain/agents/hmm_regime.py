"""HMM regime agent: the market's state from a Gaussian HMM, by the forward filter only.

Observations per session (domain/hmm.market_observations): the benchmark's log return, its 20-session
volatility and the breadth of the universe (share above its 50-session line); the cross-section's
mean / median when the benchmark has no row. Fits (domain/hmm.fit): every `hmm_cadence` sessions on the
calendar grid, on the `hmm_window` sessions ending at the grid session r, `hmm_seeds` seeds, states
ordered by the variance of the return (risk_on = calmest ... risk_off = most volatile). Between refits,
for a session t with grid session r = cadence_session(t): the forward filter (hmm.forward_filter) with
r's parameters from the first session of r's window through t; p_t = its last row = P(state_t | x up to t).

Output per (t, symbol i), the state = the label of argmax p_t in every row of the session:
    S_m  = p_t(risk_on) - p_t(risk_off)                    (in [-1, 1]; 2 states: the same formula)
    beta_i = clip(beta_60_i, 0, regime_beta_cap), 1 when missing (the benchmark: 1)
    sigma_m = the benchmark's daily sigma (base.daily_sigma), the session's median when it has no row
    mu_i = h * hmm_scale * sigma_m * S_m * beta_i,     sigma_i = sqrt(h) * sigma_d,i
    confidence = max_k p_t(k) * |S_m|                   (sure of a state that has a direction)
Silent (no state) while no fit exists (warm-up: fewer than hmm_min_obs complete sessions in the window):
the Meta-Brain then takes the heuristic regime agent's state (MetaBrainSettings.regime_agents).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar, hmm
from trading_assets.domain.agents import history as hist
from trading_assets.domain.agents.base import (
    AGENT_FIT_SCHEMA,
    KEYS,
    MARKET,
    OUTPUT_SCHEMA,
    AgentContext,
    HistoryNeed,
    daily_sigma,
    empty_output,
    finite,
    validate_input,
)
from trading_assets.settings import AgentSettings

HISTORY_COLUMNS = ("logret_1", "vol_20", hmm.BREADTH)


def observations(history: pl.DataFrame, sessions: Sequence[date], benchmark: str | None) -> np.ndarray:
    """(len(sessions), 3) market observations, NaN where a session has none."""
    obs = hmm.market_observations(history.filter(pl.col("date").is_between(sessions[0], sessions[-1])), benchmark)
    row = {d: i for i, d in enumerate(sessions)}
    out = np.full((len(sessions), len(hmm.OBS_COLUMNS)), np.nan)
    for d, *vals in obs.select("date", *hmm.OBS_COLUMNS).iter_rows():
        if d in row:
            out[row[d]] = [np.nan if v is None else v for v in vals]
    return out


class HmmRegimeAgent(hist.GridFitted):
    name = "hmm_regime"
    version = "2"  # 2: numpy Baum-Welch (domain/gaussian_hmm.py) from its own documented initializations
    prefix = "hmm_"  # no hmm_stagger: one market fit on the grid's phase 0
    market_level = True  # one fit per grid session for the market (symbol MARKET), not one per symbol

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("ewma_vol_20", "vol_20", "beta_60")

    def history(self, settings: AgentSettings) -> HistoryNeed:
        return HistoryNeed(features=HISTORY_COLUMNS, sessions=self.history_sessions(settings))

    def fit(self, history: pl.DataFrame, fit_dates: Sequence[date], settings: AgentSettings,
            benchmark: str | None = None) -> pl.DataFrame:
        version = self.fit_version(settings)
        frames = []
        for r in sorted(fit_dates):
            win = hist.window_sessions(r, settings.hmm_window)
            x = observations(history, win, benchmark)
            n = int(np.isfinite(x).all(axis=1).sum())
            params, conv, ll, msg = {}, False, None, ""
            if n < settings.hmm_min_obs:
                msg = f"too few complete sessions: {n} < {settings.hmm_min_obs}"
            else:
                try:
                    params = hmm.fit(x, settings.hmm_states, settings.hmm_seeds, settings.hmm_iter, min_rows=settings.hmm_min_obs)
                    params["window_start"] = win[0].isoformat()
                    conv, ll = params["converged"], params["loglik"]
                    msg = "" if conv else f"EM not converged in {settings.hmm_iter} iterations"
                except (ValueError, np.linalg.LinAlgError) as exc:  # a degenerate window: say why, never crash
                    msg = f"fit failed: {exc}"
            frames.append(hist.fit_rows(r, self.name, [MARKET], [params], [conv], [n], [ll], [msg], version))
        return pl.concat(frames) if frames else pl.DataFrame(schema=AGENT_FIT_SCHEMA)

    def probabilities(self, history: pl.DataFrame, fits: pl.DataFrame, dates: Sequence[date], settings: AgentSettings,
                      benchmark: str | None) -> pl.DataFrame:
        """date, _fit, _probs (list of K filtered probabilities, states ordered), _state, _msg per session."""
        labels = hmm.LABELS[settings.hmm_states]
        recs = []
        for r, ds in hist.groups_by_fit(dates, settings.hmm_cadence).items():
            fr = hist.fits_by(fits, r).get(MARKET)
            if not fr or "transmat" not in fr:
                why = (fr or {}).get("_message") or f"no fit at {r}"
                recs.extend((d, r, None, None, why) for d in ds)
                continue
            path = calendar.sessions(date.fromisoformat(fr["window_start"]), ds[-1])
            probs = hmm.forward_filter(observations(history, path, benchmark), fr)
            pos = {d: i for i, d in enumerate(path)}
            for d in ds:
                p = probs[pos[d]]
                recs.append((d, r, p.tolist(), labels[int(np.argmax(p))], fr.get("_message", "")))
        return pl.DataFrame(recs, schema={"date": pl.Date, "_fit": pl.Date, "_probs": pl.List(pl.Float64),
                                          "_state": pl.String, "_msg": pl.String}, orient="row")

    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None,
                context: AgentContext | None = None) -> pl.DataFrame:
        validate_input(features, self.features(settings), self.name)
        if features.height == 0:
            return empty_output()
        dates = features["date"].unique().sort().to_list()
        fits = context.fits if context is not None else pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        if context is not None:
            probs = self.probabilities(context.history, fits, dates, settings, benchmark)
        else:
            probs = pl.DataFrame({"date": dates, "_fit": [None] * len(dates), "_probs": [None] * len(dates),
                                  "_state": [None] * len(dates), "_msg": ["no history supplied"] * len(dates)},
                                 schema={"date": pl.Date, "_fit": pl.Date, "_probs": pl.List(pl.Float64), "_state": pl.String, "_msg": pl.String})
        k = settings.hmm_states
        labels = hmm.LABELS[k]
        probs = probs.with_columns(
            _s_m=pl.col("_probs").list.get(0) - pl.col("_probs").list.get(k - 1),
            _pmax=pl.col("_probs").list.max(),
            _ptxt=pl.concat_str([pl.lit(f"{lab}=") + pl.col("_probs").list.get(i).round(3).cast(pl.String) for i, lab in enumerate(labels)],
                                separator=" "),
        )
        is_b = pl.col("symbol") == pl.lit(benchmark or "")
        frame = features.select(*KEYS, "beta_60", _sd=daily_sigma(settings), _b=is_b)
        sig_m = (frame.group_by("date").agg(
            _sdb=pl.col("_sd").filter(pl.col("_b")).first(), _sdm=pl.col("_sd").filter(~pl.col("_b")).median())
            .select("date", _sigm=pl.coalesce("_sdb", "_sdm")))
        frame = frame.join(probs, on="date", how="left").join(sig_m, on="date", how="left")
        beta = pl.when(pl.col("_b")).then(1.0).otherwise(finite("beta_60").clip(0.0, settings.regime_beta_cap).fill_null(1.0))
        h = settings.horizon_sessions
        ok = pl.col("_state").is_not_null() & (pl.col("_sigm") > 0) & (pl.col("_sd") > 0)
        out = frame.select(
            *KEYS,
            agent=pl.lit(self.name),
            mu=pl.when(ok).then(h * settings.hmm_scale * pl.col("_sigm") * pl.col("_s_m") * beta),
            sigma=pl.when(pl.col("_sd") > 0).then(math.sqrt(h) * pl.col("_sd")),
            confidence=pl.when(ok).then((pl.col("_pmax") * pl.col("_s_m").abs()).clip(0.0, 1.0)).otherwise(0.0),
            explanation=pl.when(ok).then(pl.concat_str([
                pl.lit("hmm state="), pl.col("_state"), pl.lit(" p("), pl.col("_ptxt"), pl.lit(") fit "),
                pl.col("_fit").cast(pl.String), pl.lit(" | S_m="), pl.col("_s_m").round(3).cast(pl.String)]))
            .when(pl.col("_state").is_null()).then(pl.concat_str([pl.lit("silent: no HMM state ("), pl.col("_msg").fill_null("no fit"), pl.lit(")")]))
            .otherwise(pl.lit("silent: daily volatility missing or not > 0")),
            agent_version=pl.lit(self.fit_version(settings)),
            state=pl.col("_state"),
        )
        return out.cast(OUTPUT_SCHEMA).sort(*KEYS)  # type: ignore[arg-type]
