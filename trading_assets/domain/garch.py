"""GARCH(1,1) with Student-t innovations: a batched maximum-likelihood fit and the variance filter (pure numpy/scipy).

Model (per series, zero mean on demeaned percent log returns e_t = 100 * (r_t - mean(r)) over the fit
window, t = 0..T-1):
    e_t = sqrt(s_t) * z_t,   z_t ~ standardized Student-t(nu) (unit variance)
    s_0 = omega + (alpha + beta) * bc                       (bc = backcast = mean of e_t^2 over the window)
    s_t = omega + alpha * e_{t-1}^2 + beta * s_{t-1}        (t >= 1)
A missing return (a series listed late, a gap) contributes no likelihood and the recursion uses its
expectation instead of the shock: s_t = omega + (alpha + beta) * s_{t-1}.
Log-likelihood of one observation (q_t = e_t^2 / (s_t (nu - 2))):
    l_t = lgamma((nu + 1) / 2) - lgamma(nu / 2) - 0.5 log(pi (nu - 2)) - 0.5 log s_t - (nu + 1) / 2 * log(1 + q_t)
This is exactly arch's `arch_model(e, mean="Zero", vol="GARCH", p=1, q=1, dist="t")` with
`fit(backcast=bc)` (tested against it).

Estimation: many independent series are fitted in lockstep (one numpy pass over time serves every
series of the batch), each by BHHH ascent in unconstrained coordinates
    omega = exp(a),  P = alpha + beta = P_MAX * sigmoid(b),  alpha = P * sigmoid(c),  beta = P * (1 - sigmoid(c)),
    nu = NU_MIN + exp(d)
so every iterate is stationary with omega > 0 and nu > NU_MIN. BHHH: the ascent direction is
(sum_t g_t g_t' + lambda I)^{-1} sum_t g_t with g_t the per-observation score (analytic, by the
derivative recursion ds_t/dtheta = (1, x_{t-1}, s_{t-1}) + c_t ds_{t-1}/dtheta, c_t = beta, or alpha +
beta after a missing return), with step halving until the likelihood rises. A series has converged
when a full iteration raises its mean log-likelihood by less than `tol`; a series still moving after
`max_iter` iterations, or with too few returns, is reported as not converged (the caller falls back).
The recursions (variance and its derivatives) are linear_recursion's y_{t+1} = u_t + c_t y_t: a numpy
step over time for wide batches, a plain loop series by series for narrow ones (a daily run's few
refits), with the same bits either way. Deterministic: fixed starting values (alpha 0.08, beta 0.90, nu 8, omega = bc * (1 - alpha - beta)),
no randomness, the same result for a series whatever batch it is fitted in (every operation is
elementwise across series, except the 4x4 solves, done per series).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

P_MAX = 0.9999  # alpha + beta < 1 (covariance stationary)
NU_MIN = 2.05  # nu > 2: finite variance (arch's bound is 2.05 too)
_START = (0.08, 0.90, 8.0)  # alpha, beta, nu
_SERIAL_MAX = 32  # series in a batch up to which the recursions run series by series (linear_recursion)


@dataclass(frozen=True)
class GarchFit:
    """Per-series results of `fit_batch` (arrays of length B)."""

    omega: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    nu: np.ndarray
    loglik: np.ndarray  # total log-likelihood at the estimate
    converged: np.ndarray  # bool
    iterations: np.ndarray  # int
    n_obs: np.ndarray  # valid returns used
    backcast: np.ndarray


def _colsum(x: np.ndarray) -> np.ndarray:
    """Column sums of a (T, B) C-ordered array: numpy adds the rows one after the other into the B sums,
    so a column's sum has the same bits whatever the other columns of the batch. A single column would
    be summed pairwise instead (contiguous): it is summed as one of two identical columns."""
    if x.shape[1] == 1:
        return np.ascontiguousarray(np.broadcast_to(x, (x.shape[0], 2))).sum(axis=0)[:1]
    return x.sum(axis=0)


def _colsum_prod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """_colsum(x * y) without the product array: einsum adds the products of a column one row after the
    other, as _colsum does (the same bits, tested), a single column again summed as one of two."""
    if x.shape[1] == 1:
        x, y = (np.ascontiguousarray(np.broadcast_to(a, (a.shape[0], 2))) for a in (x, y))
        return np.einsum("tb,tb->b", x, y)[:1]
    return np.einsum("tb,tb->b", x, y)


def _unpack(theta: np.ndarray):
    a, b, c, d = theta
    omega = np.exp(a)
    sb = special.expit(b)
    sc = special.expit(c)
    p = P_MAX * sb
    alpha, beta = p * sc, p * (1.0 - sc)
    nu = NU_MIN + np.exp(d)
    return omega, alpha, beta, nu, p, sb, sc


def _pack(omega, alpha, beta, nu) -> np.ndarray:
    p = alpha + beta
    return np.stack([np.log(omega), special.logit(p / P_MAX), special.logit(alpha / p), np.log(nu - NU_MIN)])


def linear_recursion(u: np.ndarray, c: np.ndarray, y0: np.ndarray) -> np.ndarray:
    """y_0 = y0, y_{t+1} = u_t + c_t y_t for t = 0..T-1. u: (T, B), or (K, T, B) for K recursions sharing c;
    c: (T, B); y0: (B,) or (K, B) -> (T + 1, B) or (K, T + 1, B). Two exact evaluations of the same arithmetic,
    chosen by the batch width (neither changes a bit: each step is one product and one sum, in IEEE double):
    - wide batches (B > _SERIAL_MAX): a numpy loop over time, two in-place operations a session over the batch;
    - narrow ones (a daily run's few refits, a lockstep batch's last stragglers): series by series in a plain
      Python loop over floats (numpy's per-call overhead, ~1 us an operation, would cost more than the work).
    A series' path therefore has the same bits whatever batch it is computed in (tested)."""
    many = u.ndim == 3
    u3 = u if many else u[None]
    k_len, t_len, b_len = u3.shape
    out = np.empty((k_len, t_len + 1, b_len))
    out[:, 0] = y0
    if b_len > _SERIAL_MAX:
        for t in range(t_len):
            np.multiply(c[t], out[:, t], out=out[:, t + 1])
            np.add(out[:, t + 1], u3[:, t], out=out[:, t + 1])
        return out if many else out[0]
    ct = c.T.tolist()  # (B, T) Python floats
    for k in range(k_len):
        uk = u3[k].T.tolist()
        for j in range(b_len):
            y = float(out[k, 0, j])
            cj, ukj = ct[j], uk[j]
            path = [0.0] * t_len
            for t in range(t_len):
                y = cj[t] * y + ukj[t]
                path[t] = y
            out[k, 1:, j] = path
    return out if many else out[0]


def variance_path(e2: np.ndarray, mask: np.ndarray, omega, alpha, beta, backcast) -> np.ndarray:
    """s_t for t = 0..T (T + 1 rows: the last is the one-step-ahead forecast after the last return).
    e2, mask: (T, B); parameters: (B,) arrays or scalars. The recursion of the module docstring, written
    as s_{t+1} = u_t + c_t s_t with u_t = omega + alpha e_t^2, c_t = beta (omega and alpha + beta after a
    missing return): linear_recursion."""
    if np.ndim(e2) == 1:  # one series
        return variance_path(np.asarray(e2)[:, None], np.asarray(mask)[:, None], omega, alpha, beta, backcast)[:, 0]
    u, c = _affine(e2, mask, omega, alpha, beta)
    s0 = np.broadcast_to(omega + (alpha + beta) * backcast, e2.shape[1:])
    return linear_recursion(u, c, s0)


def _affine(e2, mask, omega, alpha, beta):
    """(u, c) of the variance recursion s_{t+1} = u_t + c_t s_t (variance_path), as (T, B) arrays."""
    u = omega + alpha * np.where(mask, e2, 0.0)
    c = np.where(mask, beta, alpha + beta)
    return np.broadcast_to(u, e2.shape), np.ascontiguousarray(np.broadcast_to(c, e2.shape))


def _t_const(nu):
    return special.gammaln((nu + 1.0) / 2.0) - special.gammaln(nu / 2.0) - 0.5 * np.log(np.pi * (nu - 2.0))


def _loglik(e2, mask, theta, backcast) -> np.ndarray:
    omega, alpha, beta, nu, *_ = _unpack(theta)
    s = variance_path(e2, mask, omega, alpha, beta, backcast)[:-1]
    q = e2 / (s * (nu - 2.0))
    lt = _t_const(nu) - 0.5 * np.log(s) - 0.5 * (nu + 1.0) * np.log1p(q)
    return _colsum(np.where(mask, lt, 0.0))


def _scores(e2, mask, theta, backcast, with_loglik: bool = True):
    """(total log-likelihood (B,), gradient (B, 4) and BHHH matrix sum_t g_t g_t' (B, 4, 4)) in the
    unconstrained coordinates: the per-observation scores are formed in (omega, alpha, beta, nu) and the
    sums transformed once per series by the Jacobian J of (omega, alpha, beta, nu) wrt (a, b, c, d):
    G = J' sum_t v_t, H = J' (sum_t v_t v_t') J."""
    omega, alpha, beta, nu, p, sb, sc = _unpack(theta)
    t_len, b_len = e2.shape
    s_all = variance_path(e2, mask, omega, alpha, beta, backcast)[:-1]  # s_t, t = 0..T-1
    # ds_t/d(omega, alpha, beta): d_{t+1} = (1, x_t, s_t) + c_t d_t, d_0 = (1, bc, bc), x_t = e_t^2 (s_t if missing);
    # the three recursions share c_t and run in one (3, B) in-place step a session
    x = np.where(mask, e2, s_all)
    c = np.where(mask, beta, alpha + beta)
    v = np.empty((3, t_len - 1, b_len))  # K-first: each recursion's inputs and outputs are contiguous (T, B) blocks
    v[0] = 1.0
    v[1] = x[:-1]
    v[2] = s_all[:-1]
    d = linear_recursion(v, c[:-1], np.stack([np.ones(b_len), backcast, backcast]))  # (3, T, B)
    nu2 = nu - 2.0
    q = e2 / (s_all * nu2)
    l1q = np.log1p(q)
    # the log-likelihood at theta (fit_batch has it from the line search after the first iteration)
    ll = _colsum(np.where(mask, _t_const(nu) - 0.5 * np.log(s_all) - 0.5 * (nu + 1.0) * l1q, 0.0)) if with_loglik else None
    r = q / (1.0 + q)
    dl_ds = np.where(mask, (-0.5 + 0.5 * (nu + 1.0) * r) / s_all, 0.0)
    c_nu = 0.5 * special.digamma((nu + 1.0) / 2.0) - 0.5 * special.digamma(nu / 2.0) - 0.5 / nu2
    v = (dl_ds * d[0], dl_ds * d[1], dl_ds * d[2],
         np.where(mask, c_nu - 0.5 * l1q + 0.5 * (nu + 1.0) * r / nu2, 0.0))
    g_orig = np.stack([_colsum(vi) for vi in v], axis=1)  # (B, 4)
    h_orig = np.empty((b_len, 4, 4))
    for i in range(4):
        for j in range(i, 4):
            h_orig[:, i, j] = h_orig[:, j, i] = _colsum_prod(v[i], v[j])
    jac = np.zeros((b_len, 4, 4))  # d(omega, alpha, beta, nu) / d(a, b, c, d)
    dp_db = p * (1.0 - sb)
    dsc_dc = sc * (1.0 - sc)
    jac[:, 0, 0] = omega
    jac[:, 1, 1], jac[:, 1, 2] = sc * dp_db, p * dsc_dc
    jac[:, 2, 1], jac[:, 2, 2] = (1.0 - sc) * dp_db, -p * dsc_dc
    jac[:, 3, 3] = nu - NU_MIN
    jt = jac.transpose(0, 2, 1)
    grad = (jt @ g_orig[..., None])[..., 0]
    hess = jt @ h_orig @ jac
    return ll, grad, hess


def prepare(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(e2, mask, backcast, mean, n_obs) from a (T, B) matrix of decimal log returns (NaN = missing):
    e = 100 * (r - mean of the valid r), e2 = e^2 (0 where missing), backcast = mean valid e^2."""
    r = np.asarray(returns, dtype=float)
    mask = np.isfinite(r)
    n = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, _colsum(np.where(mask, r, 0.0)) / np.maximum(n, 1), 0.0)
        e = np.where(mask, 100.0 * (r - mean), 0.0)
        e2 = e * e
        bc = np.where(n > 0, _colsum(e2) / np.maximum(n, 1), 1.0)
    return e2, mask, np.maximum(bc, 1e-12), mean, n


def fit_batch(returns: np.ndarray, min_obs: int = 250, max_iter: int = 200, tol: float = 1e-9,
              start: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None) -> GarchFit:
    """Fit every column of `returns` ((T, B) decimal log returns, NaN = missing); see the module docstring.
    start: optional (omega, alpha, beta, nu) per column to start from (NaN: the fixed start)."""
    e2, mask, bc, _, n_obs = prepare(returns)
    b_len = e2.shape[1]
    a0, b0, nu0 = _START
    theta = _pack(bc * (1.0 - a0 - b0), np.full(b_len, a0), np.full(b_len, b0), np.full(b_len, nu0))
    if start is not None:
        om, al, be, nu = (np.asarray(v, dtype=float) for v in start)
        good = np.isfinite(om) & np.isfinite(al) & np.isfinite(be) & np.isfinite(nu) & (om > 0) & (al > 0) & (be > 0) \
            & (al + be < P_MAX) & (nu > NU_MIN)
        if good.any():
            theta[:, good] = _pack(om[good], al[good], be[good], nu[good])
    usable = (n_obs >= max(min_obs, 10)) & (bc > 1e-10)
    done = ~usable
    converged = np.zeros(b_len, dtype=bool)
    iters = np.zeros(b_len, dtype=int)
    ll = np.full(b_len, -np.inf)
    nn = np.maximum(n_obs, 1)
    if usable.any():
        idx = np.flatnonzero(usable)
        sub_e2, sub_m, sub_bc, sub_theta, sub_n = e2[:, idx], mask[:, idx], bc[idx], theta[:, idx], nn[idx]
        sub_done = np.zeros(idx.size, dtype=bool)
        sub_conv = np.zeros(idx.size, dtype=bool)
        sub_it = np.zeros(idx.size, dtype=int)
        cur = None
        for it in range(max_iter):
            act = np.flatnonzero(~sub_done)
            if act.size == 0:
                break
            e2a, ma, bca, tha = sub_e2[:, act], sub_m[:, act], sub_bc[act], sub_theta[:, act]
            if cur is None:
                lla, grad, hess = _scores(e2a, ma, tha, bca)
                cur = np.full(idx.size, -np.inf)
                cur[act] = lla
            else:  # theta is the last line search's accepted point: its log-likelihood is cur (the same bits)
                _, grad, hess = _scores(e2a, ma, tha, bca, with_loglik=False)
                lla = cur[act]
            hess = hess + 1e-8 * np.eye(4)
            step = np.linalg.solve(hess, grad[..., None])[..., 0].T  # (4, A)
            lam = np.ones(act.size)
            new_ll = np.full(act.size, -np.inf)
            new_theta = tha.copy()
            pending = np.ones(act.size, dtype=bool)
            for _ in range(30):
                if not pending.any():
                    break
                pj = np.flatnonzero(pending)
                cand = tha[:, pj] + lam[pj] * step[:, pj]
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    cl = _loglik(e2a[:, pj], ma[:, pj], cand, bca[pj])
                ok = np.isfinite(cl) & (cl >= lla[pj])
                hit = pj[ok]
                new_ll[hit] = cl[ok]
                new_theta[:, hit] = cand[:, ok]
                pending[hit] = False
                lam[pj[~ok]] *= 0.5
            # no improvement found: the current point is a maximum along the BHHH direction
            stuck = pending
            new_ll[stuck] = lla[stuck]
            gain = (new_ll - lla) / sub_n[act]
            sub_theta[:, act] = new_theta
            cur[act] = new_ll
            sub_it[act] = it + 1
            fin = (gain < tol) | stuck
            sub_conv[act[fin]] = True
            sub_done[act[fin]] = True
        theta[:, idx] = sub_theta
        converged[idx] = sub_conv
        iters[idx] = sub_it
        ll[idx] = cur if cur is not None else -np.inf
    omega, alpha, beta, nu, *_ = _unpack(theta)
    nan = np.where(usable, 1.0, np.nan)
    return GarchFit(omega=omega * nan, alpha=alpha * nan, beta=beta * nan, nu=nu * nan, loglik=np.where(usable, ll, np.nan),
                    converged=converged & usable, iterations=iters, n_obs=n_obs, backcast=bc)
