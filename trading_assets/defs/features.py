"""[features] The wide `features` table: every catalog feature per (session, symbol), point in time.

Reads price_history from settings.history_start (recursive EMA/RSI/ATR need their whole past, so a
session's values never depend on where a run starts), all corporate actions and quality failures up
to the window end, calls the pure `compute_features`, and replaces the window's rows. Bars that
failed quality are left out of every window and their own row is written with null features and
quality_flagged = true (domain/features/compute.py).
"""


import time
from datetime import datetime

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SESSIONS, SINGLE_RUN, lookback, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain.features import FEATURE_NAMES, compute_features, feature_version
from trading_assets.domain.features.catalog import BY_NAME, sql_columns

# Lineage: the largest window (252 sessions) plus a margin. The asset actually reads from
# settings.history_start (see the module docstring); the mapping records the sessions that matter.
FEATURES_LOOKBACK_SESSIONS = 260

CHECK_EVERY_SESSION_HAS_FEATURES = "features_every_session_has_rows"
CHECK_FINITE_FEATURES = "features_finite_outside_warmup"

_BAR_COLUMNS = ["date", "symbol", "open", "high", "low", "close", "volume"]


def _symbols(wh, pipeline: PipelineConfig) -> tuple[list[str], list[str] | None]:
    """(symbols computed, symbols written or None for all). Cross-sectional features are computed
    over the whole universe table even when the run is limited to some symbols, so a symbol's
    ranks do not depend on which symbols a run was limited to."""
    universe = wh.read("SELECT symbol FROM universe ORDER BY symbol")["symbol"].to_list()
    if not universe:
        raise dg.Failure("the universe table is empty: materialize the `universe` asset first")
    if not pipeline.symbols:
        return universe, None
    unknown = sorted(set(pipeline.symbols) - set(universe))
    if unknown:
        raise dg.Failure(f"run config pipeline.symbols names symbols not in the universe table: {unknown}")
    return universe, sorted(set(pipeline.symbols))


def _non_finite_by_symbol(frame: pl.DataFrame) -> dict[str, dict[str, int]]:
    """{symbol: {feature: count of NaN/inf values}}. Warm-up values are null, never NaN, so every
    non-finite value counted here is outside warm-up."""
    if frame.height == 0:
        return {}
    counts = frame.group_by("symbol").agg([(~pl.col(n).is_finite()).sum().alias(n) for n in FEATURE_NAMES]).sort("symbol")
    out: dict[str, dict[str, int]] = {}
    for row in counts.iter_rows(named=True):
        bad = {n: int(row[n]) for n in FEATURE_NAMES if row[n]}
        if bad:
            out[row["symbol"]] = bad
    return out


@dg.asset(
    key="features",
    group_name="features",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep("price_history", partition_mapping=lookback(FEATURES_LOOKBACK_SESSIONS)),
        dg.AssetDep("corporate_actions", partition_mapping=lookback(FEATURES_LOOKBACK_SESSIONS)),
        dg.AssetDep("data_quality", partition_mapping=lookback(FEATURES_LOOKBACK_SESSIONS)),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_EVERY_SESSION_HAS_FEATURES,
            asset="features",
            blocking=True,
            description="Blocking: every session of the run's window has feature rows (a session with none is a systemic fault).",
        ),
        dg.AssetCheckSpec(
            CHECK_FINITE_FEATURES,
            asset="features",
            blocking=False,
            description="Non-blocking: lists the symbols with NaN or infinite feature values (warm-up values are null, not NaN).",
        ),
    ],
    description=(
        f"{len(FEATURE_NAMES)} named features per (session, symbol) from the catalog (docs/FEATURES.md): returns, "
        "volatility, moving averages, momentum, oscillators, liquidity, cross-sectional ranks and benchmark (SPY) "
        "beta/correlation, on point-in-time split- and dividend-adjusted prices; equal to TA-Lib where TA-Lib defines "
        "them. Warm-up values are null. Bars that failed quality are excluded from every window; their own rows "
        "have null features and quality_flagged = true. Table: features (wide)."
    ),
    kinds={"duckdb", "polars"},
)
def features_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig):
    settings = pipeline.settings()
    wh = warehouse.get()
    start, end, sessions = window_of(context)
    universe, written = _symbols(wh, pipeline)
    read_from = min(settings.history_start, start)

    t0 = time.perf_counter()
    bars = wh.read_window("price_history", read_from, end, symbols=universe, columns=_BAR_COLUMNS)
    actions = wh.read(
        "SELECT date, symbol, action, value, price_factor FROM corporate_actions "
        "WHERE date <= ? AND symbol IN (SELECT unnest(?::VARCHAR[])) ORDER BY symbol, date",
        [end, universe],
    )
    bad = wh.read(
        "SELECT date, symbol FROM data_quality_log WHERE NOT passed AND date BETWEEN ? AND ? "
        "AND symbol IN (SELECT unnest(?::VARCHAR[])) ORDER BY date, symbol",
        [read_from, end, universe],
    )
    t1 = time.perf_counter()
    computed = compute_features(bars, actions, settings.benchmark, bad, settings.features)
    t2 = time.perf_counter()

    keep = pl.col("date").is_between(start, end)
    if written is not None:
        keep = keep & pl.col("symbol").is_in(written)
    version = feature_version(settings.features)
    frame = computed.filter(keep).with_columns(
        pl.lit(version).alias("feature_version"),
        pl.lit(datetime.now()).cast(pl.Datetime("us")).alias("computed_at"),
        pl.lit(context.run.run_id).alias("run_id"),
    ).sort("date", "symbol")
    wh.ensure_columns("features", sql_columns())
    wh.replace_window("features", frame, start, end, symbols=written)
    t3 = time.perf_counter()

    per_session = frame.group_by("date").len()
    covered = set(per_session["date"].to_list())
    empty_sessions = [d for d in sessions if d not in covered]
    non_finite = _non_finite_by_symbol(frame)
    non_finite_total = sum(sum(v.values()) for v in non_finite.values())
    by_feature: dict[str, int] = {}
    for counts in non_finite.values():
        for name, n in counts.items():
            by_feature[name] = by_feature.get(name, 0) + n

    checks = [
        dg.AssetCheckResult(
            check_name=CHECK_EVERY_SESSION_HAS_FEATURES,
            passed=not empty_sessions,
            metadata={
                "sessions": len(sessions),
                "empty_sessions": dg.MetadataValue.json([str(d) for d in empty_sessions][:500]),
                "min_rows_per_session": int(per_session["len"].min()) if per_session.height else 0,
            },
            description=None if not empty_sessions else f"{len(empty_sessions)} session(s) of the window have no feature rows",
        ),
        dg.AssetCheckResult(
            check_name=CHECK_FINITE_FEATURES,
            passed=not non_finite,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "symbols_with_non_finite": dg.MetadataValue.json(sorted(non_finite)),
                "non_finite_values": non_finite_total,
                "by_symbol": dg.MetadataValue.json(non_finite),
            },
        ),
    ]
    flagged = int(frame["quality_flagged"].sum()) if frame.height else 0
    return dg.MaterializeResult(
        metadata={
            "rows": frame.height,
            "symbols": frame["symbol"].n_unique() if frame.height else 0,
            "window_start": str(start),
            "window_end": str(end),
            "sessions": len(sessions),
            "feature_count": len(FEATURE_NAMES),
            "feature_version": version,
            "history_start": str(read_from),
            "bars_read": bars.height,
            "quality_flagged_rows": flagged,
            "benchmark_available_rows": int(frame["benchmark_available"].sum()) if frame.height else 0,
            "non_finite_values": non_finite_total,
            "non_finite_by_feature": dg.MetadataValue.json(dict(sorted(by_feature.items()))),
            "groups": dg.MetadataValue.json(_group_counts()),
            "read_seconds": round(t1 - t0, 3),
            "compute_seconds": round(t2 - t1, 3),
            "write_seconds": round(t3 - t2, 3),
        },
        check_results=checks,
    )


def _group_counts() -> dict[str, int]:
    out: dict[str, int] = {}
    for name in FEATURE_NAMES:
        g = BY_NAME[name].group
        out[g] = out.get(g, 0) + 1
    return out
