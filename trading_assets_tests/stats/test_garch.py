"""GARCH(1,1)-t (domain/garch.py) against arch: parameter recovery on arch's own simulation, the same
estimate as arch's fit, the variance recursion, batch independence."""

from __future__ import annotations

import numpy as np
import pytest
from arch import arch_model

from trading_assets.domain import garch

TRUE = {"omega": 0.05, "alpha": 0.10, "beta": 0.85, "nu": 6.0}


def _simulate(n: int, seed: int, p=TRUE) -> np.ndarray:
    """Percent returns simulated by arch itself (zero mean, GARCH(1,1), standardized t), as decimals."""
    from arch.univariate import GARCH, StudentsT, ZeroMean

    am = ZeroMean(None, volatility=GARCH(p=1, q=1), distribution=StudentsT(seed=np.random.default_rng(seed)))
    sim = am.simulate([p["omega"], p["alpha"], p["beta"], p["nu"]], n, burn=500)
    return sim["data"].to_numpy() / 100.0


def test_recovers_alpha_beta_on_a_series_simulated_by_arch():
    r = _simulate(4000, 1)
    f = garch.fit_batch(r[:, None], max_iter=200)
    assert f.converged[0]
    assert abs(f.alpha[0] - TRUE["alpha"]) < 0.03
    assert abs(f.beta[0] - TRUE["beta"]) < 0.04
    assert abs(f.nu[0] - TRUE["nu"]) < 2.0


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_the_estimate_is_arch_fit(seed):
    """Same model, same backcast: arch's SLSQP and the batched BHHH reach the same maximum."""
    r = _simulate(756, seed)
    f = garch.fit_batch(r[:, None])
    _, _, bc, mean, _ = garch.prepare(r[:, None])
    e = 100.0 * (r - mean[0])
    res = arch_model(e, mean="Zero", vol="GARCH", p=1, q=1, dist="t").fit(disp="off", backcast=float(bc[0]))
    om, a, b, nu = res.params.to_numpy()
    assert f.converged[0]
    assert f.loglik[0] == pytest.approx(res.loglikelihood, abs=1e-3)  # ours is never worse by more than arch's tolerance
    assert f.loglik[0] >= res.loglikelihood - 1e-3
    assert abs(f.alpha[0] - a) < 2e-3 and abs(f.beta[0] - b) < 5e-3 and abs(f.omega[0] - om) < 5e-3
    assert abs(f.nu[0] - nu) < 0.3


def test_variance_path_is_archs_conditional_variance():
    r = _simulate(500, 5)
    _, _, bc, mean, _ = garch.prepare(r[:, None])
    e = 100.0 * (r - mean[0])
    res = arch_model(e, mean="Zero", vol="GARCH", p=1, q=1, dist="t").fit(disp="off", backcast=float(bc[0]))
    om, a, b, _ = res.params.to_numpy()
    mask = np.ones((e.size, 1), dtype=bool)
    path = garch.variance_path((e * e)[:, None], mask, om, a, b, bc[0])
    np.testing.assert_allclose(path[:-1, 0], res.conditional_volatility**2, rtol=1e-10)
    # the last row is the one-step-ahead forecast
    assert path[-1, 0] == pytest.approx(res.forecast(horizon=1, reindex=False).variance.iloc[-1, 0], rel=1e-10)


def test_a_series_gets_the_same_bits_alone_or_in_a_batch():
    cols = [_simulate(400, s) for s in (6, 7, 8)]
    batch = np.column_stack(cols)
    batch[:50, 1] = np.nan  # a late listing in the batch
    both = garch.fit_batch(batch)
    for j in range(3):
        alone = garch.fit_batch(batch[:, [j]])
        for k in ("omega", "alpha", "beta", "nu", "loglik"):
            assert getattr(alone, k)[0] == getattr(both, k)[j], (j, k)


def test_too_few_returns_is_reported_not_fitted():
    r = _simulate(300, 9)
    r[:200] = np.nan
    f = garch.fit_batch(r[:, None], min_obs=250)
    assert not f.converged[0] and np.isnan(f.alpha[0]) and f.n_obs[0] == 100


def test_missing_returns_use_the_expected_shock():
    e2 = np.array([[1.0], [4.0], [0.0]])
    mask = np.array([[True], [False], [True]])
    s = garch.variance_path(e2, mask, 0.1, 0.2, 0.7, 2.0)
    s0 = 0.1 + 0.9 * 2.0
    s1 = 0.1 + 0.2 * 1.0 + 0.7 * s0
    s2 = 0.1 + 0.9 * s1  # the missing return's shock replaced by its expectation s1
    np.testing.assert_allclose(s[:, 0], [s0, s1, s2, 0.1 + 0.2 * 0.0 + 0.7 * s2])


def test_the_recursions_have_the_same_bits_series_by_series_and_over_the_batch(monkeypatch):
    """linear_recursion runs narrow batches series by series in a plain loop and wide ones as a numpy
    step over time: the variance path, the scores and whole fits must not change by a bit between the two
    (a daily run's few refits are narrow, a range's are wide), missing returns and late listings included."""
    from trading_assets.domain import garch

    rng = np.random.default_rng(5)
    t_len, b_len = 320, 24
    r = rng.standard_t(4, (t_len, b_len)) * 0.01
    r[rng.random((t_len, b_len)) < 0.03] = np.nan  # gaps
    r[:40, :4] = np.nan  # listed late
    e2, mask, bc, _, _ = garch.prepare(r)
    om, al, be = rng.uniform(0.01, 0.1, b_len), rng.uniform(0.02, 0.2, b_len), rng.uniform(0.5, 0.79, b_len)
    theta = garch._pack(om, al, be, np.full(b_len, 6.0))
    got = {}
    for name, width in (("serial", 10**6), ("numpy", 0)):
        monkeypatch.setattr(garch, "_SERIAL_MAX", width)
        got[name] = (garch.variance_path(e2, mask, om, al, be, bc), *garch._derivatives(e2, mask, theta, bc),
                     garch.fit_batch(r, min_obs=100, max_iter=50, tol=1e-7))
    for a, b in zip(got["serial"][:-1], got["numpy"][:-1]):
        assert np.array_equal(a, b)
    fa, fb = got["serial"][-1], got["numpy"][-1]
    for k in ("omega", "alpha", "beta", "nu", "loglik", "iterations", "converged"):
        assert np.array_equal(getattr(fa, k), getattr(fb, k), equal_nan=True), k
    # and the path is the recursion of the module docstring (a missing return: its expectation)
    s = om[0] + (al[0] + be[0]) * bc[0]
    for t in range(t_len):
        x = e2[t, 0] if mask[t, 0] else s
        s = om[0] + al[0] * x + be[0] * s
    assert got["numpy"][0][-1, 0] == pytest.approx(s, rel=1e-13)


def test_a_series_gets_the_same_bits_in_a_streaming_block_of_any_width():
    """fit_batch streams series through a block of columns (a finished series' column goes to the next one): a
    series' estimate must not depend on the block's width, its column or the series around it."""
    cols = [_simulate(400, s) for s in (14, 15, 16, 17, 18)]
    batch = np.column_stack(cols)
    batch[:60, 2] = np.nan  # a late listing
    ref = [garch.fit_batch(batch[:, [j]]) for j in range(5)]
    for width in (1, 2, 3, 256):
        for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
            f = garch.fit_batch(batch[:, order], width=width)
            for pos, j in enumerate(order):
                for k in ("omega", "alpha", "beta", "nu", "loglik", "iterations", "converged"):
                    assert getattr(f, k)[pos] == getattr(ref[j], k)[0], (width, order, j, k)


def test_the_analytic_gradient_and_hessian_are_the_log_likelihoods_derivatives():
    """_derivatives' G and H (unconstrained coordinates, missing returns included) against central differences of
    the log-likelihood and of G."""
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, (400, 4)) * 0.01
    r[rng.random((400, 4)) < 0.05] = np.nan
    e2, mask, bc, _, _ = garch.prepare(r)
    theta = garch._pack(bc * 0.05, np.full(4, 0.1), np.full(4, 0.85), np.full(4, 7.0))
    ll, g, h = garch._derivatives(e2, mask, theta, bc)
    np.testing.assert_array_equal(ll, garch._loglik(e2, mask, theta, bc))
    eps = 1e-5
    for k in range(4):
        up, dn = theta.copy(), theta.copy()
        up[k] += eps
        dn[k] -= eps
        num_g = (garch._loglik(e2, mask, up, bc) - garch._loglik(e2, mask, dn, bc)) / (2 * eps)
        np.testing.assert_allclose(g[:, k], num_g, rtol=1e-6, atol=1e-6)
        num_h = (garch._derivatives(e2, mask, up, bc)[1] - garch._derivatives(e2, mask, dn, bc)[1]) / (2 * eps)
        np.testing.assert_allclose(h[:, :, k], num_h, rtol=1e-6, atol=1e-6)


def test_the_start_is_archs_grid_rule():
    """start_values: the grid point of highest Gaussian log-likelihood (variance targeting for omega), nu from the
    kurtosis there -- recomputed here by a plain loop over arch's grid."""
    r = _simulate(600, 19)
    e2, mask, bc, _, _ = garch.prepare(r[:, None])
    best = None
    for a in (0.01, 0.05, 0.1, 0.2):
        for p in (0.5, 0.7, 0.9, 0.98):
            s = garch.variance_path(e2, mask, bc[0] * (1 - p), a, p - a, bc[0])[:-1, 0]
            ll = -0.5 * np.sum(np.log(s) + e2[:, 0] / s)
            if best is None or ll > best[0]:
                z2 = e2[:, 0] / s
                best = (ll, a, p, np.mean(z2 * z2) / np.mean(z2) ** 2)
    _, a, p, k = best
    nu = max((4 * k - 6) / (k - 3) if k > 3.75 else 12.0, 4.0)
    om, al, be, nu_got, *_ = garch._unpack(garch.start_values(e2, mask, bc))
    assert al[0] == pytest.approx(a, rel=1e-12) and be[0] == pytest.approx(p - a, rel=1e-12)
    assert om[0] == pytest.approx(bc[0] * (1 - p), rel=1e-12) and nu_got[0] == pytest.approx(nu, rel=1e-12)


def test_production_settings_reach_archs_estimate():
    """At the agent's settings (tol 1e-7, max_iter 50, 756 returns) the estimate is arch's on arch-simulated series
    of ordinary, persistent and weak GARCH; a near-integrated series (arch's fit: alpha + beta = 1) stops at our
    stationarity bound P_MAX = 0.9999, a few thousandths of a log-likelihood unit below arch (measured 7e-3)."""
    from trading_assets.settings import AgentSettings

    s = AgentSettings()
    cases = [({"omega": 0.05, "alpha": 0.10, "beta": 0.85, "nu": 6.0}, 31), ({"omega": 0.02, "alpha": 0.05, "beta": 0.94, "nu": 5.0}, 33),
             ({"omega": 0.3, "alpha": 0.2, "beta": 0.5, "nu": 4.0}, 34), ({"omega": 0.01, "alpha": 0.03, "beta": 0.9699, "nu": 8.0}, 36),
             ({"omega": 0.01, "alpha": 0.12, "beta": 0.8799, "nu": 8.0}, 35)]
    r = np.column_stack([_simulate(s.garch_window, seed, p) for p, seed in cases])
    f = garch.fit_batch(r, min_obs=s.garch_min_obs, max_iter=s.garch_max_iter, tol=s.garch_tol)
    _, _, bc, mean, _ = garch.prepare(r)
    for j in range(len(cases)):
        e = 100.0 * (r[:, j] - mean[j])
        res = arch_model(e, mean="Zero", vol="GARCH", p=1, q=1, dist="t").fit(disp="off", backcast=float(bc[j]))
        om, a, b, nu = res.params.to_numpy()
        assert f.converged[j], j
        if a + b < garch.P_MAX:
            assert f.loglik[j] >= res.loglikelihood - 1e-3, j
            assert abs(f.alpha[j] - a) < 1e-3 and abs(f.beta[j] - b) < 1e-3 and abs(f.nu[j] - nu) < 0.05, j
        else:  # arch's estimate is past our bound: ours sits on it
            assert f.alpha[j] + f.beta[j] == pytest.approx(garch.P_MAX, abs=1e-6)  # approached from below (P = P_MAX sigmoid(b))
            assert f.loglik[j] >= res.loglikelihood - 2e-2 and abs(f.alpha[j] - a) < 2e-3
