"""[models] model_training: retrain every trained agent's variants at the cadence sessions -> model_training_runs.

Read (features of the training window, normalized per session; labels known at t) -> domain.models.fit
for each (family, variant) -> artifact files under <data folder>/models (the folder of the DuckDB file)
and MLflow (settings.models.mlflow) -> replace the window's model_training_runs rows -> metadata.

Sessions that are not training sessions (domain/models/training.py: every `cadence` sessions counted
from a fixed anchor) are a no-op: no row, metadata says when the next training is. In a range run
each training session of the window trains in order exactly as the daily schedule would have (the
rows a model trained at t sees are fixed by t alone), so a backfill is an honest walk-forward record.
The validation IC of a training is the previous version's out-of-sample rank IC over the last sessions
it served, at most `cadence` of them (from max(previous training, t - cadence sessions) to t - 1), whose
labels are known at t. A family's first variant (the default champion) retrains every cadence, so that is
every session it served; a variant that retrains every few cadences (challengers, deep families; also once
promoted to champion: the multiple belongs to the variant, so a range run and its daily runs agree on which
sessions train it) is scored again on its last cadence only:
re-predicting months of a sequence model's sessions costs seconds per training, for a diagnostic that
nothing decides on (its full out-of-sample record is in signal_quality, promotions read agent_outputs'
daily ICs).
"""


import json
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, session_blocks, window_of
from trading_assets.defs.reference import benchmark_symbols, universe_symbols
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain.agents import TRAINED_AGENTS, enabled_trained, trained_variants
from trading_assets.domain.agents.trained import cadence_multiple, lookback_sessions, predict_family
from trading_assets.domain.models import oos, training
from trading_assets.domain.models.fit import TrainResult, train_variant
from trading_assets.domain.models.normalize import rank_gauss
from trading_assets.settings import ModelSettings, Settings
from trading_assets.store import model_store
from trading_assets.store.warehouse import Warehouse

RUN_COLUMNS = (
    "date", "agent", "family", "status", "reason", "model_version", "artifact_path", "artifact_sha256", "params", "window_years",
    "first_label_date", "last_label_date", "purge_sessions", "train_rows", "train_sessions", "thin_every", "feature_version",
    "is_rank_ic", "val_rank_ic", "val_sessions", "fit_seconds", "mlflow_run_id", "run_id",
)  # fmt: skip
LABEL_SCHEMA = {"date": pl.Date, "symbol": pl.String, "known_at": pl.Date, "fwd_return": pl.Float64, "valid": pl.Boolean}


def data_folder(wh: Warehouse) -> Path:
    """Model files and the MLflow store live beside the DuckDB file they belong to."""
    return Path(wh.db_path).resolve().parent


def table_exists(wh: Warehouse, table: str) -> bool:
    return wh.read("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [table])["n"][0] > 0


def read_labels(wh: Warehouse, first: date, known_by: date, symbols: Sequence[str] | None, horizon: int) -> pl.DataFrame:
    """Labels of decision dates >= first known at or before `known_by` (LABELS CONTRACT), one horizon.
    An absent labels table (the labels asset never ran) reads as no labels: every model stays NOT_TRAINED."""
    if not table_exists(wh, "labels"):
        return pl.DataFrame(schema=LABEL_SCHEMA)
    sql = "SELECT date, symbol, known_at, fwd_return, valid FROM labels WHERE horizon = ? AND known_at <= ? AND date >= ?"
    params: list = [horizon, known_by, first]
    if symbols is not None:
        sql += " AND symbol IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(symbols))
    return wh.read(sql + " ORDER BY date, symbol", params).cast(LABEL_SCHEMA)  # type: ignore[arg-type]


def model_feature_columns(models: ModelSettings) -> list[str]:
    return sorted({c for a in TRAINED_AGENTS for c in a.features(models)})


def check_feature_columns(wh: Warehouse, needed: Sequence[str], who: str) -> None:
    """A clear error when the features table lacks a column the trained agents read."""
    present = set(wh.read("SELECT column_name FROM information_schema.columns WHERE table_name = 'features'")["column_name"])
    missing = [c for c in needed if c not in present]
    if missing:
        raise dg.Failure(f"the features table lacks columns {who} read: {missing[:20]}{' ...' if len(missing) > 20 else ''} "
                         "(materialize `features` with the full catalog)")


def read_normalized_features(wh: Warehouse, start: date, end: date, symbols: list[str], columns: list[str]) -> pl.DataFrame:
    """features rows of start..end (date, symbol, columns), rank-gauss per session (Float32), block by block."""
    parts = []
    for lo, hi in session_blocks(calendar.sessions(start, end), max(1, len(symbols))):
        block = wh.read_window("features", lo, hi, symbols=symbols, columns=["date", "symbol", *columns], order_by="date, symbol")
        parts.append(rank_gauss(block, columns))
    if not parts:
        return pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, **{c: pl.Float32 for c in columns}})
    return pl.concat(parts).sort("date", "symbol")


def current_feature_version(wh: Warehouse, t: date) -> str:
    v = wh.read("SELECT max(feature_version) AS v FROM features WHERE date = ?", [t])["v"][0]
    return v or "unknown"


def previous_runs(wh: Warehouse, before: date) -> dict[str, dict]:
    """agent -> its latest TRAINED model_training_runs row before `before` (the version serving then)."""
    rows = wh.read(
        "SELECT * FROM model_training_runs WHERE status = 'TRAINED' AND date < ? QUALIFY row_number() OVER (PARTITION BY agent ORDER BY date DESC) = 1",
        [before],
    )
    return {r["agent"]: r for r in rows.iter_rows(named=True)}


def validation_ic(agent, variant, prev: dict | None, artifact: bytes | None, t: date, features: pl.DataFrame, labels: pl.DataFrame,
                  models: ModelSettings) -> tuple[float | None, int]:
    """The previous version's mean out-of-sample rank IC over the last sessions it served, at most
    models.cadence of them (max(prev.date, t - cadence sessions) .. t - 1), with labels known at t."""
    if prev is None or artifact is None:
        return None, 0
    first = max(prev["date"], calendar.lookback_start(t, models.cadence))
    lab = labels.filter((pl.col("known_at") <= t) & (pl.col("date") >= first) & (pl.col("date") < t))
    x = features.filter((pl.col("date") >= first) & (pl.col("date") < t)).join(lab.select("date", "symbol"), on=["date", "symbol"])
    if x.height == 0:
        return None, 0
    history = None
    back = lookback_sessions(agent, variant)
    if back > 0:  # a sequence family reads the sessions before each scored one
        lo = calendar.lookback_start(first, back)
        history = features.filter((pl.col("date") >= lo) & (pl.col("date") < t)).select("date", "symbol", *agent.features(models))
    score, _ = predict_family(agent, artifact, x, variant, models, history)
    s = x.select("date", "symbol").with_columns(score=pl.Series(score), agent=pl.lit(variant.name))
    d = oos.daily_rank_ic(s, lab, source="agent")
    return (float(d["rank_ic"].mean()) if d.height else None), d.height


def run_row(r: TrainResult, artifact_rel: str | None, feature_version: str, val: tuple[float | None, int], mlflow_id: str | None,
            run_id: str) -> dict:
    return {
        "date": r.date, "agent": r.agent, "family": r.family, "status": r.status, "reason": r.reason, "model_version": r.version,
        "artifact_path": artifact_rel, "artifact_sha256": r.sha256, "params": r.params, "window_years": r.window_years,
        "first_label_date": r.first_label_date, "last_label_date": r.last_label_date, "purge_sessions": r.purge_sessions,
        "train_rows": r.train_rows, "train_sessions": r.train_sessions, "thin_every": r.thin_every, "feature_version": feature_version,
        "is_rank_ic": r.is_rank_ic, "val_rank_ic": val[0], "val_sessions": val[1], "fit_seconds": round(r.fit_seconds, 3),
        "mlflow_run_id": mlflow_id, "run_id": run_id,
    }  # fmt: skip


RUN_SCHEMA = {
    "date": pl.Date, "agent": pl.String, "family": pl.String, "status": pl.String, "reason": pl.String, "model_version": pl.String,
    "artifact_path": pl.String, "artifact_sha256": pl.String, "params": pl.String, "window_years": pl.Int32,
    "first_label_date": pl.Date, "last_label_date": pl.Date, "purge_sessions": pl.Int32, "train_rows": pl.Int64,
    "train_sessions": pl.Int32, "thin_every": pl.Int32, "feature_version": pl.String, "is_rank_ic": pl.Float64,
    "val_rank_ic": pl.Float64, "val_sessions": pl.Int32, "fit_seconds": pl.Float64, "mlflow_run_id": pl.String, "run_id": pl.String,
}  # fmt: skip


def train_window(wh: Warehouse, settings: Settings, days: list[date], symbols: list[str], run_id: str, log=None) -> list[dict]:
    """Every training of the training sessions `days` (in order) -> model_training_runs rows (dicts)."""
    models = settings.models
    pairs = trained_variants(enabled_trained(settings.agents), models)  # minus settings.agents.disabled
    if not days or not pairs:
        return []
    cols = model_feature_columns(models)
    check_feature_columns(wh, cols, "the trained agents")
    last_needed = max(training.last_label_date(t, models) for t in days)
    history_start = settings.history_start
    features = read_normalized_features(wh, history_start, last_needed, symbols, cols)
    labels = read_labels(wh, history_start, days[-1], symbols, models.horizon)
    folder = data_folder(wh)
    prev = previous_runs(wh, days[0])
    prev_artifacts: dict[str, bytes] = {}
    rows: list[dict] = []
    logger = None  # the MLflow store, opened at the first TRAINED result (opening it costs seconds: a run that trains nothing skips it)
    for t in days:
        fv = current_feature_version(wh, t)
        shared: dict[int, pl.DataFrame] = {}  # window_years -> the window's training rows, computed once for its variants
        for agent, variant in pairs:
            if not training.is_training_session(t, models, cadence_multiple(agent, models, variant)):
                continue  # a variant that retrains every few cadences (the challengers, the deep families)
            years = models.window_years if variant.window_years is None else variant.window_years
            if years not in shared:
                shared[years] = training.training_rows(features, labels, training.training_window(t, history_start, models, years))
            p = prev.get(variant.name)
            p_art = prev_artifacts.get(variant.name)
            if p is not None and p_art is None:
                p_art = model_store.load_artifact(folder, p["artifact_path"], p["artifact_sha256"])
            r = train_variant(agent, variant, t, features, labels, history_start, fv, models, settings.seed, window_rows=shared[years])
            try:
                val = validation_ic(agent, variant, p, p_art, t, features, labels, models)
            except ValueError as exc:  # the previous version's artifact cannot be scored (cut or damaged): name it
                raise model_store.ModelArtifactError(
                    f"model artifact {folder / p['artifact_path']} ({variant.name} {p['model_version']}) cannot be scored "
                    f"for its validation IC: {exc}"
                ) from exc
            rel = None
            mlflow_id = None
            if r.status == training.TRAINED:
                rel = model_store.artifact_path(agent.name, variant.name, r.version)
                model_store.save_artifact(folder, rel, r.artifact)
                if models.mlflow:
                    if logger is None:
                        from trading_assets.store.mlflow_registry import MlflowRegistry

                        logger = MlflowRegistry(folder)
                    mlflow_id = logger.log_training(r, rel, fv, val, models)
                prev[variant.name] = {"date": t, "artifact_path": rel, "artifact_sha256": r.sha256}
                prev_artifacts[variant.name] = r.artifact
            rows.append(run_row(r, rel, fv, val, mlflow_id, run_id))
            if log is not None:
                log(f"{t} {variant.name}: {r.status} {r.version or r.reason} rows={r.train_rows} fit={r.fit_seconds:.1f}s")
    return rows


@dg.asset(
    name="model_training",
    group_name="models",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[dg.AssetDep("features", partition_mapping=SAME_SESSION), dg.AssetDep("labels", partition_mapping=SAME_SESSION)],
    description=(
        "Retrains every trained agent's variants (gbm_cross_section, gbm_ranker, trained_momentum and their shadow challengers) "
        "at the cadence sessions (every settings.models.cadence sessions from a fixed anchor), walk-forward: features of s and "
        "labels of s known at t with s <= t - horizon - 1 (purge). Other sessions: no-op. Artifacts under <data>/models, runs "
        "and versions in MLflow (<data>/mlflow). Table: model_training_runs."
    ),
    kinds={"duckdb", "polars", "lightgbm"},
)
def model_training(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    models = settings.models
    wh = warehouse.get()
    start, end, sessions = window_of(context)
    days = [t for t in sessions if training.is_training_session(t, models)]
    nxt = next((d for d in calendar.sessions(end, end + timedelta(days=90)) if d > end and training.is_training_session(d, models)), None)
    if not days:
        return dg.MaterializeResult(
            metadata={
                "window": f"{start}..{end}",
                "trained": 0,
                "no_op": f"no training session in the window (every {models.cadence} sessions from {models.anchor})",
                "next_training_session": str(nxt) if nxt else "none",
            }
        )
    symbols = universe_symbols(wh, pipeline)
    benchmarks = set(benchmark_symbols(wh, settings.benchmark))
    tradable = [s for s in symbols if s not in benchmarks]
    rows = train_window(wh, settings, days, tradable, context.run.run_id, log=context.log.info)
    frame = pl.DataFrame(rows, schema=RUN_SCHEMA)
    wh.replace_window("model_training_runs", frame, start, end)
    trained = frame.filter(pl.col("status") == training.TRAINED)
    last = frame.filter(pl.col("date") == frame["date"].max()) if frame.height else frame  # empty: every family disabled
    return dg.MaterializeResult(
        metadata={
            "window": f"{start}..{end}",
            "training_sessions": dg.MetadataValue.json([str(d) for d in days]),
            "trained": trained.height,
            "not_trained": frame.height - trained.height,
            "next_training_session": str(nxt) if nxt else "none",
            "last_training": dg.MetadataValue.json(
                {
                    r["agent"]: {
                        "status": r["status"], "version": r["model_version"], "reason": r["reason"],
                        "window": f"{r['first_label_date']}..{r['last_label_date']}", "rows": r["train_rows"],
                        "is_rank_ic": None if r["is_rank_ic"] is None else round(r["is_rank_ic"], 4),
                        "val_rank_ic": None if r["val_rank_ic"] is None else round(r["val_rank_ic"], 4),
                        "fit_seconds": r["fit_seconds"], "mlflow_run_id": r["mlflow_run_id"],
                    }
                    for r in last.iter_rows(named=True)
                }
            ),  # fmt: skip
            "purge_sessions": models.horizon + models.purge_extra,
            "fit_seconds_total": round(float(frame["fit_seconds"].sum() or 0.0), 2),
        }
    )
