"""LightGBM, deterministic: the shared parameters, fit and predict of the gradient-boosted families.

Determinism (issue #12 item 6): deterministic=True, force_col_wise=True (no timing-dependent choice of
the histogram layout), a fixed num_threads (ModelSettings.num_threads) and every seed derived from
Settings.seed -> the same inputs give the same model text, byte for byte. The artifact is the model
text (Booster.model_to_string), UTF-8.

Hyperparameters are chosen a priori (never tuned on the period reported out of sample): a small,
strongly regularized forest for a low signal-to-noise target -- 150 trees of at most 15 leaves,
learning rate 0.05, at least 500 rows per leaf, 50% of the features per tree, 70% of the rows per
tree, L2 penalty 10.
"""

from __future__ import annotations

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
}


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


def fit(x: np.ndarray, y: np.ndarray, params: dict, columns, group: np.ndarray | None = None) -> bytes:
    import lightgbm as lgb

    ds = lgb.Dataset(x, label=y, group=group, feature_name=list(columns), free_raw_data=True, params={"max_bin": params.get("max_bin", 63)})
    booster = lgb.train(params, ds)
    return booster.model_to_string().encode()


def predict(artifact: bytes, x: np.ndarray, num_threads: int) -> np.ndarray:
    import lightgbm as lgb

    booster = lgb.Booster(model_str=artifact.decode())
    return booster.predict(x, num_threads=num_threads)
