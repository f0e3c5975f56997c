"""model_training and the trained agents in agent_outputs, materialized through Dagster on a real DuckDB file:
walk-forward retrains inside a range run exactly as daily runs would, roles and versions recorded,
artifacts checked, MLflow's real local registry, a corrupt artifact fails the run naming the file."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from trading_assets.defs import models as model_defs
from trading_assets.defs import signals as sig_defs
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain.models import training
from trading_assets.settings import load_settings
from trading_assets_tests.models.fixtures import market

FIRST, LAST = date(2024, 1, 2), date(2025, 1, 31)
WINDOW = (date(2024, 10, 1), date(2025, 1, 31))
ASSETS = [model_defs.model_training, sig_defs.agent_outputs]


# shadow_cadence_multiple 2: the 4-month window holds two trainings of a challenger (the default, 6, would hold at most one)
MODELS = {"min_train_sessions": 120, "max_train_rows": 3_000, "mlflow": False, "ic_min_sessions": 10, "promotion_min_sessions": 20,
          "shadow_cadence_multiple": 2}


def _settings(mlflow: bool = False):
    s = load_settings()
    return s.replace(models=dataclasses.replace(s.models, **{**MODELS, "mlflow": mlflow}))


def fill(wh, n_symbols: int = 12) -> None:
    f, lab = market(FIRST, LAST, n_symbols=n_symbols)
    syms = sorted(f["symbol"].unique().to_list())
    wh.replace_table("universe", pl.DataFrame({
        "symbol": [*syms, "SPY"], "name": [*syms, "spy"], "sector": ["Tech"] * len(syms) + ["Index"],
        "is_benchmark": [False] * len(syms) + [True], "source_file": ["test"] * (len(syms) + 1)}))  # fmt: skip
    cols = [c for c in f.columns if c not in ("date", "symbol", "feature_version")]
    wh.ensure_columns("features", {c: "DOUBLE" for c in cols})
    f = f.with_columns(history_rows=pl.lit(300, pl.Int32), quality_flagged=pl.lit(False), benchmark_available=pl.lit(True))
    wh.replace_window("features", f, FIRST, LAST)
    dq = f.select("date", "symbol").with_columns(score=pl.lit(1.0), passed=pl.lit(True), reason_codes=pl.lit([], pl.List(pl.String)))
    wh.replace_window("data_quality_log", dq, FIRST, LAST)
    wh.replace_window("labels", lab.select("date", "symbol", "horizon", "entry_date", "exit_date", "known_at", "fwd_return", "bench_return",
                                           "universe_return", "excess_return", "valid", "reason", "run_id"), FIRST, LAST)  # fmt: skip


def _resources(wh, mlflow: bool = False) -> dict:
    return {
        "warehouse": WarehouseResource(db_path=str(wh.db_path), audit_dir=str(wh.audit_dir)),
        "pipeline": PipelineConfig(settings_overrides={"models": {**MODELS, "mlflow": mlflow}}),
    }


def _range(a: date, b: date) -> dict:
    return {"dagster/asset_partition_range_start": str(a), "dagster/asset_partition_range_end": str(b)}


def _runs(wh) -> pl.DataFrame:
    return wh.read("SELECT * EXCLUDE (run_id, fit_seconds, mlflow_run_id) FROM model_training_runs ORDER BY date, agent")


def _trained_rows(wh) -> pl.DataFrame:
    return wh.read("SELECT * EXCLUDE (run_id) FROM model_outputs WHERE role <> 'heuristic' ORDER BY date, symbol, agent")


def test_range_run_retrains_inside_the_walk_like_daily_runs(warehouse, tmp_path):
    wh = warehouse
    fill(wh)
    ranged = dg.materialize(ASSETS, tags=_range(*WINDOW), resources=_resources(wh))
    assert ranged.success
    days = training.training_sessions(*WINDOW, _settings().models)
    runs = _runs(wh)
    assert sorted(set(runs["date"])) == days and len(days) >= 4
    assert set(runs["status"]) == {training.TRAINED}
    # the purge: the last label date of every training is two sessions before it
    for r in runs.iter_rows(named=True):
        assert r["last_label_date"] == calendar.lookback_start(r["date"], 2)
        assert (Path(wh.db_path).parent / r["artifact_path"]).exists()
    # the version serving a session is the latest training at or before it
    mv = wh.read("SELECT * FROM model_versions WHERE agent = 'gbm_cross_section' ORDER BY date")
    first = mv.filter(pl.col("date") < days[0])
    assert first["model_version"].null_count() == first.height  # before the first training: NOT_TRAINED
    served = mv.filter(pl.col("date") >= days[0]).join(
        runs.filter(pl.col("agent") == "gbm_cross_section").select(train_date="date", v="model_version"), on="train_date")
    assert served.height == mv.filter(pl.col("date") >= days[0]).height and (served["model_version"] == served["v"]).all()
    out = _trained_rows(wh)
    early = out.filter(pl.col("date") < days[0])
    assert (early["confidence"] == 0).all() and early["explanation"].str.contains("NOT_TRAINED").all()
    late = out.filter((pl.col("date") == WINDOW[1]) & (pl.col("agent") == "gbm_cross_section"))
    assert (late["role"] == "champion").all() and (late["confidence"] > 0).all()  # the planted signal was learned and earned
    assert set(out.filter(pl.col("agent").str.contains(r"\."))["role"]) == {"shadow"}
    meta = ranged.asset_materializations_for_node("model_training")[0].metadata
    from trading_assets.domain.agents import TRAINED_AGENTS
    from trading_assets.domain.agents.trained import cadence_multiple

    m = _settings().models  # every variant at its own training sessions: champions every cadence, challengers and deep every few
    expected = sum(1 for a in TRAINED_AGENTS for v in a.variants(m) for t in days if training.is_training_session(t, m, cadence_multiple(a, m, v)))
    assert meta["trained"].value == expected == runs.height >= 3 * len(days)
    shadow_days = sorted(set(runs.filter(pl.col("agent") == "gbm_ranker.shallow")["date"]))
    assert shadow_days == [t for t in days if training.session_index(t, m.anchor) % (m.cadence * m.shadow_cadence_multiple) == 0]
    assert 0 < len(shadow_days) < len(days) and sorted(set(runs.filter(pl.col("agent") == "gbm_ranker")["date"])) == days

    # validation IC = the previous version's OOS rank IC (the scores agent_outputs served) over its last <= cadence
    # sessions with labels known at t: every session it served for a champion, the last cadence for a challenger
    from trading_assets.domain.models import oos

    labels = wh.read("SELECT date, symbol, known_at, fwd_return, valid FROM labels WHERE horizon = 1")
    for agent in ("gbm_cross_section", "gbm_ranker.shallow"):
        mine = runs.filter(pl.col("agent") == agent).sort("date")
        prev_t, t = mine["date"][0], mine["date"][1]
        lo = max(prev_t, calendar.lookback_start(t, m.cadence))
        assert (lo == prev_t) == (agent == "gbm_cross_section")
        sc = out.filter((pl.col("agent") == agent) & (pl.col("date") >= lo) & (pl.col("date") < t)).select("date", "symbol", "agent", "score")
        d = oos.daily_rank_ic(sc, labels.filter(pl.col("known_at") <= t), source="agent")
        assert mine["val_sessions"][1] == d.height == len([s for s in calendar.sessions(lo, t)[:-1] if calendar.lookback_start(t, 2) >= s])
        assert mine["val_rank_ic"][1] == pytest.approx(d["rank_ic"].mean(), rel=1e-12)

    # the same sessions as daily / shorter runs on a fresh warehouse: identical runs, versions, outputs, files
    from trading_assets.store.warehouse import Warehouse

    other = Warehouse(tmp_path / "other" / "trading.duckdb", tmp_path / "other" / "audit")
    other.ensure_schema()
    fill(other)
    sessions = calendar.sessions(*WINDOW)
    cut = sessions.index(days[2])
    assert dg.materialize(ASSETS, tags=_range(sessions[0], sessions[cut - 1]), resources=_resources(other)).success
    for d in sessions[cut : cut + 2]:
        assert dg.materialize(ASSETS, partition_key=str(d), resources=_resources(other)).success
    assert dg.materialize(ASSETS, tags=_range(sessions[cut + 2], sessions[-1]), resources=_resources(other)).success
    assert _runs(other).equals(runs)
    assert _trained_rows(other).equals(out)
    for r in runs.iter_rows(named=True):
        assert (Path(other.db_path).parent / r["artifact_path"]).read_bytes() == (Path(wh.db_path).parent / r["artifact_path"]).read_bytes()

    # a non-training session is a no-op with metadata
    quiet = next(d for d in sessions if d not in days)
    r = dg.materialize([model_defs.model_training], partition_key=str(quiet), resources=_resources(wh))
    m = r.asset_materializations_for_node("model_training")[0].metadata
    assert m["trained"].value == 0 and "no training session" in m["no_op"].value

    # a corrupt artifact: the run fails naming the file, before writing any output
    victim = runs.filter(pl.col("agent") == "gbm_ranker")["artifact_path"][-1]
    original = (Path(wh.db_path).parent / victim).read_bytes()
    (Path(wh.db_path).parent / victim).write_bytes(b"garbage")
    before = wh.table_hash("model_outputs")
    bad = dg.materialize([sig_defs.agent_outputs], partition_key=str(WINDOW[1]), resources=_resources(wh), raise_on_error=False)
    assert not bad.success
    failure = [e for e in bad.all_events if e.event_type_value == "STEP_FAILURE"][0].event_specific_data.error
    text = failure.to_string() + (failure.cause.to_string() if failure.cause else "")
    assert victim in text and "corrupt" in text
    assert wh.table_hash("model_outputs") == before
    # a cut artifact whose sha256 was not recorded: still a failure naming the file, never a score from the trees left
    (Path(wh.db_path).parent / victim).write_bytes(original[: len(original) // 2])
    with wh.connect() as con:
        con.execute("UPDATE model_training_runs SET artifact_sha256 = NULL WHERE artifact_path = ?", [victim])
    cut_run = dg.materialize([sig_defs.agent_outputs], partition_key=str(WINDOW[1]), resources=_resources(wh), raise_on_error=False)
    assert not cut_run.success
    failure = [e for e in cut_run.all_events if e.event_type_value == "STEP_FAILURE"][0].event_specific_data.error
    text = failure.to_string() + (failure.cause.to_string() if failure.cause else "")
    assert victim in text and "cannot be scored" in text and "end of trees" in text, text[-2000:]
    assert wh.table_hash("model_outputs") == before
    # the same for the validation IC of a training session, which scores the version serving before it: a cut text
    # is an error naming the file whatever the row count (LightGBM's loader would abort the whole process on it)
    ranker = runs.filter((pl.col("agent") == "gbm_ranker") & (pl.col("date") < days[-1])).sort("date")
    prev_path = ranker["artifact_path"][-1]
    prev_bytes = (Path(wh.db_path).parent / prev_path).read_bytes()
    (Path(wh.db_path).parent / prev_path).write_bytes(prev_bytes[: len(prev_bytes) // 2])
    with wh.connect() as con:
        con.execute("UPDATE model_training_runs SET artifact_sha256 = NULL WHERE artifact_path = ?", [prev_path])
    retrain = dg.materialize([model_defs.model_training], partition_key=str(days[-1]), resources=_resources(wh), raise_on_error=False)
    assert not retrain.success
    failure = [e for e in retrain.all_events if e.event_type_value == "STEP_FAILURE"][0].event_specific_data.error
    text = failure.to_string() + (failure.cause.to_string() if failure.cause else "")
    assert prev_path in text and "validation IC" in text and "end of trees" in text, text[-2000:]


def test_meta_brain_calibration_by_each_agents_rolling_oos_ic(warehouse):
    """The shipped calibration (settings defaults: on, 252 sessions, min 63, t-shrunk, held between cadence
    sessions) through meta_decisions on a real DuckDB: one factor by hand, held between cadence sessions,
    and point in time (labels and scores after the calibration session changed: same factors)."""
    from trading_assets.defs import calibration as cal_defs
    from trading_assets.defs import decisions as dec_defs
    from trading_assets.domain.models import oos

    wh = warehouse
    fill(wh, n_symbols=10)
    res = _resources(wh)
    assert dg.materialize(ASSETS, tags=_range(date(2024, 6, 3), LAST), resources=res).success
    s = _settings()
    cad = cal_defs.cadence_sessions(*WINDOW, s)
    u, nxt = cad[-2], cad[-1]
    a, b = calendar.previous_session(u), calendar.previous_session(nxt)  # [a, b] spans two calibration sessions
    assert s.meta.calibrate and s.meta.calibration_window == 252 and s.meta.calibration_min_sessions == 63  # the shipped defaults
    assert dg.materialize([dec_defs.meta_decisions], tags=_range(a, b), resources=res).success
    cal = wh.read("SELECT * FROM agent_calibration ORDER BY date, agent")
    from trading_assets.domain.agents import AGENTS, TRAINED_AGENTS

    # every registered heuristic/statistical agent and each non-shadow family's champion; shadows never
    champions = {a.name for a in TRAINED_AGENTS if not getattr(a, "starts_as_shadow", False)}
    assert set(cal["agent"]) == {a.name for a in AGENTS} | champions
    # held: every session from u to b uses the factors computed at u; the session before u those of the previous one
    assert set(cal.filter(pl.col("date") >= u)["as_of"]) == {u} and set(cal.filter(pl.col("date") == a)["as_of"]) == {cad[-3]}
    assert cal.filter(pl.col("date") >= u).group_by("agent").agg(pl.col("factor").n_unique())["factor"].max() == 1
    # one factor by hand: the champion's daily rank IC of its raw score over the labels known at u, the last 252
    sc = wh.read("SELECT date, symbol, agent, score FROM model_outputs WHERE agent = 'gbm_cross_section' AND score IS NOT NULL AND date <= ?", [u])
    lab = wh.read("SELECT date, symbol, known_at, fwd_return, valid FROM labels WHERE horizon = 1 AND known_at <= ?", [u])
    d = oos.daily_rank_ic(sc, lab, source="agent", score="score").sort("known_at", "date")
    v = d.filter(pl.col("known_at") > calendar.lookback_start(u, 252))["rank_ic"].to_numpy()  # known in the last 252 sessions
    n, mean, sd = len(v), v.mean(), v.std(ddof=1)
    t = mean / (sd / n**0.5)
    shrunk = mean * (1 - 1 / t**2) if mean > 0 and t > 1 else 0.0
    row = cal.filter((pl.col("date") == b) & (pl.col("agent") == "gbm_cross_section")).row(0, named=True)
    assert row["ic_n"] == n >= 63 and row["ic_mean"] == pytest.approx(mean, abs=1e-12) and row["ic_t"] == pytest.approx(t, rel=1e-9)
    assert row["ic_shrunk"] == pytest.approx(shrunk, abs=1e-12) and row["factor"] == pytest.approx(min(1.0, shrunk / 0.02), abs=1e-12)
    assert row["factor"] > 0  # the planted signal earned it
    # explain names the factors the Meta-Brain used and the calibration session they were computed at
    from trading_assets.explain import explain, render_text

    x = explain(wh, b, "S00", s)
    assert x["versions"]["confidence_calibration"]["gbm_cross_section"]["factor"] == pytest.approx(row["factor"])
    assert f"as of {u}" in render_text(x)
    # point in time: change every label known after u and every score after u -> the factors of [u, b] are the same
    sessions = calendar.sessions(u, b)
    syms = wh.read("SELECT symbol FROM universe ORDER BY symbol")["symbol"].to_list()
    before = cal_defs.window_factors(wh, s, sessions, syms, ["SPY"])
    with wh.connect() as con:
        con.execute("UPDATE labels SET fwd_return = -3 * fwd_return + 0.01 WHERE known_at > ?", [u])
        con.execute("UPDATE model_outputs SET score = -score, mu = -mu WHERE date > ?", [u])
    after = cal_defs.window_factors(wh, s, sessions, syms, ["SPY"])
    assert after.equals(before) and before.height > 0
    assert before.drop("as_of").equals(cal.filter(pl.col("date") >= u).select(list(before.columns)).drop("as_of"))
    # the same factors whatever a run read before: a range run from months earlier and a run of u alone read from
    # different sessions (with a 63-session window both reads start after this market's first session) and agree to
    # the last bit (range == daily with calibration on; running sums over the read would not)
    s63 = s.with_overrides({"meta": {"calibration_window": 63, "calibration_min_sessions": 21}})
    long = cal_defs.window_factors(wh, s63, calendar.sessions(date(2024, 6, 3), b), syms, ["SPY"]).filter(pl.col("date") >= u)
    alone = cal_defs.window_factors(wh, s63, [u], syms, ["SPY"])
    assert alone.height > 0 and (alone["factor"] > 0).any()
    assert alone.equals(long.filter(pl.col("date") == u))
    # ...while a label known at u does move them
    with wh.connect() as con:
        con.execute("UPDATE labels SET fwd_return = -fwd_return WHERE known_at = ?", [u])
    moved = cal_defs.window_factors(wh, s, sessions, syms, ["SPY"])
    assert not moved["ic_mean"].equals(before["ic_mean"])
    # a later run inside [u, b] (a daily run at b) reads u's factors from agent_calibration's own rows of u instead
    # of recomputing a year of daily ICs: the stored ones, not the `moved` ones (the data of u was changed behind its back)
    daily_b = cal_defs.window_factors(wh, s, [b], syms, ["SPY"])
    assert daily_b.drop("date").equals(before.filter(pl.col("date") == b).drop("date"))


def test_mlflow_registry_records_runs_versions_and_aliases(warehouse, monkeypatch):
    wh = warehouse
    fill(wh, n_symbols=8)
    days = training.training_sessions(*WINDOW, _settings().models)
    # never the network: any non-loopback connection fails the test
    import socket

    real = socket.socket.connect

    def guarded(self, addr):
        if isinstance(addr, tuple) and addr[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access to {addr}")
        return real(self, addr)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    assert dg.materialize(ASSETS, tags=_range(days[0], days[1]), resources=_resources(wh, mlflow=True)).success
    from mlflow import MlflowClient

    uri = f"sqlite:///{Path(wh.db_path).parent / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = wh.read("SELECT * FROM model_training_runs ORDER BY date, agent")
    assert runs["mlflow_run_id"].null_count() == 0
    r = client.get_run(runs["mlflow_run_id"][0])
    assert r.data.params["model_version"] == runs["model_version"][0]
    assert r.data.params["purge_sessions"] == "2" and "is_rank_ic" in r.data.metrics
    champ = client.get_model_version_by_alias("gbm_cross_section", "champion")
    last = runs.filter((pl.col("agent") == "gbm_cross_section") & (pl.col("date") == days[1]))["model_version"][0]
    assert champ.tags["model_version"] == last
    chal = client.get_model_version_by_alias("gbm_cross_section", "challenger")
    assert chal.tags["agent"] == "gbm_cross_section.sliding3y"


def test_latent_lists_are_the_rows_with_non_finite_rows_null():
    from trading_assets.defs.trained_outputs import latent_lists

    z = np.array([[0.5, -1.25, 3.0], [np.nan, 1.0, 2.0], [1.0, np.inf, 0.0], [1e-300, -0.0, 7.0]])
    got = latent_lists(z)
    assert got.dtype == pl.List(pl.Float64) and got.to_list() == [[0.5, -1.25, 3.0], None, None, [1e-300, -0.0, 7.0]]
    assert latent_lists(np.zeros((0, 3))).len() == 0
