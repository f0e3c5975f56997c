"""domain/bounded_minimize.py returns scipy.optimize.minimize_scalar(method="bounded")'s bits, on random
smooth and rough functions and on the GPD profile the risk gate's tail model maximizes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from trading_assets.domain import tail_risk
from trading_assets.domain.bounded_minimize import minimize_bounded


def _same(func, bounds, xatol):
    want = minimize_scalar(func, bounds=bounds, method="bounded", options={"xatol": xatol})
    x, fun, n = minimize_bounded(func, bounds, xatol=xatol)
    assert (x, fun, n) == (want.x, want.fun, want.nfev)


def test_random_functions_give_scipys_bits():
    rng = np.random.default_rng(4)
    for _ in range(200):
        c, w, s = rng.normal(size=3)
        lo, hi = sorted(rng.uniform(-5, 5, 2))
        _same(lambda v: (v - c) ** 2 + w * np.sin(3 * v) + s * abs(v), (lo, hi), float(10 ** rng.uniform(-12, -3)))
    _same(lambda v: abs(v), (-1.0, 1.0), 1e-10)  # the minimum on a kink
    _same(lambda v: -v, (0.0, 2.0), 1e-10)  # on the bound
    _same(lambda v: 1.0, (3.0, 3.0), 1e-10)  # an empty interval


def test_the_gpd_profile_gives_the_same_fit():
    # gpd_fit_one's search, the old way (scipy) and the new way: identical (xi, beta)
    rng = np.random.default_rng(9)
    for xi_true in (-0.2, 0.1, 0.4, 0.8):
        for n in (26, 60, 200):
            y = rng.pareto(1 / xi_true, n) if xi_true > 0 else rng.uniform(0, 1, n) ** 2
            y = y[y > 0] * rng.uniform(0.005, 0.05)
            ymax, k = float(y.max()), y.size

            def prof(v):
                theta = np.expm1(np.atleast_1d(v)) / ymax
                with np.errstate(invalid="ignore", divide="ignore"):
                    xi = np.log1p(np.outer(theta, y)).sum(axis=1) / k
                    ratio = xi / theta
                    out = -k * (np.log(ratio) + xi + 1.0)
                return np.where(np.isfinite(out) & (ratio > 0), out, -np.inf)

            vals = prof(tail_risk._GRID)
            b = int(np.argmax(vals))
            step = tail_risk._GRID[1] - tail_risk._GRID[0]
            _same(lambda v: -float(prof(v)[0]), (tail_risk._GRID[b] - step, tail_risk._GRID[b] + step), 1e-10)
            xi, beta = tail_risk.gpd_fit_one(y)
            assert np.isfinite(xi) and beta > 0


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="exceeds"):
        minimize_bounded(lambda v: v, (2.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        minimize_bounded(lambda v: v, (0.0, np.inf))
