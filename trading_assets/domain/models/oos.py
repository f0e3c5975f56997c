"""Out-of-sample rank IC of a score, per session and rolling, point in time.

Daily rank IC of a source on label date s: the research record's Spearman rank IC
(domain/evaluation/ic.py::session_metrics) of the score against the label fwd_return (h = 1):

    RIC_s = corr(rank(score_i,s), rank(fwd_return_i,s))    (average ranks; needs >= 3 symbols and
                                                            non-constant ranks, else no value)

Known at: RIC_s is known at known_at(s) (= the label's known_at, s + 1 + h). The rolling statistics
"as of session t" use the values that became known in the last W sessions up to t, i.e. with
t - W sessions < known_at <= t (W sessions of label knowledge; a session without a value counts in the
window and leaves n_t < W), each statistic computed from exactly those values (no running sums): the
same numbers, to the last bit, whatever earlier sessions a run happened to read (a daily run and a
range run agree):

    n_t     = number of those values (<= W)
    IC_t    = mean(RIC)
    sd_t    = sample standard deviation (ddof = 1)
    ICIR_t  = IC_t / sd_t
    t_t     = IC_t / (sd_t / sqrt(n_t)) = ICIR_t * sqrt(n_t)

A value is reported only when n_t >= min_sessions; sd_t = 0 gives no t-statistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar
from trading_assets.domain.evaluation import ic


def daily_rank_ic(scores: pl.DataFrame, labels: pl.DataFrame, source: str = "source", score: str = "score") -> pl.DataFrame:
    """scores (date, symbol, <source>, <score>) x labels (date, symbol, known_at, fwd_return, valid[, horizon])
    -> (<source>, date, known_at, rank_ic, n), sorted by (source, date). The per-session rank IC is the
    research record's (domain/evaluation/ic.py::session_metrics on fwd_return: the same number signal_quality
    reports), kept where it exists (n >= 3, non-constant ranks)."""
    lab = labels if "horizon" in labels.columns else labels.with_columns(horizon=pl.lit(1, pl.Int32))
    sc = scores.select("date", "symbol", pl.col(source).alias("source"), pl.col(score).alias("score"))
    if sc.height == 0 or lab.height == 0:
        return pl.DataFrame(schema={source: pl.String, "date": pl.Date, "known_at": pl.Date, "rank_ic": pl.Float64, "n": pl.Int32})
    daily = ic.session_metrics(sc, lab.select("date", "symbol", "horizon", "known_at", "fwd_return", "valid"), label="fwd_return")
    out = daily.filter(pl.col("rank_ic").is_not_null() & pl.col("rank_ic").is_finite()).select(
        pl.col("source").alias(source), "date", "known_at", "rank_ic", pl.col("n").cast(pl.Int32)
    )
    return out.sort(source, "date")


def rolling_ic_asof(
    daily: pl.DataFrame, sessions: Sequence[date], window: int, min_sessions: int, source: str = "source"
) -> pl.DataFrame:
    """Rolling statistics of each source's daily rank IC as of each session t (values with
    t - window sessions < known_at <= t) -> (<source>, date = t, ic_n, ic_mean, ic_sd, ic_t), one row per
    (source, session) where n >= min_sessions (other sessions: no row)."""
    rows: dict[str, list] = {source: [], "date": [], "ic_n": [], "ic_mean": [], "ic_sd": [], "ic_t": []}
    days = sorted(sessions)
    sess = np.array(days, dtype="datetime64[D]")
    since = np.array([calendar.lookback_start(d, window) for d in days], dtype="datetime64[D]")  # t - W sessions (excluded)
    for (name,), g in daily.sort(source, "known_at", "date").group_by(source, maintain_order=True):
        known = g["known_at"].to_numpy().astype("datetime64[D]")
        vals = g["rank_ic"].to_numpy().astype(np.float64)
        upto = np.searchsorted(known, sess, side="right")  # values known at t: the first `upto`
        lo = np.searchsorted(known, since, side="right")  # ... of which those known after t - W sessions
        n = upto - lo
        for i in np.nonzero(n >= max(min_sessions, 2))[0]:
            w = vals[lo[i] : upto[i]]  # exactly the window's values: the statistics do not depend on where the read began
            mean = float(w.mean())
            sd = float(w.std(ddof=1))
            rows[source].append(name)
            rows["date"].append(days[i])
            rows["ic_n"].append(int(n[i]))
            rows["ic_mean"].append(mean)
            rows["ic_sd"].append(sd)
            rows["ic_t"].append(mean / (sd / math.sqrt(n[i])) if sd > 1e-12 else None)
    return pl.DataFrame(
        rows,
        schema={source: pl.String, "date": pl.Date, "ic_n": pl.Int32, "ic_mean": pl.Float64, "ic_sd": pl.Float64, "ic_t": pl.Float64},
    ).sort(source, "date")
