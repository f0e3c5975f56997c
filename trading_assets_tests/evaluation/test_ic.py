"""IC metrics (domain/evaluation/ic.py): every metric by hand on a tiny case (ties included), the
rolling mean / ICIR / t by hand, and IC / rank IC against scipy.stats on a real S&P session."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest
import scipy.stats as st
import statsmodels.api as sm

from trading_assets.domain import calendar
from trading_assets.domain.evaluation.ic import rolling_columns, rolling_metrics, session_metrics, signal_metrics
from trading_assets.domain.evaluation.labels import compute_labels

S1, S2 = date(2024, 1, 3), date(2024, 1, 4)


def _frames(rows_by_date: dict[date, tuple[list[float | None], list[float | None]]], source: str = "a"):
    scores, labels = [], []
    for d, (xs, ys) in rows_by_date.items():
        for i, (x, y) in enumerate(zip(xs, ys)):
            scores.append((d, f"S{i}", source, x))
            labels.append((d, f"S{i}", 1, y, y is not None, calendar.next_session(calendar.next_session(d))))
    s = pl.DataFrame(scores, schema={"date": pl.Date, "symbol": pl.String, "source": pl.String, "score": pl.Float64}, orient="row")
    lab = pl.DataFrame(
        labels,
        schema={"date": pl.Date, "symbol": pl.String, "horizon": pl.Int32, "excess_return": pl.Float64, "valid": pl.Boolean, "known_at": pl.Date},
        orient="row",
    )
    return s, lab


def _row(frame: pl.DataFrame, d: date) -> dict:
    return frame.filter(pl.col("date") == d).row(0, named=True)


def test_every_daily_metric_by_hand():
    x = [3.0, 1.0, 2.0, 2.0, 0.0, -1.0, None]  # S6 silent
    y = [0.05, -0.01, 0.02, 0.0, 0.01, -0.03, 0.04]
    s, lab = _frames({S1: (x, y)})
    r = _row(session_metrics(s, lab), S1)
    assert (r["n"], r["universe_n"], r["coverage"]) == (6, 7, pytest.approx(6 / 7))
    # Pearson: xbar = 7/6, ybar = 0.04/6; Sxy = 0.49/3, Sxx = 65/6, Syy = 0.0112/3
    assert r["ic"] == pytest.approx((0.49 / 3) / math.sqrt(65 / 6 * 0.0112 / 3), rel=1e-12)
    # ranks x: [6, 3, 4.5, 4.5, 2, 1] (the two 2s share 4.5), y: [6, 2, 5, 3, 4, 1]; Sxy = 13.5, Sxx = 17, Syy = 17.5
    assert r["rank_ic"] == pytest.approx(13.5 / math.sqrt(17 * 17.5), rel=1e-12)
    # non-zero scores: 5; same sign: (3, .05), (2, .02), (-1, -.03); (2, 0) is a miss
    assert (r["hit_n"], r["hit_rate"]) == (5, pytest.approx(3 / 5))
    # k = floor(6 / 5) = 1: top = {3} (y .05), bottom = {-1} (y -.03)
    assert (r["top_n"], r["bottom_n"], r["spread"]) == (1, 1, pytest.approx(0.08))
    assert r["known_at"] == date(2024, 1, 5)


def test_quintile_ties_are_never_split_and_small_or_flat_sessions():
    x = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    y = [0.03, 0.01, 0.02, 0.0, -0.01, 0.01, -0.02, 0.0, 0.0, -0.01]
    flat_x = [0.5] * 5
    s, lab = _frames({S1: (x, y), S2: (flat_x, [0.01, 0.02, -0.01, 0.0, 0.03])})
    out = session_metrics(s, lab)
    r = _row(out, S1)
    # k = 2: top = every score with fewer than 2 strictly higher = the three 1s; bottom = the seven 0s
    assert (r["top_n"], r["bottom_n"]) == (3, 7)
    assert r["spread"] == pytest.approx(0.02 - (-0.03 / 7), rel=1e-12)
    assert (r["hit_n"], r["hit_rate"]) == (3, 1.0)
    flat = _row(out, S2)
    assert flat["ic"] is None and flat["rank_ic"] is None  # zero variance
    assert (flat["top_n"], flat["bottom_n"], flat["spread"]) == (5, 5, 0.0)
    # fewer pairs than buckets: no spread; fewer than 3: no IC
    s3, lab3 = _frames({S1: ([1.0, 2.0], [0.01, 0.02])})
    tiny = _row(session_metrics(s3, lab3), S1)
    assert tiny["spread"] is None and tiny["ic"] is None and tiny["top_n"] == 0 and tiny["n"] == 2


def test_invalid_labels_and_non_finite_scores_are_left_out():
    s, lab = _frames({S1: ([1.0, 2.0, 3.0, float("nan"), 5.0], [0.01, None, 0.03, 0.04, 0.02])})
    r = _row(session_metrics(s, lab), S1)
    assert (r["n"], r["universe_n"]) == (3, 4)  # S1's label invalid, S3's score NaN
    assert r["ic"] == pytest.approx(st.pearsonr([1, 3, 5], [0.01, 0.03, 0.02])[0], rel=1e-12)


def test_a_silent_source_keeps_its_row_with_no_metrics():
    s, lab = _frames({S1: ([None, None, None], [0.01, 0.02, 0.03])}, source="regime")
    r = _row(session_metrics(s, lab), S1)
    assert (r["source"], r["n"], r["coverage"], r["ic"], r["hit_rate"]) == ("regime", 0, 0.0, None, None)


def test_rolling_mean_icir_and_t_by_hand():
    days = calendar.sessions(date(2024, 1, 2), date(2024, 1, 12))[:6]
    # the 4th session has no row at all (the source was absent): the window is counted in sessions
    rows = [(d, v) for d, v in zip(days[:3] + days[4:], [0.1, None, 0.3, 0.2, -0.1])]
    daily = pl.DataFrame(
        {
            "date": [d for d, _ in rows],
            "source": "a",
            "horizon": 1,
            "rank_ic": [v for _, v in rows],
            "ic": [v for _, v in rows],
            "hit_rate": [v for _, v in rows],
            "spread": [v for _, v in rows],
        },
        schema_overrides={"horizon": pl.Int32},
    )
    out = rolling_metrics(daily, windows=(3,), min_periods={3: 2})
    assert out.columns[-len(rolling_columns((3,))):] == rolling_columns((3,))
    got = out.select("n_rank_ic_3", "rank_ic_mean_3", "rank_ic_ir_3", "rank_ic_t_3").rows()
    # sessions: d0 .1 | d1 null | d2 .3 | d3 (no row) | d4 .2 | d5 -.1
    assert got[0] == (1, None, None, None)  # one value < min_periods
    assert got[1] == (1, None, None, None)
    assert got[2][0] == 2 and got[2][1] == pytest.approx(0.2)  # d0..d2: .1, .3
    sd = math.sqrt(((0.1 - 0.2) ** 2 + (0.3 - 0.2) ** 2) / 1)
    assert got[2][2] == pytest.approx(0.2 / sd) and got[2][3] == pytest.approx(0.2 / (sd / math.sqrt(2)))
    assert got[3][0] == 2 and got[3][1] == pytest.approx(0.25)  # d2..d4: .3, (none), .2
    m = (0.2 - 0.1) / 2  # d3..d5: (none), .2, -.1
    sd = math.sqrt(((0.2 - m) ** 2 + (-0.1 - m) ** 2) / 1)
    assert got[4] == (2, pytest.approx(m), pytest.approx(m / sd), pytest.approx(m / sd * math.sqrt(2)))
    assert out["spread_mean_3"].to_list()[2:] == pytest.approx([0.2, 0.25, m])


def test_rolling_values_do_not_depend_on_where_the_read_starts():
    rng = np.random.default_rng(3)
    days = calendar.sessions(date(2023, 1, 3), date(2024, 6, 28))
    daily = pl.DataFrame({"date": days, "source": "a", "horizon": 5, **{c: rng.normal(0.02, 0.1, len(days)) for c in ("ic", "rank_ic", "hit_rate", "spread")}},
                         schema_overrides={"horizon": pl.Int32})  # fmt: skip
    full = rolling_metrics(daily)
    cut = days[300]
    part = rolling_metrics(daily.filter(pl.col("date") >= calendar.lookback_start(cut, 251)))
    assert part.filter(pl.col("date") >= cut).equals(full.filter(pl.col("date") >= cut))  # bit for bit
    # against numpy on one window: 252 values ending at the cut
    v = daily.filter(pl.col("date") <= cut)["rank_ic"].to_numpy()[-252:]
    r = full.filter(pl.col("date") == cut).row(0, named=True)
    assert r["rank_ic_mean_252"] == pytest.approx(v.mean(), rel=1e-12)
    assert r["rank_ic_ir_252"] == pytest.approx(v.mean() / v.std(ddof=1), rel=1e-12)
    # horizon 5: the Newey-West t with 4 lags, = statsmodels' HAC t of a regression on a constant
    # (Bartlett kernel, small-sample correction n / (n - 1))
    hac = sm.OLS(v, np.ones(len(v))).fit(cov_type="HAC", cov_kwds={"maxlags": 4, "use_correction": True})
    assert r["rank_ic_t_252"] == pytest.approx(float(hac.tvalues[0]), rel=1e-10)
    assert r["rank_ic_t_252"] != pytest.approx(v.mean() / (v.std(ddof=1) / math.sqrt(252)), rel=1e-3)


def test_overlapping_horizon_t_is_newey_west_by_hand():
    """h = 2 -> one lag: S = (sum e^2 + 2 * (1 - 1/2) * sum e_d e_{d-1}) / (n - 1), t = mean / sqrt(S / n);
    a missing session breaks the lag pairs across it; h = 1 keeps the plain t."""
    days = calendar.sessions(date(2024, 1, 2), date(2024, 1, 12))[:5]
    vals = [0.1, 0.3, None, 0.2, -0.1]
    frame = lambda h: pl.DataFrame({"date": days, "source": "a", "horizon": h, **{c: vals for c in ("ic", "rank_ic", "hit_rate", "spread")}},
                                   schema_overrides={"horizon": pl.Int32})  # fmt: skip
    two = rolling_metrics(frame(2), windows=(5,), min_periods={5: 2}).row(-1, named=True)
    m = (0.1 + 0.3 + 0.2 - 0.1) / 4
    e = [0.1 - m, 0.3 - m, None, 0.2 - m, -0.1 - m]
    ss = sum(x * x for x in e if x is not None)
    lag1 = e[0] * e[1] + e[3] * e[4]  # (d1, d0) and (d4, d3); d2 is missing
    s_w = (ss + 2 * 0.5 * lag1) / 3
    assert two["rank_ic_mean_5"] == pytest.approx(m)
    assert two["rank_ic_ir_5"] == pytest.approx(m / math.sqrt(ss / 3))  # the ICIR is not adjusted
    assert two["rank_ic_t_5"] == pytest.approx(m / math.sqrt(s_w / 4))
    one = rolling_metrics(frame(1), windows=(5,), min_periods={5: 2}).row(-1, named=True)
    assert one["rank_ic_t_5"] == pytest.approx(m / math.sqrt(ss / 3) * 2)


def test_period_summary_t_is_newey_west_for_overlapping_labels():
    from trading_assets.reporting.tables import signal_summary

    rng = np.random.default_rng(11)
    days = calendar.sessions(date(2023, 1, 3), date(2023, 12, 29))
    v = np.convolve(rng.normal(0.01, 0.05, len(days) + 4), np.ones(5) / 5, mode="valid")  # an MA(4): 5-session overlap
    sq = pl.DataFrame({"date": days * 2, "source": "a", "horizon": [1] * len(days) + [5] * len(days),
                       "rank_ic": np.concatenate([v, v])}, schema_overrides={"horizon": pl.Int32})  # fmt: skip
    got = {r["horizon"]: r for r in signal_summary(sq).iter_rows(named=True)}
    assert got[1]["t"] == pytest.approx(v.mean() / v.std(ddof=1) * math.sqrt(len(v)), rel=1e-10)
    hac = sm.OLS(v, np.ones(len(v))).fit(cov_type="HAC", cov_kwds={"maxlags": 4, "use_correction": True})
    assert got[5]["t"] == pytest.approx(float(hac.tvalues[0]), rel=1e-10)
    assert got[5]["t"] < 0.6 * got[1]["t"]  # the overlap: the plain t overstated it


def test_ic_and_rank_ic_match_scipy_on_a_real_session(shared_data):
    """A real cross-section: the 20-session momentum of the S&P 500 at the close of 2016-06-15 against
    the next-open-to-open label of 2016-06-16 -> 2016-06-17 (and the 5-session one)."""
    raw = pl.read_parquet(shared_data / "prices" / "sp500_2013_2018.parquet").with_columns(pl.col("date").cast(pl.Date))
    s = date(2016, 6, 15)
    back = calendar.lookback_start(s, 20)
    close = raw.filter(pl.col("date").is_in([back, s])).pivot(on="date", index="symbol", values="close").drop_nulls()
    scores = close.select(pl.lit(s).alias("date"), "symbol", pl.lit("mom20").alias("source"),
                          (pl.col(str(s)) / pl.col(str(back)) - 1).alias("score"))  # fmt: skip
    symbols = raw["symbol"].unique().sort().to_list()
    exit5 = calendar.sessions(s, date(2016, 7, 1))[6]
    labels = compute_labels(raw.filter(pl.col("date").is_between(s, exit5)), raw.clear().select("date", "symbol").with_columns(
        action=pl.lit("split"), value=pl.lit(1.0), price_factor=pl.lit(1.0)), None,
        [calendar.sessions(s, exit5)[2], exit5], symbols, (), first_decision=s)  # fmt: skip
    out = session_metrics(scores, labels)
    assert out.height == 2
    for h in (1, 5):
        pairs = scores.join(labels.filter((pl.col("horizon") == h) & pl.col("valid")), on=["date", "symbol"])
        x, y = pairs["score"].to_numpy(), pairs["excess_return"].to_numpy()
        r = out.filter(pl.col("horizon") == h).row(0, named=True)
        assert r["n"] == len(x) > 480
        assert r["ic"] == pytest.approx(st.pearsonr(x, y)[0], rel=1e-10, abs=1e-12)
        assert r["rank_ic"] == pytest.approx(st.spearmanr(x, y)[0], rel=1e-10, abs=1e-12)
        # the raw forward return gives the same correlations (excess = fwd - one number per date)
        fwd = pairs["fwd_return"].to_numpy()
        assert r["rank_ic"] == pytest.approx(st.spearmanr(x, fwd)[0], rel=1e-10, abs=1e-12)
        # hit rate and quintile spread straight from numpy
        nz = x != 0
        assert r["hit_rate"] == pytest.approx(np.mean((x[nz] * y[nz]) > 0), rel=1e-12)
        k = len(x) // 5
        order = np.argsort(-x, kind="stable")  # momentum values of 480+ real names have no ties
        assert len(np.unique(x)) == len(x)
        assert r["spread"] == pytest.approx(y[order[:k]].mean() - y[order[-k:]].mean(), rel=1e-10)


def test_signal_metrics_is_session_then_rolling():
    s, lab = _frames({S1: ([3.0, 1.0, 2.0, 0.5], [0.05, -0.01, 0.02, 0.0]), S2: ([1.0, 2.0, 3.0, 4.0], [0.01, 0.0, 0.03, 0.02])})
    both = signal_metrics(s, lab, windows=(2,), min_periods={2: 2})
    assert both.height == 2 and both["n_rank_ic_2"].to_list() == [1, 2]
    first, second = session_metrics(s, lab)["rank_ic"].to_list()
    assert both["rank_ic_mean_2"].to_list() == [None, pytest.approx((first + second) / 2)]


def test_segment_ranks_match_scipy_both_ways():
    """The two rank layouts (padded matrix, one long sort) agree with scipy.stats.rankdata, ties included."""
    from trading_assets.domain.evaluation.segments import _segment_ranks_sorted, segment_ids, segment_ranks_2d

    rng = np.random.default_rng(5)
    sizes = np.array([1, 7, 40, 3, 25])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    seg = segment_ids(starts, int(sizes.sum()))
    x = np.round(rng.normal(size=int(sizes.sum())), 1)  # many ties
    for fn in (segment_ranks_2d, _segment_ranks_sorted):
        avg, lo, hi = fn(x, seg, starts)
        for a, b in zip(starts, np.append(starts[1:], len(x))):
            assert (avg[a:b] == st.rankdata(x[a:b], method="average")).all()
            assert (lo[a:b] == st.rankdata(x[a:b], method="min")).all()
            assert (hi[a:b] == st.rankdata(-x[a:b], method="min")).all()


def test_rolling_values_of_wanted_rows_are_the_same_bit_for_bit():
    rng = np.random.default_rng(5)
    days = calendar.sessions(date(2023, 1, 3), date(2024, 6, 28))
    daily = pl.concat([
        pl.DataFrame({"date": days, "source": s, "horizon": h, **{c: rng.normal(0.02, 0.1, len(days)) for c in ("ic", "rank_ic", "hit_rate", "spread")}},
                     schema_overrides={"horizon": pl.Int32})
        for s in ("a", "b") for h in (1, 5)
    ]).filter(pl.col("date") != days[200])  # a gap
    wanted = daily["date"] >= days[-3]
    full = rolling_metrics(daily)
    part = rolling_metrics(daily, wanted=wanted)
    assert part.filter(wanted).equals(full.filter(wanted))
    rest = part.filter(~wanted)
    assert rest["rank_ic_mean_63"].null_count() == rest.height and rest["n_rank_ic_63"].sum() == 0


def test_newey_west_t_of_a_whole_series_equals_the_last_full_window():
    from trading_assets.domain.evaluation.ic import _window_stats, newey_west_t

    rng = np.random.default_rng(2)
    v = rng.normal(0.01, 0.05, 400)
    v[[17, 18, 250]] = np.nan
    for lags in (0, 1, 4):
        assert newey_west_t(v, lags) == pytest.approx(float(_window_stats(v, v.size, 1, lags)["t"][-1]), rel=1e-12)
