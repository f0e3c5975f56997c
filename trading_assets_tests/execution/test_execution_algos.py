"""Schedules, the participation cap, the day path and implementation shortfall, by hand."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from trading_assets.domain import execution_algos as ea
from trading_assets.settings import ExecutionSettings

D = date(2024, 3, 4)


def test_profile_is_the_least_squares_quadratic_of_the_study_and_u_shaped():
    v = np.array(ea.VOLUME_STUDY_HALF_HOURS, dtype=float)
    x = (np.arange(13) + 0.5) / 13
    a, b, c = ea.PROFILE_COEFFICIENTS
    # normal equations of the least-squares fit, solved independently of np.polyfit
    X = np.stack([x**2, x, np.ones_like(x)], axis=1)
    ref = np.linalg.solve(X.T @ X, X.T @ (v / v.sum() * 13))
    assert (a, b, c) == pytest.approx(tuple(ref), rel=1e-9)
    p = ea.volume_profile(13)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    k = int(np.argmin(p))
    assert 4 <= k <= 8 and p[0] > 2 * p[k] and p[-1] > 2 * p[k]  # U: both ends over twice the trough
    assert np.all(np.diff(p[:k + 1]) < 0) and np.all(np.diff(p[k:]) > 0)
    # the fit is within 10% of every published half hour
    assert np.max(np.abs(p / (v / v.sum()) - 1)) < 0.10
    # F(x) integrates f: one slot is the whole day, two slots split it at noon-ish
    assert ea.volume_profile(1).tolist() == [1.0]
    f = lambda t: a * t**3 / 3 + b * t**2 / 2 + c * t  # noqa: E731
    assert ea.volume_profile(2)[0] == pytest.approx((f(0.5) - f(0)) / (f(1) - f(0)))


@pytest.mark.parametrize("q", [0, 1, 12, 13, 14, 1000, 987_654])
@pytest.mark.parametrize("algo", [ea.TWAP, ea.VWAP])
def test_children_sum_to_the_parent_and_respect_the_cap(q, algo):
    adv = 50_000.0
    s = ea.schedule(q, algo, 13, adv, 0.10)
    assert int(s.planned.sum()) == q and s.planned.dtype == np.int64 and (s.planned >= 0).all()
    assert int(s.executed.sum()) + s.leftover == q
    cap = np.floor(0.10 * adv * ea.volume_profile(13) + 1e-9)
    assert np.array_equal(s.cap, cap) and (s.executed <= cap).all()
    if algo == ea.TWAP:
        assert s.planned.max() - s.planned.min() <= 1
    else:  # largest remainder: each child within one share of Q p_k
        assert np.all(np.abs(s.planned - q * ea.volume_profile(13)) < 1.0)


def test_twap_by_hand_with_catch_up_and_leftover():
    # 14 shares over 4 slots: planned 4,4,3,3; caps from ADV 100 at 10%: floor(10 p_k)
    p = ea.volume_profile(4)
    cap = np.floor(10.0 * p + 1e-9)
    s = ea.schedule(14, ea.TWAP, 4, 100.0, 0.10)
    assert s.planned.tolist() == [4, 4, 3, 3]
    done, deficit = [], 0
    for k in range(4):
        want = [4, 4, 3, 3][k] + deficit
        done.append(min(want, int(cap[k])))
        deficit = want - done[-1]
    assert s.executed.tolist() == done and s.leftover == deficit
    assert cap.tolist() == [3.0, 1.0, 1.0, 3.0] and done == [3, 1, 1, 3] and deficit == 6


def test_vwap_under_the_gate_adv_limit_never_hits_the_cap():
    # the gate keeps an order <= 10% of ADV: VWAP children q p_k then fit the 10% slot caps up to
    # whole-share rounding (a child rounded up by one share against a cap rounded down)
    adv = 123_457.0
    q = int(0.10 * adv)
    s = ea.schedule(q, ea.VWAP, 13, adv, 0.10)
    assert 0 <= s.leftover < 13 and np.all(s.planned - s.executed <= 1 + s.leftover)
    half = ea.schedule(q // 2, ea.VWAP, 13, adv, 0.10)
    assert half.leftover == 0 and np.array_equal(half.executed, half.planned)


def test_market_on_open_is_one_uncapped_child_and_unknown_volume_is_uncapped():
    s = ea.schedule(10_000, ea.MARKET_ON_OPEN, 13, 1.0, 0.10)
    assert s.executed.tolist() == [10_000] and s.leftover == 0
    u = ea.schedule(500, ea.VWAP, 13, float("nan"), 0.10)
    assert not u.cap_known and u.leftover == 0 and np.array_equal(u.executed, u.planned)
    with pytest.raises(ValueError, match="algo"):
        ea.schedule(5, "iceberg", 13, 1e6, 0.1)
    with pytest.raises(ValueError):
        ea.schedule(5.5, ea.TWAP, 13, 1e6, 0.1)


@pytest.mark.parametrize("ohlc", [(100.0, 103.0, 98.0, 101.0), (100.0, 100.0, 97.0, 99.0),  # open = high
                                  (50.0, 55.0, 50.0, 55.0),  # open = low, close = high
                                  (20.0, 20.5, 19.5, 20.5), (10.0, 10.0, 10.0, 10.0)])
def test_day_path_passes_through_ohlc_by_construction(ohlc):
    o, h, low, c = ohlc
    for sym in ("AAPL", "MSFT", "X"):
        path = ea.day_path(o, h, low, c, ea.path_rng(7, D, sym))
        assert path.size == 391 and path[0] == o and path[-1] == c
        assert path.max() == h and path.min() == low  # exactly, both are attained
        again = ea.day_path(o, h, low, c, ea.path_rng(7, D, sym))
        assert np.array_equal(path, again)  # deterministic with the seed
    a = ea.day_path(o, h, low, c, ea.path_rng(7, D, "AAPL"))
    b = ea.day_path(o, h, low, c, ea.path_rng(8, D, "AAPL"))
    assert h == low or not np.array_equal(a, b)


def test_day_path_refuses_an_inconsistent_bar():
    with pytest.raises(ValueError, match="inconsistent"):
        ea.day_path(100.0, 99.0, 95.0, 98.0, ea.path_rng(1, D, "A"))
    with pytest.raises(ValueError, match="positive"):
        ea.day_path(100.0, float("nan"), 95.0, 98.0, ea.path_rng(1, D, "A"))


def test_slot_prices_are_slot_means():
    path = np.arange(9, dtype=float)  # 8 steps, 4 slots: minutes [0..2], [2..4], [4..6], [6..8]
    assert ea.slot_prices(path, 4).tolist() == [1.0, 3.0, 5.0, 7.0]


def test_shortfall_matches_a_hand_computation_on_a_hand_made_path():
    # 4 slots of 2 steps; O=100 H=104 L=98 C=102; slot prices (mean of 3 points):
    path = np.array([100.0, 101.0, 102.0, 104.0, 103.0, 99.0, 98.0, 100.0, 102.0])
    sp = [101.0, 103.0, 100.0, 100.0]
    s = ExecutionSettings(algo=ea.TWAP, slices=4, participation_cap=0.10, slippage_bps=10.0,
                          commission_per_share=0.01, min_commission=1.0)
    # BUY 400, ADV 5,000: caps floor(500 p_k)
    cap = np.floor(500.0 * ea.volume_profile(4) + 1e-9)
    e = ea.execute_parent(400, +1, (100.0, 104.0, 98.0, 102.0), 5_000.0, s, None, path=path)
    assert e.slot_price.tolist() == pytest.approx(sp)
    planned = [100, 100, 100, 100]
    done, deficit = [], 0
    for k in range(4):
        want = planned[k] + deficit
        done.append(min(want, int(cap[k])))
        deficit = want - done[-1]
    assert e.schedule.executed.tolist() == done
    filled = sum(done)
    px = [p * 1.001 for p in sp]
    avg = sum(q * p for q, p in zip(done, px)) / filled
    assert e.filled == filled and e.avg_price == pytest.approx(avg, rel=1e-12)
    assert e.shortfall_arrival_bps == pytest.approx((avg - 100.0) / 100.0 * 1e4)
    tp = (104.0 + 98.0 + 102.0) / 3
    assert e.vwap_proxy == pytest.approx(tp)
    assert e.shortfall_vwap_bps == pytest.approx((avg - tp) / tp * 1e4)
    assert e.cost_total == pytest.approx(sum(q * p * 0.001 for q, p in zip(done, sp)))
    assert e.commission_total == pytest.approx(max(1.0, 0.01 * filled)) and e.commission.sum() == pytest.approx(e.commission_total)
    assert e.fill_ratio == pytest.approx(filled / 400) and e.schedule.leftover == 400 - filled
    assert e.opportunity_cost == pytest.approx((102.0 - 100.0) * (400 - filled))
    # the same order as a SELL: the sign flips, the prices go the other way
    sell = ea.execute_parent(400, -1, (100.0, 104.0, 98.0, 102.0), 5_000.0, s, None, path=path)
    avg_s = sum(q * p * 0.999 for q, p in zip(done, sp)) / filled
    assert sell.shortfall_arrival_bps == pytest.approx(-(avg_s - 100.0) / 100.0 * 1e4)


def test_market_on_open_equals_todays_paper_fill():
    from trading_assets.domain import execution as ex

    s = ExecutionSettings()
    e = ea.execute_parent(250, +1, (50.0, 51.0, 49.0, 50.5), 1e6, s, None)
    assert e.avg_price == ex.fill_price(50.0, ex.BUY, s.slippage_bps)
    assert e.commission_total == ex.commission(250, s)
    assert e.cost_total == abs(ex.fill_price(50.0, ex.BUY, s.slippage_bps) - 50.0) * 250
    assert e.shortfall_arrival_bps == pytest.approx(s.slippage_bps)


def test_nothing_filled_gives_nan_shortfall_and_no_commission():
    s = ExecutionSettings(algo=ea.VWAP, slices=13)
    e = ea.execute_parent(100, +1, (10.0, 10.5, 9.5, 10.2), 5.0, s, ea.path_rng(1, D, "A"))  # caps all 0
    assert e.filled == 0 and e.commission_total == 0.0 and math.isnan(e.avg_price)
    assert math.isnan(e.shortfall_arrival_bps) and e.fill_ratio == 0.0 and e.schedule.leftover == 100
