"""Incremental feature state (domain/features/incremental.py): a session computed from the state after
the session before and the trailing bars equals the full recomputation from the first session.

Stated tolerance (docs/ARCHITECTURE.md "Incremental feature state"), per feature and session, with
scale = the largest |value| of that feature across the session's symbols:
  - bit for bit: history_rows, quality_flagged, benchmark_available and every feature built on the
    recursions (EMA, MACD, Wilder RSI/ATR/NATR, CMO, EWMA volatility: the carried state continues the
    same floating-point operations), extremes, shifts and returns;
  - |incremental - full| <= 1e-10 x max(|full|, scale) for the rest (rolling sums and variances: polars
    slides a running sum from the first row of the frame, so the same window sums in another order);
  - te_n and idio_vol_n: <= 1e-6 x scale (square roots of variances that are ~0 for a symbol tracking
    the benchmark, where sqrt turns a 1e-18 difference into 1e-9).
Measured on these markets: see the printed maxima (pytest -s).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_assets.domain import calendar
from trading_assets.domain.features import FEATURE_NAMES, compute_features
from trading_assets.domain.features.catalog import CATALOG, TRAILING_BARS
from trading_assets.domain.features.compute import window_chunks
from trading_assets.domain.features.incremental import carry_frame
from trading_assets.providers.synthetic import Defect, SyntheticProvider
from trading_assets.settings import FeatureSettings
from trading_assets_tests.conftest import SHARED_DATA, requires_shared_data

SETTINGS = FeatureSettings()
BAR_COLUMNS = ["date", "symbol", "open", "high", "low", "close", "volume"]
PROVENANCE = ["date", "symbol", "history_rows", "quality_flagged", "benchmark_available"]
RECURSIVE_ROOTS = {f.name for f in CATALOG if f.recursions is not None}
# features that read a recursion directly or through another feature: continued bit for bit
EXACT = sorted(
    {"natr_14", "natr_20", "cmo_14", "macd_12_26", "macd_hist_12_26_9"}
    | RECURSIVE_ROOTS
    | {f"ema_slope_{n}" for n in (5, 10, 20, 50, 100, 200)}
    | {f"px_ema_{n}" for n in (20, 50, 200)}
    | {"ema_20_above_50", "logret_1", "logret_252", "mom_12_1", "dd_252", "max_dd_252", "dist_high_252", "dist_low_252"}
)
SQRT_OF_VARIANCE = {f"{stem}_{n}" for stem in ("te", "idio_vol") for n in (60, 252)}


def _state_after(bars, actions, bad, day) -> pl.DataFrame:
    """The state after `day`, from a full computation through `day` (what the previous run stored)."""
    out: list[pl.DataFrame] = []
    for _ in window_chunks(bars.filter(pl.col("date") <= day), actions, "SPY", bad, SETTINGS, day, day, state_out=out):
        pass
    return pl.concat(out)


def _incremental(bars, actions, bad, start, end, state) -> pl.DataFrame:
    frames = window_chunks(bars.filter(pl.col("date") <= end), actions, "SPY", bad, SETTINGS, start, end, state=state)
    return pl.concat(list(frames)).sort("date", "symbol")


def compare(inc: pl.DataFrame, full: pl.DataFrame) -> dict[str, float]:
    """Assert the stated tolerance; return each feature's largest scale-relative difference."""
    assert inc.select(PROVENANCE).equals(full.select(PROVENANCE))
    worst: dict[str, float] = {}
    for name in FEATURE_NAMES:
        for (day,), part in full.group_by("date"):
            a = inc.filter(pl.col("date") == day)[name].to_numpy()
            b = part.sort("symbol")[name].to_numpy()
            assert np.array_equal(np.isnan(a), np.isnan(b)), (name, day)
            if name in EXACT:
                assert np.array_equal(a, b, equal_nan=True), (name, day)
                continue
            if np.all(np.isnan(b)):
                continue
            scale = np.nanmax(np.abs(b))
            err = np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), scale)) if scale > 0 else np.nanmax(np.abs(a - b))
            worst[name] = max(worst.get(name, 0.0), float(err))
            bound = 1e-6 if name in SQRT_OF_VARIANCE else 1e-10
            assert err <= bound, (name, day, err)
    return worst


@pytest.fixture(scope="module")
def market():
    """12 names + SPY over ~3.3 years of the synthetic market (dividends, splits), with defects: a
    spike (a bad bar left out by quality), a gap, a stale run, a null field."""
    defects = [Defect("spike", "JPM", date(2024, 11, 4)), Defect("gap", "KO", date(2025, 1, 6)),
               Defect("stale", "PG", date(2025, 2, 3), sessions=3), Defect("null_field", "XOM", date(2025, 3, 3), field="high")]  # fmt: skip
    symbols = ["AAPL", "MSFT", "JPM", "XOM", "JNJ", "KO", "PG", "NVDA", "AMZN", "GOOG", "HD", "PEP", "SPY"]
    r = SyntheticProvider(seed=5, defects=defects).fetch(symbols, date(2022, 1, 3), date(2025, 4, 30))
    bars = r.bars.select(BAR_COLUMNS).sort("symbol", "date")
    bad = pl.DataFrame({"date": [date(2024, 11, 4)], "symbol": ["JPM"]})
    return bars, r.actions, bad


def test_every_recursive_feature_declares_its_recursions():
    # the features whose formula is a recursion (seeded EMA / Wilder / EWMA) are exactly those with
    # recursions: a new one without them would be recomputed wrongly from the trailing bars alone
    # (the equivalence tests below would fail)
    assert RECURSIVE_ROOTS == {*(f"ema_{n}" for n in (5, 10, 12, 20, 26, 50, 100, 200)), "macd_signal_12_26_9",
                               *(f"rsi_{n}" for n in (7, 14, 21)), "atr_14", "atr_20",
                               "ewma_vol_20", "ewma_vol_60", "ewma_vol_fast", "ewma_vol_slow"}  # fmt: skip


def test_daily_sessions_from_the_state_equal_the_full_recomputation(market, capsys):
    bars, actions, bad = market
    days = calendar.sessions(date(2025, 2, 27), date(2025, 4, 30))  # the stale run, the null field, dividends
    full = compute_features(bars, actions, "SPY", bad, SETTINGS)
    worst: dict[str, float] = {}
    for prev, day in zip(days, days[1:]):
        state = _state_after(bars, actions, bad, prev)
        assert state.height == 13 and (state["history_rows"] >= TRAILING_BARS).all()
        inc = _incremental(bars, actions, bad, day, day, state)
        for k, v in compare(inc, full.filter(pl.col("date") == day).sort("date", "symbol")).items():
            worst[k] = max(worst.get(k, 0.0), v)
    with capsys.disabled():
        top = sorted(worst.items(), key=lambda kv: -kv[1])[:4]
        print(f"\nincremental vs full, synthetic, {len(days) - 1} sessions: largest scale-relative differences {top}")


def test_a_window_of_sessions_and_a_limited_symbol_list_from_the_state(market):
    bars, actions, bad = market
    days = calendar.sessions(date(2025, 4, 1), date(2025, 4, 30))
    state = _state_after(bars, actions, bad, days[0])
    inc = _incremental(bars, actions, bad, days[1], days[-1], state)
    full = compute_features(bars, actions, "SPY", bad, SETTINGS).filter(pl.col("date").is_between(days[1], days[-1])).sort("date", "symbol")
    compare(inc, full)
    # the symbols list limits the rows, not the cross-section
    part = window_chunks(bars.filter(pl.col("date") <= days[-1]), actions, "SPY", bad, SETTINGS, days[1], days[-1],
                         symbols=["JPM", "KO"], state=state)  # fmt: skip
    part = pl.concat(list(part)).sort("date", "symbol")
    assert part.equals(inc.filter(pl.col("symbol").is_in(["JPM", "KO"])))


def test_a_split_on_the_session_and_after_continues_the_state(market):
    # a 3:1 split of MSFT on `ex`: raw prices / 3 and volume x 3 from ex on, the action recorded. The
    # adjustment is point in time, so the bars up to ex - 1 (and the state) are untouched by it
    bars, actions, bad = market
    ex = date(2025, 4, 14)
    after = (pl.col("symbol") == "MSFT") & (pl.col("date") >= ex)
    bars = bars.with_columns(
        *(pl.when(after).then(pl.col(c) / 3.0).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")),
        pl.when(after).then(pl.col("volume") * 3.0).otherwise(pl.col("volume")).alias("volume"),
    )
    split = pl.DataFrame({"date": [ex], "symbol": ["MSFT"], "action": ["split"], "value": [3.0], "price_factor": [1 / 3]})
    actions = pl.concat([actions, split.cast(actions.schema)]).sort("date", "symbol")
    full = compute_features(bars, actions, "SPY", bad, SETTINGS)
    for day in (ex, calendar.next_session(ex)):
        prev = calendar.previous_session(day)
        inc = _incremental(bars, actions, bad, day, day, _state_after(bars, actions, bad, prev))
        compare(inc, full.filter(pl.col("date") == day).sort("date", "symbol"))
        row = inc.filter(pl.col("symbol") == "MSFT")
        assert row["close_adj"][0] == pytest.approx(bars.filter((pl.col("symbol") == "MSFT") & (pl.col("date") == day))["close"][0])
    # the split leaves the adjusted return continuous on ex
    ret = full.filter((pl.col("symbol") == "MSFT") & (pl.col("date") == ex))["logret_1"][0]
    assert abs(ret) < 0.2


def test_a_state_that_does_not_describe_the_bars_is_refused(market):
    bars, actions, bad = market
    prev, day = date(2025, 4, 28), date(2025, 4, 29)
    state = _state_after(bars, actions, bad, prev)
    # a bar inside the tail disappeared since the state was taken (the digest would have caught it)
    gone = bars.filter(~((pl.col("symbol") == "JNJ") & (pl.col("date") == date(2025, 3, 10))))
    with pytest.raises(ValueError, match="does not match the bars"):
        _incremental(gone, actions, bad, day, day, state)
    with pytest.raises(ValueError, match="benchmark is continued"):
        _incremental(bars, actions, bad, day, day, state.filter(pl.col("symbol") != "JNJ"))
    with pytest.raises(ValueError, match="fewer than"):
        carry_frame(state.with_columns(pl.lit(10).cast(pl.Int64).alias("history_rows")), SETTINGS)


def test_a_short_history_leaves_no_state():
    r = SyntheticProvider(seed=5).fetch(["AAPL", "SPY"], date(2024, 1, 2), date(2025, 4, 30))  # ~330 bars
    bars = r.bars.select(BAR_COLUMNS).sort("symbol", "date")
    good = compute_features(bars, r.actions, "SPY", None, SETTINGS)
    assert good["history_rows"].max() < TRAILING_BARS
    assert _state_after(bars, r.actions, None, date(2025, 4, 30)).height == 0


def test_state_extraction_reads_the_last_usable_bar_at_or_before_as_of(market):
    bars, actions, bad = market
    # JPM's bar on its spike day is left out: the state after that session is the one after the day before
    state = _state_after(bars, actions, bad, date(2024, 11, 4)).filter(pl.col("symbol") == "JPM")
    assert state["last_bar"][0] == date(2024, 11, 1)
    # and it is the state of the session before: the next session continues from it exactly
    nxt = date(2024, 11, 5)
    inc = _incremental(bars, actions, bad, nxt, nxt, _state_after(bars, actions, bad, date(2024, 11, 4)))
    full = compute_features(bars, actions, "SPY", bad, SETTINGS).filter(pl.col("date") == nxt).sort("date", "symbol")
    compare(inc, full)


@requires_shared_data
def test_real_folder_slice_with_a_split_and_bad_bars(capsys):
    """Ten real names + SPY (2013-02-08 ..): NFLX's real 7:1 split of 2015-07-15 put back as the raw
    series a provider delivers (prices x 7 and volume / 7 before the ex-date, the action recorded), DHR's
    real null open/high/low bar of 2016-01-12 (not usable) and its real missing days before 2015-03-23."""
    names = ["AAPL", "NFLX", "DHR", "JPM", "XOM", "KO", "PG", "GE", "MSFT", "LNT"]
    raw = pl.read_parquet(SHARED_DATA / "prices" / "sp500_2013_2018.parquet").filter(pl.col("symbol").is_in(names))
    spy = pl.read_parquet(SHARED_DATA / "benchmark" / "spy_1993_2018.parquet").filter(pl.col("date") >= date(2013, 2, 8))
    bars = pl.concat([raw.select(BAR_COLUMNS), spy.with_columns(pl.lit("SPY").alias("symbol")).select(BAR_COLUMNS)], how="vertical_relaxed")
    bars = bars.with_columns(pl.col("date").cast(pl.Date)).filter(pl.col("date") <= date(2016, 2, 29)).sort("symbol", "date")
    ex = date(2015, 7, 15)
    before = (pl.col("symbol") == "NFLX") & (pl.col("date") < ex)
    bars = bars.with_columns(
        *(pl.when(before).then(pl.col(c) * 7.0).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")),
        pl.when(before).then(pl.col("volume") / 7.0).otherwise(pl.col("volume")).alias("volume"),
    )
    actions = pl.DataFrame({"date": [ex], "symbol": ["NFLX"], "action": ["split"], "value": [7.0], "price_factor": [1 / 7]})
    full = compute_features(bars, actions, "SPY", None, SETTINGS)
    worst: dict[str, float] = {}
    days = [*calendar.sessions(date(2015, 7, 13), date(2015, 7, 17)), *calendar.sessions(date(2016, 1, 11), date(2016, 1, 14))]
    for day in days:
        prev = calendar.previous_session(day)
        state = _state_after(bars, actions, None, prev)
        assert "NFLX" in set(state["symbol"]) and "DHR" in set(state["symbol"])
        inc = _incremental(bars, actions, None, day, day, state)
        for k, v in compare(inc, full.filter(pl.col("date") == day).sort("date", "symbol")).items():
            worst[k] = max(worst.get(k, 0.0), v)
    dhr = full.filter((pl.col("symbol") == "DHR") & (pl.col("date") == date(2016, 1, 12)))
    assert dhr["quality_flagged"][0] is True
    with capsys.disabled():
        top = sorted(worst.items(), key=lambda kv: -kv[1])[:4]
        print(f"\nincremental vs full, real folder slice, {len(days)} sessions: largest scale-relative differences {top}")


def test_chunking_does_not_change_the_continued_values(market):
    # chunks of one symbol (continued ones weigh 1/8: several per chunk) and a mixed state (JNJ and the
    # benchmark recomputed from their first bar) give the same rows as one chunk, bit for bit
    bars, actions, bad = market
    prev, day = date(2025, 4, 28), date(2025, 4, 29)
    state = _state_after(bars, actions, bad, prev).filter(~pl.col("symbol").is_in(["JNJ", "SPY"]))
    upto = bars.filter(pl.col("date") <= day)
    one = pl.concat(list(window_chunks(upto, actions, "SPY", bad, SETTINGS, day, day, state=state, chunk_symbols=100)))
    many = pl.concat(list(window_chunks(upto, actions, "SPY", bad, SETTINGS, day, day, state=state, chunk_symbols=1)))
    assert one.equals(many)
    compare(one.sort("date", "symbol"), compute_features(bars, actions, "SPY", bad, SETTINGS).filter(pl.col("date") == day).sort("date", "symbol"))
