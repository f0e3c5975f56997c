"""Bounded scalar minimization: Brent's method on an interval (golden-section steps, parabolic steps
when the three best points allow one), the algorithm of scipy.optimize.minimize_scalar(method=
"bounded") (scipy's `_minimize_scalar_bounded`, BSD-3-Clause, itself Forsythe, Malcolm and Moler's
fminbound), step for step and with the same floating-point operations, so it returns the same bits.

Why a copy: scipy.optimize costs ~0.3 s of import (220 modules), paid by every daily run whose risk gate
fits the book's tail (domain/tail_risk.gpd_fit_one) for a one-dimensional search (#16's daily-cycle
budget). Tested against scipy's on random functions and the GPD profile (trading_assets_tests/domain).

    start: x = a + g (b - a), g = (3 - sqrt 5) / 2; tol1 = sqrt(2.2e-16) |x| + xatol / 3, tol2 = 2 tol1
    until |x - (a + b)/2| <= tol2 - (b - a)/2 (or maxiter evaluations):
      parabolic step through the three best points when it falls inside (a, b) and shrinks by more
      than half the step before last, else a golden step g (b - x or a - x); steps of at least tol1;
      the interval [a, b] shrinks around the best point.
"""

from __future__ import annotations

from collections.abc import Callable
from math import sqrt

import numpy as np


def minimize_bounded(func: Callable[[float], float], bounds: tuple[float, float], xatol: float = 1e-5,
                     maxiter: int = 500) -> tuple[float, float, int]:  # fmt: skip
    """(x, f(x), evaluations) of the minimum of func on [bounds[0], bounds[1]]; ValueError for bounds
    that are not two finite scalars with lower <= upper."""
    if len(bounds) != 2:
        raise ValueError("bounds must have two elements.")
    x1, x2 = bounds
    if not (np.size(x1) == 1 and np.isfinite(x1) and np.size(x2) == 1 and np.isfinite(x2)):
        raise ValueError("Optimization bounds must be finite scalars.")
    if x1 > x2:
        raise ValueError("The lower bound exceeds the upper bound.")
    maxfun = maxiter
    sqrt_eps = sqrt(2.2e-16)
    golden_mean = 0.5 * (3.0 - sqrt(5.0))
    a, b = x1, x2
    fulc = a + golden_mean * (b - a)
    nfc, xf = fulc, fulc
    rat = e = 0.0
    x = xf
    fx = func(x)
    num = 1
    fu = np.inf

    ffulc = fnfc = fx
    xm = 0.5 * (a + b)
    tol1 = sqrt_eps * np.abs(xf) + xatol / 3.0
    tol2 = 2.0 * tol1

    while np.abs(xf - xm) > (tol2 - 0.5 * (b - a)):
        golden = 1
        if np.abs(e) > tol1:  # a parabola through the three best points
            golden = 0
            r = (xf - nfc) * (fx - ffulc)
            q = (xf - fulc) * (fx - fnfc)
            p = (xf - fulc) * q - (xf - nfc) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = np.abs(q)
            r = e
            e = rat
            if (np.abs(p) < np.abs(0.5 * q * r)) and (p > q * (a - xf)) and (p < q * (b - xf)):
                rat = (p + 0.0) / q
                x = xf + rat
                if ((x - a) < tol2) or ((b - x) < tol2):
                    si = np.sign(xm - xf) + ((xm - xf) == 0)
                    rat = tol1 * si
            else:
                golden = 1
        if golden:  # a golden-section step
            e = a - xf if xf >= xm else b - xf
            rat = golden_mean * e

        si = np.sign(rat) + (rat == 0)
        x = xf + si * np.maximum(np.abs(rat), tol1)
        fu = func(x)
        num += 1

        if fu <= fx:
            if x >= xf:
                a = xf
            else:
                b = xf
            fulc, ffulc = nfc, fnfc
            nfc, fnfc = xf, fx
            xf, fx = x, fu
        else:
            if x < xf:
                a = x
            else:
                b = x
            if (fu <= fnfc) or (nfc == xf):
                fulc, ffulc = nfc, fnfc
                nfc, fnfc = x, fu
            elif (fu <= ffulc) or (fulc == xf) or (fulc == nfc):
                fulc, ffulc = x, fu

        xm = 0.5 * (a + b)
        tol1 = sqrt_eps * np.abs(xf) + xatol / 3.0
        tol2 = 2.0 * tol1
        if num >= maxfun:
            break
    return xf, fx, num
