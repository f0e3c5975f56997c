"""Multi-asset Kelly: the session's target weights from one convex program (portfolio.method = kelly_mv).

Pure (numpy, scipy, clarabel). Per session t, over the names' weights w (fractions of NAV at the close):

    maximize   mu' w  -  (1 / (2 gamma)) w' Sigma w  -  sum_i cost_i(w_i - w0_i)
    subject to 0 <= w_i <= max_single_name                 (10% NAV)
               sum_{i in sector s} w_i <= max_sector         (15% NAV, each GICS sector)
               sum_i w_i <= max_gross_leverage               (1.0x; long-only, so gross = sum)
               |w_i - w0_i| <= max_adv_fraction * ADV_i * close_i / NAV     (each trade <= 10% of ADV)

mu: the Meta-Brain's mu_hat (expected simple return over the next session, daily decimal); w0: the
current weights after t's fills; gamma: the fractional-Kelly gamma (settings.meta.kelly_gamma, 0.25).
Without costs or limits the optimum is w = gamma Sigma^{-1} mu (the multi-asset Kelly growth-optimal
portfolio, scaled by gamma); with a diagonal Sigma = diag(sigma_i^2) (uncorrelated names) it is each
name's single-name Kelly fraction gamma * mu_i / sigma_i^2: today's `kelly_diagonal` target is this
problem's diagonal, uncorrelated, cost-free and limit-free special case.

Sigma (point in time: only the trailing return rows up to t) = D (B B' + Psi) D, a statistical factor
model of the correlation: Z = the trailing returns (cvar_lookback = 252 sessions, a year; missing -> 0)
standardized per name; B = the top k principal components of the sample correlation Z'Z / (T - 1)
(loadings V_k S_k / sqrt(T - 1) from a seeded randomized SVD of Z, Halko et al. 2011, with power
iterations: deterministic); Psi = diag(max(1 - sum_k B_ik^2, psi_floor)) the specific part, so the
diagonal of the correlation is ~1 and every eigenvalue is >= psi_floor: well conditioned for 500 names
with a year of data (a sample covariance of 500 names from 252 rows is singular). Names with no
variance in the window have B_i = 0, Psi_ii = 1. D = diag(sigma_i): the name's daily volatility, a
GARCH sigma when the session inputs carry one, else the Meta-Brain's sigma_hat (the same sigma as the
diagonal Kelly). The risk term is computed as ||F w||^2 + ||s o w||^2 with F = B' D (k x n),
s = sigma o sqrt(psi).

cost_i(x) = a_i |x| + b_i |x|^(3/2) (domain/costs.py: half spread + commission per dollar, and the
Almgren et al. 2005 impact matched at the largest trade the ADV limit allows, an upper bound of it).

Solver: Clarabel (interior point, conic: the 3/2 power is one 3-d power cone per name,
(v_i, 1, x_i) in K_pow(2/3) <=> v_i >= |x_i|^(3/2)), called directly on the sparse problem data
(no modelling layer: building the data costs ~1 ms; cvxpy's canonicalization and its 18 s DPP
compile of the 500-name problem were measured slower than the solve itself). It is the maintained
default solver of cvxpy, deterministic, and needs no tuning of step sizes; an ADMM (OSQP) stalled
at tight tolerances on this problem (measured). Screening keeps it small: a tradable name that is
not held and whose edge mu_i does not beat its linear cost a_i starts at 0 and out of the program;
after the solve, every name left out is checked against the optimality condition for staying at 0
(mu_i - (1 / gamma) (Sigma w)_i <= a_i); any that fails joins and the program is solved again
(at most `max_screen_rounds` times), so the screening changes no optimum.

Fixed names (no price, pre-risk REJECT, no mu, no ADV) keep w0: they enter the sector, gross and risk
terms as constants. Bounds are widened so the program is always feasible: a name above the cap that
the ADV limit cannot bring down may stay at w0 - max trade, and a sector or the book whose floor (the
fixed names plus every lower bound) is above its limit gets that floor as its limit (the risk gate
after the optimizer rejects the buys there). A failed or inaccurate solve holds the current book
(w = w0) with reason OPTIMIZER_FAILED and the solver's status; it never raises.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from trading_assets.settings import PortfolioSettings, RiskSettings

OK_STATUSES = ("Solved", "AlmostSolved")
SNAP = 1e-6  # a weight this close to the current weight or a bound is set to it ($1 of a $1M book: no dust trades)


@dataclass
class OptimizerInput:
    """One session's cross-section (arrays of length n)."""

    mu: np.ndarray  # expected next-session simple return (NaN: no forecast -> fixed)
    sigma: np.ndarray  # daily volatility (NaN: unknown -> fixed)
    w0: np.ndarray  # current weights
    tradable: np.ndarray  # bool: may trade today (price, decision, ADV known, not REJECT)
    sector_idx: np.ndarray  # int sector number per name
    n_sectors: int
    max_trade: np.ndarray  # the largest |w - w0| the ADV limit allows
    cost_a: np.ndarray  # linear cost per unit weight traded
    cost_b: np.ndarray  # coefficient of |trade|^(3/2)
    returns: np.ndarray  # T x n trailing simple daily returns (NaN -> 0)


@dataclass
class OptimizerResult:
    weights: np.ndarray
    status: str  # the solver's status; "NoTradableNames" when nothing can move
    ok: bool
    expected_return: float = 0.0  # mu' w
    risk_penalty: float = 0.0  # (1 / (2 gamma)) w' Sigma w
    cost: float = 0.0  # sum cost_i(w_i - w0_i)
    ex_ante_vol: float = 0.0  # sqrt(252 w' Sigma w)
    binding: dict = field(default_factory=dict)
    n_active: int = 0
    iterations: int = 0
    solve_ms: float = 0.0
    rounds: int = 0

    @property
    def objective(self) -> float:
        return self.expected_return - self.risk_penalty - self.cost


def factor_model(returns: np.ndarray, k: int, psi_floor: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(B n x k, psi n) of the correlation of `returns` (T x n, NaN-free) as in the module docstring."""
    r = np.asarray(returns, dtype=float)
    t, n = r.shape
    k = min(k, t - 1, n)
    if t < 3 or k <= 0:
        return np.zeros((n, 0)), np.ones(n)
    sd = r.std(axis=0, ddof=1)
    ok = sd > 0
    z = np.zeros_like(r)
    z[:, ok] = (r[:, ok] - r[:, ok].mean(axis=0)) / sd[ok]
    z /= math.sqrt(t - 1)  # z'z = the sample correlation
    # randomized SVD (range finder with 2 power iterations, oversampling 8), seeded: deterministic
    rng = np.random.default_rng(seed)
    omega = rng.standard_normal((n, min(n, k + 8)))
    y = z @ omega
    for _ in range(2):
        y, _ = np.linalg.qr(y)
        y = z @ (z.T @ y)
    q, _ = np.linalg.qr(y)
    _, s, vt = np.linalg.svd(q.T @ z, full_matrices=False)
    b = (vt[:k].T * s[:k])
    b[~ok] = 0.0
    psi = np.where(ok, np.maximum(1.0 - (b**2).sum(axis=1), psi_floor), 1.0)
    return b, psi


def _bounds(x: OptimizerInput, r: RiskSettings) -> tuple[np.ndarray, np.ndarray]:
    """lo, hi of each name (fixed names: w0, w0), always lo <= hi (module docstring)."""
    w0, m = x.w0, np.where(np.isfinite(x.max_trade), np.maximum(x.max_trade, 0.0), 0.0)
    lo = np.maximum(0.0, w0 - m)
    hi = np.maximum(np.minimum(r.max_single_name, w0 + m), lo)
    return np.where(x.tradable, lo, w0), np.where(x.tradable, hi, w0)


def optimize(x: OptimizerInput, r: RiskSettings, p: PortfolioSettings, gamma: float) -> OptimizerResult:
    """Solve the session's program (module docstring); never raises on a solver failure."""
    t0 = time.perf_counter()
    n = len(x.w0)
    w0 = np.asarray(x.w0, dtype=float)
    mu = np.nan_to_num(np.asarray(x.mu, dtype=float))
    sigma = np.asarray(x.sigma, dtype=float)
    tradable = np.asarray(x.tradable, dtype=bool) & np.isfinite(x.mu) & np.isfinite(sigma) & (sigma > 0)
    sig = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 0.0)
    xx = OptimizerInput(**{**x.__dict__, "tradable": tradable})
    lo, hi = _bounds(xx, r)
    movable = tradable & (hi > lo)
    result = OptimizerResult(weights=w0.copy(), status="NoTradableNames", ok=True)
    w = w0.copy()
    pinned = tradable & ~movable  # lo == hi: e.g. above the cap, and the ADV limit allows exactly one sale
    w[pinned] = lo[pinned]
    if not movable.any():
        return _describe(result, w, w0, mu, np.zeros((0, n)), sig**2, np.zeros(n), np.zeros(n), x, r, gamma,
                         movable, t0)
    b, psi = factor_model(x.returns, p.risk_factors, p.specific_floor)
    f = (b * sig[:, None]).T  # k x n
    spec2 = sig**2 * psi
    a = np.nan_to_num(np.asarray(x.cost_a, dtype=float))
    active = movable & ((w0 > 0) | (mu > a))
    w[movable & ~active] = lo[movable & ~active]  # left-out names sit at their lower bound (0 when not held)
    for rounds in range(1, p.max_screen_rounds + 1):
        if not active.any():  # no name's edge pays for its cost and nothing is held: the book stays flat
            result.status = "NoEdge"
            break
        sol = _solve(active, w, w0, mu, f, spec2, a, np.nan_to_num(x.cost_b), lo, hi, x.sector_idx, x.n_sectors,
                     r, gamma)
        result.status, result.iterations, result.rounds = sol[0], result.iterations + sol[2], rounds
        if sol[0] not in OK_STATUSES:
            return _held(w0, sol[0], sol[2], t0)
        w = sol[1]
        # optimality of staying at the lower bound for the names left out: no gain from buying
        grad = mu - (f.T @ (f @ w) + spec2 * w) / gamma
        join = movable & ~active & (grad > a + p.screen_tolerance)
        if not join.any():
            break
        active |= join
    else:
        return _held(w0, "ScreeningDidNotConverge", result.iterations, t0)
    return _describe(result, w, w0, mu, f, spec2, a, np.nan_to_num(x.cost_b), x, r, gamma, active, t0)


def _held(w0: np.ndarray, status: str, iterations: int, t0: float) -> OptimizerResult:
    return OptimizerResult(weights=w0.copy(), status=status, ok=False, iterations=iterations,
                           solve_ms=(time.perf_counter() - t0) * 1e3)


def _solve(active, w_now, w0, mu, f, spec2, a, bcost, lo, hi, sector_idx, n_sectors, r: RiskSettings, gamma: float):
    """Clarabel on the active names; the others are constants at w_now. (status, w, iterations)."""
    import clarabel

    ix = np.flatnonzero(active)
    m = len(ix)
    k = f.shape[0]
    w_const = np.where(active, 0.0, w_now)
    fa = f[:, ix]
    c = f @ w_const  # the constant names' factor exposure
    # variables: [w (m), u (m) = |w - w0|, v (m) >= |w - w0|^(3/2), y (k) = F w]
    nv = 3 * m + k
    wa0 = w0[ix]
    pdiag = np.concatenate([spec2[ix] / gamma, np.zeros(2 * m), np.full(k, 1.0 / gamma)])
    pmat = sp.diags(pdiag, format="csc")
    q = np.concatenate([-mu[ix], a[ix], bcost[ix], np.zeros(k)])
    fixed_sec = np.bincount(sector_idx, weights=np.abs(w_const), minlength=n_sectors)
    sec_floor = np.bincount(sector_idx[ix], weights=lo[ix], minlength=n_sectors)
    sec_rhs = np.maximum(r.max_sector - fixed_sec, sec_floor)
    gross_rhs = max(r.max_gross_leverage - float(np.abs(w_const).sum()), float(lo[ix].sum()))
    # A x + s = b, rows: [k: y - F_a w = c (zero cone)] [4m + S + 1: w - u <= w0, -w - u <= -w0, w <= hi,
    # -w <= -lo, sectors <= rhs, gross <= rhs (nonnegative cone)] [3m: (v_i, 1, w_i - w0_i) in K_pow(2/3)]
    j = np.arange(m)
    n_nn = 4 * m + n_sectors + 1
    p0 = k + n_nn
    rows = np.concatenate([np.repeat(np.arange(k), m), np.arange(k),
                           k + j, k + j, k + m + j, k + m + j, k + 2 * m + j, k + 3 * m + j,
                           k + 4 * m + sector_idx[ix], np.full(m, k + 4 * m + n_sectors),
                           p0 + 3 * j, p0 + 3 * j + 2])
    cols = np.concatenate([np.tile(j, k), 3 * m + np.arange(k),
                           j, m + j, j, m + j, j, j, j, j, 2 * m + j, j])
    vals = np.concatenate([-fa.reshape(-1), np.ones(k),
                           np.ones(m), -np.ones(m), -np.ones(m), -np.ones(m), np.ones(m), -np.ones(m),
                           np.ones(m), np.ones(m), -np.ones(m), -np.ones(m)])
    amat = sp.csc_matrix((vals, (rows, cols)), shape=(p0 + 3 * m, nv))
    b_pow = np.zeros(3 * m)
    b_pow[3 * j + 1] = 1.0
    b_pow[3 * j + 2] = -wa0
    bvec = np.concatenate([c, wa0, -wa0, hi[ix], -lo[ix], sec_rhs, [gross_rhs], b_pow])
    cones = [clarabel.ZeroConeT(k), clarabel.NonnegativeConeT(n_nn)] + [clarabel.PowerConeT(2.0 / 3.0)] * m
    # the objective's scale (daily returns of 1e-5 on weights of 1e-2) is far below the solver's absolute
    # tolerances: scale it to O(1) (the argmax is unchanged) and ask for tight gaps
    scale = 1.0 / max(float(np.abs(q).max()), float(pdiag.max()) * 1e-2, 1e-12)
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-10
    settings.tol_feas = 1e-10
    sol = clarabel.DefaultSolver(pmat * scale, q * scale, amat, bvec, cones, settings).solve()
    status = str(sol.status).split(".")[-1]
    w = w_now.copy()
    if status in OK_STATUSES:
        wa = np.clip(np.asarray(sol.x[:m]), lo[ix], hi[ix])
        # an interior point never sits exactly on a bound: snap to the current weight and the bounds
        # within SNAP, so that "no trade" is exactly no trade
        for edge in (wa0, lo[ix], hi[ix]):
            wa = np.where(np.abs(wa - edge) <= SNAP, edge, wa)
        w[ix] = wa
    return status, w, int(sol.iterations)


def _describe(result: OptimizerResult, w, w0, mu, f, spec2, a, bcost, x: OptimizerInput, r: RiskSettings,
              gamma: float, active: np.ndarray, t0: float) -> OptimizerResult:
    d = w - w0
    var = float(np.sum((f @ w) ** 2) + np.sum(spec2 * w**2))
    sec = np.bincount(x.sector_idx, weights=np.abs(w), minlength=x.n_sectors)
    tol = 1e-6
    moved = np.abs(d) > tol
    result.weights = w
    result.expected_return = float(mu @ w)
    result.risk_penalty = var / (2.0 * gamma)
    result.cost = float(a @ np.abs(d) + bcost @ np.abs(d) ** 1.5)
    result.ex_ante_vol = math.sqrt(max(var, 0.0) * 252.0)
    result.n_active = int(active.sum())
    result.binding = {
        "names_at_cap": int(np.sum(x.tradable & (w >= r.max_single_name - tol))),
        "names_at_adv_limit": int(np.sum(moved & (np.abs(np.abs(d) - x.max_trade) <= tol))),
        "sectors_at_cap": [int(j) for j in np.flatnonzero(sec >= r.max_sector - tol)],
        "gross_at_cap": bool(float(np.abs(w).sum()) >= r.max_gross_leverage - tol),
        "names_traded": int(moved.sum()),
        "gross": float(np.abs(w).sum()),
        "turnover": float(np.abs(d).sum()),
    }
    result.solve_ms = (time.perf_counter() - t0) * 1e3
    return result
