"""EVT tail-risk agent: per symbol, a GPD on the losses beyond the 95th percentile; heavy tails are penalized.

Fits (domain/tail_risk.pot_fit): every `evt_cadence` sessions on the calendar grid, per symbol, on the
daily losses L = -logret_1 of the `evt_window` sessions ending at the grid session r: threshold u =
the `evt_threshold_q` quantile, GPD (xi, beta) on the N_u exceedances when N_u >= evt_min_exceedances
(756 sessions x 5% = 37-38 exceedances; the minimum 25 tolerates a year of missing bars), and
VaR_99 / ES_99 by the POT formulas of tail_risk.py. The fit holds until the next grid session.

Heaviness: H = ES_99 / (2.6652 * sd), sd = the window's standard deviation of L and 2.6652 =
phi(z_0.99) / 0.01 the ES_99 of a normal in standard deviations: H = 1 for normal tails, > 1 heavier.
Output per (t, symbol) with a fit (rule of the issue: heavy tails lower mu and confidence is the
strength of the evidence):
    S  = -tanh((H - 1) / evt_heavy_scale)
    mu = h * evt_scale * sigma_d * S,    sigma = sqrt(h) * sigma_d      (sigma_d = base.daily_sigma)
    confidence = evt_confidence * min(1, N_u / (2 * evt_min_exceedances)) * |S|
Silent when the symbol has no usable fit (too few exceedances, xi >= 1, or no fit yet).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar, tail_risk
from trading_assets.domain.agents import history as hist
from trading_assets.domain.agents.base import (
    AGENT_FIT_SCHEMA,
    KEYS,
    OUTPUT_SCHEMA,
    AgentContext,
    HistoryNeed,
    daily_sigma,
    empty_output,
    validate_input,
)
from trading_assets.domain.agents.garch_vol import fit_version
from trading_assets.settings import AgentSettings

RETURN = "logret_1"
NORMAL_ES99 = 2.6652  # phi(2.3263) / 0.01
CONFIDENCE_Q = 0.99


class EvtTailAgent:
    name = "evt_tail"
    version = "1"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("ewma_vol_20", "vol_20")

    def history(self, settings: AgentSettings) -> HistoryNeed:
        return HistoryNeed(features=(RETURN,), sessions=settings.evt_window + settings.evt_cadence)

    def fit_version(self, settings: AgentSettings) -> str:
        return fit_version(self.name, self.version, settings, "evt_")

    def cadence(self, settings: AgentSettings) -> int:
        return settings.evt_cadence

    def fit_sessions(self, sessions: Sequence[date], settings: AgentSettings) -> list[date]:
        return hist.fit_dates_for(sessions, settings.evt_cadence)

    def fit(self, history: pl.DataFrame, fit_dates: Sequence[date], settings: AgentSettings,
            benchmark: str | None = None) -> pl.DataFrame:
        version = self.fit_version(settings)
        frames = []
        for r in sorted(fit_dates):
            win = hist.window_sessions(r, settings.evt_window)
            syms = sorted(history.filter(pl.col("date").is_between(win[0], r)).drop_nulls(RETURN)["symbol"].unique().to_list())
            if not syms:
                continue
            losses = -hist.matrix(history, RETURN, win, syms)
            f = tail_risk.pot_fit(losses, settings.evt_threshold_q, settings.evt_min_exceedances)
            # per column (the same bits whatever other symbols share the batch)
            sd = np.array([np.nanstd(losses[:, j], ddof=1) if np.isfinite(losses[:, j]).sum() > 1 else np.nan
                           for j in range(len(syms))])
            var99 = tail_risk.pot_var(f.threshold, f.xi, f.beta, f.n_obs, f.n_exceed, CONFIDENCE_Q)
            es99 = tail_risk.pot_es(f.threshold, f.xi, f.beta, f.n_obs, f.n_exceed, CONFIDENCE_Q)
            params, msgs = [], []
            for j in range(len(syms)):
                if f.ok[j]:
                    params.append({"threshold": float(f.threshold[j]), "xi": float(f.xi[j]), "beta": float(f.beta[j]),
                                   "n_exceed": int(f.n_exceed[j]), "sd": float(sd[j]), "var99": float(var99[j]),
                                   "es99": float(es99[j]), "window_start": win[0].isoformat()})
                    msgs.append("")
                else:
                    params.append({"threshold": None if not np.isfinite(f.threshold[j]) else float(f.threshold[j]),
                                   "n_exceed": int(f.n_exceed[j])})
                    msgs.append(f"too few exceedances: {int(f.n_exceed[j])} < {settings.evt_min_exceedances}"
                                if f.n_exceed[j] < settings.evt_min_exceedances else f"unusable GPD fit (xi={f.xi[j]:.3f})")
            frames.append(hist.fit_rows(r, self.name, syms, params, list(f.ok), list(f.n_obs), [None] * len(syms), msgs, version))
        return pl.concat(frames).sort("fit_date", "symbol") if frames else pl.DataFrame(schema=AGENT_FIT_SCHEMA)

    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None,
                context: AgentContext | None = None) -> pl.DataFrame:
        validate_input(features, self.features(settings), self.name)
        if features.height == 0:
            return empty_output()
        fits = context.fits if context is not None else pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        dates = features["date"].unique().sort().to_list()
        grid = {d: calendar.cadence_session(d, settings.evt_cadence) for d in dates}
        frame = features.select(*KEYS, _sd=daily_sigma(settings)).with_columns(
            _grid=pl.col("date").replace_strict(grid, return_dtype=pl.Date))
        fit_cols = {"xi": pl.Float64, "beta": pl.Float64, "threshold": pl.Float64, "n_exceed": pl.Float64,
                    "sd": pl.Float64, "var99": pl.Float64, "es99": pl.Float64}
        if fits.height:
            f = fits.filter(pl.col("fit_date").is_in(sorted(set(grid.values())))).select(
                _grid=pl.col("fit_date"), symbol=pl.col("symbol"), _ok=pl.col("converged"), _msg=pl.col("message"),
                **{k: pl.col("params").str.json_path_match(f"$.{k}").cast(t, strict=False) for k, t in fit_cols.items()})
            frame = frame.join(f, on=["_grid", "symbol"], how="left")
        else:
            frame = frame.with_columns(_ok=pl.lit(None, dtype=pl.Boolean), _msg=pl.lit(None, dtype=pl.String),
                                       **{k: pl.lit(None, dtype=t) for k, t in fit_cols.items()})
        heavy = pl.col("es99") / (NORMAL_ES99 * pl.col("sd"))
        score = -((heavy - 1.0) / settings.evt_heavy_scale).tanh()
        h = settings.horizon_sessions
        ok = pl.col("_ok").fill_null(False) & (pl.col("_sd") > 0) & (pl.col("sd") > 0)
        conf = settings.evt_confidence * (pl.col("n_exceed") / (2.0 * settings.evt_min_exceedances)).clip(upper_bound=1.0) * score.abs()
        txt = pl.concat_str([
            pl.lit("evt fit "), pl.col("_grid").cast(pl.String), pl.lit(": u="), pl.col("threshold").round_sig_figs(4).cast(pl.String),
            pl.lit(" xi="), pl.col("xi").round(3).cast(pl.String), pl.lit(" beta="), pl.col("beta").round_sig_figs(4).cast(pl.String),
            pl.lit(" N_u="), pl.col("n_exceed").cast(pl.Int32).cast(pl.String), pl.lit(" VaR99="), pl.col("var99").round(4).cast(pl.String),
            pl.lit(" ES99="), pl.col("es99").round(4).cast(pl.String), pl.lit(" | H="), heavy.round(3).cast(pl.String),
        ])
        out = frame.select(
            *KEYS,
            agent=pl.lit(self.name),
            mu=pl.when(ok).then(h * settings.evt_scale * pl.col("_sd") * score),
            sigma=pl.when(pl.col("_sd") > 0).then(math.sqrt(h) * pl.col("_sd")),
            confidence=pl.when(ok).then(conf.clip(0.0, 1.0)).otherwise(0.0),
            explanation=pl.when(ok).then(txt).otherwise(pl.concat_str([
                pl.lit("silent: no EVT fit ("), pl.coalesce(pl.when(pl.col("_msg") != "").then(pl.col("_msg")),
                                                          pl.concat_str([pl.lit("none at "), pl.col("_grid").cast(pl.String)])),
                pl.lit(")")])),
            agent_version=pl.lit(self.fit_version(settings)),
            state=pl.lit(None, dtype=pl.String),
        )
        return out.cast(OUTPUT_SCHEMA).sort(*KEYS)  # type: ignore[arg-type]
