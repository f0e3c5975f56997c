"""GARCH volatility agent: GARCH(1,1)-t per symbol, the symbol's sigma for the Meta-Brain and the risk gate.

Fits (domain/garch.py): every `garch_cadence` sessions on the calendar grid (calendar.cadence_session),
on the percent log returns (features' logret_1, point-in-time adjusted) of the `garch_window` sessions
ending at the grid session r. Between refits nothing is refitted: for a session t with grid session
r = cadence_session(t), the variance recursion runs with r's parameters from the first session of
r's window through t:
    s_{t+1} = omega + alpha * e_t^2 + beta * s_t,   e_t = 100 * (logret_1_t - mean of r's window)
    sigma_t = sqrt(s_{t+1}) / 100                  (decimal daily sigma of the next session, h = 1)
so sigma_t depends on r's fit and on the returns up to t only (the same in a daily run and inside
a range). Fallback: when r's fit is missing, failed or did not converge, sigma_t = the trailing
sigma of base.daily_sigma (ewma_vol_20 / sqrt(A)), and the explanation says so; the agent is then
silent (confidence 0) but its sigma still feeds the Meta-Brain.

Signal (volatility timing, Moreira & Muir 2017: expected return per unit of risk falls when
volatility is above its normal level):
    sigma_long = sqrt(omega / (1 - alpha - beta)) / 100           (the fit's unconditional sigma)
    S  = tanh((1 - sigma_t / sigma_long) / garch_ratio_scale)
    mu = h * garch_scale * sigma_t * S,    sigma = sqrt(h) * sigma_t
    confidence = garch_confidence * min(1, n_obs / garch_window) * (0.5 if alpha + beta > 0.995 else 1)
    (a near-integrated fit pins the long-run level poorly: half the confidence).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar, garch
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
_BATCH = 4000  # series per lockstep batch (memory: ~10 arrays of window x batch floats)


def fit_version(name: str, version: str, settings: AgentSettings, prefix: str) -> str:
    """name@version+hash of the agent's own settings (fields starting with prefix): a stored fit is
    reused only under the same version (other agents' settings do not invalidate it)."""
    import hashlib
    import json

    own = {k: v for k, v in asdict(settings).items() if k.startswith(prefix)}
    return f"{name}@{version}+{hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()[:8]}"


class GarchVolAgent:
    name = "garch"
    version = "1"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("ewma_vol_20", "vol_20")

    def history(self, settings: AgentSettings) -> HistoryNeed:
        return HistoryNeed(features=(RETURN,), sessions=settings.garch_window + settings.garch_cadence)

    def fit_version(self, settings: AgentSettings) -> str:
        return fit_version(self.name, self.version, settings, "garch_")

    def cadence(self, settings: AgentSettings) -> int:
        return settings.garch_cadence

    def fit_sessions(self, sessions: Sequence[date], settings: AgentSettings) -> list[date]:
        return hist.fit_dates_for(sessions, settings.garch_cadence)

    def fit(self, history: pl.DataFrame, fit_dates: Sequence[date], settings: AgentSettings,
            benchmark: str | None = None) -> pl.DataFrame:
        """AGENT_FIT_SCHEMA rows for every (fit date, symbol with a return in the window)."""
        version = self.fit_version(settings)
        jobs: list[tuple[date, list[date], str, np.ndarray]] = []
        for r in sorted(fit_dates):
            win = hist.window_sessions(r, settings.garch_window)
            syms = sorted(history.filter(pl.col("date").is_between(win[0], r)).drop_nulls(RETURN)["symbol"].unique().to_list())
            if not syms:
                continue
            mat = hist.matrix(history, RETURN, win, syms)
            for j, s in enumerate(syms):
                jobs.append((r, win, s, mat[:, j]))
        frames = []
        for b0 in range(0, len(jobs), _BATCH):
            chunk = jobs[b0:b0 + _BATCH]
            t_len = max(len(j[1]) for j in chunk)
            mat = np.full((t_len, len(chunk)), np.nan)
            for c, (_, win, _, col) in enumerate(chunk):
                mat[t_len - len(win):, c] = col  # a short window (calendar start) is left-padded
            f = garch.fit_batch(mat, min_obs=settings.garch_min_obs, max_iter=settings.garch_max_iter, tol=settings.garch_tol)
            _, _, _, mean, _ = garch.prepare(mat)
            for c, (r, win, s, _) in enumerate(chunk):
                n = int(f.n_obs[c])
                if n < settings.garch_min_obs:
                    msg = f"too few returns: {n} < {settings.garch_min_obs}"
                elif not f.converged[c]:
                    msg = f"not converged after {int(f.iterations[c])} iterations"
                else:
                    msg = ""
                params = {} if n < settings.garch_min_obs else {
                    "omega": float(f.omega[c]), "alpha": float(f.alpha[c]), "beta": float(f.beta[c]), "nu": float(f.nu[c]),
                    "mean": float(mean[c]), "backcast": float(f.backcast[c]), "window_start": win[0].isoformat(),
                    "iterations": int(f.iterations[c]),
                }
                frames.append((r, s, params, bool(f.converged[c]), n, float(f.loglik[c]), msg))
        if not frames:
            return pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        out = pl.DataFrame(
            {
                "fit_date": [x[0] for x in frames], "agent": [self.name] * len(frames), "symbol": [x[1] for x in frames],
                "params": [__import__("json").dumps(x[2], sort_keys=True) for x in frames],
                "converged": [x[3] for x in frames], "n_obs": [x[4] for x in frames],
                "loglik": [x[5] if math.isfinite(x[5]) else None for x in frames], "message": [x[6] for x in frames],
                "agent_version": [version] * len(frames),
            },
            schema=AGENT_FIT_SCHEMA,
        )
        return out.sort("fit_date", "symbol")

    def sigma_paths(self, history: pl.DataFrame, fits: pl.DataFrame, dates: Sequence[date], symbols: Sequence[str],
                    settings: AgentSettings) -> pl.DataFrame:
        """(date, symbol, _sig, _fit, omega, alpha, beta, nu, _n) for the symbols with a usable fit (module docstring)."""
        frames = []
        for r, ds in hist.groups_by_fit(dates, settings.garch_cadence).items():
            fr = hist.fits_by(fits, r)
            use = [s for s in symbols if s in fr and fr[s].get("_converged") and "omega" in fr[s]]
            if not use:
                continue
            start = min(date.fromisoformat(fr[s]["window_start"]) for s in use)
            path_sessions = calendar.sessions(start, ds[-1])
            mat = hist.matrix(history, RETURN, path_sessions, use)
            p = {k: np.array([fr[s][k] for s in use]) for k in ("omega", "alpha", "beta", "nu", "mean", "backcast", "_n_obs")}
            # every fit of one grid date has the same window start (the calendar's); kept per symbol anyway
            own = np.array([date.fromisoformat(fr[s]["window_start"]) for s in use])
            pos = {d: i for i, d in enumerate(path_sessions)}
            before = np.array([pos[d] for d in own])[None, :] > np.arange(len(path_sessions))[:, None]
            mat[before] = np.nan
            mask = np.isfinite(mat)
            e = np.where(mask, 100.0 * (mat - p["mean"]), 0.0)
            s2 = garch.variance_path(e * e, mask, p["omega"], p["alpha"], p["beta"], p["backcast"])
            rows = np.array([pos[d] + 1 for d in ds])
            sig = np.sqrt(s2[rows]) / 100.0  # (len(ds), len(use))
            n_d, n_s = sig.shape
            frames.append(pl.DataFrame({
                "date": np.repeat(np.array(ds, dtype="datetime64[D]"), n_s),
                "symbol": use * n_d,
                "_sig": sig.reshape(-1),
                "_fit": [r] * (n_d * n_s),
                **{k: np.tile(p[k], n_d) for k in ("omega", "alpha", "beta", "nu")},
                "_n": np.tile(p["_n_obs"].astype(float), n_d),
            }).with_columns(pl.col("date").cast(pl.Date)))
        schema = {"date": pl.Date, "symbol": pl.String, "_sig": pl.Float64, "_fit": pl.Date, "omega": pl.Float64,
                  "alpha": pl.Float64, "beta": pl.Float64, "nu": pl.Float64, "_n": pl.Float64}
        return pl.concat(frames).cast(schema) if frames else pl.DataFrame(schema=schema)

    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None,
                context: AgentContext | None = None) -> pl.DataFrame:
        validate_input(features, self.features(settings), self.name)
        if features.height == 0:
            return empty_output()
        dates = features["date"].unique().sort().to_list()
        symbols = features["symbol"].unique().sort().to_list()
        fits = context.fits if context is not None else pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        paths = self.sigma_paths(context.history, fits, dates, symbols, settings) if context is not None else None
        h = settings.horizon_sessions
        frame = features.select(*KEYS, _fb=daily_sigma(settings))
        if paths is not None and paths.height:
            frame = frame.join(paths, on=list(KEYS), how="left")
        else:
            frame = frame.with_columns(*(pl.lit(None, dtype=pl.Float64).alias(c) for c in ("_sig", "omega", "alpha", "beta", "nu", "_n")),
                                       _fit=pl.lit(None, dtype=pl.Date))
        # why a row has no GARCH sigma: the stored fit's message for (grid session, symbol)
        grid = {d: calendar.cadence_session(d, settings.garch_cadence) for d in dates}
        frame = frame.with_columns(_grid=pl.col("date").replace_strict(grid, return_dtype=pl.Date))
        if fits.height:
            msgs = fits.select(_grid=pl.col("fit_date"), symbol=pl.col("symbol"), _msg=pl.col("message"))
            frame = frame.join(msgs, on=["_grid", "symbol"], how="left")
        else:
            frame = frame.with_columns(_msg=pl.lit(None, dtype=pl.String))
        pers = pl.col("alpha") + pl.col("beta")
        long = (pl.col("omega") / pl.max_horizontal(1.0 - pers, pl.lit(1e-12))).sqrt() / 100.0
        score = ((1.0 - pl.col("_sig") / long) / settings.garch_ratio_scale).tanh()
        conf = (settings.garch_confidence * (pl.col("_n") / settings.garch_window).clip(upper_bound=1.0)
                * pl.when(pers > 0.995).then(0.5).otherwise(1.0)).clip(0.0, 1.0)
        have = pl.col("_sig").is_not_null()
        fb_ok = pl.col("_fb").is_not_null() & (pl.col("_fb") > 0)
        why = pl.coalesce(pl.when(pl.col("_msg") != "").then(pl.col("_msg")),
                          pl.concat_str([pl.lit("no fit at "), pl.col("_grid").cast(pl.String)]))
        r4 = lambda c, n=4: pl.col(c).round_sig_figs(n).cast(pl.String)  # noqa: E731
        explanation = pl.concat_str([
            pl.lit("garch fit "), pl.col("_fit").cast(pl.String), pl.lit(": omega="), r4("omega"), pl.lit(" alpha="), r4("alpha"),
            pl.lit(" beta="), r4("beta"), pl.lit(" nu="), r4("nu"), pl.lit(" | sigma="), pl.col("_sig").round(6).cast(pl.String),
            pl.lit(" long-run="), long.round(6).cast(pl.String), pl.lit(" S="), score.round(3).cast(pl.String),
        ])
        out = frame.select(
            *KEYS,
            agent=pl.lit(self.name),
            mu=pl.when(have).then(h * settings.garch_scale * pl.col("_sig") * score),
            sigma=pl.when(have).then(math.sqrt(h) * pl.col("_sig")).when(fb_ok).then(math.sqrt(h) * pl.col("_fb")),
            confidence=pl.when(have).then(conf).otherwise(0.0),
            explanation=pl.when(have).then(explanation).when(fb_ok).then(
                pl.concat_str([pl.lit("silent: fallback sigma = trailing EWMA ("), why, pl.lit(")")])
            ).otherwise(pl.concat_str([pl.lit("silent: no GARCH fit ("), why, pl.lit(") and no trailing sigma")])),
            agent_version=pl.lit(self.fit_version(settings)),
            state=pl.lit(None, dtype=pl.String),
        )
        return out.cast(OUTPUT_SCHEMA).sort(*KEYS)  # type: ignore[arg-type]
