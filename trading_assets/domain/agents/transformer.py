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
    "window": 10, "latent_dim": 8, "ae_hidden": 64, "ae_epochs": 4, "ae_windows": 20_000,
    "seq_len": 20, "d_model": 64, "heads": 2, "layers": 2, "ff": 128, "dropout": 0.1, "tf_epochs": 3, "tf_sequences": 8_000,
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


def sequence_rows(codes: np.ndarray, window: int, seq_len: int) -> np.ndarray:
    """Rows r whose last seq_len rows are r's symbol's and each has a full window of `window` rows:
    position in the symbol >= seq_len + window - 2 (windows.window_ends of length seq_len + window - 1)."""
    from trading_assets.domain.deep.windows import window_ends

    return window_ends(codes, seq_len + window - 1)


def scoring_rows(x: pl.DataFrame, history: pl.DataFrame, window: int, seq_len: int):
    """What scoring the rows of x reads from the history's panel (_panel of SEQUENCE_FEATURES):
    (values (n, F), has_row: x's rows found in the panel, idx: their panel rows, scored: those with a whole
    sequence of windows (sequence_rows), need: the panel rows whose z_t the scored sequences read)."""
    keys, values, codes = _panel(history, SEQUENCE_FEATURES)
    at = x.select("date", "symbol").join(keys.with_row_index("_row"), on=["date", "symbol"], how="left", maintain_order="left")
    rows = at["_row"]
    has_row = rows.is_not_null().to_numpy()
    idx = rows.drop_nulls().to_numpy().astype(np.int64)
    seq_ok = np.zeros(values.shape[0], dtype=bool)
    seq_ok[sequence_rows(codes, window, seq_len)] = True
    scored = idx[seq_ok[idx]]
    return values, has_row, idx, scored, needed_rows(scored, seq_len)


def needed_rows(ends: np.ndarray, seq_len: int) -> np.ndarray:
    """The rows whose z the sequences ending at `ends` read (each end and the seq_len - 1 rows before)."""
    if ends.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique((ends[:, None] + np.arange(-seq_len + 1, 1)[None, :]).ravel())


class TransformerAgent:
    incumbent = "gbm_cross_section"  # the gradient-boosted regressor whose champion it must beat
    name = "transformer"
    # 2: scored in numpy float64 (deep/forward.py), was torch float32; the last layer trains on the last position only
    version = "2"
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
        from trading_assets.domain.deep.sequence import (
            AutoencoderParams, TransformerParams, encode, fit_autoencoder, fit_transformer, session_rank_target,
        )  # fmt: skip
        from trading_assets.domain.deep.windows import window_ends

        p = _p(variant)
        rng = np.random.default_rng([seed, 17])
        keys, values, codes = _panel(history, SEQUENCE_FEATURES)
        ae = AutoencoderParams(window=p["window"], latent_dim=p["latent_dim"], hidden=p["ae_hidden"], epochs=p["ae_epochs"], seed=seed,
                               threads=settings.num_threads)  # fmt: skip
        ae_blob, _ = fit_autoencoder(values, _sample(window_ends(codes, ae.window), p["ae_windows"], rng), ae)
        ae_state = from_bytes(ae_blob)
        labeled = keys.with_row_index("_row").join(train.select("date", "symbol", "label"), on=["date", "symbol"], how="inner")
        target = np.full(values.shape[0], np.nan, dtype=np.float32)
        rows = labeled["_row"].to_numpy()
        target[rows] = session_rank_target(labeled["label"].to_numpy(), labeled["date"].to_physical().to_numpy())
        seq = sequence_rows(codes, ae.window, p["seq_len"])
        seq = _sample(seq[np.isfinite(target[seq])], p["tf_sequences"], rng)
        need = needed_rows(seq, p["seq_len"])  # encode only the latents the sampled sequences read
        zfull = np.zeros((values.shape[0], ae.latent_dim), dtype=np.float32)
        if need.size:
            zfull[need] = encode(ae_state, values, need, threads=settings.num_threads)
        tp = TransformerParams(seq_len=p["seq_len"], d_model=p["d_model"], heads=p["heads"], layers=p["layers"], ff=p["ff"],
                               dropout=p["dropout"], epochs=p["tf_epochs"], seed=seed, threads=settings.num_threads)  # fmt: skip
        tf_blob, _ = fit_transformer(zfull, seq, np.nan_to_num(target), tp)
        return to_bytes({"kind": "transformer_family", "autoencoder": ae_state, "transformer": from_bytes(tf_blob)})

    def predict_with_history(self, artifact: bytes, x: pl.DataFrame, history: pl.DataFrame, variant: Variant,
                             settings: ModelSettings) -> tuple[np.ndarray, np.ndarray]:
        """Scores for the rows of x and their z_t (len(x), k): NaN where the symbol lacks the history.
        Only what x needs is computed: the L latents before each row of x and their W-session windows."""
        from trading_assets.domain.deep.forward import encode, transformer_scores
        from trading_assets.domain.deep.torch_state import load_state

        state = load_state(artifact)  # numpy forward passes (deep/forward.py): scoring never imports torch
        if state.get("kind") != "transformer_family":
            raise ValueError(f"artifact is a {state.get('kind')!r} model, not a transformer_family")
        ae_state, tf_state = state["autoencoder"], state["transformer"]
        w, k, seq_len = ae_state["window"], ae_state["latent_dim"], tf_state["params"]["seq_len"]
        values, has_row, idx, scored, need = scoring_rows(x, history, w, seq_len)
        n = values.shape[0]
        zfull = np.zeros((n, k), dtype=np.float32)
        if need.size:
            zfull[need] = encode(ae_state, values, need, threads=settings.num_threads)
        score_rows = np.full(n, np.nan)
        if scored.size:
            score_rows[scored] = transformer_scores(tf_state, zfull, scored, threads=settings.num_threads)
        score = np.full(x.height, np.nan)
        zx = np.full((x.height, k), np.nan)
        pos = np.flatnonzero(has_row)
        score[pos] = score_rows[idx]
        ok = pos[np.isfinite(score_rows[idx])]
        zx[ok] = zfull[idx[np.isfinite(score_rows[idx])]]
        return score, zx
