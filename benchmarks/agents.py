"""Wall time of the six agents + the Meta-Brain over 250 symbols x 1,260 sessions (about five years).

Random but plausible feature values (seeded): returns, vols, oscillators and flags in their usual
ranges, a benchmark row per session. Prints the figures; asserts nothing about time.

    /work/venv/bin/python benchmarks/agents.py [--symbols 250] [--sessions 1260]
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

import numpy as np
import polars as pl

from trading_assets.domain import meta_brain
from trading_assets.domain.agents import required_features, run_agents
from trading_assets.settings import AgentSettings, MetaBrainSettings


def synthetic_features(n_symbols: int, n_sessions: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(n_sessions)]
    symbols = ["SPY"] + [f"S{i:03d}" for i in range(n_symbols)]
    n = len(days) * len(symbols)
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    vol = u(0.10, 0.60)
    cols = {
        "date": np.repeat(np.array(days, dtype="datetime64[D]"), len(symbols)),
        "symbol": np.tile(symbols, len(days)),
        "mom_12_1": rng.normal(0.08, 0.30, n), "mom_6m": rng.normal(0.04, 0.20, n), "mom_3m": rng.normal(0.02, 0.12, n),
        "px_sma_200": rng.normal(0.03, 0.12, n), "zscore_20": rng.normal(0, 1.2, n), "rsi_14": u(10, 90),
        "bb_pctb_20": rng.normal(0.5, 0.35, n), "vol_rank_20": u(0, 1), "ewma_vol_20": vol * u(0.7, 1.3),
        "vol_20": vol, "vol_60": vol * u(0.8, 1.2), "adv_dollar_21d": np.exp(rng.normal(18.5, 1.5, n)),
        "volume_ratio_20": np.exp(rng.normal(0, 0.4, n)), "logret_5": rng.normal(0, 0.04, n),
        "golden_cross": (u(0, 1) < 0.005).astype(float), "death_cross": (u(0, 1) < 0.005).astype(float),
        "breakout_20": (u(0, 1) < 0.05).astype(float), "stoch_k_14": u(0, 100), "stoch_d_14": u(0, 100),
        "sma_50_above_200": (u(0, 1) < 0.6).astype(float), "beta_60": rng.normal(1.0, 0.4, n),
    }  # fmt: skip
    frame = pl.DataFrame(cols).with_columns(pl.col("date").cast(pl.Date))
    warm = pl.col("date") < pl.lit(days[251])  # the first year has no 12-1 momentum (warm-up nulls)
    frame = frame.with_columns(pl.when(warm).then(None).otherwise(pl.col("mom_12_1")).alias("mom_12_1"))
    assert set(required_features(AgentSettings())) <= set(frame.columns)
    return frame.sort("date", "symbol")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=250)
    ap.add_argument("--sessions", type=int, default=1260)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    feats = synthetic_features(args.symbols, args.sessions)
    quality = feats.select("date", "symbol", passed=pl.lit(True))
    a_set, m_set = AgentSettings(), MetaBrainSettings()
    t_agents, t_meta = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        outputs = run_agents(feats, a_set, benchmark="SPY")
        t1 = time.perf_counter()
        decisions = meta_brain.decide(outputs, quality, m_set, exclude_symbols=["SPY"])
        t2 = time.perf_counter()
        t_agents.append(t1 - t0)
        t_meta.append(t2 - t1)
    print(f"features rows          {feats.height:,} ({args.symbols} symbols + benchmark x {args.sessions} sessions)")
    print(f"model_outputs rows     {outputs.height:,}")
    print(f"decisions rows         {decisions.height:,}")
    print(f"agents      wall time  best {min(t_agents):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in t_agents)})")
    print(f"meta-brain  wall time  best {min(t_meta):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in t_meta)})")
    print(f"total                  best {min(a + m for a, m in zip(t_agents, t_meta)):.2f} s")
    print(f"decision counts        {meta_brain.decision_counts(decisions)}")
    print(f"regime sessions        {dict(decisions.group_by('regime').agg(pl.col('date').n_unique()).rows())}")


if __name__ == "__main__":
    main()
