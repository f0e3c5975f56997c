"""The Meta-Brain's calibration factors for a window (domain/calibration.py), read and written here.

For the window's sessions: every non-shadow agent's daily rank IC of its mu against the labels known by
the window's end (domain/models/oos.py), computed block by block from `lookback` sessions before the
window; the rolling statistics as of each session use only label dates known at that session; the
factors go to table agent_calibration (one row per (session, agent)) and multiply the confidences the
Meta-Brain reads. Off unless settings.meta.calibrate.
"""

from datetime import date

import polars as pl

from trading_assets.defs.models import read_labels
from trading_assets.defs.partitions import session_blocks
from trading_assets.domain import calendar, calibration
from trading_assets.domain.models import oos
from trading_assets.settings import Settings
from trading_assets.store.warehouse import Warehouse


def window_factors(wh: Warehouse, settings: Settings, sessions: list[date], symbols: list[str], benchmarks: list[str]) -> pl.DataFrame:
    """FACTOR_SCHEMA rows for every (session, non-shadow agent) of the window."""
    meta = settings.meta
    start, end = sessions[0], sessions[-1]
    first = calendar.lookback_start(start, meta.calibration_window + settings.models.horizon + 3)
    tradable = [s for s in symbols if s not in set(benchmarks)]
    labels = read_labels(wh, first, end, tradable, settings.models.horizon)
    daily = []
    for lo, hi in session_blocks(calendar.sessions(first, end), max(1, len(tradable) * 8)):
        mu = wh.read(
            "SELECT date, symbol, agent, mu FROM model_outputs WHERE date BETWEEN ? AND ? AND coalesce(role, 'heuristic') <> 'shadow' "
            "AND symbol IN (SELECT unnest(?::VARCHAR[])) AND mu IS NOT NULL ORDER BY date, symbol, agent",
            [lo, hi, tradable],
        )
        if mu.height:
            daily.append(oos.daily_rank_ic(mu, labels.filter((pl.col("date") >= lo) & (pl.col("date") <= hi)), source="agent", score="mu"))
    d = pl.concat(daily) if daily else pl.DataFrame(schema={"agent": pl.String, "date": pl.Date, "known_at": pl.Date, "rank_ic": pl.Float64, "n": pl.Int32})
    rolling = oos.rolling_ic_asof(d, sessions, meta.calibration_window, meta.calibration_min_sessions, source="agent")
    pairs = wh.read(
        "SELECT DISTINCT date, agent FROM model_outputs WHERE date BETWEEN ? AND ? AND coalesce(role, 'heuristic') <> 'shadow' ORDER BY ALL",
        [start, end],
    )
    return calibration.factors(rolling, pairs, meta)
