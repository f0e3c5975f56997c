"""LightGBM, deterministic: the shared parameters, fit and predict of the gradient-boosted families.

Determinism (issue #12 item 6): deterministic=True, force_col_wise=True (no timing-dependent choice of
the histogram layout), a fixed num_threads (ModelSettings.num_threads) and every seed derived from
Settings.seed -> the same inputs give the same model text, byte for byte. The artifact is the model
text (Booster.model_to_string), UTF-8; `predict` scores a daily session without importing lightgbm
(models/lgbm_trees.py, the same bits).

Hyperparameters are chosen a priori (never tuned on the period reported out of sample): a small,
strongly regularized forest for a low signal-to-noise target -- 150 trees of at most 15 leaves,
learning rate 0.05, at least 500 rows per leaf, 50% of the features per tree, 70% of the rows per
tree, L2 penalty 10.

Speed (chosen for speed only, never by looking at out-of-sample results; measured in benchmarks/models.py):
- bin_construct_sample_cnt 50,000: the 63 histogram bins of each feature are placed at quantiles of a
  50,000-row sample instead of 200,000. The inputs are per-session rank-gauss values (about N(0, 1) in
  every session), so the bin edges are the same normal quantiles either way, to within sampling error.
- One binned Dataset per training matrix (`dataset`): the families and variants of one retrain that
  fit the same rows (gbm_cross_section, gbm_ranker and its shadow on the expanding window) bin the
  matrix once; each fit only sets its own label (and query sizes). The binning does not read the label,
  so the model is byte-identical to one fitted on a freshly built Dataset (tested).
  feature_pre_filter = False lets variants with other leaf sizes share it (pre-filtering drops a
  feature only when no split can satisfy min_data_in_leaf: never the case for 123 continuous features).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import polars as pl

BASE_PARAMS: dict[str, object] = {
    "num_iterations": 150,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 500,
    "feature_fraction": 0.5,
    "bagging_fraction": 0.7,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "max_bin": 63,
    "bin_construct_sample_cnt": 50_000,
    "feature_pre_filter": False,
}
# the parameters that shape the binned Dataset (the rest only shape the trees)
DATASET_PARAMS = ("max_bin", "bin_construct_sample_cnt", "feature_pre_filter", "data_random_seed", "min_data_in_bin", "use_missing",
                  "zero_as_missing", "verbosity")
_CACHE_SIZE = 2  # binned matrices kept: the expanding and the sliding window of one retrain
_binned: OrderedDict[str, object] = OrderedDict()


def full_params(params: dict, seed: int, num_threads: int) -> dict:
    return {
        **BASE_PARAMS,
        **params,
        "seed": seed,
        "bagging_seed": seed + 1,
        "feature_fraction_seed": seed + 2,
        "data_random_seed": seed + 3,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": num_threads,
        "verbosity": -1,
    }


def matrix(x: pl.DataFrame, columns: list[str] | tuple[str, ...]) -> np.ndarray:
    return x.select(columns).to_numpy().astype(np.float32, copy=False)


def dataset(x: np.ndarray, params: dict, columns):
    """The binned lgb.Dataset of matrix x under the Dataset parameters of `params`: built once and kept
    for the next fits of the same matrix (keyed by the sha256 of its bytes, its columns and those
    parameters; the last _CACHE_SIZE matrices)."""
    import lightgbm as lgb

    ds_params = {k: params[k] for k in DATASET_PARAMS if k in params}
    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(repr((x.shape, str(x.dtype), list(columns), sorted(ds_params.items()))).encode())
    key = h.hexdigest()
    if key in _binned:
        _binned.move_to_end(key)
        return _binned[key]
    ds = lgb.Dataset(x, feature_name=list(columns), free_raw_data=True, params=ds_params).construct()
    _binned[key] = ds
    while len(_binned) > _CACHE_SIZE:
        _binned.popitem(last=False)
    return ds


def fit(x: np.ndarray, y: np.ndarray, params: dict, columns, group: np.ndarray | None = None) -> bytes:
    import lightgbm as lgb

    ds = dataset(x, params, columns)
    ds.set_label(y)
    if group is not None:
        ds.set_group(group)
    else:
        ds.set_field("group", None)  # a ranker's query sizes from an earlier fit of the same matrix
    booster = lgb.train(params, ds)
    return booster.model_to_string().encode()


NUMPY_MAX_ROWS = 4_096  # up to this many rows (a daily session) the numpy evaluator scores; LightGBM beyond


def predict(artifact: bytes, x: np.ndarray, num_threads: int) -> np.ndarray:
    """The model's scores of the rows of x. A daily session's few hundred rows are scored by the numpy
    evaluator (models/lgbm_trees.py: LightGBM's own numbers bit for bit, tested) so that a daily run does not
    import lightgbm (~1.4 s: it loads scikit-learn, pandas and scipy); a range's blocks, or a model the
    evaluator does not reproduce, by LightGBM's C++ predictor."""
    from trading_assets.domain.models import lgbm_trees

    text = artifact.decode()
    # The text is parsed whatever the row count: a cut or damaged text raises Malformed (a ValueError the
    # callers name the file with) instead of reaching LightGBM's loader, which aborts the whole process on
    # it ("Model format error", SIGABRT) when the artifact's sha256 was not recorded.
    try:
        forest = lgbm_trees.parse(text)
    except lgbm_trees.Unsupported:  # e.g. a categorical split: LightGBM's predictor (Malformed is raised)
        forest = None
    if forest is not None and x.shape[0] <= NUMPY_MAX_ROWS:
        return lgbm_trees.predict(forest, x)
    import lightgbm as lgb

    booster = lgb.Booster(model_str=text)
    return booster.predict(x, num_threads=num_threads)
