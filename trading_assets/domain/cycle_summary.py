"""The cycle summary: one JSON document per session (DESIGN section 1), built from table frames.

Pure: frames in, dicts out. The document's deterministic part (everything but timestamp,
duration and run id) is what cycle_meta stores, so two clean runs store identical summaries.
Every count, ranking and top list is computed once over the whole window (grouped by session);
the per-session loop only assembles the dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from trading_assets.domain.reasons import DECISIONS, EXECUTE_BUY, EXECUTE_SELL

TOP_N = 5
# reason codes of the final decisions that the summary reports as risk warnings ("<code>: <n> symbol(s)")
RISK_WARNING_CODES = frozenset({"SINGLE_NAME_LIMIT", "SECTOR_LIMIT", "LEVERAGE_LIMIT", "CVAR_BREACH", "ADV_LIMIT",
                                "TAIL_RISK", "TRADING_HALTED", "REDUCING_ONLY", "DRAWDOWN_SCALED", "REGIME_RISK_OFF",
                                "RECOVERY_PHASE", "RISK_OVERRIDE"})


def _num(x, digits: int = 8):
    return None if x is None else round(float(x), digits)


def _by_date(frame: pl.DataFrame) -> dict[date, list[tuple]]:
    """{date: [the other columns of its rows, in frame order]} (the first column is the date)."""
    out: dict[date, list[tuple]] = {}
    for d, *rest in frame.iter_rows():
        out.setdefault(d, []).append(tuple(rest))
    return out


def _tops(final: pl.DataFrame, decision: str, descending: bool) -> dict[date, list[dict]]:
    """Per session, the TOP_N rows of `decision` by conviction (z_score; buys descending, sells
    ascending, nulls last), ties by symbol."""
    rows = (final.filter(pl.col("decision") == decision)
            .sort(["date", "z_score", "symbol"], descending=[False, descending, False], nulls_last=True,
                  maintain_order=True)
            .group_by("date", maintain_order=True).head(TOP_N))
    out: dict[date, list[dict]] = {}
    for r in rows.iter_rows(named=True):
        out.setdefault(r["date"], []).append({
            "symbol": r["symbol"],
            "mu_hat": _num(r["mu_hat"]),
            "sigma_hat": _num(r["sigma_hat"]),
            "conviction": _num(r["z_score"]),
            "approved_weight": _num(r["approved_weight"]),
            "order_quantity": _num(r["order_quantity"]),
            "reasons": list(r["reason_codes"] or []),
        })
    return out


def build_cycle_summaries(
    sessions: Sequence[date],
    final: pl.DataFrame,       # risk_decisions joined with decisions: date, symbol, decision, reason_codes, approved_weight,
                               # order_quantity, mu_hat, sigma_hat, z_score
    portfolio: pl.DataFrame,   # portfolio rows: date, nav, daily_return, drawdown, cvar_95, leverage, trading_state, recovery_phase
    quality: pl.DataFrame,     # data_quality_log: date, symbol, passed, reason_codes
    providers: pl.DataFrame,   # price_history provider mix: date, provider, rows
    universe_size: int,
    cycle_ids: dict[date, str],
    settings_hash: str,
    feature_version: str | None,
    mode: str,
) -> dict[date, dict]:
    """{session: summary} with cycle_id, session, universe_size, decision_counts, performance
    {nav, daily_return, drawdown}, risk {cvar, leverage, trading_state, recovery_phase, warnings},
    top_buys / top_sells [{symbol, mu_hat, sigma_hat, conviction, ...}] (conviction = robust z of
    the Meta-Brain; buys by descending, sells by ascending conviction), data_quality {passed,
    failed, reason_counts}, providers {name: rows}, settings_hash, feature_version, mode.

    Risk warnings: "<code>: <n> symbol(s)" for each code of RISK_WARNING_CODES among the session's
    final reason codes (n = rows carrying it, codes in sorted order), after "trading state <state>"
    when the session is not ACTIVE. Quality reason_counts: the reason codes of the failed rows."""
    counts_by = _by_date(final.group_by("date", "decision").len()) if final.height else {}
    codes_by = _by_date(
        final.select("date", "reason_codes").explode("reason_codes").filter(pl.col("reason_codes").is_not_null())
        .group_by("date", "reason_codes").len().sort("date", "reason_codes")
    ) if final.height else {}
    buys = _tops(final, EXECUTE_BUY, True) if final.height else {}
    sells = _tops(final, EXECUTE_SELL, False) if final.height else {}
    by_port = {r["date"]: r for r in portfolio.iter_rows(named=True)}
    if quality.height:
        q_counts = {d: (p, f) for d, p, f in quality.group_by("date").agg(
            pl.col("passed").sum(), (~pl.col("passed")).sum().alias("failed")).iter_rows()}
        q_codes_by = _by_date(quality.filter(~pl.col("passed")).select("date", "reason_codes").explode("reason_codes")
                              .group_by("date", "reason_codes").len().sort("date", "reason_codes"))
    else:
        q_counts, q_codes_by = {}, {}
    prov_by = _by_date(providers.select("date", "provider", "rows").sort("date", "provider")) if providers.height else {}
    out: dict[date, dict] = {}
    for d in sessions:
        counts = {k: 0 for k in DECISIONS}
        for k, n in counts_by.get(d, ()):
            counts[k] = int(n)
        p = by_port.get(d, {})
        warnings = [f"{code}: {n} symbol(s)" for code, n in codes_by.get(d, ()) if code in RISK_WARNING_CODES]
        if p.get("trading_state") and p["trading_state"] != "ACTIVE":
            warnings.insert(0, f"trading state {p['trading_state']}")
        passed, failed = q_counts.get(d, (0, 0))
        out[d] = {
            "cycle_id": cycle_ids.get(d),
            "session": d.isoformat(),
            "mode": mode,
            "universe_size": universe_size,
            "decision_counts": counts,
            "performance": {
                "nav": _num(p.get("nav"), 2),
                "daily_return": _num(p.get("daily_return")),
                "drawdown": _num(p.get("drawdown")),
            },
            "risk": {
                "cvar": _num(p.get("cvar_95")),
                "leverage": _num(p.get("leverage")),
                "trading_state": p.get("trading_state"),
                "recovery_phase": p.get("recovery_phase"),
                "warnings": warnings,
            },
            "top_buys": buys.get(d, []),
            "top_sells": sells.get(d, []),
            "data_quality": {
                "passed": int(passed or 0),
                "failed": int(failed or 0),
                "reason_counts": {c: int(n) for c, n in q_codes_by.get(d, ())},
            },
            "providers": {name: int(n) for name, n in prov_by[d]} if d in prov_by else {},
            "settings_hash": settings_hash,
            "feature_version": feature_version,
        }
    return out
