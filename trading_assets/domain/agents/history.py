"""Helpers of the history agents (garch, hmm_regime, evt_tail): calendar windows, return matrices, fits.

Windows are counted in NYSE sessions (domain/calendar.py), not in rows, so a missing bar is a NaN in
its series, never a shift of the window: the window of a fit at grid session r is the `window`
sessions ending at r (r included: the fit uses what is known after the close of r).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar
from trading_assets.domain.agents.base import AGENT_FIT_SCHEMA


def window_sessions(r: date, window: int) -> list[date]:
    """The `window` sessions ending at r (fewer at the calendar's start)."""
    return calendar.sessions(calendar.lookback_start(r, window - 1), r)


def phase(symbol: str, cadence: int) -> int:
    """A symbol's refit phase on a staggered grid: the first 8 hex digits of sha256(symbol) as an integer,
    modulo the cadence. Stable across processes, machines and runs (Python's hash() is salted per
    process), so a symbol always refits on the same sessions; the symbols of a universe spread about
    evenly over the cadence's phases, so a session refits ~1/cadence of them."""
    return int(hashlib.sha256(symbol.encode()).hexdigest()[:8], 16) % cadence


def with_fit_dates(frame: pl.DataFrame, cadence: int, stagger: bool, name: str = "_grid") -> pl.DataFrame:
    """`frame` (date, symbol, ...) plus column `name`: the fit date serving each row, the last session
    r <= date on the symbol's grid, calendar.cadence_session(date, cadence, phase(symbol, cadence))
    (phase 0 for every symbol when not staggered)."""
    if frame.height == 0:
        return frame.with_columns(pl.lit(None, dtype=pl.Date).alias(name))
    dates = frame["date"].unique().to_list()
    syms = frame["symbol"].unique().to_list()
    di = pl.DataFrame({"date": dates, "_di": [calendar.session_index(d) for d in dates]}, schema={"date": pl.Date, "_di": pl.Int64})
    sp = pl.DataFrame({"symbol": syms, "_ph": [phase(s, cadence) if stagger else 0 for s in syms]},
                      schema={"symbol": pl.String, "_ph": pl.Int64})
    g = frame.join(di, on="date", how="left").join(sp, on="symbol", how="left")
    g = g.with_columns(_gi=(pl.col("_di") - (pl.col("_di") - pl.col("_ph") + cadence) % cadence).clip(lower_bound=0))
    gis = g["_gi"].unique().to_list()
    back = pl.DataFrame({"_gi": gis, name: [calendar.session_at(i) for i in gis]}, schema={"_gi": pl.Int64, name: pl.Date})
    return g.join(back, on="_gi", how="left").drop("_di", "_ph", "_gi")


def fit_jobs(frame: pl.DataFrame, cadence: int, stagger: bool) -> dict[date, list[str]]:
    """{fit date: its sorted symbols} for the (date, symbol) rows of `frame` (with_fit_dates)."""
    g = with_fit_dates(frame.select("date", "symbol").unique(), cadence, stagger).select("_grid", "symbol").unique()
    out: dict[date, list[str]] = {}
    for r, s in g.sort("_grid", "symbol").iter_rows():
        out.setdefault(r, []).append(s)
    return out


def candidate_fit_dates(sessions: Sequence[date], cadence: int, stagger: bool) -> list[date]:
    """Every fit date the sessions may use on any symbol's grid: phase 0's grid sessions, or, staggered,
    every session from `cadence` - 1 sessions before the first one (each is some phase's grid session)."""
    if not sessions:
        return []
    lo, hi = min(sessions), max(sessions)
    if not stagger:
        return fit_dates_for(sessions, cadence)
    return calendar.sessions(calendar.lookback_start(lo, cadence - 1), hi)


def fit_all(agent, history: pl.DataFrame, frame: pl.DataFrame, settings, benchmark: str | None = None) -> pl.DataFrame:
    """Every fit the (date, symbol) rows of `frame` use, computed in one call (what defs/agent_fits.py does
    for the fits it does not find stored): the market-level HMM at its grid sessions, a per-symbol agent at
    each (fit date, symbol) pair of agent.fit_jobs, all pairs in the same batches."""
    if getattr(agent, "market_level", False):
        return agent.fit(history, agent.fit_sessions(sorted(frame["date"].unique().to_list()), settings), settings, benchmark)
    jobs = agent.fit_jobs(frame, settings)
    return agent.fit(history, sorted(jobs), settings, benchmark, symbols=jobs)


def groups_by_fit(dates: Sequence[date], cadence: int) -> dict[date, list[date]]:
    """{grid session r: the dates d with cadence_session(d) = r}, both sorted."""
    out: dict[date, list[date]] = {}
    for d in sorted(set(dates)):
        out.setdefault(calendar.cadence_session(d, cadence), []).append(d)
    return out


def fit_dates_for(sessions: Sequence[date], cadence: int) -> list[date]:
    """The grid sessions whose fits `sessions` use."""
    return sorted({calendar.cadence_session(d, cadence) for d in sessions})


def matrix(history: pl.DataFrame, column: str, sessions: Sequence[date], symbols: Sequence[str]) -> np.ndarray:
    """(len(sessions), len(symbols)) array of `column` (NaN where no row, or not finite)."""
    out = np.full((len(sessions), len(symbols)), np.nan)
    if not len(sessions) or not len(symbols) or history.height == 0:
        return out
    rows = pl.DataFrame({"date": list(sessions), "_i": np.arange(len(sessions))}, schema={"date": pl.Date, "_i": pl.Int64})
    cols = pl.DataFrame({"symbol": list(symbols), "_j": np.arange(len(symbols))}, schema={"symbol": pl.String, "_j": pl.Int64})
    h = (history.lazy().filter(pl.col("date").is_between(sessions[0], sessions[-1]))
         .select("date", "symbol", pl.col(column).cast(pl.Float64))
         .join(rows.lazy(), on="date").join(cols.lazy(), on="symbol")
         .filter(pl.col(column).is_finite()).collect())
    if h.height:
        out[h["_i"].to_numpy(), h["_j"].to_numpy()] = h[column].to_numpy()
    return out


def fit_rows(fit_date: date, agent: str, symbols: Sequence[str], params: Sequence[dict], converged: Sequence[bool],
             n_obs: Sequence[int], loglik: Sequence[float], message: Sequence[str], version: str) -> pl.DataFrame:
    """AGENT_FIT_SCHEMA rows (params as sorted-key JSON, so equal fits give equal text)."""
    return pl.DataFrame(
        {
            "fit_date": [fit_date] * len(symbols),
            "agent": [agent] * len(symbols),
            "symbol": list(symbols),
            "params": [json.dumps(p, sort_keys=True) for p in params],
            "converged": [bool(c) for c in converged],
            "n_obs": [int(n) for n in n_obs],
            "loglik": [None if ll is None or not np.isfinite(ll) else float(ll) for ll in loglik],
            "message": list(message),
            "agent_version": [version] * len(symbols),
        },
        schema=AGENT_FIT_SCHEMA,
    )


def fits_by(fits: pl.DataFrame, fit_date: date) -> dict[str, dict]:
    """{symbol: {params..., '_converged', '_message', '_n_obs'}} of one fit date."""
    rows = fits.filter(pl.col("fit_date") == fit_date)
    out = {}
    for sym, p, c, m, n in rows.select("symbol", "params", "converged", "message", "n_obs").iter_rows():
        d = json.loads(p) if p else {}
        d.update(_converged=bool(c), _message=m or "", _n_obs=n)
        out[sym] = d
    return out


def fit_version(name: str, version: str, settings, prefix: str) -> str:
    """name@version+hash of the agent's own settings (fields starting with prefix): a stored fit is
    reused only under the same version (other agents' settings do not invalidate it)."""
    from dataclasses import asdict

    own = {k: v for k, v in asdict(settings).items() if k.startswith(prefix)}
    return f"{name}@{version}+{hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()[:8]}"


class GridFitted:
    """The calendar-grid bookkeeping of an agent fitted every `<prefix>cadence` sessions on the trailing
    `<prefix>window` sessions, its symbols staggered over the cadence when `<prefix>stagger` is set (a
    setting the agent does not have = not staggered). An agent declares `name`, `version` and `prefix`
    (its AgentSettings fields' prefix, e.g. "garch_") and inherits the rest."""

    name: str
    version: str
    prefix: str

    def _cadence_stagger(self, settings) -> tuple[int, bool]:
        return getattr(settings, self.prefix + "cadence"), bool(getattr(settings, self.prefix + "stagger", False))

    def fit_version(self, settings) -> str:
        return fit_version(self.name, self.version, settings, self.prefix)

    def cadence(self, settings) -> int:
        return self._cadence_stagger(settings)[0]

    def history_sessions(self, settings) -> int:
        """The trailing sessions a fit needs before a session it serves: its window plus one cadence."""
        return getattr(settings, self.prefix + "window") + self.cadence(settings)

    def fit_sessions(self, sessions: Sequence[date], settings) -> list[date]:
        """Every fit date the sessions may use (on any symbol's phase when staggered)."""
        return candidate_fit_dates(sessions, *self._cadence_stagger(settings))

    def fit_dates(self, frame: pl.DataFrame, settings) -> pl.DataFrame:
        """`frame` (date, symbol, ...) + _grid: the fit date serving each row (the symbol's phase when staggered)."""
        return with_fit_dates(frame, *self._cadence_stagger(settings))

    def fit_jobs(self, frame: pl.DataFrame, settings) -> dict[date, list[str]]:
        """{fit date: symbols} the (date, symbol) rows of `frame` use."""
        return fit_jobs(frame, *self._cadence_stagger(settings))
