"""Meta-Brain reliability: each agent's confidence calibrated by its own out-of-sample record.

For agent k at session t, with RIC_k(s) the daily rank IC of its mu against the label fwd_return (h = 1)
of decision date s (domain/models/oos.py, the research record's rank IC) and only the label dates known
at t (known_at(s) = s + 2 <= t), the last W = MetaBrainSettings.calibration_window of them:

    n_k,t    number of those values;  IC_k,t = their mean
    factor   f_k,t = min(1, max(0, IC_k,t) / calibration_full_ic)    when n_k,t >= calibration_min_sessions
             f_k,t = 0                                                  otherwise (nothing earned yet)
    c'_k,t   = c_k,t * f_k,t

so an agent whose forecasts have not ranked tomorrow's returns (IC <= 0) carries no weight, one at
IC >= calibration_full_ic keeps its own confidence, and one in between is scaled linearly. The
Meta-Brain's ensemble, disagreement penalty and robust z then run unchanged on c' (an agent whose c'
falls below min_confidence is silent). calibration_full_ic = 0.02 is chosen a priori (a daily
cross-sectional rank IC of 2% is a strong signal in the literature), never fitted on the reported period.
Shadow models are excluded upstream (they never reach the Meta-Brain).
"""

from __future__ import annotations

import polars as pl

from trading_assets.settings import MetaBrainSettings

FACTOR_SCHEMA = {"date": pl.Date, "agent": pl.String, "ic_n": pl.Int32, "ic_mean": pl.Float64, "ic_t": pl.Float64, "factor": pl.Float64}


def factors(rolling: pl.DataFrame, agents_by_date: pl.DataFrame, settings: MetaBrainSettings) -> pl.DataFrame:
    """rolling: (agent, date, ic_n, ic_mean, ic_t) from oos.rolling_ic_asof (rows only where n >= min);
    agents_by_date: the (date, agent) pairs to calibrate -> FACTOR_SCHEMA, one row per pair (factor 0
    where the agent has no rolling row)."""
    f = agents_by_date.select("date", "agent").unique().join(rolling.select("agent", "date", "ic_n", "ic_mean", "ic_t"), on=["date", "agent"], how="left")
    enough = pl.col("ic_n").fill_null(0) >= settings.calibration_min_sessions
    fac = pl.when(enough).then((pl.col("ic_mean").clip(lower_bound=0.0) / settings.calibration_full_ic).clip(0.0, 1.0)).otherwise(0.0)
    return f.with_columns(factor=fac).select(list(FACTOR_SCHEMA)).cast(FACTOR_SCHEMA).sort("date", "agent")  # type: ignore[arg-type]


def calibrate(outputs: pl.DataFrame, fac: pl.DataFrame) -> pl.DataFrame:
    """outputs with confidence <- confidence * factor (joined on date, agent; a missing factor = 0)."""
    j = outputs.join(fac.select("date", "agent", "factor"), on=["date", "agent"], how="left")
    return j.with_columns(confidence=pl.col("confidence") * pl.col("factor").fill_null(0.0)).drop("factor")
