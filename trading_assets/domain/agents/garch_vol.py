"""GARCH volatility agent: GARCH(1,1)-t per symbol, the symbol's sigma for the Meta-Brain and the risk gate.

Fits (domain/garch.py): every `garch_cadence` sessions on the calendar grid (calendar.cadence_session),
on the percent log returns (features' logret_1, point-in-time adjusted) of the `garch_window` sessions
ending at the grid session r. Staggered (garch_stagger, the default): each symbol has its own phase of
the grid, phase = int(sha256(symbol)[:8 hex]) mod garch_cadence (history.phase), so r =
cadence_session(t, cadence, phase) and a session refits ~1/cadence of the universe; a range run fits all
its (r, symbol) pairs in the same fit_batch streams (the backfill's work is the unstaggered one's).
Between refits nothing is refitted: for a session t served by the fit at r, the variance recursion runs
with r's parameters from the first session of r's window through t:
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

import json
import math
from collections.abc import Mapping, Sequence
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
_BATCH = 4000  # series per fit_batch call (its matrix: window x 4,000 floats, 24 MB); inside, they stream through a 256-column block


class GarchVolAgent(hist.GridFitted):
    name = "garch"
    version = "3"  # 2: staggered refits, the u + c * s recursion; 3: Newton from arch's grid start, decrement convergence
    prefix = "garch_"

    def features(self, settings: AgentSettings) -> tuple[str, ...]:
        return ("ewma_vol_20", "vol_20")

    def history(self, settings: AgentSettings) -> HistoryNeed:
        return HistoryNeed(features=(RETURN,), sessions=self.history_sessions(settings))

    def fit(self, history: pl.DataFrame, fit_dates: Sequence[date], settings: AgentSettings,
            benchmark: str | None = None, symbols: Mapping[date, Sequence[str]] | None = None) -> pl.DataFrame:
        """AGENT_FIT_SCHEMA rows for every (fit date, symbol with a return in the window), or with `symbols`
        only the (fit date, symbol) pairs it lists: every pair of the call in the same fit_batch streams
        (a staggered range's ~1/cadence of the symbols per date are fitted together, not date by date)."""
        version = self.fit_version(settings)
        dates = sorted(set(fit_dates))
        if not dates or history.height == 0:
            return pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        w = settings.garch_window
        span = calendar.sessions(hist.window_sessions(dates[0], w)[0], dates[-1])  # contiguous sessions
        names = sorted(history["symbol"].unique().to_list())
        big = hist.matrix(history, RETURN, span, names)  # (sessions, symbols), NaN = no return
        count = np.vstack([np.zeros((1, len(names)), dtype=np.int64), np.cumsum(np.isfinite(big), axis=0)])
        col = {n: j for j, n in enumerate(names)}
        pos = {d: i for i, d in enumerate(span)}
        jobs: list[tuple[date, int, int, int, str]] = []  # (fit date, window's first row, fit date's row, column, symbol)
        for r in dates:
            i_r = pos[r]
            i_0 = max(i_r - w + 1, 0)  # the window: the w sessions ending at r (fewer at the calendar's start)
            for sym in (names if symbols is None else sorted(symbols.get(r, ()))):
                j = col.get(sym)
                if j is not None and count[i_r + 1, j] > count[i_0, j]:  # at least one return in the window
                    jobs.append((r, i_0, i_r, j, sym))
        frames = []
        for b0 in range(0, len(jobs), _BATCH):
            chunk = jobs[b0:b0 + _BATCH]
            t_len = max(i_r - i_0 + 1 for _, i_0, i_r, _, _ in chunk)
            mat = np.full((t_len, len(chunk)), np.nan)
            for c, (_, i_0, i_r, j, _) in enumerate(chunk):
                mat[t_len - (i_r - i_0 + 1):, c] = big[i_0:i_r + 1, j]  # a short window (calendar start) is left-padded
            f = garch.fit_batch(mat, min_obs=settings.garch_min_obs, max_iter=settings.garch_max_iter, tol=settings.garch_tol)
            _, _, _, mean, _ = garch.prepare(mat)
            for c, (r, i_0, _, _, sym) in enumerate(chunk):
                n = int(f.n_obs[c])
                if n < settings.garch_min_obs:
                    msg = f"too few returns: {n} < {settings.garch_min_obs}"
                elif not f.converged[c]:
                    msg = f"not converged after {int(f.iterations[c])} iterations"
                else:
                    msg = ""
                params = {} if n < settings.garch_min_obs else {
                    "omega": float(f.omega[c]), "alpha": float(f.alpha[c]), "beta": float(f.beta[c]), "nu": float(f.nu[c]),
                    "mean": float(mean[c]), "backcast": float(f.backcast[c]), "window_start": span[i_0].isoformat(),
                    "iterations": int(f.iterations[c]),
                }
                frames.append((r, sym, params, bool(f.converged[c]), n, float(f.loglik[c]), msg))
        if not frames:
            return pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        out = pl.DataFrame(
            {
                "fit_date": [x[0] for x in frames], "agent": [self.name] * len(frames), "symbol": [x[1] for x in frames],
                "params": [json.dumps(x[2], sort_keys=True) for x in frames],
                "converged": [x[3] for x in frames], "n_obs": [x[4] for x in frames],
                "loglik": [x[5] if math.isfinite(x[5]) else None for x in frames], "message": [x[6] for x in frames],
                "agent_version": [version] * len(frames),
            },
            schema=AGENT_FIT_SCHEMA,
        )
        return out.sort("fit_date", "symbol")

    def sigma_paths(self, history: pl.DataFrame, fits: pl.DataFrame, keys: pl.DataFrame, settings: AgentSettings) -> pl.DataFrame:
        """(date, symbol, _sig, _fit, omega, alpha, beta, nu, _n) for the rows of `keys` (date, symbol, _grid = the
        fit date serving the row) whose fit is usable (module docstring). Every (fit, symbol) pair the rows use is one
        column of a single variance recursion, each column started at its own window's first session, so a row's
        sigma has the same bits whatever other rows share the call."""
        schema = {"date": pl.Date, "symbol": pl.String, "_sig": pl.Float64, "_fit": pl.Date, "omega": pl.Float64,
                  "alpha": pl.Float64, "beta": pl.Float64, "nu": pl.Float64, "_n": pl.Float64}
        if keys.height == 0 or fits.height == 0:
            return pl.DataFrame(schema=schema)
        need = keys.group_by("_grid", "symbol").agg(_last=pl.col("date").max())
        f = (fits.filter(pl.col("converged")).select(_grid=pl.col("fit_date"), symbol=pl.col("symbol"), params=pl.col("params"),
                                                      _n=pl.col("n_obs").cast(pl.Float64))
             .join(need, on=["_grid", "symbol"], how="inner").sort("_grid", "symbol"))
        ps = [json.loads(p) if p else {} for p in f["params"].to_list()]
        ok = [("omega" in p) for p in ps]
        f = f.filter(pl.Series(ok, dtype=pl.Boolean))
        ps = [p for p, k in zip(ps, ok) if k]
        if f.height == 0:
            return pl.DataFrame(schema=schema)
        p = {k: np.array([q[k] for q in ps], dtype=float) for k in ("omega", "alpha", "beta", "nu", "mean", "backcast")}
        starts = [date.fromisoformat(q["window_start"]) for q in ps]
        lasts = f["_last"].to_list()
        span = calendar.sessions(min(starts), max(lasts))
        pos = {d: i for i, d in enumerate(span)}
        names = sorted(set(f["symbol"].to_list()))
        big = hist.matrix(history, RETURN, span, names)
        i0 = np.array([pos[d] for d in starts])
        length = np.array([pos[d] for d in lasts]) - i0 + 1
        rows = i0[None, :] + np.arange(int(length.max()))[:, None]  # (L, C): column c's sessions from its window start
        at = {n: i for i, n in enumerate(names)}
        jc = np.array([at[s] for s in f["symbol"].to_list()])
        mat = big[np.minimum(rows, len(span) - 1), jc[None, :]]
        mat[rows - i0[None, :] >= length[None, :]] = np.nan  # past the column's last session: never read
        mask = np.isfinite(mat)
        e = np.where(mask, 100.0 * (mat - p["mean"]), 0.0)
        s2 = garch.variance_path(e * e, mask, p["omega"], p["alpha"], p["beta"], p["backcast"])  # (L + 1, C)
        cols = f.select("_grid", "symbol").with_columns(_c=pl.int_range(pl.len(), dtype=pl.Int64),
                                                        _i0=pl.Series(i0, dtype=pl.Int64))
        k = keys.join(cols, on=["_grid", "symbol"], how="inner")
        if k.height == 0:
            return pl.DataFrame(schema=schema)
        kr = np.array([pos[d] for d in k["date"].to_list()]) - k["_i0"].to_numpy() + 1  # s2 row of the forecast after d
        kc = k["_c"].to_numpy()
        return pl.DataFrame({
            "date": k["date"], "symbol": k["symbol"], "_sig": np.sqrt(s2[kr, kc]) / 100.0, "_fit": k["_grid"],
            **{n: p[n][kc] for n in ("omega", "alpha", "beta", "nu")}, "_n": f["_n"].to_numpy()[kc],
        }).cast(schema)

    def compute(self, features: pl.DataFrame, settings: AgentSettings, benchmark: str | None = None,
                context: AgentContext | None = None) -> pl.DataFrame:
        validate_input(features, self.features(settings), self.name)
        if features.height == 0:
            return empty_output()
        fits = context.fits if context is not None else pl.DataFrame(schema=AGENT_FIT_SCHEMA)
        h = settings.horizon_sessions
        frame = self.fit_dates(features.select(*KEYS, _fb=daily_sigma(settings)), settings)  # + _grid: the fit serving the row
        paths = self.sigma_paths(context.history, fits, frame.select(*KEYS, "_grid"), settings) if context is not None else None
        if paths is not None and paths.height:
            frame = frame.join(paths, on=list(KEYS), how="left")
        else:
            frame = frame.with_columns(*(pl.lit(None, dtype=pl.Float64).alias(c) for c in ("_sig", "omega", "alpha", "beta", "nu", "_n")),
                                       _fit=pl.lit(None, dtype=pl.Date))
        # why a row has no GARCH sigma: the stored fit's message for (fit date, symbol)
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
