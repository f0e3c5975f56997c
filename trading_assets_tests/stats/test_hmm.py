"""The HMM (domain/hmm.py): states on a simulated two-regime series, the forward filter by hand on a
3-state toy model, and the leak test (filtered probabilities at t never see data after t; hmmlearn's
smoothed ones do)."""

from __future__ import annotations

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.stats import norm

from trading_assets.domain import hmm


def _two_regimes(n: int = 1000, seed: int = 11):
    """Calm (state 0) and turbulent (state 1) markets; persistent states (stay with p = 0.98)."""
    rng = np.random.default_rng(seed)
    s = np.zeros(n, dtype=int)
    for t in range(1, n):
        s[t] = s[t - 1] if rng.random() < 0.98 else 1 - s[t - 1]
    x = np.column_stack([
        rng.normal(0.0005, np.where(s == 0, 0.007, 0.02)),
        np.where(s == 0, 0.12, 0.30) + rng.normal(0, 0.03, n),
        np.where(s == 0, 0.65, 0.40) + rng.normal(0, 0.08, n),
    ])
    return x, s


def test_two_regime_states_recovered_and_ordered_by_volatility():
    x, s = _two_regimes()
    p = hmm.fit(x, n_states=2, n_seeds=3)
    probs = hmm.forward_filter(x, p)
    state = probs.argmax(axis=1)  # 0 = risk_on (the calmer), 1 = risk_off
    accuracy = float((state == s).mean())
    assert accuracy >= 0.95, accuracy  # measured 0.99+ on this seed (filtered, not smoothed)
    assert p["vars"][0][0] < p["vars"][1][0]  # ordered by the return's variance
    # a third state is found without disturbing the order
    p3 = hmm.fit(x, n_states=3, n_seeds=3)
    v = [row[0] for row in p3["vars"]]
    assert v == sorted(v)


TOY = {  # 3 states, one observation column, already standardized (center 0, scale 1)
    "n_states": 3, "center": [0.0], "scale": [1.0],
    "startprob": [0.5, 0.3, 0.2],
    "transmat": [[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]],
    "means": [[-1.0], [0.0], [2.0]],
    "vars": [[0.25], [1.0], [4.0]],
}


def test_forward_filter_against_a_hand_computation():
    x = np.array([[0.1], [1.9], [-0.8]])
    pi, a = np.array(TOY["startprob"]), np.array(TOY["transmat"])
    mu, sd = np.array([-1.0, 0.0, 2.0]), np.sqrt([0.25, 1.0, 4.0])
    # by hand: a_0 = pi * b_0 / sum, a_t = (a_{t-1} A) * b_t / sum
    b0 = norm.pdf(0.1, mu, sd)
    a0 = pi * b0 / (pi * b0).sum()
    b1 = norm.pdf(1.9, mu, sd)
    p1 = np.array([sum(a0[i] * a[i, j] for i in range(3)) for j in range(3)])
    a1 = p1 * b1 / (p1 * b1).sum()
    b2 = norm.pdf(-0.8, mu, sd)
    p2 = np.array([sum(a1[i] * a[i, j] for i in range(3)) for j in range(3)])
    a2 = p2 * b2 / (p2 * b2).sum()
    got = hmm.forward_filter(x, TOY)
    np.testing.assert_allclose(got, np.vstack([a0, a1, a2]), rtol=1e-12)
    # a session without an observation takes the prediction step only
    gap = hmm.forward_filter(np.array([[0.1], [np.nan]]), TOY)
    np.testing.assert_allclose(gap[1], a0 @ a, rtol=1e-12)


def _hmmlearn(params: dict) -> GaussianHMM:
    m = GaussianHMM(n_components=params["n_states"], covariance_type="diag")
    m.startprob_ = np.array(params["startprob"])
    m.transmat_ = np.array(params["transmat"])
    m.means_ = np.array(params["means"])
    m.covars_ = np.array(params["vars"])
    return m


def test_filter_never_reads_after_t_while_the_smoother_does():
    x, _ = _two_regimes(300, 12)
    p = hmm.fit(x, n_states=3, n_seeds=2)
    z = (x - np.array(p["center"])) / np.array(p["scale"])
    f = hmm.forward_filter(x, p)
    t = 50 + int(np.argmin(f[50:250].max(axis=1)))  # the session where the filter is least sure: the future matters most
    changed = x.copy()
    changed[t + 1:, 0] *= -3.0  # a different future
    changed[t + 1:, 1] += 0.4
    f, g = hmm.forward_filter(x, p), hmm.forward_filter(changed, p)
    np.testing.assert_array_equal(f[: t + 1], g[: t + 1])  # nothing at or before t moved
    assert not np.allclose(f[t + 1:], g[t + 1:])
    # the filtered probability at t is the smoother's on data cut at t (its last row sees no future) ...
    model = _hmmlearn(p)
    np.testing.assert_allclose(f[t], model.predict_proba(z[: t + 1])[-1], atol=1e-9)
    # ... while hmmlearn's predict_proba on the whole sequence reads the future: it moves at t
    zc = (changed - np.array(p["center"])) / np.array(p["scale"])
    smooth_a, smooth_b = model.predict_proba(z)[t], model.predict_proba(zc)[t]
    assert np.abs(smooth_a - smooth_b).max() > 1e-6
    assert np.abs(smooth_a - f[t]).max() > 1e-6


def test_fit_is_deterministic_and_needs_enough_sessions():
    x, _ = _two_regimes(400, 13)
    assert hmm.fit(x, 3, 2) == hmm.fit(x, 3, 2)
    with pytest.raises(ValueError, match="50 complete"):
        hmm.fit(x[:40], 2, 1)


@pytest.mark.parametrize("n_states", [2, 3])
def test_baum_welch_is_hmmlearns_em_from_the_same_start(n_states):
    """gaussian_hmm (numpy) against hmmlearn's GaussianHMM.fit given the same data and the same initial
    parameters (hmmlearn only as the reference): the same log-likelihood and parameters after every number
    of iterations, to 1e-9 (the forward-backward's doubling scan and hmmlearn's sequential C loop round differently)."""
    import warnings

    from trading_assets.domain import gaussian_hmm

    x, _ = _two_regimes(600, 21)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    for seed in (0, 1):
        init = gaussian_hmm.init_params(z, n_states, seed)
        for n_iter in (1, 7):
            ours = gaussian_hmm.baum_welch(z, init, n_iter=n_iter, tol=-np.inf)
            ref = GaussianHMM(n_components=n_states, covariance_type="diag", n_iter=n_iter, tol=-np.inf, init_params="", params="stmc")
            ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = init["startprob"], init["transmat"], init["means"], init["vars"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref.fit(z)
            assert ours["loglik"] == pytest.approx(ref.score(z), abs=1e-9)
            np.testing.assert_allclose(ours["startprob"], ref.startprob_, atol=1e-9)
            np.testing.assert_allclose(ours["transmat"], ref.transmat_, atol=1e-9)
            np.testing.assert_allclose(ours["means"], ref.means_, atol=1e-9)
            np.testing.assert_allclose(ours["vars"], np.array([np.diag(c) for c in ref.covars_]), atol=1e-9)
        # converged by the same rule (the gain of an iteration below tol) after the same number of iterations
        ours = gaussian_hmm.baum_welch(z, init, n_iter=200, tol=1e-4)
        ref = GaussianHMM(n_components=n_states, covariance_type="diag", n_iter=200, tol=1e-4, init_params="", params="stmc")
        ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = init["startprob"], init["transmat"], init["means"], init["vars"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.fit(z)
        assert ours["converged"] and ours["iterations"] == ref.monitor_.iter
        assert ours["loglik"] == pytest.approx(ref.score(z), abs=1e-9)


def test_forward_backward_is_hmmlearns_smoother_and_score():
    from trading_assets.domain import gaussian_hmm

    x, _ = _two_regimes(300, 22)
    p = hmm.fit(x, n_states=3, n_seeds=2)
    z = (x - np.array(p["center"])) / np.array(p["scale"])
    logb = gaussian_hmm.log_emission(z, np.array(p["means"]), np.array(p["vars"]))
    ll, gamma, _ = gaussian_hmm.forward_backward(logb, np.array(p["startprob"]), np.array(p["transmat"]))
    model = _hmmlearn(p)
    assert ll == pytest.approx(model.score(z), abs=1e-9)
    np.testing.assert_allclose(gamma, model.predict_proba(z), atol=1e-9)


def test_the_daily_path_imports_neither_hmmlearn_nor_sklearn():
    """A refit day fits the HMM: the process must not import hmmlearn or scikit-learn (~1.3 s of imports)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from trading_assets.domain import hmm\n"
        "from trading_assets.domain.agents import registry\n"
        "rng = np.random.default_rng(0)\n"
        "x = np.column_stack([rng.normal(0, 0.01, 300), rng.uniform(0.1, 0.3, 300), rng.uniform(0.3, 0.7, 300)])\n"
        "p = hmm.fit(x, 3, 3)\n"
        "hmm.forward_filter(x, p)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('hmmlearn', 'sklearn')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_forward_backward_holds_paths_far_below_the_likeliest():
    """A start in state 0 that is absorbing while the data sit at state 1's mean: the only path is ~e^-3 a session
    less likely than state 1's, beyond one scale per doubling product; the log-likelihood is still the logsumexp
    forward recursion's and the posteriors finite (the sequential recursions take over)."""
    from scipy.special import logsumexp

    from trading_assets.domain import gaussian_hmm

    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 1)) * 0.3 + 2.0
    logb = gaussian_hmm.log_emission(z, np.array([[0.0], [2.0]]), np.array([[1.0], [0.1]]))
    for pi, a in ((np.array([1.0, 0.0]), np.array([[1.0, 0.0], [0.01, 0.99]])),
                  (np.array([1.0, 0.0]), np.array([[0.999, 0.001], [0.01, 0.99]]))):
        with np.errstate(divide="ignore"):
            la, l_a = np.log(pi) + logb[0], np.log(a)
        for t in range(1, len(logb)):
            la = logsumexp(la[:, None] + l_a, axis=0) + logb[t]
        ll, gamma, xi = gaussian_hmm.forward_backward(logb, pi, a)
        assert ll == pytest.approx(logsumexp(la), rel=1e-12)
        assert np.isfinite(gamma).all() and np.isfinite(xi).all()
        np.testing.assert_allclose(gamma.sum(axis=1), 1.0)
    # where both hold, the fallback's recursions in logs are the doubling scan's figures
    x, _ = _two_regimes(300, 23)
    p = hmm.fit(x, n_states=3, n_seeds=1)
    zz = (x - np.array(p["center"])) / np.array(p["scale"])
    lb = gaussian_hmm.log_emission(zz, np.array(p["means"]), np.array(p["vars"]))
    args = (lb, np.array(p["startprob"]), np.array(p["transmat"]))
    for got, want in zip(gaussian_hmm._forward_backward_log(*args), gaussian_hmm._forward_backward_scan(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_a_degenerate_seed_stops_at_once_and_is_dropped():
    # a state whose mean is not a number (0/0 after its posterior underflowed): the likelihood is NaN from then on,
    # so EM stops at the first iteration (it ran n_iter iterations through the log-space fallback before) and the
    # seed carries a NaN log-likelihood, which hmm.fit drops
    from trading_assets.domain import gaussian_hmm

    z = np.random.default_rng(0).normal(size=(300, 3))
    init = gaussian_hmm.init_params(z, 3, 0, order_column=1)
    init = {**init, "means": np.asarray(init["means"], dtype=float).copy()}
    init["means"][0] = np.nan
    res = gaussian_hmm.baum_welch(z, init, n_iter=100)
    assert res["iterations"] == 1 and not res["converged"] and np.isnan(res["loglik"])
