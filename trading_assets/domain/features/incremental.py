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
from trading_assets.domain.features.catalog import BY_NAME, CATALOG, CROSS_SECTION_STAGE, TRAILING_BARS, feature_version, reach, recursions
from trading_assets.settings import FeatureSettings

# Bump when what the state holds or how it is continued changes (part of state_version).
STATE_REVISION = 1
# A continued symbol's features slide over frames of its last B bars, B in FRAME_BARS: each feature on
# the shortest frame that holds its reach (incremental_reach) with a 4-bar margin -- most features
# read <= 66 bars, a few up to 252, two (max_dd_252, calmar_proxy_252) 503 -- so nearly every
# expression slides over a fraction of the TRAILING_BARS bars (compute._continued).
FRAME_BARS = (70, 130, 260, TRAILING_BARS)
_MARGIN = 4
_PER_SYMBOL = [f for f in CATALOG if f.stage < CROSS_SECTION_STAGE]


def incremental_reach(name: str) -> int:
    """Bars before t that a continued symbol's frame must hold for feature `name` at t: as
    catalog.reach, except that a recursive feature reads its recursions from the carry at the last
    state bar (their inputs read one bar back: a return, a difference, the true range), not its
    warm-up window; a feature reading it still counts its own window."""
    f = BY_NAME[name]
    own = f.reach if f.reach is not None else (1 if f.recursions is not None else f.window - 1)
    return max([own, *(incremental_reach(i) for i in f.inputs if i in BY_NAME)])


def _with_inputs(names: set[str]) -> set[str]:
    out = set(names)
    for n in names:
        out |= _with_inputs({i for i in BY_NAME[n].inputs if i in BY_NAME})
    return out


def _tiers() -> tuple[tuple[int, tuple[str, ...], frozenset[str]], ...]:
    """(frame bars, the features it yields, what it evaluates: them and their inputs) per frame."""
    out, done = [], set()
    for bars in FRAME_BARS:
        mine = tuple(f.name for f in _PER_SYMBOL if f.name not in done and incremental_reach(f.name) <= bars - _MARGIN)
        done |= set(mine)
        if mine:
            out.append((bars, mine, frozenset(_with_inputs(set(mine)))))
    if len(done) != len(_PER_SYMBOL):
        raise AssertionError("a feature reaches further back than TRAILING_BARS: raise it")
    return tuple(out)


TIERS = _tiers()
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
    """Each continued symbol's frame must start at bar I0 and hold its last state bar (index ICARRY)
    at last_bar -- TRAILING_BARS usable bars from tail_start to last_bar, what the digest guarantees:
    else the state does not describe these bars, and continuing it would be wrong, so stop with the
    symbol named. `good`: the per-symbol frame (usable bars, I, I0, ICARRY), sorted by (symbol, date)."""
    if state.height == 0:
        return
    seen = (
        good.filter(pl.col(ICARRY).is_not_null())
        .group_by("symbol")
        .agg(pl.col(I).first().alias("first"), pl.col(I0).first(), pl.col("date").filter(pl.col(I) == pl.col(ICARRY)).first().alias("at_carry"))
        .join(state.select("symbol", "last_bar"), on="symbol", how="right")
    )
    bad = seen.filter((pl.col("first") != pl.col(I0)).fill_null(True) | (pl.col("at_carry") != pl.col("last_bar")).fill_null(True))
    if bad.height:
        raise ValueError(f"feature state does not match the bars read for {bad.height} symbol(s), e.g. {bad.row(0, named=True)} "
                         f"(expected {TRAILING_BARS} usable bars ending at last_bar)")  # fmt: skip


def extract_state(frames: list[pl.DataFrame], as_of: date, settings: FeatureSettings) -> pl.DataFrame:
    """The state after session as_of of every symbol in the frames (compute.py's per-symbol frames of
    one chunk: the usable bars with I and recursion columns, sorted by (symbol, date); the last one
    reaches furthest back) with at least TRAILING_BARS usable bars up to it: its last usable bar
    <= as_of, its index + 1, the date TRAILING_BARS - 1 bars earlier, and every recursion's value
    there (from whichever frame evaluated it)."""
    keys = recursion_keys(settings)
    rec_cols = [REC_PREFIX + k for k in keys]
    upto = pl.col("date") <= as_of
    per = (
        frames[-1].lazy()
        .filter(upto)
        .group_by("symbol")
        .agg((pl.col(I).last() + 1).cast(pl.Int64).alias("history_rows"), pl.col("date").last().alias("last_bar"),
             pl.when(pl.len() >= TRAILING_BARS).then(pl.col("date").slice(pl.len() - TRAILING_BARS, 1).first()).alias("tail_start"))
    )  # fmt: skip
    found: set[str] = set()
    for frame in frames:
        here = [c for c in rec_cols if c in frame.columns and c not in found]
        if here:
            found |= set(here)
            per = per.join(frame.lazy().filter(upto).group_by("symbol").agg(*(pl.col(c).last() for c in here)), on="symbol")
    missing = [c for c in rec_cols if c not in found]
    if missing:
        raise ValueError(f"extract_state: no frame evaluated the recursions {missing}")
    per = per.collect()
    out = per.filter(pl.col("tail_start").is_not_null() & pl.all_horizontal(pl.col(c).is_not_null() for c in rec_cols))
    return out.select(
        "symbol", "history_rows", "last_bar", "tail_start", *(pl.col(REC_PREFIX + k).alias(STATE_PREFIX + k) for k in keys)
    ).sort("symbol")
