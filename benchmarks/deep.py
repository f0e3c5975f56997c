"""Deep models on the CPU (issue #17): one retrain of each deep variant on a 500-symbol x 5-year panel of
the catalog's size, and the daily inference of every deep model; medians of repeated runs.

    python benchmarks/deep.py [--symbols 500] [--sessions 1259] [--repeat 3]

The panel is synthetic (normal features, rank-gauss-like, with a planted signal in the label): the
timings depend on its shape, not on its values. Trained exactly as the model_training asset trains:
domain.models.fit.train_variant with ModelSettings' defaults (max_train_rows thins the training
sessions; the sequence family also reads the unthinned history).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import numpy as np
import polars as pl


def panel(n_symbols: int, n_sessions: int, seed: int = 0):
    from trading_assets.defs.models import model_feature_columns
    from trading_assets.domain import calendar
    from trading_assets.settings import ModelSettings

    days = calendar.sessions(date(2013, 2, 8), date(2019, 12, 31))[:n_sessions]
    cols = model_feature_columns(ModelSettings())
    rng = np.random.default_rng(seed)
    n = len(days) * n_symbols
    data = {c: rng.standard_normal(n).astype(np.float32) for c in cols}
    syms = [f"S{i:03d}" for i in range(n_symbols)]
    f = pl.DataFrame({"date": np.repeat(np.array(days, dtype="datetime64[D]"), n_symbols), "symbol": syms * len(days), **data})
    f = f.with_columns(pl.col("date").cast(pl.Date))
    ret = 0.003 * data["mom_3m"] + 0.02 * rng.standard_normal(n)
    nxt = {d: calendar.next_session(calendar.next_session(d)) for d in days}
    lab = f.select("date", "symbol").with_columns(
        fwd_return=pl.Series(ret.astype(np.float64)), valid=pl.lit(True),
        known_at=pl.col("date").replace_strict(nxt, return_dtype=pl.Date),
    )  # fmt: skip
    return f, lab, days


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--sessions", type=int, default=1259)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from trading_assets.domain import calendar
    from trading_assets.domain.agents.ranknet import RankNetAgent
    from trading_assets.domain.agents.trained import lookback_sessions, predict_family
    from trading_assets.domain.agents.transformer import TransformerAgent
    from trading_assets.domain.models.fit import train_variant
    from trading_assets.settings import ModelSettings

    s = ModelSettings()
    t0 = time.perf_counter()
    f, lab, days = panel(args.symbols, args.sessions)
    print(f"panel: {args.symbols} symbols x {len(days)} sessions x {f.width - 2} features ({time.perf_counter() - t0:.1f} s to build)")
    t = days[-1]
    print(f"{'variant':<18} {'retrain s (median)':>19} {'min':>7} {'max':>7} {'rows':>8} {'thin':>5} {'daily inference s':>18}")
    daily_total = 0.0
    for agent in (RankNetAgent(), TransformerAgent()):
        for variant in agent.variants(s):
            fits, infer = [], []
            r = None
            for _ in range(args.repeat):
                a = time.perf_counter()
                r = train_variant(agent, variant, t, f, lab, days[0], "bench", s, seed=7)
                fits.append(time.perf_counter() - a)
            rows = f.filter(pl.col("date") == t)
            back = lookback_sessions(agent, variant)
            hist = f.filter(pl.col("date") >= calendar.lookback_start(t, back)) if back else None
            for _ in range(max(3, args.repeat)):
                a = time.perf_counter()
                predict_family(agent, r.artifact, rows, variant, s, hist)
                infer.append(time.perf_counter() - a)
            daily_total += statistics.median(infer)
            print(f"{variant.name:<18} {statistics.median(fits):>19.1f} {min(fits):>7.1f} {max(fits):>7.1f} {r.train_rows:>8} {r.thin_every:>5} "
                  f"{statistics.median(infer):>18.3f}")  # fmt: skip
    print(f"daily inference of every deep model: {daily_total:.3f} s (target < 2 s); one retrain each: target <= 300 s")


if __name__ == "__main__":
    main()
