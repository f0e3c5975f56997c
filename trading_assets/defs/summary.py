"""[portfolio] The cycle summary: the JSON a desk reads after each session, stored in cycle_meta."""


import json
import time
from datetime import datetime

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SESSIONS, SINGLE_RUN, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain.cycle_summary import build_cycle_summaries


def cycle_id_for(session, settings_hash: str) -> str:
    """cycle_id of a session: "<date>-<settings_hash>" (docs/ARCHITECTURE.md, Identifiers): the one formula."""
    return f"{session.isoformat()}-{settings_hash}"


def _run_started_at(context: dg.AssetExecutionContext) -> float:
    stats = context.instance.get_run_stats(context.run.run_id)
    return stats.start_time or time.time()


@dg.asset(
    group_name="portfolio",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=["risk_decisions", "portfolio", "meta_decisions", "data_quality", "price_history", "features"],
    description=(
        "One summary per session (DESIGN section 1): cycle_id, universe size, final decision counts, NAV / daily "
        "return / drawdown, CVaR / leverage / warnings, top buys and sells with mu_hat, sigma_hat and conviction, "
        "data-quality counts and the provider mix. Table: cycle_meta (plus a `cycle` entry in audit_log)."
    ),
    kinds={"duckdb"},
)
def cycle_summary(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    wh = warehouse.get()
    start, end, sessions = window_of(context)
    s_hash = settings.settings_hash()
    final = wh.read(
        """SELECT r.date, r.symbol, r.decision, r.reason_codes, r.approved_weight, r.order_quantity,
                  d.mu_hat, d.sigma_hat, d.z_score
           FROM risk_decisions r LEFT JOIN decisions d USING (date, symbol)
           WHERE r.date BETWEEN ? AND ? ORDER BY r.date, r.symbol""",
        [start, end],
    )
    portfolio = wh.read("SELECT * FROM portfolio WHERE date BETWEEN ? AND ? ORDER BY date", [start, end])
    quality = wh.read(
        "SELECT date, symbol, passed, reason_codes FROM data_quality_log WHERE date BETWEEN ? AND ? ORDER BY date, symbol",
        [start, end],
    )
    providers = wh.read(
        "SELECT date, provider, count(*) AS rows FROM price_history WHERE date BETWEEN ? AND ? GROUP BY ALL ORDER BY ALL",
        [start, end],
    )
    versions = wh.read(
        "SELECT DISTINCT feature_version FROM features WHERE date BETWEEN ? AND ? ORDER BY 1", [start, end]
    )["feature_version"].to_list()
    universe_size = int(wh.read("SELECT count(*) AS n FROM universe WHERE NOT is_benchmark")["n"][0])
    cycle_ids = {d: cycle_id_for(d, s_hash) for d in sessions}
    summaries = build_cycle_summaries(
        sessions=sessions,
        final=final,
        portfolio=portfolio,
        quality=quality,
        providers=providers,
        universe_size=universe_size,
        cycle_ids=cycle_ids,
        settings_hash=s_hash,
        feature_version=",".join(v for v in versions if v) or None,
        mode=settings.execution.mode,
    )
    now = datetime.now()
    duration = round(time.time() - _run_started_at(context), 3)
    rows = pl.DataFrame(
        {
            "date": sessions,
            "cycle_id": [cycle_ids[d] for d in sessions],
            "run_id": context.run.run_id,
            "window_start": start,
            "window_end": end,
            "settings_hash": s_hash,
            "feature_version": [summaries[d]["feature_version"] for d in sessions],
            "summary": [json.dumps(summaries[d], sort_keys=True) for d in sessions],
            "duration_seconds": duration,
            "created_at": now,
        },
        schema_overrides={"date": pl.Date, "window_start": pl.Date, "window_end": pl.Date, "feature_version": pl.String},
    )
    wh.replace_window("cycle_meta", rows, start, end)
    wh.append_audit(
        [
            {
                "event_type": "cycle",
                "run_id": context.run.run_id,
                "cycle_id": cycle_ids[d],
                "date": d,
                "payload": {"summary": summaries[d], "window": [str(start), str(end)], "settings": settings.to_dict()} if d == end
                else {"summary": summaries[d]},
            }
            for d in sessions
        ]
    )
    last = summaries[end]
    return dg.MaterializeResult(
        metadata={
            "window": f"{start}..{end}",
            "sessions": len(sessions),
            "cycle_id": last["cycle_id"],
            "decision_counts": dg.MetadataValue.json(last["decision_counts"]),
            "nav": last["performance"]["nav"] or 0.0,
            "summary": dg.MetadataValue.json(last),
            "duration_seconds": duration,
        }
    )
