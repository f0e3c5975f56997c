"""The data-quality agent on the real S&P 500 file (../shared/data/prices/sp500_2013_2018.parquet):
every defect its README lists is flagged with the right code, the real large moves do not fail, the
failing share per session stays far below the blocking limit, and daily runs agree with the range run.

Skipped (with the reason) when the shared data folder is absent. Run as a script to print the wall
time and the failure counts on the whole file:
    /work/venv/bin/python -m trading_assets_tests.domain.test_quality_real
"""

from __future__ import annotations

import json
import time
from datetime import date
from functools import lru_cache
from pathlib import Path

import polars as pl
import pytest

from trading_assets.domain import calendar
from trading_assets.domain.quality import assess_quality, inferred_actions, read_sessions, summarize
from trading_assets.settings import QualitySettings

QS = QualitySettings()
NO_ACTIONS = pl.DataFrame(
    schema={"date": pl.Date, "symbol": pl.String, "action": pl.String, "value": pl.Float64, "price_factor": pl.Float64}
)
D = date.fromisoformat


@lru_cache(maxsize=1)
def _assessed(data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, list[date], pl.DataFrame, float]:
    """(bars, an untouched copy, sessions, quality rows, seconds): the whole file assessed once."""
    bars = pl.read_parquet(data_dir / "prices" / "sp500_2013_2018.parquet")
    copy = bars.clone()
    sessions = calendar.sessions(bars["date"].min(), bars["date"].max())
    symbols = sorted(bars["symbol"].unique().to_list())
    t0 = time.perf_counter()
    q = assess_quality(bars, NO_ACTIONS, sessions, symbols, sessions[0], sessions[-1], QS)
    return bars, copy, sessions, q, time.perf_counter() - t0


@pytest.fixture
def real(shared_data):
    return _assessed(shared_data)


def _row(q: pl.DataFrame, day: str, symbol: str) -> dict:
    out = q.filter((pl.col("date") == D(day)) & (pl.col("symbol") == symbol)).to_dicts()
    assert len(out) == 1
    out[0]["details"] = json.loads(out[0]["details"])
    return out[0]


def test_one_row_per_session_and_symbol(real):
    bars, _, sessions, q, _ = real
    assert len(sessions) == 1259
    assert q.height == 1259 * 505
    assert q.select("date", "symbol").is_unique().all()


@pytest.mark.parametrize(
    "day, symbol, codes",
    [
        ("2014-05-19", "AOS", {"HIGH_BELOW_LOW", "OPEN_OUTSIDE_RANGE", "CLOSE_OUTSIDE_RANGE"}),
        ("2014-05-19", "CHD", {"OPEN_OUTSIDE_RANGE"}),
        ("2014-11-06", "DHR", {"OPEN_OUTSIDE_RANGE"}),
        ("2014-11-06", "O", {"OPEN_OUTSIDE_RANGE"}),
        ("2014-05-28", "SPG", {"CLOSE_OUTSIDE_RANGE"}),
        ("2016-05-19", "LNT", {"CLOSE_OUTSIDE_RANGE", "UNADJUSTED_SPLIT"}),  # close at half on the eve of its split
        ("2016-05-20", "LNT", {"REVERSED_SPIKE"}),  # ... and back the next session
        ("2016-05-13", "WRK", {"CLOSE_OUTSIDE_RANGE"}),
        ("2016-01-12", "DHR", {"MISSING_FIELD", "ZERO_VOLUME"}),
        ("2016-01-12", "O", {"MISSING_FIELD", "ZERO_VOLUME"}),
        ("2016-07-01", "FTV", {"MISSING_FIELD", "ZERO_VOLUME"}),
        ("2016-04-07", "UA", {"MISSING_FIELD", "ZERO_VOLUME"}),
        ("2014-08-07", "DISCA", {"UNADJUSTED_SPLIT"}),
        ("2014-08-07", "DISCK", {"UNADJUSTED_SPLIT"}),
        ("2017-07-26", "BHF", {"LOW_VOLUME", "MISSING_FIELD"}),  # volume 3
        ("2017-07-28", "BHF", {"FLAT_BAR"}),  # O=H=L=C on volume 101
        ("2017-09-15", "NWL", {"REVERSED_SPIKE"}),  # the bad bar of 09-14, known the next session
    ],
)
def test_listed_defects_are_flagged_and_fail(real, day, symbol, codes):
    q = real[3]
    r = _row(q, day, symbol)
    assert codes <= set(r["reason_codes"]), r
    assert not r["passed"]


def test_unadjusted_splits_name_the_ratio(real):
    q = real[3]
    for symbol in ("DISCA", "DISCK"):
        d = _row(q, "2014-08-07", symbol)["details"]["UNADJUSTED_SPLIT"]
        assert d["split_ratio"] == 0.5 and d["prev_date"] == "2014-08-06"
    assert _row(q, "2014-08-06", "DISCA")["passed"] and _row(q, "2014-08-08", "DISCA")["passed"]
    # held on 08-07 and 08-08; the new level holds: an inferred 2:1 split known on 08-11, so the
    # features see one continuous series from then on
    for symbol in ("DISCA", "DISCK"):
        assert _row(q, "2014-08-08", symbol)["reason_codes"] == ["MOVE_UNCONFIRMED"]
        d = _row(q, "2014-08-11", symbol)["details"]["LEVEL_SHIFT_INFERRED"]
        assert (d["ex_date"], d["action"], d["ratio"]) == ("2014-08-07", "split", 0.5)


def test_nwl_spike_is_known_only_the_next_session(real):
    q = real[3]
    t = _row(q, "2017-09-14", "NWL")
    assert t["reason_codes"] == ["LARGE_MOVE", "MOVE_UNCONFIRMED"] and t["passed"]  # at t a -30% move alone cannot fail (held)
    t1 = _row(q, "2017-09-15", "NWL")["details"]["REVERSED_SPIKE"]
    assert t1["bad_date"] == "2017-09-14"
    assert t1["spike_return"] == pytest.approx(-0.361338, abs=1e-6)
    assert t1["reversal_return"] == pytest.approx(0.338001, abs=1e-6)


def test_every_range_violation_and_null_field_of_the_file(real):
    bars, _, _, q, _ = real
    flagged = q.join(bars, on=["date", "symbol"])
    close_out = flagged.filter((pl.col("close") < pl.col("low")) | (pl.col("close") > pl.col("high")))
    assert close_out.height == 9
    assert close_out["reason_codes"].list.contains("CLOSE_OUTSIDE_RANGE").all()
    open_out = flagged.filter((pl.col("open") < pl.col("low")) | (pl.col("open") > pl.col("high")))
    assert sorted(open_out["symbol"]) == ["AOS", "CHD", "DHR", "O"]
    assert open_out["reason_codes"].list.contains("OPEN_OUTSIDE_RANGE").all()
    nulls = flagged.filter(pl.any_horizontal(pl.col("open", "high", "low").is_null()))
    assert (nulls["open"].null_count(), nulls["high"].null_count()) == (11, 8)
    assert nulls["reason_codes"].list.contains("MISSING_FIELD").all() and not nulls["passed"].any()


def test_the_51_missing_days_across_6_symbols(real):
    bars, _, sessions, q, _ = real
    missing = q.filter(pl.col("reason_codes").list.contains("MISSING_BAR"))
    assert missing.height == 51 and missing["symbol"].n_unique() == 6
    assert not missing["passed"].any() and missing["provider"].is_null().all()
    # independently: (session, symbol) pairs after the symbol's first bar with no bar
    first = bars.group_by("symbol").agg(pl.col("date").min().alias("first"))
    grid = pl.DataFrame({"date": sessions}).join(first, how="cross").filter(pl.col("date") > pl.col("first"))
    expected = grid.join(bars, on=["date", "symbol"], how="anti").select("date", "symbol").sort("date", "symbol")
    assert missing.select("date", "symbol").sort("date", "symbol").equals(expected)
    for symbol in ("DHR", "ES", "O"):  # each misses the 10 sessions before 2015-03-23
        gap = missing.filter((pl.col("symbol") == symbol) & (pl.col("date") < D("2015-03-23")) & (pl.col("date") >= D("2015-03-09")))
        assert gap.height == 10, symbol


def test_the_29_late_starters(real):
    bars, _, sessions, q, _ = real
    first = bars.group_by("symbol").agg(pl.col("date").min().alias("first"))
    late = first.filter(pl.col("first") > sessions[0])
    assert late.height == 29
    on_first = q.join(late, left_on=["symbol", "date"], right_on=["symbol", "first"])
    assert on_first.height == 29 and on_first["reason_codes"].list.contains("LATE_START").all()
    assert set(q.filter(pl.col("reason_codes").list.contains("LATE_START"))["symbol"]) == set(late["symbol"])
    # before its first bar a late starter is NOT_LISTED (fails: nothing to trade), never MISSING_BAR
    not_listed = q.filter(pl.col("reason_codes").list.contains("NOT_LISTED"))
    expected = sum(sessions.index(d) for d in late["first"])
    assert not_listed.height == expected
    assert set(not_listed["symbol"]) == set(late["symbol"])


@pytest.mark.parametrize(
    "day, symbol, resolved",
    [("2015-07-01", "BAX", "LEVEL_SHIFT_INFERRED"), ("2015-07-20", "EBAY", "LEVEL_SHIFT_INFERRED"),
     ("2015-07-02", "NI", "LEVEL_SHIFT_INFERRED"), ("2013-04-19", "VRTX", "MOVE_CONFIRMED")],
)
def test_real_large_moves_do_not_fail(real, day, symbol, resolved):
    """Never a data error: the move passes (LARGE_MOVE, 0.9) and is held for two sessions; then the
    spin-offs (persistent drops: BAX/Baxalta, EBAY/PayPal, NI/Columbia Pipeline) get an inferred action
    and VRTX's +62% (upward: news, no action raises a price) is confirmed as a real move."""
    q = real[3]
    r = _row(q, day, symbol)
    assert r["passed"] and r["reason_codes"] == ["LARGE_MOVE", "MOVE_UNCONFIRMED"] and r["score"] == 0.9
    nxt = q.filter((pl.col("symbol") == symbol) & (pl.col("date") > D(day))).sort("date").head(3)
    assert nxt["passed"].all() and nxt["score"].to_list() == [1.0, 1.0, 1.0]
    assert nxt["reason_codes"].to_list() == [["MOVE_UNCONFIRMED"], [resolved], []]


def test_failing_share_far_below_the_blocking_limit(real):
    q = real[3]
    s = summarize(q)
    assert s["max_failing_share"] < QS.max_failing_share / 3  # 0.065 measured vs the 0.25 limit
    # besides the late starters' NOT_LISTED rows, only the real defects fail (80 rows measured)
    other = q.filter(~pl.col("passed") & ~pl.col("reason_codes").list.contains("NOT_LISTED"))
    assert other.height < 100
    assert s["codes_on_failing_rows"].get("LARGE_MOVE", 0) == 0


def test_held_moves_of_the_whole_file(real):
    """Every jump of the file is held two sessions, then: reverted (a bad bar: LNT, MRO, NWL
    2017-09-14), confirmed as a real move (the 7 upward ones: news), or an inferred action (28: the
    DISCA/DISCK 2:1 splits and 26 persistent drops -- spin-offs and special dividends such as BAX, NI,
    EBAY, IR, A, ARNC, YUM, CAG, HPE, BHGE, and news-driven drops that prices alone cannot tell from
    them; the trade-off is in RELIABILITY.md). No held move makes a row fail."""
    q = real[3]
    s = summarize(q)["codes"]
    assert (s["MOVE_UNCONFIRMED"], s["LEVEL_SHIFT_INFERRED"], s["MOVE_CONFIRMED"], s["REVERSED_SPIKE"]) == (73, 28, 7, 3)
    assert "REVERTED_MOVE" not in s
    acts = inferred_actions(q)
    assert acts.height == 28 and set(acts["provenance"]) == {"inferred"}
    assert acts.filter(pl.col("action") == "split").select("symbol", "ratio").sort("symbol").rows() == [("DISCA", 0.5), ("DISCK", 0.5)]
    assert (acts.filter(pl.col("action") == "level_shift")["ratio"] < 1).all()
    assert {"BAX", "NI", "EBAY", "IR", "A", "ARNC", "YUM", "CAG", "HPE", "BHGE"} <= set(acts["symbol"])
    confirmed = q.filter(pl.col("reason_codes").list.contains("MOVE_CONFIRMED"))
    assert sorted(confirmed["symbol"]) == ["FB", "MNST", "NRG", "NVDA", "STZ", "VRTX", "VRTX"]
    # the confirming session is two sessions after the move, and the row of the move itself passed
    bad = q.filter(~pl.col("passed"))
    assert acts.join(bad, left_on=["ex_date", "symbol"], right_on=["date", "symbol"]).select("symbol").to_series().sort().to_list() == ["DISCA", "DISCK"]


def test_bars_are_never_altered(real):
    bars, copy, _, _, _ = real
    assert bars.equals(copy)


@pytest.mark.parametrize(
    "day", ["2014-08-07", "2014-08-11", "2015-03-23", "2015-07-01", "2015-07-06", "2016-05-20", "2017-07-28", "2017-09-15", "2018-02-07"]
)
def test_daily_run_equals_the_range_run_on_real_data(real, day):
    bars, _, _, q, _ = real
    t = D(day)
    read_from = calendar.lookback_start(t, read_sessions(QS))
    window_bars = bars.filter(pl.col("date").is_between(read_from, t))
    symbols = sorted(bars["symbol"].unique().to_list())
    daily = assess_quality(window_bars, NO_ACTIONS, calendar.sessions(read_from, t), symbols, t, t, QS)
    assert daily.equals(q.filter(pl.col("date") == t))


if __name__ == "__main__":  # the benchmark: wall time and failure counts on the whole file
    from trading_assets_tests.conftest import SHARED_DATA

    bars, _, sessions, q, seconds = _assessed(SHARED_DATA)
    t0 = time.perf_counter()
    assess_quality(bars, NO_ACTIONS, sessions, sorted(bars["symbol"].unique().to_list()), sessions[0], sessions[-1], QS)
    again = time.perf_counter() - t0
    s = summarize(q)
    print(f"{bars['symbol'].n_unique()} symbols x {len(sessions)} sessions = {q.height} rows")
    print(f"wall time: first call {seconds:.2f} s, second call {again:.2f} s")
    print(f"failing rows: {s['failing_rows']}, max failing share per session: {s['max_failing_share']:.4f}")
    print("codes on failing rows:", json.dumps(s["codes_on_failing_rows"]))
    print("all codes:", json.dumps(s["codes"]))
