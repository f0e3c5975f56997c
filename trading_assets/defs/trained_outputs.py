"""The trained agents' rows of agent_outputs: scores, promotions, roles, calibration -> model_outputs rows,
model_versions and model_promotions (called by defs/signals.py::agent_outputs; no math here).

For the window's sessions, in four passes:
1. scores: the version serving session t of each variant is the latest TRAINED model_training_runs row
   with date <= t (its artifact is loaded and checked against its sha256: a missing or corrupt file
   fails the run, naming the file, before any decision is written); features rank-gauss per session
   (domain/models/normalize.py), benchmark excluded. No version yet -> silent rows, NOT_TRAINED.
2. daily out-of-sample rank IC of every variant (domain/models/oos.py) from its scores (earlier sessions:
   model_outputs.score; the window: pass 1) and the labels known by the window's end; every later use
   filters on known_at, so nothing unknown at a session is used for it.
3. promotions at the window's training sessions (domain/models/promotion.py), starting from the last
   model_promotions row before the window -> each variant's role per session: champion | shadow.
4. rolling OOS IC as of each session (labels known at t) -> mu, sigma, confidence (agents/trained.py).
"""

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np

import polars as pl

from trading_assets.defs.models import check_feature_columns, data_folder, model_feature_columns, read_labels, table_exists
from trading_assets.defs.partitions import session_blocks
from trading_assets.domain import calendar
from trading_assets.domain.agents import enabled_trained, trained_variants
from trading_assets.domain.agents.trained import NOT_TRAINED, finite_scores, lookback_sessions, predict_family, scores_to_outputs
from trading_assets.domain.models import oos, promotion, training
from trading_assets.domain.models.normalize import rank_gauss
from trading_assets.settings import Settings
from trading_assets.store import model_store
from trading_assets.store.warehouse import Warehouse

SCORE_SCHEMA = {
    "date": pl.Date, "symbol": pl.String, "agent": pl.String, "score": pl.Float64, "model_version": pl.String,
    "train_date": pl.Date, "ewma_vol_20": pl.Float64, "vol_20": pl.Float64, "reason": pl.String, "agent_version": pl.String,
}  # fmt: skip


LATENT_SCHEMA = {"date": pl.Date, "symbol": pl.String, "agent": pl.String, "model_version": pl.String, "z": pl.List(pl.Float64)}


def serving_runs(wh: Warehouse, end: date) -> pl.DataFrame:
    """Every TRAINED model_training_runs row up to `end` (agent, date, model_version, artifact, sha256)."""
    return wh.read(
        "SELECT agent, date, model_version, artifact_path, artifact_sha256 FROM model_training_runs "
        "WHERE status = 'TRAINED' AND date <= ? ORDER BY agent, date",
        [end],
    )


def serving_schedule(runs: pl.DataFrame, sessions: Sequence[date], agents: Sequence[str]) -> pl.DataFrame:
    """(date, agent) -> the serving run (train_date, model_version, artifact_path, artifact_sha256); null when none."""
    grid = pl.DataFrame({"date": list(sessions)}, schema={"date": pl.Date}).join(
        pl.DataFrame({"agent": list(agents)}, schema={"agent": pl.String}), how="cross"
    ).sort("agent", "date")
    r = runs.rename({"date": "train_date"}).with_columns(pl.col("train_date").cast(pl.Date)).sort("agent", "train_date")
    return grid.join_asof(r, left_on="date", right_on="train_date", by="agent", strategy="backward", check_sortedness=False)


def latent_lists(z: np.ndarray) -> pl.Series:
    """(n, k) latents -> a List(Float64) Series, null where a row is not all finite (no Python loop over rows)."""
    ok = np.isfinite(z).all(axis=1)
    lists = pl.Series("z", np.ascontiguousarray(z, dtype=np.float64)).cast(pl.List(pl.Float64))
    return pl.select(z=pl.when(pl.Series(ok)).then(lists)).to_series()


def score_window(wh: Warehouse, settings: Settings, sessions: list[date], tradable: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pass 1: one row per (session, tradable symbol with features, variant) (SCORE_SCHEMA), and the
    latents z_t of the families that produce them (LATENT_SCHEMA: the encoder serving t)."""
    pairs = trained_variants(enabled_trained(settings.agents), settings.models)
    models = settings.models
    folder = data_folder(wh)
    schedule = serving_schedule(serving_runs(wh, sessions[-1]), sessions, [v.name for _, v in pairs])
    if schedule["model_version"].is_not_null().any():
        cols = model_feature_columns(models)
        check_feature_columns(wh, cols, "the trained agents")
    else:  # no model serves the window yet: silent NOT_TRAINED rows need only the keys and the volatility
        cols = ["ewma_vol_20", "vol_20"]
    cache: dict[str, bytes] = {}
    out = []
    latents = []
    back = max([lookback_sessions(a, v) for a, v in pairs] + [0]) if len(cols) > 2 else 0
    # the sessions before a block are read for the sequence families only: their features alone (rank-gauss is
    # per column and session, so these columns' values are the same as in a read of every column)
    wanted = {f for a, v in pairs if lookback_sessions(a, v) > 0 for f in a.features(models)}
    seq_cols = [c for c in cols if c in wanted]
    for lo, hi in session_blocks(sessions, max(1, len(tradable))):
        raw = wh.read_window("features", lo, hi, symbols=tradable, columns=["date", "symbol", *cols], order_by="date, symbol")
        if raw.height == 0:
            continue
        vol = raw.select("date", "symbol", pl.col("ewma_vol_20").cast(pl.Float64), pl.col("vol_20").cast(pl.Float64))
        x = rank_gauss(raw, cols) if len(cols) > 2 else raw
        del raw
        before = None
        if back > 0:  # the sessions a sequence family reads before the block (normalized per session, as x)
            first = calendar.lookback_start(lo, back)
            if first < lo:
                prior = wh.read_window("features", first, lo - timedelta(days=1), symbols=tradable, columns=["date", "symbol", *seq_cols],
                                       order_by="date, symbol")  # fmt: skip
                own = x.select("date", "symbol", *seq_cols)
                before = pl.concat([rank_gauss(prior, seq_cols), own], how="vertical_relaxed") if prior.height else own
            else:
                before = x.select("date", "symbol", *seq_cols)
        sched = schedule.filter((pl.col("date") >= lo) & (pl.col("date") <= hi))
        for agent, variant in pairs:
            s = sched.filter(pl.col("agent") == variant.name)
            keys = x.select("date", "symbol").join(s, on="date", how="left")
            parts = []
            for (version,), g in keys.group_by("model_version", maintain_order=True):
                if version is None:
                    parts.append(g.with_columns(score=pl.lit(None, pl.Float64), reason=pl.lit(f"{NOT_TRAINED}: no trained model serves this session")))
                    continue
                path, sha = g["artifact_path"][0], g["artifact_sha256"][0]
                if version not in cache:
                    cache[version] = model_store.load_artifact(folder, path, sha)
                rows = x.join(g.select("date", "symbol"), on=["date", "symbol"], how="semi")
                need = lookback_sessions(agent, variant)
                history = None
                if need > 0:
                    first_needed = calendar.lookback_start(rows["date"].min(), need)
                    history = before.filter((pl.col("date") >= first_needed) & (pl.col("date") <= rows["date"].max()))
                    history = history.select("date", "symbol", *agent.features(models))
                try:
                    score, z = predict_family(agent, cache[version], rows, variant, models, history)
                except ValueError as exc:  # e.g. a cut or damaged artifact whose sha256 was not recorded: name the file
                    raise model_store.ModelArtifactError(
                        f"model artifact {folder / path} ({variant.name} {version}) cannot be scored: {exc}"
                    ) from exc
                if z is not None:
                    latents.append(rows.select("date", "symbol").with_columns(
                        agent=pl.lit(variant.name), model_version=pl.lit(version), z=latent_lists(z),
                    ))  # fmt: skip
                parts.append(finite_scores(g.join(rows.select("date", "symbol").with_columns(score=pl.Series(score, dtype=pl.Float64)),
                                                  on=["date", "symbol"])))  # fmt: skip
            block = pl.concat(parts, how="diagonal_relaxed").join(vol, on=["date", "symbol"], how="left")
            out.append(block.with_columns(agent=pl.lit(variant.name), agent_version=pl.lit(f"{agent.name}@{agent.version}")).select(list(SCORE_SCHEMA)).cast(SCORE_SCHEMA))  # type: ignore[arg-type]
    lat = pl.concat(latents).filter(pl.col("z").is_not_null()).sort("date", "symbol", "agent") if latents else pl.DataFrame(schema=LATENT_SCHEMA)
    if not out:
        return pl.DataFrame(schema=SCORE_SCHEMA), lat
    return pl.concat(out).sort("date", "symbol", "agent"), lat


def past_scores(wh: Warehouse, first: date, before: date, agents: list[str]) -> pl.DataFrame:
    if not table_exists(wh, "model_outputs"):
        return pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "agent": pl.String, "score": pl.Float64})
    return wh.read(
        "SELECT date, symbol, agent, score FROM model_outputs WHERE date >= ? AND date < ? AND score IS NOT NULL "
        "AND agent IN (SELECT unnest(?::VARCHAR[])) ORDER BY date, symbol, agent",
        [first, before, agents],
    )


def last_champions(wh: Warehouse, before: date) -> dict[str, str]:
    rows = wh.read(
        "SELECT family, champion FROM model_promotions WHERE date < ? QUALIFY row_number() OVER (PARTITION BY family ORDER BY date DESC) = 1",
        [before],
    )
    return dict(rows.iter_rows())


def trained_outputs(wh: Warehouse, settings: Settings, sessions: list[date], tradable: list[str], run_id: str) -> dict:
    """Passes 1-4 for the window `sessions`: {"outputs", "versions", "promotions", "daily_ic"} frames."""
    models = settings.models
    pairs = trained_variants(enabled_trained(settings.agents), models)  # minus settings.agents.disabled
    names = [v.name for _, v in pairs]
    family_agents = {a.name: a for a, _ in pairs}
    families: dict[str, list[str]] = {}
    for a, v in pairs:
        families.setdefault(a.name, []).append(v.name)
    start, end = sessions[0], sessions[-1]
    scores, latents = score_window(wh, settings, sessions, tradable)
    lookback = calendar.lookback_start(start, max(models.ic_window, models.promotion_window) + models.horizon + 3)
    history = pl.concat([past_scores(wh, lookback, start, names), scores.select("date", "symbol", "agent", "score").filter(pl.col("score").is_not_null())])
    labels = read_labels(wh, lookback, end, tradable, models.horizon)
    daily = oos.daily_rank_ic(history, labels, source="agent")
    # pass 3: promotions at the training sessions of the window
    champions = last_champions(wh, start)
    promos = []
    role_rows = []
    for t in sessions:
        if training.is_training_session(t, models) or any(f not in champions for f in families):
            for fam, variants in families.items():
                if training.is_training_session(t, models) or fam not in champions:
                    agent = family_agents[fam]
                    if getattr(agent, "starts_as_shadow", False):  # a deep family: enters only by beating its incumbent
                        d = promotion.decide_shadow_family(
                            fam, variants, champions.get(fam), champions.get(getattr(agent, "incumbent", "")), daily, t, models
                        )
                    else:
                        d = promotion.decide(fam, variants, champions.get(fam), daily, t, models)
                    champions[fam] = d["champion"]
                    promos.append({**d, "run_id": run_id})
        for fam, variants in families.items():
            for v in variants:
                role_rows.append((t, v, fam, "champion" if v == champions[fam] else "shadow"))
    roles = pl.DataFrame(role_rows, schema={"date": pl.Date, "agent": pl.String, "family": pl.String, "role": pl.String}, orient="row")
    calib = oos.rolling_ic_asof(daily, sessions, models.ic_window, models.ic_min_sessions, source="agent")
    scored = scores.join(roles.select("date", "agent", "role"), on=["date", "agent"], how="left")
    outputs = scores_to_outputs(scored, calib, settings.agents, models)
    served = scores.group_by("date", "agent").agg(pl.col("model_version").first(), pl.col("train_date").first())
    versions = roles.join(served, on=["date", "agent"], how="left").with_columns(run_id=pl.lit(run_id)).select(
        "date", "agent", "family", "role", "model_version", "train_date", "run_id"
    ).sort("date", "agent")
    promo_schema = {"date": pl.Date, "family": pl.String, "champion": pl.String, "previous": pl.String, "action": pl.String,
                    "best_challenger": pl.String, "t_stat": pl.Float64, "n_sessions": pl.Int32, "champion_ic": pl.Float64,
                    "challenger_ic": pl.Float64, "details": pl.String, "run_id": pl.String}  # fmt: skip
    return {
        "outputs": outputs,
        "versions": versions,
        "promotions": pl.DataFrame(promos, schema=promo_schema),
        "calibration": calib,
        "latents": latents,
    }


def _champion_nullable(wh: Warehouse) -> None:
    """Warehouses created before the deep families: model_promotions.champion was NOT NULL (a shadow
    family has no champion)."""
    row = wh.read("SELECT is_nullable FROM information_schema.columns WHERE table_name = 'model_promotions' AND column_name = 'champion'")
    if row.height and row["is_nullable"][0] == "NO":
        with wh.connect() as con:
            con.execute("ALTER TABLE model_promotions ALTER COLUMN champion DROP NOT NULL")


def write_model_tables(wh: Warehouse, settings: Settings, trained: dict, start: date, end: date, run_id: str) -> dict:
    """Replace the window's model_versions and model_promotions rows, append every promotion to audit_log,
    point the MLflow aliases at the current champion / best challenger; returns the asset's metadata."""
    import dagster as dg

    versions, promos = trained["versions"], trained["promotions"]
    wh.replace_window("model_versions", versions, start, end)
    _champion_nullable(wh)
    wh.replace_window("model_promotions", promos, start, end)
    wh.replace_window("latents", trained["latents"], start, end)
    changes = promos.filter(pl.col("action") == "promote")
    if changes.height:
        wh.append_audit([
            {"event_type": "model_promotion", "run_id": run_id, "date": r["date"],
             "payload": {"family": r["family"], "champion": r["champion"], "demoted": r["previous"], "t_stat": r["t_stat"],
                         "n_sessions": r["n_sessions"], "champion_ic": r["champion_ic"], "challenger_ic": r["challenger_ic"]}}
            for r in changes.iter_rows(named=True)
        ])  # fmt: skip
    last = versions.filter(pl.col("date") == end)
    aliases = {}
    # the aliases move only when a version or a role can: a training session in the window or a promotion (opening
    # MLflow costs seconds, and a daily run between two training sessions would only set the same aliases again)
    moved = promos.height > 0 or bool(training.training_sessions(start, end, settings.models))
    if settings.models.mlflow and moved and last.filter(pl.col("model_version").is_not_null()).height:
        from trading_assets.store.mlflow_registry import MlflowRegistry

        reg = MlflowRegistry(data_folder(wh))
        for (fam,), g in last.group_by("family", maintain_order=True):
            champ = g.filter(pl.col("role") == "champion")["model_version"].first()
            shadows = g.filter((pl.col("role") == "shadow") & pl.col("model_version").is_not_null())
            best = promos.filter(pl.col("family") == fam)["best_challenger"].drop_nulls().last() if promos.height else None
            chal = shadows.filter(pl.col("agent") == best)["model_version"].first() if best else shadows["model_version"].first()
            aliases[fam] = reg.set_aliases(fam, champ, chal)
    return {
        "trained_models_last_session": dg.MetadataValue.json(
            {r["agent"]: {"role": r["role"], "version": r["model_version"], "trained": str(r["train_date"]) if r["train_date"] else None}
             for r in last.iter_rows(named=True)}
        ),  # fmt: skip
        "promotions": dg.MetadataValue.json(
            [{"date": str(r["date"]), "family": r["family"], "action": r["action"], "champion": r["champion"], "previous": r["previous"],
              "t_stat": None if r["t_stat"] is None else round(r["t_stat"], 3)} for r in promos.iter_rows(named=True)][-50:]
        ),  # fmt: skip
        "promoted": changes.height,
        "mlflow_aliases": dg.MetadataValue.json(aliases),
    }
