"""gbm_cross_section: LightGBM regression of the next-session tradable return, rank-transformed per session.

Target: y_i,s = Phi^-1((rank(fwd_return_i,s) - 0.5) / n_s), the label (open(s+1) -> open(s+2), LABELS
CONTRACT) as a per-session rank-gauss value: the model learns the cross-sectional ORDER of tomorrow's
returns, not the market's level (removed by the per-session rank) nor its fat tails.
Inputs: every feature of the catalog, rank-gauss per session (domain/models/normalize.py).
Model: LightGBM, objective regression (L2), the a-priori parameters of domain/models/lgbm.py.
Variants: the expanding-window champion and a sliding 3-year challenger (shadow).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from trading_assets.domain.agents.trained import Variant
from trading_assets.domain.features.catalog import CATALOG
from trading_assets.domain.models import lgbm
from trading_assets.domain.models.normalize import rank_gauss
from trading_assets.settings import ModelSettings



def catalog_features() -> tuple[str, ...]:
    """The catalog minus the price- and share-unit levels (SMA/EMA/ATR/MACD levels, share volumes) and
    close_adj: they carry the level of a stock's price or share count, not information about its next
    return (their scale-free versions -- distances to the averages, NATR, dollar volumes -- are in the
    catalog). 123 of the 147 features."""
    return tuple(e.name for e in CATALOG if e.unit not in ("price", "shares") and e.name != "close_adj")


def ranked_label(train: pl.DataFrame) -> np.ndarray:
    return rank_gauss(train.select("date", "label"), ["label"])["label"].to_numpy().astype(np.float64)


class GbmCrossSection:
    name = "gbm_cross_section"
    version = "1"
    kind = "learned"

    def features(self, settings: ModelSettings) -> tuple[str, ...]:
        return catalog_features()

    def variants(self, settings: ModelSettings) -> tuple[Variant, ...]:
        return (
            Variant(self.name, (("objective", "regression"),)),
            Variant(f"{self.name}.sliding3y", (("objective", "regression"),), window_years=3),
        )

    def fit(self, train: pl.DataFrame, variant: Variant, settings: ModelSettings, seed: int) -> bytes:
        cols = self.features(settings)
        params = lgbm.full_params(variant.params_dict(), seed, settings.num_threads)
        return lgbm.fit(lgbm.matrix(train, cols), ranked_label(train), params, cols)

    def predict(self, artifact: bytes, x: pl.DataFrame, variant: Variant, settings: ModelSettings) -> np.ndarray:
        return lgbm.predict(artifact, lgbm.matrix(x, self.features(settings)), settings.num_threads)
