"""The agent_fits table for the agent_outputs asset: read the stored fits, compute the missing ones, upsert.

A fitted agent (domain/agents/base.FittedAgent) needs, for the sessions it scores, the fits of its grid
sessions (agent.fit_dates: per (session, symbol), on the symbol's own phase of the grid when the agent
staggers its refits; agent.fit_sessions for the market-level HMM). A (grid session, symbol) fit is reused when a row with the agent's
current fit_version exists; otherwise the history of the fit windows is read (features, nothing after
the grid session) and agent.fit computes the missing ones, which are written in one transaction
(DELETE the keys; INSERT). A fit is a deterministic function of its window, so a recomputed row equals
the stored one (tested). Symbols considered: those with a features row on a session that uses the fit
(the HMM: one 'MARKET' row per grid session).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from trading_assets.domain import calendar
from trading_assets.domain.agents import AGENT_FIT_SCHEMA, MARKET
from trading_assets.settings import AgentSettings
from trading_assets.store.warehouse import Warehouse

FIT_COLUMNS = (*AGENT_FIT_SCHEMA, "run_id")


def read_fits(wh: Warehouse, agent: str, version: str, fit_dates: list[date]) -> pl.DataFrame:
    if not fit_dates:
        return pl.DataFrame(schema=AGENT_FIT_SCHEMA)
    df = wh.read(
        "SELECT fit_date, agent, symbol, params, converged, n_obs, loglik, message, agent_version FROM agent_fits "
        "WHERE agent = ? AND agent_version = ? AND fit_date IN (SELECT unnest(?::DATE[])) ORDER BY fit_date, symbol",
        [agent, version, fit_dates],
    )
    return df.cast(AGENT_FIT_SCHEMA) if df.height else pl.DataFrame(schema=AGENT_FIT_SCHEMA)  # type: ignore[arg-type]


def read_pair_fits(wh: Warehouse, agent: str, version: str, pairs: pl.DataFrame) -> pl.DataFrame:
    """The stored fits of exactly these (fit_date, symbol) pairs (a daily run's ~one per symbol, where a read by
    fit dates would bring every symbol of the cadence's last sessions when refits are staggered)."""
    if pairs.height == 0:
        return pl.DataFrame(schema=AGENT_FIT_SCHEMA)
    df = wh.read(
        "SELECT f.fit_date, f.agent, f.symbol, f.params, f.converged, f.n_obs, f.loglik, f.message, f.agent_version "
        "FROM agent_fits f JOIN (SELECT unnest(?::DATE[]) AS d, unnest(?::VARCHAR[]) AS s) k ON f.fit_date = k.d AND f.symbol = k.s "
        "WHERE f.agent = ? AND f.agent_version = ? ORDER BY f.fit_date, f.symbol",
        [pairs["fit_date"].to_list(), pairs["symbol"].to_list(), agent, version],
    )
    return df.cast(AGENT_FIT_SCHEMA) if df.height else pl.DataFrame(schema=AGENT_FIT_SCHEMA)  # type: ignore[arg-type]


_PAIR_READ_MAX = 20_000  # up to this many (fit_date, symbol) pairs the stored fits are read pair by pair


def ensure_fits(wh: Warehouse, agent, settings: AgentSettings, sessions: list[date], symbols: list[str],
                benchmark: str | None, run_id: str, history_columns: list[str]) -> tuple[pl.DataFrame, dict]:
    """(the agent's fits for `sessions`, stats {reused, computed, failed: [(fit_date, symbol, message)]})."""
    version = agent.fit_version(settings)
    market = bool(getattr(agent, "market_level", False))
    missing: dict[date, set[str]] = {}
    if market:
        needed = agent.fit_sessions(sessions, settings)
        stored = read_fits(wh, agent.name, version, needed)
        have = set(zip(stored["fit_date"].to_list(), stored["symbol"].to_list()))
        for r in needed:
            if (r, MARKET) not in have:
                missing[r] = {MARKET}
    else:
        # which symbols use which fit: a features row on a session mapped to it (the symbol's own phase of the
        # grid when staggered)
        present = wh.read_window("features", sessions[0], sessions[-1], symbols=symbols, columns=["date", "symbol"],
                                 order_by="date, symbol")
        pairs = agent.fit_dates(present, settings).select(fit_date=pl.col("_grid"), symbol=pl.col("symbol")).unique()
        pairs = pairs.sort("fit_date", "symbol")
        if pairs.height <= _PAIR_READ_MAX:
            stored = read_pair_fits(wh, agent.name, version, pairs)
        else:  # a range: by fit dates, then only the pairs these sessions use
            stored = read_fits(wh, agent.name, version, sorted(pairs["fit_date"].unique().to_list()))
            stored = stored.join(pairs, on=["fit_date", "symbol"], how="semi")
        have = set(zip(stored["fit_date"].to_list(), stored["symbol"].to_list()))
        for r, s in pairs.iter_rows():
            if (r, s) not in have:
                missing.setdefault(r, set()).add(s)
    computed = pl.DataFrame(schema=AGENT_FIT_SCHEMA)
    if missing:
        need = agent.history(settings).sessions
        lo = calendar.lookback_start(min(missing), need)
        hi = max(missing)
        syms = None if market else sorted(set().union(*missing.values()))
        read_syms = symbols if market else syms
        history = wh.read_window("features", lo, hi, symbols=read_syms, columns=["date", "symbol", *history_columns],
                                 order_by="date, symbol")
        if not market:
            # every missing (fit date, symbol) pair in one call: the agent batches them together
            computed = agent.fit(history, sorted(missing), settings, benchmark,
                                 symbols={r: sorted(ss) for r, ss in missing.items()})
        else:
            computed = agent.fit(history, sorted(missing), settings, benchmark)
        if computed.height:
            write_fits(wh, computed, run_id)
    fits = pl.concat([stored, computed]).sort("fit_date", "symbol") if computed.height else stored
    failed = computed.filter(~pl.col("converged")).select("fit_date", "symbol", "message") if computed.height else computed
    return fits, {
        "reused": stored.height,
        "computed": computed.height,
        "not_converged_or_failed": failed.height,
        "failures": [[str(d), s, m] for d, s, m in failed.head(50).iter_rows()] if failed.height else [],
    }


def write_fits(wh: Warehouse, fits: pl.DataFrame, run_id: str) -> None:
    """Upsert: delete the (fit_date, agent, symbol) keys of `fits`, insert them, in one transaction."""
    frame = fits.with_columns(run_id=pl.lit(run_id)).select(FIT_COLUMNS)
    keys = frame.select("fit_date", "agent", "symbol")
    with wh.transaction() as con:
        con.register("_keys", keys.to_arrow())
        try:
            con.execute("DELETE FROM agent_fits USING _keys k WHERE agent_fits.fit_date = k.fit_date "
                        "AND agent_fits.agent = k.agent AND agent_fits.symbol = k.symbol")
        finally:
            con.unregister("_keys")
        wh._insert(con, "agent_fits", frame)
