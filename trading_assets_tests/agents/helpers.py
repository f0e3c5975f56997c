"""Hand-made feature frames for the agent tests: a neutral row, overridden per case."""

from __future__ import annotations

from datetime import date

import polars as pl

from trading_assets.domain.agents import required_features
from trading_assets.settings import AgentSettings

D1 = date(2024, 3, 1)
D2 = date(2024, 3, 4)

# A symbol with no edge anywhere: flat returns, mid-range oscillators, ample liquidity, no pattern.
NEUTRAL: dict[str, float] = {
    "mom_12_1": 0.0, "mom_6m": 0.0, "mom_3m": 0.0, "px_sma_200": 0.0,
    "zscore_20": 0.0, "rsi_14": 50.0, "bb_pctb_20": 0.5,
    "vol_rank_20": 0.5, "ewma_vol_20": 0.20, "vol_20": 0.20, "vol_60": 0.20,
    "adv_dollar_21d": 1.0e8, "volume_ratio_20": 1.0, "logret_5": 0.0,
    "golden_cross": 0.0, "death_cross": 0.0, "breakout_20": 0.0, "stoch_k_14": 50.0, "stoch_d_14": 50.0,
    "sma_50_above_200": 1.0, "beta_60": 1.0,
}  # fmt: skip


def frame(rows: list[dict], day: date = D1) -> pl.DataFrame:
    """One row per dict: NEUTRAL overridden by the dict (which names at least `symbol`)."""
    cols = required_features(AgentSettings())
    assert set(NEUTRAL) == set(cols), set(NEUTRAL) ^ set(cols)
    records = [{"date": r.get("date", day), **NEUTRAL, **r} for r in rows]
    return pl.DataFrame(records, schema={"date": pl.Date, "symbol": pl.String, **{c: pl.Float64 for c in cols}})


def one(out: pl.DataFrame, symbol: str = "X", agent: str | None = None) -> dict:
    rows = out.filter(pl.col("symbol") == symbol)
    if agent:
        rows = rows.filter(pl.col("agent") == agent)
    assert rows.height == 1, rows
    return rows.row(0, named=True)
