"""transformer: a temporal autoencoder for z_t and a Transformer over the sequence of z_t (issue #17).

One family, one artifact holding both networks (domain/deep/sequence.py has the math):
1. the temporal autoencoder encodes each symbol's window of the last W sessions of SEQUENCE_FEATURES
   (rank-gauss per session by the scaffold) into z_t (dimension latent_dim), trained on reconstruction;
2. the Transformer reads z_{t-L+1} .. z_t and predicts the session rank of the next tradable return
   (the label open(s+1) -> open(s+2)) mapped to [-1/2, 1/2].
The two train together at each cadence session on the same walk-forward window, so the z the
Transformer was trained on and the z it reads at scoring time come from the same encoder: the
`latents` table stores z_t as produced by the encoder that serves session t (every consumer reads that
one). Scoring t needs W + L - 2 earlier sessions of features (`lookback_sessions`).

Budget choices for a 2-core CPU (issue #17: one retrain <= 5 minutes on 500 symbols x 5 years; the
cadence multiple keeps the five-year backfill within 3x): SEQUENCE_FEATURES is 24 fast-moving
features (not the whole catalog: W x F inputs per window), the autoencoder trains on at most
`ae_windows` windows and the Transformer on at most `tf_sequences` sequences, each sampled uniformly
(numpy Generator seeded by the run's seed) from the training window; a few epochs. Set a priori, never
tuned on the reported out-of-sample years.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from trading_assets.domain.agents.trained import Variant
from trading_assets.settings import ModelSettings

SEQUENCE_FEATURES: tuple[str, ...] = (
    "logret_1", "logret_5", "logret_20", "vol_5", "vol_20", "vol_ratio_20_60", "parkinson_vol_20",
    "px_sma_20", "px_sma_50", "px_sma_200", "mom_1m", "mom_3m", "mom_12_1", "rsi_14", "zscore_20",
    "bb_pctb_20", "stoch_k_14", "volume_ratio_20", "volume_zscore_20", "amihud_21", "beta_60",
    "xs_rel_logret_1", "dist_high_252", "dist_low_252",
)  # fmt: skip

DEFAULTS = {
    "window": 10, "latent_dim": 8, "ae_hidden": 64, "ae_epochs": 6, "ae_windows": 40_000,
    "seq_len": 20, "d_model": 64, "heads": 2, "layers": 2, "ff": 128, "dropout": 0.1, "tf_epochs": 4, "tf_sequences": 30_000,
}  # fmt: skip


def _p(variant: Variant) -> dict:
    return {**DEFAULTS, **variant.params_dict()}


def _panel(history: pl.DataFrame, cols: tuple[str, ...]) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """history sorted by (symbol, date) -> (keys frame, values (n, F) float32 with NaN, symbol codes)."""
    h = history.sort("symbol", "date")
    codes = h.select(pl.col("symbol").rank("dense"))["symbol"].to_numpy().astype(np.int64)
    values = h.select(cols).to_numpy().astype(np.float32, copy=False)
    return h.select("date", "symbol"), values, codes


def _sample(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return idx if idx.size <= k else np.sort(rng.choice(idx, size=k, replace=False))


def latent_rows(keys: pl.DataFrame, values: np.ndarray, codes: np.ndarray, ae_state: dict) -> tuple[np.ndarray, np.ndarray]:
    """(row indices with a full window, z for them) over a panel."""
    from trading_assets.domain.deep.sequence import encode
    from trading_assets.domain.deep.windows import window_ends

    ends = window_ends(codes, ae_state["window"])
    return ends, encode(ae_state, values, ends)


def _z_panel(n: int, ends: np.ndarray, z: np.ndarray, latent_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A (n, k) z array (NaN where the window is incomplete) and the validity mask."""
    full = np.full((n, latent_dim), np.nan, dtype=np.float32)
    full[ends] = z
    return full, ~np.isnan(full[:, 0])


def sequence_ends(valid: np.ndarray, codes: np.ndarray, seq_len: int) -> np.ndarray:
    """Rows whose last seq_len rows are one symbol's and all have a z."""
    from trading_assets.domain.deep.windows import window_ends

    ends = window_ends(codes, seq_len)
    ok_run = np.convolve(valid.astype(np.int64), np.ones(seq_len, dtype=np.int64), mode="full")[: valid.size]
    return ends[ok_run[ends] == seq_len]


class TransformerAgent:
    incumbent = "gbm_cross_section"  # the gradient-boosted regressor whose champion it must beat
    name = "transformer"
    version = "1"
    kind = "deep"
    starts_as_shadow = True

    def features(self, settings: ModelSettings) -> tuple[str, ...]:
        return SEQUENCE_FEATURES

    def variants(self, settings: ModelSettings) -> tuple[Variant, ...]:
        return (Variant(self.name, tuple(sorted(DEFAULTS.items())), window_years=3),)

    def lookback_sessions(self, variant: Variant) -> int:
        p = _p(variant)
        return int(p["window"]) + int(p["seq_len"]) - 2

    def fit_with_history(self, train: pl.DataFrame, history: pl.DataFrame, variant: Variant, settings: ModelSettings, seed: int) -> bytes:
        """train: date, symbol, features, label (labeled rows); history: every session's rows of the window
        (and the lookback before it), unthinned, for the windows and sequences."""
        from trading_assets.domain.deep.runtime import from_bytes, to_bytes
        from trading_assets.domain.deep.sequence import AutoencoderParams, TransformerParams, fit_autoencoder, fit_transformer, session_rank_target
        from trading_assets.domain.deep.windows import window_ends

        p = _p(variant)
        rng = np.random.default_rng([seed, 17])
        keys, values, codes = _panel(history, SEQUENCE_FEATURES)
        ae = AutoencoderParams(window=p["window"], latent_dim=p["latent_dim"], hidden=p["ae_hidden"], epochs=p["ae_epochs"], seed=seed,
                               threads=settings.num_threads)  # fmt: skip
        ae_blob, _ = fit_autoencoder(values, _sample(window_ends(codes, ae.window), p["ae_windows"], rng), ae)
        ae_state = from_bytes(ae_blob)
        ends, z = latent_rows(keys, values, codes, ae_state)
        zfull, valid = _z_panel(values.shape[0], ends, z, ae.latent_dim)
        labeled = keys.with_row_index("_row").join(train.select("date", "symbol", "label"), on=["date", "symbol"], how="inner")
        target = np.full(values.shape[0], np.nan, dtype=np.float32)
        rows = labeled["_row"].to_numpy()
        target[rows] = session_rank_target(labeled["label"].to_numpy(), labeled["date"].to_physical().to_numpy())
        seq = sequence_ends(valid, codes, p["seq_len"])
        seq = _sample(seq[np.isfinite(target[seq])], p["tf_sequences"], rng)
        tp = TransformerParams(seq_len=p["seq_len"], d_model=p["d_model"], heads=p["heads"], layers=p["layers"], ff=p["ff"],
                               dropout=p["dropout"], epochs=p["tf_epochs"], seed=seed, threads=settings.num_threads)  # fmt: skip
        tf_blob, _ = fit_transformer(np.nan_to_num(zfull), seq, np.nan_to_num(target), tp)
        return to_bytes({"kind": "transformer_family", "autoencoder": ae_state, "transformer": from_bytes(tf_blob)})

    def predict_with_history(self, artifact: bytes, x: pl.DataFrame, history: pl.DataFrame, variant: Variant,
                             settings: ModelSettings) -> tuple[np.ndarray, np.ndarray]:
        """Scores for the rows of x and their z_t (len(x), k): NaN where the symbol lacks the history."""
        from trading_assets.domain.deep.runtime import from_bytes
        from trading_assets.domain.deep.sequence import predict_transformer

        state = from_bytes(artifact)
        if state.get("kind") != "transformer_family":
            raise ValueError(f"artifact is a {state.get('kind')!r} model, not a transformer_family")
        keys, values, codes = _panel(history, SEQUENCE_FEATURES)
        ends, z = latent_rows(keys, values, codes, state["autoencoder"])
        k = state["autoencoder"]["latent_dim"]
        zfull, valid = _z_panel(values.shape[0], ends, z, k)
        seq = sequence_ends(valid, codes, state["transformer"]["params"]["seq_len"])
        score = np.full(values.shape[0], np.nan)
        score[seq] = predict_transformer(state["transformer"], np.nan_to_num(zfull), seq, threads=settings.num_threads)
        at = keys.with_row_index("_row").with_columns(_score=pl.Series(score))
        out = x.select("date", "symbol").join(at, on=["date", "symbol"], how="left", maintain_order="left")
        rows = out["_row"]
        zx = np.full((x.height, k), np.nan)
        ok = rows.is_not_null().to_numpy()
        zx[ok] = zfull[rows.drop_nulls().to_numpy().astype(np.int64)]
        zx[np.isnan(out["_score"].to_numpy())] = np.nan  # a latent only where the sequence model scored
        return out["_score"].to_numpy(), zx
