"""The book's blocking checks, computed from the frames the walk wrote (no reread).

- final_decisions_within_limits: one final decision per (session, symbol), every one within the
  limits of risk.limit_violations;
- unique_order_ids: no two orders share an id (counted in book_walk over the whole window);
- positions_match_fills: previous positions x split ratio + signed fills = current positions.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from trading_assets.domain import execution as ex
from trading_assets.domain import portfolio as pf
from trading_assets.domain import reasons as rc
from trading_assets.domain import risk
from trading_assets.settings import Settings

# Check names (constants, used by tests and the UI)
CHECK_DECISIONS_WITHIN_LIMITS = "final_decisions_within_limits"
CHECK_UNIQUE_ORDER_IDS = "unique_order_ids"
CHECK_POSITIONS_MATCH_FILLS = "positions_match_fills"

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

