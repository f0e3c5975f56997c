"""EVT (domain/tail_risk.py): GPD shape and scale on simulated Pareto tails, scipy's estimate, the POT
VaR / ES against closed forms, the book model's EVT / historical switch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from trading_assets.domain import tail_risk as tr


@pytest.mark.parametrize("xi, beta", [(0.25, 0.01), (0.0, 0.02), (-0.2, 0.015)])
def test_gpd_shape_and_scale_recovered_on_simulated_tails(xi, beta):
    y = stats.genpareto.rvs(xi, scale=beta, size=(5000, 3), random_state=np.random.default_rng(3))
    fx, fb = tr.gpd_fit_batch(y, np.ones_like(y, dtype=bool))
    assert np.all(np.abs(fx - xi) < 0.05), fx
    assert np.all(np.abs(fb / beta - 1) < 0.06), fb


def test_gpd_fit_is_scipys_maximum_likelihood():
    rng = np.random.default_rng(4)
    for _ in range(5):
        y = stats.genpareto.rvs(0.2, scale=0.01, size=38, random_state=rng)
        c, _, s = stats.genpareto.fit(y, floc=0)
        for fx, fb in (tr.gpd_fit_one(y), tuple(v[0] for v in tr.gpd_fit_batch(y[:, None], np.ones((38, 1), bool)))):
            ours = stats.genpareto.logpdf(y, fx, 0, fb).sum()
            theirs = stats.genpareto.logpdf(y, c, 0, s).sum()
            assert ours >= theirs - 1e-7  # at least as high a likelihood
            assert abs(fx - c) < 2e-3 and abs(fb / s - 1) < 2e-3


@pytest.mark.parametrize("xi", [0.3, 0.0, -0.25])
def test_var_and_es_against_their_closed_forms(xi):
    """A loss whose whole distribution is GPD(xi, beta) (u = 0, N_u = n): VaR_q is its quantile and
    ES_q = E[L | L > VaR_q], computed here by scipy's integration."""
    beta, q = 0.01, 0.99
    var = tr.pot_var(0.0, xi, beta, 1000, 1000, q)
    assert float(var) == pytest.approx(stats.genpareto.ppf(q, xi, scale=beta), rel=1e-9)
    es = tr.pot_es(0.0, xi, beta, 1000, 1000, q)
    exact = stats.genpareto.expect(lambda v: v, args=(xi,), scale=beta, lb=float(var), conditional=True)
    assert float(es) == pytest.approx(exact, rel=1e-6)
    # with a threshold: the tail above u is GPD, zeta = N_u / n; ES = (1/(1-q)) int_q^1 VaR_p dp
    u, n, k = 0.02, 756, 38
    es_u = float(tr.pot_es(u, xi, beta, n, k, q))
    integral = integrate.quad(lambda p: float(tr.pot_var(u, xi, beta, n, k, p)), q, 1.0, limit=200)[0] / (1 - q)
    assert es_u == pytest.approx(integral, rel=1e-6)
    # and P(L > VaR_q) = 1 - q
    assert float(tr.pot_tail_probability(float(tr.pot_var(u, xi, beta, n, k, q)), u, xi, beta, n, k)) == pytest.approx(1 - q, rel=1e-9)


def test_pot_fit_needs_enough_exceedances():
    rng = np.random.default_rng(5)
    losses = rng.standard_t(4, size=(756, 2)) * 0.01
    losses[:500, 1] = np.nan  # 256 valid -> 13 exceedances < 25
    f = tr.pot_fit(losses, 0.95, 25)
    assert f.ok.tolist() == [True, False]
    assert f.n_exceed[0] == 38 and f.threshold[0] == pytest.approx(np.quantile(losses[:, 0], 0.95))


def test_book_model_uses_evt_with_enough_exceedances_else_history():
    rng = np.random.default_rng(6)
    r = rng.standard_t(3, size=(756, 4)) * 0.02
    w = np.full(4, 0.25)
    m = tr.BookTailModel(0.95, 25, 756)
    e = m.estimate(r, w, 0.05, 0.95)
    losses = -(r @ w)
    assert e.method == "evt" and e.n_exceed == 38
    assert e.threshold == pytest.approx(np.quantile(losses, 0.95))
    assert e.expected_shortfall == pytest.approx(float(tr.pot_es(e.threshold, e.xi, e.beta, 756, 38, 0.95)))
    # ES_95 of the POT tail is close to the historical mean of the 38 worst losses
    worst = np.sort(losses)[::-1][:38].mean()
    assert abs(e.expected_shortfall / worst - 1) < 0.1
    short = m.estimate(r[-252:], w, 0.05, 0.95)  # 252 losses -> 13 exceedances < 25: historical
    assert short.method == "historical"
    assert short.expected_shortfall == pytest.approx(np.sort(-(r[-252:] @ w))[::-1][: math.ceil(0.05 * 252)].mean())
