"""[evaluation] labels: the tradable forward return of every decision, written when it is known.

Partition t owns the label rows with known_at = t (their exit session): the 1-session label of the
decision at t-2 (entry t-1) and the 5-session label of the decision at t-6 (entry t-5). So the asset
reads the opens of t-5..t, the corporate actions up to t and the quality rows of t-5..t, and its
lineage says so (a 5-session lookback on price_history, corporate_actions and data_quality).
Read -> domain.evaluation.labels.compute_labels -> replace the window's rows (by known_at) in one
transaction -> metadata. A range run makes one pass over its window.

Symbols: the labels are computed for every symbol of the universe table (universe_return is the
equal-weight mean over all of them, whatever the run is limited to) and written for the run's
symbols (all of them when the run is not limited).
"""


import time
from datetime import date, timedelta

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SESSIONS, SINGLE_RUN, lookback, window_of
from trading_assets.defs.reference import benchmark_symbols
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain.evaluation.labels import HORIZONS, MAX_HORIZON, LABEL_SCHEMA, compute_labels, failed_bars, level_shifts
from trading_assets.store.staged_writes import replace_window_in_chunks
from trading_assets.store.warehouse import SCHEMA_DIR, Warehouse

LABEL_COLUMNS = (*LABEL_SCHEMA, "run_id")


def first_session(settings) -> date:
    """The first partition's session (no label for a decision before it)."""
    return calendar.sessions(settings.history_start, settings.history_start + timedelta(days=14))[0]


def label_symbols(wh: Warehouse, pipeline: PipelineConfig) -> tuple[list[str], list[str] | None]:
    """(symbols computed: the universe table, symbols written or None for all)."""
    frame = wh.read("SELECT symbol, is_benchmark FROM universe ORDER BY symbol")
    if frame.height == 0:
        raise dg.Failure("the universe table is empty: materialize the `universe` asset first")
    universe = frame["symbol"].to_list()
    if not pipeline.symbols:
        return universe, None
    keep = set(pipeline.symbols) | set(frame.filter(pl.col("is_benchmark"))["symbol"].to_list())
    return universe, sorted(keep & set(universe))


def drop_legacy_primary_key(wh: Warehouse) -> bool:
    """Warehouses created before the labels table lost its PRIMARY KEY (store/schema/15_labels.sql:
    the index made a 5-year rewrite 10x slower) get the table rebuilt without it, rows unchanged, in one
    transaction. Returns True when it did."""
    q = "SELECT count(*) AS n FROM duckdb_constraints() WHERE table_name = 'labels' AND constraint_type = 'PRIMARY KEY'"
    if not wh.read(q)["n"][0]:
        return False
    ddl = (SCHEMA_DIR / "15_labels.sql").read_text().replace("CREATE TABLE IF NOT EXISTS labels", "CREATE TABLE labels_without_key")
    with wh.transaction() as con:
        con.execute(ddl)
        con.execute("INSERT INTO labels_without_key SELECT * FROM labels")
        con.execute("DROP TABLE labels")
        con.execute("ALTER TABLE labels_without_key RENAME TO labels")
    return True


def read_label_inputs(wh: Warehouse, start, end, symbols: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(opens, actions, failed bars, level shifts) for the labels known in start..end: opens and
    quality rows of the sessions from MAX_HORIZON before start to end, every corporate action up to end."""
    read_from = calendar.lookback_start(start, MAX_HORIZON)
    opens = wh.read_window("price_history", read_from, end, symbols=symbols, columns=["date", "symbol", "open"], order_by="date, symbol")
    actions = wh.read(
        "SELECT date, symbol, action, value, price_factor FROM corporate_actions "
        "WHERE date <= ? AND symbol IN (SELECT unnest(?::VARCHAR[])) ORDER BY symbol, date",
        [end, symbols],
    )
    quality = wh.read(
        "SELECT date, symbol, passed, reason_codes, details FROM data_quality_log "
        "WHERE date BETWEEN ? AND ? AND (NOT passed OR list_contains(reason_codes, 'REVERSED_SPIKE')) "
        "AND symbol IN (SELECT unnest(?::VARCHAR[])) ORDER BY date, symbol",
        [read_from, end, symbols],
    )
    return opens, actions, failed_bars(quality), level_shifts(quality)


@dg.asset(
    name="labels",
    group_name="evaluation",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep("price_history", partition_mapping=lookback(MAX_HORIZON)),
        dg.AssetDep("corporate_actions", partition_mapping=lookback(MAX_HORIZON)),
        dg.AssetDep("data_quality", partition_mapping=lookback(MAX_HORIZON)),
    ],
    description=(
        "The tradable forward return of the decision at each session s, per symbol and horizon h in "
        f"{HORIZONS}: adjusted open(s+1) -> open(s+1+h) (splits and dividends point in time), the benchmark's, "
        "the equal-weight universe's and the excess over coalesce(benchmark, universe). Written by the partition of "
        "the exit session (known_at = s+1+h): a point-in-time read at t is `known_at <= t`. A label whose entry "
        "or exit bar is missing, non-positive or failed quality, or whose holding spans an unrecorded split or unit error "
        "(a level-shift quality failure between entry and exit), is NULL with valid = false and a reason. Table: labels."
    ),
    kinds={"duckdb", "polars"},
)
def labels(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    wh = warehouse.get()
    start, end, sessions = window_of(context)
    if drop_legacy_primary_key(wh):
        context.log.info("labels: rebuilt the table without its legacy PRIMARY KEY (rows unchanged)")
    universe, written = label_symbols(wh, pipeline)
    benchmarks = benchmark_symbols(wh, settings.benchmark)

    t0 = time.perf_counter()
    opens, actions, failed, shifts = read_label_inputs(wh, start, end, universe)
    t1 = time.perf_counter()
    frame = compute_labels(
        opens, actions, failed, sessions, universe, benchmarks, HORIZONS, first_decision=first_session(settings), shifts=shifts
    )
    del opens
    if written is not None:
        frame = frame.filter(pl.col("symbol").is_in(written))
    frame = frame.with_columns(run_id=pl.lit(context.run.run_id)).select(LABEL_COLUMNS)
    t2 = time.perf_counter()
    replace_window_in_chunks(wh, "labels", [frame], start, end, symbols=written, date_column="known_at")
    t3 = time.perf_counter()

    per_h = (
        frame.group_by("horizon")
        .agg(rows=pl.len(), valid=pl.col("valid").sum(), mean_fwd_return=pl.col("fwd_return").mean())
        .sort("horizon")
    )
    reasons = (
        frame.filter(~pl.col("valid"))["reason"].str.split(",").explode().value_counts().sort("reason")
        if frame.filter(~pl.col("valid")).height
        else pl.DataFrame(schema={"reason": pl.String, "count": pl.UInt32})
    )
    last = frame.filter(pl.col("known_at") == end).group_by("horizon").agg(
        pl.col("date").first(), pl.col("universe_return").first(), pl.col("bench_return").first()
    ).sort("horizon")
    return dg.MaterializeResult(
        metadata={
            "window": f"{start}..{end}",
            "sessions": len(sessions),
            "rows": frame.height,
            "valid_rows": int(frame["valid"].sum()) if frame.height else 0,
            "symbols": frame["symbol"].n_unique() if frame.height else 0,
            "horizons": dg.MetadataValue.json(list(HORIZONS)),
            "per_horizon": dg.MetadataValue.json(
                {str(h): {"rows": int(r), "valid": int(v), "mean_fwd_return": None if m is None else round(m, 6)} for h, r, v, m in per_h.rows()}
            ),
            "invalid_by_reason": dg.MetadataValue.json({r: int(n) for r, n in reasons.rows()}),
            "last_session_labels": dg.MetadataValue.md(
                "| horizon | decision date | universe return | benchmark return |\n|---|---|---|---|\n"
                + "\n".join(f"| {h} | {d} | {_pct(u)} | {_pct(b)} |" for h, d, u, b in last.rows())
            ),
            "benchmark": ",".join(benchmarks),
            "read_seconds": round(t1 - t0, 3),
            "compute_seconds": round(t2 - t1, 3),
            "write_seconds": round(t3 - t2, 3),
        }
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.2f}%"
