"""[market_data] Data quality: a score in [0, 1] and reason codes per (session, symbol).

The asset reads the bars it needs (the window plus a trailing lookback, never anything after the
window), calls the pure quality agent, and writes data_quality_log. A single bad symbol is flagged
and later REJECTed; only a session where a large share of the universe fails stops the graph.

Chunks of symbols: every rule reads one symbol's own bars and actions (domain/quality.py), so the
bars are read and assessed a chunk of symbols at a time, with the calendar (hence session indexes,
LATE_START) from the first bar of ALL symbols, which gives the rows of one pass; the chunks replace
the window in ONE transaction (`replace_window_in_chunks`).
"""


import json
from collections.abc import Iterator

import dagster as dg
import polars as pl

from trading_assets.store.staged_writes import replace_window_in_chunks
from trading_assets.defs.reference import universe_symbols
from trading_assets.defs.partitions import SESSIONS, SINGLE_RUN, lookback, run_window, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain.quality import OUTPUT_SCHEMA as QUALITY_SCHEMA, assess_quality, read_sessions
from trading_assets.settings import QualitySettings

QUALITY_SHARE_WITHIN_LIMIT = "quality_failing_share_within_limit"
QUALITY_FAILING_SYMBOLS = "quality_failing_symbols"
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
        "outlier returns without a corporate action, unadjusted splits, late starts, no provider) and the values "
        "that triggered them. Point in time: a session's row uses bars up to that session only. Table: data_quality_log."
    ),
    kinds={"duckdb", "polars"},
)
def data_quality(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    wh = warehouse.get()
    start, end, sessions = window_of(context)
    symbols = universe_symbols(wh, pipeline)
    read_from = calendar.lookback_start(start, read_sessions(settings.quality))
    first = wh.read(
        "SELECT min(date) AS d FROM price_history WHERE date BETWEEN ? AND ? AND symbol IN (SELECT unnest(?::VARCHAR[]))",
        [read_from, end, symbols],
    )["d"][0]
    cal = calendar.sessions(min(first or start, start), end)  # of all symbols: the same for every chunk
    unserved = _unserved_symbols(wh, start, end)
    failed_parts, stats = [], {"rows": 0, "score_sum": 0.0}

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
            failed_parts.append(log.filter(~pl.col("passed")))
            yield log

    replace_window_in_chunks(wh, "data_quality_log", chunks(), start, end)

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
    return dg.MaterializeResult(
        metadata={
            "rows": stats["rows"],
            "window": f"{start}..{end}",
            "failing_rows": failed.height,
            "failing_symbols": failed["symbol"].n_unique() if failed.height else 0,
            "mean_score": stats["score_sum"] / stats["rows"] if stats["rows"] else 0.0,
            "reason_counts": dg.MetadataValue.json({c: int(n) for c, n in codes.rows()}),
            "worst_rows": dg.MetadataValue.md(table),
        }
    )


def _failing_by_session(wh, start, end) -> pl.DataFrame:
    # Symbols not listed yet (no bar ever, e.g. a later IPO) are outside the session's tradable set.
    return wh.read(
        """SELECT date, count(*) AS symbols, sum(CASE WHEN passed THEN 0 ELSE 1 END) AS failing
           FROM data_quality_log d
           WHERE date BETWEEN ? AND ? AND symbol NOT IN (SELECT symbol FROM universe WHERE is_benchmark)
             AND NOT list_contains(reason_codes, 'NOT_LISTED')
           GROUP BY date ORDER BY date""",
        [start, end],
    )


@dg.asset_check(
    asset="data_quality",
    name=QUALITY_SHARE_WITHIN_LIMIT,
    blocking=True,
    description="Blocking: on no session may more than settings.quality.max_failing_share of the universe fail quality (a systemic fault).",
)
def quality_failing_share_within_limit(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig
) -> dg.AssetCheckResult:
    wh = warehouse.get()
    start, end = run_window(context)
    limit = pipeline.settings().quality.max_failing_share
    per = _failing_by_session(wh, start, end).with_columns((pl.col("failing") / pl.col("symbols")).alias("share"))
    bad = per.filter(pl.col("share") > limit)
    return dg.AssetCheckResult(
        passed=bad.height == 0,
        metadata={
            "limit": limit,
            "sessions": per.height,
            "max_share": float(per["share"].max()) if per.height else 0.0,
            "breaching_sessions": dg.MetadataValue.json([[str(d), float(s)] for d, s in bad.select("date", "share").rows()][:200]),
        },
        description=None if bad.height == 0 else f"{bad.height} session(s) with more than {limit:.0%} of symbols failing quality",
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
