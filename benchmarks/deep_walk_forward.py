"""The deep families' walk-forward out-of-sample record on a finished run's warehouse (read-only).

    python benchmarks/deep_walk_forward.py --reuse /tmp/dq [--first-training 2015-01-02] [--max-train-rows 60000]
        [--variants ranknet,transformer] [--end 2018-02-07]

Exactly what model_training + agent_outputs do for a deep family, without writing tables: at each of
its training sessions t >= first_training (every cadence x deep_cadence_multiple sessions from the fixed
anchor), domain.models.fit.train_variant on the features (rank-gauss per session) and the labels known
at t with the purge; the model then scores every session until the next training (reading the
sessions before each one a sequence model needs). Scores are compared with the labels (fwd_return,
h = 1) by the same per-session rank IC as signal_quality (domain/evaluation/ic.py); the gradient-boosted
families' scores from the run's model_outputs (when the run trained them) are printed beside, over the
same label dates. Nothing here tunes anything: the deep parameters are the registry's a-priori ones.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reuse", type=Path, required=True, help="a decision_quality workdir (its data/trading.duckdb)")
    ap.add_argument("--first-training", default="2015-01-02")
    ap.add_argument("--end", default="2018-02-07")
    ap.add_argument("--max-train-rows", type=int, default=60_000)
    ap.add_argument("--variants", default="ranknet,transformer", help="comma-separated deep variant names")
    a = ap.parse_args()

    from trading_assets.domain import calendar
    from trading_assets.domain.agents import TRAINED_AGENTS, trained_variants
    from trading_assets.domain.agents.trained import cadence_multiple, lookback_sessions, predict_family
    from trading_assets.domain.evaluation import ic
    from trading_assets.domain.models import training
    from trading_assets.domain.models.fit import train_variant
    from trading_assets.domain.models.normalize import rank_gauss
    from trading_assets.settings import ModelSettings

    first_training, end = date.fromisoformat(a.first_training), date.fromisoformat(a.end)
    s = ModelSettings(first_training=first_training, max_train_rows=a.max_train_rows, mlflow=False)
    wanted = [v for v in a.variants.split(",") if v]
    pairs = [(ag, v) for ag, v in trained_variants(TRAINED_AGENTS, s) if v.name in wanted]
    if not pairs:
        raise SystemExit(f"none of {wanted} is a trained variant here (is torch installed?)")
    con = duckdb.connect(str(a.reuse / "data" / "trading.duckdb"), read_only=True)
    bench = [r[0] for r in con.sql("SELECT symbol FROM universe WHERE is_benchmark").fetchall()]
    cols = sorted({c for ag, _ in pairs for c in ag.features(s)})
    t0 = time.perf_counter()
    raw = con.sql(f"SELECT date, symbol, {', '.join(cols)} FROM features WHERE date <= ? ORDER BY date, symbol", params=[end]).pl()
    raw = raw.filter(~pl.col("symbol").is_in(bench))
    x = pl.concat([rank_gauss(g, cols) for _, g in raw.group_by(pl.col("date").dt.year(), maintain_order=True)]).sort("date", "symbol")
    labels = con.sql("SELECT date, symbol, horizon, known_at, fwd_return, valid FROM labels WHERE horizon = 1").pl()
    labels = labels.filter(~pl.col("symbol").is_in(bench))
    history_start = x["date"].min()
    fv = con.execute("SELECT max(feature_version) FROM features").fetchall()[0][0]
    print(f"read {x.height:,} feature rows x {len(cols)} columns, {labels.height:,} labels in {time.perf_counter() - t0:.1f} s")
    days = calendar.sessions(first_training, end)
    scored = []
    fits: dict[str, list[float]] = {}
    for agent, variant in pairs:
        mult = cadence_multiple(agent, s)
        trains = [t for t in calendar.sessions(calendar.lookback_start(first_training, s.cadence * mult), end)
                  if training.is_training_session(t, s, mult)]  # fmt: skip
        trains = [t for t in trains if t >= trains[0]]
        back = lookback_sessions(agent, variant)
        for i, t in enumerate(trains):
            nxt = trains[i + 1] if i + 1 < len(trains) else None
            serve = [d for d in days if d >= t and (nxt is None or d < nxt)]
            if not serve:
                continue
            r = train_variant(agent, variant, t, x, labels, history_start, fv, s, seed=7)
            fits.setdefault(variant.name, []).append(r.fit_seconds)
            if r.artifact is None:
                print(f"  {variant.name} {t}: {r.status} {r.reason}")
                continue
            rows = x.filter(pl.col("date").is_in(serve))
            hist = x.filter((pl.col("date") >= calendar.lookback_start(serve[0], back)) & (pl.col("date") <= serve[-1])) if back else None
            score, _ = predict_family(agent, r.artifact, rows, variant, s, hist)
            scored.append(rows.select("date", "symbol").with_columns(source=pl.lit(variant.name), score=pl.Series(score)))
            print(f"  {variant.name} trained {t} ({r.train_rows:,} rows, fit {r.fit_seconds:.1f} s), serves {serve[0]}..{serve[-1]}")
    ours = pl.concat(scored).filter(pl.col("score").is_not_null() & pl.col("score").is_finite())
    others = con.sql("SELECT date, symbol, agent AS source, score FROM model_outputs WHERE role IN ('champion', 'shadow') "
                     "AND score IS NOT NULL AND date BETWEEN ? AND ?", params=[first_training, end]).pl()  # fmt: skip
    others = others.filter(~pl.col("source").is_in(wanted))
    daily = ic.session_metrics(pl.concat([ours, others]), labels, label="fwd_return")
    print(f"\nOut-of-sample rank IC against fwd_return (h=1), label dates {first_training}..{end}")
    print(f"{'source':<26}{'n':>6}{'rank IC':>10}{'ICIR':>8}{'t':>8}{'coverage':>10}{'fit s (mean)':>14}{'trainings':>11}")
    for (src,), g in sorted(daily.group_by("source"), key=lambda kv: kv[0][0]):
        v = g["rank_ic"].drop_nulls().to_numpy()
        if v.size < 2:
            continue
        m, sd = v.mean(), v.std(ddof=1)
        f = fits.get(src, [])
        fit_txt = f"{np.mean(f):.1f}" if f else "(run)"
        print(f"{src:<26}{v.size:>6}{m:>10.4f}{m / sd:>8.3f}{m / sd * math.sqrt(v.size):>8.2f}{g['coverage'].mean():>10.3f}{fit_txt:>14}{len(f) or '':>11}")


if __name__ == "__main__":
    main()
