"""compute_features: warm-up, point in time, adjustments, quality-failed bars, benchmark, errors."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trading_assets.domain.features import CATALOG, FEATURE_NAMES, compute_features, output_schema
from trading_assets.domain.features.catalog import BY_NAME
from trading_assets.settings import FeatureSettings
from trading_assets_tests.features.market import ACTION_SCHEMA, make_bars, no_actions

SETTINGS = FeatureSettings()
START = date(2021, 1, 4)
SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
PRICE_FEATURES = [f.name for f in CATALOG if f.unit == "price"]
SHARE_FEATURES = [f.name for f in CATALOG if f.unit == "shares"]
CROSS_SECTIONAL = [f.name for f in CATALOG if f.stage == 5]


@pytest.fixture(scope="module")
def market() -> pl.DataFrame:
    return make_bars(SYMBOLS, START, 560)


@pytest.fixture(scope="module")
def feats(market) -> pl.DataFrame:
    return compute_features(market, no_actions(), "SPY", None, SETTINGS)


def _sym(frame: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return frame.filter(pl.col("symbol") == symbol).sort("date")


def test_output_shape_order_and_provenance(market, feats):
    assert feats.columns == list(output_schema())
    assert feats.height == market.height
    assert feats.select("date", "symbol").equals(market.select("date", "symbol").sort("symbol", "date"))
    assert dict(feats.schema) == output_schema()
    a = _sym(feats, "AAA")
    assert a["history_rows"].to_list() == list(range(1, a.height + 1))
    assert not feats["quality_flagged"].any()
    assert feats["benchmark_available"].all()


def test_warmup_is_null_then_every_value_is_defined(feats):
    """On complete, clean series a feature is null exactly on its first `warmup` bars (never a made-up
    number) and defined on every bar after (no silent gaps)."""
    for symbol in SYMBOLS + ["SPY"]:
        s = _sym(feats, symbol)
        idx = np.arange(s.height)
        for spec in CATALOG:
            if symbol == "SPY" and spec.name in CROSS_SECTIONAL:  # the benchmark is not ranked
                assert s[spec.name].is_null().all(), spec.name
                continue
            defined = s[spec.name].is_not_null().to_numpy()
            assert not defined[: spec.warmup].any(), f"{symbol} {spec.name}: value during its {spec.warmup}-bar warm-up"
            assert defined[spec.warmup :].all(), f"{symbol} {spec.name}: null after warm-up at {idx[spec.warmup:][~defined[spec.warmup:]][:3]}"
            assert s[spec.name].drop_nulls().is_finite().all(), f"{symbol} {spec.name}: non-finite value"


def test_value_ranges(feats):
    f = feats.drop_nulls(subset=["rank_mom_12_1"])
    assert f.height > 0
    for name in CROSS_SECTIONAL:
        if name.startswith(("rank_", "vol_rank")):
            assert feats[name].drop_nulls().is_between(0.0, 1.0).all(), name
    for name in ("rsi_7", "rsi_14", "rsi_21", "stoch_k_14", "stoch_d_14", "mfi_14"):
        assert feats[name].drop_nulls().is_between(0.0, 100.0).all(), name
    for name in ("r2_60", "r2_252", "up_volume_20"):
        assert feats[name].drop_nulls().is_between(0.0, 1.0).all(), name
    assert feats["corr_60"].drop_nulls().is_between(-1.0, 1.0).all()
    assert (feats["dd_252"].drop_nulls() <= 0).all() and (feats["max_dd_252"].drop_nulls() >= 0).all()
    assert feats["golden_cross"].drop_nulls().is_in([0.0, 1.0]).all()
    assert feats["close_adj"].null_count() == 0


def test_reference_values_against_numpy(market, feats):
    """Rolling statistics TA-Lib lacks, recomputed with numpy on one symbol's last bar."""
    m = _sym(market, "BBB")
    f = _sym(feats, "BBB")
    c, v = m["close"].to_numpy(), m["volume"].to_numpy()
    r = np.diff(np.log(c))
    last = f.row(-1, named=True)
    assert last["logret_252"] == pytest.approx(np.log(c[-1] / c[-253]), rel=1e-12)
    assert last["ret_20"] == pytest.approx(c[-1] / c[-21] - 1, rel=1e-12)
    assert last["vol_20"] == pytest.approx(np.std(r[-20:], ddof=1) * np.sqrt(252), rel=1e-9)
    assert last["vol_60"] == pytest.approx(np.std(r[-60:], ddof=1) * np.sqrt(252), rel=1e-9)
    assert last["realized_vol_20"] == pytest.approx(np.sqrt(252 * np.mean(r[-20:] ** 2)), rel=1e-9)
    assert last["zscore_60"] == pytest.approx((c[-1] - c[-60:].mean()) / c[-60:].std(ddof=1), rel=1e-8)
    assert last["sharpe_proxy_60"] == pytest.approx(r[-60:].mean() / r[-60:].std(ddof=1) * np.sqrt(252), rel=1e-8)
    assert last["mom_12_1"] == pytest.approx(c[-22] / c[-253] - 1, rel=1e-12)
    assert last["mom_accel"] == pytest.approx((c[-1] / c[-22] - 1) - (c[-1] / c[-64] - 1) / 3, rel=1e-12)
    assert last["adv_shares_21d"] == pytest.approx(v[-21:].mean(), rel=1e-12)
    assert last["adv_dollar_63d"] == pytest.approx((c[-63:] * v[-63:]).mean(), rel=1e-12)
    assert last["volume_ratio_20"] == pytest.approx(v[-1] / v[-20:].mean(), rel=1e-12)
    assert last["trade_intensity_63"] == pytest.approx(v[-1] / np.median(v[-63:]), rel=1e-12)
    assert last["breakout_20"] == float(c[-1] > m["high"].to_numpy()[-21:-1].max())
    assert last["close_adj"] == c[-1]
    peak = np.array([c[max(0, j - 251) : j + 1].max() for j in range(len(c))])
    mdd = (1 - c / peak)[-252:].max()
    assert last["max_dd_252"] == pytest.approx(mdd, rel=1e-12)
    assert last["calmar_proxy_252"] == pytest.approx((c[-1] / c[-253] - 1) / mdd, rel=1e-9)


def test_point_in_time_changes_after_t_leave_earlier_rows_unchanged(market, feats):
    t = market["date"].unique().sort()[400]
    later = pl.col("date") > t
    changed = market.with_columns(
        *(pl.when(later).then(pl.col(c) * 1.7).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")),
        pl.when(later).then(pl.col("volume") * 9).otherwise(pl.col("volume")).alias("volume"),
    )
    after = market.filter(later)["date"].unique().sort()
    actions = pl.DataFrame(
        {"date": [after[3]], "symbol": ["AAA"], "action": ["split"], "value": [3.0], "price_factor": [1 / 3]}, schema=ACTION_SCHEMA
    )
    bad = pl.DataFrame({"date": [after[1], after[2]], "symbol": ["BBB", "SPY"]})
    got = compute_features(changed, actions, "SPY", bad, SETTINGS)
    assert_frame_equal(got.filter(pl.col("date") <= t), feats.filter(pl.col("date") <= t))
    assert not got.filter(pl.col("date") > t).equals(feats.filter(pl.col("date") > t))
    # and a run that stops at t (a "window end" of t) gives the same rows: run-boundary independence
    truncated = compute_features(market.filter(pl.col("date") <= t), no_actions(), "SPY", None, SETTINGS)
    assert_frame_equal(truncated, feats.filter(pl.col("date") <= t))


def test_deterministic_under_input_row_order(market, feats):
    shuffled = market.sample(fraction=1.0, shuffle=True, seed=3)
    assert_frame_equal(compute_features(shuffled, no_actions(), "SPY", None, SETTINGS), feats)


def test_split_adjustment_is_point_in_time(market, feats):
    """Raw prices with a 2:1 split on ex-date e (prices before e doubled, volume halved, price_factor
    1/2): scale-free features equal the unsplit series everywhere; price levels are in each session's
    own units (x2 before e), share volumes too (/2 before e)."""
    days = market["date"].unique().sort()
    e = days[300]
    before = (pl.col("date") < e) & (pl.col("symbol") == "CCC")
    raw = market.with_columns(
        *(pl.when(before).then(pl.col(c) * 2).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")),
        pl.when(before).then(pl.col("volume") / 2).otherwise(pl.col("volume")).alias("volume"),
    )
    actions = pl.DataFrame({"date": [e], "symbol": ["CCC"], "action": ["split"], "value": [2.0], "price_factor": [0.5]}, schema=ACTION_SCHEMA)
    got = _sym(compute_features(raw, actions, "SPY", None, SETTINGS), "CCC")
    base = _sym(feats, "CCC")
    pre = pl.col("date") < e
    scale = {n: 2.0 for n in PRICE_FEATURES + ["close_adj"]} | {n: 0.5 for n in SHARE_FEATURES}
    expected = base.with_columns(*(pl.when(pre).then(pl.col(n) * k).otherwise(pl.col(n)).alias(n) for n, k in scale.items()))
    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
    # without the action the same raw prices show a -50% day: the adjustment is what removes it
    unadjusted = _sym(compute_features(raw, no_actions(), "SPY", None, SETTINGS), "CCC")
    assert unadjusted.filter(pl.col("date") == e)["ret_1"][0] < -0.45
    assert got.filter(pl.col("date") == e)["ret_1"][0] == pytest.approx(base.filter(pl.col("date") == e)["ret_1"][0], rel=1e-12)


def test_dividend_and_action_on_a_day_without_a_bar():
    """A dividend d with price_factor 1 - d/c_prev: the ex-date return is the total return; an action
    dated on a missing session still applies from that session on."""
    days = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5), date(2024, 1, 8)]
    close = [100.0, 102.0, 99.0, 99.5, 50.0]
    bars = pl.DataFrame(
        {"date": days, "symbol": "ZZZ", "open": close, "high": close, "low": close, "close": close, "volume": [1000.0, 1000, 1000, 1000, 2000]}
    ).filter(pl.col("date") != date(2024, 1, 5))  # the split's ex-date has no bar
    actions = pl.DataFrame(
        {
            "date": [date(2024, 1, 4), date(2024, 1, 5)],
            "symbol": ["ZZZ", "ZZZ"],
            "action": ["dividend", "split"],
            "value": [2.0, 2.0],
            "price_factor": [1 - 2.0 / 102.0, 0.5],
        },
        schema=ACTION_SCHEMA,
    )
    f = compute_features(bars, actions, "SPY", None, SETTINGS).sort("date")
    # ex-dividend: the previous close is scaled by 1 - d/c_prev, i.e. the return is measured from
    # c_prev - d: 99 / (102 - 2) - 1 = -1%, not the raw -2.94% drop
    assert f["ret_1"][2] == pytest.approx(99.0 / (102.0 - 2.0) - 1, rel=1e-12)
    assert f["ret_1"][1] == pytest.approx(102.0 / 100.0 - 1, rel=1e-12)
    # across the split (bar of 2024-01-05 missing): 50 post-split = 100 pre-split vs 99 -> +1.0101%
    assert f["ret_1"][3] == pytest.approx(100.0 / 99.0 - 1, rel=1e-12)
    assert f["adv_shares_1d"][3] == 2000.0 and f["close_adj"][3] == 50.0
    assert not f["benchmark_available"].any() and f["beta_60"].is_null().all()


def test_quality_failed_bar_is_excluded_from_windows_and_flagged(market, feats):
    """A bad bar in bad_bars: its own row is kept with null features and quality_flagged; every other
    row equals a computation where that bar never existed (windows step over it)."""
    days = market["date"].unique().sort()
    bad_day = days[450]
    spiked = market.with_columns(
        pl.when((pl.col("date") == bad_day) & (pl.col("symbol") == "DDD")).then(pl.col(c) * 3).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    )
    bad = pl.DataFrame({"date": [bad_day], "symbol": ["DDD"]})
    got = compute_features(spiked, no_actions(), "SPY", bad, SETTINGS)
    row = got.filter((pl.col("date") == bad_day) & (pl.col("symbol") == "DDD"))
    assert row.height == 1 and row["quality_flagged"][0] is True
    assert row.select(FEATURE_NAMES).null_count().row(0) == tuple([1] * len(FEATURE_NAMES))
    assert row["history_rows"][0] == 450  # the 450 usable bars before it
    dropped = compute_features(market.filter(~((pl.col("date") == bad_day) & (pl.col("symbol") == "DDD"))), no_actions(), "SPY", None, SETTINGS)
    others = got.filter(~((pl.col("date") == bad_day) & (pl.col("symbol") == "DDD")))
    # cross-sectional features of the other symbols on bad_day lose DDD from the session: compare the
    # per-symbol features exactly and the cross-section on all sessions but that one
    per_symbol = [f.name for f in CATALOG if f.stage < 5]
    assert_frame_equal(others.drop("history_rows"), dropped.drop("history_rows"))
    assert_frame_equal(_sym(others, "DDD").select(per_symbol), _sym(dropped, "DDD").select(per_symbol))
    # unflagged, the same spike poisons the next 20 sessions of vol_20
    poisoned = compute_features(spiked, no_actions(), "SPY", None, SETTINGS)
    nxt = (pl.col("date") == days[460]) & (pl.col("symbol") == "DDD")
    assert poisoned.filter(nxt)["vol_20"][0] > 3 * got.filter(nxt)["vol_20"][0]


def test_incomplete_bar_is_flagged_not_used(market):
    day = market["date"].unique().sort()[100]
    broken = market.with_columns(
        pl.when((pl.col("date") == day) & (pl.col("symbol") == "AAA")).then(None).otherwise(pl.col("high")).alias("high")
    )
    got = compute_features(broken, no_actions(), "SPY", None, SETTINGS)
    row = got.filter((pl.col("date") == day) & (pl.col("symbol") == "AAA"))
    assert row["quality_flagged"][0] is True and row["rsi_14"][0] is None
    assert got.filter(pl.col("symbol") == "AAA")["quality_flagged"].sum() == 1


def test_benchmark_missing_entirely_or_on_one_session(market, feats):
    no_spy = market.filter(pl.col("symbol") != "SPY")
    got = compute_features(no_spy, no_actions(), "SPY", None, SETTINGS)
    bench_cols = [f.name for f in CATALOG if f.group == "benchmark"] + ["rank_beta_60"]
    assert got.select(bench_cols).null_count().row(0) == tuple([got.height] * len(bench_cols))
    assert not got["benchmark_available"].any()
    # other features do not depend on the benchmark
    others = [n for n in FEATURE_NAMES if n not in bench_cols]
    assert_frame_equal(got.select(others), feats.filter(pl.col("symbol") != "SPY").select(others))
    # the benchmark missing one session: flagged on that session's rows; beta keeps its coverage rule
    day = market["date"].unique().sort()[500]
    gap = compute_features(market.filter(~((pl.col("symbol") == "SPY") & (pl.col("date") == day))), no_actions(), "SPY", None, SETTINGS)
    assert not gap.filter(pl.col("date") == day)["benchmark_available"].any()
    assert gap.filter(pl.col("date") != day)["benchmark_available"].all()
    assert gap.filter((pl.col("date") == day) & (pl.col("symbol") == "AAA"))["beta_60"][0] is not None


def test_late_starter_has_nulls_until_its_window_fills(market):
    days = market["date"].unique().sort()
    late = market.filter((pl.col("symbol") != "AAA") | (pl.col("date") >= days[300]))
    got = _sym(compute_features(late, no_actions(), "SPY", None, SETTINGS), "AAA")
    assert got["date"][0] == days[300] and got["history_rows"][0] == 1
    assert got["sma_200"].null_count() == 199 and got["logret_252"].null_count() == 252


def test_bad_inputs_raise_clear_errors(market):
    with pytest.raises(ValueError, match="duplicate"):
        compute_features(pl.concat([market, market.head(1)]), no_actions(), "SPY", None, SETTINGS)
    with pytest.raises(ValueError, match="lacks columns"):
        compute_features(market.drop("volume"), no_actions(), "SPY", None, SETTINGS)
    bad_action = pl.DataFrame({"date": [START], "symbol": ["AAA"], "action": ["split"], "value": [0.0], "price_factor": [0.0]}, schema=ACTION_SCHEMA)
    with pytest.raises(ValueError, match="price_factor"):
        compute_features(market, bad_action, "SPY", None, SETTINGS)
    empty = compute_features(market.head(0), no_actions(), "SPY", None, SETTINGS)
    assert empty.height == 0 and dict(empty.schema) == output_schema()


def test_null_price_factor_means_no_adjustment(market, feats):
    actions = pl.DataFrame({"date": [START], "symbol": ["AAA"], "action": ["dividend"], "value": [1.0], "price_factor": [None]}, schema=ACTION_SCHEMA)
    assert_frame_equal(compute_features(market, actions, "SPY", None, SETTINGS), feats)


def test_settings_change_the_values_they_parameterize(market, feats):
    other = compute_features(market, no_actions(), "SPY", None, FeatureSettings(annualization=365))
    a, b = _sym(feats, "AAA").row(-1, named=True), _sym(other, "AAA").row(-1, named=True)
    assert b["vol_20"] == pytest.approx(a["vol_20"] * np.sqrt(365 / 252), rel=1e-12)
    assert b["rsi_14"] == a["rsi_14"]
    assert BY_NAME["vol_20"].unit == "annualized"
