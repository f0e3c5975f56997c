"""The book's reads: the state before the window, each session's inputs, the provenance of its rows.

All point in time (nothing after the window end):
- decisions (pre-risk, Meta-Brain), benchmark excluded;
- price_history open/close of each session (RAW close: the traded price; used to mark and size);
- features adv_shares_21d, vol_20 of each session (vol_20 replaced by the GARCH agent's annualized sigma
  from model_outputs where it has one: the gate's volatility scaling uses the GARCH forecast), and
  logret_1 over the trailing max(cvar_lookback, tail_lookback) sessions (the EVT tail model reads the
  longer window, the rest of the gate the last cvar_lookback): the history uses the features' point-in-time
  adjusted log returns (split- and dividend-adjusted as of each session), as simple returns exp(r)-1;
- universe sectors; corporate_actions (splits and dividends on the held shares).
Memory is bounded: the inputs are read _READ_BLOCK_ROWS decision rows at a time (`session_inputs`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from trading_assets.defs.summary import cycle_id_for as summary_cycle_id
from trading_assets.domain import calendar
from trading_assets.domain import portfolio as pf
from trading_assets.settings import Settings
from trading_assets.store.warehouse import Warehouse

# Feature columns the book reads (the features catalog's names)
FEATURE_RETURN = "logret_1"
FEATURE_ADV = "adv_shares_21d"
FEATURE_VOL = "vol_20"

CVAR_LOOKBACK_SESSIONS = 756  # partition mapping of the features dep (max of the cvar_lookback and tail_lookback defaults)


def cycle_id_for(day: date, settings: Settings) -> str:
    """cycle_id of a session (the one formula lives in defs/summary.py)."""
    return summary_cycle_id(day, settings.settings_hash())


# --- reads ---------------------------------------------------------------------------------------
def load_state_before(wh: Warehouse, start: date, settings: Settings) -> tuple[pf.BookState, dict]:
    """The book after the session before `start` and the facts of that session for the checks.

    No portfolio row before `start` at all: the book starts flat with the initial capital. A
    portfolio row somewhere before `start` but none at the previous session: a gap -> error.
    """
    prev = calendar.previous_session(start)
    port = wh.read("SELECT * FROM portfolio WHERE date = ?", [prev])
    if port.height == 0:
        earlier = wh.read("SELECT max(date) AS d FROM portfolio WHERE date < ?", [start])["d"][0]
        if earlier is not None:
            raise ValueError(
                f"the book has sessions up to {earlier} but none at {prev}, the session before {start}: "
                f"materialize {calendar.next_session(earlier)}..{prev} first (the book is path dependent)"
            )
        state = pf.initial_state(settings)
        return state, {"prev": prev, "fresh_start": True, "prev_qty": {}}
    positions = wh.read("SELECT symbol, quantity, avg_cost, close FROM positions WHERE date = ? ORDER BY symbol", [prev])
    orders = wh.read("SELECT order_id, date, symbol, side, quantity, reference_price, mode, cycle_id, expected_volume, "
                     "sigma_daily, coalesce(algo, 'market_on_open') AS algo FROM orders "
                     "WHERE date = ? ORDER BY symbol", [prev])
    state = pf.state_from_rows(port.row(0, named=True), positions, orders, settings)
    return state, {"prev": prev, "fresh_start": False,
                   "prev_qty": dict(zip(positions["symbol"].to_list(), positions["quantity"].to_list()))}


def _frame(wh: Warehouse, sql: str, params: list, schema: dict) -> pl.DataFrame:
    df = wh.read(sql, params)
    if df.height == 0:
        return pl.DataFrame(schema=schema)
    return df.cast({k: v for k, v in schema.items() if k in df.columns})


_READ_BLOCK_ROWS = 150_000  # decision rows read at once: a long window's inputs are never all in memory


def _vol_factor(settings: Settings) -> float:
    """An agent's sigma over the horizon h -> annualized vol: * sqrt(A / h)."""
    return float(np.sqrt(settings.agents.annualization / settings.agents.horizon_sessions))


def session_inputs(wh: Warehouse, sessions: list[date], settings: Settings, symbols: list[str] | None = None,
                   block_sessions: int | None = None):
    """Yield SessionInputs for each session, reading the inputs `block_sessions` sessions at a time
    (default: about _READ_BLOCK_ROWS decision rows, at least 21 sessions).

    The trailing return matrix (calendar x symbols, simple returns; missing rows 0, as the gate
    reads NaN) rolls from block to block: each block reads its own sessions' features only (the first
    block also the cvar_lookback - 1 sessions before the window), so nothing is read twice and every
    session gets what a read of the whole window at once gives (test_session_inputs_in_blocks)."""
    if not sessions:
        return
    start, end = sessions[0], sessions[-1]
    lb = settings.risk.cvar_lookback
    if settings.risk.tail_model == "evt":  # the EVT tail model reads a longer window (domain/risk_gate.py)
        lb = max(lb, settings.risk.tail_lookback)
    universe = wh.read("SELECT symbol, sector, is_benchmark FROM universe")
    sectors = dict(zip(universe["symbol"].to_list(), universe["sector"].to_list()))
    benchmarks = sorted(set(universe.filter(pl.col("is_benchmark"))["symbol"].to_list()) | {settings.benchmark})
    block_sessions = block_sessions or max(21, _READ_BLOCK_ROWS // max(len(symbols or sectors), 1))
    settings_hash = settings.settings_hash()
    hist_start = calendar.lookback_start(start, lb - 1)
    cal = calendar.sessions(hist_start, end)
    pos = {d: i for i, d in enumerate(cal)}
    ret_syms = sorted(set(wh.read("SELECT DISTINCT symbol FROM features WHERE date BETWEEN ? AND ?",
                                  [hist_start, end])["symbol"].to_list()) - set(benchmarks))
    col = {s: j for j, s in enumerate(ret_syms)}
    mat, m0 = np.full((0, len(ret_syms)), np.nan), 0  # mat holds the rows of cal[m0 : m0 + len(mat)]
    dec_schema = {"date": pl.Date, "symbol": pl.String, "mu_hat": pl.Float64, "sigma_hat": pl.Float64,
                  "target_weight_raw": pl.Float64, "pre_risk_decision": pl.String,
                  "reason_codes": pl.List(pl.String), "regime": pl.String}
    px_schema = {"date": pl.Date, "symbol": pl.String, "open": pl.Float64, "close": pl.Float64, "high": pl.Float64,
                 "low": pl.Float64}
    ft_schema = {"date": pl.Date, "symbol": pl.String, FEATURE_ADV: pl.Float64, FEATURE_VOL: pl.Float64,
                 FEATURE_RETURN: pl.Float64}
    ca_schema = {"date": pl.Date, "symbol": pl.String, "action": pl.String, "value": pl.Float64,
                 "price_factor": pl.Float64}
    for i0 in range(0, len(sessions), block_sessions):
        block = sessions[i0:i0 + block_sessions]
        b0, b1 = block[0], block[-1]
        dec = _frame(wh, "SELECT date, symbol, mu_hat, sigma_hat, target_weight_raw, pre_risk_decision, reason_codes, "
                         "regime FROM decisions WHERE date BETWEEN ? AND ? ORDER BY date, symbol", [b0, b1], dec_schema)
        dec = dec.filter(~pl.col("symbol").is_in(benchmarks))
        if symbols:
            dec = dec.filter(pl.col("symbol").is_in(symbols))
        prices = _frame(wh, "SELECT date, symbol, open, close, high, low FROM price_history WHERE date BETWEEN ? AND ? "
                            "ORDER BY date, symbol", [b0, b1], px_schema)
        actions = _frame(wh, "SELECT date, symbol, action, value, price_factor FROM corporate_actions "
                             "WHERE date BETWEEN ? AND ?", [b0, b1], ca_schema)
        # sessions halted for a systemic data fault (domain/session_health.py): no fills, no orders
        halted = set(wh.read("SELECT date FROM session_quality WHERE halted AND date BETWEEN ? AND ?", [b0, b1])["date"].to_list())
        # the return rows this block needs: keep the ones already read, read the rest
        first = max(0, pos[b0] - lb + 1)
        have = m0 + mat.shape[0]
        new_from = max(first, have)
        # vol for the gate's volatility scaling: the sigma agent's (GARCH forecast, or the trailing fallback it
        # reports) annualized, the features' vol_20 where it has no row
        feats = _frame(wh, f"SELECT f.date, f.symbol, f.{FEATURE_ADV}, coalesce(m.sigma * ?, f.{FEATURE_VOL}) AS {FEATURE_VOL}, "
                           f"f.{FEATURE_RETURN} FROM features f LEFT JOIN model_outputs m ON m.date = f.date AND "
                           "m.symbol = f.symbol AND m.agent = ? AND m.sigma > 0 "
                           "WHERE f.date BETWEEN ? AND ? ORDER BY f.date, f.symbol",
                       [_vol_factor(settings), settings.meta.sigma_agent or "", cal[new_from], b1], ft_schema)
        feats = feats.filter(~pl.col("symbol").is_in(benchmarks))
        new = np.full((pos[b1] + 1 - new_from, len(ret_syms)), np.nan)
        r = feats.drop_nulls(FEATURE_RETURN)
        if r.height:
            ri = np.array([pos.get(d, -1) for d in r["date"].to_list()]) - new_from
            ci = np.array([col[s] for s in r["symbol"].to_list()])
            keep = ri >= 0
            new[ri[keep], ci[keep]] = np.expm1(r[FEATURE_RETURN].to_numpy()[keep])
        np.nan_to_num(new, copy=False)  # missing -> 0 once here, what the gate would do every session
        mat, m0 = np.concatenate([mat[first - m0:] if first < have else mat[:0], new]), first
        by = {
            "dec": dec.partition_by("date", as_dict=True, include_key=False),
            "px": prices.partition_by("date", as_dict=True, include_key=False),
            "ft": feats.filter(pl.col("date") >= b0).select("date", "symbol", FEATURE_ADV, FEATURE_VOL)
            .partition_by("date", as_dict=True, include_key=False),
            "ca": actions.partition_by("date", as_dict=True, include_key=False),
        }
        empty = {
            "dec": dec.clear().drop("date"), "px": prices.clear().drop("date"),
            "ft": feats.clear().select("symbol", FEATURE_ADV, FEATURE_VOL), "ca": actions.clear().drop("date"),
        }
        del dec, prices, feats, actions, r
        for d in block:
            k = pos[d] - m0
            yield pf.SessionInputs(
                date=d,
                cycle_id=summary_cycle_id(d, settings_hash),
                decisions=by["dec"].pop((d,), empty["dec"]),
                prices=by["px"].pop((d,), empty["px"]),
                features=by["ft"].pop((d,), empty["ft"]),
                returns=mat[max(0, k - lb + 1): k + 1],
                return_symbols=ret_syms,
                sectors=sectors,
                actions=by["ca"].pop((d,), empty["ca"]),
                halted=d in halted,
            )


def provenance(wh: Warehouse, start: date, end: date, settings: Settings) -> dict[date, dict]:
    """Per session: provider mix of price_history, feature_version(s), agent versions, settings hash."""
    out: dict[date, dict] = {}
    prov = wh.read("SELECT date, provider, count(*) AS n FROM price_history WHERE date BETWEEN ? AND ? "
                   "GROUP BY ALL ORDER BY ALL", [start, end])
    fv = wh.read("SELECT DISTINCT date, feature_version FROM features WHERE date BETWEEN ? AND ? ORDER BY ALL", [start, end])
    av = wh.read("SELECT DISTINCT date, agent, agent_version FROM model_outputs WHERE date BETWEEN ? AND ? ORDER BY ALL",
                 [start, end])
    h = settings.settings_hash()
    for d in calendar.sessions(start, end):
        out[d] = {"providers": {}, "feature_version": [], "agent_versions": {}, "settings_hash": h}
    for d, p, n in prov.iter_rows():
        out.setdefault(d, {}).setdefault("providers", {})[p] = n
    for d, v in fv.iter_rows():
        out[d]["feature_version"].append(v)
    for d, a, v in av.iter_rows():
        out[d]["agent_versions"][a] = v
    return out


# Columns the book's tables carry beyond their .sql schema (added on first write)
EXTRA_COLUMNS = {
    "risk_decisions": {"pre_risk_decision": "VARCHAR", "mu_hat": "DOUBLE", "sigma_hat": "DOUBLE",
                       "close": "DOUBLE", "sector": "VARCHAR", "optimizer_weight": "DOUBLE"},
    "orders": {"expected_volume": "DOUBLE", "sigma_daily": "DOUBLE", "algo": "VARCHAR"},
    "fills": {"reason": "VARCHAR", "ordered_quantity": "DOUBLE", "algo": "VARCHAR", "arrival_price": "DOUBLE",
              "vwap_proxy": "DOUBLE", "shortfall_arrival_bps": "DOUBLE", "shortfall_vwap_bps": "DOUBLE",
              "fill_ratio": "DOUBLE", "leftover_quantity": "DOUBLE", "leftover": "VARCHAR"},
    "portfolio": {"recovery_sessions": "INTEGER", "tail_prob": "DOUBLE", "approved_gross": "DOUBLE",
                  "warnings": "VARCHAR", "method": "VARCHAR", "optimizer_status": "VARCHAR",
                  "expected_return": "DOUBLE", "risk_penalty": "DOUBLE", "cost_penalty": "DOUBLE",
                  "ex_ante_vol": "DOUBLE", "optimizer": "VARCHAR", "vol_scale": "DOUBLE", "drawdown_scale": "DOUBLE",
                  "recovery_scale": "DOUBLE", "tail_method": "VARCHAR", "tail_threshold": "DOUBLE", "tail_xi": "DOUBLE",
                  "tail_beta": "DOUBLE", "tail_exceedances": "INTEGER"},
}


@dataclass
class BookInputs:
    """What the walk of a window starts from and reads: the state after the session before the window
    (and that session's facts for the checks), the window's sessions read lazily block by block, the
    provenance of each session's rows, and the number of symbols (it sizes the write blocks)."""

    sessions: list[date]
    state: pf.BookState
    before: dict  # prev, fresh_start, prev_qty (see load_state_before)
    session_inputs: Iterator[pf.SessionInputs]
    provenance: dict[date, dict]
    n_symbols: int


def read_inputs(wh: Warehouse, sessions: list[date], settings: Settings, symbols: list[str] | None = None) -> BookInputs:
    """The book's inputs for a window (the session inputs are a generator: read as the walk asks)."""
    for table, cols in EXTRA_COLUMNS.items():
        wh.ensure_columns(table, cols)
    state, before = load_state_before(wh, sessions[0], settings)
    n_symbols = len(symbols) if symbols else int(wh.read("SELECT count(*) AS n FROM universe")["n"][0])
    prov = provenance(wh, sessions[0], sessions[-1], settings)
    return BookInputs(sessions, state, before, session_inputs(wh, sessions, settings, symbols), prov, n_symbols)

