"""compute_features: bars + corporate actions (+ quality verdicts) -> the wide feature frame.

One lazy polars plan, no Python loop over symbols or dates:

1. Point-in-time adjustment (docs/ARCHITECTURE.md "Prices and adjustments"). Per symbol, with the
   actions sorted by ex-date:  F_x = prod(price_factor, ex-date <= x),  S_x = prod(1/price_factor of
   splits, ex-date <= x), attached to each bar by an as-of (backward) join, so an action on a day
   without a usable bar still applies from that day on. Q = P / F, V = volume / S. A null
   price_factor means "no adjustment known" (factor 1); a non-finite or non-positive one is an error.
2. Usable bars: open, high, low, close, volume all present and finite, prices > 0, volume >= 0,
   and the (date, symbol) not in `bad_bars` (the quality gate's failures). Only usable bars enter the
   per-symbol series, so a bad bar never enters any window: windows (and recursive averages) step
   over it as if the session were missing (a return after it spans two sessions). The bad bar's own
   row is still output, with every feature null and quality_flagged = true.
3. Per-symbol features (`.over("symbol")` on (symbol, date) order) in catalog stages, then the
   cross-sectional ones (`.over("date")`, across the session's symbols other than the benchmark,
   whose cross-sectional columns are null), then price-level features are multiplied by F_t and
   share-level ones by S_t (so they are in the units of session t's prices and shares).
4. Provenance: history_rows = usable bars of the symbol up to and including t; quality_flagged;
   benchmark_available = the benchmark has a usable bar on session t.

`compute_features` evaluates it as one plan over the whole history; `window_chunks` (what the asset
uses) evaluates the same expressions on chunks of whole symbols and keeps only a window's rows, so
its memory is one chunk's: the per-symbol steps only read the symbol's own rows (plus the benchmark's
_lqb, which every chunk gets), and the cross-sectional step runs once over a narrow frame of its
inputs for every symbol of the window's sessions. Its rows are compute_features' bit for bit.

Deterministic: the output is sorted by (symbol, date) and depends only on the inputs and settings.
Values for session t depend only on bars, actions and verdicts dated <= t (point in time).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import polars as pl

from trading_assets.domain.features import benchmark as bm
from trading_assets.domain.features import incremental
from trading_assets.domain.features._base import DV, MEMBER, RB, C, F, H, I, L, O, R, S, V, col, recursion_expr, ts
from trading_assets.domain.features._base import ICARRY as I0_CARRY
from trading_assets.domain.features.catalog import TRAILING_BARS
from trading_assets.domain.features.incremental import I0
from trading_assets.domain.features.catalog import CATALOG, CROSS_SECTION_STAGE, FEATURE_NAMES, recursions
from trading_assets.settings import FeatureSettings

BAR_COLUMNS = ("date", "symbol", "open", "high", "low", "close", "volume")
ACTION_COLUMNS = ("date", "symbol", "action", "value", "price_factor")
PROVENANCE_COLUMNS = ("history_rows", "quality_flagged", "benchmark_available")
_LQB = "_lqb"  # ln(benchmark Q) on the session (null when the benchmark has no usable bar)
_OK = "_ok"


def output_schema() -> dict[str, pl.DataType]:
    """Columns of compute_features' result, in order."""
    schema: dict[str, pl.DataType] = {"date": pl.Date(), "symbol": pl.String()}
    schema.update({name: pl.Float64() for name in FEATURE_NAMES})
    schema.update({"history_rows": pl.Int32(), "quality_flagged": pl.Boolean(), "benchmark_available": pl.Boolean()})
    return schema


def _require(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing} (has {frame.columns})")


def _validated_bars(bars: pl.DataFrame) -> pl.DataFrame:
    _require(bars, BAR_COLUMNS, "bars")
    out = bars.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
    )
    if out["date"].null_count() or out["symbol"].null_count():
        raise ValueError("bars: date and symbol must not be null")
    dup = out.group_by("date", "symbol").len().filter(pl.col("len") > 1)
    if dup.height:
        raise ValueError(f"bars: {dup.height} duplicate (date, symbol) rows, e.g. {dup.sort('date', 'symbol').row(0)[:2]}")
    return out


def adjustment_factors(actions: pl.DataFrame) -> pl.DataFrame:
    """(symbol, date, _f, _s): the cumulative price factor F and share factor S from each ex-date on.

    F = running product of price_factor; S = running product of 1/price_factor over splits only.
    Several actions on one ex-date multiply. A null price_factor counts as 1 (no known adjustment).
    """
    _require(actions, ACTION_COLUMNS, "actions")
    acts = actions.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        pl.col("action").cast(pl.String),
        pl.col("price_factor").cast(pl.Float64).fill_null(1.0),
    )
    bad = acts.filter(~pl.col("price_factor").is_finite() | (pl.col("price_factor") <= 0))
    if bad.height:
        raise ValueError(f"actions: {bad.height} price_factor(s) not finite and > 0, e.g. {bad.row(0)}")
    split = pl.col("action").str.to_lowercase() == "split"
    return (
        acts.group_by("symbol", "date")
        .agg(
            pl.col("price_factor").product().alias("_fd"),
            pl.when(split).then(1.0 / pl.col("price_factor")).otherwise(1.0).product().alias("_sd"),
        )
        .sort("symbol", "date")
        .select(
            "symbol",
            "date",
            pl.col("_fd").cum_prod().over("symbol").alias(F),
            pl.col("_sd").cum_prod().over("symbol").alias(S),
        )
    )


def _usable() -> pl.Expr:
    prices = [pl.col(c) for c in ("open", "high", "low", "close")]
    ok = pl.all_horizontal(*(p.is_not_null() & p.is_finite() & (p > 0) for p in prices))
    v = pl.col("volume")
    return ok & v.is_not_null() & v.is_finite() & (v >= 0)


def _flagged(bad_bars: pl.DataFrame | None) -> pl.DataFrame | None:
    if bad_bars is None or not bad_bars.height:
        return None
    _require(bad_bars, ("date", "symbol"), "bad_bars")
    return bad_bars.select(pl.col("date").cast(pl.Date), pl.col("symbol").cast(pl.String)).unique().with_columns(pl.lit(True).alias("_bad"))


def _prepare(
    bars: pl.DataFrame,
    factors: pl.DataFrame,
    benchmark: str,
    flagged: pl.DataFrame | None,
    carry: pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """Steps 1-2 and the provenance inputs: every bar with F, S, _ok, the benchmark's ln Q on the
    session (_lqb) and history_rows, in (symbol, date) order. Narrow (no feature yet). A symbol's
    rows depend only on its own bars, actions and verdicts and on the benchmark's (through _lqb).
    factors: adjustment_factors(actions); flagged: _flagged(bad_bars); carry: incremental.carry_frame
    of the symbols continued from a state (their bars start at the state's tail_start, so their bar
    indexes and history_rows are offset by I0)."""
    base = _validated_bars(bars).lazy()
    base = (
        base.sort("date", "symbol")
        .join_asof(factors.lazy().sort("date", "symbol"), on="date", by="symbol", strategy="backward", check_sortedness=False)
        .with_columns(pl.col(F).fill_null(1.0), pl.col(S).fill_null(1.0))
    )
    if flagged is not None:
        base = base.join(flagged.lazy(), on=["date", "symbol"], how="left")
    else:
        base = base.with_columns(pl.lit(None, dtype=pl.Boolean).alias("_bad"))
    base = base.with_columns((_usable() & pl.col("_bad").is_null()).alias(_OK))

    bench = (
        base.filter((pl.col("symbol") == benchmark) & pl.col(_OK))
        .select("date", (pl.col("close") / pl.col(F)).log().alias(_LQB))
    )
    base = base.join(bench, on="date", how="left").sort("symbol", "date")
    if carry is None:
        return base.with_columns(pl.col(_OK).cast(pl.Int32).cum_sum().over("symbol").alias("history_rows"))
    base = base.join(carry.lazy(), on="symbol", how="left", maintain_order="left").with_columns(pl.col(I0).fill_null(0))
    return base.with_columns((pl.col(_OK).cast(pl.Int64).cum_sum().over("symbol") + pl.col(I0)).cast(pl.Int32).alias("history_rows"))


_PER_SYMBOL_STAGES = sorted({f.stage for f in CATALOG if f.stage < CROSS_SECTION_STAGE})
_XS_STAGES = sorted({f.stage for f in CATALOG if f.stage >= CROSS_SECTION_STAGE})
XS_FEATURES = tuple(f.name for f in CATALOG if f.stage >= CROSS_SECTION_STAGE)
# the per-symbol columns the cross-sectional stage reads (besides date, symbol and MEMBER)
XS_INPUTS = tuple(dict.fromkeys(i for f in CATALOG if f.stage >= CROSS_SECTION_STAGE for i in f.inputs))


def _per_symbol(
    base: pl.LazyFrame, benchmark: str, settings: FeatureSettings, incremental: bool = False, only: frozenset[str] | None = None
) -> pl.LazyFrame:
    """Step 3, per-symbol part: the usable bars with the base series and every feature of the stages
    before CROSS_SECTION_STAGE (each `.over("symbol")`, so a symbol's values depend on its own rows
    and the benchmark's _lqb only: any subset of whole symbols gives the same values). only: just
    these features (and their recursions); they must include the features they read."""
    wanted = [f for f in CATALOG if f.stage < CROSS_SECTION_STAGE and (only is None or f.name in only)]
    index = pl.int_range(pl.len()).over("symbol")
    good = base.filter(pl.col(_OK)).with_columns(
        (index + pl.col(I0) if incremental else index).alias(I),
        (pl.col("close") / pl.col(F)).alias(C),
        (pl.col("high") / pl.col(F)).alias(H),
        (pl.col("low") / pl.col(F)).alias(L),
        (pl.col("open") / pl.col(F)).alias(O),
        (pl.col("volume") / pl.col(S)).alias(V),
        (pl.col("close") * pl.col("volume")).alias(DV),
        (pl.col("symbol") != benchmark).alias(MEMBER),
    )
    good = good.with_columns(
        ts((pl.col(C) / pl.col(C).shift(1)).log()).alias(R),
        ts(pl.col(_LQB) - pl.col(_LQB).shift(1)).alias(RB),
    )
    if any(f.group == "benchmark" for f in wanted):
        good = good.with_columns(bm.window_sums())
    # incremental: each recursion restarts from its carry where the frame has one
    recs = [(f.stage, r) for f in wanted if f.recursions is not None for r in f.recursions(settings)]
    for stage in _PER_SYMBOL_STAGES:
        here = [recursion_expr(r, incremental) for s, r in recs if s == stage]
        if here:
            good = good.with_columns(here)
        exprs = [f.build(settings).alias(f.name) for f in wanted if f.stage == stage]
        if exprs:
            good = good.with_columns(exprs)
    return good


def _cross_section(good: pl.LazyFrame, settings: FeatureSettings) -> pl.LazyFrame:
    """Step 3, cross-sectional part (the last stages): `.over("date")` across every symbol of the
    session but the benchmark (an index fund is not a member, and its presence must not move the
    others' ranks). Needs all the session's usable rows, in (symbol, date) order, with date, symbol,
    MEMBER and XS_INPUTS."""
    for stage in _XS_STAGES:
        good = good.with_columns([f.build(settings).alias(f.name) for f in CATALOG if f.stage == stage])
    return good


def _provenance() -> list[pl.Expr]:
    return [
        pl.col("history_rows").cast(pl.Int32),
        (~pl.col(_OK)).alias("quality_flagged"),
        pl.col(_LQB).is_not_null().alias("benchmark_available"),
    ]


def _finish(good: pl.LazyFrame, base: pl.LazyFrame) -> pl.LazyFrame:
    """Step 3's rescaling and step 4: output columns, the flagged rows merged back, (symbol, date) order."""
    rescale = [(col(f.name) * col(F)).alias(f.name) for f in CATALOG if f.unit == "price"]
    rescale += [(col(f.name) * col(S)).alias(f.name) for f in CATALOG if f.unit == "shares"]
    good = good.with_columns(rescale)

    schema = output_schema()
    good = good.select("date", "symbol", *FEATURE_NAMES, *_provenance())
    bad = base.filter(~pl.col(_OK)).select(
        "date",
        "symbol",
        *(pl.lit(None, dtype=pl.Float64).alias(n) for n in FEATURE_NAMES),
        *_provenance(),
    )
    # (symbol, date) order: the per-symbol order the frame already has, so this sort only merges
    # the flagged rows back in; a (date, symbol) sort of the whole wide frame would cost ~20% of the
    # run, and callers sort the (small) window they write
    return pl.concat([good, bad], how="vertical").sort("symbol", "date").select(
        *(pl.col(c).cast(t) for c, t in schema.items())
    )


def build_plan(
    bars: pl.DataFrame,
    actions: pl.DataFrame,
    benchmark: str,
    bad_bars: pl.DataFrame | None,
    settings: FeatureSettings,
) -> pl.LazyFrame:
    """The whole computation as one LazyFrame (see the module docstring); collect() it."""
    base = _prepare(bars, adjustment_factors(actions), benchmark, _flagged(bad_bars))
    good = _cross_section(_per_symbol(base, benchmark, settings), settings)
    return _finish(good, base)


# symbols per chunk of `window_chunks`. The per-symbol plan's working set is ~5 KB per bar (its
# intermediates, not the output's 1.2 KB). Measured at 2,000 symbols x 1,260 sessions outside Dagster
# (benchmarks/features.py --chunk): 25 -> 0.7 GB peak for a one-session window, slower (more plans);
# 50 -> 0.75 GB; 100 -> 0.86 GB; the whole universe at once -> 5.5 GB.
CHUNK_SYMBOLS = 50
# a continued (incremental) window's frames hold ~16k values per symbol (incremental.TIERS: most
# features over 70 bars), ~1/12 of a 5-year full computation's: chunks of 8x the symbols (fewer,
# larger polars plans; a plan's fixed cost per expression dominates on such short frames)
CHUNK_SYMBOLS_CONTINUED = 8 * CHUNK_SYMBOLS
# windows of up to this many sessions are computed in one pass (`_window_chunks_one_pass`): their
# rows are few enough to keep every feature of the window while the cross-section waits for all chunks
ONE_PASS_MAX_SESSIONS = 63


def _symbol_slices(bars: pl.DataFrame, chunk_symbols: int, continued: set[str] | None = None) -> list[tuple[int, int, pl.Series]]:
    """(offset, length, symbols) row slices of `bars` (sorted by symbol), each of <= chunk_symbols
    whole symbols -- a symbol in `continued` (its frames are short: CHUNK_SYMBOLS_CONTINUED) counting
    CHUNK_SYMBOLS / CHUNK_SYMBOLS_CONTINUED of one."""
    counts = bars.group_by("symbol", maintain_order=True).len()
    if not continued:
        bounds = list(range(0, counts.height, chunk_symbols)) + [counts.height]
    else:
        weight = CHUNK_SYMBOLS / CHUNK_SYMBOLS_CONTINUED
        bounds, used = [0], 0.0
        for i, sym in enumerate(counts["symbol"]):
            w = weight if sym in continued else 1.0
            if used + w > chunk_symbols and i > bounds[-1]:
                bounds.append(i)
                used = 0.0
            used += w
        bounds.append(counts.height)
    out, offset = [], 0
    for lo, hi in zip(bounds, bounds[1:]):
        part = counts.slice(lo, hi - lo)
        length = int(part["len"].sum())
        out.append((offset, length, part["symbol"]))
        offset += length
    return out


def window_chunks(
    bars: pl.DataFrame,
    actions: pl.DataFrame,
    benchmark: str,
    bad_bars: pl.DataFrame | None,
    settings: FeatureSettings,
    start: date,
    end: date,
    symbols: list[str] | None = None,
    chunk_symbols: int = CHUNK_SYMBOLS,
    state: pl.DataFrame | None = None,
    state_out: list[pl.DataFrame] | None = None,
) -> Iterator[pl.DataFrame]:
    """compute_features(bars, ...) restricted to start <= date <= end (and to `symbols`, if given):
    the same rows and values bit for bit, yielded in chunks of whole symbols (each chunk in (symbol,
    date) order, chunks in symbol order), so memory holds one chunk's working set, not the history's.

    bars: all the bars from the first session (recursive features need the whole past) of every
    symbol of the cross-section (ranks are over all of them); fastest sorted by symbol (as
    `read_window` returns them), else sorted here. The caller may drop its own reference to bars
    once the first chunk is out: they are not used after that.
    Per chunk, the chunk's bars plus the benchmark's (for _lqb) are adjusted (`_prepare`) and kept
    (narrow). Pass 1: per chunk, only the columns the cross-sectional features read, on the window's
    usable rows; concatenated in symbol order (the one-plan row order, so every session's sums add
    in the same order) -> the cross-sectional features across all symbols of each session. Pass 2:
    per chunk, every per-symbol feature, the window's rows joined with their cross-sectional values,
    rescaled, flagged rows merged back in. (A bars duplicate is reported with its chunk's count.)

    state (incremental.py): the state after the session before `start` of the symbols to continue
    (history_rows, last_bar, tail_start and the recursions' values); their bars before tail_start are
    not used (the caller need not read them), the others are computed from their first bar. Only for
    a window of <= ONE_PASS_MAX_SESSIONS sessions. state_out: a list that receives, chunk by chunk,
    every symbol's state after `end` (incremental.extract_state), for the next run.
    """
    if chunk_symbols < 1:
        raise ValueError(f"chunk_symbols must be >= 1, got {chunk_symbols}")
    _require(bars, BAR_COLUMNS, "bars")
    if bars.height == 0:
        return
    if bars["date"].null_count() or bars["symbol"].null_count():
        raise ValueError("bars: date and symbol must not be null")
    if bars["symbol"].dtype != pl.String:
        bars = bars.with_columns(pl.col("symbol").cast(pl.String))
    if not bars["symbol"].is_sorted():
        bars = bars.sort("symbol", maintain_order=True)
    factors = adjustment_factors(actions)
    flagged = _flagged(bad_bars)
    carry = None
    if state is not None and state.height:
        if benchmark in set(state["symbol"]) and bars.filter(~pl.col("symbol").is_in(state["symbol"].implode())).height:
            # a symbol computed from its first bar needs the benchmark's returns over its whole history
            raise ValueError("window_chunks: the benchmark is continued from a state while other symbols are computed "
                             "from their first bar (compute the benchmark from its first bar too)")  # fmt: skip
        bars = incremental.tail_bars(bars, state)
        carry = incremental.carry_frame(state, settings)
    bench_bars = bars.filter(pl.col("symbol") == benchmark)
    in_window = pl.col("date").is_between(start, end)

    if bars.filter(in_window)["date"].n_unique() <= ONE_PASS_MAX_SESSIONS:
        yield from _window_chunks_one_pass(bars, bench_bars, factors, flagged, benchmark, settings, in_window, symbols, chunk_symbols,
                                           carry, state, end, state_out)  # fmt: skip
        return
    if carry is not None:
        raise ValueError(f"window_chunks: a state continues windows of <= {ONE_PASS_MAX_SESSIONS} sessions only")

    prepared: list[tuple[pl.Series, pl.DataFrame]] = []
    narrow: list[pl.DataFrame] = []
    for offset, length, names in _symbol_slices(bars, chunk_symbols):
        chunk = bars.slice(offset, length)
        if benchmark not in names:  # its rows give every symbol's benchmark return, then are dropped
            chunk = pl.concat([chunk, bench_bars], how="vertical_relaxed")
        base = _prepare(chunk, factors, benchmark, flagged).filter(pl.col("symbol").is_in(names.implode())).collect()
        del chunk
        prepared.append((names, base))
        part = _per_symbol(base.lazy(), benchmark, settings).select("date", "symbol", MEMBER, *XS_INPUTS)
        narrow.append(part.collect().filter(in_window))
    del bars, bench_bars
    xs = _cross_section(pl.concat(narrow).lazy(), settings).select("date", "symbol", *XS_FEATURES).collect()
    del narrow

    only = set(symbols) if symbols is not None else None
    while prepared:
        names, base = prepared.pop(0)
        if only is not None:
            names = names.filter(names.is_in(list(only)))
            if names.is_empty():
                continue
            base = base.filter(pl.col("symbol").is_in(names.implode()))
        good = _per_symbol(base.lazy(), benchmark, settings).collect()
        if state_out is not None:
            state_out.append(incremental.extract_state([good], end, settings))
        good = good.filter(in_window)
        cross = xs.filter(pl.col("symbol").is_in(names.implode()))
        if not (good["date"].equals(cross["date"]) and good["symbol"].equals(cross["symbol"])):
            raise AssertionError("window_chunks: the two passes' rows differ")  # same rows, same order by construction
        good = good.hstack(cross.select(XS_FEATURES).get_columns())
        del cross
        yield _finish(good.lazy(), base.filter(in_window).lazy()).collect()


def _window_chunks_one_pass(
    bars: pl.DataFrame,
    bench_bars: pl.DataFrame,
    factors: pl.DataFrame,
    flagged: pl.DataFrame | None,
    benchmark: str,
    settings: FeatureSettings,
    in_window: pl.Expr,
    symbols: list[str] | None,
    chunk_symbols: int,
    carry: pl.DataFrame | None = None,
    state: pl.DataFrame | None = None,
    end: date | None = None,
    state_out: list[pl.DataFrame] | None = None,
) -> Iterator[pl.DataFrame]:
    """window_chunks for a short window (a daily run): every per-symbol feature is computed ONCE per
    chunk and the window's rows kept (small: <= ONE_PASS_MAX_SESSIONS sessions per symbol), instead
    of a first pass for the cross-sectional inputs and a second for everything. The cross-sectional
    step then reads those kept rows: the same rows in the same (chunk, symbol, date) order as the
    two-pass path's narrow frames, so the values are the same bit for bit."""
    kept: list[tuple[pl.DataFrame, pl.DataFrame]] = []
    continued = set(carry["symbol"]) if carry is not None else None
    for offset, length, names in _symbol_slices(bars, chunk_symbols, continued):
        chunk = bars.slice(offset, length)
        if benchmark not in names:
            chunk = pl.concat([chunk, bench_bars], how="vertical_relaxed")
        base = _prepare(chunk, factors, benchmark, flagged, carry).filter(pl.col("symbol").is_in(names.implode())).collect()
        del chunk
        if carry is None:
            good = _per_symbol(base.lazy(), benchmark, settings).collect()
            if state_out is not None:
                state_out.append(incremental.extract_state([good], end, settings))
            good = good.filter(in_window)
        else:
            good = _continued(base, benchmark, settings, in_window, state.filter(pl.col("symbol").is_in(names.implode())), end, state_out)
        kept.append((good, base.filter(in_window)))
    del bars, bench_bars
    narrow = [good.select("date", "symbol", MEMBER, *XS_INPUTS) for good, _ in kept]
    xs = _cross_section(pl.concat(narrow).lazy(), settings).select(*XS_FEATURES).collect() if narrow else None
    del narrow
    only = set(symbols) if symbols is not None else None
    offset = 0
    for good, base in kept:
        cross = xs.slice(offset, good.height)
        offset += good.height
        good = good.hstack(cross.get_columns())
        if only is not None:
            good = good.filter(pl.col("symbol").is_in(list(only)))
            base = base.filter(pl.col("symbol").is_in(list(only)))
            if base.height == 0:
                continue
        yield _finish(good.lazy(), base.lazy()).collect()


def _continued(
    base: pl.DataFrame,
    benchmark: str,
    settings: FeatureSettings,
    in_window: pl.Expr,
    state: pl.DataFrame,
    end: date,
    state_out: list[pl.DataFrame] | None,
) -> pl.DataFrame:
    """The per-symbol features of a chunk's window rows when some symbols continue a state (their
    frames: the TRAILING_BARS bars before the window and the window). Each feature slides over the
    shortest frame that holds what it reads (incremental.TIERS: the continued symbols' last B bars
    before the window, their bar index offset accordingly; a symbol computed from its first bar
    keeps all its bars in every frame), so most expressions slide over a few dozen bars."""
    continued = pl.col(I0_CARRY).is_not_null()
    frames: list[pl.DataFrame] = []
    parts: list[pl.DataFrame] = []
    for bars, names, plan in incremental.TIERS:
        cut = TRAILING_BARS - bars
        frame = base.lazy()
        if cut:
            frame = frame.filter(~continued | (pl.col("history_rows") > pl.col(I0) + cut)).with_columns(
                pl.when(continued).then(pl.col(I0) + cut).otherwise(pl.col(I0)).alias(I0)
            )
        good = _per_symbol(frame, benchmark, settings, incremental=True, only=plan).collect()
        frames.append(good)
        good = good.filter(in_window)
        if parts and not (good["date"].equals(parts[0]["date"]) and good["symbol"].equals(parts[0]["symbol"])):
            raise AssertionError("window_chunks: the frames' window rows differ")  # same rows, same order by construction
        parts.append(good if not parts else good.select(names))
    incremental.check_tail(frames[-1], state)  # the longest frame: every continued symbol's TRAILING_BARS bars
    if state_out is not None:
        state_out.append(incremental.extract_state(frames, end, settings))
    head = parts[0].select(pl.all().exclude([n for n in FEATURE_NAMES if n not in incremental.TIERS[0][1]]))
    return head.hstack([c for part in parts[1:] for c in part.get_columns()])


def compute_features(
    bars: pl.DataFrame,
    actions: pl.DataFrame,
    benchmark: str,
    bad_bars: pl.DataFrame | None,
    settings: FeatureSettings,
) -> pl.DataFrame:
    """Every catalog feature for every (date, symbol) bar given.

    bars: date, symbol, open, high, low, close, volume as stored (nullable; one row per date and symbol,
        else ValueError). actions: date, symbol, action ('split' | 'dividend'), value, price_factor, all
        the symbols' actions up to the last bar date. benchmark: its symbol (e.g. "SPY"); absent from
        bars -> benchmark features null and benchmark_available false. bad_bars: (date, symbol) of
        bars that failed quality, or None.
    Returns date, symbol, <FEATURE_NAMES in catalog order>, history_rows, quality_flagged,
    benchmark_available; one row per input bar, sorted by (symbol, date). Warm-up values are null.
    """
    if bars.height == 0:
        return pl.DataFrame(schema=output_schema())
    return build_plan(bars, actions, benchmark, bad_bars, settings).collect()
