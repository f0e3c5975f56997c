"""Labels: the tradable forward return of every decision, point in time (the LABELS CONTRACT of
/work/notes/COORDINATION.md; docs/ARCHITECTURE.md "Evaluation").

Notation. Sessions are NYSE sessions (domain/calendar.py); `s + k` is the k-th session after s.
    s            the decision session (the row's `date`): decided after the close of s
    h            the horizon in sessions, h in HORIZONS = (1, 5)
    e = s + 1    the entry session (`entry_date`): an order decided at s fills at the open of e
    x = e + h    the exit session (`exit_date`) = s + 1 + h
    known_at = x the label is realized at the open of x, so partition x writes it; a point-in-time
                 read at session t is `WHERE known_at <= t` (training with a purge: date <= t - h - 1)
    F_d          product of price_factor over the symbol's corporate actions with ex-date <= d
                 (a null factor counts 1), as for the features (ARCHITECTURE "Prices and adjustments")
    Q_d          = open_d / F_d, the open adjusted point in time for splits and dividends

    fwd_return      = Q_x / Q_e - 1 = (open_x / open_e) * (F_e / F_x) - 1
                      (F_e / F_x = 1 / prod(price_factor, e < ex-date <= x): only actions known by x)
    bench_return    = the benchmark's fwd_return for the same (s, h) when valid, else NULL
    universe_return = mean of the valid fwd_return of the universe's non-benchmark symbols on (s, h)
                      (equal weight; NULL when none is valid)
    excess_return   = fwd_return - coalesce(bench_return, universe_return)

Validity. A label is valid when both bars exist with a finite open > 0 and neither failed quality as
known at x. A bar at d failed quality when its own data_quality_log row at d has passed = false, or
when a later row dated <= x flags it through REVERSED_SPIKE (bad_date = d: the spike is only seen
the session after). `failed_bars` turns quality rows into (date, symbol, flagged_at) and a failure
counts for a label only when flagged_at <= known_at, so a label is the same whether its partition
runs alone or inside a range. A label is also invalid when a bar strictly between e and x failed
with a level-shift code (LEVEL_SHIFT_CODES: an unrecorded split or a unit error, as known at x,
`level_shifts`): the open-to-open ratio would span the jump (e.g. the real file's unadjusted 2:1
split of DISCA on 2014-08-07 would give a -50% label to every decision whose holding spans it). An invalid label has NULL returns, valid = false and a `reason`: the
codes of reasons.LABEL_CODES that apply, comma-separated in that dict's order. Its NULL fwd_return
does not enter universe_return.

Rows: every symbol of `symbols` x every horizon x every known_at session in the window whose
decision session s is on or after `first_decision` (no label for a decision before the history).
Pure: polars and the calendar only; every value of a row depends on bars dated e and x, actions
dated <= x and quality rows dated <= x.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar
from trading_assets.domain.features._base import F
from trading_assets.domain.features.compute import adjustment_factors
from trading_assets.domain.reasons import LABEL_CODES

HORIZONS: tuple[int, ...] = (1, 5)  # fixed by the LABELS CONTRACT (consumers read these two)
# quality codes that mean the price level itself jumped for no recorded reason (domain/quality.py)
LEVEL_SHIFT_CODES = ("UNADJUSTED_SPLIT", "RETURN_OUTLIER")
MAX_HORIZON = max(HORIZONS)

LABEL_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "horizon": pl.Int32(),
    "entry_date": pl.Date(),
    "exit_date": pl.Date(),
    "known_at": pl.Date(),
    "fwd_return": pl.Float64(),
    "bench_return": pl.Float64(),
    "universe_return": pl.Float64(),
    "excess_return": pl.Float64(),
    "valid": pl.Boolean(),
    "reason": pl.String(),
}

_ACTION_COLUMNS = ("date", "symbol", "action", "value", "price_factor")


def label_calendar(known_at: Sequence[date], horizons: Sequence[int] = HORIZONS, first_decision: date | None = None) -> pl.DataFrame:
    """(known_at, horizon, date, entry_date, exit_date) for every known_at session and horizon:
    exit = known_at, entry = known_at - h sessions, date = known_at - h - 1 sessions; rows whose
    decision date falls before `first_decision` are dropped."""
    rows = []
    for t in sorted(set(known_at)):
        if not calendar.is_session(t):
            raise ValueError(f"known_at {t} is not an NYSE session")
        back = calendar.sessions(calendar.lookback_start(t, max(horizons) + 1), t)  # t - H - 1 .. t
        for h in horizons:
            if len(back) < h + 2:  # the calendar starts too late for this horizon
                continue
            s, e = back[-h - 2], back[-h - 1]
            if first_decision is None or s >= first_decision:
                rows.append((t, h, s, e, t))
    return pl.DataFrame(
        rows,
        schema={"known_at": pl.Date, "horizon": pl.Int32, "date": pl.Date, "entry_date": pl.Date, "exit_date": pl.Date},
        orient="row",
    )


def failed_bars(quality: pl.DataFrame) -> pl.DataFrame:
    """(date, symbol, flagged_at): the bars quality failed and the session whose row says so.

    quality: data_quality_log rows (date, symbol, passed, reason_codes, details). A row with
    passed = false fails its own bar (flagged_at = date); a REVERSED_SPIKE row also fails the bar
    named by details.REVERSED_SPIKE.bad_date (flagged_at = the reversing row's date)."""
    empty = pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "flagged_at": pl.Date})
    if quality.height == 0:
        return empty
    own = quality.filter(~pl.col("passed")).select("date", "symbol", pl.col("date").alias("flagged_at"))
    spikes = quality.filter(pl.col("reason_codes").list.contains("REVERSED_SPIKE")).select(
        pl.col("details").str.json_path_match("$.REVERSED_SPIKE.bad_date").str.to_date(strict=False).alias("date"),
        "symbol",
        pl.col("date").alias("flagged_at"),
    )
    both = pl.concat([own.cast(empty.schema), spikes.cast(empty.schema)]).drop_nulls()
    # a bar flagged twice counts from the first flag
    return both.group_by("date", "symbol").agg(pl.col("flagged_at").min()).sort("date", "symbol")


def level_shifts(quality: pl.DataFrame) -> pl.DataFrame:
    """(date, symbol, flagged_at): the failed quality rows with a level-shift code (LEVEL_SHIFT_CODES),
    flagged at their own date. quality: data_quality_log rows (date, symbol, passed, reason_codes)."""
    empty = pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "flagged_at": pl.Date})
    if quality.height == 0:
        return empty
    shift = pl.any_horizontal(*(pl.col("reason_codes").list.contains(c) for c in LEVEL_SHIFT_CODES))
    return quality.filter(~pl.col("passed") & shift).select("date", "symbol", pl.col("date").alias("flagged_at")).cast(empty.schema).sort("date", "symbol")


_NO_FLAG = np.iinfo(np.int64).max  # "never flagged" in the day-number flag matrix


def _day(d) -> int:
    return (d - _EPOCH).days


_EPOCH = date(1970, 1, 1)


def compute_labels(
    opens: pl.DataFrame,
    actions: pl.DataFrame,
    failed: pl.DataFrame | None,
    known_at: Sequence[date],
    symbols: Sequence[str],
    benchmarks: Sequence[str] = (),
    horizons: Sequence[int] = HORIZONS,
    first_decision: date | None = None,
    shifts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The label rows (LABEL_SCHEMA, sorted by known_at, date, symbol, horizon) of the `known_at`
    sessions for `symbols` (module docstring for every formula).

    opens: date, symbol, open (other columns ignored), at least the entry and exit sessions;
    actions: date, symbol, action, value, price_factor (the symbol's actions up to the last known_at;
    only those with ex-date <= a row's exit enter it); failed: `failed_bars(...)` or None;
    shifts: `level_shifts(...)` or None;
    benchmarks: the benchmark symbol(s): the first gives bench_return, all are left out of
    universe_return.

    Layout: the bars of the entry and exit sessions as dense (session x symbol) matrices (open, F,
    first flag day), looked up by the label calendar's rows, so every label is a few array reads;
    universe_return is the mean of each row of the valid-label matrix (numpy reduces each row on its
    own: the same bits whether one session or five years are computed)."""
    missing = [c for c in ("date", "symbol", "open") if c not in opens.columns]
    if missing:
        raise ValueError(f"opens lacks columns {missing}")
    syms = sorted(set(symbols))
    grid = label_calendar(known_at, horizons, first_decision).sort("known_at", "date")
    if grid.height == 0 or not syms:
        return pl.DataFrame(schema=LABEL_SCHEMA)
    px = opens.select(pl.col("date").cast(pl.Date), pl.col("symbol").cast(pl.String), pl.col("open").cast(pl.Float64))
    acts = actions.select(_ACTION_COLUMNS) if actions.height else pl.DataFrame(
        schema={"date": pl.Date, "symbol": pl.String, "action": pl.String, "value": pl.Float64, "price_factor": pl.Float64}
    )
    factors = adjustment_factors(acts).select("symbol", "date", pl.col(F).alias("_f")) if acts.height else pl.DataFrame(
        schema={"symbol": pl.String, "date": pl.Date, "_f": pl.Float64}
    )
    flags = (
        failed.select(pl.col("date").cast(pl.Date), pl.col("symbol").cast(pl.String), pl.col("flagged_at").cast(pl.Date))
        if failed is not None and failed.height
        else pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "flagged_at": pl.Date})
    )

    # dense matrices over the sessions some label uses (entry or exit) x the symbols
    days = sorted(set(grid["entry_date"].to_list()) | set(grid["exit_date"].to_list()))
    di = {d: i for i, d in enumerate(days)}
    si = {sym: j for j, sym in enumerate(syms)}
    n_days, n_syms = len(days), len(syms)
    index = pl.DataFrame({"date": days, "_i": range(n_days)}, schema={"date": pl.Date, "_i": pl.Int64})
    sindex = pl.DataFrame({"symbol": syms, "_j": range(n_syms)}, schema={"symbol": pl.String, "_j": pl.Int64})
    # each bar with F at its date (as-of join: an action on a day without a bar still applies)
    bars = (
        px.join(sindex, on="symbol").join(index, on="date")
        .sort("date", "symbol")
        .join_asof(factors.sort("date", "symbol"), on="date", by="symbol", strategy="backward", check_sortedness=False)
    )  # fmt: skip
    open_m = np.full((n_days, n_syms), np.nan)
    f_m = np.ones((n_days, n_syms))
    has_bar = np.zeros((n_days, n_syms), dtype=bool)
    ii, jj = bars["_i"].to_numpy(), bars["_j"].to_numpy()
    seen = np.zeros((n_days, n_syms), dtype=np.int64)
    np.add.at(seen, (ii, jj), 1)
    if (seen > 1).any():
        i, j = np.argwhere(seen > 1)[0]
        raise ValueError(f"opens: {(seen > 1).sum()} duplicate (date, symbol) rows, e.g. ({days[i]}, {syms[j]})")
    o = bars["open"].to_numpy()
    has_bar[ii, jj] = ~np.isnan(o)  # a null open counts as no bar
    open_m[ii, jj] = o
    f_m[ii, jj] = bars["_f"].fill_null(1.0).to_numpy()
    flag_m = np.full((n_days, n_syms), _NO_FLAG, dtype=np.int64)
    fl = flags.join(sindex, on="symbol").join(index, on="date")
    flag_m[fl["_i"].to_numpy(), fl["_j"].to_numpy()] = np.array([_day(d) for d in fl["flagged_at"].to_list()], dtype=np.int64)

    ie = np.array([di[d] for d in grid["entry_date"].to_list()], dtype=np.int64)
    ix = np.array([di[d] for d in grid["exit_date"].to_list()], dtype=np.int64)
    kday = np.array([_day(d) for d in grid["known_at"].to_list()], dtype=np.int64)[:, None]
    oe, ox = open_m[ie], open_m[ix]  # (labels, symbols)

    def bad_price(p: np.ndarray, present: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return present & ~(np.isfinite(p) & (p > 0))

    path = np.zeros((grid.height, n_syms), dtype=bool)
    if shifts is not None and shifts.height:
        e_day = np.array([_day(d) for d in grid["entry_date"].to_list()])
        x_day = np.array([_day(d) for d in grid["exit_date"].to_list()])
        for d, sym, flagged in shifts.select("date", "symbol", "flagged_at").rows():
            if sym in si:
                path[:, si[sym]] |= (e_day < _day(d)) & (_day(d) < x_day) & (_day(flagged) <= kday[:, 0])
    conditions = {
        "ENTRY_BAR_MISSING": ~has_bar[ie],
        "ENTRY_PRICE_INVALID": bad_price(oe, has_bar[ie]),
        "ENTRY_QUALITY_FAILED": flag_m[ie] <= kday,
        "EXIT_BAR_MISSING": ~has_bar[ix],
        "EXIT_PRICE_INVALID": bad_price(ox, has_bar[ix]),
        "EXIT_QUALITY_FAILED": flag_m[ix] <= kday,
        "PATH_LEVEL_SHIFT": path,
    }
    assert tuple(conditions) == tuple(LABEL_CODES)  # the reason order is the vocabulary's
    invalid = np.logical_or.reduce(list(conditions.values()))
    valid = ~invalid
    with np.errstate(invalid="ignore", divide="ignore"):
        fwd = np.where(valid, (ox / oe) * (f_m[ie] / f_m[ix]) - 1.0, np.nan)

    # benchmark and equal-weight universe returns per label row
    bench = si.get(benchmarks[0]) if benchmarks else None
    bench_ret = fwd[:, bench] if bench is not None else np.full(grid.height, np.nan)
    member = np.ones(n_syms, dtype=bool)
    for b in benchmarks:
        if b in si:
            member[si[b]] = False
    counted = valid & member[None, :]
    n_valid = counted.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        uni_ret = np.where(n_valid > 0, np.where(counted, fwd, 0.0).sum(axis=1) / n_valid, np.nan)
    base = np.where(np.isnan(bench_ret), uni_ret, bench_ret)
    excess = fwd - base[:, None]

    g, n = grid.height, n_syms
    # reasons, spelled out for the invalid labels only (a few % of the rows)
    reason = pl.repeat(None, g * n, dtype=pl.String, eager=True).alias("reason")
    r, c = np.nonzero(invalid)
    if len(r):
        bits = np.stack([conditions[k][r, c] for k in LABEL_CODES], axis=1)
        names = np.array(list(LABEL_CODES), dtype=object)
        reason = reason.scatter(r * n + c, pl.Series([",".join(names[b]) for b in bits], dtype=pl.String))
    per_label = np.repeat(np.arange(g), n)  # row -> its label calendar row (rows: labels x symbols)
    out = pl.DataFrame(
        {
            "date": grid["date"].gather(per_label),
            "symbol": pl.Series(syms, dtype=pl.String).gather(np.tile(np.arange(n), g)),
            "horizon": grid["horizon"].gather(per_label),
            "entry_date": grid["entry_date"].gather(per_label),
            "exit_date": grid["exit_date"].gather(per_label),
            "known_at": grid["known_at"].gather(per_label),
            "fwd_return": fwd.ravel(),
            "bench_return": bench_ret[per_label],
            "universe_return": uni_ret[per_label],
            "excess_return": excess.ravel(),
            "valid": valid.ravel(),
            "reason": reason,
        }
    )
    # NaN marks "no value" in the arrays: NULL in the table. Rows: grid order (known_at, date) x symbols
    # (sorted), i.e. sorted by known_at, date, symbol, horizon (one horizon per (known_at, date)).
    out = out.with_columns(pl.col(c).fill_nan(None) for c in ("fwd_return", "bench_return", "universe_return", "excess_return"))
    return out.cast(LABEL_SCHEMA).select(list(LABEL_SCHEMA))
