"""Labels (domain/evaluation/labels.py): hand-computed values on a tiny market with a split and a
dividend between entry and exit, every invalid case with its reason, the point-in-time rule for
quality flags, and a spot check on the real S&P file against a direct computation."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_assets.domain import calendar
from trading_assets.domain.evaluation.labels import LABEL_SCHEMA, compute_labels, failed_bars, label_calendar, level_shifts
from trading_assets.domain.reasons import LABEL_CODES

D = [date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9, 10)]  # NYSE sessions (Jan 1 is a holiday)
J2, J3, J4, J5, J8, J9, J10 = D

OPENS = {
    "A": [100.0, 101.0, 102.0, 52.0, 53.0, 54.0, 55.0],  # 2:1 split, ex-date Jan 5 (factor 0.5)
    "B": [50.0, 50.0, 49.0, 50.0, 49.0, 50.0, 51.0],  # $1 dividend, ex-date Jan 8 (factor 0.98)
    "C": [20.0, 20.0, -1.0, 20.0, 21.0, None, 22.0],  # a non-positive open on Jan 4, no bar on Jan 9
    "D": [10.0] * 6 + [11.0],  # quality failures (below)
    "SPY": [400.0, 400.0, 404.0, 402.0, 410.0, 410.0, 414.1],
}
ACTIONS = pl.DataFrame(
    {
        "date": [J5, J8],
        "symbol": ["A", "B"],
        "action": ["split", "dividend"],
        "value": [2.0, 1.0],
        "price_factor": [0.5, 0.98],
    }
)
SYMBOLS = ["A", "B", "C", "D", "SPY"]


def _opens() -> pl.DataFrame:
    rows = [(d, s, p) for s, ps in OPENS.items() for d, p in zip(D, ps) if p is not None]
    return pl.DataFrame(rows, schema={"date": pl.Date, "symbol": pl.String, "open": pl.Float64}, orient="row")


def _quality() -> pl.DataFrame:
    """D's Jan 9 bar fails on its own row; D's Jan 4 bar is named by a reversed spike on Jan 5 (known
    by Jan 5); D's Jan 10 bar by one on Jan 11 (not known at Jan 10)."""
    spike = '{{"REVERSED_SPIKE":{{"bad_date":"{}","spike_return":0.4,"reversal_return":-0.4}}}}'
    return pl.DataFrame(
        {
            "date": [J9, J5, date(2024, 1, 11), J3],
            "symbol": ["D", "D", "D", "A"],
            "passed": [False, False, False, True],
            "reason_codes": [["MISSING_BAR"], ["REVERSED_SPIKE"], ["REVERSED_SPIKE"], ["LARGE_MOVE"]],
            "details": ["{}", spike.format(J4), spike.format(J10), '{"LARGE_MOVE":{}}'],
        }
    )


def _labels(symbols=SYMBOLS, benchmarks=("SPY",), quality=None) -> pl.DataFrame:
    failed = failed_bars(_quality() if quality is None else quality)
    return compute_labels(_opens(), ACTIONS, failed, [J5, J10], symbols, benchmarks, first_decision=J2)


def _value(frame: pl.DataFrame, known: date, h: int, symbol: str, column: str):
    row = frame.filter((pl.col("known_at") == known) & (pl.col("horizon") == h) & (pl.col("symbol") == symbol))
    assert row.height == 1
    return row[column][0]


def test_calendar_of_a_label():
    cal = label_calendar([J5, J10], first_decision=J2)
    # Jan 5 with h = 5 would be a decision on Dec 27, 2023, before the first decision session
    assert cal.rows() == [(J5, 1, J3, J4, J5), (J10, 1, J8, J9, J10), (J10, 5, J2, J3, J10)]


def test_hand_computed_returns_with_a_split_and_a_dividend_between_entry_and_exit():
    out = _labels()
    assert out.schema == pl.Schema(LABEL_SCHEMA)
    expected = {
        # (known_at, h, symbol): fwd_return by hand, Q = open / F
        (J5, 1, "A"): (52 / 0.5) / 102 - 1,  # split between entry (Jan 4) and exit (Jan 5)
        (J10, 1, "A"): 55 / 54 - 1,
        (J10, 5, "A"): (55 / 0.5) / 101 - 1,  # entry Jan 3, exit Jan 10, split on Jan 5
        (J5, 1, "B"): 50 / 49 - 1,
        (J10, 1, "B"): 51 / 50 - 1,
        (J10, 5, "B"): (51 / 0.98) / 50 - 1,  # the dividend is paid back: total return
        (J10, 5, "C"): 22 / 20 - 1,
        (J10, 5, "D"): 11 / 10 - 1,  # D's Jan 10 spike is only seen on Jan 11
        (J5, 1, "SPY"): 402 / 404 - 1,
        (J10, 1, "SPY"): 414.1 / 410 - 1,
        (J10, 5, "SPY"): 414.1 / 400 - 1,
    }
    for (k, h, s), v in expected.items():
        assert _value(out, k, h, s, "fwd_return") == pytest.approx(v, rel=1e-12), (k, h, s)
        assert _value(out, k, h, s, "valid") is True and _value(out, k, h, s, "reason") is None
        assert _value(out, k, h, s, "bench_return") == pytest.approx(expected[(k, h, "SPY")], rel=1e-12)
    universe = {
        (J5, 1): np.mean([expected[(J5, 1, "A")], expected[(J5, 1, "B")]]),
        (J10, 1): np.mean([expected[(J10, 1, "A")], expected[(J10, 1, "B")]]),
        (J10, 5): np.mean([expected[(J10, 5, s)] for s in "ABCD"]),
    }
    for (k, h), u in universe.items():
        for s in SYMBOLS:
            assert _value(out, k, h, s, "universe_return") == pytest.approx(u, rel=1e-12)
            assert _value(out, k, h, s, "entry_date") == calendar.next_session(_value(out, k, h, s, "date"))
            assert _value(out, k, h, s, "exit_date") == k
        assert _value(out, k, h, "A", "excess_return") == pytest.approx(expected[(k, h, "A")] - expected[(k, h, "SPY")], rel=1e-9)


def test_invalid_labels_are_null_with_their_reasons():
    out = _labels()
    invalid = {
        (J5, 1, "C"): "ENTRY_PRICE_INVALID",  # open -1 on Jan 4
        (J10, 1, "C"): "ENTRY_BAR_MISSING",  # no bar on Jan 9
        # Jan 4 named by the reversed spike seen on Jan 5, whose own row fails too (the reversal)
        (J5, 1, "D"): "ENTRY_QUALITY_FAILED,EXIT_QUALITY_FAILED",
        (J10, 1, "D"): "ENTRY_QUALITY_FAILED",  # Jan 9 failed on its own row
    }
    for (k, h, s), reason in invalid.items():
        assert _value(out, k, h, s, "valid") is False
        assert _value(out, k, h, s, "reason") == reason
        for c in ("fwd_return", "excess_return"):
            assert _value(out, k, h, s, c) is None
    assert set(out.filter(~pl.col("valid"))["reason"].str.split(",").explode()) <= set(LABEL_CODES)
    assert out.filter(pl.col("valid")).height == out.height - len(invalid)


def test_several_reasons_and_the_exit_side():
    opens = pl.DataFrame({"date": [J9], "symbol": ["X"], "open": [0.0]})
    failed = pl.DataFrame({"date": [J9, J10], "symbol": ["X", "X"], "flagged_at": [J9, J10]})
    out = compute_labels(opens, ACTIONS.clear(), failed, [J10], ["X"], (), first_decision=J2)
    assert _value(out, J10, 1, "X", "reason") == "ENTRY_PRICE_INVALID,ENTRY_QUALITY_FAILED,EXIT_BAR_MISSING,EXIT_QUALITY_FAILED"
    assert _value(out, J10, 5, "X", "reason") == "ENTRY_BAR_MISSING,EXIT_BAR_MISSING,EXIT_QUALITY_FAILED"
    assert out["universe_return"].null_count() == out.height and out["bench_return"].null_count() == out.height


def test_a_holding_that_spans_an_unrecorded_split_is_invalid():
    """E halves on Jan 5 with no split recorded (quality: UNADJUSTED_SPLIT, failed): the 5-session label
    entering Jan 3 and exiting Jan 10 spans it (PATH_LEVEL_SHIFT), the 1-session label exiting on Jan 5
    fails on its exit bar, the 1-session label entering Jan 9 is fine."""
    opens = pl.DataFrame({"date": D, "symbol": "E", "open": [10.0, 10.0, 10.0, 5.0, 5.0, 5.0, 5.1]})
    quality = pl.DataFrame({"date": [J5], "symbol": ["E"], "passed": [False], "reason_codes": [["UNADJUSTED_SPLIT"]], "details": ["{}"]})
    shifts = level_shifts(quality)
    assert shifts.rows() == [(J5, "E", J5)]
    out = compute_labels(opens, ACTIONS.clear(), failed_bars(quality), [J5, J10], ["E"], (), first_decision=J2, shifts=shifts)
    assert _value(out, J10, 5, "E", "reason") == "PATH_LEVEL_SHIFT" and _value(out, J10, 5, "E", "fwd_return") is None
    assert _value(out, J5, 1, "E", "reason") == "EXIT_QUALITY_FAILED"
    assert _value(out, J10, 1, "E", "fwd_return") == pytest.approx(5.1 / 5 - 1, rel=1e-12)
    # a shift flagged only after the exit (not known yet) does not count
    late = shifts.with_columns(flagged_at=pl.lit(date(2024, 1, 11)))
    out = compute_labels(opens, ACTIONS.clear(), None, [J10], ["E"], (), first_decision=J2, shifts=late)
    assert _value(out, J10, 5, "E", "fwd_return") == pytest.approx(5.1 / 10 - 1, rel=1e-12)
    # a passed row with the code (not a failure) is no shift
    assert level_shifts(quality.with_columns(passed=pl.lit(True))).height == 0


def test_without_a_benchmark_the_excess_is_over_the_equal_weight_universe():
    out = _labels(symbols=["A", "B"], benchmarks=())
    u = np.mean([(52 / 0.5) / 102 - 1, 50 / 49 - 1])
    assert _value(out, J5, 1, "A", "bench_return") is None
    assert _value(out, J5, 1, "A", "excess_return") == pytest.approx((52 / 0.5) / 102 - 1 - u, rel=1e-12)


def test_failed_bars_from_quality_rows():
    got = failed_bars(_quality())
    assert got.rows() == [(J4, "D", J5), (J5, "D", J5), (J9, "D", J9), (J10, "D", date(2024, 1, 11)), (date(2024, 1, 11), "D", date(2024, 1, 11))]


def test_a_label_depends_on_nothing_after_its_exit():
    """Bars, actions and quality rows dated after known_at change no label (the domain half of the
    point-in-time test; the Dagster half is in reliability/test_point_in_time.py)."""
    base = compute_labels(_opens(), ACTIONS, failed_bars(_quality()), [J5], SYMBOLS, ("SPY",), first_decision=J2)
    later = _opens().with_columns(pl.when(pl.col("date") > J5).then(pl.col("open") * 3).otherwise(pl.col("open")).alias("open"))
    acts = pl.concat([ACTIONS, pl.DataFrame({"date": [J8], "symbol": ["C"], "action": ["split"], "value": [3.0], "price_factor": [1 / 3]})])
    q = pl.concat([_quality(), pl.DataFrame({"date": [J8], "symbol": ["A"], "passed": [False], "reason_codes": [["REVERSED_SPIKE"]],
                                              "details": [f'{{"REVERSED_SPIKE":{{"bad_date":"{J5}"}}}}']})])  # fmt: skip
    assert compute_labels(later, acts, failed_bars(q), [J5], SYMBOLS, ("SPY",), first_decision=J2).equals(base)


def test_one_pass_equals_session_by_session():
    whole = _labels()
    parts = pl.concat(
        [compute_labels(_opens(), ACTIONS, failed_bars(_quality()), [k], SYMBOLS, ("SPY",), first_decision=J2) for k in (J10, J5)]
    ).sort("known_at", "date", "symbol", "horizon")
    assert parts.equals(whole)


def test_real_sp500_labels_match_a_direct_computation(shared_data):
    """AAPL, MSFT and DHR (10 missing days before 2015-03-23) on the real S&P file (split-adjusted
    opens, no actions): every label equals open[exit] / open[entry] - 1 computed straight from the
    file's rows by session index, and a label whose entry or exit bar is absent is invalid."""
    symbols = ["AAPL", "MSFT", "DHR"]
    raw = pl.read_parquet(shared_data / "prices" / "sp500_2013_2018.parquet").filter(
        pl.col("symbol").is_in(symbols) & pl.col("date").is_between(date(2015, 1, 2), date(2015, 6, 30))
    ).with_columns(pl.col("date").cast(pl.Date))
    known = calendar.sessions(date(2015, 2, 2), date(2015, 6, 30))
    out = compute_labels(raw.select("date", "symbol", "open"), ACTIONS.clear(), None, known, symbols, (), first_decision=date(2015, 1, 2))
    sessions = calendar.sessions(date(2015, 1, 2), date(2015, 6, 30))
    index = {d: i for i, d in enumerate(sessions)}
    opens = {(d, s): o for d, s, o in raw.select("date", "symbol", "open").rows()}
    checked = invalid = 0
    for d, s, h, fwd, valid in out.select("date", "symbol", "horizon", "fwd_return", "valid").rows():
        entry, exit_ = sessions[index[d] + 1], sessions[index[d] + 1 + h]
        if (entry, s) in opens and (exit_, s) in opens:
            assert valid and fwd == pytest.approx(opens[(exit_, s)] / opens[(entry, s)] - 1, rel=1e-12)
            checked += 1
        else:
            assert not valid and fwd is None
            invalid += 1
    assert checked + invalid == out.height == len(known) * 3 * 2 and checked > 550 and invalid > 0  # DHR's gap
    # the universe return of a session: the mean of the three valid labels, by hand
    day = out.filter((pl.col("date") == date(2015, 4, 1)) & (pl.col("horizon") == 5))
    assert day["universe_return"][0] == pytest.approx(day.filter(pl.col("valid"))["fwd_return"].mean(), rel=1e-12)
