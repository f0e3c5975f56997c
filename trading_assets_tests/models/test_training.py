"""Walk-forward training (domain/models): cadence, purge and embargo by construction and by perturbation,
determinism, NOT_TRAINED, rank-gauss by hand, the artifact store's errors."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy.special import ndtri

from trading_assets.defs.models import model_feature_columns
from trading_assets.domain import calendar
from trading_assets.domain.agents import TRAINED_AGENTS, trained_variants
from trading_assets.domain.models import training
from trading_assets.domain.models.fit import train_variant
from trading_assets.domain.models.normalize import rank_gauss
from trading_assets.settings import ModelSettings
from trading_assets.store import model_store
from trading_assets_tests.models.fixtures import market

SETTINGS = ModelSettings(min_train_sessions=100, max_train_rows=4_000)
START = date(2020, 1, 2)
T = date(2020, 12, 1)


@pytest.fixture(scope="module")
def data():
    f, lab = market(START, date(2021, 3, 31), n_symbols=20)
    return rank_gauss(f, model_feature_columns(SETTINGS)), lab


def test_cadence_is_counted_from_the_anchor_not_the_window():
    s = ModelSettings()
    days = calendar.sessions(date(2019, 1, 1), date(2019, 12, 31))
    daily = [d for d in days if training.is_training_session(d, s)]
    # one range run and many daily runs retrain on the same sessions
    assert training.training_sessions(date(2019, 1, 1), date(2019, 12, 31), s) == daily
    assert training.training_sessions(date(2019, 3, 5), date(2019, 7, 1), s) == [d for d in daily if date(2019, 3, 5) <= d <= date(2019, 7, 1)]
    # every 21 sessions exactly
    idx = [days.index(d) for d in daily]
    assert set(np.diff(idx)) == {21}
    assert all(len(calendar.sessions(s.anchor, d)) % 21 == 1 for d in daily)  # the anchor itself is session 0
    assert training.last_training_session(daily[2], s) == daily[2]
    assert training.last_training_session(calendar.next_session(daily[2]), s) == daily[2]
    later = ModelSettings(first_training=daily[3])
    assert [d for d in days if training.is_training_session(d, later)] == daily[3:]


def test_purge_by_construction(data):
    features, labels = data
    w = training.training_window(T, START, SETTINGS)
    # t - h - purge_extra sessions = two sessions before t
    assert w.last == calendar.previous_session(calendar.previous_session(T))
    rows = training.training_rows(features, labels, w)
    assert rows["date"].max() == w.last
    known = labels.join(rows.select("date", "symbol"), on=["date", "symbol"])
    assert known["known_at"].max() <= T
    # a label row that breaks the contract (known after t although its date is inside the window) never leaks
    leak = labels.filter(pl.col("date") == w.last).with_columns(known_at=pl.lit(calendar.next_session(T)))
    bad = pl.concat([labels.filter(pl.col("date") != w.last), leak])
    rows2 = training.training_rows(features, bad, w)
    assert rows2["date"].max() < w.last
    # nor does a label known at t whose decision date is inside the purge gap
    gap = labels.filter(pl.col("date") == calendar.previous_session(T)).with_columns(known_at=pl.lit(T))
    rows3 = training.training_rows(features, pl.concat([labels.filter(pl.col("date") != calendar.previous_session(T)), gap]), w)
    assert rows3["date"].max() == w.last
    # sliding window: first decision date = t - N years
    ws = training.training_window(T, START, SETTINGS, window_years=1)
    assert ws.first == date(2019, 12, 1) if START < date(2019, 12, 1) else ws.first == START
    assert training.training_window(date(2021, 3, 1), START, SETTINGS, window_years=1).first == date(2020, 3, 1)


def test_thin_keeps_whole_sessions_and_the_last_one(data):
    features, labels = data
    rows = training.training_rows(features, labels, training.training_window(T, START, SETTINGS))
    thin, k = training.thin_sessions(rows, 1_000)
    assert k == -(-rows.height // 1_000)
    assert thin["date"].max() == rows["date"].max()
    per = thin.group_by("date").len()["len"]
    assert per.min() == per.max() == 20  # sessions never split


@pytest.mark.parametrize("pair", range(len(trained_variants(TRAINED_AGENTS, SETTINGS))))
def test_a_model_trained_at_t_ignores_everything_after_t_and_is_deterministic(data, pair):
    features, labels = data
    agent, variant = trained_variants(TRAINED_AGENTS, SETTINGS)[pair]
    if variant.params_dict().get("num_leaves") == 7 or variant.window_years:  # one LightGBM challenger is enough for time
        pytest.skip("same code path as its champion")
    a = train_variant(agent, variant, T, features, labels, START, "fv", SETTINGS, 7)
    b = train_variant(agent, variant, T, features, labels, START, "fv", SETTINGS, 7)
    assert a.status == training.TRAINED and a.artifact == b.artifact and a.version == b.version
    # perturb every price-derived row after t: features of later sessions, labels realized after t
    rng = np.random.default_rng(11)
    later = pl.col("date") > T
    cols = [c for c in features.columns if c not in ("date", "symbol")]
    f2 = features.with_columns([pl.when(later).then(pl.lit(rng.standard_normal(), pl.Float32)).otherwise(pl.col(c)).alias(c) for c in cols])
    l2 = labels.with_columns(fwd_return=pl.when(pl.col("known_at") > T).then(pl.col("fwd_return") * -3.0 + 0.05).otherwise(pl.col("fwd_return")))
    c = train_variant(agent, variant, T, f2, l2, START, "fv", SETTINGS, 7)
    assert c.artifact == a.artifact and c.version == a.version
    # ...while a change before the purge gap does change the model
    l3 = labels.with_columns(fwd_return=pl.when(pl.col("date") == a.last_label_date).then(-pl.col("fwd_return")).otherwise(pl.col("fwd_return")))
    assert train_variant(agent, variant, T, features, l3, START, "fv", SETTINGS, 7).version != a.version
    # the model learned the planted signal (rank IC about 0.2 in sample)
    assert a.is_rank_ic > 0.1


def test_one_binned_dataset_shared_by_the_fits_of_a_retrain_gives_the_same_model_files(data):
    """lgbm.dataset bins a training matrix once for every LightGBM fit of it (a speed lever): each fit
    sets its own label and query sizes, so the files are byte-identical to fits on fresh Datasets, in
    any order (a regression after a ranker must not inherit its query sizes)."""
    from trading_assets.domain.models import lgbm

    features, labels = data
    pairs = [(a, v) for a, v in trained_variants(TRAINED_AGENTS, SETTINGS) if a.name in ("gbm_cross_section", "gbm_ranker")
             and not v.window_years]  # the variants of one window: one matrix
    fresh = {}
    for agent, variant in pairs:
        lgbm._binned.clear()
        fresh[variant.name] = train_variant(agent, variant, T, features, labels, START, "fv", SETTINGS, 7).artifact
    lgbm._binned.clear()
    for agent, variant in [*pairs, pairs[0]]:  # the regression again after the rankers
        assert train_variant(agent, variant, T, features, labels, START, "fv", SETTINGS, 7).artifact == fresh[variant.name]
    assert len(lgbm._binned) == 1 and len(pairs) == 3


def test_too_little_history_is_not_trained(data):
    features, labels = data
    agent, variant = trained_variants(TRAINED_AGENTS, SETTINGS)[0]
    r = train_variant(agent, variant, date(2020, 4, 1), features, labels, START, "fv", SETTINGS, 7)
    assert r.status == training.NOT_TRAINED and r.artifact is None and r.version is None
    assert "min_train_sessions=100" in r.reason


def test_rank_gauss_by_hand():
    f = pl.DataFrame({"date": [date(2020, 1, 2)] * 4 + [date(2020, 1, 3)] * 2, "x": [1.0, 5.0, 3.0, None, 2.0, float("nan")]})
    g = rank_gauss(f, ["x"])["x"].to_list()
    expect = [ndtri(0.5 / 3), ndtri(2.5 / 3), ndtri(1.5 / 3), 0.0, ndtri(0.5 / 1), 0.0]
    assert np.allclose(g, expect, atol=1e-6)


def test_artifact_store_names_the_file(tmp_path):
    rel = model_store.artifact_path("fam", "fam.x", "abc")
    model_store.save_artifact(tmp_path, rel, b"model")
    assert model_store.load_artifact(tmp_path, rel, hashlib.sha256(b"model").hexdigest()) == b"model"
    (tmp_path / rel).write_bytes(b"modeX")
    with pytest.raises(model_store.ModelArtifactError, match=r"models/fam/fam.x/abc.model is corrupt"):
        model_store.load_artifact(tmp_path, rel, hashlib.sha256(b"model").hexdigest())
    (tmp_path / rel).unlink()
    with pytest.raises(model_store.ModelArtifactError, match=r"models/fam/fam.x/abc.model is missing"):
        model_store.load_artifact(tmp_path, rel, None)
