"""Baum-Welch EM for a Gaussian hidden Markov model with diagonal covariances (pure numpy).

Model (K states, observations z_t in R^D, t = 0..T-1, all complete):
    P(state_0 = k) = pi_k,   P(state_t = j | state_{t-1} = i) = A_ij,   z_t | state_t = k ~ N(mu_k, diag(var_k)).
One EM iteration from (pi, A, mu, var), with b_t(k) = N(z_t; mu_k, diag var_k):
  E-step (forward-backward; hmm.forward_filter is the forward half alone, and the only part the agent serves):
    alpha_t = P(z_0..z_t, state_t),  beta_t = P(z_{t+1}..z_{T-1} | state_t),  L = sum_k alpha_{T-1}(k)
    gamma_t(k) = alpha_t(k) beta_t(k) / L,   xi_t(i, j) = alpha_{t-1}(i) A_ij b_t(j) beta_t(j) / L
  M-step (hmmlearn's GaussianHMM with its default priors: covars_prior 0.01, covars_weight 1, means_weight 0):
    pi = gamma_0,   A_ij = sum_t xi_t(i, j) / sum_j' sum_t xi_t(i, j')
    mu_k = sum_t gamma_t(k) z_t / G_k,       G_k = sum_t gamma_t(k)
    var_k = (0.01 + sum_t gamma_t(k) z_t^2 - 2 mu_k sum_t gamma_t(k) z_t + mu_k^2 G_k) / max(G_k, 1e-5)
Iterations stop when the log-likelihood log L (at the iteration's starting parameters) rose by less than `tol`
since the previous iteration (converged), or after n_iter iterations (not converged); the returned log-likelihood
is the final parameters' (one more forward pass), as hmmlearn's `score`. Given the same initial parameters this
is hmmlearn's `fit` (tested against it); hmmlearn itself is not imported here (its import, with scikit-learn's,
took ~1.3 s of a refit day).

Forward-backward without a loop over time: alpha_t = (pi o b_0)' M_1 ... M_t and beta_t = M_{t+1} ... M_{T-1} 1
with M_t = A diag(b_t), so both are prefix / suffix products of K x K matrices, computed by doubling
(log2 T rounds of batched 3 x 3 products, each product rescaled by its largest entry and the log of the
scale carried). b_t is evaluated as exp(log b_t - max_k log b_t) (the max added back to log L). When a row of a
product falls out of one scale's range (its entries ~e^-750 below the product's largest: a start and an absorbing
state the data make unlikely), the result is not finite and the sequential recursions in logs take over.

Initial parameters (init_params; deterministic, documented, no scikit-learn): for seed s,
    means: s = 0 -> the means of the K equal-count groups of sessions sorted by `order_column` (the calm ... the
           turbulent sessions); s >= 1 -> K distinct sessions drawn by numpy's default_rng(s)
    vars:  every state the column variances of z + 1e-3 (hmmlearn's rule: np.cov's diagonal + min_covar)
    pi = 1/K each,  A = 0.9 on the diagonal, 0.1 / (K - 1) elsewhere (persistent regimes).
"""

from __future__ import annotations

import math

import numpy as np

COVARS_PRIOR = 1e-2  # hmmlearn's GaussianHMM default covars_prior (covars_weight 1: no extra denominator term)
MIN_COVAR = 1e-3  # hmmlearn's default min_covar, added to the initial variances


def init_params(z: np.ndarray, n_states: int, seed: int, order_column: int = 1) -> dict:
    """The initial (startprob, transmat, means, vars) for `seed` (module docstring)."""
    t_len, _ = z.shape
    if seed == 0:
        groups = np.array_split(np.argsort(z[:, order_column], kind="stable"), n_states)
        means = np.array([z[g].mean(axis=0) for g in groups])
    else:
        means = z[np.sort(np.random.default_rng(seed).choice(t_len, n_states, replace=False))]
    var = z.var(axis=0, ddof=1) + MIN_COVAR
    off = 0.1 / (n_states - 1) if n_states > 1 else 0.0
    transmat = np.full((n_states, n_states), off)
    np.fill_diagonal(transmat, 1.0 - off * (n_states - 1))
    return {"startprob": np.full(n_states, 1.0 / n_states), "transmat": transmat, "means": means.copy(),
            "vars": np.tile(var, (n_states, 1))}


def log_emission(z: np.ndarray, means: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log N(z_t; mu_k, diag var_k), (T, K)."""
    d = z[:, None, :] - means[None, :, :]
    return -0.5 * (np.log(2.0 * math.pi * var).sum(axis=1)[None, :] + (d * d / var[None]).sum(axis=2))


def _scan(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive products along axis 1 of a (S, N, K, K) stack of sequences by doubling: P_i = m_0 ... m_i, returned
    as (P / s_i, log s_i) with each P rescaled by its largest entry."""
    p = m.copy()
    s_len, n = m.shape[:2]
    logs = np.zeros((s_len, n))
    d = 1
    while d < n:
        prod = p[:, :-d] @ p[:, d:]  # P_i <- (..m_{i-d}) @ (m_{i-d+1}..m_i): the earlier block on the left
        sc = prod.reshape(s_len, n - d, -1).max(axis=2)
        logs[:, d:] = logs[:, :-d] + logs[:, d:] + np.log(sc)
        p[:, d:] = prod / sc[:, :, None, None]
        d *= 2
    return p, logs


def _forward_backward_log(logb: np.ndarray, startprob: np.ndarray, transmat: np.ndarray):
    """The same quantities by the sequential recursions in logs (a loop over time):
        la_0 = log pi + log b_0,   la_t = logsumexp_i(la_{t-1}(i) + log A_i.) + log b_t,
        lb_{T-1} = 0,              lb_t = logsumexp_j(log A_.j + log b_{t+1}(j) + lb_{t+1}(j)),
        log L = logsumexp(la_{T-1}),  gamma_t = exp(la_t + lb_t - log L),
        xi_t(i, j) = exp(la_{t-1}(i) + log A_ij + log b_t(j) + lb_t(j) - log L).
    The fallback where one scale per doubling product cannot hold a row's range (a path the data make ~e^-750 less
    likely than another's, e.g. a start and an absorbing state on it)."""
    from scipy.special import logsumexp

    t_len, k = logb.shape
    with np.errstate(divide="ignore"):
        l_a, l_pi = np.log(transmat), np.log(startprob)
    la = np.empty((t_len, k))
    lb = np.zeros((t_len, k))
    la[0] = l_pi + logb[0]
    for t in range(1, t_len):
        la[t] = logsumexp(la[t - 1][:, None] + l_a, axis=0) + logb[t]
    for t in range(t_len - 2, -1, -1):
        lb[t] = logsumexp(l_a + (logb[t + 1] + lb[t + 1])[None, :], axis=1)
    log_l = float(logsumexp(la[-1]))
    gamma = np.exp(la + lb - log_l)
    gamma /= gamma.sum(axis=1, keepdims=True)
    xi = np.exp(la[:-1, :, None] + l_a[None] + (logb[1:] + lb[1:])[:, None, :] - log_l)
    xi /= xi.sum(axis=(1, 2), keepdims=True)
    return log_l, gamma, xi.sum(axis=0)


def forward_backward(logb: np.ndarray, startprob: np.ndarray, transmat: np.ndarray):
    """(log L, gamma (T, K), sum_t xi_t (K, K)) for the log emissions logb (T, K) (module docstring); the doubling
    scan, or the sequential recursions in logs (_forward_backward_log) when a scan's row fell below the scale's range."""
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        out = _forward_backward_scan(logb, startprob, transmat)
    if np.isfinite(out[0]) and np.isfinite(out[1]).all() and np.isfinite(out[2]).all():
        return out
    with np.errstate(under="ignore"):
        return _forward_backward_log(logb, startprob, transmat)


def _forward_backward_scan(logb: np.ndarray, startprob: np.ndarray, transmat: np.ndarray):
    t_len, k = logb.shape
    mx = logb.max(axis=1)
    b = np.exp(logb - mx[:, None])
    a0 = startprob * b[0]
    if t_len == 1:
        total = a0.sum()
        return float(np.log(total) + mx.sum()), (a0 / total)[None], np.zeros((k, k))
    m = transmat[None] * b[1:, None, :]  # M_t = A diag(b_t), t = 1..T-1
    # one doubling scan for both: M_1..M_t, and (M_t..M_{T-1})' = M_{T-1}'..M_t' as the prefix of the reversed transposes
    p, logs = _scan(np.stack([m, m[::-1].transpose(0, 2, 1)]))
    pf, lf = p[0], logs[0]
    pb = p[1][::-1].transpose(0, 2, 1)   # M_t..M_{T-1} (rescaled)
    alpha = np.empty((t_len, k))
    alpha[0] = a0
    alpha[1:] = a0 @ pf                  # (pi o b_0)' M_1..M_t, up to exp(lf)
    la = np.zeros(t_len)
    la[1:] = lf
    s = alpha.sum(axis=1)
    alpha /= s[:, None]
    la += np.log(s)                      # log P(z_0..z_t) - sum of the max terms
    beta = np.ones((t_len, k))
    beta[:-1] = pb.sum(axis=2)           # beta_t = M_{t+1}..M_{T-1} 1, up to a constant (gamma, xi are normalized per t)
    beta /= beta.max(axis=1)[:, None]
    log_l = la[-1]                       # log of sum_k alpha_{T-1}(k) (beta_{T-1} = 1), without the max terms
    gamma = alpha * beta
    gamma /= gamma.sum(axis=1, keepdims=True)
    # xi_t(i, j) = alpha_{t-1}(i) A_ij b_t(j) beta_t(j) / L, normalized per t (the scales cancel within t)
    xi = alpha[:-1, :, None] * m * beta[1:, None, :]
    xi /= xi.sum(axis=(1, 2), keepdims=True)
    return float(log_l + mx.sum()), gamma, xi.sum(axis=0)


def loglik(z: np.ndarray, params: dict) -> float:
    """log P(z_0..z_{T-1}) under params (the forward pass's normalizer)."""
    logb = log_emission(z, np.asarray(params["means"]), np.asarray(params["vars"]))
    return forward_backward(logb, np.asarray(params["startprob"]), np.asarray(params["transmat"]))[0]


def baum_welch(z: np.ndarray, init: dict, n_iter: int = 100, tol: float = 1e-4) -> dict:
    """EM from `init` (module docstring): the final startprob, transmat, means, vars, loglik (at the final
    parameters), converged, iterations."""
    pi, a = np.asarray(init["startprob"], dtype=float), np.asarray(init["transmat"], dtype=float)
    mu, var = np.asarray(init["means"], dtype=float), np.asarray(init["vars"], dtype=float)
    prev = None
    converged = False
    it = 0
    for it in range(1, n_iter + 1):
        ll, gamma, xi = forward_backward(log_emission(z, mu, var), pi, a)
        if not np.isfinite(ll):  # a degenerate state (0/0 mean): no later step can recover; the caller drops the seed
            mu = np.full_like(mu, np.nan)
            break
        pi = gamma[0] / gamma[0].sum()
        a = xi / xi.sum(axis=1, keepdims=True)
        g = gamma.sum(axis=0)[:, None]
        obs = gamma.T @ z
        obs2 = gamma.T @ (z * z)
        mu = obs / g
        var = (COVARS_PRIOR + obs2 - 2.0 * mu * obs + mu * mu * g) / np.maximum(g, 1e-5)
        if prev is not None and ll - prev < tol:
            converged = True
            break
        prev = ll
    final = {"startprob": pi, "transmat": a, "means": mu, "vars": var}
    return {**final, "loglik": loglik(z, final), "converged": converged, "iterations": it}
