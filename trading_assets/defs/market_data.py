"""[market_data] Raw prices and corporate actions, fetched through the bandit data router.

One multi-asset fetch yields both `price_history` and `corporate_actions` (one provider request
serves both) and appends every provider attempt to provider_metrics, from which the router learns.
"""


from datetime import datetime

import dagster as dg
import polars as pl

from trading_assets.store.staged_writes import replace_window_in_chunks
from trading_assets.defs.reference import universe_symbols
from trading_assets.defs.partitions import SESSIONS, SINGLE_RUN, run_window, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.providers.base import ProviderError
from trading_assets.providers.registry import build_providers
from trading_assets.providers.router import DataRouter

PRICE_HISTORY_NOT_EMPTY = "price_history_not_empty"
PRICE_HISTORY_WELL_FORMED = "price_history_well_formed"

PRICE_COLUMNS = ["date", "symbol", "open", "high", "low", "close", "adj_close", "volume"]


class NoProviderCouldServe(Exception):
    """Every configured provider failed for every symbol: transient (network, rate limit) -> retried."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "price_history",
            group_name="market_data",
            deps=["universe"],
            description=(
                "Daily bars per (session, symbol) exactly as the provider delivered them (open, high, low, close, "
                "adj_close, volume), with the provider of every row, a synthetic flag and the count of duplicate "
                "copies received. Never altered: defects are flagged by data_quality. Table: price_history."
            ),
            kinds={"duckdb", "polars"},
        ),
        dg.AssetSpec(
            "corporate_actions",
            group_name="market_data",
            deps=["universe"],
            description=(
                "Splits and dividends by ex-date with the price factor still to apply to earlier prices "
                "(point-in-time adjustment). Table: corporate_actions."
            ),
            kinds={"duckdb", "polars"},
        ),
    ],
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    can_subset=False,
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    op_tags={"kind": "fetch"},
)
def market_data(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig):
    settings = pipeline.settings()
    wh = warehouse.get()
    start, end, sessions = window_of(context)
    symbols = universe_symbols(wh, pipeline)
    run_id = context.run.run_id

    history = wh.read("SELECT * FROM provider_metrics WHERE provider <> 'router' ORDER BY ts")
    try:
        providers = build_providers(settings.providers, settings)
    except (ValueError, ProviderError) as exc:
        raise dg.Failure(f"provider configuration: {exc}") from exc
    router = DataRouter(providers, seed=settings.seed, metrics_history=history)
    result = router.route(symbols, start, end)
    # the synthetic provider caches every symbol's whole path since 2000 (~0.35 MB a symbol): free it
    # before the bars are copied and written (this generator's locals live until the step ends)
    del router, providers

    now = datetime.now()
    metrics = result.metrics if isinstance(result.metrics, pl.DataFrame) else pl.DataFrame(result.metrics)
    summary_row = pl.DataFrame(
        {
            "provider": ["router"],
            "window_start": [start],
            "window_end": [end],
            "symbols_requested": [len(symbols)],
            "symbols_served": [len(symbols) - len(result.unserved)],
            "rows": [result.bars.height],
            "success": [len(result.unserved) == 0],
            "failure_reason": [None if not result.unserved else "NO_PROVIDER"],
            "latency_ms": [float(metrics["latency_ms"].sum()) if metrics.height else 0.0],
            "quality": [None],
            "unserved": [sorted(result.unserved)],
        },
        schema_overrides={"failure_reason": pl.String, "quality": pl.Float64, "unserved": pl.List(pl.String)},
    )
    metrics = pl.concat([metrics, summary_row], how="diagonal_relaxed").with_columns(
        pl.lit(now).alias("ts"), pl.lit(run_id).alias("run_id")
    )
    wh.append("provider_metrics", metrics)

    if result.bars.height == 0:
        reasons = metrics.filter(pl.col("provider") != "router").select("provider", "failure_reason").rows()
        raise NoProviderCouldServe(
            f"no provider served any of {len(symbols)} symbols for {start}..{end}: {reasons}"
        )

    on_calendar = set(sessions)
    routed_bars, routed_actions, unserved = result.bars, result.actions, result.unserved
    del result  # one live copy of the bars at a time
    bars = routed_bars.filter(pl.col("date").is_between(start, end))
    del routed_bars
    off_calendar = bars.filter(~pl.col("date").is_in(sorted(on_calendar)))
    if off_calendar.height:
        context.log.warning(f"{off_calendar.height} bars dated off the NYSE calendar are kept out: {off_calendar.head(5).rows()}")
        bars = bars.filter(pl.col("date").is_in(sorted(on_calendar)))
    bars = bars.with_columns(pl.lit(run_id).alias("run_id"), pl.lit(now).alias("ingested_at")).sort("date", "symbol")
    # staged through Parquet into one INSERT ... SELECT (defs/features.py): no Arrow copy of the
    # frame, and DuckDB's buffer pool bounded while the window's rows go in (one transaction)
    replace_window_in_chunks(wh, "price_history", [bars], start, end)

    actions = routed_actions.filter(pl.col("date").is_between(start, end)).with_columns(pl.lit(run_id).alias("run_id"))
    actions = actions.sort("date", "symbol", "action")
    wh.replace_window("corporate_actions", actions, start, end)

    mix = bars.group_by("provider").agg(pl.len().alias("rows"), pl.col("symbol").n_unique().alias("symbols")).sort("provider")
    attempts = metrics.filter(pl.col("provider") != "router")
    attempts_md = "| provider | success | served/requested | rows | latency ms | reason |\n|---|---|---|---|---|---|\n" + "\n".join(
        f"| {r['provider']} | {r['success']} | {r['symbols_served']}/{r['symbols_requested']} | {r['rows']} | "
        f"{(r['latency_ms'] or 0):.0f} | {r['failure_reason'] or ''} |"
        for r in attempts.iter_rows(named=True)
    )
    yield dg.MaterializeResult(
        asset_key="price_history",
        metadata={
            "rows": bars.height,
            "symbols": bars["symbol"].n_unique(),
            "sessions": len(sessions),
            "window": f"{start}..{end}",
            "provider_mix": dg.MetadataValue.json({p: {"rows": r, "symbols": s} for p, r, s in mix.rows()}),
            "provider_attempts": dg.MetadataValue.md(attempts_md),
            "unserved_symbols": dg.MetadataValue.json(sorted(unserved)),
            "duplicates_received": int(bars["duplicate_count"].sum()),
            "synthetic": bool(bars["is_synthetic"].any()),
        },
    )
    yield dg.MaterializeResult(
        asset_key="corporate_actions",
        metadata={
            "rows": actions.height,
            "splits": int((actions["action"] == "split").sum()),
            "dividends": int((actions["action"] == "dividend").sum()),
            "window": f"{start}..{end}",
        },
    )


@dg.asset_check(asset="price_history", name=PRICE_HISTORY_NOT_EMPTY, blocking=True,
                description="Blocking: every session of the run's window has bars (an empty session is a systemic fault).")
def price_history_not_empty(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get()
    start, end = run_window(context)
    expected = calendar.sessions(start, end)
    counts = wh.read(
        "SELECT date, count(*) AS n FROM price_history WHERE date BETWEEN ? AND ? GROUP BY date", [start, end]
    )
    have = dict(counts.rows())
    empty = [d.isoformat() for d in expected if have.get(d, 0) == 0]
    return dg.AssetCheckResult(
        passed=not empty,
        metadata={"sessions": len(expected), "empty_sessions": dg.MetadataValue.json(empty[:200]), "window": f"{start}..{end}"},
        description=None if not empty else f"{len(empty)} session(s) with no bars at all",
    )


@dg.asset_check(asset="price_history", name=PRICE_HISTORY_WELL_FORMED, blocking=True,
                description=("Blocking: rows are well formed — no row without any price, no negative volume, no symbol "
                             "outside the universe. Single bad bars are data_quality's job, not a systemic fault."))
def price_history_well_formed(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get()
    start, end = run_window(context)
    bad = wh.read(
        """
        SELECT date, symbol,
               CASE WHEN open IS NULL AND high IS NULL AND low IS NULL AND close IS NULL THEN 'NO_PRICES'
                    WHEN volume < 0 THEN 'NEGATIVE_VOLUME'
                    ELSE 'NOT_IN_UNIVERSE' END AS problem
        FROM price_history p
        WHERE date BETWEEN ? AND ?
          AND ((open IS NULL AND high IS NULL AND low IS NULL AND close IS NULL)
               OR volume < 0
               OR symbol NOT IN (SELECT symbol FROM universe))
        ORDER BY date, symbol
        """,
        [start, end],
    )
    total = wh.read("SELECT count(*) AS n FROM price_history WHERE date BETWEEN ? AND ?", [start, end])["n"][0]
    # A whole bad bar (all prices null) is a quality defect when rare; it is systemic when a large share is.
    share = bad.height / total if total else 1.0
    passed = share <= 0.05
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "rows": int(total),
            "malformed_rows": bad.height,
            "malformed_share": float(share),
            "examples": dg.MetadataValue.json([[str(d), s, p] for d, s, p in bad.head(50).rows()]),
        },
        description=None if passed else f"{bad.height} malformed rows ({share:.1%}) in {start}..{end}",
    )
