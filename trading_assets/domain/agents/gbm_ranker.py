"""gbm_ranker: LightGBM learning-to-rank with the sessions as query groups (the seed's cross-section ranker).

Relevance: per session s, the label's quantile bucket
    rel_i,s = floor(buckets * (rank(fwd_return_i,s) - 0.5) / n_s)   in {0, .., buckets - 1}  (buckets = 5)
so the top fifth of tomorrow's returns is the most relevant. Queries = sessions (training rows sorted by
date; group sizes = symbols per session). Objective: rank_xendcg (linear in the query size, so
500-symbol queries cost no more than a regression; lambdarank with a truncation level covering the
whole session was 8x slower, measured on 30 symbols). Challenger (shadow): other hyperparameters, 300
trees of at most 7 leaves. Inputs: the catalog, rank-gauss per session (as gbm_cross_section).
Score: the model's raw ranking score (higher = ranked higher).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from trading_assets.domain.agents.gbm_cross_section import catalog_features
from trading_assets.domain.agents.trained import Variant
from trading_assets.domain.models import lgbm
from trading_assets.settings import ModelSettings

BUCKETS = 5


def relevance(train: pl.DataFrame, buckets: int = BUCKETS) -> np.ndarray:
    r = (pl.col("label").rank("average").over("date") - 0.5) / pl.len().over("date")
    rel = (r * buckets).floor().clip(0, buckets - 1).cast(pl.Int32)
    return train.select(rel.alias("rel"))["rel"].to_numpy()


def query_sizes(train: pl.DataFrame) -> np.ndarray:
    """Rows per session, in the (sorted) order of the training rows."""
    return train.group_by("date", maintain_order=True).len()["len"].to_numpy()


class GbmRanker:
    name = "gbm_ranker"
    version = "1"
    kind = "learned"

    def features(self, settings: ModelSettings) -> tuple[str, ...]:
        return catalog_features()

    def variants(self, settings: ModelSettings) -> tuple[Variant, ...]:
        return (
            Variant(self.name, (("objective", "rank_xendcg"),)),
            Variant(f"{self.name}.shallow", (("objective", "rank_xendcg"), ("num_leaves", 7), ("num_iterations", 300))),
        )

    def fit(self, train: pl.DataFrame, variant: Variant, settings: ModelSettings, seed: int) -> bytes:
        cols = self.features(settings)
        params = lgbm.full_params(variant.params_dict(), seed, settings.num_threads)
        train = train.sort("date", "symbol")
        return lgbm.fit(lgbm.matrix(train, cols), relevance(train).astype(np.float64), params, cols, group=query_sizes(train))

    def predict(self, artifact: bytes, x: pl.DataFrame, variant: Variant, settings: ModelSettings) -> np.ndarray:
        return lgbm.predict(artifact, lgbm.matrix(x, self.features(settings)), settings.num_threads)
