"""The book's Dagster metadata: one MaterializeResult per asset (risk_decisions, orders, positions,
portfolio) and the three check results, from what `book_walk.write_book` wrote over the window."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import date

import dagster as dg
import polars as pl

from trading_assets.defs import book_checks
from trading_assets.defs.book_walk import BookWrite
from trading_assets.domain import execution as ex
from trading_assets.domain import reasons as rc
from trading_assets.settings import Settings


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


def optimizer_summary(row: dict) -> dict:
    """The optimizer's inputs and outcome of one session (its portfolio row): status, objective terms,
    binding constraints (kelly_mv; {} for the other methods)."""
    if not row.get("optimizer_status"):
        return {}
    return {"status": row["optimizer_status"], "expected_return": row.get("expected_return"),
            "risk_penalty": row.get("risk_penalty"), "cost_penalty": row.get("cost_penalty"),
            "ex_ante_vol": row.get("ex_ante_vol"), **json.loads(row.get("optimizer") or "{}")}


def results(w: BookWrite, settings: Settings, broker: ex.Broker, sessions: list[date]) -> Iterator:
    """The asset's MaterializeResults and AssetCheckResults, in the order the multi-asset yields them."""
    start, end = sessions[0], sessions[-1]
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
        asset_key="risk_decisions", check_name=book_checks.CHECK_DECISIONS_WITHIN_LIMITS, passed=not violations,
        metadata={"violations": len(violations), "first_violations": dg.MetadataValue.json(violations[:50])},
    )
    yield dg.MaterializeResult(
        asset_key="orders",
        metadata={**common, "orders": w.orders, "fills": w.filled, "cancelled": w.fills - w.filled,
                  "commission": w.commission, "slippage_cost": w.slippage_cost,
                  "mode": settings.execution.mode, "broker": broker.name, "algo": settings.execution.algo,
                  "executions": w.executions,
                  # implementation shortfall of the window's fills, notional-weighted (execution_algos.py)
                  "shortfall_arrival_bps": w.shortfall[0] / w.shortfall[1] * 1e4 if w.shortfall[1] else 0.0,
                  "shortfall_vwap_bps": w.shortfall[2] / w.shortfall[3] * 1e4 if w.shortfall[3] else 0.0,
                  "share_fill_ratio": w.filled_shares / w.ordered_shares if w.ordered_shares else 1.0},
    )
    yield dg.AssetCheckResult(asset_key="orders", check_name=book_checks.CHECK_UNIQUE_ORDER_IDS, passed=not w.duplicate_order_ids,
                              metadata={"duplicate_ids": dg.MetadataValue.json(w.duplicate_order_ids[:50])})
    yield dg.MaterializeResult(
        asset_key="positions",
        metadata={**common, "rows": w.position_rows, "n_positions_last": int(last.get("n_positions") or 0),
                  "sector_exposure_last": dg.MetadataValue.json(json.loads(last.get("sector_exposure") or "{}"))},
    )
    yield dg.AssetCheckResult(asset_key="positions", check_name=book_checks.CHECK_POSITIONS_MATCH_FILLS,
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
            "method": str(last.get("method")),
            "optimizer_last_session": dg.MetadataValue.json(optimizer_summary(last)),
            "optimizer_statuses": dg.MetadataValue.json(
                dict(sorted(Counter(s for s in port["optimizer_status"].to_list() if s).items()))
                if port.height and "optimizer_status" in port.columns else {}),
            "nav_chart": dg.MetadataValue.md(nav_chart_markdown(port)),
        },
    )
