"""Rank IC of the three statistical agents' mu on the real S&P 500 folder, without running the graph.

The agents (garch, hmm_regime, evt_tail) run over every session exactly as in a backfill (their fits on the
calendar grid, compute in session blocks: benchmarks/stat_agents.backfill). Labels as the labels contract,
h = 1: fwd_return(s) = open(s+2) / open(s+1) - 1 from the folder's split-adjusted opens (no dividends, no quality
gate: a label beyond +-50% is dropped as a data error), excess_return = fwd_return - the session's equal-weight
mean; no SPY here, so the HMM reads the cross-section's mean return (the graph's run reads SPY). Scores: each
agent's mu where it speaks (confidence > 0). Metrics: domain/evaluation/ic.session_metrics per session, then the
mean rank IC, ICIR = mean / sd of the daily rank IC, t = ICIR * sqrt(n), hit rate and quintile spread means.

    /work/venv/bin/python benchmarks/stat_agents_ic.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stat_agents import AGENTS, REAL, _columns  # noqa: E402  (the sibling benchmark script)

from trading_assets.defs.partitions import session_blocks  # noqa: E402
from trading_assets.domain import calendar  # noqa: E402
from trading_assets.domain.agents import AgentContext  # noqa: E402
from trading_assets.domain.agents import history as hist  # noqa: E402
from trading_assets.domain.evaluation.ic import session_metrics  # noqa: E402
from trading_assets.settings import AgentSettings  # noqa: E402


def main() -> None:
    bars = pl.read_parquet(REAL).select("date", "symbol", "open", "close").sort("symbol", "date")
    history = _columns(bars.select("date", "symbol", "close"))
    o = pl.col("open")
    labels = bars.with_columns(fwd_return=(o.shift(-2) / o.shift(-1) - 1).over("symbol")).select("date", "symbol", "fwd_return")
    labels = labels.with_columns(valid=pl.col("fwd_return").is_finite() & (pl.col("fwd_return").abs() < 0.5))
    labels = labels.with_columns(
        excess_return=pl.col("fwd_return") - pl.col("fwd_return").filter(pl.col("valid")).mean().over("date"), horizon=pl.lit(1)
    )
    s = AgentSettings()
    sessions = history["date"].unique().sort().to_list()
    rows = history.select("date", "symbol")
    fits = pl.concat([hist.fit_all(a, history, rows, s) for a in AGENTS])  # every fit the sessions use (staggered)
    n_hist = max(a.history(s).sessions for a in AGENTS)
    outs = []
    for lo, hi in session_blocks(sessions, history["symbol"].n_unique()):
        feats = history.filter(pl.col("date").is_between(lo, hi)).select("date", "symbol", "ewma_vol_20", "vol_20", "beta_60")
        ctx = AgentContext(history=history.filter(pl.col("date").is_between(calendar.lookback_start(lo, n_hist), hi)), fits=fits)
        for a in AGENTS:
            outs.append(a.compute(feats, s, None, context=ctx.for_agent(a.name)))
    out = pl.concat(outs)
    scores = out.filter(pl.col("confidence") > 0).select("date", "symbol", source=pl.col("agent"), score=pl.col("mu"))
    daily = session_metrics(scores, labels)
    print(f"real S&P folder {REAL.name}: {history['symbol'].n_unique()} symbols, {len(sessions)} sessions; h = 1, excess_return")
    print(f"{'source':<12}{'sessions':>9}{'mean rank IC':>14}{'ICIR':>8}{'t':>8}{'hit rate':>10}{'spread':>10}{'coverage':>10}")
    for src in sorted(daily["source"].unique().to_list()):
        d = daily.filter(pl.col("source") == src)
        r = d["rank_ic"].drop_nulls().to_numpy()
        ir = r.mean() / r.std(ddof=1) if r.size > 1 else float("nan")
        print(f"{src:<12}{r.size:>9}{r.mean():>14.4f}{ir:>8.3f}{ir * np.sqrt(r.size):>8.2f}"
              f"{d['hit_rate'].mean():>10.4f}{d['spread'].mean():>10.5f}{d['coverage'].mean():>10.3f}")
    reg = out.filter(pl.col("agent") == "hmm_regime").group_by("date").agg(pl.col("state").first())
    print("hmm_regime sessions per state:", dict(reg.group_by("state").len().sort("state").iter_rows()))


if __name__ == "__main__":
    main()
