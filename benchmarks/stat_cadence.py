"""How much the GARCH sigma forecasts move with the refit cadence (the argument for garch_cadence = 63).

On the real S&P 500 folder: GARCH(1,1)-t fits every 21 and every 63 sessions (same 756-session window),
then every session's one-step sigma forecast from each, filtered forward as the agent does. Prints the
distribution of |sigma_63 / sigma_21 - 1| over (session, symbol) rows where both fits converged, and
the CPU time of each set of fits.

    /work/venv/bin/python benchmarks/stat_cadence.py
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import polars as pl

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stat_agents import real_history  # noqa: E402  (the sibling benchmark script)
from trading_assets.domain.agents import AgentContext
from trading_assets.domain.agents import history as hist
from trading_assets.domain.agents.garch_vol import GarchVolAgent
from trading_assets.settings import AgentSettings


def main() -> None:
    h = real_history()
    sessions = h["date"].unique().sort().to_list()
    scored = sessions[504:]  # the last three years: every fit has at least 504 returns
    feats = h.filter(pl.col("date").is_in(scored)).select("date", "symbol", "ewma_vol_20", "vol_20")
    agent = GarchVolAgent()
    out = {}
    for cad in (21, 63):
        s = dataclasses.replace(AgentSettings(), garch_cadence=cad)
        c0 = time.process_time()
        fits = hist.fit_all(agent, h, feats.select("date", "symbol"), s)  # every fit the scored sessions use
        c1 = time.process_time()
        o = agent.compute(feats, s, None, AgentContext(history=h, fits=fits))
        print(f"cadence {cad}: {fits['fit_date'].n_unique()} fit dates, {fits.height} series, "
              f"not converged {fits.filter(~pl.col('converged')).height}; fit CPU {c1 - c0:.1f} s")
        out[cad] = o.filter(pl.col("confidence") > 0).select("date", "symbol", pl.col("sigma").alias(f"s{cad}"))
    both = out[21].join(out[63], on=["date", "symbol"])
    rel = (both["s63"] / both["s21"] - 1).abs().to_numpy()
    q = np.percentile(rel, [50, 90, 95, 99])
    print(f"rows with both fits: {both.height}; |sigma_63 / sigma_21 - 1|: median {q[0]:.4f}, p90 {q[1]:.4f}, "
          f"p95 {q[2]:.4f}, p99 {q[3]:.4f}")


if __name__ == "__main__":
    main()
