"""The formulas of the trained agents by hand: rolling OOS IC as of t (point in time), Grinold's mu and the
confidence, the promotion rule on hand-made IC series (against scipy's paired t-test), the Meta-Brain's
calibration factor."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import stats

from trading_assets.domain import calendar, calibration
from trading_assets.domain.agents.trained import finite_scores, scores_to_outputs
from trading_assets.domain.models import oos, promotion
from trading_assets.settings import AgentSettings, MetaBrainSettings, ModelSettings

DAYS = calendar.sessions(date(2024, 1, 2), date(2024, 12, 31))


def _daily(agent: str, values, first: int = 0) -> pl.DataFrame:
    d = DAYS[first : first + len(values)]
    return pl.DataFrame({"agent": [agent] * len(values), "date": d, "known_at": [calendar.next_session(calendar.next_session(x)) for x in d],
                         "rank_ic": values, "n": [50] * len(values)}, schema_overrides={"n": pl.Int32})  # fmt: skip


def test_rolling_ic_uses_only_labels_known_at_t():
    rng = np.random.default_rng(1)
    v = rng.normal(0.03, 0.1, 60)
    daily = _daily("a", v.tolist())
    t = DAYS[40]
    got = oos.rolling_ic_asof(daily, [t], window=20, min_sessions=5, source="agent").row(0, named=True)
    # known at t: label dates s with s + 2 sessions <= t, i.e. the first 39 values; the last 20 of them
    known = v[:39][-20:]
    assert got["ic_n"] == 20
    assert got["ic_mean"] == pytest.approx(known.mean(), abs=1e-12)
    assert got["ic_sd"] == pytest.approx(known.std(ddof=1), abs=1e-12)
    assert got["ic_t"] == pytest.approx(known.mean() / (known.std(ddof=1) / math.sqrt(20)), rel=1e-9)
    # a later value changes nothing at t
    v2 = v.copy()
    v2[39:] = 5.0
    again = oos.rolling_ic_asof(_daily("a", v2.tolist()), [t], window=20, min_sessions=5, source="agent")
    assert again.equals(oos.rolling_ic_asof(daily, [t], window=20, min_sessions=5, source="agent"))
    # fewer than min_sessions known: no row
    assert oos.rolling_ic_asof(daily, [DAYS[5]], window=20, min_sessions=5, source="agent").height == 0


def test_daily_rank_ic_is_scipy_spearman():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal(40), rng.standard_normal(40)
    d = DAYS[3]
    scores = pl.DataFrame({"date": [d] * 40, "symbol": [f"S{i}" for i in range(40)], "agent": ["a"] * 40, "score": x})
    labels = pl.DataFrame({"date": [d] * 40, "symbol": [f"S{i}" for i in range(40)], "known_at": [DAYS[5]] * 40, "fwd_return": y,
                           "valid": [True] * 40})  # fmt: skip
    got = oos.daily_rank_ic(scores, labels, source="agent")
    assert got["rank_ic"][0] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_grinold_mu_and_confidence_by_hand():
    d = DAYS[10]
    scored = pl.DataFrame({
        "date": [d] * 3, "symbol": ["A", "B", "C"], "agent": ["m"] * 3, "score": [1.0, 2.0, 6.0], "model_version": ["v1"] * 3,
        "role": ["champion"] * 3, "ewma_vol_20": [0.16, None, 0.32], "vol_20": [0.2, 0.24, 0.3], "reason": [None] * 3,
        "agent_version": ["m@1"] * 3})  # fmt: skip
    calib = pl.DataFrame({"agent": ["m"], "date": [d], "ic_n": [100], "ic_mean": [0.04], "ic_t": [1.5]}, schema_overrides={"ic_n": pl.Int32})
    out = scores_to_outputs(scored, calib, AgentSettings(), ModelSettings()).sort("symbol")
    s = np.array([1.0, 2.0, 6.0])
    z = (s - s.mean()) / s.std()
    sd = np.array([0.16, 0.24, 0.32]) / math.sqrt(252)  # ewma first, vol_20 when the EWMA is missing
    assert out["mu"].to_list() == pytest.approx((0.04 * sd * z).tolist(), rel=1e-12)
    assert out["sigma"].to_list() == pytest.approx(sd.tolist(), rel=1e-12)
    assert out["confidence"].to_list() == pytest.approx([0.5] * 3)  # t / confidence_full_t = 1.5 / 3
    # no edge (IC <= 0): silent; no OOS history: silent
    neg = scores_to_outputs(scored, calib.with_columns(ic_mean=pl.lit(-0.01)), AgentSettings(), ModelSettings())
    assert (neg["confidence"] == 0).all() and neg["mu"].null_count() == 3 and neg["explanation"].str.contains("NO_EDGE").all()
    none = scores_to_outputs(scored, calib.clear(), AgentSettings(), ModelSettings())
    assert (none["confidence"] == 0).all() and none["explanation"].str.contains("NO_OOS_HISTORY").all()


def test_promotion_rule_on_hand_made_series():
    rng = np.random.default_rng(9)
    champ = rng.normal(0.01, 0.05, 150)
    better = champ + 0.02 + rng.normal(0, 0.03, 150)  # clearly better, paired
    similar = champ + rng.normal(0.001, 0.03, 150)
    daily = pl.concat([_daily("k", champ.tolist()), _daily("k.better", better.tolist()), _daily("k.similar", similar.tolist())])
    s = ModelSettings()  # window 126, t >= 2, n >= 63
    t = DAYS[151]  # the last value (label date DAYS[149]) becomes known at DAYS[151]: the window holds the last 126
    dec = promotion.decide("k", ["k", "k.better", "k.similar"], "k", daily, t, s)
    ref = stats.ttest_rel(better[-126:], champ[-126:]).statistic
    assert dec["action"] == "promote" and dec["champion"] == "k.better" and dec["previous"] == "k"
    assert dec["t_stat"] == pytest.approx(ref, rel=1e-9) and dec["n_sessions"] == 126
    # only the similar challenger: kept (its t is below 2)
    keep = promotion.decide("k", ["k", "k.similar"], "k", daily, t, s)
    assert keep["action"] == "keep" and keep["champion"] == "k"
    assert abs(stats.ttest_rel(similar[-126:], champ[-126:]).statistic) < 2
    # too few paired sessions known: kept whatever the t
    early = promotion.decide("k", ["k", "k.better"], "k", daily, DAYS[40], s)
    assert early["action"] == "keep" and early["n_sessions"] < s.promotion_min_sessions
    # first decision: the family's first variant
    assert promotion.decide("k", ["k", "k.better"], None, daily, t, s)["action"] == "initial"


def test_promotion_window_is_sessions_of_label_knowledge_not_the_last_values():
    """Paired values known in the last W sessions (t - W < known_at <= t), as oos.rolling_ic_asof: with a gap
    in the challenger's record, "the last W common values" would reach back before the window, and how far would
    depend on where the run's read began (a range run vs the daily run of the same session)."""
    rng = np.random.default_rng(11)
    champ = rng.normal(0.01, 0.05, 200)
    chal = champ + 0.004 + rng.normal(0, 0.03, 200)
    gap = np.r_[0:100, 140:200]  # the challenger was not scored on label dates 100..139
    daily = pl.concat([_daily("k", champ.tolist()), _daily("k.c", chal.tolist()).filter(pl.Series(np.isin(np.arange(200), gap)))])
    t, w = DAYS[201], 126  # value i is known at DAYS[i + 2]: the window holds label dates 74..199
    stat, n, ic_c, ic_k = promotion.paired_t(daily, "k.c", "k", t, w)
    inside = np.r_[74:100, 140:200]
    assert n == inside.size == 86
    assert stat == pytest.approx(stats.ttest_rel(chal[inside], champ[inside]).statistic, rel=1e-12)
    assert ic_c == pytest.approx(chal[inside].mean(), rel=1e-12) and ic_k == pytest.approx(champ[inside].mean(), rel=1e-12)
    # a read that begins at the window (a daily run's lookback) decides exactly as one from the first value
    short = daily.filter(pl.col("known_at") > calendar.lookback_start(t, w))
    assert promotion.paired_t(short, "k.c", "k", t, w) == (stat, n, ic_c, ic_k)


def test_calibration_factor_by_hand():
    """factor = min(1, m* / 0.02), m* = m (1 - 1/t^2) for m > 0 and t > 1 (else 0), computed at the cadence
    session u(t) <= t and held until the next one; 0 below min_sessions or without a rolling row."""
    u1, u2 = DAYS[30], DAYS[51]
    m = MetaBrainSettings(calibration_full_ic=0.02, calibration_min_sessions=63)
    rolling = pl.DataFrame({
        "agent": ["a", "b", "c", "d", "e", "a"], "date": [u1] * 5 + [u2],
        "ic_n": [252, 252, 252, 40, 252, 252], "ic_mean": [0.012, 0.03, -0.01, 0.05, 0.008, 0.006], "ic_t": [2.0, 3.0, -1.0, 4.0, 0.9, 1.5],
    }, schema_overrides={"ic_n": pl.Int32})  # fmt: skip
    days = DAYS[30:55]
    as_of = calibration.calibration_sessions(days, [DAYS[9], u1, u2])
    assert as_of.filter(pl.col("date") == DAYS[50])["as_of"][0] == u1 and as_of.filter(pl.col("date") == DAYS[54])["as_of"][0] == u2
    pairs = pl.DataFrame({"date": [u1] * 6 + [DAYS[50], DAYS[51], DAYS[54]], "agent": ["a", "b", "c", "d", "e", "f", "a", "a", "a"]})
    f = calibration.factors(rolling, pairs, as_of, m)
    got = {(r["date"], r["agent"]): r for r in f.iter_rows(named=True)}
    by_hand = {
        "a": 0.012 * (1 - 1 / 4) / 0.02,  # 0.45
        "b": min(1.0, 0.03 * (1 - 1 / 9) / 0.02),  # 0.0267 / 0.02 -> capped at 1
        "c": 0.0,  # negative mean
        "d": 0.0,  # 40 < 63 sessions: nothing earned yet
        "e": 0.0,  # t = 0.9 <= 1: within one standard error of zero
        "f": 0.0,  # no rolling row
    }
    for agent, v in by_hand.items():
        assert got[(u1, agent)]["factor"] == pytest.approx(v, abs=1e-12) and got[(u1, agent)]["as_of"] == u1
    assert got[(u1, "a")]["ic_shrunk"] == pytest.approx(0.009)
    # held between cadence sessions: DAYS[50] still uses u1's factor, DAYS[51] and later u2's
    assert got[(DAYS[50], "a")]["factor"] == pytest.approx(0.45) and got[(DAYS[50], "a")]["as_of"] == u1
    assert got[(DAYS[51], "a")]["factor"] == got[(DAYS[54], "a")]["factor"] == pytest.approx(0.006 * (1 - 1 / 2.25) / 0.02)
    outs = pl.DataFrame({"date": [u1] * 2, "symbol": ["X", "X"], "agent": ["a", "b"], "confidence": [0.8, 0.6]})
    assert calibration.calibrate(outs, f)["confidence"].to_list() == pytest.approx([0.8 * 0.45, 0.6])


def test_a_non_finite_model_score_is_a_silent_row_not_a_nan_session():
    d = DAYS[40]
    scored = finite_scores(pl.DataFrame({"date": [d] * 4, "symbol": list("ABCD"), "score": [1.0, float("nan"), -1.0, float("inf")]}))
    assert scored["score"].to_list() == [1.0, None, -1.0, None]
    assert scored["reason"].to_list()[1].startswith("NON_FINITE_SCORE") and scored["reason"][0] is None
    frame = scored.with_columns(agent=pl.lit("m"), model_version=pl.lit("v"), role=pl.lit("champion"), ewma_vol_20=pl.lit(0.2),
                                vol_20=pl.lit(0.2), agent_version=pl.lit("m@1"))
    cal = pl.DataFrame({"agent": ["m"], "date": [d], "ic_n": [100], "ic_mean": [0.02], "ic_t": [3.0]})
    out = scores_to_outputs(frame, cal, AgentSettings(), ModelSettings()).sort("symbol")
    assert out["mu"].is_null().to_list() == [False, True, False, True] and out["mu"].drop_nulls().is_finite().all()
    assert out.filter(pl.col("symbol").is_in(["B", "D"]))["confidence"].to_list() == [0.0, 0.0]
    assert out.filter(pl.col("symbol") == "B")["explanation"][0].startswith("silent: NON_FINITE_SCORE")
    assert out.filter(pl.col("symbol").is_in(["A", "C"]))["mu"].is_not_null().all()
