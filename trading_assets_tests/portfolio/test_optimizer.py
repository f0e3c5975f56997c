"""The multi-asset Kelly optimizer (domain/optimizer.py) against closed forms and a second solver
(cvxpy + SCS, an ADMM, on the same program), the factor model's conditioning, a failed solve, and
qlib's TopkDropout by hand."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest

from trading_assets.domain import optimizer as op
from trading_assets.domain import portfolio_methods as pm
from trading_assets.settings import PortfolioSettings, RiskSettings

R, P, G = RiskSettings(), PortfolioSettings(), 0.25


def inp(mu, sigma, *, w0=None, sectors=None, returns=None, a=0.0, b=0.0, max_trade=1.0, tradable=None):
    n = len(mu)
    sectors = list(range(n)) if sectors is None else sectors
    return op.OptimizerInput(
        mu=np.array(mu, dtype=float), sigma=np.array(sigma, dtype=float),
        w0=np.zeros(n) if w0 is None else np.array(w0, dtype=float),
        tradable=np.ones(n, dtype=bool) if tradable is None else np.array(tradable),
        sector_idx=np.array(sectors), n_sectors=max(sectors) + 1, max_trade=np.broadcast_to(max_trade, n).astype(float),
        cost_a=np.broadcast_to(a, n).astype(float), cost_b=np.broadcast_to(b, n).astype(float),
        returns=np.zeros((252, n)) if returns is None else returns)


def test_two_uncorrelated_names_get_their_single_name_kelly():
    mu, sigma = [2e-5, 1.2e-5], [0.01, 0.02]
    r = op.optimize(inp(mu, sigma), R, P, G)
    assert r.ok and r.status == "Solved"
    # gamma mu / sigma^2 = 0.25 * 2e-5 / 1e-4 = 0.05 and 0.25 * 1.2e-5 / 4e-4 = 0.0075
    np.testing.assert_allclose(r.weights, [0.05, 0.0075], atol=1e-7)
    assert r.expected_return == pytest.approx(2e-5 * 0.05 + 1.2e-5 * 0.0075, rel=1e-5)
    assert r.risk_penalty == pytest.approx((1e-4 * 0.05**2 + 4e-4 * 0.0075**2) / (2 * G), rel=1e-5)
    assert r.binding["names_at_cap"] == 0 and not r.binding["gross_at_cap"]


def test_a_binding_name_cap():
    r = op.optimize(inp([1e-4, 2e-5], [0.01, 0.01]), R, P, G)  # Kelly 0.25 and 0.05
    np.testing.assert_allclose(r.weights, [0.10, 0.05], atol=1e-7)
    assert r.binding["names_at_cap"] == 1


def test_a_binding_sector_cap():
    # same sector, equal sigma, Kelly 0.09 and 0.08: sum 0.17 > 0.15. KKT: w_i = gamma (mu_i - l) / s^2 with
    # w_1 + w_2 = 0.15 -> l = (mu_1 + mu_2 - 0.15 s^2 / gamma) / 2
    mu, s2 = np.array([3.6e-5, 3.2e-5]), 1e-4
    lam = (mu.sum() - 0.15 * s2 / G) / 2
    r = op.optimize(inp(mu, [0.01, 0.01], sectors=[0, 0]), R, P, G)
    np.testing.assert_allclose(r.weights, G * (mu - lam) / s2, atol=1e-7)
    assert r.weights.sum() == pytest.approx(0.15, abs=1e-7) and r.binding["sectors_at_cap"] == [0]


def test_zero_edge_no_trade_under_costs_and_the_no_trade_band():
    a = 3e-6  # linear cost per unit weight
    assert np.all(op.optimize(inp([0.0, 0.0], [0.01, 0.02], a=a), R, P, G).weights == 0.0)
    assert np.all(op.optimize(inp([2e-6, 1e-6], [0.01, 0.02], a=a), R, P, G).weights == 0.0)  # edge below cost
    # held at its Kelly weight 0.04 (mu = w0 s^2 / gamma = 1.6e-5): an edge change smaller than the cost -> hold
    w0, s2 = 0.04, 1e-4
    mu0 = w0 * s2 / G
    for dmu in (-2.9e-6, 0.0, 2.9e-6):
        r = op.optimize(inp([mu0 + dmu], [0.01], w0=[w0], a=a), R, P, G)
        assert r.weights[0] == pytest.approx(w0, abs=1e-8) and r.cost == pytest.approx(0.0, abs=1e-10)
    # beyond the band, the trade stops where the marginal edge equals the cost: w = gamma (mu - a) / s^2
    r = op.optimize(inp([mu0 + 8e-6], [0.01], w0=[w0], a=a), R, P, G)
    assert r.weights[0] == pytest.approx(G * (mu0 + 8e-6 - a) / s2, abs=1e-7)


def test_adv_limit_bounds_each_trade_and_a_held_name_above_the_cap_sells_what_it_can():
    r = op.optimize(inp([1e-4, 0.0], [0.01, 0.01], w0=[0.0, 0.13], max_trade=[0.02, 0.01]), R, P, G)
    np.testing.assert_allclose(r.weights, [0.02, 0.12], atol=1e-7)
    assert r.binding["names_at_adv_limit"] == 2


def test_fixed_names_count_in_the_sector_and_gross_limits():
    # name 0 cannot trade and holds 12% of sector 0: name 1 (same sector) may add 3% at most
    r = op.optimize(inp([0.0, 1e-4], [0.01, 0.01], w0=[0.12, 0.0], sectors=[0, 0], tradable=[False, True]), R, P, G)
    np.testing.assert_allclose(r.weights, [0.12, 0.03], atol=1e-7)


def _factor_returns(rng, t, n, k=3):
    f = rng.normal(0, 0.01, (t, k))
    return f @ rng.normal(0.5, 0.5, (k, n)) + rng.normal(0, 0.01, (t, n))


def _second_solver(x: op.OptimizerInput, gamma: float) -> tuple[np.ndarray, float]:
    """The same program through cvxpy with SCS (ADMM), Sigma as the factor model gives it."""
    n = len(x.mu)
    b, psi = op.factor_model(x.returns, P.risk_factors, P.specific_floor)
    d = np.diag(x.sigma)
    sigma = d @ (b @ b.T + np.diag(psi)) @ d
    lo, hi = op._bounds(x, R)
    w = cp.Variable(n)
    trade = w - x.w0
    obj = (x.mu @ w - cp.quad_form(w, cp.psd_wrap(sigma)) / (2 * gamma)
           - x.cost_a @ cp.abs(trade) - x.cost_b @ cp.power(cp.abs(trade), 1.5))
    cons = [w >= lo, w <= hi, cp.sum(w) <= R.max_gross_leverage]
    for s in range(x.n_sectors):
        members = x.sector_idx == s
        if members.any():
            cons.append(cp.sum(w[members]) <= R.max_sector)
    prob = cp.Problem(cp.Maximize(obj), cons)
    prob.solve(solver="SCS", eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
    return np.asarray(w.value), float(prob.value)


@pytest.mark.parametrize("seed", range(6))
def test_equals_a_second_solver_on_random_problems(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 12))
    x = inp(rng.normal(2e-5, 3e-5, n), rng.uniform(0.008, 0.03, n), w0=np.where(rng.random(n) < 0.4, rng.uniform(0, 0.08, n), 0.0),
            sectors=list(rng.integers(0, 3, n)), returns=_factor_returns(rng, 252, n), a=rng.uniform(0, 4e-6, n),
            b=rng.uniform(0, 1e-4, n), max_trade=rng.uniform(0.01, 0.2, n))
    r = op.optimize(x, R, P, G)
    w2, v2 = _second_solver(x, G)
    assert r.ok
    assert r.objective == pytest.approx(v2, abs=1e-9)
    np.testing.assert_allclose(r.weights, w2, atol=2e-4)


def test_screening_lets_a_hedge_back_in():
    # name 1 has no edge of its own but hedges name 0 (negative correlation): it belongs in the book
    rng = np.random.default_rng(1)
    f = rng.normal(0, 0.01, 252)
    rets = np.column_stack([f + rng.normal(0, 0.002, 252), -f + rng.normal(0, 0.002, 252)])
    x = inp([4e-5, 0.0], [0.01, 0.01], returns=rets, a=1e-7)
    r = op.optimize(x, R, P, G)
    assert r.rounds == 2 and r.weights[1] > 1e-3
    np.testing.assert_allclose(r.weights, _second_solver(x, G)[0], atol=2e-4)


def test_factor_model_is_well_conditioned_for_500_names_and_a_year():
    rng = np.random.default_rng(0)
    rets = _factor_returns(rng, 252, 505, k=5)
    rets[:, :3] = 0.0  # names with no history: uncorrelated, unit specific
    b, psi = op.factor_model(rets, 10, 0.05)
    corr = b @ b.T + np.diag(psi)
    ev = np.linalg.eigvalsh(corr)
    assert ev.min() >= 0.05 - 1e-9 and ev.max() / ev.min() < 1e4
    assert np.all(np.abs(np.diag(corr)[3:] - 1.0) < 1e-9 + np.maximum(0, 0.05 - (1 - (b[3:] ** 2).sum(1))))
    assert np.all(b[:3] == 0) and np.all(psi[:3] == 1.0)
    b2, psi2 = op.factor_model(rets, 10, 0.05)  # seeded: the same numbers
    assert np.array_equal(b, b2) and np.array_equal(psi, psi2)


def test_a_failed_solve_holds_the_current_book(monkeypatch):
    monkeypatch.setattr(op, "_solve", lambda *a, **k: ("MaxIterations", None, 200))
    w0 = [0.03, 0.0]
    r = op.optimize(inp([1e-4, 1e-4], [0.01, 0.01], w0=w0), R, P, G)
    assert not r.ok and r.status == "MaxIterations" and r.weights.tolist() == w0


def test_topk_dropout_by_hand():
    # held: 0, 1, 2 (scores 5, 1, 3); unheld: 3 (9), 4 (7), 5 (2); topk 3, n_drop 1
    score = np.array([5.0, 1.0, 3.0, 9.0, 7.0, 2.0])
    w0 = np.array([0.3, 0.3, 0.3, 0.0, 0.0, 0.0])
    t = pm.topk_dropout(score, w0, np.ones(6, dtype=bool), topk=3, n_drop=1, risk_degree=0.95)
    # today = the best n_drop + topk - held = 1 unheld name: 3; comb = 3, 0, 2, 1: bottom 1 = 1 -> sell 1, buy 3
    assert t[1] == 0.0 and t[0] == 0.3 and t[2] == 0.3
    assert t[3] == pytest.approx((1 - 0.6) * 0.95) and t[4] == 0.0 and t[5] == 0.0
    # a name that cannot trade is neither sold nor bought
    t2 = pm.topk_dropout(score, w0, np.array([True, False, True, True, True, True]), 3, 1, 0.95)
    assert t2[1] == 0.3 and t2[3] == 0.0 and math.isclose(t2.sum(), 0.9)
