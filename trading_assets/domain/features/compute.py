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

Deterministic: the output is sorted by (symbol, date) and depends only on the inputs and settings.
Values for session t depend only on bars, actions and verdicts dated <= t (point in time).
"""

from __future__ import annotations

import polars as pl

from trading_assets.domain.features import benchmark as bm
from trading_assets.domain.features._base import DV, MEMBER, RB, C, F, H, I, L, O, R, S, V, col, ts
from trading_assets.domain.features.catalog import CATALOG, FEATURE_NAMES
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


def build_plan(
    bars: pl.DataFrame,
    actions: pl.DataFrame,
    benchmark: str,
    bad_bars: pl.DataFrame | None,
    settings: FeatureSettings,
) -> pl.LazyFrame:
    """The whole computation as one LazyFrame (see the module docstring); collect() it."""
    base = _validated_bars(bars).lazy()
    factors = adjustment_factors(actions).lazy()
    base = (
        base.sort("date", "symbol")
        .join_asof(factors.sort("date", "symbol"), on="date", by="symbol", strategy="backward", check_sortedness=False)
        .with_columns(pl.col(F).fill_null(1.0), pl.col(S).fill_null(1.0))
    )
    if bad_bars is not None and bad_bars.height:
        _require(bad_bars, ("date", "symbol"), "bad_bars")
        flagged = bad_bars.select(pl.col("date").cast(pl.Date), pl.col("symbol").cast(pl.String)).unique().with_columns(pl.lit(True).alias("_bad"))
        base = base.join(flagged.lazy(), on=["date", "symbol"], how="left")
    else:
        base = base.with_columns(pl.lit(None, dtype=pl.Boolean).alias("_bad"))
    base = base.with_columns((_usable() & pl.col("_bad").is_null()).alias(_OK))

    bench = (
        base.filter((pl.col("symbol") == benchmark) & pl.col(_OK))
        .select("date", (pl.col("close") / pl.col(F)).log().alias(_LQB))
    )
    base = (
        base.join(bench, on="date", how="left")
        .sort("symbol", "date")
        .with_columns(pl.col(_OK).cast(pl.Int32).cum_sum().over("symbol").alias("history_rows"))
    )

    good = base.filter(pl.col(_OK)).with_columns(
        pl.int_range(pl.len()).over("symbol").alias(I),
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
    good = good.with_columns(bm.window_sums())
    # stages in order; cross-sections (the last stages) rank every symbol but the benchmark (an
    # index fund is not a member, and its presence must not move the others' ranks)
    for stage in sorted({f.stage for f in CATALOG}):
        good = good.with_columns([f.build(settings).alias(f.name) for f in CATALOG if f.stage == stage])
    rescale = [(col(f.name) * col(F)).alias(f.name) for f in CATALOG if f.unit == "price"]
    rescale += [(col(f.name) * col(S)).alias(f.name) for f in CATALOG if f.unit == "shares"]
    good = good.with_columns(rescale)

    provenance = [
        pl.col("history_rows").cast(pl.Int32),
        (~pl.col(_OK)).alias("quality_flagged"),
        pl.col(_LQB).is_not_null().alias("benchmark_available"),
    ]
    schema = output_schema()
    good = good.select("date", "symbol", *FEATURE_NAMES, *provenance)
    bad = base.filter(~pl.col(_OK)).select(
        "date",
        "symbol",
        *(pl.lit(None, dtype=pl.Float64).alias(n) for n in FEATURE_NAMES),
        *provenance,
    )
    # (symbol, date) order: the per-symbol order the frame already has, so this sort only merges
    # the flagged rows back in; a (date, symbol) sort of the whole wide frame would cost ~20% of the
    # run, and callers sort the (small) window they write
    return pl.concat([good, bad], how="vertical").sort("symbol", "date").select(
        *(pl.col(c).cast(t) for c, t in schema.items())
    )


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
