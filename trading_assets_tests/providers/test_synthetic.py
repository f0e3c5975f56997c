"""The synthetic market: determinism, window/symbol independence, OHLC and adjustment invariants,
corporate actions, the benchmark, and every injected defect kind."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import stats

from trading_assets.domain import calendar
from trading_assets.providers.base import ACTION_SCHEMA, BAR_SCHEMA, FetchResult, Provider
from trading_assets.providers.synthetic import DEFECT_KINDS, EPOCH, GICS_SECTORS, Defect, SyntheticProvider
from trading_assets.universe import load_universe

START, END = date(2021, 1, 4), date(2022, 12, 30)
SYMS = ["AAPL", "MSFT", "XOM", "JPM", "SPY"]


@pytest.fixture(scope="module")
def universe() -> pl.DataFrame:
    return load_universe()


@pytest.fixture(scope="module")
def market(universe) -> FetchResult:
    """The whole packaged universe over five years (the size the pipeline uses)."""
    return SyntheticProvider(7, universe).fetch(universe["symbol"].to_list(), date(2020, 1, 2), date(2024, 12, 31))


def test_contract_schema_and_protocol(market):
    assert isinstance(SyntheticProvider(1), Provider)
    assert market.provider == "synthetic"
    assert dict(market.bars.schema) == BAR_SCHEMA
    assert dict(market.actions.schema) == ACTION_SCHEMA
    assert market.missing == ()
    # sorted by (date, symbol), one row per (date, symbol), only NYSE sessions, every session present
    b = market.bars
    assert b.equals(b.sort(["date", "symbol"]))
    assert b.select(pl.struct("date", "symbol").is_unique().all()).item()
    sessions = calendar.sessions(date(2020, 1, 2), date(2024, 12, 31))
    assert b["date"].unique().sort().to_list() == sessions
    assert b.height == len(sessions) * b["symbol"].n_unique() == 1258 * 261


def test_deterministic_for_a_seed():
    a = SyntheticProvider(11).fetch(SYMS, START, END)
    b = SyntheticProvider(11).fetch(SYMS, START, END)
    assert a.bars.equals(b.bars) and a.actions.equals(b.actions)
    c = SyntheticProvider(12).fetch(SYMS, START, END)
    assert not a.bars.equals(c.bars)


def test_bar_independent_of_window_and_other_symbols():
    """[a, b] then [a, c] with c > b: identical rows on [a, b], whatever else was requested."""
    short = SyntheticProvider(5).fetch(["MSFT", "AAPL"], START, date(2021, 6, 30))
    # a fresh instance (no cache), a longer window crossing a path-chunk boundary, other symbols
    longer = SyntheticProvider(5).fetch(["ZION", "AAPL", "NEE", "MSFT"], START, date(2031, 12, 31))
    on_short = longer.bars.filter(pl.col("symbol").is_in(["AAPL", "MSFT"]) & (pl.col("date") <= date(2021, 6, 30)))
    assert short.bars.equals(on_short)
    assert short.actions.equals(longer.actions.filter(pl.col("symbol").is_in(["AAPL", "MSFT"]) & (pl.col("date") <= date(2021, 6, 30))))
    # a window starting later: the same bars again (paths start at EPOCH, never at the request)
    later = SyntheticProvider(5).fetch(["AAPL"], date(2021, 3, 1), date(2021, 6, 30))
    assert later.bars.equals(short.bars.filter((pl.col("symbol") == "AAPL") & (pl.col("date") >= date(2021, 3, 1))))


def test_every_symbol_is_served_with_a_sector(universe):
    p = SyntheticProvider(3, universe)
    r = p.fetch(["ZZZZ", "BRK.B", "AAPL"], START, date(2021, 2, 1))
    assert r.missing == () and set(r.bars["symbol"]) == {"ZZZZ", "BRK.B", "AAPL"}
    assert p.sector_of("AAPL") == "Information Technology"  # from the universe file
    assert p.sector_of("ZZZZ") in GICS_SECTORS  # hashed, stable
    assert SyntheticProvider(99).sector_of("ZZZZ") == p.sector_of("ZZZZ")
    assert p.sector_of("SPY") == "Benchmark"
    with pytest.raises(ValueError, match="invalid symbol"):
        p.fetch(["aapl; drop"], START, END)
    with pytest.raises(ValueError, match="empty window"):
        p.fetch(["AAPL"], END, START)
    # before the epoch there is no market: only sessions from EPOCH on
    early = p.fetch(["AAPL"], date(1999, 6, 1), date(2000, 1, 10))
    assert early.bars["date"].min() == EPOCH


def test_ohlc_consistent_positive_and_volume_realistic(market):
    b = market.bars
    ok = b.select(
        lo_open=(pl.col("low") <= pl.col("open")).all(),
        lo_close=(pl.col("low") <= pl.col("close")).all(),
        hi_open=(pl.col("high") >= pl.col("open")).all(),
        hi_close=(pl.col("high") >= pl.col("close")).all(),
        positive=(pl.col("low") > 0).all(),
        volume=(pl.col("volume") > 0).all(),
    ).row(0)
    assert all(ok)
    assert b.null_count().sum_horizontal().item() == 0
    med = b.group_by("symbol").agg(pl.col("volume").median())["volume"]
    assert 2e5 < med.median() < 2e7  # a few million shares for the typical name
    assert (med < 5e5).sum() >= 5  # some thin names
    assert med.max() > 3e7  # the benchmark trades most


def test_adj_close_is_point_in_time_forward_adjusted():
    """adj_close_s = close_s / F_s, F_s = prod(price_factor of actions with ex-date <= s) from EPOCH."""
    p = SyntheticProvider(7)
    symbols = ["AAPL", "KO", "NVDA", "XOM", "CAT", "PG"]
    r = p.fetch(symbols, EPOCH, date(2012, 12, 31))
    assert r.actions.filter(pl.col("action") == "split").height >= 1
    f = (
        r.bars.select("date", "symbol")
        .join(r.actions.select("date", "symbol", "price_factor"), on=["date", "symbol"], how="left")
        .group_by("date", "symbol")
        .agg(pl.col("price_factor").fill_null(1.0).product())
        .sort("symbol", "date")
        .with_columns(pl.col("price_factor").cum_prod().over("symbol").alias("F"))
    )
    j = r.bars.join(f, on=["date", "symbol"])
    np.testing.assert_allclose(j["adj_close"].to_numpy(), (j["close"] / j["F"]).to_numpy(), rtol=1e-12)
    # point in time: a window ending the day before an action gives the same adj_close on that day
    ex = r.actions.row(0, named=True)
    before = calendar.previous_session(ex["date"])
    cut = p.fetch([ex["symbol"]], before, before).bars
    assert cut["adj_close"].item() == j.filter((pl.col("symbol") == ex["symbol"]) & (pl.col("date") == before))["adj_close"].item()


def test_splits_and_dividends_move_raw_prices():
    p = SyntheticProvider(7)
    symbols = [f"S{i:03d}" for i in range(60)]
    r = p.fetch(symbols, date(2005, 1, 3), date(2014, 12, 31))
    b = r.bars.sort("symbol", "date").with_columns(pl.col("close").shift(1).over("symbol").alias("prev_close"))
    acts = r.actions.join(b.select("date", "symbol", "prev_close", "close", "adj_close"), on=["date", "symbol"])
    splits = acts.filter(pl.col("action") == "split")
    divs = acts.filter(pl.col("action") == "dividend")
    assert splits.height >= 3 and divs.height >= 100
    assert set(splits["value"].unique()) <= {2.0, 3.0}
    np.testing.assert_allclose(splits["price_factor"], 1.0 / splits["value"])
    # on the ex-date the raw close drops by about the ratio (one day's move aside)
    drop = (splits["close"] * splits["value"] / splits["prev_close"]).to_numpy()
    assert np.all((drop > 0.8) & (drop < 1.25))
    # dividend factor exactly 1 - d / previous delivered close; yields are quarterly-sized
    divs = divs.drop_nulls("prev_close")
    np.testing.assert_allclose(divs["price_factor"], 1.0 - divs["value"] / divs["prev_close"], rtol=1e-12)
    assert divs.select(((pl.col("value") / pl.col("prev_close")) < 0.02).all()).item()
    # quarterly: 63 sessions between a payer's consecutive dividends
    sess = {d: i for i, d in enumerate(calendar.sessions(EPOCH, date(2015, 12, 31)))}
    gaps = (
        r.actions.filter(pl.col("action") == "dividend")
        .with_columns(pl.col("date").map_elements(sess.get, return_dtype=pl.Int64).alias("i"))
        .sort("symbol", "date")
        .with_columns(pl.col("i").diff().over("symbol").alias("gap"))
        .drop_nulls("gap")
    )
    assert gaps["gap"].unique().to_list() == [63]
    # total-return series is continuous across every action: |log adj return| small on ex-dates
    assert acts.join(
        b.with_columns(pl.col("adj_close").shift(1).over("symbol").alias("prev_adj")).select("date", "symbol", "prev_adj"),
        on=["date", "symbol"],
    ).select(((pl.col("adj_close") / pl.col("prev_adj")).log().abs() < 0.25).all()).item()


def test_benchmark_is_the_market_with_fat_tails_and_regimes(market):
    b = market.bars.sort("symbol", "date").with_columns(pl.col("adj_close").log().diff().over("symbol").alias("r"))
    assert market.actions.filter(pl.col("symbol") == "SPY").height == 0  # no splits (nor dividends)
    spy = b.filter(pl.col("symbol") == "SPY").drop_nulls("r").sort("date")
    others = b.filter(pl.col("symbol") != "SPY").drop_nulls("r").group_by("date").agg(pl.col("r").mean()).sort("date")
    corr = np.corrcoef(spy["r"].to_numpy(), others["r"].to_numpy())[0, 1]
    assert corr > 0.9
    r = spy["r"].to_numpy()
    assert stats.kurtosis(r) > 1.0  # fat tails (Gaussian: 0)
    vol = pl.Series(r).rolling_std(60).drop_nulls().to_numpy()
    assert vol.max() / vol.min() > 1.8  # calm and turbulent regimes
    # same-sector names co-move more than names of different sectors
    wide = b.drop_nulls("r").pivot(on="symbol", index="date", values="r").drop("date")
    c = np.corrcoef(wide.to_numpy().T)
    sector = dict(zip(*load_universe().select("symbol", "sector").to_dict(as_series=False).values()))
    names = wide.columns
    same = [c[i, j] for i in range(len(names)) for j in range(i) if sector[names[i]] == sector[names[j]] != "Benchmark"]
    diff = [c[i, j] for i in range(len(names)) for j in range(i) if sector[names[i]] != sector[names[j]]]
    assert np.mean(same) > np.mean(diff) + 0.03


# --- defects ------------------------------------------------------------------------------------
D = date(2021, 6, 15)


def _pair(kind: str, **kw) -> tuple[pl.DataFrame, pl.DataFrame, FetchResult]:
    clean = SyntheticProvider(7).fetch(["AAPL", "MSFT"], START, END)
    bad = SyntheticProvider(7, defects=[Defect(kind, "AAPL", D, **kw)]).fetch(["AAPL", "MSFT"], START, END)
    return clean.bars, bad.bars, bad


def _row(frame: pl.DataFrame, day: date, symbol: str = "AAPL") -> dict:
    rows = frame.filter((pl.col("symbol") == symbol) & (pl.col("date") == day))
    assert rows.height == 1
    return rows.row(0, named=True)


def test_defects_leave_other_symbols_untouched():
    for kind in DEFECT_KINDS:
        clean, bad, _ = _pair(kind)
        assert clean.filter(pl.col("symbol") == "MSFT").equals(bad.filter(pl.col("symbol") == "MSFT")), kind


def test_defect_gap():
    clean, bad, _ = _pair("gap")
    assert bad.height == clean.height - 1
    assert bad.filter((pl.col("symbol") == "AAPL") & (pl.col("date") == D)).height == 0


def test_defect_high_below_low_open_close_outside():
    _, bad, _ = _pair("high_below_low")
    r = _row(bad, D)
    assert r["high"] < r["low"]
    _, bad, _ = _pair("open_outside")
    r = _row(bad, D)
    assert r["open"] > r["high"] >= r["low"]
    clean, bad, _ = _pair("close_outside")
    r, c = _row(bad, D), _row(clean, D)
    assert r["close"] < r["low"] <= r["high"]
    assert r["close"] / r["adj_close"] == pytest.approx(c["close"] / c["adj_close"], rel=1e-12)  # same F_s


def test_defect_spike_reversed_next_day():
    clean, bad, _ = _pair("spike", magnitude=0.6)
    assert _row(bad, D)["close"] == pytest.approx(_row(clean, D)["close"] * 1.6)
    nxt = calendar.next_session(D)
    assert _row(bad, nxt) == _row(clean, nxt)  # the next bar is clean: the move reverses


def test_defect_stale_run():
    clean, bad, _ = _pair("stale", sessions=6)
    prev_close = _row(clean, calendar.previous_session(D))["close"]
    run = calendar.sessions(D, date(2021, 7, 30))[:6]
    for day in run:
        r, c = _row(bad, day), _row(clean, day)
        assert r["open"] == r["high"] == r["low"] == r["close"] == prev_close
        assert r["close"] / r["adj_close"] == pytest.approx(c["close"] / c["adj_close"], rel=1e-12)
    after = calendar.next_session(run[-1])
    assert _row(bad, after) == _row(clean, after)


def test_defect_unadjusted_split():
    clean, bad, res = _pair("unadjusted_split", ratio=2.0)
    assert _row(bad, D)["close"] == pytest.approx(_row(clean, D)["close"] / 2)
    assert _row(bad, END)["volume"] == pytest.approx(_row(clean, END)["volume"] * 2)
    before = calendar.previous_session(D)
    assert _row(bad, before) == _row(clean, before)
    assert res.actions.filter((pl.col("symbol") == "AAPL") & (pl.col("action") == "split") & (pl.col("date") == D)).height == 0


def test_defect_null_zero_duplicate_late_start():
    _, bad, _ = _pair("null_field", field="open")
    r = _row(bad, D)
    assert r["open"] is None and r["close"] is not None
    _, bad, _ = _pair("zero_volume")
    assert _row(bad, D)["volume"] == 0.0
    clean, bad, _ = _pair("duplicate")
    dup = bad.filter((pl.col("symbol") == "AAPL") & (pl.col("date") == D))
    assert dup.height == 2 and dup.row(0) == dup.row(1) and bad.height == clean.height + 1
    clean, bad, res = _pair("late_start")
    aapl = bad.filter(pl.col("symbol") == "AAPL")
    assert aapl["date"].min() == D
    assert aapl.equals(clean.filter((pl.col("symbol") == "AAPL") & (pl.col("date") >= D)))
    assert res.actions.filter((pl.col("symbol") == "AAPL") & (pl.col("date") < D)).height == 0


def test_defect_validation():
    with pytest.raises(ValueError, match="unknown defect kind"):
        Defect("meteor", "AAPL", D)
    with pytest.raises(ValueError, match="not an NYSE session"):
        Defect("gap", "AAPL", date(2021, 7, 4))
    with pytest.raises(ValueError, match="not a bar column"):
        Defect("null_field", "AAPL", D, field="symbol")
    with pytest.raises(TypeError):
        SyntheticProvider(1, defects=[("gap", "AAPL", D)])
    with pytest.raises(ValueError, match="non-negative"):
        SyntheticProvider(-1)


def test_ar1_filter_equals_scipy_lfilter_bit_for_bit():
    # the provider's own AR(1) loop (no scipy.signal import on the daily path) must keep every path
    from scipy.signal import lfilter

    from trading_assets.providers.synthetic import ar1_filter

    rng = np.random.default_rng(3)
    shocks = rng.standard_t(4.0, (7, 3000)) * rng.uniform(0.001, 0.03, (7, 1))
    c = 1.0 - 0.0005
    batch = ar1_filter(shocks, c)
    for row, got in zip(shocks, batch):
        want = lfilter([1.0], [1.0, -c], row)
        assert np.array_equal(got, want)
        assert np.array_equal(ar1_filter(row, c), want)  # one symbol alone


def test_stored_paths_are_sliced_by_a_new_process_and_keyed_by_what_they_depend_on(universe, tmp_path, monkeypatch):
    # the next daily run (a new provider: a new process) slices the stored path instead of regenerating
    # it from EPOCH, and gets the same bars and actions, bit for bit
    cache = tmp_path / "cache"
    want = SyntheticProvider(7, universe).fetch(SYMS, START, END)
    first = SyntheticProvider(7, universe, cache_dir=cache).fetch(SYMS, START, END)
    assert first.bars.equals(want.bars) and first.actions.equals(want.actions)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 * len(SYMS)  # a path and its actions per symbol

    def no_generation(self, symbol, n, x=None):
        raise AssertionError(f"{symbol} regenerated")

    monkeypatch.setattr(SyntheticProvider, "_generate", no_generation)
    again = SyntheticProvider(7, universe, cache_dir=cache).fetch(SYMS, START, END)
    assert again.bars.equals(want.bars) and again.actions.equals(want.actions)
    day = SyntheticProvider(7, universe, cache_dir=cache).fetch(["AAPL"], END, END)
    assert day.bars.equals(want.bars.filter((pl.col("symbol") == "AAPL") & (pl.col("date") == END)))
    # defects are applied to the slice, never stored
    spiked = SyntheticProvider(7, universe, defects=[Defect("spike", "XOM", END)], cache_dir=cache).fetch(SYMS, START, END)
    assert spiked.bars.filter(pl.col("symbol") == "XOM")["close"][-1] == pytest.approx(1.5 * want.bars.filter(pl.col("symbol") == "XOM")["close"][-1])
    monkeypatch.undo()

    # another seed, other parameters or another sector is another file (never a wrong hit)
    from trading_assets.providers.synthetic import MarketParams

    SyntheticProvider(8, universe, cache_dir=cache).fetch(["AAPL"], START, END)
    SyntheticProvider(7, universe, params=MarketParams(nu=5.0), cache_dir=cache).fetch(["AAPL"], START, END)
    SyntheticProvider(7, None, cache_dir=cache).fetch(["AAPL"], START, END)  # the hashed sector, not the universe's
    assert len(list(cache.glob("AAPL-*.actions.npy"))) == 4
    # a torn file is regenerated, not trusted
    path_file = next(p for p in cache.glob("MSFT-*.npy") if not p.name.endswith(".actions.npy"))
    path_file.write_bytes(path_file.read_bytes()[:100])
    torn = SyntheticProvider(7, universe, cache_dir=cache).fetch(SYMS, START, END)
    assert torn.bars.equals(want.bars)
    # an empty file (a crash before the data reached the disk) and a foreign action code: regenerated too
    path_file.write_bytes(b"")
    actions_file = next(cache.glob("JPM-*.actions.npy"))
    np.save(actions_file, np.array([[0.0], [99.0], [1.0], [1.0]]))
    again = SyntheticProvider(7, universe, cache_dir=cache).fetch(SYMS, START, END)
    assert again.bars.equals(want.bars) and again.actions.equals(want.actions)
