"""Trading costs: half spread + market impact (Almgren et al. 2005, as Lean's MarketImpactSlippageModel) + commission.

Pure (numpy). One model for the paper fills (execution.PaperBroker), the child orders of the execution
algorithms (execution_algos) and the optimizer's cost term (domain/optimizer.py).

Market impact of an order of Q shares worked over T sessions (Almgren, Thum, Hauptmann and Li 2005,
"Direct estimation of equity market impact", Risk 18(7); the form of QuantConnect Lean's
MarketImpactSlippageModel.GetSlippageApproximation), as a fraction of the price:
    nu        = |Q| / (ADV * T)                          normalized trading rate (ADV in shares per session)
    temporary = eta * sigma * nu^beta                    (Lean: sigma * H(nu))
    permanent = gamma * sigma * T * nu^alpha             (Lean: sigma * ExecutionTime * G(nu); the liquidity
                                                          factor (shares outstanding / ADV)^delta is 1 here,
                                                          as in Lean when shares outstanding are unknown)
    impact    = min(max_impact, temporary + permanent / 2)   (Lean: "realized impact", capped at the price)
sigma is the name's DAILY volatility (Lean: std of daily returns), known at the decision session.
Lean adds Gaussian noise and draws the realized fraction of the impact uniformly in [0, 1]; this model
is deterministic and charges the whole expected impact (the paper's estimate), so reruns are identical.
Defaults (CostSettings): eta 0.142, beta 0.6, gamma 0.314, alpha 0.891 (the paper's estimates, Lean's
defaults), T = 1 session.

Per share, for a fill against a reference price P (the open for a market-on-open order):
    BUY  price = P * (1 + h + impact),  SELL price = P * (1 - h - impact),  h = slippage_bps / 1e4
    slippage cost = |price - P| * |Q|
    commission    = max(min_commission, commission_per_share * |Q|)
An order without the impact inputs (ADV or sigma unknown, non-positive) pays the half spread only.

The optimizer's cost of a trade of x = dollars / NAV (a convex stand-in, see `weight_cost_coefficients`):
    cost(x) = a * |x| + b * |x|^p,  p = optimizer_exponent = 3/2 (SOC-representable)
    a = h + commission_per_share / P          (spread and commission per dollar traded)
    b = impact(x_max) / x_max^(p - 1)         (the model's impact per dollar, matched at x_max = the largest
                                               trade the ADV limit allows; since beta + 1 = 1.6 and
                                               alpha + 1 = 1.891 both exceed p, b |x|^p >= the model's
                                               impact cost for every |x| <= x_max: it never understates)
"""

from __future__ import annotations

import numpy as np

from trading_assets.settings import CostSettings, ExecutionSettings


def impact_fraction(shares, adv_shares, sigma_daily, s: CostSettings):
    """Expected market impact as a fraction of the price (module docstring); 0 where ADV or sigma is unknown.

    Accepts scalars or arrays (broadcast); returns a float for scalar inputs."""
    q = np.abs(np.asarray(shares, dtype=float))
    adv = np.asarray(adv_shares, dtype=float)
    sig = np.asarray(sigma_daily, dtype=float)
    ok = np.isfinite(adv) & (adv > 0) & np.isfinite(sig) & (sig > 0) & np.isfinite(q)
    t = s.execution_sessions
    nu = np.where(ok, q / np.where(ok, adv, 1.0) / t, 0.0)
    sig0 = np.where(ok, sig, 0.0)
    temporary = s.impact_eta * sig0 * nu ** s.impact_beta
    permanent = s.impact_gamma * sig0 * t * nu ** s.impact_alpha
    out = np.minimum(s.max_impact, temporary + 0.5 * permanent)
    return float(out) if out.ndim == 0 else out


def commission(shares: float, ex: ExecutionSettings) -> float:
    """max(min_commission, commission_per_share * |Q|)."""
    return max(ex.min_commission, ex.commission_per_share * abs(shares))


def fill_price(reference: float, side_sign: int, shares: float, adv_shares, sigma_daily, ex: ExecutionSettings,
               s: CostSettings) -> float:
    """reference * (1 + side * (h + impact)), side +1 for a buy, -1 for a sell."""
    h = ex.slippage_bps / 1e4
    return reference * (1.0 + side_sign * (h + impact_fraction(shares, adv_shares, sigma_daily, s)))


def trade_cost(shares: float, reference: float, adv_shares, sigma_daily, ex: ExecutionSettings,
               s: CostSettings) -> float:
    """Expected dollars paid on a trade: |Q| * P * (h + impact) + commission (0 for no trade)."""
    if shares == 0:
        return 0.0
    h = ex.slippage_bps / 1e4
    return abs(shares) * reference * (h + impact_fraction(shares, adv_shares, sigma_daily, s)) + commission(shares, ex)


def weight_cost_coefficients(nav: float, price: np.ndarray, adv_shares: np.ndarray, sigma_daily: np.ndarray,
                             max_trade_weight: np.ndarray, ex: ExecutionSettings,
                             s: CostSettings) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the optimizer's cost a |x| + b |x|^p per name, x = trade / NAV (module docstring).

    max_trade_weight: the largest |x| the ADV limit allows (b is matched there); where it is 0 or not
    finite, b = 0 (the name cannot trade anyway)."""
    price = np.asarray(price, dtype=float)
    px_ok = np.isfinite(price) & (price > 0)
    a = ex.slippage_bps / 1e4 + np.where(px_ok, ex.commission_per_share / np.where(px_ok, price, 1.0), 0.0)
    xm = np.asarray(max_trade_weight, dtype=float)
    xm_ok = px_ok & np.isfinite(xm) & (xm > 0)
    shares_max = np.where(xm_ok, xm * nav / np.where(px_ok, price, 1.0), 0.0)
    imp = np.asarray(impact_fraction(shares_max, adv_shares, sigma_daily, s), dtype=float)
    b = np.where(xm_ok, imp / np.where(xm_ok, xm, 1.0) ** (s.optimizer_exponent - 1.0), 0.0)
    return a, b
