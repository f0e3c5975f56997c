"""[market_data] Data quality: a score in [0, 1] and reason codes per (session, symbol).

The asset reads the bars it needs (the window plus a trailing lookback, never anything after the
window), calls the pure quality agent, and writes data_quality_log, the inferred corporate actions
confirmed in the window (inferred_actions, domain/quality.py "Held moves") and one row per session
(session_quality, domain/session_health.py). A single bad symbol is flagged and later REJECTed. A
session where more than max_failing_share of the universe fails is a systemic fault: by default
(QualitySettings.on_systemic_fault = "halt_session") that session is HALTED (every decision REJECT
SYSTEMIC_DATA_FAULT, no fills, no orders), one `session_halted` audit event per session records it,
the check `quality_failing_share_within_limit` reports it (non-blocking, severity ERROR, the sessions
in its metadata) and the rest of the range proceeds; with "stop_run" the blocking check
`quality_systemic_fault_policy` stops the run, as before #16.

Chunks of symbols: every rule reads one symbol's own bars and actions (domain/quality.py), so the
bars are read and assessed a chunk of symbols at a time, with the calendar (hence session indexes,
LATE_START) from the first bar of ALL symbols, which gives the rows of one pass; the chunks replace
the window in ONE transaction (`replace_window_in_chunks`).
"""


import json
from collections.abc import Iterator
from datetime import date

import dagster as dg
import polars as pl

from trading_assets.store.staged_writes import replace_window_in_chunks
from trading_assets.defs.reference import universe_symbols
from trading_assets.defs.partitions import SESSIONS, SINGLE_RUN, lookback, run_window, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.defs.reference import benchmark_symbols
from trading_assets.defs.summary import cycle_id_for
from trading_assets.domain import calendar, session_health
from trading_assets.domain.quality import OUTPUT_SCHEMA as QUALITY_SCHEMA, assess_quality, inferred_actions, read_sessions
from trading_assets.settings import QualitySettings

QUALITY_SHARE_WITHIN_LIMIT = "quality_failing_share_within_limit"
QUALITY_SYSTEMIC_FAULT_POLICY = "quality_systemic_fault_policy"
QUALITY_FAILING_SYMBOLS = "quality_failing_symbols"
SESSION_HALTED = "session_halted"  # audit_log event_type of a halted session
# bars (session x symbol rows, lookback included) assessed at a time: assess_quality's working set is
# ~40 columns per bar and grid row (~2 KB per bar at 2,000 symbols x 5 years in one pass)
BARS_PER_CHUNK = 500_000
# what assess_quality reads of price_history (domain/quality.py BAR_COLUMNS and OPTIONAL_BAR_COLUMNS)
# lineage: the sessions read before a window with the default settings (lookback + confirmation)
_READ_SESSIONS = read_sessions(QualitySettings())
_BAR_READ = ["date", "symbol", "open", "high", "low", "close", "adj_close", "volume", "provider", "is_synthetic", "duplicate_count"]


def symbol_chunks(symbols: list[str], n_sessions: int, bars: int = BARS_PER_CHUNK) -> list[list[str]]:
    """The symbols in consecutive chunks of max(1, bars // n_sessions) (every symbol exactly once)."""
    k = max(1, bars // max(1, n_sessions))
    return [symbols[i : i + k] for i in range(0, len(symbols), k)]


def _unserved_symbols(wh, start, end) -> list[str]:
    """Symbols the router's latest attempt on this window could not serve from any provider."""
    rows = wh.read(
        """SELECT unserved FROM provider_metrics
           WHERE provider = 'router' AND window_start <= ? AND window_end >= ?
           ORDER BY ts DESC LIMIT 1""",
        [start, end],
    )
    # to_list(): indexing a List column gives a Series, whose truth value polars refuses
    return list(rows["unserved"].to_list()[0] or []) if rows.height else []


@dg.asset(
    group_name="market_data",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep("price_history", partition_mapping=lookback(_READ_SESSIONS)),
        dg.AssetDep("corporate_actions", partition_mapping=lookback(_READ_SESSIONS)),
        "universe",
    ],
    description=(
        "One row per (session, symbol of the universe): a quality score in [0, 1], pass/fail, reason codes "
        "(missing fields, high<low, open/close outside the range, zero volume, stale prices, gaps, duplicates, "
        "outlier returns without a corporate action, unadjusted splits, late starts, no provider; extreme moves "
        "held until confirmed, reverted or inferred as a corporate action) and the values that triggered them. "
        "Point in time: a session's row uses bars up to that session only. Tables: data_quality_log, "
        "inferred_actions (known at their confirming session), session_quality (failing share, HALTED)."
    ),
    kinds={"duckdb", "polars"},
)
def data_quality(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    wh = warehouse.get()
    start, end, sessions = window_of(context)
    symbols = universe_symbols(wh, pipeline)
    benchmarks = benchmark_symbols(wh, settings.benchmark)
    read_from = calendar.lookback_start(start, read_sessions(settings.quality))
    first = wh.read(
        "SELECT min(date) AS d FROM price_history WHERE date BETWEEN ? AND ? AND symbol IN (SELECT unnest(?::VARCHAR[]))",
        [read_from, end, symbols],
    )["d"][0]
    cal = calendar.sessions(min(first or start, start), end)  # of all symbols: the same for every chunk
    unserved = _unserved_symbols(wh, start, end)
    failed_parts, tallies, inferred_parts = [], [], []
    stats = {"rows": 0, "score_sum": 0.0, "held_rows": 0}

    def chunks() -> Iterator[pl.DataFrame]:
        for chunk in symbol_chunks(symbols, len(cal)):
            bars = wh.read_window("price_history", read_from, end, symbols=chunk, columns=_BAR_READ, order_by="date, symbol")
            actions = wh.read_window(
                "corporate_actions", read_from, end, symbols=chunk, columns=["date", "symbol", "action", "price_factor"], order_by="date, symbol"
            )
            log = assess_quality(
                bars=bars,
                actions=actions,
                sessions=cal,
                symbols=chunk,
                window_start=start,
                window_end=end,
                settings=settings.quality,
                unserved=unserved,
            ).with_columns(pl.lit(context.run.run_id).alias("run_id"))
            del bars, actions
            stats["rows"] += log.height
            stats["score_sum"] += float(log["score"].sum())
            stats["held_rows"] += int(log["reason_codes"].list.contains("MOVE_UNCONFIRMED").sum())
            failed_parts.append(log.filter(~pl.col("passed")))
            tallies.append(session_health.session_tallies(log, benchmarks))
            inferred_parts.append(inferred_actions(log))
            yield log

    replace_window_in_chunks(wh, "data_quality_log", chunks(), start, end)

    health = session_health.session_health(tallies, settings.quality.max_failing_share)
    wh.replace_window("session_quality", health.with_columns(pl.lit(context.run.run_id).alias("run_id")), start, end)
    inferred = pl.concat(inferred_parts).sort("date", "symbol", "ex_date")
    wh.replace_window("inferred_actions", inferred.with_columns(pl.lit(context.run.run_id).alias("run_id")), start, end)
    halted = session_health.describe(health)
    if halted:
        s_hash = settings.settings_hash()
        mode = settings.quality.on_systemic_fault
        wh.append_audit(
            [
                {
                    "event_type": SESSION_HALTED,
                    "run_id": context.run.run_id,
                    "cycle_id": cycle_id_for(date.fromisoformat(h["date"]), s_hash),
                    "date": date.fromisoformat(h["date"]),
                    "payload": {**h, "reason": "SYSTEMIC_DATA_FAULT", "on_systemic_fault": mode},
                }
                for h in halted
            ]
        )
        context.log.warning(
            f"SYSTEMIC_DATA_FAULT: {len(halted)} session(s) with more than {settings.quality.max_failing_share:.0%} of the "
            f"universe failing quality ({mode}): " + ", ".join(f"{h['date']} ({h['failing_share']:.0%})" for h in halted[:10])
        )

    failed = pl.concat(failed_parts).sort("date", "symbol") if failed_parts else pl.DataFrame(schema=QUALITY_SCHEMA)
    codes = (
        failed.explode("reason_codes").group_by("reason_codes").len().sort("len", descending=True)
        if failed.height
        else pl.DataFrame({"reason_codes": [], "len": []})
    )
    worst = failed.sort("score").head(25)
    table = "| date | symbol | score | reasons |\n|---|---|---|---|\n" + "\n".join(
        f"| {d} | {s} | {sc:.2f} | {', '.join(r)} |" for d, s, sc, r in worst.select("date", "symbol", "score", "reason_codes").rows()
    )
    inferred_md = "| known at | symbol | ex-date | action | ratio |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {d} | {s} | {e} | {a} | {r:.4f} |" for d, s, e, a, r in inferred.select("date", "symbol", "ex_date", "action", "ratio").head(50).rows()
    )
    return dg.MaterializeResult(
        metadata={
            "rows": stats["rows"],
            "window": f"{start}..{end}",
            "failing_rows": failed.height,
            "failing_symbols": failed["symbol"].n_unique() if failed.height else 0,
            "mean_score": stats["score_sum"] / stats["rows"] if stats["rows"] else 0.0,
            "reason_counts": dg.MetadataValue.json({c: int(n) for c, n in codes.rows()}),
            "worst_rows": dg.MetadataValue.md(table),
            "held_rows": stats["held_rows"],
            "inferred_actions": inferred.height,
            "inferred_actions_table": dg.MetadataValue.md(inferred_md),
            "halted_sessions": dg.MetadataValue.json(halted[:200]),
            "max_failing_share": float(health["failing_share"].max() or 0.0) if health.height else 0.0,
        }
    )


def _sessions_of_run(wh, start, end) -> pl.DataFrame:
    return wh.read_window("session_quality", start, end, order_by="date").select(list(session_health.SESSION_SCHEMA))


def _halt_state(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig
) -> tuple[QualitySettings, pl.DataFrame, pl.DataFrame]:
    """(quality settings, the run's session_quality rows, the halted ones): what both halt checks judge."""
    start, end = run_window(context)
    health = _sessions_of_run(warehouse.get(), start, end)
    return pipeline.settings().quality, health, health.filter(pl.col("halted"))


def _halt_metadata(health: pl.DataFrame, limit: float, mode: str) -> dict:
    halted = session_health.describe(health)
    return {
        "limit": limit,
        "on_systemic_fault": mode,
        "sessions": health.height,
        "max_share": float(health["failing_share"].max() or 0.0) if health.height else 0.0,
        "halted_sessions": dg.MetadataValue.json(halted[:200]),
        "breaching_sessions": dg.MetadataValue.json([[h["date"], h["failing_share"]] for h in halted][:200]),
    }


def _halt_description(health: pl.DataFrame, limit: float, what: str) -> str:
    halted = session_health.describe(health)
    listed = ", ".join(f"{h['date']} ({h['failing_share']:.0%} of {h['symbols']} symbols)" for h in halted[:10])
    more = f" and {len(halted) - 10} more" if len(halted) > 10 else ""
    return f"SYSTEMIC_DATA_FAULT: {len(halted)} session(s) with more than {limit:.0%} of the universe failing quality {what}: {listed}{more}"


@dg.asset_check(
    asset="data_quality",
    name=QUALITY_SHARE_WITHIN_LIMIT,
    blocking=False,
    description=(
        "On no session may more than settings.quality.max_failing_share of the universe fail quality. A session "
        "beyond it is a systemic data fault: it is HALTED for trading (every decision REJECT SYSTEMIC_DATA_FAULT, no "
        "fills, no orders) and this check fails with severity ERROR, the halted sessions in its metadata; the rest of "
        "the range proceeds. Non-blocking: whether the run stops is quality_systemic_fault_policy's decision."
    ),
)
def quality_failing_share_within_limit(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig
) -> dg.AssetCheckResult:
    q, health, halted = _halt_state(context, warehouse, pipeline)
    return dg.AssetCheckResult(
        passed=halted.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=_halt_metadata(health, q.max_failing_share, q.on_systemic_fault),
        description=None if halted.height == 0 else _halt_description(health, q.max_failing_share, "(halted; the run goes on)"
                                                                       if q.on_systemic_fault == "halt_session" else "(the run stops)"),
    )


@dg.asset_check(
    asset="data_quality",
    name=QUALITY_SYSTEMIC_FAULT_POLICY,
    blocking=True,
    description=(
        "Blocking: with settings.quality.on_systemic_fault = 'stop_run', a session where more than max_failing_share "
        "of the universe fails quality stops the run here (nothing downstream of data_quality is written). With the "
        "default 'halt_session' it passes: the faulty sessions are halted and the range proceeds."
    ),
)
def quality_systemic_fault_policy(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig
) -> dg.AssetCheckResult:
    q, health, halted = _halt_state(context, warehouse, pipeline)
    stop = halted.height > 0 and q.on_systemic_fault == "stop_run"
    return dg.AssetCheckResult(
        passed=not stop,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=_halt_metadata(health, q.max_failing_share, q.on_systemic_fault),
        description=(
            _halt_description(health, q.max_failing_share, "(on_systemic_fault = stop_run: the run stops)") if stop
            else None if halted.height == 0 else f"{halted.height} session(s) halted, the run goes on (on_systemic_fault = halt_session)"
        ),
    )


@dg.asset_check(
    asset="data_quality",
    name=QUALITY_FAILING_SYMBOLS,
    blocking=False,
    description="Non-blocking: lists every (session, symbol) that failed quality, with its reason codes; those symbols are REJECTed downstream.",
)
def quality_failing_symbols(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get()
    start, end = run_window(context)
    failed = wh.read(
        "SELECT date, symbol, score, reason_codes FROM data_quality_log WHERE date BETWEEN ? AND ? AND NOT passed ORDER BY date, symbol",
        [start, end],
    )
    by_symbol = failed.group_by("symbol").agg(pl.len().alias("sessions"), pl.col("reason_codes").list.explode().unique().sort().alias("codes")).sort("symbol")
    return dg.AssetCheckResult(
        passed=failed.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failing_rows": failed.height,
            "failing_symbols": dg.MetadataValue.json({s: {"sessions": int(n), "codes": list(c)} for s, n, c in by_symbol.rows()}),
            "examples": dg.MetadataValue.json(json.loads(json.dumps([[str(d), s, float(sc), list(r)] for d, s, sc, r in failed.head(100).rows()]))),
        },
    )
