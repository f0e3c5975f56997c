"""Meta-Brain reliability: each agent's confidence calibrated by its own out-of-sample record.

For agent k, RIC_k(s) is the daily rank IC of its forecast against the label fwd_return (h = 1) of decision
date s (domain/models/oos.py, the research record's rank IC): a heuristic or statistical agent by its mu, a
trained model by its raw score on every session a version served it (champion or shadow: its mu is null
while it is silent, so scoring mu would keep only the sessions it already looked good; the same rule as
signal_quality). RIC_k(s) is known at known_at(s) = s + 1 + h.

The factor of session t is the one computed at the calibration session u(t) = the latest model cadence
session <= t (every ModelSettings.cadence sessions from its fixed anchor, as the retrains), from the values of
RIC_k that became known in the last W = calibration_window sessions up to u (u - W < known_at <= u; the exact
values, no running sums, so a session alone and inside a range give the same bits: domain/models/oos.py):

    n = number of those values,  m = their mean,  sd = their sample sd (ddof 1)
    SE = sd / sqrt(n),  t_k = m / SE
    m*  = m * max(0, 1 - 1 / t_k^2)   when m > 0,   else 0      (= max(0, m - SE^2 / m))
    f_k = min(1, m* / calibration_full_ic)     when n >= calibration_min_sessions,   else 0
    c'_k,t = c_k,t * f_k

Why this form (decided a priori from the arithmetic, never by trying variants on the reported period):
the sd of a daily cross-sectional rank IC over ~500 names is 0.1 or more (1/sqrt(N - 1) = 0.045 for
independent names, larger with the common factor), so the standard error of a W-session mean is
0.1 / sqrt(126) = 0.009 at W = 126 -- the size of the ICs themselves (0.005-0.015). A factor
proportional to that raw mean (the first version: min(1, max(0, m) / 0.02), recomputed daily) moved by
about +-0.45 with sampling noise alone and re-weighted the agents every day. Three changes, each for
that reason:
  1. W = 252: SE = 0.1 / sqrt(252) = 0.0063 (a year; the rank IC of a signal is not assumed stable
     over longer).
  2. Shrink the mean by its own t-statistic (positive-part James-Stein for one mean with an estimated
     standard error): an agent whose mean is within one standard error of 0 (t <= 1) gets 0 -- the
     sampling noise of a zero-IC agent -- and a clearly positive one (t = 3) keeps 8/9 of its mean.
     For a zero-IC agent t ~ N(0, 1), so it is given any weight only 16% of the time, and little.
  3. Update only at the cadence sessions (u(t)): the weights change 12 times a year, on the sessions
     the models retrain, not every session.
calibration_full_ic = 0.02 (a daily cross-sectional rank IC of 2% is a strong signal in the literature)
maps the shrunk IC to [0, 1]; calibration_min_sessions = 63 (a quarter) before any factor, as an sd from
fewer values is itself too noisy to shrink by. The Meta-Brain's ensemble, disagreement penalty and
robust z then run unchanged on c' (an agent whose c' falls below min_confidence is silent). Shadow
models never reach the Meta-Brain (their rows are not calibrated), but a promoted challenger brings its
shadow record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from trading_assets.settings import MetaBrainSettings

FACTOR_SCHEMA = {
    "date": pl.Date, "agent": pl.String, "as_of": pl.Date, "ic_n": pl.Int32, "ic_mean": pl.Float64, "ic_t": pl.Float64,
    "ic_shrunk": pl.Float64, "factor": pl.Float64,
}  # fmt: skip


def shrunk_ic(ic_mean: pl.Expr, ic_t: pl.Expr) -> pl.Expr:
    """m * max(0, 1 - 1/t^2) for m > 0 and t > 1, else 0 (the module docstring's m*)."""
    ok = (ic_mean > 0) & (ic_t > 1)
    return pl.when(ok).then(ic_mean * (1.0 - 1.0 / (ic_t * ic_t))).otherwise(0.0)


def calibration_sessions(sessions: Sequence[date], cadence_sessions: Sequence[date]) -> pl.DataFrame:
    """(date = t, as_of = u(t)): the latest cadence session <= t (null when none is <= t)."""
    days = pl.DataFrame({"date": sorted(sessions)}, schema={"date": pl.Date})
    cad = pl.DataFrame({"as_of": sorted(cadence_sessions)}, schema={"as_of": pl.Date})
    return days.join_asof(cad, left_on="date", right_on="as_of", strategy="backward")


def factors(rolling: pl.DataFrame, agents_by_date: pl.DataFrame, as_of: pl.DataFrame, settings: MetaBrainSettings) -> pl.DataFrame:
    """rolling: (agent, date = u, ic_n, ic_mean, ic_t) from oos.rolling_ic_asof at the cadence sessions u
    (rows only where n >= min); agents_by_date: the (date, agent) pairs to calibrate; as_of: (date, as_of)
    from calibration_sessions -> FACTOR_SCHEMA, one row per pair (factor 0 where the agent has no
    rolling row at u(t))."""
    r = rolling.select("agent", pl.col("date").alias("as_of"), "ic_n", "ic_mean", "ic_t")
    f = agents_by_date.select("date", "agent").unique().join(as_of, on="date", how="left").join(r, on=["as_of", "agent"], how="left")
    enough = pl.col("ic_n").fill_null(0) >= settings.calibration_min_sessions
    m_star = shrunk_ic(pl.col("ic_mean").fill_null(0.0), pl.col("ic_t").fill_null(0.0))
    f = f.with_columns(ic_shrunk=pl.when(enough).then(m_star).otherwise(0.0))
    fac = (pl.col("ic_shrunk") / settings.calibration_full_ic).clip(0.0, 1.0)
    return f.with_columns(factor=fac).select(list(FACTOR_SCHEMA)).cast(FACTOR_SCHEMA).sort("date", "agent")  # type: ignore[arg-type]


def calibrate(outputs: pl.DataFrame, fac: pl.DataFrame) -> pl.DataFrame:
    """outputs with confidence <- confidence * factor (joined on date, agent; a missing factor = 0)."""
    j = outputs.join(fac.select("date", "agent", "factor"), on=["date", "agent"], how="left")
    return j.with_columns(confidence=pl.col("confidence") * pl.col("factor").fill_null(0.0)).drop("factor")
