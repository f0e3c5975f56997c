"""build_cycle_summaries as it was before the column-wise rewrite (one frame per session), kept
verbatim as the oracle of test_cycle_summary_equivalence.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from trading_assets.domain.reasons import DECISIONS, EXECUTE_BUY, EXECUTE_SELL

TOP_N = 5


def _top(final: pl.DataFrame, decision: str, descending: bool) -> list[dict]:
    rows = final.filter(pl.col("decision") == decision)
    if rows.height == 0:
        return []
    rows = rows.sort(["z_score", "symbol"], descending=[descending, False], nulls_last=True).head(TOP_N)
    return [
        {
            "symbol": r["symbol"],
            "mu_hat": _num(r["mu_hat"]),
            "sigma_hat": _num(r["sigma_hat"]),
            "conviction": _num(r["z_score"]),
            "approved_weight": _num(r["approved_weight"]),
            "order_quantity": _num(r["order_quantity"]),
            "reasons": list(r["reason_codes"] or []),
        }
        for r in rows.iter_rows(named=True)
    ]


def _num(x, digits: int = 8):
    return None if x is None else round(float(x), digits)


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
    failed, reason_counts}, providers {name: rows}, settings_hash, feature_version, mode."""
    by_final = {d: g for (d,), g in final.group_by("date")} if final.height else {}
    by_port = {r["date"]: r for r in portfolio.iter_rows(named=True)}
    by_quality = {d: g for (d,), g in quality.group_by("date")} if quality.height else {}
    by_provider = {d: g for (d,), g in providers.group_by("date")} if providers.height else {}
    out: dict[date, dict] = {}
    for d in sessions:
        f = by_final.get(d, final.clear())
        counts = {k: 0 for k in DECISIONS}
        for k, n in f.group_by("decision").len().rows() if f.height else []:
            counts[k] = int(n)
        p = by_port.get(d, {})
        warnings = []
        if f.height:
            risk_codes = (
                f.explode("reason_codes").filter(pl.col("reason_codes").is_not_null())
                .group_by("reason_codes").len().sort("reason_codes")
            )
            warnings = [
                f"{code}: {n} symbol(s)"
                for code, n in risk_codes.rows()
                if code in {"SINGLE_NAME_LIMIT", "SECTOR_LIMIT", "LEVERAGE_LIMIT", "CVAR_BREACH", "ADV_LIMIT",
                            "TAIL_RISK", "TRADING_HALTED", "REDUCING_ONLY", "DRAWDOWN_SCALED", "REGIME_RISK_OFF",
                            "RECOVERY_PHASE", "RISK_OVERRIDE"}
            ]
        if p.get("trading_state") and p["trading_state"] != "ACTIVE":
            warnings.insert(0, f"trading state {p['trading_state']}")
        q = by_quality.get(d, quality.clear())
        q_codes = (
            q.filter(~pl.col("passed")).explode("reason_codes").group_by("reason_codes").len().sort("reason_codes").rows()
            if q.height else []
        )
        prov = by_provider.get(d)
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
            "top_buys": _top(f, EXECUTE_BUY, True) if f.height else [],
            "top_sells": _top(f, EXECUTE_SELL, False) if f.height else [],
            "data_quality": {
                "passed": int(q["passed"].sum()) if q.height else 0,
                "failed": int((~q["passed"]).sum()) if q.height else 0,
                "reason_counts": {c: int(n) for c, n in q_codes},
            },
            "providers": {prov_name: int(n) for prov_name, n in prov.select("provider", "rows").sort("provider").rows()} if prov is not None else {},
            "settings_hash": settings_hash,
            "feature_version": feature_version,
        }
    return out
