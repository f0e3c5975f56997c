"""The Meta-Brain's calibration factors for a window (domain/calibration.py), read and written here.

For the window's sessions t: the calibration sessions u(t) (the latest model cadence session <= t, maybe
before the window); every agent's daily rank IC (heuristic and statistical agents by mu, trained models
by their raw score, shadows included: a promoted challenger brings its record) from the
calibration_window + a few sessions before the first u to the last u, computed block by block, against
the labels known by the last u; the rolling statistics as of each u use only label dates known at u;
the factors of the window's non-shadow (session, agent) pairs go to table agent_calibration and multiply
the confidences the Meta-Brain reads. On unless settings.meta.calibrate is false.
"""

from datetime import date

import polars as pl

from trading_assets.defs.models import read_labels
from trading_assets.defs.partitions import session_blocks
from trading_assets.domain import calendar, calibration
from trading_assets.domain.models import oos, training
from trading_assets.settings import Settings
from trading_assets.store.warehouse import Warehouse

DAILY_SCHEMA = {"agent": pl.String, "date": pl.Date, "known_at": pl.Date, "rank_ic": pl.Float64, "n": pl.Int32}


def cadence_sessions(first: date, last: date, settings: Settings) -> list[date]:
    """The model cadence sessions in [first, last] (every models.cadence sessions from models.anchor;
    models.first_training does not apply: it delays the retrains, not the calibration)."""
    m = settings.models
    return [d for d in calendar.sessions(first, last) if training.session_index(d, m.anchor) % m.cadence == 0]


def window_factors(wh: Warehouse, settings: Settings, sessions: list[date], symbols: list[str], benchmarks: list[str]) -> pl.DataFrame:
    """FACTOR_SCHEMA rows for every (session, non-shadow agent) of the window."""
    meta = settings.meta
    start, end = sessions[0], sessions[-1]
    cad = cadence_sessions(calendar.lookback_start(start, settings.models.cadence + 1), end, settings)
    as_of = calibration.calibration_sessions(sessions, cad)
    needed = sorted(set(as_of["as_of"].drop_nulls().to_list()))
    pairs = wh.read(
        "SELECT DISTINCT date, agent FROM model_outputs WHERE date BETWEEN ? AND ? AND coalesce(role, 'heuristic') <> 'shadow' ORDER BY ALL",
        [start, end],
    )
    if not needed:
        return calibration.factors(pl.DataFrame(schema={"agent": pl.String, "date": pl.Date, "ic_n": pl.Int32, "ic_mean": pl.Float64,
                                                        "ic_t": pl.Float64}), pairs, as_of, meta)  # fmt: skip
    first = calendar.lookback_start(needed[0], meta.calibration_window + settings.models.horizon + 3)
    last = needed[-1]
    tradable = [s for s in symbols if s not in set(benchmarks)]
    labels = read_labels(wh, first, last, tradable, settings.models.horizon)
    daily = []
    for lo, hi in session_blocks(calendar.sessions(first, last), max(1, len(tradable) * 8)):
        scored = wh.read(
            "SELECT date, symbol, agent, CASE WHEN coalesce(role, 'heuristic') = 'heuristic' THEN mu ELSE score END AS s "
            "FROM model_outputs WHERE date BETWEEN ? AND ? AND symbol IN (SELECT unnest(?::VARCHAR[])) ORDER BY date, symbol, agent",
            [lo, hi, tradable],
        ).filter(pl.col("s").is_not_null() & pl.col("s").is_finite())
        if scored.height:
            block = labels.filter((pl.col("date") >= lo) & (pl.col("date") <= hi))
            daily.append(oos.daily_rank_ic(scored, block, source="agent", score="s"))
    d = pl.concat(daily) if daily else pl.DataFrame(schema=DAILY_SCHEMA)
    rolling = oos.rolling_ic_asof(d, needed, meta.calibration_window, meta.calibration_min_sessions, source="agent")
    return calibration.factors(rolling, pairs, as_of, meta)
