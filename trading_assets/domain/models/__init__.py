"""Learned models trained walk-forward (issue #12): training sets with a purge, per-session
normalization, out-of-sample rank IC, Grinold scoring, promotion of challengers. Pure (polars, numpy,
scipy, lightgbm, sklearn); the Dagster layer is defs/models.py and defs/signals.py."""
