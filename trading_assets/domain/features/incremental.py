"""Incremental feature state: a daily run computes session t from the state after t-1 and the trailing
bars, instead of recomputing every symbol from its first session.

A feature's value at bar k of a symbol's usable series (compute.py) depends on
  - the bars k - TRAILING_BARS .. k (every windowed feature: rolling means, sums, extremes, shifts;
    catalog.TRAILING_BARS is the longest reach back, max_dd_252's 503 bars, plus a margin),
  - the values y_{k-1} of its recursions (EMA, Wilder RSI/ATR, EWMA variance, the MACD signal:
    catalog FeatureSpec.recursions), which summarize the whole past,
  - k itself (warm-up masks, the benchmark features' bar count) and history_rows = k + 1.
So the state of a symbol after its last usable bar j <= s (session s = as_of) is

    history_rows = j + 1,  last_bar = date of bar j,  tail_start = date of bar j - TRAILING_BARS + 1,
    r_<key> = y_j for every recursion key (Q units, the units of the symbol's first session),

and the features of sessions after s follow from it and the bars from tail_start on: the frame of a
continued symbol is its bars from tail_start, with bar indexes offset by i0 = history_rows -
TRAILING_BARS, and each recursion restarted at bar j from y_j (`_base.recursion_expr`), which runs the
same floating-point operations as the full recomputation, so recursions, extremes, shifts, ratios,
history_rows and the cross-sectional ranks of equal inputs are equal bit for bit. Rolling sums
(means, variances) are the one difference: polars slides a running sum from the first row of the
frame, so a sum over the same bars differs in the last bits (measured: relative differences below
1e-12; the stated tolerance in docs/ARCHITECTURE.md and features/test_incremental.py).

A symbol is continued only with the state of the session just before the window, of the same
state version (feature version, TRAILING_BARS, STATE_REVISION, history start) and whose input digest
(the bars, quality verdicts and corporate actions, provider and inferred, up to s; store/feature_state.py)
is unchanged, and at least TRAILING_BARS usable bars long; otherwise it is recomputed from its first
session as before (a corporate action recorded late, an inferred action, a revised or late bar, a
changed verdict, a feature_version change, a gap in the runs). A corporate action with ex-date
after s needs no invalidation: the adjustment is point in time (Q_x = P_x / F_x with F_x from actions
with ex-date <= x), so it leaves every bar up to s, and so the state, unchanged.

Pure polars; the warehouse side (the table, the digests) is store/feature_state.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import polars as pl

from trading_assets.domain.features._base import CARRY_PREFIX, I, ICARRY, REC_PREFIX
from trading_assets.domain.features.catalog import TRAILING_BARS, feature_version, recursions
from trading_assets.settings import FeatureSettings

# Bump when what the state holds or how it is continued changes (part of state_version).
STATE_REVISION = 1
I0 = "_i0"  # bar index of a continued symbol's first bar in the frame (0 for a symbol computed in full)
STATE_PREFIX = "r_"  # table column of a recursion's state


def state_version(settings: FeatureSettings, history_start: date) -> str:
    """What a stored state is valid for: the feature version, TRAILING_BARS, STATE_REVISION and the
    history start (bar indexes count from it)."""
    payload = {"feature_version": feature_version(settings), "trailing_bars": TRAILING_BARS,
               "revision": STATE_REVISION, "history_start": history_start.isoformat()}  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def recursion_keys(settings: FeatureSettings) -> list[str]:
    return [r.key for _, r in recursions(settings)]


def state_schema(settings: FeatureSettings) -> dict[str, pl.DataType]:
    """Columns of a state frame (one row per symbol)."""
    schema: dict[str, pl.DataType] = {"symbol": pl.String(), "history_rows": pl.Int64(), "last_bar": pl.Date(), "tail_start": pl.Date()}
    schema.update({STATE_PREFIX + k: pl.Float64() for k in recursion_keys(settings)})
    return schema


def carry_frame(state: pl.DataFrame, settings: FeatureSettings) -> pl.DataFrame:
    """The per-symbol columns compute.py joins onto a continued symbol's bars: I0 (its first frame
    bar's index), ICARRY (the index of its last state bar, where the recursions restart) and one
    CARRY_PREFIX column per recursion. Every state row must be at least TRAILING_BARS bars long."""
    keys = recursion_keys(settings)
    missing = [c for c in state_schema(settings) if c not in state.columns]
    if missing:
        raise ValueError(f"feature state lacks columns {missing}")
    short = state.filter(pl.col("history_rows") < TRAILING_BARS)
    if short.height:
        raise ValueError(f"feature state: {short.height} symbol(s) with fewer than {TRAILING_BARS} bars, e.g. {short['symbol'][0]}")
    nulls = [k for k in keys if state[STATE_PREFIX + k].null_count()]
    if nulls:
        raise ValueError(f"feature state: null recursion values {nulls[:5]} (a state is taken after the warm-up)")
    return state.select(
        pl.col("symbol").cast(pl.String),
        (pl.col("history_rows") - TRAILING_BARS).cast(pl.Int64).alias(I0),
        (pl.col("history_rows") - 1).cast(pl.Int64).alias(ICARRY),
        *(pl.col(STATE_PREFIX + k).cast(pl.Float64).alias(CARRY_PREFIX + k) for k in keys),
    )


def tail_bars(bars: pl.DataFrame, state: pl.DataFrame) -> pl.DataFrame:
    """bars without the rows of continued symbols before their tail_start (the frame of a continued
    symbol starts at its tail_start; other symbols keep every row)."""
    starts = state.select(pl.col("symbol").cast(pl.String), pl.col("tail_start").alias("_tail_start"))
    return (
        bars.join(starts, on="symbol", how="left", maintain_order="left")
        .filter(pl.col("_tail_start").is_null() | (pl.col("date") >= pl.col("_tail_start")))
        .drop("_tail_start")
    )


def check_tail(good: pl.DataFrame, state: pl.DataFrame) -> None:
    """Each continued symbol's frame must hold exactly TRAILING_BARS usable bars from tail_start to
    last_bar, the last at last_bar (what the digest guarantees): else the state does not describe
    these bars, and continuing it would be wrong, so stop with the symbol named."""
    if state.height == 0:
        return
    seen = (
        good.join(state.select("symbol", "last_bar"), on="symbol", how="inner")
        .filter(pl.col("date") <= pl.col("last_bar"))
        .group_by("symbol")
        .agg(pl.len().alias("n"), pl.col("date").max().alias("last"), pl.col("last_bar").first())
    )
    bad = seen.filter((pl.col("n") != TRAILING_BARS) | (pl.col("last") != pl.col("last_bar")))
    absent = set(state["symbol"]) - set(seen["symbol"])
    if bad.height or absent:
        example = bad.row(0, named=True) if bad.height else {"symbol": sorted(absent)[0]}
        raise ValueError(f"feature state does not match the bars read for {bad.height + len(absent)} symbol(s), e.g. {example} "
                         f"(expected {TRAILING_BARS} usable bars ending at last_bar)")  # fmt: skip


def extract_state(good: pl.DataFrame, as_of: date, settings: FeatureSettings) -> pl.DataFrame:
    """The state after session as_of of every symbol in `good` (compute.py's per-symbol frame: the
    usable bars with I and the recursion columns) with at least TRAILING_BARS usable bars up to it:
    its last usable bar <= as_of, its index + 1, the date TRAILING_BARS - 1 bars earlier, and every
    recursion's value there."""
    keys = recursion_keys(settings)
    upto = good.filter(pl.col("date") <= as_of)
    last = upto.group_by("symbol").agg(pl.col(I).max().alias("_last"))
    rows = upto.join(last, on="symbol")
    tip = rows.filter(pl.col(I) == pl.col("_last"))
    first = rows.filter(pl.col(I) == pl.col("_last") - (TRAILING_BARS - 1)).select("symbol", pl.col("date").alias("tail_start"))
    out = tip.join(first, on="symbol", how="inner").select(
        pl.col("symbol"),
        (pl.col(I) + 1).cast(pl.Int64).alias("history_rows"),
        pl.col("date").alias("last_bar"),
        pl.col("tail_start"),
        *(pl.col(REC_PREFIX + k).alias(STATE_PREFIX + k) for k in keys),
    )
    return out.filter(pl.all_horizontal(pl.col(STATE_PREFIX + k).is_not_null() for k in keys)).sort("symbol")
