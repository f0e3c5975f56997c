"""EVT tail-risk agent: per symbol, a GPD on the losses beyond the 95th percentile; heavy tails are penalized.

Fits (domain/tail_risk.pot_fit): every `evt_cadence` sessions on the calendar grid, per symbol (each on
its own phase of the grid when evt_stagger, the default: history.phase, as the GARCH agent), on the
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

import json
import math
from collections.abc import Mapping, Sequence
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
from trading_assets.settings import AgentSettings

RETURN = "logret_1"
NORMAL_ES99 = 2.6652  # phi(2.3263) / 0.01
CONFIDENCE_Q = 0.99
_BATCH = 4000  # (fit date, symbol) columns per POT batch


class EvtTailAgent(hist.GridFitted):
    name = "evt_tail"
    version = "1"
    prefix = "evt_"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("ewma_vol_20", "vol_20")

    def history(self, settings: AgentSettings) -> HistoryNeed:
        return HistoryNeed(features=(RETURN,), sessions=self.history_sessions(settings))

    def fit(self, history: pl.DataFrame, fit_dates: Sequence[date], settings: AgentSettings,
            benchmark: str | None = None, symbols: Mapping[date, Sequence[str]] | None = None) -> pl.DataFrame:
        """AGENT_FIT_SCHEMA rows for every (fit date, symbol with a return in the window), or only the pairs
        `symbols` lists; every pair of the call is one column of the same POT batches."""
        version = self.fit_version(settings)
        dates = sorted(set(fit_dates))
        if not dates or history.height == 0:
            return pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        w = settings.evt_window
        span = calendar.sessions(hist.window_sessions(dates[0], w)[0], dates[-1])
        names = sorted(history["symbol"].unique().to_list())
        big = -hist.matrix(history, RETURN, span, names)  # losses
        count = np.vstack([np.zeros((1, len(names)), dtype=np.int64), np.cumsum(np.isfinite(big), axis=0)])
        col = {n: j for j, n in enumerate(names)}
        pos = {d: i for i, d in enumerate(span)}
        jobs: list[tuple[date, int, int, int, str]] = []
        for r in dates:
            i_r = pos[r]
            i_0 = max(i_r - w + 1, 0)
            for sym in (names if symbols is None else sorted(symbols.get(r, ()))):
                j = col.get(sym)
                if j is not None and count[i_r + 1, j] > count[i_0, j]:
                    jobs.append((r, i_0, i_r, j, sym))
        frames = []
        for b0 in range(0, len(jobs), _BATCH):
            chunk = jobs[b0:b0 + _BATCH]
            t_len = max(i_r - i_0 + 1 for _, i_0, i_r, _, _ in chunk)
            losses = np.full((t_len, len(chunk)), np.nan)
            sd = np.full(len(chunk), np.nan)
            for c, (_, i_0, i_r, j, _) in enumerate(chunk):
                x = big[i_0:i_r + 1, j]
                losses[t_len - x.size:, c] = x
                if np.isfinite(x).sum() > 1:
                    sd[c] = np.nanstd(x, ddof=1)  # on the column's own window (the same bits whatever the batch)
            f = tail_risk.pot_fit(losses, settings.evt_threshold_q, settings.evt_min_exceedances)
            var99 = tail_risk.pot_var(f.threshold, f.xi, f.beta, f.n_obs, f.n_exceed, CONFIDENCE_Q)
            es99 = tail_risk.pot_es(f.threshold, f.xi, f.beta, f.n_obs, f.n_exceed, CONFIDENCE_Q)
            params, msgs = [], []
            for c, (_, i_0, _, _, _) in enumerate(chunk):
                if f.ok[c]:
                    params.append({"threshold": float(f.threshold[c]), "xi": float(f.xi[c]), "beta": float(f.beta[c]),
                                   "n_exceed": int(f.n_exceed[c]), "sd": float(sd[c]), "var99": float(var99[c]),
                                   "es99": float(es99[c]), "window_start": span[i_0].isoformat()})
                    msgs.append("")
                else:
                    params.append({"threshold": None if not np.isfinite(f.threshold[c]) else float(f.threshold[c]),
                                   "n_exceed": int(f.n_exceed[c])})
                    msgs.append(f"too few exceedances: {int(f.n_exceed[c])} < {settings.evt_min_exceedances}"
                                if f.n_exceed[c] < settings.evt_min_exceedances else f"unusable GPD fit (xi={f.xi[c]:.3f})")
            frames.append(pl.DataFrame({
                "fit_date": [x[0] for x in chunk], "agent": [self.name] * len(chunk), "symbol": [x[4] for x in chunk],
                "params": [json.dumps(q, sort_keys=True) for q in params], "converged": [bool(v) for v in f.ok],
                "n_obs": [int(v) for v in f.n_obs], "loglik": [None] * len(chunk), "message": msgs,
                "agent_version": [version] * len(chunk),
            }, schema=AGENT_FIT_SCHEMA))
        return pl.concat(frames).sort("fit_date", "symbol") if frames else pl.DataFrame(schema=AGENT_FIT_SCHEMA)

    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None,
                context: AgentContext | None = None) -> pl.DataFrame:
        validate_input(features, self.features(settings), self.name)
        if features.height == 0:
            return empty_output()
        fits = context.fits if context is not None else pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        frame = self.fit_dates(features.select(*KEYS, _sd=daily_sigma(settings)), settings)  # + _grid: the fit serving the row
        fit_cols = {"xi": pl.Float64, "beta": pl.Float64, "threshold": pl.Float64, "n_exceed": pl.Float64,
                    "sd": pl.Float64, "var99": pl.Float64, "es99": pl.Float64}
        if fits.height:
            f = fits.filter(pl.col("fit_date").is_in(frame["_grid"].unique().implode())).select(
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
