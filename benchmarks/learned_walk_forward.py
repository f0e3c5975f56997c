"""The trained agents' walk-forward record on a finished run (read-only): out-of-sample rank IC of every
source over a period, the training runs and promotions, the book vs SPY and equal weight over the period.

    python benchmarks/learned_walk_forward.py --reuse /tmp/dq [--start 2015-01-02] [--end 2018-02-07]

The run itself: benchmarks/decision_quality.py with
    --settings '{"models": {"first_training": "2015-01-02"}}'
(first training on the 2013-2014 labels, every model scored from its first fit in January 2015 on; every other
setting the default, the Meta-Brain's calibration included; uncalibrated: benchmarks/decisions_rerun.py).

Per source, over the label dates s in [start, end] (label: fwd_return h = 1, open(s+1) -> open(s+2)):
the daily Spearman rank IC (domain/evaluation/ic.py), its mean, ICIR = mean / sd, t = ICIR x sqrt(n),
and coverage (symbols scored / symbols labelled). Heuristic agents are scored by their mu, trained
models by their raw score (every session, whether or not the model speaks: its true out-of-sample
record), the Meta-Brain by decisions.mu_hat_adj. The book, SPY and the equal-weight universe: CAGR,
volatility, Sharpe (daily, x sqrt(252), zero rate), max drawdown, total return over the period, from
the performance table (net of commission and slippage).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trading_assets.domain.evaluation import ic  # noqa: E402


def series_stats(r: np.ndarray) -> dict:
    r = r[np.isfinite(r)]
    if r.size == 0:
        return {}
    level = np.cumprod(1 + r)
    years = r.size / 252
    dd = 1 - level / np.maximum.accumulate(level)
    return {"total": level[-1] - 1, "cagr": level[-1] ** (1 / years) - 1, "vol": r.std(ddof=1) * math.sqrt(252),
            "sharpe": r.mean() / r.std(ddof=1) * math.sqrt(252), "max_dd": dd.max()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reuse", type=Path, required=True, help="the decision_quality workdir")
    ap.add_argument("--start", default="2015-01-02")
    ap.add_argument("--end", default="2018-02-07")
    a = ap.parse_args()
    con = duckdb.connect(str(a.reuse / "data" / "trading.duckdb"), read_only=True)
    p = [a.start, a.end]
    labels = con.sql("SELECT date, symbol, horizon, known_at, fwd_return, valid FROM labels WHERE horizon = 1 AND date BETWEEN ? AND ?",
                     params=p).pl()  # fmt: skip
    bench = [r[0] for r in con.sql("SELECT symbol FROM universe WHERE is_benchmark").fetchall()]
    labels = labels.filter(~pl.col("symbol").is_in(bench))
    mo = con.sql(
        "SELECT date, symbol, agent AS source, coalesce(role, 'heuristic') AS role, CASE WHEN coalesce(role, 'heuristic') = 'heuristic' "
        "THEN mu ELSE score END AS score FROM model_outputs WHERE date BETWEEN ? AND ?", params=p).pl()  # fmt: skip
    dec = con.sql("SELECT date, symbol, 'meta_brain' AS source, 'meta' AS role, mu_hat_adj AS score FROM decisions WHERE date BETWEEN ? AND ?",
                  params=p).pl()  # fmt: skip
    roles = pl.concat([mo, dec]).group_by("source").agg(pl.col("role").mode().first()).rows()
    daily = ic.session_metrics(pl.concat([mo, dec]).drop("role"), labels, label="fwd_return")
    rows = []
    for (src,), g in daily.group_by("source"):
        v = g["rank_ic"].drop_nulls().to_numpy()
        if v.size < 2:
            rows.append((src, v.size, None, None, None, g["coverage"].mean()))
            continue
        m, sd = v.mean(), v.std(ddof=1)
        rows.append((src, v.size, m, m / sd, m / sd * math.sqrt(v.size), g["coverage"].mean()))
    role = dict(roles)
    print(f"Out-of-sample rank IC against fwd_return (h=1), label dates {a.start}..{a.end}")
    print(f"{'source':<30}{'role':<10}{'n':>6}{'rank IC':>10}{'ICIR':>8}{'t':>8}{'coverage':>10}")
    order = {"heuristic": 0, "champion": 1, "shadow": 2, "meta": 3}
    for src, n, m, ir, t, cov in sorted(rows, key=lambda r: (order.get(role.get(r[0]), 9), r[0])):
        f = lambda x, d: "na" if x is None else f"{x:.{d}f}"  # noqa: E731
        print(f"{src:<30}{role.get(src, ''):<10}{n:>6}{f(m, 4):>10}{f(ir, 3):>8}{f(t, 2):>8}{f(cov, 3):>10}")
    runs = con.sql("SELECT status, count(*) AS n, round(sum(fit_seconds), 1) AS fit_s, min(date) AS first, max(date) AS last "
                   "FROM model_training_runs GROUP BY status ORDER BY status").pl()  # fmt: skip
    print("\nTraining runs:\n", runs)
    print(con.sql("SELECT agent, count(*) AS trainings, round(avg(is_rank_ic), 4) AS mean_is_rank_ic, round(avg(val_rank_ic), 4) AS "
                  "mean_val_rank_ic, round(avg(fit_seconds), 1) AS mean_fit_s, max(train_rows) AS max_rows FROM model_training_runs "
                  "WHERE status = 'TRAINED' GROUP BY agent ORDER BY agent").pl())  # fmt: skip
    print("\nPromotions (action promote):\n", con.sql("SELECT date, family, champion, previous, round(t_stat, 2) AS t, n_sessions FROM "
                                                   "model_promotions WHERE action = 'promote' ORDER BY date").pl())  # fmt: skip
    cols = {r[0] for r in con.sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'agent_calibration'").fetchall()}
    if "as_of" in cols:  # the Meta-Brain's calibration factors over the period (empty when the run was uncalibrated)
        print("\nMeta-Brain calibration factors over the period (mean factor, share of sessions > 0, calibration sessions):")
        print(con.sql("SELECT agent, round(avg(factor), 3) AS mean_factor, round(avg(CASE WHEN factor > 0 THEN 1 ELSE 0 END), 3) AS "
                      "share_nonzero, round(max(factor), 3) AS max_factor, count(DISTINCT as_of) AS as_of_sessions FROM agent_calibration "
                      "WHERE date BETWEEN ? AND ? GROUP BY agent ORDER BY agent", params=p).pl())  # fmt: skip
    perf = con.sql("SELECT date, net_return, benchmark_return, ew_return, turnover, cost_fraction FROM performance WHERE date BETWEEN ? AND ? "
                   "ORDER BY date", params=p).pl()  # fmt: skip
    print(f"\nBook vs SPY vs equal weight, {a.start}..{a.end} (net of costs; SPY total return, book and EW price returns)")
    print(f"{'series':<14}{'total':>9}{'CAGR':>8}{'vol':>8}{'Sharpe':>8}{'maxDD':>8}")
    for name, col in (("book", "net_return"), ("SPY", "benchmark_return"), ("equal weight", "ew_return")):
        s = series_stats(perf[col].fill_null(float("nan")).to_numpy())
        if s:
            print(f"{name:<14}{s['total']:>9.3f}{s['cagr']:>8.3f}{s['vol']:>8.3f}{s['sharpe']:>8.2f}{s['max_dd']:>8.3f}")
    if perf.height:
        yrs = perf.height / 252
        print(f"book turnover {perf['turnover'].sum() / yrs:.1f}x NAV a year, costs {perf['cost_fraction'].sum() / yrs:.4f} of NAV a year")


if __name__ == "__main__":
    main()
