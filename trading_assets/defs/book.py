"""The book: one multi-asset (risk_decisions, orders, positions, portfolio) that walks the sessions in order.

Why one multi-asset: risk(t) needs positions(t-1); positions(t) needs orders(t-1); Dagster forbids
that cycle between asset keys, only self-dependency works (docs/ARCHITECTURE.md). The op reads the
state after the session before the window (portfolio row, positions, and that session's orders,
which fill at the window's first open), walks the window with `domain.portfolio.run_book` (`step` per session), replaces
the window's rows of risk_decisions, orders, fills, positions and portfolio, appends every final
decision, order and fill to the audit log, and reports one MaterializeResult per asset.
`write_book` is that body without Dagster. Memory is bounded by blocks: the inputs are read
_READ_BLOCK_ROWS decision rows at a time, the walk and the writes go by whole months,
_WRITE_BLOCK_ROWS rows at a time (`write_book`); 5 years x 250 names is one write block.

Inputs read (all point in time, nothing after the window end):
- decisions (pre-risk, Meta-Brain), benchmark excluded;
- price_history open/close of each session (RAW close: the traded price; used to mark and size);
- features adv_shares_21d, vol_20 of each session, and logret_1 over the trailing
  cvar_lookback sessions: the CVaR / correlation history uses the features' point-in-time
  adjusted log returns (split- and dividend-adjusted as of each session), as simple returns exp(r)-1;
- universe sectors; corporate_actions (splits and dividends on the held shares).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import tempfile
from collections import Counter
from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl

from trading_assets.defs.summary import cycle_id_for as summary_cycle_id
from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, lookback, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.store.staged_writes import replace_window_in_session_blocks
from trading_assets.domain import calendar
from trading_assets.domain import execution as ex
from trading_assets.domain import portfolio as pf
from trading_assets.domain import reasons as rc
from trading_assets.domain import risk
from trading_assets.settings import Settings
from trading_assets.store.warehouse import Warehouse, json_object, json_values

# Check names (constants, used by tests and the UI)
CHECK_DECISIONS_WITHIN_LIMITS = "final_decisions_within_limits"
CHECK_UNIQUE_ORDER_IDS = "unique_order_ids"
CHECK_POSITIONS_MATCH_FILLS = "positions_match_fills"

# Feature columns the book reads (the features catalog's names)
FEATURE_RETURN = "logret_1"
FEATURE_ADV = "adv_shares_21d"
FEATURE_VOL = "vol_20"

BOOK_TABLES = ("risk_decisions", "orders", "fills", "positions", "portfolio")
_EXTRA_COLUMNS = {
    "risk_decisions": {"pre_risk_decision": "VARCHAR", "mu_hat": "DOUBLE", "sigma_hat": "DOUBLE",
                       "close": "DOUBLE", "sector": "VARCHAR"},
    "fills": {"reason": "VARCHAR"},
    "portfolio": {"recovery_sessions": "INTEGER", "tail_prob": "DOUBLE", "approved_gross": "DOUBLE",
                  "warnings": "VARCHAR"},
}
_CVAR_LOOKBACK = 252  # partition mapping of the features dep (settings.risk.cvar_lookback default)


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
    orders = wh.read("SELECT order_id, date, symbol, side, quantity, reference_price, mode, cycle_id FROM orders "
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
    px_schema = {"date": pl.Date, "symbol": pl.String, "open": pl.Float64, "close": pl.Float64}
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
        prices = _frame(wh, "SELECT date, symbol, open, close FROM price_history WHERE date BETWEEN ? AND ? "
                            "ORDER BY date, symbol", [b0, b1], px_schema)
        actions = _frame(wh, "SELECT date, symbol, action, value, price_factor FROM corporate_actions "
                             "WHERE date BETWEEN ? AND ?", [b0, b1], ca_schema)
        # the return rows this block needs: keep the ones already read, read the rest
        first = max(0, pos[b0] - lb + 1)
        have = m0 + mat.shape[0]
        new_from = max(first, have)
        feats = _frame(wh, f"SELECT date, symbol, {FEATURE_ADV}, {FEATURE_VOL}, {FEATURE_RETURN} FROM features "
                           "WHERE date BETWEEN ? AND ? ORDER BY date, symbol", [cal[new_from], b1], ft_schema)
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


# --- checks --------------------------------------------------------------------------------------
def duplicate_decisions(rd: pl.DataFrame) -> list[dict]:
    """(date, symbol) with more than one final decision."""
    dup = rd.group_by("date", "symbol").len().filter(pl.col("len") > 1)
    return [{"date": str(d), "symbol": sym, "violation": f"{n} final decisions"} for d, sym, n in dup.iter_rows()]


def limit_breaches(rd: pl.DataFrame, settings: Settings) -> list[dict]:
    """Every session's final decisions within limits (risk.limit_violations).

    A column-wise screen over all the sessions finds the ones that might break a limit (its
    thresholds are looser by 1e-9 than limit_violations' tolerance, more than the sums' rounding
    differences); only those sessions go through risk.limit_violations, which decides and words them."""
    s = settings.risk
    bad: list[dict] = []
    tol, margin = 1e-6, 1e-9  # limit_violations' tolerance; the screen's slack
    a, q, c, dec = pl.col("approved_weight"), pl.col("order_quantity"), pl.col("current_weight"), pl.col("decision")
    buy, sell = dec == rc.EXECUTE_BUY, dec == rc.EXECUTE_SELL
    maybe_bad = (
        (buy & ((q <= 0) | (a > s.max_single_name + tol - margin)
                | (a.abs().sum().over("date", "sector") > s.max_sector + tol - margin)
                | (a.abs().sum().over("date") > s.max_gross_leverage + tol - margin)))
        | (sell & (q >= 0))
        | (~buy & ~sell & (q != 0))
        | ((dec == rc.HOLD) & (a > s.max_single_name + tol - margin) & (c <= s.max_single_name + tol + margin))
        | (a < -tol + margin)
    ).fill_null(True)
    suspects = rd.filter(maybe_bad.any().over("date"))
    for (d,), g in suspects.partition_by("date", as_dict=True).items():
        v = risk.limit_violations(g["decision"].to_list(), g["approved_weight"].to_numpy(),
                                  g["current_weight"].to_numpy(), g["order_quantity"].to_numpy(),
                                  g["sector"].to_list(), s)
        syms = g["symbol"].to_list()
        for msg in v:
            i = int(msg[1:msg.index(" ")])
            bad.append({"date": str(d), "symbol": syms[i], "violation": msg})
    return bad


def check_decisions(rd: pl.DataFrame, settings: Settings) -> dict:
    """Every session: one row per symbol, decisions within limits (risk.limit_violations)."""
    bad = duplicate_decisions(rd) + limit_breaches(rd, settings)
    return {"passed": not bad, "violations": bad}


def check_positions(out: pf.BookOutput, prev_qty: dict[str, float], sessions: list[date]) -> list[dict]:
    """previous * split ratio + signed fills = current, session by session, from the written frames
    (read into per-session dicts in one pass: no frame per session)."""
    cur_by: dict[date, dict[str, float]] = {}
    for d, sym, q in zip(*(out.positions[c].to_list() for c in ("date", "symbol", "quantity"))):
        cur_by.setdefault(d, {})[sym] = q
    filled = out.fills.filter(pl.col("status") == ex.FILLED)
    fills_by: dict[date, list[tuple]] = {}
    for d, *f in zip(*(filled[c].to_list() for c in ("date", "symbol", "side", "quantity"))):
        fills_by.setdefault(d, []).append(f)
    bad = []
    prev = prev_qty
    for d in sessions:
        cur = cur_by.get(d, {})
        for v in ex.positions_consistency_rows(prev, out.split_ratios.get(d, {}), fills_by.get(d, ()), cur):
            bad.append({"date": str(d), **v})
        prev = cur
    return bad


# --- metadata helpers ----------------------------------------------------------------------------
def nav_chart_markdown(portfolio: pl.DataFrame, width: int = 60, height: int = 10) -> str:
    """A text chart of NAV over the window (down-sampled to `width` points) in a markdown code block."""
    if portfolio.height == 0:
        return "(no sessions)"
    navs = portfolio["nav"].to_list()
    dates = portfolio["date"].to_list()
    idx = sorted({round(i * (len(navs) - 1) / max(width - 1, 1)) for i in range(min(width, len(navs)))})
    pts = [navs[i] for i in idx]
    lo, hi = min(pts), max(pts)
    span = hi - lo or 1.0
    rows = []
    for r in range(height, -1, -1):
        level = lo + span * r / height
        line = "".join("*" if round((v - lo) / span * height) == r else " " for v in pts)
        rows.append(f"{level:>14,.0f} |{line}")
    rows.append(" " * 15 + "+" + "-" * len(pts))
    rows.append(" " * 16 + f"{dates[0]} .. {dates[-1]} ({len(navs)} sessions)")
    return "```\n" + "\n".join(rows) + "\n```"


def decisions_markdown(rd: pl.DataFrame, limit: int = 50) -> str:
    """Markdown table of the non-HOLD final decisions of the window's last session."""
    if rd.height == 0:
        return "(no decisions)"
    last = rd["date"].max()
    g = rd.filter((pl.col("date") == last) & (pl.col("decision") != rc.HOLD)).sort("decision", "symbol")
    lines = [f"Non-HOLD final decisions on {last} ({g.height}):", "",
             "| symbol | decision | current w | approved w | order (shares) | reasons |",
             "|---|---|---|---|---|---|"]
    for r in g.head(limit).iter_rows(named=True):
        lines.append(f"| {r['symbol']} | {r['decision']} | {r['current_weight']:.4f} | {r['approved_weight']:.4f} | "
                     f"{r['order_quantity']:+.0f} | {', '.join(r['reason_codes'])} |")
    if g.height > limit:
        lines.append(f"| ... {g.height - limit} more | | | | | |")
    return "\n".join(lines)


def _top(rd_day: pl.DataFrame, decision: str, n: int = 5) -> list[dict]:
    g = rd_day.filter(pl.col("decision") == decision).with_columns(
        (pl.col("approved_weight") - pl.col("current_weight")).abs().alias("_dw")).sort(["_dw", "symbol"], descending=[True, False])
    return [{"symbol": r["symbol"], "mu_hat": r["mu_hat"], "sigma_hat": r["sigma_hat"],
             "current_weight": r["current_weight"], "approved_weight": r["approved_weight"],
             "order_quantity": r["order_quantity"], "reason_codes": r["reason_codes"]}
            for r in g.head(n).iter_rows(named=True)]


# --- the multi-asset -----------------------------------------------------------------------------
@dg.multi_asset(
    name="book",
    specs=[
        dg.AssetSpec(
            "risk_decisions",
            group_name="decisions",
            description=(
                "FINAL decision per (session, symbol) after the risk gate (domain/risk.py). Path dependent: the "
                "book (this and orders, positions, portfolio) starts each window from its own state at the previous "
                "session and refuses a window whose previous session is missing."
            ),
            deps=[
                dg.AssetDep("meta_decisions", partition_mapping=SAME_SESSION),
                dg.AssetDep("features", partition_mapping=lookback(_CVAR_LOOKBACK)),
                dg.AssetDep("price_history", partition_mapping=SAME_SESSION),
                dg.AssetDep("universe"),
            ],
        ),
        dg.AssetSpec("orders", group_name="portfolio", deps=["risk_decisions"],
                     description="Orders decided at t (tables orders + fills: paper fills at the open of t+1)."),
        dg.AssetSpec(
            "positions",
            group_name="portfolio",
            description="Holdings at each close after the session's fills.",
            deps=[
                "orders",
                dg.AssetDep("price_history", partition_mapping=SAME_SESSION),
                dg.AssetDep("corporate_actions", partition_mapping=SAME_SESSION),
            ],
        ),
        dg.AssetSpec(
            "portfolio",
            group_name="portfolio",
            description="NAV, daily return, drawdown, exposures and the trading state per session.",
            deps=["positions"],
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(CHECK_DECISIONS_WITHIN_LIMITS, asset="risk_decisions", blocking=True,
                          description="one final decision per symbol, within every limit"),
        dg.AssetCheckSpec(CHECK_UNIQUE_ORDER_IDS, asset="orders", blocking=True, description="no two orders share an id"),
        dg.AssetCheckSpec(CHECK_POSITIONS_MATCH_FILLS, asset="positions", blocking=True,
                          description="previous positions x split ratio + fills = current positions"),
    ],
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    can_subset=False,
)
def book(context, warehouse: WarehouseResource, pipeline: PipelineConfig):
    settings = pipeline.settings()
    if pipeline.mode and pipeline.mode != settings.execution.mode:
        settings = settings.replace(execution=dataclasses.replace(settings.execution, mode=pipeline.mode))
    broker = ex.get_broker(settings)  # refuses live mode without a broker before anything is written
    start, end, sessions = window_of(context)
    w = write_book(warehouse.get(), settings, broker, sessions, context.run.run_id, list(pipeline.symbols) or None)
    port, last = w.portfolio, w.last_portfolio_row
    last_rd = w.last_session_decisions
    warnings_all = [x for ws in port["warnings"].to_list() for x in json.loads(ws)] if port.height else []
    common = {"window": f"{start}..{end}", "sessions": len(sessions)}
    yield dg.MaterializeResult(
        asset_key="risk_decisions",
        metadata={
            **common,
            "rows": w.decision_rows,
            "decision_counts": dg.MetadataValue.json(dict(sorted(w.decision_counts.items()))),
            "decision_counts_last_session": dg.MetadataValue.json(dict(sorted(Counter(last_rd["decision"].to_list()).items()))),
            "top_buys": dg.MetadataValue.json(_top(last_rd, rc.EXECUTE_BUY)),
            "top_sells": dg.MetadataValue.json(_top(last_rd, rc.EXECUTE_SELL)),
            "approved_sector_exposure": dg.MetadataValue.json(
                last_rd.group_by("sector").agg(pl.col("approved_weight").sum()).sort("sector").rows()),
            "cvar_95": float(last.get("cvar_95") or 0.0),
            "approved_gross": float(last.get("approved_gross") or 0.0),
            "non_hold_decisions": dg.MetadataValue.md(decisions_markdown(w.last_decisions)),
            "audit_events": w.audit_events,
        },
    )
    violations = w.duplicate_decisions + w.limit_breaches
    yield dg.AssetCheckResult(
        asset_key="risk_decisions", check_name=CHECK_DECISIONS_WITHIN_LIMITS, passed=not violations,
        metadata={"violations": len(violations), "first_violations": dg.MetadataValue.json(violations[:50])},
    )
    yield dg.MaterializeResult(
        asset_key="orders",
        metadata={**common, "orders": w.orders, "fills": w.filled, "cancelled": w.fills - w.filled,
                  "commission": w.commission, "slippage_cost": w.slippage_cost,
                  "mode": settings.execution.mode, "broker": broker.name},
    )
    yield dg.AssetCheckResult(asset_key="orders", check_name=CHECK_UNIQUE_ORDER_IDS, passed=not w.duplicate_order_ids,
                              metadata={"duplicate_ids": dg.MetadataValue.json(w.duplicate_order_ids[:50])})
    yield dg.MaterializeResult(
        asset_key="positions",
        metadata={**common, "rows": w.position_rows, "n_positions_last": int(last.get("n_positions") or 0),
                  "sector_exposure_last": dg.MetadataValue.json(json.loads(last.get("sector_exposure") or "{}"))},
    )
    yield dg.AssetCheckResult(asset_key="positions", check_name=CHECK_POSITIONS_MATCH_FILLS,
                              passed=not w.position_mismatches,
                              metadata={"mismatches": len(w.position_mismatches),
                                        "first": dg.MetadataValue.json(w.position_mismatches[:50])})
    yield dg.MaterializeResult(
        asset_key="portfolio",
        metadata={
            **common,
            "nav": float(last.get("nav") or 0.0),
            "daily_return": float(last.get("daily_return") or 0.0),
            "drawdown": float(last.get("drawdown") or 0.0),
            "max_drawdown": float(port["drawdown"].max() or 0.0) if port.height else 0.0,
            "peak_nav": float(last.get("peak_nav") or 0.0),
            "leverage": float(last.get("leverage") or 0.0),
            "trading_state": str(last.get("trading_state")),
            "cvar_95": float(last.get("cvar_95") or 0.0),
            "started_fresh": w.fresh_start,
            "warnings": dg.MetadataValue.json(warnings_all[-50:]),
            "nav_chart": dg.MetadataValue.md(nav_chart_markdown(port)),
        },
    )


# --- the body, without Dagster ---------------------------------------------------------------------
_WRITE_BLOCK_ROWS = 400_000  # decision rows walked, written and audited at once (whole months; 5 years x 250 names: one block)


def write_blocks(sessions: list[date], n_symbols: int, max_rows: int = _WRITE_BLOCK_ROWS) -> list[list[date]]:
    """The sessions in consecutive blocks of whole calendar months, each of at most max_rows decision
    rows (sessions x n_symbols); a single month above it is a block of its own."""
    months: list[list[date]] = []
    for d in sessions:
        if months and (d.year, d.month) == (months[-1][0].year, months[-1][0].month):
            months[-1].append(d)
        else:
            months.append([d])
    blocks: list[list[date]] = []
    for m in months:
        if blocks and (len(blocks[-1]) + len(m)) * max(n_symbols, 1) <= max_rows:
            blocks[-1].extend(m)
        else:
            blocks.append(list(m))
    return blocks


@dataclasses.dataclass
class BookWrite:
    """What `write_book` wrote over a window: the counts, check results and the few rows the
    metadata shows (no table of the window is kept whole)."""

    fresh_start: bool
    decision_rows: int = 0
    decision_counts: Counter = dataclasses.field(default_factory=Counter)
    last_decisions: pl.DataFrame | None = None  # the rows of the last session that has decisions
    last_session_decisions: pl.DataFrame | None = None  # the rows of the window's last session
    audit_events: int = 0
    orders: int = 0
    fills: int = 0
    filled: int = 0
    commission: float = 0.0
    slippage_cost: float = 0.0
    position_rows: int = 0
    portfolio: pl.DataFrame | None = None
    duplicate_decisions: list[dict] = dataclasses.field(default_factory=list)
    limit_breaches: list[dict] = dataclasses.field(default_factory=list)
    duplicate_order_ids: list[str] = dataclasses.field(default_factory=list)
    position_mismatches: list[dict] = dataclasses.field(default_factory=list)

    @property
    def last_portfolio_row(self) -> dict:
        p = self.portfolio
        return p.row(p.height - 1, named=True) if p is not None and p.height else {}


def write_book(wh: Warehouse, settings: Settings, broker: ex.Broker, sessions: list[date], run_id: str,
               symbols: list[str] | None = None) -> BookWrite:
    """Walk the window's sessions and write the book: the asset's body without Dagster.

    The walk goes block by block (`write_blocks`: whole months, at most _WRITE_BLOCK_ROWS decision
    rows; 5 years x 250 names is one block), each from the state the previous one left, and is
    checked as it goes. Nothing is written before the whole window is computed (an error in the walk
    writes nothing). One block: its five tables replace the window, one transaction each, as before.
    Several: each block's rows are staged to Parquet as it is walked, then each table's window is
    replaced one transaction per block (store/staged_writes.replace_window_in_session_blocks: DuckDB holds the
    primary-key index of a transaction's rows until COMMIT, ~1 GB for a 2.5 M row risk_decisions),
    each session whole in one block. Then the audit, block by block; a month is never split, so each
    monthly audit file gets its lines in the same order as from one block."""
    start, end = sessions[0], sessions[-1]
    for table, cols in _EXTRA_COLUMNS.items():
        wh.ensure_columns(table, cols)
    state, before = load_state_before(wh, start, settings)
    n_symbols = len(symbols) if symbols else int(wh.read("SELECT count(*) AS n FROM universe")["n"][0])
    blocks = write_blocks(sessions, n_symbols, _WRITE_BLOCK_ROWS)
    prov = provenance(wh, start, end, settings)
    inputs = session_inputs(wh, sessions, settings, symbols)
    w = BookWrite(fresh_start=before["fresh_start"])
    prev_qty = before["prev_qty"]
    order_ids, commission, slippage, portfolios = [], [], [], []

    def with_run(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(pl.lit(run_id, pl.String).alias("run_id"))

    wh.db_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".book-stage-", dir=wh.db_path.parent) as stage:
        staged: list[tuple[date, date, pf.BookOutput | dict[str, str]]] = []  # (lo, hi, output or its files)
        lo = start
        for k, block in enumerate(blocks):
            out = pf.run_book(state, itertools.islice(inputs, len(block)), settings, broker)
            state = out.state
            rd = out.risk_decisions
            w.decision_rows += rd.height
            w.decision_counts.update(rd["decision"].to_list())
            if rd.height:
                w.last_decisions = rd.filter(pl.col("date") == rd["date"].max())
            if block[-1] == end:
                w.last_session_decisions = rd.filter(pl.col("date") == end)
            w.duplicate_decisions += duplicate_decisions(rd)
            w.limit_breaches += limit_breaches(rd, settings)
            order_ids.append(out.orders["order_id"])
            filled = out.fills.filter(pl.col("status") == ex.FILLED)
            w.orders += out.orders.height
            w.fills += out.fills.height
            w.filled += filled.height
            commission.append(filled["commission"])
            slippage.append(filled["slippage_cost"])
            w.position_rows += out.positions.height
            w.position_mismatches += check_positions(out, prev_qty, block)
            last_pos = out.positions.filter(pl.col("date") == block[-1])
            prev_qty = dict(zip(last_pos["symbol"].to_list(), last_pos["quantity"].to_list()))
            portfolios.append(out.portfolio)
            if len(blocks) == 1:
                staged.append((lo, end, out))
            else:
                files = {t: f"{stage}/{k:04d}-{t}.parquet" for t in BOOK_TABLES}
                for t, path in files.items():
                    with_run(getattr(out, t)).write_parquet(path, compression="uncompressed", statistics=False)
                staged.append((lo, block[-1], files))
            del out, rd, filled
            lo = block[-1] + timedelta(days=1)

        def staged_frame(entry, table: str) -> pl.DataFrame:
            return with_run(getattr(entry, table)) if isinstance(entry, pf.BookOutput) else pl.read_parquet(entry[table])

        for table in BOOK_TABLES:
            if len(staged) == 1:
                wh.replace_window(table, staged_frame(staged[0][2], table), start, end)
            else:
                replace_window_in_session_blocks(wh, table, ((a, b, staged_frame(e, table)) for a, b, e in staged),
                                                 start, end)
        for _, _, entry in staged:
            out = entry if isinstance(entry, pf.BookOutput) else pf.BookOutput(
                *(staged_frame(entry, t).drop("run_id") for t in ("risk_decisions", "orders", "fills")),
                positions=pl.DataFrame(), portfolio=pl.DataFrame(), split_ratios={}, state=state)
            w.audit_events += _audit(wh, out, prov, run_id, settings)
    ids = pl.concat(order_ids)
    w.duplicate_order_ids = ids.to_frame().group_by("order_id").len().filter(pl.col("len") > 1)["order_id"].to_list()
    # one contiguous column each, summed as the whole window's column was
    w.commission = float(pl.concat(commission, rechunk=True).sum() or 0.0)
    w.slippage_cost = float(pl.concat(slippage, rechunk=True).sum() or 0.0)
    w.portfolio = pl.concat(portfolios, rechunk=True)
    if w.last_decisions is None:
        w.last_decisions = pl.DataFrame(schema=pf.RISK_DECISION_SCHEMA)
    return w


def _audit(wh: Warehouse, out: pf.BookOutput, prov: dict[date, dict], run_id: str, settings: Settings) -> int:
    """Append every final decision, order and fill to audit_log (and data/audit/*.jsonl).

    The payloads are built column-wise (`audit_events`), a few months at a time (at most about
    _AUDIT_EVENTS_PER_CHUNK events, whole calendar months: each monthly JSONL file is written once,
    decisions then orders then fills, as before) so the payload text of a long backfill is never
    all in memory at once; each chunk is one INSERT."""
    n = 0
    for lo, hi in _month_chunks(out, _AUDIT_EVENTS_PER_CHUNK):
        part = dataclasses.replace(
            out, **{name: getattr(out, name).filter(pl.col("date").is_between(lo, hi))
                    for name in ("risk_decisions", "orders", "fills")})
        n += wh.append_audit_frame(audit_events(part, prov, run_id, settings))
    return n


_AUDIT_EVENTS_PER_CHUNK = 150_000


def _month_chunks(out: pf.BookOutput, max_events: int) -> list[tuple[date, date]]:
    """Date ranges [first, last] covering whole calendar months, each with about max_events events or fewer
    (a single month above max_events is its own chunk)."""
    dates = pl.concat([out.risk_decisions.select("date"), out.orders.select("date"), out.fills.select("date")])
    if dates.height == 0:
        return []
    per_month = (dates.group_by(pl.col("date").dt.truncate("1mo").alias("m"))
                 .agg(pl.len().alias("n"), pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi"))
                 .sort("m"))
    chunks: list[tuple[date, date]] = []
    lo = hi = None
    count = 0
    for _, n, mlo, mhi in per_month.iter_rows():
        if lo is not None and count + n > max_events:
            chunks.append((lo, hi))
            lo, count = None, 0
        lo = mlo if lo is None else lo
        hi = mhi
        count += n
    chunks.append((lo, hi))
    return chunks


def audit_events(out: pf.BookOutput, prov: dict[date, dict], run_id: str, settings: Settings) -> pl.DataFrame:
    """One audit event per final decision, order and fill (frame for Warehouse.append_audit_frame).

    payload (JSON text, keys sorted, what json.dumps(..., sort_keys=True, default=str) writes):
    - decision: decision, reason_codes, current_weight, target_weight_raw, approved_weight,
      order_quantity, adjustments (the row's JSON), trading_state, pre_risk_decision, provenance;
    - order: order_id, side, quantity, reference_price, mode, provenance;
    - fill: order_id, order_date, side, quantity, price, commission, slippage_cost, status, reason
      (NaN -> null); its cycle_id is the one of the order's session.
    provenance is the session's entry of `provenance(...)` ({} when missing)."""
    h = settings.settings_hash()
    prov_days = sorted({*out.risk_decisions["date"].unique().to_list(), *out.orders["date"].unique().to_list()})
    prov_json = pl.DataFrame({"date": prov_days,
                              "provenance": [json.dumps(prov.get(d, {}), sort_keys=True, default=str) for d in prov_days]},
                             schema={"date": pl.Date, "provenance": pl.String})

    def events(frame: pl.DataFrame, event_type: str, payload: pl.Series, cycle_id: pl.Series) -> pl.DataFrame:
        return pl.DataFrame({"event_type": pl.Series([event_type] * frame.height, dtype=pl.String),
                             "run_id": pl.Series([run_id] * frame.height, dtype=pl.String),
                             "cycle_id": cycle_id, "date": frame["date"], "symbol": frame["symbol"],
                             "payload": payload})

    def provenance_of(frame: pl.DataFrame) -> pl.Series:
        return frame.select("date").join(prov_json, on="date", how="left", maintain_order="left")["provenance"]

    jv = json_values
    rd = out.risk_decisions
    dec_payload = json_object({
        "decision": jv(rd["decision"]), "reason_codes": jv(rd["reason_codes"]),
        "current_weight": jv(rd["current_weight"]), "target_weight_raw": jv(rd["target_weight_raw"]),
        "approved_weight": jv(rd["approved_weight"]), "order_quantity": jv(rd["order_quantity"]),
        "adjustments": rd["adjustments"], "trading_state": jv(rd["trading_state"]),
        "pre_risk_decision": jv(rd["pre_risk_decision"]), "provenance": provenance_of(rd).fill_null("{}"),
    })
    od = out.orders
    order_payload = json_object({
        **{k: jv(od[k]) for k in ("order_id", "side", "quantity", "reference_price", "mode")},
        "provenance": provenance_of(od).fill_null("{}"),
    })
    fd = out.fills.with_columns(pl.col(pl.Float64).fill_nan(None))
    fill_payload = json_object({k: jv(fd[k]) for k in ("order_id", "order_date", "side", "quantity", "price",
                                                       "commission", "slippage_cost", "status", "reason")})
    fill_cycle = fd.select((pl.col("order_date").cast(pl.String) + pl.lit(f"-{h}")).alias("cycle_id"))["cycle_id"]
    return pl.concat([events(rd, "decision", dec_payload, rd["cycle_id"]),
                      events(od, "order", order_payload, od["cycle_id"]),
                      events(fd, "fill", fill_payload, fill_cycle)], how="vertical")
