"""Wall time of the three statistical agents (garch, hmm_regime, evt_tail) on a five-year backfill and a daily cycle.

Data: the real S&P 500 folder (../shared/data/prices, 505 symbols x 1,259 sessions) when present, else a
seeded GARCH-t market of the same size. The history columns the agents read (logret_1, vol_20, px_sma_50)
are computed here with polars. Measured (what the agent_outputs asset adds for them):
- backfill: every grid fit of the window (GARCH, HMM, EVT: their fit() as defs/agent_fits.py calls it)
  plus their compute() over the window in the asset's session blocks (partitions.session_blocks);
- daily, fits stored: compute() for one session with its history (no fit);
- daily, the day's own refits: the fits whose fit date is that session (with staggered refits ~1/cadence of
  the symbols for GARCH and EVT; the HMM when the day is on its grid) + compute();
- daily, the same plus an HMM refit forced (the worst day);
each over the last 21 sessions of the data (every phase of a 21-session grid once): median and max.
Prints medians of --repeat runs, wall and CPU (process) time -- on a shared machine the CPU time is the
figure that does not depend on the other processes; asserts nothing about time.

    /work/venv/bin/python benchmarks/stat_agents.py [--repeat 3] [--synthetic] [--settings '{"garch_cadence": 21}']
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from trading_assets.defs.partitions import session_blocks
from trading_assets.domain import calendar
from trading_assets.domain.agents import AgentContext
from trading_assets.domain.agents import history as hist
from trading_assets.domain.agents.evt_tail import EvtTailAgent
from trading_assets.domain.agents.garch_vol import GarchVolAgent
from trading_assets.domain.agents.hmm_regime import HmmRegimeAgent
from trading_assets.settings import AgentSettings

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "prices" / "sp500_2013_2018.parquet"
AGENTS = (GarchVolAgent(), HmmRegimeAgent(), EvtTailAgent())


def real_history() -> pl.DataFrame:
    bars = pl.read_parquet(REAL).select("date", "symbol", "close").sort("symbol", "date")
    return _columns(bars)


def synthetic_history(n_symbols: int = 505, n_sessions: int = 1259, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    end = date(2018, 2, 7)
    days = calendar.sessions(calendar.lookback_start(end, n_sessions - 1), end)
    s2 = np.full(n_symbols, 1e-4)
    r = np.empty((len(days), n_symbols))
    for t in range(len(days)):
        r[t] = np.sqrt(s2) * rng.standard_t(5, n_symbols) / np.sqrt(5 / 3)
        s2 = 2e-6 + 0.08 * r[t] ** 2 + 0.9 * s2
    close = 100 * np.exp(np.cumsum(r, axis=0))
    bars = pl.DataFrame({"date": np.repeat(np.array(days, dtype="datetime64[D]"), n_symbols),
                         "symbol": np.tile([f"S{i:03d}" for i in range(n_symbols)], len(days)),
                         "close": close.reshape(-1)}).with_columns(pl.col("date").cast(pl.Date)).sort("symbol", "date")
    return _columns(bars)


def _columns(bars: pl.DataFrame) -> pl.DataFrame:
    lr = (pl.col("close") / pl.col("close").shift(1)).log().over("symbol")
    return bars.with_columns(logret_1=lr).with_columns(
        vol_20=(pl.col("logret_1").rolling_std(20) * np.sqrt(252)).over("symbol"),
        px_sma_50=(pl.col("close") / pl.col("close").rolling_mean(50) - 1).over("symbol"),
        ewma_vol_20=(pl.col("logret_1").rolling_std(20) * np.sqrt(252)).over("symbol"),
        beta_60=pl.lit(1.0),
    ).drop("close").sort("date", "symbol")


def backfill(history: pl.DataFrame, s: AgentSettings) -> dict[str, float]:
    sessions = history["date"].unique().sort().to_list()
    t = {}
    fits = []
    rows = history.select("date", "symbol")
    for a in AGENTS:
        t0 = time.process_time()
        fits.append(hist.fit_all(a, history, rows, s))  # every (fit date, symbol) pair of the range, batched together
        t[f"fit {a.name}"] = time.process_time() - t0
    all_fits = pl.concat(fits)
    n_sym = history["symbol"].n_unique()
    feats_cols = ["date", "symbol", "ewma_vol_20", "vol_20", "beta_60"]
    t_comp = {a.name: 0.0 for a in AGENTS}
    n_hist = max(a.history(s).sessions for a in AGENTS)
    for lo, hi in session_blocks(sessions, n_sym):
        feats = history.filter(pl.col("date").is_between(lo, hi)).select(feats_cols)
        ctx = AgentContext(history=history.filter(pl.col("date").is_between(calendar.lookback_start(lo, n_hist), hi)), fits=all_fits)
        for a in AGENTS:
            t0 = time.process_time()
            a.compute(feats, s, None, context=ctx.for_agent(a.name))
            t_comp[a.name] += time.process_time() - t0
    for k, v in t_comp.items():
        t[f"compute {k}"] = v
    t["total"] = sum(t.values())
    return t, all_fits


def daily(history: pl.DataFrame, fits: pl.DataFrame, s: AgentSettings, day: date, mode: str) -> tuple[float, int]:
    """CPU seconds of one daily cycle at `day` and the number of fits it made. mode: "stored" (every fit
    the day uses is stored), "refit" (the day's own refits are missing: the per-symbol agents' pairs whose
    fit date is the day -- ~1/cadence of the symbols when staggered, all or none when not -- and the HMM's
    if the day is on its grid), "hmm" (the same plus an HMM refit forced: the worst day)."""
    n_hist = max(a.history(s).sessions for a in AGENTS)
    h = history.filter(pl.col("date").is_between(calendar.lookback_start(day, n_hist), day))
    feats = h.filter(pl.col("date") == day).select("date", "symbol", "ewma_vol_20", "vol_20", "beta_60")
    t0 = time.process_time()
    use, made = fits, 0
    if mode != "stored":
        use = fits.filter(pl.col("fit_date") != day)  # the day's refits are not stored yet
        new = []
        for a in AGENTS:
            if getattr(a, "market_level", False):
                if mode == "hmm" or calendar.cadence_session(day, a.cadence(s)) == day:
                    new.append(a.fit(h, [day], s, None))
            else:
                jobs = {r: v for r, v in a.fit_jobs(feats, s).items() if r == day}
                if jobs:
                    new.append(a.fit(h, [day], s, None, symbols=jobs))
        made = sum(f.height for f in new)
        use = pl.concat([use, *new])
    ctx = AgentContext(history=h, fits=use)
    for a in AGENTS:
        a.compute(feats, s, None, context=ctx.for_agent(a.name))
    return time.process_time() - t0, made


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--settings", default="{}", help='AgentSettings overrides as JSON, e.g. {"garch_cadence": 21}')
    args = ap.parse_args()
    s = dataclasses.replace(AgentSettings(), **json.loads(args.settings))
    history = synthetic_history() if args.synthetic or not REAL.exists() else real_history()
    src = "synthetic GARCH-t market" if args.synthetic or not REAL.exists() else f"real S&P 500 folder ({REAL.name})"
    import trading_assets

    # a script's own folder, not the checkout, is first on sys.path: the editable install's code may be another checkout's
    print(f"code: {Path(trading_assets.__file__).parent} (set PYTHONPATH=<checkout> to measure a worktree)")
    print(f"data: {src}: {history['symbol'].n_unique()} symbols x {history['date'].n_unique()} sessions")
    print(f"cadences: garch {s.garch_cadence}, hmm {s.hmm_cadence}, evt {s.evt_cadence} sessions; windows "
          f"{s.garch_window}/{s.hmm_window}/{s.evt_window}; staggered: garch {s.garch_stagger}, evt {s.evt_stagger}")
    runs = []
    for _ in range(args.repeat):
        w0 = time.perf_counter()
        t, fits = backfill(history, s)
        t["wall (whole backfill)"] = time.perf_counter() - w0
        runs.append(t)
    print("times below: CPU seconds of this process (time.process_time), except the wall line")
    for k in runs[0]:
        vals = [r[k] for r in runs]
        print(f"backfill {k:<22} median {statistics.median(vals):7.2f} s  (runs: {', '.join(f'{v:.2f}' for v in vals)})")
    for a in ("garch", "evt_tail"):
        g = fits.filter(pl.col("agent") == a)
        print(f"{a} fits {g.height}, not converged or failed {g.filter(~pl.col('converged')).height}")
    # the daily cycle on each of the last 21 sessions (every phase of a 21-session grid once): median and max
    days = history["date"].unique().sort().to_list()[-21:]
    for mode, label in (("stored", "daily, fits stored"), ("refit", "daily, the day's own refits"),
                        ("hmm", "daily, own refits + an HMM refit")):
        per_day = []
        for day in days:
            vals = [daily(history, fits, s, day, mode) for _ in range(args.repeat)]
            per_day.append((statistics.median(v for v, _ in vals), vals[0][1]))
        secs = [v for v, _ in per_day]
        made = [m for _, m in per_day]
        print(f"{label:<34} over the last 21 sessions: median {statistics.median(secs):6.3f} s, max {max(secs):6.3f} s "
              f"(fits per day: median {statistics.median(made):.0f}, max {max(made)})")


if __name__ == "__main__":
    main()
