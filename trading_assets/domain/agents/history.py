"""Helpers of the history agents (garch, hmm_regime, evt_tail): calendar windows, return matrices, fits.

Windows are counted in NYSE sessions (domain/calendar.py), not in rows, so a missing bar is a NaN in
its series, never a shift of the window: the window of a fit at grid session r is the `window`
sessions ending at r (r included: the fit uses what is known after the close of r).
"""

from __future__ import annotations

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
