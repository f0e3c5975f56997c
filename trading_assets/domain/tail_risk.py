"""Extreme-value tail risk: peaks over threshold with a generalized Pareto fit (pure numpy/scipy).

Losses L_1..L_n (decimal, a loss is a positive number: L = -return) over a trailing window; threshold
u = the `threshold_q` (0.95) empirical quantile of the valid losses (numpy's linear interpolation);
exceedances y_i = L_i - u for the N_u losses L_i > u. The excesses follow a generalized Pareto
distribution GPD(xi, beta) (Pickands-Balkema-de Haan):
    G(y) = 1 - (1 + xi y / beta)^(-1/xi)        (xi != 0),     1 - exp(-y / beta)   (xi = 0)
Maximum likelihood by Grimshaw's profile (theta = xi / beta): for a given theta,
    xi(theta) = mean_i log(1 + theta y_i),    beta = xi / theta,
    l*(theta) = -N_u * (log(xi(theta) / theta) + xi(theta) + 1)
maximized over theta in (-1 / max(y), inf): a grid of v = log(1 + theta max(y)) in [-6, 8], then a
golden-section search around the best grid point (vectorized over many fits at once). This is
scipy.stats.genpareto.fit(y, floc=0)'s estimate (tested against it).

Tail estimates at confidence q (> 1 - N_u / n), the standard POT formulas (McNeil, Frey & Embrechts,
Quantitative Risk Management, 7.2):
    VaR_q = u + (beta / xi) * (((n / N_u) * (1 - q))^(-xi) - 1)       (xi = 0: u + beta * log(N_u / (n (1 - q))))
    ES_q  = VaR_q / (1 - xi) + (beta - xi * u) / (1 - xi)              (xi < 1; xi = 0: VaR_q + beta)
    P(L > x) = (N_u / n) * (1 + xi (x - u) / beta)^(-1/xi)  for x > u  (0 beyond the upper end when xi < 0),
               the empirical share of losses above x for x <= u.
The EVT estimate is used only with at least `min_exceedances` exceedances and xi < 1 (finite ES);
otherwise the caller's historical estimate stands (method 'historical').
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trading_assets.domain.bounded_minimize import minimize_bounded

_GRID = np.linspace(-6.0, 8.0, 57) + 1e-3  # v = log(1 + theta * max(y)), offset so that theta != 0 exactly
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _colsum(x: np.ndarray) -> np.ndarray:
    """Column sums with the same bits whatever the other columns of the batch (garch._colsum)."""
    from trading_assets.domain.garch import _colsum as colsum

    return colsum(x)


def _profile(theta: np.ndarray, y: np.ndarray, valid: np.ndarray, k: np.ndarray) -> np.ndarray:
    """l*(theta) for each column (theta (B,), y/valid (m, B), k exceedances per column)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        xi = _colsum(np.where(valid, np.log1p(theta * y), 0.0)) / k
        ratio = xi / theta
        out = -k * (np.log(ratio) + xi + 1.0)
    return np.where(np.isfinite(out) & (ratio > 0), out, -np.inf)


def gpd_fit_one(y: np.ndarray) -> tuple[float, float]:
    """MLE (xi, beta) of a GPD for one sample of excesses y > 0: the same profile, a grid in one
    vectorized call, then scipy's bounded Brent search around the best grid point (the gate calls
    this a few times per session, where gpd_fit_batch's per-step overhead would dominate), as
    domain/bounded_minimize.py's bit-identical copy (a daily run does not import scipy.optimize)."""
    y = np.asarray(y, dtype=float)
    k = y.size
    ymax = float(y.max())

    def prof(v):
        theta = np.expm1(np.atleast_1d(v)) / ymax
        with np.errstate(invalid="ignore", divide="ignore"):
            xi = np.log1p(np.outer(theta, y)).sum(axis=1) / k
            ratio = xi / theta
            out = -k * (np.log(ratio) + xi + 1.0)
        return np.where(np.isfinite(out) & (ratio > 0), out, -np.inf), xi, theta

    vals, _, _ = prof(_GRID)
    b = int(np.argmax(vals))
    step = _GRID[1] - _GRID[0]
    x, fun, _ = minimize_bounded(lambda v: -float(prof(v)[0][0]), (_GRID[b] - step, _GRID[b] + step), xatol=1e-10)
    _, xi, theta = prof(x if -fun >= vals[b] else _GRID[b])
    return float(xi[0]), float(xi[0] / theta[0])


def gpd_fit_batch(y: np.ndarray, valid: np.ndarray, iterations: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """MLE (xi, beta) of a GPD for each column of y ((m, B) excesses > 0, valid marks the real ones)."""
    y = np.where(valid, y, 0.0)
    k = np.maximum(valid.sum(axis=0), 1)
    ymax = np.maximum(y.max(axis=0), 1e-300)  # a max is exact: no order dependence
    vals = np.stack([_profile(np.expm1(v) / ymax, y, valid, k) for v in _GRID])  # (G, B)
    best = np.argmax(vals, axis=0)
    step = _GRID[1] - _GRID[0]
    lo = _GRID[best] - step
    hi = _GRID[best] + step
    c = hi - _GOLDEN * (hi - lo)
    d = lo + _GOLDEN * (hi - lo)
    fc = _profile(np.expm1(c) / ymax, y, valid, k)
    fd = _profile(np.expm1(d) / ymax, y, valid, k)
    for _ in range(iterations):
        left = fc >= fd  # the maximum is in [lo, d]
        hi = np.where(left, d, hi)
        lo = np.where(left, lo, c)
        nc = hi - _GOLDEN * (hi - lo)
        nd = lo + _GOLDEN * (hi - lo)
        # reuse one end per column
        new_d = np.where(left, c, nd)
        new_c = np.where(left, nc, d)
        f_new = _profile(np.expm1(np.where(left, new_c, new_d)) / ymax, y, valid, k)
        fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
        c, d = new_c, new_d
    v = 0.5 * (lo + hi)
    theta = np.expm1(v) / ymax
    with np.errstate(invalid="ignore", divide="ignore"):
        xi = _colsum(np.where(valid, np.log1p(theta * y), 0.0)) / k
        beta = xi / theta
    return xi, beta


@dataclass(frozen=True)
class PotFit:
    """Per-column POT fit (arrays of length B)."""

    threshold: np.ndarray  # u
    xi: np.ndarray
    beta: np.ndarray
    n_exceed: np.ndarray
    n_obs: np.ndarray
    ok: np.ndarray  # enough exceedances, finite fit, xi < 1


def pot_fit(losses: np.ndarray, threshold_q: float = 0.95, min_exceedances: int = 25) -> PotFit:
    """POT fits of every column of `losses` ((n, B) decimal losses, NaN = missing); module docstring."""
    loss = np.asarray(losses, dtype=float)
    if loss.ndim == 1:
        loss = loss[:, None]
    valid = np.isfinite(loss)
    n = valid.sum(axis=0)
    u = np.full(loss.shape[1], np.nan)
    for j in np.flatnonzero(n > 0).tolist():  # per column: quantile of its valid values
        u[j] = np.quantile(loss[valid[:, j], j], threshold_q)
    with np.errstate(invalid="ignore"):
        over = valid & (loss > u)
    k = over.sum(axis=0)
    m = int(k.max()) if k.size else 0
    xi = np.full(loss.shape[1], np.nan)
    beta = np.full(loss.shape[1], np.nan)
    fit_cols = np.flatnonzero(k >= max(min_exceedances, 2))
    if fit_cols.size and m:
        y = np.zeros((m, fit_cols.size))
        yv = np.zeros((m, fit_cols.size), dtype=bool)
        for c, j in enumerate(fit_cols.tolist()):
            e = loss[over[:, j], j] - u[j]
            y[: e.size, c] = e
            yv[: e.size, c] = True
        fx, fb = gpd_fit_batch(y, yv)
        xi[fit_cols], beta[fit_cols] = fx, fb
    ok = (k >= min_exceedances) & np.isfinite(xi) & np.isfinite(beta) & (beta > 0) & (xi < 1.0)
    return PotFit(threshold=u, xi=xi, beta=beta, n_exceed=k, n_obs=n, ok=ok)


def pot_var(u, xi, beta, n, k, q):
    """VaR_q by the POT formula (module docstring); arrays or scalars."""
    u, xi, beta = np.asarray(u, float), np.asarray(xi, float), np.asarray(beta, float)
    r = (np.asarray(n, float) / np.maximum(np.asarray(k, float), 1)) * (1.0 - q)
    small = np.abs(xi) < 1e-9
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        gen = u + beta / np.where(small, 1.0, xi) * (r ** (-xi) - 1.0)
        exp = u - beta * np.log(r)
    return np.where(small, exp, gen)


def pot_es(u, xi, beta, n, k, q):
    """ES_q by the POT formula (module docstring); NaN where xi >= 1."""
    var = pot_var(u, xi, beta, n, k, q)
    xi = np.asarray(xi, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        es = var / (1.0 - xi) + (np.asarray(beta, float) - xi * np.asarray(u, float)) / (1.0 - xi)
    return np.where(xi < 1.0, es, np.nan)


def pot_tail_probability(x: float, u, xi, beta, n, k):
    """P(L > x) by the POT tail for x > u (module docstring)."""
    xi, beta, u = np.asarray(xi, float), np.asarray(beta, float), np.asarray(u, float)
    zeta = np.asarray(k, float) / np.asarray(n, float)
    small = np.abs(xi) < 1e-9
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        base = 1.0 + xi * (x - u) / beta
        gen = np.where(base > 0, zeta * np.power(np.maximum(base, 0.0), -1.0 / np.where(small, 1.0, xi)), 0.0)
        exp = zeta * np.exp(-(x - u) / beta)
    return np.where(small, exp, gen)


@dataclass(frozen=True)
class BookTail:
    """The proposed book's tail estimate: method 'evt' or 'historical', and the fit when 'evt'."""

    method: str
    probability: float  # P(one-day loss > x)
    expected_shortfall: float  # ES at the CVaR confidence
    threshold: float = math.nan
    xi: float = math.nan
    beta: float = math.nan
    n_exceed: int = 0


@dataclass(frozen=True)
class BookTailModel:
    """What the risk gate calls for the proposed book (an input of the gate, risk.GateInput.tail_model).

    losses = -(R @ w) over the trailing `lookback` rows of R; an EVT estimate (POT, module docstring)
    when at least `min_exceedances` losses exceed the `threshold_q` quantile and xi < 1, the
    historical one otherwise: P(loss > x) = the share of losses above x, ES = mean of the
    k = ceil((1 - q) n) largest losses (risk.cvar_historical)."""

    threshold_q: float = 0.95
    min_exceedances: int = 25
    lookback: int = 756

    def estimate(self, returns: np.ndarray, weights: np.ndarray, x: float, confidence: float) -> BookTail:
        r = returns[-self.lookback:]
        losses = -(r @ np.asarray(weights, dtype=float))
        n = losses.size
        if n == 0 or not np.any(losses != 0):
            return BookTail("historical", 0.0, 0.0)
        u = float(np.quantile(losses, self.threshold_q))
        y = losses[losses > u] - u
        k = int(y.size)
        xi = beta = math.nan
        if k >= max(self.min_exceedances, 2):
            xi, beta = gpd_fit_one(y)
        if k >= self.min_exceedances and math.isfinite(xi) and beta > 0 and xi < 1.0 and confidence >= self.threshold_q:
            es = float(pot_es(u, xi, beta, n, k, confidence))
            prob = float(pot_tail_probability(x, u, xi, beta, n, k)) if x > u else float(np.mean(losses > x))
            return BookTail("evt", prob, es, u, xi, beta, k)
        kk = max(1, math.ceil(round((1.0 - confidence) * n, 9)))
        es = float(np.sort(losses)[::-1][:kk].mean())
        return BookTail("historical", float(np.mean(losses > x)), es, n_exceed=k)


def book_tail_model(risk_settings) -> BookTailModel | None:
    """The gate's tail model from RiskSettings (None when tail_model is not "evt")."""
    if getattr(risk_settings, "tail_model", "historical") != "evt":
        return None
    return BookTailModel(threshold_q=risk_settings.tail_threshold_q, min_exceedances=risk_settings.tail_min_exceedances,
                         lookback=risk_settings.tail_lookback)
