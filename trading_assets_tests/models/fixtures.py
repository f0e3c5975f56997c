"""A small synthetic market of normalized-ready features and LABELS-CONTRACT labels with a planted signal.

Labels follow the contract (rr-labels' `labels` table): date = decision session s, horizon 1,
entry_date = s+1, exit_date = known_at = s+2 sessions, fwd_return, valid. The signal: the next return
is 0.004 x mom_3m's cross-sectional z plus noise, so a model can learn it (rank IC about 0.2).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from trading_assets.defs.models import model_feature_columns
from trading_assets.domain import calendar
from trading_assets.settings import ModelSettings



def market(start: date, end: date, n_symbols: int = 30, seed: int = 3, signal: float = 0.004) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(features, labels) for the sessions of start..end: features has every model feature column
    (date, symbol, ..., ewma_vol_20, vol_20, feature_version); labels the contract's columns (h = 1)."""
    rng = np.random.default_rng(seed)
    days = calendar.sessions(start, end)
    cols = model_feature_columns(ModelSettings())
    syms = [f"S{i:02d}" for i in range(n_symbols)]
    n = len(days) * n_symbols
    data = {c: rng.standard_normal(n) for c in cols}
    data["ewma_vol_20"] = np.abs(rng.normal(0.25, 0.05, n)) + 0.05
    data["vol_20"] = data["ewma_vol_20"]
    f = pl.DataFrame({"date": np.repeat(np.array(days, dtype="datetime64[D]"), n_symbols), "symbol": syms * len(days), **data})
    f = f.with_columns(pl.col("date").cast(pl.Date), feature_version=pl.lit("test-fv"))
    z = f["mom_3m"].to_numpy()
    ret = signal * z + 0.02 * rng.standard_normal(n)
    exit_of = {d: calendar.next_session(calendar.next_session(d)) for d in days}
    entry_of = {d: calendar.next_session(d) for d in days}
    lab = f.select("date", "symbol").with_columns(
        horizon=pl.lit(1, pl.Int32),
        entry_date=pl.col("date").replace_strict(entry_of, return_dtype=pl.Date),
        exit_date=pl.col("date").replace_strict(exit_of, return_dtype=pl.Date),
        fwd_return=pl.Series(ret),
    )
    lab = lab.with_columns(known_at=pl.col("exit_date"), bench_return=pl.lit(None, pl.Float64))
    lab = lab.with_columns(universe_return=pl.col("fwd_return").mean().over("date"))
    lab = lab.with_columns(excess_return=pl.col("fwd_return") - pl.col("universe_return"), valid=pl.lit(True),
                           reason=pl.lit(None, pl.String), run_id=pl.lit("fixture"))
    return f, lab


def labels_known_by(labels: pl.DataFrame, t: date) -> pl.DataFrame:
    return labels.filter(pl.col("known_at") <= t)
