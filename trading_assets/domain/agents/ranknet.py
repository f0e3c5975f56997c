"""ranknet: a pairwise RankNet (Burges et al. 2005) over the session-normalized catalog, the neural
sibling of gbm_ranker. The model, its loss and the pair-sampling rule: domain/deep/ranknet.py.

Inputs: the catalog features the gradient-boosted models read (gbm_cross_section.catalog_features),
rank-gauss per session by the scaffold (NaN -> 0, the session median). Label: the h = 1 tradable
return (open(s+1) -> open(s+2)); only its within-session ORDER enters the loss (pairs of one session).
Score: the scorer's output f(x) (higher = ranked higher), computed in numpy from the trained weights
(domain/deep/forward.py; training alone needs torch). A deep family starts as a shadow and reaches
the Meta-Brain only through the promotion rule (registry / domain/models/promotion.py).

Variants (all shadows until promoted): `ranknet` = MLP 64-32, dropout 0.1, 4 epochs, 500 pairs per
session; `ranknet.wide` = MLP 128-64, 1,000 pairs per session, sliding 3-year window. The parameters
are set a priori (small nets, few epochs: the 2-core budget of issue #17), never tuned on the
reported out-of-sample years.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from trading_assets.domain.agents.gbm_cross_section import catalog_features
from trading_assets.domain.agents.trained import Variant
from trading_assets.settings import ModelSettings


def _params(variant: Variant, seed: int, threads: int):
    from trading_assets.domain.deep.ranknet import RankNetParams

    p = variant.params_dict()
    return RankNetParams(
        hidden=tuple(p.get("hidden", (64, 32))),
        dropout=float(p.get("dropout", 0.1)),
        epochs=int(p.get("epochs", 8)),
        pairs_per_session=int(p.get("pairs_per_session", 2_000)),
        sessions_per_batch=int(p.get("sessions_per_batch", 16)),
        lr=float(p.get("lr", 1e-3)),
        seed=seed,
        threads=threads,
    )


class RankNetAgent:
    incumbent = "gbm_ranker"  # the gradient-boosted ranker whose champion it must beat to reach the Meta-Brain
    name = "ranknet"
    version = "2"  # 2: scored in numpy float64 from the trained weights (deep/forward.py), was torch float32
    kind = "deep"
    starts_as_shadow = True

    def features(self, settings: ModelSettings) -> tuple[str, ...]:
        return catalog_features()

    def variants(self, settings: ModelSettings) -> tuple[Variant, ...]:
        return (
            Variant(self.name, (("hidden", (64, 32)), ("epochs", 4), ("pairs_per_session", 500))),
            Variant(f"{self.name}.wide", (("hidden", (128, 64)), ("epochs", 4), ("pairs_per_session", 1_000)), window_years=3),
        )

    def fit(self, train: pl.DataFrame, variant: Variant, settings: ModelSettings, seed: int) -> bytes:
        from trading_assets.domain.deep.ranknet import fit_ranknet

        train = train.sort("date", "symbol")
        x = train.select(self.features(settings)).to_numpy().astype(np.float32, copy=False)
        sessions = train.select(pl.col("date").rank("dense"))["date"].to_numpy()
        artifact, _ = fit_ranknet(x, train["label"].to_numpy(), sessions, _params(variant, seed, settings.num_threads))
        return artifact

    def predict(self, artifact: bytes, x: pl.DataFrame, variant: Variant, settings: ModelSettings) -> np.ndarray:
        """Scores in numpy from the trained weights (deep/forward.py): scoring never imports torch."""
        from trading_assets.domain.deep.forward import ranknet_scores
        from trading_assets.domain.deep.torch_state import load_state

        return ranknet_scores(load_state(artifact), x.select(self.features(settings)).to_numpy().astype(np.float32, copy=False),
                              settings.num_threads)
