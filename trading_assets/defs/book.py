"""The book: one multi-asset (risk_decisions, orders, positions, portfolio) that walks the sessions in order.

Why one multi-asset: risk(t) needs positions(t-1); positions(t) needs orders(t-1); Dagster forbids
that cycle between asset keys, only self-dependency works (docs/ARCHITECTURE.md). The op reads the
state after the session before the window (portfolio row, positions, and that session's orders,
which fill at the window's first open), walks the window with `domain.portfolio.run_book` (`step` per session), replaces
the window's rows of risk_decisions, orders, fills, positions and portfolio, appends every final
decision, order and fill to the audit log, and reports one MaterializeResult per asset.

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
import json
from collections import Counter
from datetime import date

import dagster as dg
import numpy as np
import polars as pl

from trading_assets.defs.summary import cycle_id_for as summary_cycle_id
from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, lookback, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
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


def session_inputs(wh: Warehouse, sessions: list[date], settings: Settings, symbols: list[str] | None = None):
    """Yield SessionInputs for each session (reads the whole window once, then slices per session)."""
    start, end = sessions[0], sessions[-1]
    lb = settings.risk.cvar_lookback
    universe = wh.read("SELECT symbol, sector, is_benchmark FROM universe")
    sectors = dict(zip(universe["symbol"].to_list(), universe["sector"].to_list()))
    benchmarks = set(universe.filter(pl.col("is_benchmark"))["symbol"].to_list()) | {settings.benchmark}
    dec = _frame(wh, "SELECT date, symbol, mu_hat, sigma_hat, target_weight_raw, pre_risk_decision, reason_codes, regime "
                     "FROM decisions WHERE date BETWEEN ? AND ? ORDER BY date, symbol", [start, end],
                 {"date": pl.Date, "symbol": pl.String, "mu_hat": pl.Float64, "sigma_hat": pl.Float64,
                  "target_weight_raw": pl.Float64, "pre_risk_decision": pl.String,
                  "reason_codes": pl.List(pl.String), "regime": pl.String})
    dec = dec.filter(~pl.col("symbol").is_in(sorted(benchmarks)))
    if symbols:
        dec = dec.filter(pl.col("symbol").is_in(symbols))
    prices = _frame(wh, "SELECT date, symbol, open, close FROM price_history WHERE date BETWEEN ? AND ?",
                    [start, end], {"date": pl.Date, "symbol": pl.String, "open": pl.Float64, "close": pl.Float64})
    hist_start = calendar.lookback_start(start, lb - 1)
    feats = _frame(wh, f"SELECT date, symbol, {FEATURE_ADV}, {FEATURE_VOL}, {FEATURE_RETURN} FROM features "
                       "WHERE date BETWEEN ? AND ?", [hist_start, end],
                   {"date": pl.Date, "symbol": pl.String, FEATURE_ADV: pl.Float64, FEATURE_VOL: pl.Float64,
                    FEATURE_RETURN: pl.Float64})
    feats = feats.filter(~pl.col("symbol").is_in(sorted(benchmarks)))
    actions = _frame(wh, "SELECT date, symbol, action, value, price_factor FROM corporate_actions "
                         "WHERE date BETWEEN ? AND ?", [start, end],
                     {"date": pl.Date, "symbol": pl.String, "action": pl.String, "value": pl.Float64,
                      "price_factor": pl.Float64})
    # trailing return matrix on the calendar (missing rows -> 0 in the gate), simple returns
    cal = calendar.sessions(hist_start, end)
    ret_syms = sorted(set(feats["symbol"].to_list()))
    pos = {d: i for i, d in enumerate(cal)}
    col = {s: j for j, s in enumerate(ret_syms)}
    mat = np.full((len(cal), len(ret_syms)), np.nan)
    r = feats.drop_nulls(FEATURE_RETURN)
    if r.height:
        ri = np.array([pos.get(d, -1) for d in r["date"].to_list()])
        ci = np.array([col[s] for s in r["symbol"].to_list()])
        keep = ri >= 0
        mat[ri[keep], ci[keep]] = np.expm1(r[FEATURE_RETURN].to_numpy()[keep])
    by = {
        "dec": dec.partition_by("date", as_dict=True, include_key=False),
        "px": prices.partition_by("date", as_dict=True, include_key=False),
        "ft": feats.filter(pl.col("date") >= start).select("date", "symbol", FEATURE_ADV, FEATURE_VOL)
        .partition_by("date", as_dict=True, include_key=False),
        "ca": actions.partition_by("date", as_dict=True, include_key=False),
    }
    empty = {
        "dec": dec.clear().drop("date"), "px": prices.clear().drop("date"),
        "ft": feats.clear().select("symbol", FEATURE_ADV, FEATURE_VOL), "ca": actions.clear().drop("date"),
    }
    for d in sessions:
        k = pos[d]
        yield pf.SessionInputs(
            date=d,
            cycle_id=cycle_id_for(d, settings),
            decisions=by["dec"].get((d,), empty["dec"]),
            prices=by["px"].get((d,), empty["px"]),
            features=by["ft"].get((d,), empty["ft"]),
            returns=mat[max(0, k - lb + 1): k + 1],
            return_symbols=ret_syms,
            sectors=sectors,
            actions=by["ca"].get((d,), empty["ca"]),
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
def check_decisions(rd: pl.DataFrame, settings: Settings) -> dict:
    """Every session: one row per symbol, decisions within limits (risk.limit_violations)."""
    bad: list[dict] = []
    dup = rd.group_by("date", "symbol").len().filter(pl.col("len") > 1)
    for d, s, n in dup.iter_rows():
        bad.append({"date": str(d), "symbol": s, "violation": f"{n} final decisions"})
    for (d,), g in rd.partition_by("date", as_dict=True).items():
        v = risk.limit_violations(g["decision"].to_list(), g["approved_weight"].to_numpy(),
                                  g["current_weight"].to_numpy(), g["order_quantity"].to_numpy(),
                                  g["sector"].to_list(), settings.risk)
        syms = g["symbol"].to_list()
        for msg in v:
            i = int(msg[1:msg.index(" ")])
            bad.append({"date": str(d), "symbol": syms[i], "violation": msg})
    return {"passed": not bad, "violations": bad}


def check_positions(out: pf.BookOutput, prev_qty: dict[str, float], sessions: list[date]) -> list[dict]:
    """previous * split ratio + signed fills = current, session by session, from the written frames."""
    bad = []
    pos_by = out.positions.partition_by("date", as_dict=True)
    fills_by = out.fills.partition_by("date", as_dict=True)
    prev = prev_qty
    for d in sessions:
        p = pos_by.get((d,))
        cur = dict(zip(p["symbol"].to_list(), p["quantity"].to_list())) if p is not None else {}
        f = fills_by.get((d,), pl.DataFrame(schema=ex.FILL_SCHEMA))
        for v in ex.positions_consistency(prev, out.split_ratios.get(d, {}), f, cur):
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
    wh = warehouse.get()
    for table, cols in _EXTRA_COLUMNS.items():
        wh.ensure_columns(table, cols)
    run_id = context.run.run_id
    state, before = load_state_before(wh, start, settings)
    out = pf.run_book(state, session_inputs(wh, sessions, settings, list(pipeline.symbols) or None), settings, broker)

    def with_run(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(pl.lit(run_id, pl.String).alias("run_id"))

    wh.replace_window("risk_decisions", with_run(out.risk_decisions), start, end)
    wh.replace_window("orders", with_run(out.orders), start, end)
    wh.replace_window("fills", with_run(out.fills), start, end)
    wh.replace_window("positions", with_run(out.positions), start, end)
    wh.replace_window("portfolio", with_run(out.portfolio), start, end)
    n_audit = _audit(wh, out, provenance(wh, start, end, settings), run_id, settings)

    # checks
    dec_check = check_decisions(out.risk_decisions, settings)
    dup_ids = out.orders.group_by("order_id").len().filter(pl.col("len") > 1)["order_id"].to_list()
    pos_bad = check_positions(out, before["prev_qty"], sessions)

    rd, port = out.risk_decisions, out.portfolio
    counts = dict(sorted(Counter(rd["decision"].to_list()).items()))
    last = port.row(port.height - 1, named=True) if port.height else {}
    last_rd = rd.filter(pl.col("date") == end)
    warnings_all = [w for ws in port["warnings"].to_list() for w in json.loads(ws)] if port.height else []
    common = {"window": f"{start}..{end}", "sessions": len(sessions)}
    yield dg.MaterializeResult(
        asset_key="risk_decisions",
        metadata={
            **common,
            "rows": rd.height,
            "decision_counts": dg.MetadataValue.json(counts),
            "decision_counts_last_session": dg.MetadataValue.json(dict(sorted(Counter(last_rd["decision"].to_list()).items()))),
            "top_buys": dg.MetadataValue.json(_top(last_rd, rc.EXECUTE_BUY)),
            "top_sells": dg.MetadataValue.json(_top(last_rd, rc.EXECUTE_SELL)),
            "approved_sector_exposure": dg.MetadataValue.json(
                last_rd.group_by("sector").agg(pl.col("approved_weight").sum()).sort("sector").rows()),
            "cvar_95": float(last.get("cvar_95") or 0.0),
            "approved_gross": float(last.get("approved_gross") or 0.0),
            "non_hold_decisions": dg.MetadataValue.md(decisions_markdown(rd)),
            "audit_events": n_audit,
        },
    )
    yield dg.AssetCheckResult(
        asset_key="risk_decisions", check_name=CHECK_DECISIONS_WITHIN_LIMITS, passed=dec_check["passed"],
        metadata={"violations": len(dec_check["violations"]),
                  "first_violations": dg.MetadataValue.json(dec_check["violations"][:50])},
    )
    filled = out.fills.filter(pl.col("status") == ex.FILLED)
    yield dg.MaterializeResult(
        asset_key="orders",
        metadata={**common, "orders": out.orders.height, "fills": filled.height,
                  "cancelled": out.fills.height - filled.height,
                  "commission": float(filled["commission"].sum() or 0.0),
                  "slippage_cost": float(filled["slippage_cost"].sum() or 0.0),
                  "mode": settings.execution.mode, "broker": broker.name},
    )
    yield dg.AssetCheckResult(asset_key="orders", check_name=CHECK_UNIQUE_ORDER_IDS, passed=not dup_ids,
                              metadata={"duplicate_ids": dg.MetadataValue.json(dup_ids[:50])})
    yield dg.MaterializeResult(
        asset_key="positions",
        metadata={**common, "rows": out.positions.height, "n_positions_last": int(last.get("n_positions") or 0),
                  "sector_exposure_last": dg.MetadataValue.json(json.loads(last.get("sector_exposure") or "{}"))},
    )
    yield dg.AssetCheckResult(asset_key="positions", check_name=CHECK_POSITIONS_MATCH_FILLS, passed=not pos_bad,
                              metadata={"mismatches": len(pos_bad), "first": dg.MetadataValue.json(pos_bad[:50])})
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
            "started_fresh": before["fresh_start"],
            "warnings": dg.MetadataValue.json(warnings_all[-50:]),
            "nav_chart": dg.MetadataValue.md(nav_chart_markdown(port)),
        },
    )


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
