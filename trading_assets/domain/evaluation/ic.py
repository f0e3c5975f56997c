"""Information coefficients: how well a forecast ranks what happened (docs/EVALUATION.md).

Inputs (any forecasting source: agents, learned models, the Meta-Brain, the risk gate's weights):
    scores  (date, symbol, source, score[, kind, role, score_column]): the score of `source` for `symbol`, known at
            session `date` (a null or non-finite score = the source is silent for that symbol)
    labels  (date, symbol, horizon, <label>, valid[, known_at]): the labels table's rows
            (domain/evaluation/labels.py); a pair counts when the label is valid and finite.
The label column is a parameter (default `excess_return` = fwd_return - the benchmark's, or the
equal-weight universe's, return on the same date: the cross-sectional metrics below are unchanged
by subtracting one number per date, and the hit rate then asks "did it beat the market?").

Per (date s, source, horizon h), over the n pairs (x_i, y_i) = (score, label) of the symbols that
have both:
    n            pairs; universe_n = symbols with a valid label on (s, h); coverage = n / universe_n (NULL when universe_n = 0)
    ic           Pearson:  sum((x - xbar)(y - ybar)) / sqrt(sum (x - xbar)^2 * sum (y - ybar)^2)
    rank_ic      Spearman: the Pearson correlation of the average ranks of x and of y (ties share the
                 mean of the ranks they span: scipy.stats.rankdata(method="average"), so rank_ic =
                 scipy.stats.spearmanr)
                 Both NULL when n < min_obs (3) or x or y has zero variance.
    hit_n        pairs with x != 0
    hit_rate     #{x_i * y_i > 0} / hit_n: the share of the non-zero scores whose label has the same
                 sign (a zero label is a miss; NULL when hit_n = 0)
    spread       top-minus-bottom quintile spread: with k = floor(n / buckets) (buckets = 5),
                 top = {i : #{j : x_j > x_i} < k}   (the k highest scores, with every score tied
                                                      with the k-th highest: ties are never split)
                 bottom = {i : #{j : x_j < x_i} < k}
                 spread = mean(y, top) - mean(y, bottom); top_n, bottom_n their sizes
                 (NULL when k = 0, i.e. n < buckets; 0 when every score is equal: top = bottom = all)
    known_at     when the labels of (s, h) became known: their known_at (= s + 1 + h), NULL when
                 the labels frame has no known_at column

Rolling, point in time (`rolling_metrics`): for each series (source, horizon) and each label date s,
over the daily values v_d of the W sessions d in (s - W, s] (calendar sessions; a missing or NULL
value is skipped; every d <= s is known by known_at(s) = s + 1 + h, so the row uses only labels
known when it is written):
    n_W       number of non-null v_d in the window
    mean_W    = sum v_d / n_W
    sd_W      = sqrt(sum (v_d - mean_W)^2 / (n_W - 1))               (sample standard deviation)
    ir_W      = mean_W / sd_W                                        (the ICIR for v = ic or rank_ic)
    t_W       = mean_W / sqrt(S_W / n_W), the Newey-West (1987) t-statistic with L = h - 1 lags:
                S_W = (1 / (n_W - 1)) * [sum_d e_d^2 + 2 sum_{l=1..L} (1 - l / (L + 1)) sum_d e_d e_{d-l}],
                e_d = v_d - mean_W, pairs (d, d - l) of calendar sessions both present in the window.
                For h = 1 (L = 0) S_W = sd_W^2 and t_W = ir_W * sqrt(n_W), the plain t-statistic.
                Why: for h > 1 consecutive labels overlap (h - 1 shared sessions), the daily values are
                autocorrelated, and the plain t overstated the evidence by about sqrt(h); the Bartlett
                weights keep S_W >= 0 (t NULL if S_W <= 0).
    NULL when n_W < min_periods (default ceil(W / 2)); ir and t NULL when n_W < 2 or sd_W = 0.
    Computed for v in {ic, rank_ic} (mean, ir, t) and {hit_rate, spread} (mean), W in (21, 63, 252).
Each window is evaluated from exactly its own values in session order (numpy over a sliding view),
so a row's value does not depend on where the run's read starts (run-boundary independent, bit for bit).

Usage (alpha: per-agent rolling rank IC known before t):
    daily = session_metrics(scores, labels.filter(pl.col("known_at") < t))
    rolled = rolling_metrics(daily, windows=(63,))      # rank_ic_mean_63, rank_ic_t_63, ... per row
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar
from trading_assets.domain.evaluation.segments import segment_ids, segment_ranks, segment_starts, segment_sum

WINDOWS: tuple[int, ...] = (21, 63, 252)
BUCKETS = 5  # quintiles
MIN_OBS = 3
KEYS = ("date", "source", "horizon")
CARRIED = ("kind", "role", "score_column")  # descriptive columns of scores kept per (date, source): the smallest non-null

DAILY_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "source": pl.String(),
    "horizon": pl.Int32(),
    "known_at": pl.Date(),
    "n": pl.Int64(),
    "universe_n": pl.Int64(),
    "coverage": pl.Float64(),
    "ic": pl.Float64(),
    "rank_ic": pl.Float64(),
    "hit_n": pl.Int64(),
    "hit_rate": pl.Float64(),
    "top_n": pl.Int64(),
    "bottom_n": pl.Int64(),
    "spread": pl.Float64(),
}
# (daily value, statistics) rolled by rolling_metrics
ROLLED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ic", ("mean", "ir", "t")),
    ("rank_ic", ("mean", "ir", "t")),
    ("hit_rate", ("mean",)),
    ("spread", ("mean",)),
)


def rolling_columns(windows: Sequence[int] = WINDOWS) -> list[str]:
    """The columns rolling_metrics adds, in order: n_rank_ic_W, then <value>_<stat>_W."""
    out = []
    for w in windows:
        out.append(f"n_rank_ic_{w}")
        out += [f"{v}_{stat}_{w}" for v, stats in ROLLED for stat in stats]
    return out


def session_metrics(
    scores: pl.DataFrame,
    labels: pl.DataFrame,
    label: str = "excess_return",
    buckets: int = BUCKETS,
    min_obs: int = MIN_OBS,
) -> pl.DataFrame:
    """One row per (date, source, horizon) where the source has a scores row and the labels have rows
    (DAILY_SCHEMA plus the CARRIED columns scores has), sorted by source, horizon, date.
    Formulas: module docstring."""
    for frame, cols, what in ((scores, ("date", "symbol", "source", "score"), "scores"), (labels, ("date", "symbol", "horizon", label, "valid"), "labels")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{what} lacks columns {missing}")
    extra = [c for c in CARRIED if c in scores.columns]
    usable = pl.col("valid") & pl.col(label).is_not_null() & pl.col(label).is_finite()
    lab = labels.filter(usable).select("date", "symbol", pl.col("horizon").cast(pl.Int32), pl.col(label).cast(pl.Float64).alias("y"))
    # per labelled (date, horizon): the valid labels and when the date's labels became known (all rows)
    known = pl.col("known_at").max() if "known_at" in labels.columns else pl.lit(None, pl.Date)
    universe = labels.group_by("date", pl.col("horizon").cast(pl.Int32)).agg(
        usable.fill_null(False).sum().cast(pl.Int64).alias("universe_n"), known.alias("known_at")
    )
    sc = scores.select("date", "symbol", "source", pl.col("score").cast(pl.Float64).alias("x"), *extra)
    # every (date, source) the source speaks to at all x every horizon labelled on that date
    present = sc.group_by("date", "source").agg(*(pl.col(c).min() for c in extra)).join(universe, on="date")
    # the pairs, sorted by (date, source, horizon, symbol) on enum codes of the sorted names (the same
    # order as the strings', a fraction of the cost)
    sym_enum = pl.Enum(sorted(set(sc["symbol"].unique().to_list()) | set(lab["symbol"].unique().to_list())))
    src_enum = pl.Enum(sorted(sc["source"].unique().to_list()))
    pairs = (
        sc.filter(pl.col("x").is_not_null() & pl.col("x").is_finite())
        .select("date", pl.col("symbol").cast(sym_enum), pl.col("source").cast(src_enum), "x")
        .join(lab.with_columns(pl.col("symbol").cast(sym_enum)), on=["date", "symbol"])
        .select(*KEYS, "symbol", "x", "y")
        .sort(*KEYS, "symbol")
    )
    agg = _pair_metrics(pairs, buckets).with_columns(pl.col("source").cast(pl.String))
    out = present.join(agg, on=list(KEYS), how="left").with_columns(
        pl.col("n").fill_null(0),
        pl.col("hit_n").fill_null(0),
        pl.col("top_n").fill_null(0),
        pl.col("bottom_n").fill_null(0),
    )
    out = out.with_columns(
        pl.when(pl.col("universe_n") > 0).then(pl.col("n") / pl.col("universe_n")).otherwise(None).alias("coverage"),
        pl.when(pl.col("n") >= min_obs).then(pl.col("ic")).otherwise(None).alias("ic"),
        pl.when(pl.col("n") >= min_obs).then(pl.col("rank_ic")).otherwise(None).alias("rank_ic"),
    )
    return out.select(*DAILY_SCHEMA, *extra).cast(DAILY_SCHEMA).sort("source", "horizon", "date")


def _centered_corr(a: np.ndarray, b: np.ndarray, seg: np.ndarray, starts: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per segment: sum((a - abar)(b - bbar)) / sqrt(sum (a - abar)^2 * sum (b - bbar)^2), NaN when a
    variance is 0 (two passes: the means first, then the centered products)."""
    da = a - (segment_sum(a, starts) / n)[seg]
    db = b - (segment_sum(b, starts) / n)[seg]
    den = np.sqrt(segment_sum(da * da, starts) * segment_sum(db * db, starts))
    # a constant segment has zero variance exactly (its centered values may be rounding dust, not 0)
    varies = (np.maximum.reduceat(a, starts) > np.minimum.reduceat(a, starts)) & (np.maximum.reduceat(b, starts) > np.minimum.reduceat(b, starts))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(varies & (den > 0), segment_sum(da * db, starts) / den, np.nan)


def _pair_metrics(pairs: pl.DataFrame, buckets: int) -> pl.DataFrame:
    """The per-(date, source, horizon) metrics of `pairs` (KEYS, symbol, x, y; sorted by KEYS then
    symbol), computed segment by segment in numpy (segments.py: a segment's values depend on its own
    rows only). Columns: KEYS, n, ic, rank_ic, hit_n, hit_rate, top_n, bottom_n, spread."""
    if pairs.height == 0:
        return pl.DataFrame(schema={k: DAILY_SCHEMA[k] for k in (*KEYS, "n", "ic", "rank_ic", "hit_n", "hit_rate", "top_n", "bottom_n", "spread")})
    starts = segment_starts(pairs, KEYS)
    seg = segment_ids(starts, pairs.height)
    n = np.diff(np.append(starts, pairs.height))
    x, y = pairs["x"].to_numpy().astype(np.float64), pairs["y"].to_numpy().astype(np.float64)
    rx, lo_x, hi_x = segment_ranks(x, seg, starts)
    ry, _, _ = segment_ranks(y, seg, starts)
    nonzero = x != 0
    hit_n = segment_sum(nonzero.astype(np.int64), starts)
    hits = segment_sum((nonzero & (x * y > 0)).astype(np.int64), starts)
    k = n // buckets
    top = hi_x <= k[seg]  # #{j : x_j > x_i} = hi - 1 < k
    bottom = lo_x <= k[seg]  # #{j : x_j < x_i} = lo - 1 < k
    top_n, bottom_n = segment_sum(top.astype(np.int64), starts), segment_sum(bottom.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        hit_rate = np.where(hit_n > 0, hits / hit_n, np.nan)
        spread = np.where(k > 0, segment_sum(np.where(top, y, 0.0), starts) / top_n - segment_sum(np.where(bottom, y, 0.0), starts) / bottom_n, np.nan)
    out = pairs[starts].select(KEYS).with_columns(
        pl.Series("n", n, dtype=pl.Int64),
        pl.Series("ic", _centered_corr(x, y, seg, starts, n)).fill_nan(None),
        pl.Series("rank_ic", _centered_corr(rx, ry, seg, starts, n)).fill_nan(None),
        pl.Series("hit_n", hit_n, dtype=pl.Int64),
        pl.Series("hit_rate", hit_rate).fill_nan(None),
        pl.Series("top_n", np.where(k > 0, top_n, 0), dtype=pl.Int64),
        pl.Series("bottom_n", np.where(k > 0, bottom_n, 0), dtype=pl.Int64),
        pl.Series("spread", spread).fill_nan(None),
    )
    return out


def overlap_lags(horizon: int) -> int:
    """Newey-West lags for daily values of h-session labels: L = h - 1 (the overlap length)."""
    return max(0, int(horizon) - 1)


def _window_stats(values: np.ndarray, w: int, min_periods: int, lags: int = 0,
                  positions: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """n, mean, ir, t of each trailing window of `w` values (NaN = missing), one per position (or only
    at `positions`, in that order); t is the Newey-West t-statistic with `lags` lags (module
    docstring; lags 0 = the plain t)."""
    padded = np.concatenate([np.full(w - 1, np.nan), values])
    win = np.lib.stride_tricks.sliding_window_view(padded, w)  # row i: values[i - w + 1 .. i]
    if positions is not None:
        win = win[positions]  # the same rows, so the same values bit for bit
    ok = ~np.isnan(win)
    n = ok.sum(axis=1)
    filled = np.where(ok, win, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1) / n
        dev = np.where(ok, win - mean[:, None], 0.0)  # e_d, 0 where missing: absent pairs add nothing
        ss = (dev * dev).sum(axis=1)
        sd = np.sqrt(ss / (n - 1))
        ir = mean / sd
        long_run = ss.copy()
        for lag in range(1, min(lags, w - 1) + 1):
            long_run += 2.0 * (1.0 - lag / (lags + 1.0)) * (dev[:, lag:] * dev[:, :-lag]).sum(axis=1)
        s_w = long_run / (n - 1)
        t = mean / np.sqrt(s_w / n)
    enough = n >= min_periods
    mean = np.where(enough, mean, np.nan)
    valid = enough & (n >= 2) & (sd > 0)
    ir = np.where(valid, ir, np.nan)
    t = ir * np.sqrt(n) if lags == 0 else np.where(valid & (s_w > 0), t, np.nan)
    return {"n": n, "mean": mean, "ir": ir, "t": t}


def newey_west_t(values: np.ndarray, lags: int) -> float:
    """The t-statistic of the mean of a series of calendar-ordered values (NaN = missing session) with
    Newey-West lags (the module docstring's t_W over the whole series); NaN when undefined."""
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v)
    n = int(ok.sum())
    if n < 2:
        return float("nan")
    mean = v[ok].sum() / n
    e = np.where(ok, v - mean, 0.0)  # absent sessions add no pair
    ss = float(e @ e)
    if ss <= 0:
        return float("nan")
    long_run = ss + sum(2.0 * (1.0 - lag / (lags + 1.0)) * float(e[lag:] @ e[:-lag]) for lag in range(1, min(lags, v.size - 1) + 1))
    s_w = long_run / (n - 1)
    return float(mean / np.sqrt(s_w / n)) if s_w > 0 else float("nan")  # O(n L), not the n x n window view


def rolling_metrics(
    daily: pl.DataFrame,
    windows: Sequence[int] = WINDOWS,
    min_periods: dict[int, int] | None = None,
    wanted: pl.Series | None = None,
) -> pl.DataFrame:
    """`daily` (session_metrics' rows) with the rolling columns (`rolling_columns(windows)`) added:
    per (source, horizon), over the calendar sessions of each trailing window (module docstring).
    min_periods: {W: minimum non-null values}, default ceil(W / 2). Rows keep daily's order.
    wanted: a boolean per row of `daily`: only those rows get rolling values (the others NULL, n 0),
    each the same as without it (a daily run needs 2 rows per series, not the 252 before them)."""
    if daily.height == 0:
        return daily.with_columns(
            [pl.lit(None, pl.Int64 if c.startswith("n_") else pl.Float64).alias(c) for c in rolling_columns(windows)]
        )
    order = daily.with_row_index("_row").sort("source", "horizon", "date", maintain_order=True)
    lo, hi = order["date"].min(), order["date"].max()
    sessions = calendar.sessions(lo, hi)
    pos = {d: i for i, d in enumerate(sessions)}
    try:
        idx_all = np.array([pos[d] for d in order["date"].to_list()], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"daily rows on a non-session: {exc.args[0]}") from None
    values = {v: order[v].cast(pl.Float64).fill_null(float("nan")).to_numpy() for v, _ in ROLLED}
    want = (np.ones(order.height, dtype=bool) if wanted is None
            else wanted.cast(pl.Boolean).fill_null(False).to_numpy()[order["_row"].to_numpy()])
    keys = list(zip(order["source"].to_list(), order["horizon"].to_list()))
    # runs of one (source, horizon) in the sorted rows
    bounds = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]] + [len(keys)]
    cols: dict[str, np.ndarray] = {
        c: (np.zeros(len(keys), dtype=np.int64) if c.startswith("n_") else np.full(len(keys), np.nan)) for c in rolling_columns(windows)
    }
    for a, b in zip(bounds, bounds[1:]):
        idx = idx_all[a:b]
        if len(np.unique(idx)) != len(idx):
            raise ValueError(f"daily has duplicate (date, source, horizon) rows for {keys[a]}")
        span = idx[-1] - idx[0] + 1
        lags = overlap_lags(keys[a][1])
        rows = np.flatnonzero(want[a:b])  # rows of this series that get values
        if rows.size == 0:
            continue
        at = idx[rows] - idx[0]  # their grid positions
        for value, stats in ROLLED:
            grid = np.full(span, np.nan)
            grid[idx - idx[0]] = values[value][a:b]
            for w in windows:
                mp = (min_periods or {}).get(w, math.ceil(w / 2))
                st = _window_stats(grid, w, mp, lags, positions=at)
                if value == "rank_ic":
                    cols[f"n_rank_ic_{w}"][a + rows] = st["n"]
                for stat in stats:
                    cols[f"{value}_{stat}_{w}"][a + rows] = st[stat]
    rolled = pl.DataFrame({"_row": order["_row"], **cols}).with_columns(
        pl.col(c).fill_nan(None) for c in rolling_columns(windows) if not c.startswith("n_")
    )
    return daily.with_row_index("_row").join(rolled, on="_row", how="left").sort("_row").drop("_row").select(
        *daily.columns, *rolling_columns(windows)
    )


def signal_metrics(
    scores: pl.DataFrame,
    labels: pl.DataFrame,
    label: str = "excess_return",
    windows: Sequence[int] = WINDOWS,
    buckets: int = BUCKETS,
    min_obs: int = MIN_OBS,
    min_periods: dict[int, int] | None = None,
) -> pl.DataFrame:
    """session_metrics then rolling_metrics: the signal_quality rows of every label date present."""
    return rolling_metrics(session_metrics(scores, labels, label, buckets, min_obs), windows, min_periods)


def latest_by_source(frame: pl.DataFrame, window: int = 63, as_of: date | None = None) -> pl.DataFrame:
    """The last row per (source, horizon) with label date <= as_of (all when None): source,
    horizon, date and the rolling rank IC mean / ICIR / t and n of `window` (for reports)."""
    rows = frame if as_of is None else frame.filter(pl.col("date") <= as_of)
    cols = [f"n_rank_ic_{window}", f"rank_ic_mean_{window}", f"rank_ic_ir_{window}", f"rank_ic_t_{window}", f"spread_mean_{window}"]
    return rows.sort("date").group_by("source", "horizon", maintain_order=True).last().select("source", "horizon", "date", *cols).sort(
        "horizon", "source"
    )
