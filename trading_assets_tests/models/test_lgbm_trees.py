"""The numpy evaluator of LightGBM models (domain/models/lgbm_trees.py) returns LightGBM's own predictions
bit for bit: forests of the families' objectives (L2 regression, rank_xendcg) and missing-value modes (NaN,
zero as missing, missing off) on inputs with NaN, exact zeros, values below kZeroThreshold and values on
the split thresholds; models it does not reproduce are refused; models/lgbm.predict uses it for a daily
session's rows without importing lightgbm."""

from __future__ import annotations

import os
import subprocess
import sys

import lightgbm as lgb
import numpy as np
import pytest

from trading_assets.domain.models import lgbm, lgbm_trees

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _data(n: int, f: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, f)).astype(np.float32)
    x[rng.random(x.shape) < 0.08] = np.nan
    x[rng.random(x.shape) < 0.05] = 0.0
    y = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 1]) ** 2 + 0.3 * rng.standard_normal(n)
    return x, y


def _probe(model_text: str, x: np.ndarray, seed: int) -> np.ndarray:
    """x plus rows that sit exactly on the model's thresholds, tiny values (|v| <= 1e-35 reads as 0) and NaN."""
    forest = lgbm_trees.parse(model_text)
    rng = np.random.default_rng(seed)
    on = x[:200].astype(np.float64).copy()
    pick = rng.integers(0, forest.threshold.size, size=on.shape[0])
    on[np.arange(on.shape[0]), forest.feature[pick]] = forest.threshold[pick]  # v == threshold: goes left
    tiny = x[:50].astype(np.float64).copy()
    tiny[:, :] = rng.choice([1e-36, -1e-36, 1e-35, 2e-35, 0.0, -0.0, np.nan], size=tiny.shape)
    return np.vstack([x.astype(np.float64), on, tiny])


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "regression"},
        {"objective": "regression", "zero_as_missing": True},
        {"objective": "regression", "use_missing": False},
        {"objective": "regression", "num_leaves": 7, "num_iterations": 60, "min_data_in_leaf": 20},
        {"objective": "rank_xendcg"},
    ],
)
def test_numpy_evaluator_equals_lightgbm_bit_for_bit(params):
    x, y = _data(4000, 9, seed=1)
    full = lgbm.full_params({**lgbm.BASE_PARAMS, "num_iterations": 40, "min_data_in_leaf": 50, **params}, seed=3, num_threads=1)
    cols = [f"f{i}" for i in range(x.shape[1])]
    group = np.full(40, 100) if params["objective"] == "rank_xendcg" else None
    target = (np.argsort(np.argsort(y)) * 5 // y.size).astype(np.float64) if group is not None else y
    text = lgbm.fit(x, target, full, cols, group=group).decode()
    probe = _probe(text, _data(600, 9, seed=2)[0], seed=4)
    ref = lgb.Booster(model_str=text).predict(probe, num_threads=1)
    got = lgbm_trees.predict(lgbm_trees.parse(text), probe)
    assert np.array_equal(got, ref), np.abs(got - ref).max()
    # through models/lgbm.predict: numpy up to NUMPY_MAX_ROWS rows, LightGBM beyond -- the same numbers
    small = lgbm.predict(text.encode(), probe[:300].astype(np.float32), 1)
    assert np.array_equal(small, lgb.Booster(model_str=text).predict(probe[:300].astype(np.float32), num_threads=1))
    big = np.tile(probe.astype(np.float32), (1 + lgbm.NUMPY_MAX_ROWS // probe.shape[0], 1))  # > NUMPY_MAX_ROWS: LightGBM's predictor
    assert np.array_equal(lgbm.predict(text.encode(), big, 1)[:300], small)


def test_models_it_does_not_reproduce_are_refused_and_lightgbm_scores_them():
    x, y = _data(2000, 4, seed=5)
    ds = lgb.Dataset(np.c_[x[:, :3], np.abs(np.nan_to_num(x[:, 3]) * 3).astype(int)], y > 0, categorical_feature=[3], free_raw_data=False)
    text = lgb.train({"objective": "binary", "num_iterations": 5, "verbosity": -1, "min_data_in_leaf": 20}, ds).model_to_string()
    with pytest.raises(ValueError, match="objective"):
        lgbm_trees.parse(text)
    plain = lgb.train({"objective": "regression", "num_iterations": 3, "verbosity": -1, "min_data_in_leaf": 20}, lgb.Dataset(ds.data, y)).model_to_string()
    with pytest.raises(ValueError, match="categorical"):  # a tree with categorical splits (as LightGBM writes it)
        lgbm_trees.parse(plain.replace("num_cat=0", "num_cat=1", 1))
    with pytest.raises(ValueError, match="linear tree"):
        lgbm_trees.parse(plain.replace("is_linear=0", "is_linear=1", 1))
    probe = ds.data[:50].astype(np.float32)
    assert np.array_equal(lgbm.predict(text.encode(), probe, 1), lgb.Booster(model_str=text).predict(probe, num_threads=1))
    with pytest.raises(ValueError, match="reads 4 features"):
        lgbm_trees.predict(lgbm_trees.parse(plain), probe[:, :2])


def test_a_daily_session_is_scored_without_importing_lightgbm(tmp_path):
    x, y = _data(3000, 6, seed=7)
    text = lgbm.fit(x, y, lgbm.full_params({**lgbm.BASE_PARAMS, "num_iterations": 20}, seed=1, num_threads=1), [f"f{i}" for i in range(6)])
    (tmp_path / "m.txt").write_bytes(text)
    probe = _data(250, 6, seed=8)[0]
    np.save(tmp_path / "x.npy", probe)
    np.save(tmp_path / "ref.npy", lgb.Booster(model_str=text.decode()).predict(probe, num_threads=1))
    code = (
        "import sys, numpy as np\n"
        "from trading_assets.domain.models import lgbm\n"
        f"s = lgbm.predict(open({str(tmp_path / 'm.txt')!r}, 'rb').read(), np.load({str(tmp_path / 'x.npy')!r}), 1)\n"
        f"assert np.array_equal(s, np.load({str(tmp_path / 'ref.npy')!r}))\n"
        "assert 'lightgbm' not in sys.modules and 'sklearn' not in sys.modules, 'imported'\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]


def test_a_cut_or_damaged_model_text_is_an_error_never_a_silent_score():
    x, y = _data(3000, 5, seed=11)
    text = lgbm.fit(x, y, lgbm.full_params({**lgbm.BASE_PARAMS, "num_iterations": 30}, seed=1, num_threads=1), [f"f{i}" for i in range(5)]).decode()
    probe = _data(50, 5, seed=12)[0]
    trees = text.split("\nTree=")
    cut = "\nTree=".join(trees[:21])  # cut after tree 19 of 30: no "end of trees"
    with pytest.raises(lgbm_trees.Malformed, match="end of trees"):
        lgbm_trees.parse(cut)
    dropped = "\nTree=".join(trees[:21]) + "\nend of trees" + text.split("end of trees")[1]  # 20 trees, the header lists 30
    with pytest.raises(lgbm_trees.Malformed, match="20 trees in the text, the header lists 30"):
        lgbm_trees.parse(dropped)
    damaged = text.replace("leaf_value=", "leaf_valu=", 1)
    with pytest.raises(lgbm_trees.Malformed, match="tree 0: unreadable"):
        lgbm_trees.parse(damaged)
    short = text.replace("\nleft_child=", "\nleft_child=0 ", 1)  # one child too many
    with pytest.raises(lgbm_trees.Malformed, match="disagree with num_leaves"):
        lgbm_trees.parse(short)
    big = _data(lgbm.NUMPY_MAX_ROWS + 1, 5, seed=13)[0]  # a range's block: scored by LightGBM's predictor
    for bad in (cut, dropped, damaged, short):
        # lgbm.predict raises too, whatever the row count: LightGBM's loader would abort the whole process
        # (SIGABRT, "Model format error") on these texts instead of raising, so they never reach it
        for rows in (probe, big):
            with pytest.raises(lgbm_trees.Malformed):
                lgbm.predict(bad.encode(), rows, 1)
    # the whole text still scores a big block (LightGBM) with the numpy evaluator's numbers
    assert np.array_equal(lgbm.predict(text.encode(), big, 1), lgbm_trees.predict(lgbm_trees.parse(text), big))
