"""trained_momentum: the momentum agent's horizons and weights fitted by ridge regression on history.

Inputs (rank-gauss per session): the 1, 3, 6 and 12-1 month returns (mom_1m, mom_3m, mom_6m, mom_12_1)
and the distances to the moving averages (px_sma_20, px_sma_50, px_sma_200).
Target: the label rank-gauss per session (as gbm_cross_section).
Model: ridge regression  beta = argmin ||y - X beta - b||^2 + alpha ||beta||^2  (sklearn Ridge), alpha
chosen INSIDE the training window only by a purged time-series cross-validation: the window's sessions
cut into 4 consecutive folds; for fold k = 2..4 fit on the sessions before the fold minus a purge of
horizon + purge_extra sessions, score the mean per-session rank IC on the fold; alpha = the grid value
with the best mean fold IC (ties -> the larger alpha). Grid: 1, 10, 100, 1000, 10000.
Artifact: JSON {features, coef, intercept, alpha, cv}. Score = X beta + b.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from trading_assets.domain.agents.gbm_cross_section import ranked_label
from trading_assets.domain.agents.trained import Variant
from trading_assets.settings import ModelSettings

FEATURES = ("mom_1m", "mom_3m", "mom_6m", "mom_12_1", "px_sma_20", "px_sma_50", "px_sma_200")
ALPHAS = (1.0, 10.0, 100.0, 1000.0, 10000.0)
FOLDS = 4


def _mean_rank_ic(dates: np.ndarray, score: np.ndarray, y: np.ndarray) -> float:
    f = pl.DataFrame({"date": dates, "s": score, "y": y})
    ic = f.group_by("date").agg(pl.corr(pl.col("s").rank(), pl.col("y").rank()).alias("ic")).sort("date")["ic"]  # sorted: a fixed summation order
    ic = ic.filter(ic.is_finite())
    return float(ic.mean()) if ic.len() else float("-inf")


def choose_alpha(x: np.ndarray, y: np.ndarray, dates: np.ndarray, purge: int) -> tuple[float, dict]:
    from sklearn.linear_model import Ridge

    days = np.unique(dates)
    edges = np.linspace(0, len(days), FOLDS + 1).astype(int)
    scores = {a: [] for a in ALPHAS}
    for k in range(1, FOLDS):
        fold_days = days[edges[k] : edges[k + 1]]
        train_end = edges[k] - purge  # purge: the last `purge` sessions before the fold are left out
        if train_end <= 0 or len(fold_days) == 0:
            continue
        tr = dates <= days[train_end - 1]
        te = np.isin(dates, fold_days)
        for a in ALPHAS:
            m = Ridge(alpha=a).fit(x[tr], y[tr])
            scores[a].append(_mean_rank_ic(dates[te], m.predict(x[te]), y[te]))
    means = {a: (float(np.mean(v)) if v else float("-inf")) for a, v in scores.items()}
    best = max(ALPHAS, key=lambda a: (means[a], a))
    return best, {str(a): means[a] for a in ALPHAS}


class TrainedMomentum:
    name = "trained_momentum"
    version = "1"
    kind = "learned"

    def features(self, settings: ModelSettings) -> tuple[str, ...]:
        return FEATURES

    def variants(self, settings: ModelSettings) -> tuple[Variant, ...]:
        return (Variant(self.name), Variant(f"{self.name}.sliding3y", window_years=3))

    def fit(self, train: pl.DataFrame, variant: Variant, settings: ModelSettings, seed: int) -> bytes:
        from sklearn.linear_model import Ridge

        train = train.sort("date", "symbol")
        x = train.select(FEATURES).to_numpy().astype(np.float64)
        y = ranked_label(train)
        dates = train["date"].to_numpy()
        alpha, cv = choose_alpha(x, y, dates, settings.horizon + settings.purge_extra)
        m = Ridge(alpha=alpha).fit(x, y)
        return json.dumps(
            {"features": list(FEATURES), "coef": [float(c) for c in m.coef_], "intercept": float(m.intercept_), "alpha": alpha, "cv": cv},
            sort_keys=True,
        ).encode()

    def predict(self, artifact: bytes, x: pl.DataFrame, variant: Variant, settings: ModelSettings) -> np.ndarray:
        model = json.loads(artifact.decode())
        m = x.select(model["features"]).to_numpy().astype(np.float64)
        return m @ np.asarray(model["coef"]) + model["intercept"]
