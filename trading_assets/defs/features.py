"""[features] The wide `features` table: every catalog feature per (session, symbol), point in time.

Reads price_history from settings.history_start (recursive EMA/RSI/ATR need their whole past, so a
session's values never depend on where a run starts) -- except for a short window (a daily run) whose
previous session left a usable state (feature_state; domain/features/incremental.py): its symbols are
continued from that state and their last TRAILING_BARS bars only. Reads all corporate actions known by the window end
(the provider's and the inferred ones, store/known_actions.py) and the quality failures and held
moves (MOVE_UNCONFIRMED) up to the window end, computes the window's rows with the pure `window_chunks` (compute_features' values
bit for bit, chunk by chunk of symbols, so memory is bounded by a chunk: 2,000 symbols x 5 years
peak ~2.4 GB instead of ~10 GB) and replaces the window's rows in one transaction
(`replace_window_in_chunks`). Bars that
failed quality or are held are left out of every window and their own row is written with null
features and quality_flagged = true (domain/features/compute.py).
"""


import time
from datetime import date, datetime

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SESSIONS, SINGLE_RUN, lookback, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain.features import FEATURE_NAMES, feature_version
from trading_assets.domain.features.compute import ONE_PASS_MAX_SESSIONS, window_chunks
from trading_assets.domain.features.catalog import BY_NAME, sql_columns
from trading_assets.domain.features.incremental import state_version
from trading_assets.store import feature_state
from trading_assets.store.known_actions import actions_known_by
from trading_assets.store.staged_writes import replace_window_in_chunks

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


class _WindowStats:
    """What the checks and metadata need from the written rows, accumulated chunk by chunk (the
    chunks hold disjoint symbols)."""

    def __init__(self) -> None:
        self.rows = 0
        self.symbols = 0
        self.flagged = 0
        self.benchmark_available = 0
        self.per_session: dict[date, int] = {}
        self.non_finite: dict[str, dict[str, int]] = {}

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.rows += frame.height
        self.symbols += frame["symbol"].n_unique()
        self.flagged += int(frame["quality_flagged"].sum())
        self.benchmark_available += int(frame["benchmark_available"].sum())
        for day, n in frame.group_by("date").len().iter_rows():
            self.per_session[day] = self.per_session.get(day, 0) + n
        self.non_finite.update(_non_finite_by_symbol(frame))


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
    version_of_state = state_version(settings.features, settings.history_start)
    # a short window continues the symbols whose state after the previous session is still true of
    # the warehouse (store/feature_state.py); the others are computed from their first session
    state, fallback = None, {"no_state": len(universe), "other_version": 0, "inputs_changed": 0}
    if len(sessions) <= ONE_PASS_MAX_SESSIONS and start > read_from:
        state, fallback = feature_state.usable_states(wh, calendar.previous_session(start), universe, version_of_state, settings.features)
    continued = set(state["symbol"]) if state is not None else set()
    full = [s for s in universe if s not in continued]
    if full and settings.benchmark in continued:  # the benchmark's whole history feeds the full symbols' RB
        continued.discard(settings.benchmark)
        state = state.filter(pl.col("symbol") != settings.benchmark)
        full = [s for s in universe if s not in continued]
        fallback["benchmark_for_full"] = 1
    parts = []
    if full:
        parts.append(wh.read_window("price_history", read_from, end, symbols=full, columns=_BAR_COLUMNS))
    if continued:
        parts.append(wh.read_window("price_history", state["tail_start"].min(), end, symbols=sorted(continued), columns=_BAR_COLUMNS))
    bars = pl.concat(parts).sort("symbol", maintain_order=True) if len(parts) > 1 else parts[0]
    bad_from = read_from if full else state["tail_start"].min()
    # provider actions and the inferred ones known by the window end (store/known_actions.py)
    actions = actions_known_by(wh, end, universe)
    # bars left out of every window: failed quality, or held (an extreme move not confirmed yet)
    bad = wh.read(
        f"SELECT date, symbol FROM data_quality_log WHERE {feature_state.EXCLUDED_BARS} "
        "AND date BETWEEN ? AND ? AND symbol IN (SELECT unnest(?::VARCHAR[])) ORDER BY date, symbol",
        [bad_from, end, universe],
    )
    t1 = time.perf_counter()
    bars_read = bars.height
    states_out: list[pl.DataFrame] = []
    chunks = window_chunks(bars, actions, settings.benchmark, bad, settings.features, start, end, symbols=written,
                           state=state if continued else None, state_out=states_out)  # fmt: skip
    del bars  # window_chunks keeps its narrow adjusted copy, chunk by chunk, and drops the bars

    # Computed and written in chunks of symbols (window_chunks: the same values as compute_features
    # on the whole history, bit for bit), so memory holds one chunk's working set, never the whole
    # history's features nor the whole window's rows; all chunks go in ONE transaction.
    version = feature_version(settings.features)
    computed_at = datetime.now()
    stats = _WindowStats()
    compute_seconds = 0.0

    def frames():
        nonlocal compute_seconds
        while True:
            tc = time.perf_counter()
            computed = next(chunks, None)
            if computed is None:
                compute_seconds += time.perf_counter() - tc
                return
            frame = computed.with_columns(
                pl.lit(version).alias("feature_version"),
                pl.lit(computed_at).cast(pl.Datetime("us")).alias("computed_at"),
                pl.lit(context.run.run_id).alias("run_id"),
            ).sort("date", "symbol")
            del computed
            stats.add(frame)
            compute_seconds += time.perf_counter() - tc
            yield frame

    wh.ensure_columns("features", sql_columns())
    t2 = time.perf_counter()
    replace_window_in_chunks(wh, "features", frames(), start, end, symbols=written)
    t3 = time.perf_counter()
    states = pl.concat(states_out) if states_out else pl.DataFrame()
    feature_state.write_states(wh, states.sort("symbol") if states.height else states, end, start, version_of_state, context.run.run_id)
    t4 = time.perf_counter()

    empty_sessions = [d for d in sessions if d not in stats.per_session]
    non_finite = dict(sorted(stats.non_finite.items()))
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
                "min_rows_per_session": min(stats.per_session.values(), default=0),
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
    return dg.MaterializeResult(
        metadata={
            "rows": stats.rows,
            "symbols": stats.symbols,
            "window_start": str(start),
            "window_end": str(end),
            "sessions": len(sessions),
            "feature_count": len(FEATURE_NAMES),
            "feature_version": version,
            "history_start": str(read_from),
            "bars_read": bars_read,
            "quality_flagged_rows": stats.flagged,
            "benchmark_available_rows": stats.benchmark_available,
            "non_finite_values": non_finite_total,
            "non_finite_by_feature": dg.MetadataValue.json(dict(sorted(by_feature.items()))),
            "groups": dg.MetadataValue.json(_group_counts()),
            "read_seconds": round(t1 - t0, 3),
            # compute and write interleave (chunk by chunk): compute = preparing + the chunks' features
            "compute_seconds": round(t2 - t1 + compute_seconds, 3),
            "write_seconds": round(t3 - t2 - compute_seconds, 3),
            "state_seconds": round(t4 - t3, 3),
            # incremental daily path (domain/features/incremental.py): symbols continued from the
            # previous session's state, and why the others were recomputed from their first session
            "symbols_continued": len(continued),
            "symbols_recomputed": dg.MetadataValue.json({"total": len(full), **fallback}),
        },
        check_results=checks,
    )


def _group_counts() -> dict[str, int]:
    out: dict[str, int] = {}
    for name in FEATURE_NAMES:
        g = BY_NAME[name].group
        out[g] = out.get(g, 0) + 1
    return out
