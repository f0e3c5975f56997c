"""The cost model (domain/costs.py): Almgren et al. (2005) impact as Lean's MarketImpactSlippageModel,
by hand; the paper fill uses it; the optimizer's 3/2-power stand-in never understates it."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from trading_assets.domain import costs
from trading_assets.domain import execution as ex
from trading_assets.settings import CostSettings, ExecutionSettings

C = CostSettings()
E = ExecutionSettings()


def lean_realized_impact(q: float, adv: float, sigma: float, t: float) -> float:
    """Lean's GetSlippageApproximation without its noise and uniform draw (written from the C# source):
    nu = q / T / ADV; permanent = sigma * T * gamma * nu^alpha; temporary = sigma * eta * nu^beta;
    realized = temporary + permanent * 0.5."""
    nu = q / t / adv
    permanent = sigma * t * 0.314 * nu**0.891
    temporary = sigma * 0.142 * nu**0.600
    return temporary + permanent * 0.5


def test_impact_by_hand():
    # 100,000 shares of a 2 M ADV name with 2% daily vol over one session: nu = 0.05
    nu = 0.05
    want = 0.142 * 0.02 * nu**0.6 + 0.5 * 0.314 * 0.02 * nu**0.891
    assert costs.impact_fraction(100_000, 2e6, 0.02, C) == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(lean_realized_impact(100_000, 2e6, 0.02, 1.0), rel=1e-12)
    # 0.142 * 0.02 * 0.16573 + 0.5 * 0.314 * 0.02 * 0.06932 = 4.707e-4 + 2.177e-4
    assert want == pytest.approx(6.884e-4, abs=1e-6)  # ~6.9 bp
    # half the session: the same shares at twice the rate
    half = CostSettings(execution_sessions=0.5)
    assert costs.impact_fraction(100_000, 2e6, 0.02, half) == pytest.approx(lean_realized_impact(100_000, 2e6, 0.02, 0.5))
    # unknown inputs: no impact; capped at the price
    assert costs.impact_fraction(100, float("nan"), 0.02, C) == 0.0
    assert costs.impact_fraction(100, 2e6, None, C) == 0.0
    assert costs.impact_fraction(1e12, 1.0, 5.0, C) == 1.0
    # vectorized
    np.testing.assert_allclose(costs.impact_fraction(np.array([100_000, -100_000]), 2e6, 0.02, C), [want, want])


def test_paper_fill_pays_spread_impact_and_commission():
    orders = ex.make_orders(date(2024, 3, 1), ["A", "B", "C"], [100_000.0, -50_000.0, 10.0], [50.0, 20.0, 9.0],
                            "c", "paper", expected_volume=[2e6, 1e6, None], sigma_daily=[0.02, 0.01, 0.03])
    fills = ex.PaperBroker(E, C).fill(orders, date(2024, 3, 4), {"A": 50.0, "B": 20.0, "C": 9.0}, {})
    a, b, c = fills.sort("symbol").iter_rows(named=True)
    ia = lean_realized_impact(100_000, 2e6, 0.02, 1.0)
    assert a["price"] == pytest.approx(50.0 * (1 + 5e-4 + ia), rel=1e-12)
    assert a["slippage_cost"] == pytest.approx(50.0 * (5e-4 + ia) * 100_000, rel=1e-9)
    assert a["commission"] == pytest.approx(500.0)
    ib = lean_realized_impact(50_000, 1e6, 0.01, 1.0)
    assert b["price"] == pytest.approx(20.0 * (1 - 5e-4 - ib), rel=1e-12)
    assert c["price"] == ex.fill_price(9.0, ex.BUY, 5.0)  # no ADV on the order: the half spread only
    assert costs.trade_cost(100_000, 50.0, 2e6, 0.02, E, C) == pytest.approx(a["slippage_cost"] + a["commission"])


def test_split_scales_the_orders_adv():
    orders = ex.make_orders(date(2024, 3, 1), ["A"], [1000.0], [50.0], "c", "paper", [10_000.0], [0.02])
    f = ex.PaperBroker(E, C).fill(orders, date(2024, 3, 4), {"A": 25.0}, {"A": 2.0}).row(0, named=True)
    assert f["quantity"] == 2000.0
    assert f["price"] == pytest.approx(25.0 * (1 + 5e-4 + lean_realized_impact(2000, 20_000, 0.02, 1.0)))


def test_optimizer_cost_bounds_the_model_from_above_and_matches_at_the_adv_cap():
    rng = np.random.default_rng(0)
    n = 200
    price = rng.uniform(5, 500, n)
    adv = 10 ** rng.uniform(4, 7.5, n)
    sigma = rng.uniform(0.005, 0.05, n)
    nav = 1e8
    xmax = 0.10 * adv * price / nav
    a, b = costs.weight_cost_coefficients(nav, price, adv, sigma, xmax, E, C)
    np.testing.assert_allclose(a, 5e-4 + 0.005 / price)
    for frac in (1.0, 0.5, 0.1, 0.01):
        x = frac * xmax
        model = x * costs.impact_fraction(x * nav / price, adv, sigma, C)
        stand_in = b * x**1.5
        assert np.all(stand_in >= model * (1 - 1e-12))
        if frac == 1.0:
            np.testing.assert_allclose(stand_in, model, rtol=1e-12)
    a0, b0 = costs.weight_cost_coefficients(nav, np.array([math.nan, 10.0]), np.array([1e6, 1e6]),
                                            np.array([0.02, 0.02]), np.array([0.01, 0.0]), E, C)
    assert b0.tolist() == [0.0, 0.0]
