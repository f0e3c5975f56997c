"""Speed of the trained agents (issue #12): one retrain, daily inference. Prints medians.

    python benchmarks/models.py [--symbols 500] [--years 5] [--repeats 3]

(1) one retrain of every variant at the last session of a 500-symbol x 5-year market with the model
    features of the catalog (123 columns, rank-gauss per session), expanding window: the training rows
    are thinned to ModelSettings.max_train_rows (100,000 by default: every k-th session back from the
    last, k = ceil(rows / max)); target <= 60 s for one retrain (all variants of a family);
(2) daily inference: the rank-gauss normalization of one session + predict of every variant; target < 1 s.
The market is synthetic (random features with a planted signal, trading_assets_tests/models/fixtures.py),
so the timings are those of the real shapes; the figures on real data come from the walk-forward run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trading_assets.defs.models import model_feature_columns  # noqa: E402
from trading_assets.domain import calendar  # noqa: E402
from trading_assets.domain.agents import TRAINED_AGENTS, trained_variants  # noqa: E402
from trading_assets.domain.agents.trained import lookback_sessions, predict_family  # noqa: E402
from trading_assets.domain.models.fit import train_variant  # noqa: E402
from trading_assets.domain.models.normalize import rank_gauss  # noqa: E402
from trading_assets.settings import ModelSettings  # noqa: E402
from trading_assets_tests.models.fixtures import market  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--years", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--all", action="store_true", help="every trained family (default: kind 'learned'; the deep ones: benchmarks/deep.py)")
    args = ap.parse_args()
    s = ModelSettings()
    end = date(2018, 2, 7)
    start = date(end.year - args.years, end.month, end.day)
    t0 = time.perf_counter()
    raw, labels = market(start, end, n_symbols=args.symbols)
    cols = model_feature_columns(s)
    feats = rank_gauss(raw, cols)
    print(f"market: {raw.height:,} rows x {len(cols)} model features ({time.perf_counter() - t0:.1f} s to build and normalize)")
    t = calendar.sessions(end, end)[0]
    pairs = [(a, v) for a, v in trained_variants(TRAINED_AGENTS, s) if args.all or getattr(a, "kind", "") == "learned"]
    fams: dict[str, list[float]] = {}
    results = {}
    for _ in range(args.repeats):
        per: dict[str, float] = {}
        for agent, variant in pairs:
            a = time.perf_counter()
            r = train_variant(agent, variant, t, feats, labels, start, "bench", s, 7)
            per[agent.name] = per.get(agent.name, 0.0) + time.perf_counter() - a
            results[variant.name] = r
        for k, v in per.items():
            fams.setdefault(k, []).append(v)
        fams.setdefault("ALL", []).append(sum(per.values()))
    print(f"\n(1) one retrain at {t} (median of {args.repeats}; all variants of the family; target <= 60 s per family)")
    for k, v in fams.items():
        print(f"  {k:<22} {statistics.median(v):7.1f} s")
    champ = [r.fit_seconds for name, r in results.items() if any(name == a.name for a, _ in pairs)]
    print(f"  fits of the champions only (a session where the challengers do not retrain, 2 of 3): {sum(champ):.1f} s; "
          f"all variants' fits: {sum(r.fit_seconds for r in results.values()):.1f} s")
    for name, r in results.items():
        print(f"    {name:<30} rows={r.train_rows:,} sessions={r.train_sessions} thin_every={r.thin_every} fit={r.fit_seconds:.1f} s is_rank_ic={r.is_rank_ic:.3f}")
    day = raw.filter(raw["date"] == raw["date"].max())
    # a sequence family (--all) reads its lookback sessions before the scored one
    back = max([lookback_sessions(a, v) for a, v in pairs] + [0])
    history = rank_gauss(raw.filter(raw["date"] >= calendar.lookback_start(t, back)), cols) if back else None
    times = []
    for _ in range(max(5, args.repeats)):
        a = time.perf_counter()
        x = rank_gauss(day, cols)
        for agent, variant in pairs:
            predict_family(agent, results[variant.name].artifact, x, variant, s, history)
        times.append(time.perf_counter() - a)
    print(f"\n(2) daily inference of every variant ({len(pairs)}) on {day.height} symbols: median {statistics.median(times) * 1000:.0f} ms (target < 1 s)")


if __name__ == "__main__":
    main()
