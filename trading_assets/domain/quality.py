"""The data-quality agent: a score in [0, 1] and reason codes for every (session, symbol).

Pure (polars only) and fully vectorized: every per-symbol series is a window expression
`.over("symbol")` on bars sorted by (symbol, date); no Python loop over symbols or dates.
It only scores: bad bars are never altered or dropped.

Point in time: the row of session t uses only bars and actions dated <= t (trailing windows are
shifted by one bar, so even "today" is excluded from the statistics it is compared with). Anything
in `bars`/`actions` after `window_end` is ignored. A bar whose badness only shows the next session
(a reversed spike) is flagged on the next session's row, naming the bad date.

Run-boundary independence: with bars read from `read_sessions(settings)` = L + k sessions before the
window (L = lookback_sessions, k = confirm_sessions: a held move looks k bars back at a jump whose
threshold needs L bars before it), every statistic below fits inside that read, so the row of t is
the same whether t is run alone or inside a multi-year range.

Notation (per symbol, bars in date order; "prev" = the symbol's previous bar with a positive close):
    C_t          close of bar t when > 0, else undefined
    F_t          product of `price_factor` of the symbol's corporate actions with ex-date in
                 (prev date, t] (null factor = 1: nothing to apply)
    r_t          = ln C_t - ln(C_prev * F_t)   the action-adjusted log return (a recorded split
                 with factor 1/2 and a halved price gives r = 0, so it is no outlier)
    sigma_t      = 1.4826 * median(|r_s|) over the previous L-2 bars (s < t; at least
                 `min_history` of them), the MAD about zero as a robust sigma (daily returns have a
                 median of ~0); L-2 so that sigma_{t-1}, needed by REVERSED_SPIKE, fits in the read
    thr_t        = max(robust_return_z * sigma_t, min_abs_jump)  (min_abs_jump alone without history)
    Vmed_t       median volume (> 0) of the previous L bars (at least `min_history` of them)

Rules (code: condition -> details keys). Penalties are `settings.penalties`; defaults in brackets.
    MISSING_FIELD [0.5]        open, high, low, close or volume is null -> fields
    NON_POSITIVE_PRICE [1.0]   a price <= 0 -> fields
    HIGH_BELOW_LOW [0.5]       high < low * (1 - tol)                     (tol = range_tolerance)
    OPEN_OUTSIDE_RANGE [0.4]   open < low * (1 - tol) or open > high * (1 + tol)
    CLOSE_OUTSIDE_RANGE [0.5]  close outside the same range
    ZERO_VOLUME [0.5]          volume null or <= 0
    LOW_VOLUME [0.4]           0 < volume < low_volume_ratio * Vmed_t      (near-empty bar)
    FLAT_BAR [0.4]             open = high = low = close and volume < flat_bar_volume_ratio * Vmed_t
    STALE_PRICE [0.4]          the close equals the previous bar's close, run length >= stale_run
                               (today included)
    DUPLICATE_ROW [0.2]        duplicate_count > 0 (the first copy was kept upstream)
    UNADJUSTED_SPLIT [0.6]     |r_t - ln k| <= split_tolerance for a k in split_ratios (close/prev
                               ratio ~ 1/2, 1/3, 1/4, 2, 3, 4) after the recorded actions' factors
    RETURN_OUTLIER [0.5]       |r_t| > ln(max_price_ratio), not split-like (a 10x move with no action
                               is a unit error, e.g. pence vs pounds; fails at once)
    LARGE_MOVE [0.1]           |r_t| > thr_t, not split-like, not a unit error: informational, a
                               large move ALONE never fails (news: spin-offs, earnings)
    REVERSED_SPIKE [0.5]       the previous bar's move was a jump (|r| > thr, split-like or unit
                               error) and this move undoes it: opposite sign and
                               |r_t + r_prev| <= (1 - reversal_fraction) * |r_prev|. Flagged on the
                               reversing row (t+1) with bad_date = the spike's date; that row's own
                               split-like / large-move codes are suppressed (the move is the repair).
                               Fails: this session's returns and windows contain the bad bar.
    SYNTHETIC_DATA [0]         is_synthetic (informational)
    Held moves (#16; k = confirm_sessions, f = reversal_fraction; `_held_moves` has the exact formulas).
    A jump (LARGE_MOVE, UNADJUSTED_SPLIT or RETURN_OUTLIER: beyond the configurable bound, with no
    recorded action) is not traded on until the next k bars confirm or refute it:
    MOVE_UNCONFIRMED [0]       the jump's own bar and the next k-1 bars while it has not reverted ->
                               move_date, move_return, ratio, bars_to_confirm. Not a data error (it
                               passes); the Meta-Brain REJECTs the symbol (UNCONFIRMED_MOVE) and the
                               features leave the bar out of every window, as a failed bar's.
    REVERSED_SPIKE             (above) the move reverted on the next bar: the jump was a bad bar
    REVERTED_MOVE [0.5]        the move reverted on bar j in 2..k (within (1 - f) of the jump): the
                               bars e..e+j-1 were a bad level -> bad_dates, move_return,
                               reversal_return. Fails, like REVERSED_SPIKE; the reversal starts no hold.
    LEVEL_SHIFT_INFERRED [0]   on bar e+k: not reverted, every confirming close within level_tolerance
                               of the move from the new level (the ratio held), and the shift is
                               split-like, a unit error, or (infer_shifts) downward / any: recorded as
                               an inferred corporate action -> ex_date, action ('split' | 'level_shift'),
                               ratio (= its price_factor), move_return, confirming_sessions.
                               `inferred_actions(quality)` lists them; known at e+k, not before.
    MOVE_CONFIRMED [0]         on bar e+k: not reverted, no action inferred (an upward non-split move,
                               news; or a level that did not hold) -> the move and level_held.
    OFF_CALENDAR [0.2]         the provider sent bars dated on non-sessions; flagged on the next
                               session's row (dates listed); the bars stay in the series
    Rows without a bar at session t (score 0 by default):
    NO_PROVIDER [1.0]          the symbol is in `unserved` (no provider could serve it this run)
    MISSING_BAR [1.0]          the symbol has a bar in the L sessions before t (a gap) -> last_bar
    NOT_LISTED [1.0]           no bar in the L sessions before t: not listed yet (the sessions before a
                               late start), delisted, or never delivered. Bounded by L (not "ever")
                               so that a daily run and a range run agree.
    LATE_START [0]             the first bar f of the symbol comes after the first session read and
                               t is within late_start_sessions sessions of f (f's own row included):
                               a young series with little history (informational). Needs
                               late_start_sessions <= L.

score = round(max(0, 1 - sum of the penalties of the codes raised), 6); passed = score >= pass_score.
details: a JSON object {code: {values that triggered it}} with codes in sorted order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import polars as pl

from trading_assets.domain.reasons import QUALITY_CODES
from trading_assets.settings import QualitySettings

MAD_TO_SIGMA = 1.4826  # sigma of a normal = 1.4826 * MAD (a constant of the estimator, not a tunable)

BAR_COLUMNS = ("date", "symbol", "open", "high", "low", "close", "volume")
# Optional provenance columns and the value used when a caller (e.g. a raw file) lacks them.
OPTIONAL_BAR_COLUMNS: dict[str, tuple[pl.DataType, object]] = {
    "adj_close": (pl.Float64, None),
    "provider": (pl.String, None),
    "is_synthetic": (pl.Boolean, False),
    "duplicate_count": (pl.Int64, 0),
}
ACTION_COLUMNS = ("date", "symbol", "action", "price_factor")
INFER_SHIFTS = ("splits", "down", "all")  # QualitySettings.infer_shifts

OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date,
    "symbol": pl.String,
    "score": pl.Float64,
    "passed": pl.Boolean,
    "reason_codes": pl.List(pl.String),
    "details": pl.String,
    "provider": pl.String,
}


def assess_quality(
    bars: pl.DataFrame,
    actions: pl.DataFrame,
    sessions: Sequence[date],
    symbols: Sequence[str],
    window_start: date,
    window_end: date,
    settings: QualitySettings,
    unserved: Sequence[str] = (),
) -> pl.DataFrame:
    """One row per (session in [window_start, window_end], symbol of `symbols`), sorted by (date, symbol):
    date, symbol, score, passed, reason_codes (sorted, unique), details (JSON), provider (null without a bar).

    bars: price_history rows from read_sessions(settings) sessions before window_start to
    window_end. actions: corporate_actions rows (date, symbol, action, price_factor, ...) up to
    window_end. sessions: the calendar sessions from the first bar date to window_end. Raises
    ValueError on malformed input (missing columns, duplicate (date, symbol) bars, a non-positive
    price_factor, window_start > window_end). See the module docstring for every rule and penalty.
    """
    penalties = _penalties(settings)
    if window_start > window_end:
        raise ValueError(f"window_start {window_start} is after window_end {window_end}")
    cal = sorted(set(sessions))
    window = [s for s in cal if window_start <= s <= window_end]
    universe = sorted(set(symbols))
    if not window or not universe:
        return pl.DataFrame(schema=OUTPUT_SCHEMA)

    b = _prepare_bars(bars, universe, window_end)
    a = _prepare_actions(actions, universe, window_end)
    cal_s = pl.Series("date", cal, dtype=pl.Date)
    # session index of each bar: that of the first session >= its date (exact for session bars)
    b = b.with_columns(
        pl.Series("sidx", cal_s.search_sorted(b["date"], side="left"), dtype=pl.Int64),
        pl.col("date").is_in(cal_s.implode()).alias("on_calendar"),
    )
    b = _bar_rules(b, a, settings)

    grid = _grid(window, universe, cal, b, settings, unserved)
    return _assemble(grid, penalties, settings)


def read_sessions(settings: QualitySettings) -> int:
    """Sessions of bars to read before a window: L = lookback_sessions for the trailing statistics,
    plus k = confirm_sessions for a held move's jump k bars back (module docstring)."""
    return settings.lookback_sessions + settings.confirm_sessions


INFERRED_ACTION_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date,  # the confirming session that knows the action (known_at): the partition of the row
    "symbol": pl.String,
    "ex_date": pl.Date,  # the session of the move
    "action": pl.String,  # 'split' | 'level_shift'
    "ratio": pl.Float64,  # close(ex_date) / close(before): the split ratio when split-like, else exp(move_return)
    "price_factor": pl.Float64,  # = ratio: corporate_actions' factor still to apply to the prices before ex_date
    "move_return": pl.Float64,
    "confirming_sessions": pl.List(pl.Date),
    "provenance": pl.String,  # 'inferred'
}


def inferred_actions(quality: pl.DataFrame) -> pl.DataFrame:
    """The inferred corporate actions of assess_quality's rows (one per LEVEL_SHIFT_INFERRED row),
    INFERRED_ACTION_SCHEMA, sorted by (date, symbol). Read from the rows' details, so the table and the
    quality log always agree."""
    rows = quality.filter(pl.col("reason_codes").list.contains("LEVEL_SHIFT_INFERRED"))
    if rows.height == 0:
        return pl.DataFrame(schema=INFERRED_ACTION_SCHEMA)
    d = pl.col("details").str.json_decode(
        pl.Struct(
            {
                "LEVEL_SHIFT_INFERRED": pl.Struct(
                    {"ex_date": pl.String, "action": pl.String, "ratio": pl.Float64, "move_return": pl.Float64,
                     "confirming_sessions": pl.List(pl.String)}
                )
            }
        )
    ).struct.field("LEVEL_SHIFT_INFERRED")
    out = rows.select("date", "symbol", d.alias("x")).select(
        "date",
        "symbol",
        pl.col("x").struct.field("ex_date").str.to_date().alias("ex_date"),
        pl.col("x").struct.field("action"),
        pl.col("x").struct.field("ratio"),
        pl.col("x").struct.field("ratio").alias("price_factor"),
        pl.col("x").struct.field("move_return"),
        pl.col("x").struct.field("confirming_sessions").list.eval(pl.element().str.to_date()).alias("confirming_sessions"),
        pl.lit("inferred").alias("provenance"),
    )
    return out.cast(INFERRED_ACTION_SCHEMA).sort("date", "symbol")


# --- input ---------------------------------------------------------------------------------------
def _penalties(settings: QualitySettings) -> dict[str, float]:
    pen = dict(settings.penalties)
    unknown = sorted(set(pen) - set(QUALITY_CODES))
    if unknown:
        raise ValueError(f"QualitySettings.penalties names unknown codes {unknown} (see reasons.QUALITY_CODES)")
    missing = sorted(set(_ALL_CODES) - set(pen))
    if missing:
        raise ValueError(f"QualitySettings.penalties has no penalty for {missing}")
    return pen


def _prepare_bars(bars: pl.DataFrame, universe: list[str], window_end: date) -> pl.DataFrame:
    absent = [c for c in BAR_COLUMNS if c not in bars.columns]
    if absent:
        raise ValueError(f"bars lack required columns {absent} (have {bars.columns})")
    extra = [
        (pl.col(c).cast(t) if c in bars.columns else pl.lit(default, dtype=t)).alias(c)
        for c, (t, default) in OPTIONAL_BAR_COLUMNS.items()
    ]
    b = bars.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")],
        *extra,
    )
    # point in time: nothing after the window end is used; symbols outside the universe are out of scope
    b = b.filter((pl.col("date") <= window_end) & pl.col("symbol").is_in(universe))
    dup = b.group_by("date", "symbol").len().filter(pl.col("len") > 1)
    if dup.height:
        ex = dup.sort("date", "symbol").head(5).rows()
        raise ValueError(f"bars hold {dup.height} duplicated (date, symbol) keys, e.g. {ex}: deduplicate upstream and set duplicate_count")
    return b.with_columns(
        pl.col("duplicate_count").fill_null(0), pl.col("is_synthetic").fill_null(False)
    ).sort("symbol", "date")


def _prepare_actions(actions: pl.DataFrame, universe: list[str], window_end: date) -> pl.DataFrame:
    schema = {"date": pl.Date, "symbol": pl.String, "log_factor": pl.Float64, "n_actions": pl.Int64, "n_splits": pl.Int64}
    if actions is None or actions.height == 0:
        return pl.DataFrame(schema=schema)
    absent = [c for c in ACTION_COLUMNS if c not in actions.columns]
    if absent:
        raise ValueError(f"actions lack required columns {absent} (have {actions.columns})")
    a = actions.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        pl.col("action").cast(pl.String),
        pl.col("price_factor").cast(pl.Float64),
    ).filter((pl.col("date") <= window_end) & pl.col("symbol").is_in(universe))
    bad = a.filter(pl.col("price_factor") <= 0)
    if bad.height:
        raise ValueError(f"corporate actions with a non-positive price_factor: {bad.head(5).rows()}")
    return (
        a.group_by("date", "symbol")
        .agg(
            pl.col("price_factor").fill_null(1.0).log().sum().alias("log_factor"),
            pl.len().cast(pl.Int64).alias("n_actions"),
            (pl.col("action").str.to_lowercase() == "split").sum().cast(pl.Int64).alias("n_splits"),
        )
        .select(schema.keys())
        .cast(schema)
    )


# --- per-bar rules -------------------------------------------------------------------------------
def _bar_rules(b: pl.DataFrame, a: pl.DataFrame, s: QualitySettings) -> pl.DataFrame:
    """Flags and the values behind them for every bar (sorted by symbol, date)."""
    L = s.lookback_sessions
    o, h, lo, c, v = (pl.col(x) for x in ("open", "high", "low", "close", "volume"))
    tol = s.range_tolerance
    good_close = pl.when(c > 0).then(c)

    b = b.with_columns(
        good_close.alias("_c"),
        pl.when(c > 0).then(pl.col("date")).alias("_cdate"),
        pl.when(v > 0).then(v).alias("_vpos"),
    ).with_columns(
        pl.col("_c").shift(1).forward_fill().over("symbol").alias("prev_close"),
        pl.col("_cdate").shift(1).forward_fill().over("symbol").alias("prev_date"),
    )

    # Each action belongs to the first bar with a positive close on or after its ex-date: the
    # return interval (prev date, t] that it explains.
    targets = b.filter(pl.col("_c").is_not_null()).select("symbol", pl.col("date").alias("bar_date")).sort("bar_date")
    if a.height:
        mapped = (
            a.sort("date")
            .join_asof(targets, left_on="date", right_on="bar_date", by="symbol", strategy="forward", check_sortedness=False)
            .filter(pl.col("bar_date").is_not_null())
            .group_by("symbol", "bar_date")
            .agg(pl.col("log_factor").sum(), pl.col("n_actions").sum(), pl.col("n_splits").sum())
        )
        b = b.join(mapped, left_on=["symbol", "date"], right_on=["symbol", "bar_date"], how="left")
    else:
        b = b.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("log_factor"),
            pl.lit(None, dtype=pl.Int64).alias("n_actions"),
            pl.lit(None, dtype=pl.Int64).alias("n_splits"),
        )
    b = b.with_columns(
        pl.col("log_factor").fill_null(0.0), pl.col("n_actions").fill_null(0), pl.col("n_splits").fill_null(0)
    ).sort("symbol", "date")

    r = pl.col("ret")
    split_logs = [math.log(k) for k in s.split_ratios]
    split_dist = pl.min_horizontal(*[(r - lk).abs() for lk in split_logs]) if split_logs else pl.lit(None, dtype=pl.Float64)

    b = b.with_columns(
        (pl.col("_c").log() - pl.col("prev_close").log() - pl.col("log_factor")).alias("ret"),
        # trailing medians: shifted by one bar so today is compared with its past only
        pl.col("_vpos").shift(1).rolling_median(L, min_samples=s.min_history).over("symbol").alias("median_volume"),
    ).with_columns(
        (MAD_TO_SIGMA * r.abs().shift(1).rolling_median(max(L - 2, 1), min_samples=s.min_history))
        .over("symbol")
        .alias("sigma"),
        split_dist.alias("split_dist"),
    )
    thr = pl.max_horizontal(s.robust_return_z * pl.col("sigma"), pl.lit(s.min_abs_jump))  # null sigma -> floor
    b = b.with_columns(
        thr.alias("threshold"),
        (pl.col("split_dist") <= s.split_tolerance).fill_null(False).alias("_split_like"),
        (r.abs() > math.log(s.max_price_ratio)).fill_null(False).alias("_unit_error"),
    ).with_columns(
        (r.abs() > pl.col("threshold")).fill_null(False).alias("_big"),
    ).with_columns(
        (pl.col("_big") | pl.col("_split_like") | pl.col("_unit_error")).alias("_jump"),
    )
    r_prev = r.shift(1).over("symbol")
    b = _held_moves(b, s)
    # stale: run length of equal consecutive positive closes (today included) = row - first row of the
    # run + 1; a symbol's first row always starts a run, so the forward fill never crosses symbols
    same = (pl.col("_c") == pl.col("_c").shift(1)).over("symbol").fill_null(False)
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    b = b.with_columns(
        r_prev.alias("prev_ret"),
        pl.col("date").shift(1).over("symbol").alias("prev_bar_date"),
        (row - pl.when(~same).then(row).forward_fill() + 1).alias("stale_run"),
    )

    prices = [o, h, lo, c]
    rev = pl.col("REVERSED_SPIKE") | pl.col("REVERTED_MOVE")  # the move is a repair, not a new jump

    def thin(ratio: float) -> pl.Expr:  # volume (null = 0) below ratio x the trailing median; unknown median -> no
        return (v.fill_null(0.0) < ratio * pl.col("median_volume")).fill_null(False)

    return b.with_columns(
        pl.any_horizontal(*[x.is_null() for x in (*prices, v)]).alias("MISSING_FIELD"),
        pl.any_horizontal(*[(x <= 0).fill_null(False) for x in prices]).alias("NON_POSITIVE_PRICE"),
        (h < lo * (1 - tol)).fill_null(False).alias("HIGH_BELOW_LOW"),
        ((o < lo * (1 - tol)) | (o > h * (1 + tol))).fill_null(False).alias("OPEN_OUTSIDE_RANGE"),
        ((c < lo * (1 - tol)) | (c > h * (1 + tol))).fill_null(False).alias("CLOSE_OUTSIDE_RANGE"),
        (v.is_null() | (v <= 0).fill_null(False)).alias("ZERO_VOLUME"),
        ((v > 0).fill_null(False) & thin(s.low_volume_ratio)).alias("LOW_VOLUME"),
        ((o == h) & (h == lo) & (lo == c)).fill_null(False).and_(thin(s.flat_bar_volume_ratio)).alias("FLAT_BAR"),
        (pl.col("_c").is_not_null() & (pl.col("stale_run") >= s.stale_run)).alias("STALE_PRICE"),
        (pl.col("duplicate_count") > 0).alias("DUPLICATE_ROW"),
        (pl.col("_split_like") & ~rev).alias("UNADJUSTED_SPLIT"),
        (pl.col("_unit_error") & ~pl.col("_split_like") & ~rev).alias("RETURN_OUTLIER"),
        (pl.col("_big") & ~pl.col("_split_like") & ~pl.col("_unit_error") & ~rev).alias("LARGE_MOVE"),
        pl.col("is_synthetic").alias("SYNTHETIC_DATA"),
        (v / pl.col("median_volume")).alias("volume_ratio"),
    )


def _lag(name: str, n: int) -> pl.Expr:
    """The column `name` n bars earlier in the symbol's series (n = 0: this bar; null before its first).
    On bars sorted by (symbol, date) a plain shift masked where the symbol changes (`_same{n}`, made
    by `_held_moves`) equals shift(n).over("symbol") and costs a fraction of it (the held-move rules
    take ~25 of them)."""
    if n == 0:
        return pl.col(name)
    return pl.when(pl.col(f"_same{n}")).then(pl.col(name).shift(n))


def _held_moves(b: pl.DataFrame, s: QualitySettings) -> pl.DataFrame:
    """The held-move state of every bar (module docstring, "Held moves"), with k = confirm_sessions:
    REVERSED_SPIKE, REVERTED_MOVE, MOVE_UNCONFIRMED, MOVE_CONFIRMED, LEVEL_SHIFT_INFERRED and the
    values their details report. Needs ret, _jump, _split_like, _unit_error on (symbol, date) order.

    Per bar t and lag m in 1..k (e = the bar m before t):
        D_m(t) = r_t + ... + r_{t-m+1} = ln C_t - ln C_e   (action-adjusted; null if a bar between has no close)
        R_m(t) = jump at e, D_m(t) opposite in sign to r_e and |r_e + D_m(t)| <= (1 - reversal_fraction) |r_e|
        S_m(t) = |D_m(t)| <= level_tolerance * |r_e|
    First reversal of the jump m bars back: R_m(t) and no R_j at e + j for j < m. m = 1 is
    REVERSED_SPIKE (the rule before #16), m >= 2 REVERTED_MOVE. A jump that is itself the first
    reversal of an earlier one is a repair and starts no hold (hold start H = jump and no first reversal).
        MOVE_UNCONFIRMED(t)     some j in 0..k-1: H at t-j, no R_m at t-j+m for m in 1..j
        confirmed(t)            H at e = t-k, no R_m at e+m for m in 1..k
        LEVEL_SHIFT_INFERRED(t) confirmed, S_m at e+m for every m in 1..k (the ratio held), and the jump
                                is split-like or a unit error, or (infer_shifts) downward ("down") or any ("all")
        MOVE_CONFIRMED(t)       confirmed and not LEVEL_SHIFT_INFERRED
    The inferred action: ex-date = e's date; split-like -> action 'split', ratio = the nearest split
    ratio; otherwise action 'level_shift', ratio = exp(r_e); price_factor = ratio (the factor still to
    apply to the prices before e, as corporate_actions' price_factor); confirming sessions = the
    dates of bars e+1..e+k (the last is t, the session that knows it)."""
    k = s.confirm_sessions
    if k < 1:
        raise ValueError(f"QualitySettings.confirm_sessions must be >= 1, got {k}")
    f, lvl = s.reversal_fraction, s.level_tolerance
    sym_id = pl.col("symbol").rle_id()  # bars are sorted by (symbol, date): one run per symbol
    b = b.with_columns(*[(sym_id.shift(n) == sym_id).fill_null(False).alias(f"_same{n}") for n in range(1, k + 1)])
    b = b.with_columns(
        *[
            sum((_lag("ret", i) for i in range(1, m)), pl.col("ret")).alias(f"_D{m}")  # + keeps nulls
            for m in range(1, k + 1)
        ],
        _nearest_ratio(s.split_ratios, digits=None).alias("_split_ratio"),
    )
    b = b.with_columns(
        *[
            (
                _lag("_jump", m).fill_null(False)
                & (pl.col(f"_D{m}") * _lag("ret", m) < 0).fill_null(False)
                & ((_lag("ret", m) + pl.col(f"_D{m}")).abs() <= (1.0 - f) * _lag("ret", m).abs()).fill_null(False)
            ).alias(f"_R{m}")
            for m in range(1, k + 1)
        ],
        *[(pl.col(f"_D{m}").abs() <= lvl * _lag("ret", m).abs()).fill_null(False).alias(f"_S{m}") for m in range(1, k + 1)],
    )

    def reverted_by(j: int, upto: int) -> pl.Expr:
        """The jump j bars back was reverted at one of the `upto` bars after it (R_m seen m bars after it)."""
        return pl.any_horizontal(pl.lit(False), *[_lag(f"_R{m}", j - m).fill_null(False) for m in range(1, upto + 1)])

    first_rev = {j: pl.col(f"_R{j}") & ~reverted_by(j, j - 1) for j in range(1, k + 1)}
    b = b.with_columns(
        first_rev[1].alias("REVERSED_SPIKE"),
        pl.any_horizontal(pl.lit(False), *[first_rev[j] for j in range(2, k + 1)]).alias("REVERTED_MOVE"),
        # the smallest lag >= 2 with a first reversal (for the details)
        pl.coalesce([pl.when(first_rev[j]).then(pl.lit(j)) for j in range(2, k + 1)] or [pl.lit(None)]).alias("_rev_j"),
    ).with_columns((pl.col("_jump") & ~pl.col("REVERSED_SPIKE") & ~pl.col("REVERTED_MOVE")).alias("_hold"))

    pending = {j: _lag("_hold", j).fill_null(False) & ~reverted_by(j, j) for j in range(0, k)}
    pend_j = pl.coalesce([pl.when(pending[j]).then(pl.lit(j)) for j in range(k)])  # the latest held jump
    confirmed = _lag("_hold", k).fill_null(False) & ~reverted_by(k, k)
    stable = pl.all_horizontal(*[_lag(f"_S{m}", k - m).fill_null(False) for m in range(1, k + 1)])
    split_e, unit_e, ret_e = _lag("_split_like", k).fill_null(False), _lag("_unit_error", k).fill_null(False), _lag("ret", k)
    if s.infer_shifts not in INFER_SHIFTS:
        raise ValueError(f"QualitySettings.infer_shifts must be one of {INFER_SHIFTS}, got {s.infer_shifts!r}")
    direction = {"splits": pl.lit(False), "down": (ret_e < 0).fill_null(False), "all": pl.lit(True)}[s.infer_shifts]
    infer = confirmed & stable & (split_e | unit_e | direction)

    def at_lag(name: str, lag: pl.Expr, lags: range) -> pl.Expr:
        """`name` at the bar `lag` bars back, lag an expression taking values in `lags`."""
        return pl.coalesce([pl.when(lag == j).then(_lag(name, j)) for j in lags] or [pl.lit(None, pl.Float64)])

    b = b.with_columns(
        pend_j.alias("_pend_j"),
        pl.any_horizontal(*pending.values()).alias("MOVE_UNCONFIRMED"),
        confirmed.alias("_confirmed"),
        (confirmed & ~infer).alias("MOVE_CONFIRMED"),
        infer.alias("LEVEL_SHIFT_INFERRED"),
    )
    # the values the details report, computed on the few flagged bars only (the rest stay null:
    # they are carried through the (session, symbol) grid, and a list per bar would cost the most)
    conf = pl.col("_confirmed")
    details = b.with_columns(
        at_lag("date", pl.col("_pend_j"), range(k)).alias("_pend_date"),
        at_lag("ret", pl.col("_pend_j"), range(k)).alias("_pend_ret"),
        (k - pl.col("_pend_j")).alias("_pend_left"),
        pl.when(conf).then(_lag("date", k)).alias("_move_date"),
        pl.when(conf).then(ret_e).alias("_move_ret"),
        pl.when(conf).then(pl.concat_list([_lag("date", k - m) for m in range(1, k + 1)])).alias("_confirming"),
        pl.when(conf).then(stable).alias("_stable"),
        pl.when(conf).then(pl.when(split_e).then(pl.lit("split")).otherwise(pl.lit("level_shift"))).alias("_inf_action"),
        pl.when(conf).then(pl.when(split_e).then(_lag("_split_ratio", k)).otherwise(ret_e.exp())).alias("_inf_ratio"),
        at_lag("ret", pl.col("_rev_j"), range(2, k + 1)).alias("_revm_ret"),
        pl.coalesce([pl.when(pl.col("_rev_j") == j).then(pl.col(f"_D{j}")) for j in range(2, k + 1)] or [pl.lit(None, pl.Float64)]).alias("_revm_back"),
        pl.coalesce(
            [pl.when(pl.col("_rev_j") == j).then(pl.concat_list([_lag("date", i) for i in range(j, 0, -1)])) for j in range(2, k + 1)]
            or [pl.lit(None, pl.List(pl.Date))]
        ).alias("_revm_dates"),
    )
    helpers = [c for c in details.columns if c.startswith(("_D", "_R", "_S", "_same")) or c in ("_hold", "_rev_j", "_pend_j", "_confirmed", "_split_ratio")]
    return details.drop(helpers)


def _nearest_ratio(ratios: Sequence[float], digits: int | None = 6) -> pl.Expr:
    """The split ratio nearest (in log terms) to the move (rounded for the details; exact with digits=None)."""
    expr = pl.lit(None, dtype=pl.Float64)
    for k in ratios:  # a when-chain over the few configured ratios (not over data)
        value = k if digits is None else round(k, digits)
        expr = pl.when((pl.col("ret") - math.log(k)).abs() == pl.col("split_dist")).then(pl.lit(value)).otherwise(expr)
    return expr


def _fields(names: Sequence[str], bad) -> pl.Expr:
    """The names of the columns for which bad(column) holds, as a list (for the details)."""
    return pl.concat_list([pl.when(bad(pl.col(n))).then(pl.lit(n)) for n in names]).list.drop_nulls()


# --- the (session, symbol) grid ----------------------------------------------------------------
def _grid(window, universe, cal, b, s: QualitySettings, unserved) -> pl.DataFrame:
    L = s.lookback_sessions
    cal_df = pl.DataFrame({"date": cal, "idx": list(range(len(cal)))}, schema={"date": pl.Date, "idx": pl.Int64})
    grid = (
        pl.DataFrame({"date": window}, schema={"date": pl.Date})
        .join(pl.DataFrame({"symbol": universe}, schema={"symbol": pl.String}), how="cross")
        .join(cal_df, on="date", how="left")
    )
    on_cal = b.filter(pl.col("on_calendar")).drop("on_calendar", "sidx")
    # presence is marked by the join, not by values: a bar whose every price is null still exists
    on_cal = on_cal.with_columns(pl.lit(True).alias("_present"))
    grid = grid.join(on_cal, on=["date", "symbol"], how="left").with_columns(pl.col("_present").fill_null(False))

    # last bar strictly before t (any bar, also off-calendar) and its session index
    last = b.select("symbol", pl.col("date").alias("last_bar"), pl.col("sidx").alias("last_sidx")).sort("last_bar")
    grid = grid.sort("date").join_asof(
        last,
        left_on="date",
        right_on="last_bar",
        by="symbol",
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,  # both sides are sorted by date just above
    )
    first = b.group_by("symbol").agg(pl.col("date").min().alias("first_bar"), pl.col("sidx").min().alias("first_sidx"))
    grid = grid.join(first, on="symbol", how="left")

    off = (
        b.filter(~pl.col("on_calendar") & (pl.col("sidx") < len(cal)))
        .group_by("sidx", "symbol")
        .agg(pl.col("date").sort().alias("off_dates"))
    )
    grid = grid.join(off, left_on=["idx", "symbol"], right_on=["sidx", "symbol"], how="left")

    no_bar = ~pl.col("_present")
    is_unserved = pl.col("symbol").is_in(list(unserved))
    recent = (pl.col("idx") - pl.col("last_sidx") <= L).fill_null(False)
    age = pl.col("idx") - pl.col("first_sidx")
    return grid.with_columns(
        *[pl.col(c).fill_null(False) for c in _BAR_CODES],  # no bar: no bar-level flag
        (no_bar & is_unserved).alias("NO_PROVIDER"),
        (no_bar & ~is_unserved & recent).alias("MISSING_BAR"),
        (no_bar & ~is_unserved & ~recent).alias("NOT_LISTED"),
        ((pl.col("first_sidx") > 0) & (age >= 0) & (age < s.late_start_sessions)).fill_null(False).alias("LATE_START"),
        pl.col("off_dates").is_not_null().alias("OFF_CALENDAR"),
        (pl.col("idx") - pl.col("last_sidx")).alias("sessions_since_last_bar"),
        age.alias("sessions_since_first_bar"),
    )


# --- codes, details, score -----------------------------------------------------------------------
def _r6(name: str) -> pl.Expr:
    return pl.col(name).round(6).alias(name)


def _details_exprs(s: QualitySettings) -> dict[str, pl.Expr]:
    """The values reported for each code (a struct per code)."""
    px = [pl.col(c) for c in ("open", "high", "low", "close")]
    move = [pl.col("prev_date"), pl.col("prev_close"), pl.col("close"), _r6("ret")]
    return {
        "MISSING_FIELD": pl.struct(_fields(("open", "high", "low", "close", "volume"), lambda x: x.is_null()).alias("fields")),
        "NON_POSITIVE_PRICE": pl.struct(_fields(("open", "high", "low", "close"), lambda x: x <= 0).alias("fields"), *px),
        "HIGH_BELOW_LOW": pl.struct("high", "low"),
        "OPEN_OUTSIDE_RANGE": pl.struct("open", "low", "high"),
        "CLOSE_OUTSIDE_RANGE": pl.struct("close", "low", "high"),
        "ZERO_VOLUME": pl.struct("volume"),
        "LOW_VOLUME": pl.struct("volume", "median_volume", _r6("volume_ratio")),
        "FLAT_BAR": pl.struct("close", "volume", "median_volume", _r6("volume_ratio")),
        "STALE_PRICE": pl.struct("close", pl.col("stale_run").alias("run")),
        "DUPLICATE_ROW": pl.struct("duplicate_count"),
        "UNADJUSTED_SPLIT": pl.struct(
            *move,
            pl.col("ret").exp().round(6).alias("ratio"),
            _nearest_ratio(s.split_ratios).alias("split_ratio"),
            pl.col("n_splits").alias("splits_recorded"),
        ),
        "RETURN_OUTLIER": pl.struct(*move, pl.col("ret").exp().round(6).alias("ratio"), pl.col("n_actions").alias("actions")),
        "LARGE_MOVE": pl.struct(*move, _r6("threshold"), _r6("sigma"), _r6("volume_ratio"), pl.col("n_actions").alias("actions")),
        "REVERSED_SPIKE": pl.struct(
            pl.col("prev_bar_date").alias("bad_date"), pl.col("prev_ret").round(6).alias("spike_return"), pl.col("ret").round(6).alias("reversal_return")
        ),
        "REVERTED_MOVE": pl.struct(
            pl.col("_revm_dates").alias("bad_dates"), pl.col("_revm_ret").round(6).alias("move_return"), pl.col("_revm_back").round(6).alias("reversal_return")
        ),
        "MOVE_UNCONFIRMED": pl.struct(
            pl.col("_pend_date").alias("move_date"),
            pl.col("_pend_ret").round(6).alias("move_return"),
            pl.col("_pend_ret").exp().round(6).alias("ratio"),
            pl.col("_pend_left").alias("bars_to_confirm"),
        ),
        "MOVE_CONFIRMED": pl.struct(
            pl.col("_move_date").alias("move_date"),
            pl.col("_move_ret").round(6).alias("move_return"),
            pl.col("_move_ret").exp().round(6).alias("ratio"),
            pl.col("_confirming").alias("confirming_sessions"),
            pl.col("_stable").alias("level_held"),
        ),
        "LEVEL_SHIFT_INFERRED": pl.struct(
            pl.col("_move_date").alias("ex_date"),
            pl.col("_inf_action").alias("action"),
            pl.col("_inf_ratio").alias("ratio"),
            pl.col("_move_ret").round(6).alias("move_return"),
            pl.col("_confirming").alias("confirming_sessions"),
        ),
        "SYNTHETIC_DATA": pl.struct("provider"),
        "OFF_CALENDAR": pl.struct(pl.col("off_dates").alias("dates")),
        "NO_PROVIDER": pl.struct(pl.col("last_bar")),
        "MISSING_BAR": pl.struct(pl.col("last_bar"), pl.col("sessions_since_last_bar")),
        "NOT_LISTED": pl.struct(pl.col("last_bar")),  # never the first bar: it may lie after t
        "LATE_START": pl.struct("first_bar", "sessions_since_first_bar"),
    }


_BAR_CODES = (
    "MISSING_FIELD", "NON_POSITIVE_PRICE", "HIGH_BELOW_LOW", "OPEN_OUTSIDE_RANGE", "CLOSE_OUTSIDE_RANGE",
    "ZERO_VOLUME", "LOW_VOLUME", "FLAT_BAR", "STALE_PRICE", "DUPLICATE_ROW", "UNADJUSTED_SPLIT",
    "RETURN_OUTLIER", "LARGE_MOVE", "REVERSED_SPIKE", "SYNTHETIC_DATA",
    "REVERTED_MOVE", "MOVE_UNCONFIRMED", "MOVE_CONFIRMED", "LEVEL_SHIFT_INFERRED",
)  # fmt: skip
_GRID_CODES = ("OFF_CALENDAR", "NO_PROVIDER", "MISSING_BAR", "NOT_LISTED", "LATE_START")
_ALL_CODES = tuple(sorted(_BAR_CODES + _GRID_CODES))


def _assemble(grid: pl.DataFrame, penalties: dict[str, float], s: QualitySettings) -> pl.DataFrame:
    details = _details_exprs(s)
    codes = pl.concat_list([pl.when(pl.col(k)).then(pl.lit(k)) for k in _ALL_CODES]).list.drop_nulls()
    parts = pl.concat_list(
        [pl.when(pl.col(k)).then(pl.format('"{}":{}', pl.lit(k), details[k].struct.json_encode())) for k in _ALL_CODES]
    ).list.drop_nulls()
    penalty = pl.sum_horizontal([pl.col(k).cast(pl.Float64) * penalties[k] for k in _ALL_CODES])
    score = (1.0 - penalty).clip(0.0, 1.0).round(6)
    flagged = pl.any_horizontal(*[pl.col(k) for k in _ALL_CODES])
    grid = grid.with_columns(flagged.alias("_flagged"))
    # details are encoded only where a code fired (a few % of rows): JSON for every row dominated the cost
    clean = grid.filter(~pl.col("_flagged")).select(
        "date",
        "symbol",
        pl.lit(1.0).alias("score"),
        pl.lit([], dtype=pl.List(pl.String)).alias("reason_codes"),
        pl.lit("{}").alias("details"),
        "provider",
    )
    dirty = grid.filter(pl.col("_flagged")).select(
        "date",
        "symbol",
        score.alias("score"),
        codes.alias("reason_codes"),
        pl.concat_str(pl.lit("{"), parts.list.join(","), pl.lit("}")).alias("details"),
        "provider",
    )
    out = pl.concat([clean.cast(dict(clean.schema) | {"score": pl.Float64}), dirty], how="vertical_relaxed")
    out = out.with_columns((pl.col("score") >= s.pass_score).alias("passed"))
    return out.select(list(OUTPUT_SCHEMA)).cast(OUTPUT_SCHEMA).sort("date", "symbol")


def summarize(quality: pl.DataFrame) -> dict:
    """Counts for reports: rows, failing rows, failing share per session (max), and rows per code."""
    failed = quality.filter(~pl.col("passed"))
    per = quality.group_by("date").agg((~pl.col("passed")).mean().alias("share"))
    codes = quality.explode("reason_codes").drop_nulls("reason_codes").group_by("reason_codes").len()
    fcodes = failed.explode("reason_codes").drop_nulls("reason_codes").group_by("reason_codes").len()
    return {
        "rows": quality.height,
        "failing_rows": failed.height,
        "max_failing_share": float(per["share"].max()) if per.height else 0.0,
        "codes": {k: int(n) for k, n in codes.sort("reason_codes").rows()},
        "codes_on_failing_rows": {k: int(n) for k, n in fcodes.sort("reason_codes").rows()},
    }
