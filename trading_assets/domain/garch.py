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

Estimation: many independent series are fitted together (one numpy pass over time serves every series of
a block), each by Newton ascent in unconstrained coordinates
    omega = exp(a),  P = alpha + beta = P_MAX * sigmoid(b),  alpha = P * sigmoid(c),  beta = P * (1 - sigmoid(c)),
    nu = NU_MIN + exp(d)
so every iterate is stationary with omega > 0 and nu > NU_MIN.
- Start (start_values): arch's own rule, from the window's data only -- the best Gaussian log-likelihood over the
  grid alpha in {0.01, 0.05, 0.1, 0.2} x alpha + beta in {0.5, 0.7, 0.9, 0.98} with omega = bc (1 - alpha - beta),
  nu from the kurtosis of the standardized returns there (no warm start from a previous fit: a fit depends on its
  window only, so a session alone equals the session inside a range).
- Step: the exact gradient G and Hessian H of the log-likelihood (analytic, _derivatives: the variance recursion's
  first and second derivatives run as linear recursions sharing c_t), the direction M^{-1} G with M = -H made
  positive definite through its eigenvalues (|lambda|, floored; _newton_step): Newton's step where the
  log-likelihood is concave; backtracking (the maximum of the quadratic through f(0), f'(0), f(lam), kept in
  [lam / 10, lam / 2]) until the log-likelihood does not fall.
- Convergence: where the log-likelihood is concave and the full Newton step's predicted gain, half the Newton
  decrement G' M^{-1} G, is below `tol` per return (the estimate is then within ~tol x n of the local maximum in
  log-likelihood: Newton converges quadratically there); or when the accepted step raised the log-likelihood by
  less than `tol` per return (a maximum on the boundary -- alpha or beta -> 0, nu -> infinity -- is at infinity
  in u, where no Newton point exists); or when no step down to 1e-9 of the full one raises it (a maximum to
  rounding). A series still moving after `max_iter` iterations, or with too few returns, is reported as not
  converged (the caller falls back).
- Where it differs from arch's fit (measured at the agent's settings): the remaining gap "~tol x n" holds where the
  log-likelihood is locally quadratic; on the flat ridge alpha ~ 0 (beta then barely moves the variance path) the
  decrement can be tiny with beta far from the ridge's best (e.g. 0.61 vs 0.95, 0.01-0.03 log-likelihood units
  below); a near-integrated series stops at P_MAX = 0.9999 where arch reaches alpha + beta = 1 (1e-3 - 7e-3 below);
  and a series can reach another local maximum than arch's SLSQP from the same grid start (3 of 300 real windows
  by more than 0.05; the former BHHH fit did so more often).
- Scheduling (fit_batch): the series stream through a block of _WIDTH columns; a series leaves when done and the
  next one takes its column, so no block waits on its slowest series.
The recursions (variance and its derivatives) are linear_recursion's y_{t+1} = u_t + c_t y_t: a numpy step over
time for wide batches, a plain loop series by series for narrow ones (a daily run's few refits, the last series
of a stream), with the same bits either way. Deterministic: no randomness, and the same bits for a series
whatever block, position or company it is fitted in (every operation is elementwise across series, column sums
add rows in order, the 4 x 4 algebra is per series).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

P_MAX = 0.9999  # alpha + beta < 1 (covariance stationary)
NU_MIN = 2.05  # nu > 2: finite variance (arch's bound is 2.05 too)
_GRID_ALPHA = (0.01, 0.05, 0.1, 0.2)  # the start's grid: arch's GARCH.starting_values (alpha x persistence)
_GRID_PERSISTENCE = (0.5, 0.7, 0.9, 0.98)
_GRID_GROUP = 4  # grid points whose variance paths run side by side in one recursion
_WIDTH = 256  # columns of fit_batch's block (narrower blocks keep the (T, width) temporaries in cache)
_SERIAL_MAX = 32  # recursions x series up to which linear_recursion runs series by series (a plain float loop)


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
    chosen by the width K x B (neither changes a bit: each step is one product and one sum, in IEEE double):
    - wide ones (K x B > _SERIAL_MAX): a numpy loop over time, two in-place operations a session over the batch
      (~1.5 us a call whatever its width: cheaper than the plain loop's ~60 ns a step once K x B passes ~32);
    - narrow ones (a daily run's few refits, a stream's last series): series by series in a plain
      Python loop over floats (numpy's per-call overhead, ~1 us an operation, would cost more than the work).
    A series' path therefore has the same bits whatever batch it is computed in (tested)."""
    many = u.ndim == 3
    u3 = u if many else u[None]
    k_len, t_len, b_len = u3.shape
    out = np.empty((k_len, t_len + 1, b_len))
    out[:, 0] = y0
    if k_len * b_len > _SERIAL_MAX:
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


def _derivatives(e2, mask, theta, backcast, with_loglik: bool = True):
    """(total log-likelihood (B,) or None, gradient G (B, 4) and Hessian H (B, 4, 4)) in the unconstrained
    coordinates u = (a, b, c, d), all analytic. In theta = (omega, alpha, beta, nu), with the per-observation
    derivatives of l_t in s_t and nu (r_t = q_t / (1 + q_t), C(nu) the constant of l_t):
        l_s   = (-1/2 + (nu + 1) r / 2) / s
        l_ss  = (1/2 - (nu + 1) r (2 - r) / 2) / s^2
        l_snu = (r / 2 - (nu + 1) r (1 - r) / (2 (nu - 2))) / s
        l_nu  = C'(nu) - log(1 + q) / 2 + (nu + 1) r / (2 (nu - 2))
        l_nunu = C''(nu) + r / (nu - 2) - (nu + 1) r (2 - r) / (2 (nu - 2)^2)
    and the recursions of ds_t/dtheta_i = d_i and d2s_t/dtheta_i dtheta_j = D_ij (i, j in omega, alpha, beta; c_t
    = beta, or alpha + beta after a missing return, both sharing c_t with the variance recursion):
        d_{t+1} = (1, x_t, s_t) + c_t d_t,                 d_0 = (1, bc, bc),   x_t = e_t^2 (s_t if missing)
        D_{t+1,ij} = w_{t,ij} + c_t D_{t,ij},               D_0 = 0,
        w_ij = [i = beta] d_j + [j = beta] d_i + (missing: [i = alpha] d_j + [j = alpha] d_i)    (D_omega,omega = 0)
    the sums are G_i = sum_t l_s d_i, G_nu = sum_t l_nu, H_ij = sum_t (l_ss d_i d_j + l_s D_ij), H_i,nu =
    sum_t l_snu d_i, H_nu,nu = sum_t l_nunu; then by the chain rule through the coordinate map theta(u):
    G_u = J' G, H_u = J' H J + sum_k G_k d2theta_k/du du'."""
    omega, alpha, beta, nu, p, sb, sc = _unpack(theta)
    t_len, b_len = e2.shape
    s_all = variance_path(e2, mask, omega, alpha, beta, backcast)[:-1]  # s_t, t = 0..T-1
    x = np.where(mask, e2, s_all)
    c = np.ascontiguousarray(np.where(mask, beta, alpha + beta)[:-1])
    v = np.empty((3, t_len - 1, b_len))  # K-first: each recursion's inputs and outputs are contiguous (T, B) blocks
    v[0] = 1.0
    v[1] = x[:-1]
    v[2] = s_all[:-1]
    d = linear_recursion(v, c, np.stack([np.ones(b_len), backcast, backcast]))  # (3, T, B)
    miss = ~mask[:-1]
    w = np.empty((5, t_len - 1, b_len))  # (omega alpha, omega beta, alpha alpha, alpha beta, beta beta)
    np.multiply(d[0, :-1], miss, out=w[0])
    w[1] = d[0, :-1]
    np.multiply(d[1, :-1], 2.0 * miss, out=w[2])
    np.add(d[1, :-1], d[2, :-1] * miss, out=w[3])
    np.multiply(d[2, :-1], 2.0, out=w[4])
    dd = linear_recursion(w, c, np.zeros((5, b_len)))  # (5, T, B)
    nu2 = nu - 2.0
    q = e2 / (s_all * nu2)
    l1q = np.log1p(q)
    ll = _colsum(np.where(mask, _t_const(nu) - 0.5 * np.log(s_all) - 0.5 * (nu + 1.0) * l1q, 0.0)) if with_loglik else None
    r = q / (1.0 + q)
    inv_s = np.where(mask, 1.0 / s_all, 0.0)
    l_s = (-0.5 + 0.5 * (nu + 1.0) * r) * inv_s
    l_ss = (0.5 - 0.5 * (nu + 1.0) * r * (2.0 - r)) * inv_s * inv_s
    l_sn = (0.5 * r - 0.5 * (nu + 1.0) * r * (1.0 - r) / nu2) * inv_s
    n_obs = _colsum(mask.astype(float))
    c1 = 0.5 * special.digamma((nu + 1.0) / 2.0) - 0.5 * special.digamma(nu / 2.0) - 0.5 / nu2
    c2 = 0.25 * special.polygamma(1, (nu + 1.0) / 2.0) - 0.25 * special.polygamma(1, nu / 2.0) + 0.5 / (nu2 * nu2)
    g = np.empty((b_len, 4))
    h = np.empty((b_len, 4, 4))
    for i in range(3):
        g[:, i] = _colsum_prod(l_s, d[i])
        h[:, i, 3] = h[:, 3, i] = _colsum_prod(l_sn, d[i])
    g[:, 3] = n_obs * c1 + _colsum(np.where(mask, -0.5 * l1q + 0.5 * (nu + 1.0) * r / nu2, 0.0))
    h[:, 3, 3] = n_obs * c2 + _colsum(np.where(mask, r / nu2 - 0.5 * (nu + 1.0) * r * (2.0 - r) / (nu2 * nu2), 0.0))
    second = {(0, 1): 0, (0, 2): 1, (1, 1): 2, (1, 2): 3, (2, 2): 4}
    for i in range(3):
        l_ss_di = l_ss * d[i]
        for j in range(i, 3):
            hij = _colsum_prod(l_ss_di, d[j])
            if (i, j) in second:
                hij = hij + _colsum_prod(l_s, dd[second[(i, j)]])
            h[:, i, j] = h[:, j, i] = hij
    # the coordinate map: first derivatives J and the second derivatives of each of omega, alpha, beta, nu
    dp_db = p * (1.0 - sb)
    d2p_db2 = dp_db * (1.0 - 2.0 * sb)
    s1 = sc * (1.0 - sc)
    s2 = s1 * (1.0 - 2.0 * sc)
    jac = np.zeros((b_len, 4, 4))  # d(omega, alpha, beta, nu) / d(a, b, c, d)
    jac[:, 0, 0] = omega
    jac[:, 1, 1], jac[:, 1, 2] = sc * dp_db, p * s1
    jac[:, 2, 1], jac[:, 2, 2] = (1.0 - sc) * dp_db, -p * s1
    jac[:, 3, 3] = nu - NU_MIN
    jt = jac.transpose(0, 2, 1)
    grad = (jt @ g[..., None])[..., 0]
    hess = jt @ h @ jac
    hess[:, 0, 0] += g[:, 0] * omega
    ga, gb = g[:, 1], g[:, 2]
    hess[:, 1, 1] += ga * d2p_db2 * sc + gb * d2p_db2 * (1.0 - sc)
    hess[:, 1, 2] += (ga - gb) * dp_db * s1
    hess[:, 2, 1] += (ga - gb) * dp_db * s1
    hess[:, 2, 2] += (ga - gb) * p * s2
    hess[:, 3, 3] += g[:, 3] * (nu - NU_MIN)
    return ll, grad, hess


def _newton_step(grad: np.ndarray, hess: np.ndarray):
    """(step (4, B), decrement g' M^-1 g (B,), concave (B,)) of the modified Newton step M^-1 g with M = -H
    made positive definite by its eigenvalues: M = V diag(m) V', m_k = max(|lambda_k|, 1e-9 max |lambda|, 1e-12)
    (Newton's step where the log-likelihood is concave, an ascent direction scaled by the curvature's size where it
    is not). Per series: one 4 x 4 symmetric eigendecomposition each."""
    m = -0.5 * (hess + hess.transpose(0, 2, 1))
    lam, vec = np.linalg.eigh(m)
    mag = np.abs(lam)
    mag = np.maximum(mag, np.maximum(1e-9 * mag.max(axis=1, keepdims=True), 1e-12))
    proj = (vec.transpose(0, 2, 1) @ grad[..., None])[..., 0]  # V' g
    step = (vec @ (proj / mag)[..., None])[..., 0].T
    dec = (proj * proj / mag).sum(axis=1)
    return step, dec, (lam > 0).all(axis=1)


def start_values(e2: np.ndarray, mask: np.ndarray, backcast: np.ndarray) -> np.ndarray:
    """Starting theta (4, B) from the data only, by arch's own rule (GARCH.starting_values, StudentsT.starting_values):
    over the grid alpha in _GRID_ALPHA x P = alpha + beta in _GRID_PERSISTENCE with omega = bc (1 - P) (variance
    targeting), the point of highest Gaussian log-likelihood -1/2 sum_t (log s_t + e_t^2 / s_t) (the first on a tie);
    nu from the kurtosis k = mean(z^4) / mean(z^2)^2 of z_t = e_t / sqrt(s_t) there:
        nu_0 = max((4 k - 6) / (k - 3) if k > 3.75 else 12, 4).
    No randomness and nothing from a previous fit: a series' start depends on its window only."""
    b_len = e2.shape[1]
    grid = [(a, p) for a in _GRID_ALPHA for p in _GRID_PERSISTENCE]
    ll = np.empty((len(grid), b_len))
    kurt = np.empty((len(grid), b_len))
    n = _colsum(mask.astype(float))
    for g0 in range(0, len(grid), _GRID_GROUP):  # a group of grid points side by side: one recursion call
        grp = grid[g0:g0 + _GRID_GROUP]
        k = len(grp)
        e2k, mk = np.tile(e2, (1, k)), np.tile(mask, (1, k))
        ga = np.repeat([a for a, _ in grp], b_len)
        gp = np.repeat([p for _, p in grp], b_len)
        bck = np.tile(backcast, k)
        s = variance_path(e2k, mk, bck * (1.0 - gp), ga, gp - ga, bck)[:-1]
        z2 = np.where(mk, e2k / s, 0.0)
        sz2 = _colsum(z2)
        ll[g0:g0 + k] = (-0.5 * (_colsum(np.where(mk, np.log(s), 0.0)) + sz2)).reshape(k, b_len)
        kurt[g0:g0 + k] = (_colsum(z2 * z2) * np.tile(n, k) / np.maximum(sz2, 1e-300) ** 2).reshape(k, b_len)
    best = np.argmax(np.where(np.isfinite(ll), ll, -np.inf), axis=0)  # the first maximum
    cols = np.arange(b_len)
    alpha = np.array([a for a, _ in grid])[best]
    pers = np.array([p for _, p in grid])[best]
    k = kurt[best, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        nu = np.maximum(np.where(k > 3.75, (4.0 * k - 6.0) / (k - 3.0), 12.0), 4.0)
    return _pack(backcast * (1.0 - pers), alpha, pers - alpha, nu)


def prepare(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(e2, mask, backcast, mean, n_obs) from a (T, B) matrix of decimal log returns (NaN = missing):
    e = 100 * (r - mean of the valid r), e2 = e^2 (0 where missing), backcast = mean valid e^2."""
    r = np.ascontiguousarray(returns, dtype=float)  # C order: _colsum adds rows in order (an F-ordered input would be summed pairwise)
    mask = np.isfinite(r)
    n = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, _colsum(np.where(mask, r, 0.0)) / np.maximum(n, 1), 0.0)
        e = np.where(mask, 100.0 * (r - mean), 0.0)
        e2 = e * e
        bc = np.where(n > 0, _colsum(e2) / np.maximum(n, 1), 1.0)
    return e2, mask, np.maximum(bc, 1e-12), mean, n


def fit_batch(returns: np.ndarray, min_obs: int = 250, max_iter: int = 200, tol: float = 1e-9,
              width: int | None = None) -> GarchFit:
    """Fit every column of `returns` ((T, B) decimal log returns, NaN = missing); see the module docstring.
    The series stream through a block of `width` columns (default _WIDTH): a series leaves the block when it has
    converged or used max_iter iterations and the next one waiting takes its column, so the iterations always run
    on a full block until the last series enter (no lockstep tail per block). A series' arithmetic is elementwise
    in its column (and its own 4 x 4 algebra): its estimate has the same bits whatever block, position or
    company it is computed in."""
    e2, mask, bc, _, n_obs = prepare(returns)
    t_len, b_len = e2.shape
    usable = (n_obs >= max(min_obs, 10)) & (bc > 1e-10)
    theta = np.zeros((4, b_len))
    converged = np.zeros(b_len, dtype=bool)
    iters = np.zeros(b_len, dtype=int)
    ll = np.full(b_len, -np.inf)
    todo = np.flatnonzero(usable)
    w_len = min(width or _WIDTH, todo.size)
    for b0 in range(0, todo.size, max(w_len, 1)):  # every start in blocks of the block's width (wide numpy steps)
        sel = todo[b0:b0 + w_len]
        theta[:, sel] = start_values(e2[:, sel], mask[:, sel], bc[sel])
    slot = np.full(w_len, -1)  # the series in each column of the block (-1: free)
    blk_e2, blk_m = np.zeros((t_len, w_len)), np.zeros((t_len, w_len), dtype=bool)
    blk_bc, blk_th, blk_it = np.ones(w_len), np.zeros((4, w_len)), np.zeros(w_len, dtype=int)
    blk_n = np.ones(w_len)
    nxt = 0
    while True:
        free = np.flatnonzero(slot < 0)
        if free.size and nxt < todo.size:  # the next series take the free columns, from their own start
            take = todo[nxt:nxt + free.size]
            nxt += take.size
            js = free[:take.size]
            slot[js] = take
            blk_e2[:, js], blk_m[:, js], blk_bc[js], blk_n[js] = e2[:, take], mask[:, take], bc[take], n_obs[take]
            blk_it[js], blk_th[:, js] = 0, theta[:, take]
        act = np.flatnonzero(slot >= 0)
        if act.size == 0:
            break
        if act.size == w_len:  # a full block: no copy
            e2a, ma, bca, tha = blk_e2, blk_m, blk_bc, blk_th
        else:
            e2a, ma, bca, tha = blk_e2[:, act], blk_m[:, act], blk_bc[act], blk_th[:, act]
        lla, grad, hess = _derivatives(e2a, ma, tha, bca)
        step, dec, concave = _newton_step(grad, hess)
        # converged: the log-likelihood is locally concave and its quadratic model gains less than tol per return
        # by the full Newton step (half the Newton decrement g' M^-1 g): stop at theta, no line search
        fin = concave & (0.5 * dec / blk_n[act] < tol)
        blk_it[act] += 1
        lam = np.ones(act.size)
        new_ll = lla.copy()
        new_theta = tha.copy()
        slope = dec  # g' p: the log-likelihood's derivative along the step at lam = 0
        pending = ~fin
        while pending.any():  # backtracking until the log-likelihood does not fall
            pj = np.flatnonzero(pending)
            cand = tha[:, pj] + lam[pj] * step[:, pj]
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if pj.size == act.size:  # every column: no copy of the block
                    cl = _loglik(e2a, ma, cand, bca)
                else:
                    cl = _loglik(e2a[:, pj], ma[:, pj], cand, bca[pj])
            ok = np.isfinite(cl) & (cl >= lla[pj])
            hit = pj[ok]
            new_ll[hit] = cl[ok]
            new_theta[:, hit] = cand[:, ok]
            pending[hit] = False
            # the next try: the maximum of the quadratic through f(0), f'(0) and f(lam), within [lam / 10, lam / 2]
            miss_ = pj[~ok]
            lm, sl, fl = lam[miss_], slope[miss_], cl[~ok]
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                q = sl * lm * lm / (2.0 * (lla[miss_] + sl * lm - fl))
            lam[miss_] = np.where(np.isfinite(q), np.clip(q, 0.1 * lm, 0.5 * lm), 0.1 * lm)
            pending &= lam > 1e-9
        # no rise along an ascent direction down to a step of 1e-9: a maximum to rounding
        fin |= lam <= 1e-9
        # or the step raised the log-likelihood by less than tol per return (a maximum on the boundary of the
        # parameter space -- alpha or beta -> 0, nu -> infinity -- lies at infinity in u: no Newton point there)
        fin |= (new_ll - lla) / blk_n[act] < tol
        blk_th[:, act] = new_theta
        out = fin | (blk_it[act] >= max_iter)  # leaving the block: converged, or still moving after max_iter
        if out.any():
            ja = act[out]
            sr = slot[ja]
            theta[:, sr], ll[sr], converged[sr], iters[sr] = new_theta[:, out], new_ll[out], fin[out], blk_it[ja]
            slot[ja] = -1
    omega, alpha, beta, nu, *_ = _unpack(theta)
    nan = np.where(usable, 1.0, np.nan)
    return GarchFit(omega=omega * nan, alpha=alpha * nan, beta=beta * nan, nu=nu * nan, loglik=np.where(usable, ll, np.nan),
                    converged=converged & usable, iterations=iters, n_obs=n_obs, backcast=bc)
