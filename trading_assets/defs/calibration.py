"""The Meta-Brain's calibration factors for a window (domain/calibration.py), read and written here.

For the window's sessions t: the calibration sessions u(t) (the latest model cadence session <= t, maybe
before the window); every agent's daily rank IC (heuristic and statistical agents by mu, trained models
by their raw score, shadows included: a promoted challenger brings its record) from the
calibration_window + a few sessions before the first u to the last u, computed block by block, against
the labels known by the last u; the rolling statistics as of each u use only label dates known at u;
the factors of the window's non-shadow (session, agent) pairs go to table agent_calibration and multiply
the confidences the Meta-Brain reads. On unless settings.meta.calibrate is false.

A calibration session before the window whose factors agent_calibration already holds (its own row,
date = as_of = u, written by the run that decided u with the same `method`) is read, not recomputed: the
factors of u depend only on what was known at u, and a rerun of u rewrites them. So a daily run between
two cadence sessions reads a few rows instead of a year of model_outputs (the daily cycle's budget).
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


ROLLING_SCHEMA = {"agent": pl.String, "date": pl.Date, "ic_n": pl.Int32, "ic_mean": pl.Float64, "ic_t": pl.Float64}


def method(settings: Settings) -> str:
    """What the factors of a calibration session depend on besides the data (stored with them)."""
    m = settings.meta
    return (f"t-shrunk W={m.calibration_window} min={m.calibration_min_sessions} full_ic={m.calibration_full_ic} "
            f"cadence={settings.models.cadence}@{settings.models.anchor} h={settings.models.horizon}")


def stored(wh: Warehouse, days: list[date], settings: Settings) -> pl.DataFrame:
    """ROLLING_SCHEMA rows of the calibration sessions `days` as agent_calibration holds them (own rows, same method)."""
    if not days:
        return pl.DataFrame(schema=ROLLING_SCHEMA)
    cols = set(wh.read("SELECT column_name FROM information_schema.columns WHERE table_name = 'agent_calibration'")["column_name"])
    if "method" not in cols:
        return pl.DataFrame(schema=ROLLING_SCHEMA)
    return wh.read(
        "SELECT agent, date, ic_n, ic_mean, ic_t FROM agent_calibration WHERE date = as_of AND method = ? "
        "AND date IN (SELECT unnest(?::DATE[])) ORDER BY date, agent", [method(settings), days],
    ).cast(ROLLING_SCHEMA)  # type: ignore[arg-type]


def window_factors(wh: Warehouse, settings: Settings, sessions: list[date], symbols: list[str], benchmarks: list[str]) -> pl.DataFrame:
    """FACTOR_SCHEMA rows (+ method) for every (session, non-shadow agent) of the window."""
    meta = settings.meta
    start, end = sessions[0], sessions[-1]
    cad = cadence_sessions(calendar.lookback_start(start, settings.models.cadence + 1), end, settings)
    as_of = calibration.calibration_sessions(sessions, cad)
    needed = sorted(set(as_of["as_of"].drop_nulls().to_list()))
    pairs = wh.read(
        "SELECT DISTINCT date, agent FROM model_outputs WHERE date BETWEEN ? AND ? AND coalesce(role, 'heuristic') <> 'shadow' ORDER BY ALL",
        [start, end],
    )
    known = stored(wh, [u for u in needed if u < start], settings)
    wanted = pairs.join(as_of, on="date").group_by("as_of").agg(pl.col("agent").unique())
    have = {u for u, agents in wanted.iter_rows() if set(agents) <= set(known.filter(pl.col("date") == u)["agent"])}
    known = known.filter(pl.col("date").is_in(sorted(have)))  # a session whose stored rows lack an agent is recomputed
    needed = [u for u in needed if u not in have]
    if not needed:
        return calibration.factors(known, pairs, as_of, meta).with_columns(method=pl.lit(method(settings)))
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
    rolling = pl.concat([known, rolling.select(list(ROLLING_SCHEMA)).cast(ROLLING_SCHEMA)])  # type: ignore[arg-type]
    return calibration.factors(rolling, pairs, as_of, meta).with_columns(method=pl.lit(method(settings)))
