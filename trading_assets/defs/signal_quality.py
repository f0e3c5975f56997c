"""[evaluation] signal_quality: every forecasting source scored against the labels, point in time.

Sources (one `source` per forecaster, whatever exists in the tables):
    each agent of model_outputs (by agent name; learned champions and shadows included, with their
        `role` when model_outputs has that column): score = mu (NULL when the agent is silent); a trained
        model (role champion or shadow) by its raw model score (model_outputs.score) whenever a version
        serves the session, whether or not it speaks: its true out-of-sample record
    meta_brain: decisions.mu_hat_adj (the Meta-Brain's disagreement-penalized expected return)
    risk_gate:  risk_decisions.approved_weight (the weights the book was allowed to hold)
The score of a source at session s is its value at s (known after the close of s); the label is s's
label (labels table, horizons 1 and 5, `excess_return`), scored with domain/evaluation/ic.py. The
benchmark's rows are left out (it gets no decision).

Partition t owns the rows whose labels became known at t (known_at = s + 1 + h: the rows of label
dates t-2 for h = 1 and t-6 for h = 5). Their rolling 21/63/252-session columns need the daily
metrics of the 251 label dates before, which are recomputed from labels and scores (never read back
from this table), so a row is the same whether its partition runs alone or inside a range. Only
labels with known_at <= the window end are read. It sits downstream of the book (risk_decisions), so
nothing upstream reads it and the graph stays acyclic.

A range run makes one pass: the label dates are cut into blocks of sessions (bounded memory), each
block's daily metrics computed with one group_by over (date, source, horizon), then the rolling
columns over all of them, and the window's rows are replaced (by known_at) in one transaction.
"""

import time
from datetime import date, timedelta

import dagster as dg
import polars as pl

from trading_assets.defs.labels import first_session
from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, lookback, session_blocks, window_of
from trading_assets.defs.reference import benchmark_symbols
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain.evaluation.ic import DAILY_SCHEMA, WINDOWS, latest_by_source, rolling_columns, rolling_metrics, session_metrics
from trading_assets.domain.evaluation.labels import HORIZONS, MAX_HORIZON
from trading_assets.store.warehouse import Warehouse

LABEL = "excess_return"
# label dates a partition's rows reach back to: its own (t - 1 - h) and the longest rolling window before it
LOOKBACK_SESSIONS = MAX_HORIZON + 1 + max(WINDOWS) - 1
# scores are read at label dates only: t - 1 - max(h) - (W - 1) .. t - 1 - min(h). The mapping declared
# ends at t itself (a superset by two sessions): a mapping that ends BEFORE t makes Dagster's backfill
# daemon put this asset in a run of its own after its upstreams (a UI backfill became 3 runs, measured),
# against the one-run backfill every asset keeps (BackfillPolicy.single_run, DESIGN section 3).
SCORE_MAPPING = dg.TimeWindowPartitionMapping(
    start_offset=-LOOKBACK_SESSIONS, end_offset=0, allow_nonexistent_upstream_partitions=True
)
COLUMNS = (
    "date", "source", "horizon", "known_at", "kind", "role", "score_column", "label",
    *[c for c in DAILY_SCHEMA if c not in ("date", "source", "horizon", "known_at")],
    *rolling_columns(WINDOWS), "run_id",
)  # fmt: skip
# (pairs per block): sessions per block = this / (symbols x sources x horizons)
PAIRS_PER_BLOCK = 1_000_000


def _has_column(wh: Warehouse, table: str, column: str) -> bool:
    q = "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = ? AND column_name = ?"
    return bool(wh.read(q, [table, column])["n"][0])


def read_scores(wh: Warehouse, lo: date, hi: date, exclude: list[str]) -> pl.DataFrame:
    """(date, symbol, source, kind, role, score_column, score) of every source at sessions lo..hi."""
    role = "role" if _has_column(wh, "model_outputs", "role") else "CAST(NULL AS VARCHAR)"
    # A trained model (champion or shadow) is scored by its raw model score whenever a version serves the
    # session: its mu is NULL while its rolling OOS IC has not earned an edge (NO_EDGE), and scoring mu would
    # record a model only on the sessions it already looked good (survivorship) and never a silent shadow.
    trained = "score IS NOT NULL AND role IN ('champion', 'shadow')" if _has_column(wh, "model_outputs", "score") else "FALSE"
    where = "date BETWEEN ? AND ? AND symbol NOT IN (SELECT unnest(?::VARCHAR[]))"
    sql = f"""
        SELECT date, symbol, agent AS source, 'agent' AS kind, {role} AS role,
               CASE WHEN {trained} THEN 'model_outputs.score' ELSE 'model_outputs.mu' END AS score_column,
               CASE WHEN {trained} THEN score ELSE mu END AS score
        FROM model_outputs WHERE {where}
        UNION ALL
        SELECT date, symbol, 'meta_brain', 'meta_brain', NULL, 'decisions.mu_hat_adj', mu_hat_adj FROM decisions WHERE {where}
        UNION ALL
        SELECT date, symbol, 'risk_gate', 'risk_gate', NULL, 'risk_decisions.approved_weight', approved_weight
        FROM risk_decisions WHERE {where}
    """  # no ORDER BY: session_metrics sorts the pairs it reduces
    return wh.read(sql, [lo, hi, exclude] * 3)


def read_labels(wh: Warehouse, lo: date, hi: date, known_by: date, exclude: list[str]) -> pl.DataFrame:
    """The labels of decision dates lo..hi known by `known_by`, benchmark excluded."""
    return wh.read(
        f"SELECT date, symbol, horizon, {LABEL}, valid, known_at FROM labels WHERE date BETWEEN ? AND ? AND known_at <= ? "
        "AND symbol NOT IN (SELECT unnest(?::VARCHAR[]))",
        [lo, hi, known_by, exclude],
    )


DAILY_COLUMNS = ("kind", "role", "score_column", *DAILY_SCHEMA)


def compute_window(wh: Warehouse, start: date, end: date, exclude: list[str], first_session: date) -> pl.DataFrame:
    """The signal_quality rows (without run_id) known in start..end.

    The rolling columns of a row need the daily metrics of the label dates up to 251 sessions before
    it. Those known before `start` are read back from this table (the rows earlier partitions wrote:
    a pure function of labels and scores, so reading equals recomputing, and a daily run stays a few
    milliseconds); a (label date, horizon) with no row there is recomputed, as is every row known in
    the window. So a daily run and a range run give the same rows, and a range run that starts at the
    first partition recomputes everything."""
    first = max(calendar.lookback_start(start, LOOKBACK_SESSIONS), first_session)
    last = calendar.lookback_start(end, 1 + min(HORIZONS))
    label_dates = calendar.sessions(first, last) if first <= last else []
    if not label_dates:
        return pl.DataFrame()
    ahead = calendar.sessions(first, last + timedelta(days=7 * (2 + MAX_HORIZON)))  # known_at = label date + 1 + h
    grid = pl.DataFrame(
        [(d, h, ahead[i + 1 + h]) for i, d in enumerate(label_dates) for h in HORIZONS],
        schema={"date": pl.Date, "horizon": pl.Int32, "known_at": pl.Date},
        orient="row",
    )
    prior = wh.read(
        f"SELECT {', '.join(DAILY_COLUMNS)} FROM signal_quality WHERE date BETWEEN ? AND ? AND known_at < ?",
        [first, last, start],
    )
    have = prior.select("date", "horizon").unique()
    todo = grid.filter(pl.col("known_at") >= start).select("date", "horizon")
    todo = pl.concat([todo, grid.filter(pl.col("known_at") < start).select("date", "horizon").join(have, on=["date", "horizon"], how="anti")])
    daily = [prior]
    if todo.height:
        dates = sorted(set(todo["date"].to_list()))
        n_symbols = int(wh.read("SELECT count(*) AS n FROM universe")["n"][0]) or 1
        n_sources = int(wh.read("SELECT count(DISTINCT agent) AS n FROM model_outputs WHERE date = ?", [dates[-1]])["n"][0]) + 2
        for lo, hi in session_blocks(dates, n_symbols * n_sources * len(HORIZONS), rows=PAIRS_PER_BLOCK):
            scores = read_scores(wh, lo, hi, exclude)
            labels = read_labels(wh, lo, hi, end, exclude)
            if scores.height and labels.height:
                computed = session_metrics(scores, labels, LABEL).join(todo, on=["date", "horizon"], how="semi")
                daily.append(computed.select(DAILY_COLUMNS))
    rows = pl.concat([d.select(DAILY_COLUMNS).cast({c: DAILY_SCHEMA[c] for c in DAILY_SCHEMA}) for d in daily], how="vertical_relaxed")
    if rows.height == 0:
        return pl.DataFrame()
    rows = rows.sort("source", "horizon", "date")
    rows = rolling_metrics(rows, WINDOWS, wanted=rows["known_at"].is_between(start, end))
    rows = rows.filter(pl.col("known_at").is_between(start, end)).with_columns(label=pl.lit(LABEL))
    return rows.select([c for c in COLUMNS if c != "run_id"]).sort("known_at", "date", "source", "horizon")


@dg.asset(
    name="signal_quality",
    group_name="evaluation",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep("labels", partition_mapping=lookback(LOOKBACK_SESSIONS)),
        dg.AssetDep("agent_outputs", partition_mapping=SCORE_MAPPING),
        dg.AssetDep("meta_decisions", partition_mapping=SCORE_MAPPING),
        # The approved weights (risk_decisions) come from the book, a multi-asset: a child of it with any
        # mapping was left out of the backfill's one run ("Waiting for parent risk_decisions to be
        # materialized", measured through the UI: a backfill became 2-3 runs). `performance` is a single
        # asset downstream of the book's portfolio, so depending on its same session orders this asset after
        # the book in the same run; the rows read are risk_decisions of t-2-W..t-2 (see SCORE_MAPPING).
        dg.AssetDep("performance", partition_mapping=SAME_SESSION),
    ],
    description=(
        "How well every forecasting source ranked what happened: each agent's mu (learned champions and shadows "
        "included), the Meta-Brain's mu_hat_adj and the risk gate's approved weights, against the labels' excess "
        "return, per (label date, source, horizon): IC, rank IC, hit rate, top-minus-bottom quintile spread, "
        "coverage, and their rolling 21/63/252-session means, ICIR and t-statistics over the labels known at the "
        "row. Partition t owns the rows whose labels became known at t. Formulas: docs/EVALUATION.md. "
        "Table: signal_quality."
    ),
    kinds={"duckdb", "polars"},
)
def signal_quality(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    wh = warehouse.get()
    start, end, sessions = window_of(context)
    benchmarks = benchmark_symbols(wh, settings.benchmark)

    t0 = time.perf_counter()
    schema = _schema(wh)
    rows = compute_window(wh, start, end, benchmarks, first_session(settings))
    if rows.height == 0:
        rows = pl.DataFrame(schema={c: t for c, t in schema.items() if c != "run_id"})
    rows = rows.with_columns(run_id=pl.lit(context.run.run_id)).select(COLUMNS).cast(schema)
    t1 = time.perf_counter()
    wh.replace_window("signal_quality", rows, start, end, date_column="known_at")
    t2 = time.perf_counter()

    metadata = {
        "window": f"{start}..{end}",
        "sessions": len(sessions),
        "rows": rows.height,
        "sources": dg.MetadataValue.json(sorted(rows["source"].unique().to_list()) if rows.height else []),
        "label": LABEL,
        "compute_seconds": round(t1 - t0, 3),
        "write_seconds": round(t2 - t1, 3),
    }
    # The table and the picture go on the window's LAST partition only: Dagster copies a range run's
    # metadata onto every partition's materialization event (a 5-year backfill would store ~1,259
    # copies of a ~200 kB PNG in the event log). A single-session run (the daily cycle) records the
    # table and leaves the picture (~0.4 s of matplotlib) to evaluation_plots, drawn after it.
    last = quality_metadata(wh, end, picture=len(sessions) > 1)
    last["plot_seconds"] = round(time.perf_counter() - t2, 3)
    context.add_asset_metadata(last, partition_key=end.isoformat())
    return dg.MaterializeResult(metadata=metadata)


def _schema(wh: Warehouse) -> dict[str, pl.DataType]:
    return dict(wh.read("SELECT * FROM signal_quality LIMIT 0").schema)


# the history the pictures show (sessions before the window end): two years
PLOT_SESSIONS = 504


def quality_metadata(wh: Warehouse, end: date, picture: bool = True) -> dict:
    """The latest rolling rank IC / ICIR / t per source (markdown table) and, when `picture`, the
    pictures (rolling 63-session rank IC per source, the rolling quintile spread), from the table's
    rows known by `end`."""

    history = wh.read(
        "SELECT date, source, horizon, known_at, rank_ic, rank_ic_mean_63, spread_mean_63, n_rank_ic_63, rank_ic_ir_63, "
        "rank_ic_t_63, n_rank_ic_252, rank_ic_mean_252, rank_ic_ir_252, rank_ic_t_252, spread_mean_252 "
        "FROM signal_quality WHERE known_at BETWEEN ? AND ? ORDER BY source, horizon, date",
        [calendar.lookback_start(end, PLOT_SESSIONS), end],
    )
    if history.height == 0:
        return {"latest": dg.MetadataValue.md("no signal_quality rows known yet (labels need 2 sessions after a decision)")}
    out = {"latest": dg.MetadataValue.md(latest_markdown(history))}
    if not picture:
        out["pictures"] = "drawn after the run by evaluation_plots (a single-session run does not draw)"
        return out
    from trading_assets.reporting.plots import markdown_image, png_bytes
    from trading_assets.reporting.signal_plots import signal_quality_figure

    png = png_bytes(signal_quality_figure(history))
    out["rolling_rank_ic_plot"] = dg.MetadataValue.md(markdown_image(png, "rolling 63-session rank IC and quintile spread per source"))
    return out


def latest_markdown(history: pl.DataFrame) -> str:
    """A markdown table: per (horizon, source), the last row's rolling rank IC mean / ICIR / t (63 and
    252 sessions) and the mean quintile spread (63)."""
    def f(x, spec: str) -> str:
        return "n/a" if x is None else format(x, spec)

    lines = [
        "| h | source | as of | rank IC 63 | ICIR 63 | t 63 | rank IC 252 | ICIR 252 | t 252 | spread 63 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    latest = latest_by_source(history, 63)
    long = latest_by_source(history, 252).select("source", "horizon", "rank_ic_mean_252", "rank_ic_ir_252", "rank_ic_t_252")
    for r in latest.join(long, on=["source", "horizon"], how="left").sort("horizon", "source").iter_rows(named=True):
        lines.append(
            f"| {r['horizon']} | {r['source']} | {r['date']} | {f(r['rank_ic_mean_63'], '+.4f')} | {f(r['rank_ic_ir_63'], '+.3f')} | "
            f"{f(r['rank_ic_t_63'], '+.2f')} | {f(r['rank_ic_mean_252'], '+.4f')} | {f(r['rank_ic_ir_252'], '+.3f')} | "
            f"{f(r['rank_ic_t_252'], '+.2f')} | {f(r['spread_mean_63'], '+.5f')} |"
        )
    return "\n".join(lines)
