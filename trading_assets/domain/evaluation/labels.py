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


def _side(frame: pl.DataFrame, side: str) -> pl.DataFrame:
    """frame (date, symbol, columns...) keyed for a join on `{side}_date`, its columns prefixed."""
    return frame.rename({c: (f"{side}_date" if c == "date" else c if c == "symbol" else f"_{side}{c}") for c in frame.columns})


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
    universe_return."""
    missing = [c for c in ("date", "symbol", "open") if c not in opens.columns]
    if missing:
        raise ValueError(f"opens lacks columns {missing}")
    grid = label_calendar(known_at, horizons, first_decision)
    if grid.height == 0 or not symbols:
        return pl.DataFrame(schema=LABEL_SCHEMA)
    px = opens.select(pl.col("date").cast(pl.Date), pl.col("symbol").cast(pl.String), pl.col("open").cast(pl.Float64))
    dup = px.group_by("date", "symbol").len().filter(pl.col("len") > 1)
    if dup.height:
        raise ValueError(f"opens: {dup.height} duplicate (date, symbol) rows, e.g. {dup.row(0)[:2]}")
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
    # only the bars some label uses (entry or exit sessions of the grid)
    needed = pl.concat([grid["entry_date"], grid["exit_date"]]).unique()
    px = px.filter(pl.col("date").is_in(needed.implode()) & pl.col("symbol").is_in(list(symbols)))

    # each bar with F at its date (as-of join: an action on a day without a bar still applies)
    bars = (
        px.sort("date", "symbol")
        .join_asof(factors.sort("date", "symbol"), on="date", by="symbol", strategy="backward", check_sortedness=False)
        .select("date", "symbol", pl.col("open").alias("_open"), pl.col("_f").fill_null(1.0).alias("_f"))
    )
    flags = flags.rename({"flagged_at": "_flag"})
    rows = grid.join(pl.DataFrame({"symbol": list(symbols)}, schema={"symbol": pl.String}), how="cross")
    for side in ("entry", "exit"):  # a flag counts even where the bar is missing (its row says why)
        rows = rows.join(_side(bars, side), on=[f"{side}_date", "symbol"], how="left")
        rows = rows.join(_side(flags, side), on=[f"{side}_date", "symbol"], how="left")

    path = pl.lit(False)
    if shifts is not None and shifts.height:
        jumps = shifts.select(pl.col("date").cast(pl.Date).alias("_jump"), pl.col("symbol").cast(pl.String), pl.col("flagged_at").cast(pl.Date).alias("_jflag"))
        hit = (
            rows.select("date", "symbol", "horizon", "entry_date", "exit_date", "known_at")
            .join(jumps, on="symbol")
            .filter((pl.col("_jump") > pl.col("entry_date")) & (pl.col("_jump") < pl.col("exit_date")) & (pl.col("_jflag") <= pl.col("known_at")))
            .select("date", "symbol", "horizon")
            .unique()
            .with_columns(pl.lit(True).alias("_path"))
        )
        rows = rows.join(hit, on=["date", "symbol", "horizon"], how="left")
        path = pl.col("_path").fill_null(False)

    def price_invalid(side: str) -> pl.Expr:
        p = pl.col(f"_{side}_open")
        return p.is_not_null() & ~(p.is_finite() & (p > 0))

    def quality_failed(side: str) -> pl.Expr:
        return pl.col(f"_{side}_flag").is_not_null() & (pl.col(f"_{side}_flag") <= pl.col("known_at"))

    conditions = {
        "ENTRY_BAR_MISSING": pl.col("_entry_open").is_null(),
        "ENTRY_PRICE_INVALID": price_invalid("entry"),
        "ENTRY_QUALITY_FAILED": quality_failed("entry"),
        "EXIT_BAR_MISSING": pl.col("_exit_open").is_null(),
        "EXIT_PRICE_INVALID": price_invalid("exit"),
        "EXIT_QUALITY_FAILED": quality_failed("exit"),
        "PATH_LEVEL_SHIFT": path,
    }
    assert tuple(conditions) == tuple(LABEL_CODES)  # the reason order is the vocabulary's
    codes = pl.concat_list([pl.when(c).then(pl.lit(k)) for k, c in conditions.items()]).list.drop_nulls()
    rows = rows.with_columns(codes.alias("_codes"))
    valid = pl.col("_codes").list.len() == 0
    fwd = (pl.col("_exit_open") / pl.col("_entry_open")) * (pl.col("_entry_f") / pl.col("_exit_f")) - 1.0
    rows = rows.with_columns(
        valid.alias("valid"),
        pl.when(valid).then(fwd).otherwise(None).alias("fwd_return"),
        pl.when(valid).then(None).otherwise(pl.col("_codes").list.join(",")).alias("reason"),
    )

    keys = ["date", "horizon"]
    bench = benchmarks[0] if benchmarks else None
    bench_ret = rows.filter((pl.col("symbol") == pl.lit(bench, pl.String)).fill_null(False) & pl.col("valid")).select(*keys, pl.col("fwd_return").alias("bench_return"))
    members = rows.filter(~pl.col("symbol").is_in(list(benchmarks)) & pl.col("valid"))
    uni_ret = members.group_by(keys).agg(pl.col("fwd_return").mean().alias("universe_return"))
    rows = rows.join(bench_ret, on=keys, how="left").join(uni_ret, on=keys, how="left")
    rows = rows.with_columns(
        (pl.col("fwd_return") - pl.coalesce(pl.col("bench_return"), pl.col("universe_return"))).alias("excess_return")
    )
    return rows.select(list(LABEL_SCHEMA)).cast(LABEL_SCHEMA).sort("known_at", "date", "symbol", "horizon")
