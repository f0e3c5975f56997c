"""Risk measures, adjustment factors and trading states of the risk gate (domain/risk_gate.py).

Pure (numpy, scipy). Every limit and factor comes from `RiskSettings` (settings.py). Weights are
fractions of NAV at the close of the decision session t; the book is long-only (a negative raw
target means "hold none" and is recorded as such).

Measures (w = weights, R = T x N trailing simple daily returns, T = cvar_lookback = 252):
- Historical-simulation CVaR of the PROPOSED book: book returns r_s = sum_i w_i R_{s,i} over the
  trailing sessions s; losses L_s = -r_s; k = ceil((1 - alpha) * T); CVaR_alpha = mean of the k
  largest losses (alpha = cvar_confidence = 0.95; T = 252 -> k = 13). Missing returns (a symbol
  not yet listed) count as 0. CVaR is positively homogeneous and convex in w.
- Tail-risk probability, model: the book's one-day return is mean-zero Student-t with nu = tail_dof
  degrees of freedom scaled to the book's historical daily standard deviation sigma_d (sample std of
  r_s): P(loss > x) = T_nu.sf(x / (sigma_d * sqrt((nu - 2) / nu))), x = tail_loss_threshold.
- EVT (GateInput.tail_model = domain/tail_risk.BookTailModel when settings.risk.tail_model = "evt"):
  on the book's losses over a longer trailing window (tail_lookback = 756 rows of R), a GPD on the
  losses beyond their 95th percentile gives P(loss > x) and the expected shortfall at cvar_confidence
  (POT formulas in tail_risk.py) when at least tail_min_exceedances (25) losses exceed the threshold;
  otherwise the two measures above. Every other measure reads the last cvar_lookback rows of R.
- Ex-ante annual volatility for volatility scaling: sigma_p^2 = (D w)' C (D w) with D = diag(vol_20)
  (the features' annualized 20-session volatility; the name's trailing std * sqrt(252) when
  missing) and C the sample correlation of R; computed as ||Z (D w)||^2 / (T - 1) with Z the
  column-standardized R (names with no variance in R count as uncorrelated).

Adjustment factors (applied by the gate's steps, domain/risk_gate.py, in this order):
- volatility scaling  f_vol = min(1, vol_target / sigma_p(raw book))   (scales down only)
- drawdown            f_dd  = exp(-drawdown_k * DD), DD = 1 - NAV_t / peak NAV
- regime              f_reg = risk_off_multiplier (0.7) when the row's regime is 'risk_off', else 1
- recovery            f_rec = recovery_phases[phase - 1] while in recovery phase >= 1, else 1

The gate (limits, whole shares, ADV, minimum trade, trading states, the final book's feasibility and
the decision rules) is domain/risk_gate.py: an ordered list of steps, one rule each.
`limit_violations` (below) is what the blocking check verifies on the final decisions.

Trading states (after nautilus_trader's risk engine), from the drawdown at the close of t:
DD >= halt_drawdown -> HALTED; DD >= reducing_drawdown -> REDUCING; else ACTIVE. Recovery: the
first ACTIVE session after a REDUCING or HALTED one starts phase 1 (factor recovery_phases[0] =
20%); each phase lasts recovery_sessions_per_phase sessions; then the next phase (40%, 60%, 80%);
reaching the last phase (100%) ends the recovery (phase 0). A new breach resets it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special  # scipy.stats (~0.8 s to import) only in tail_probability's rare fallback

from trading_assets.domain import reasons as rc
from trading_assets.settings import RiskSettings

ACTIVE = "ACTIVE"
REDUCING = "REDUCING"
HALTED = "HALTED"
TRADING_STATES = (ACTIVE, REDUCING, HALTED)
_EPS = 1e-9


# --- measures ------------------------------------------------------------------------------------
def cvar_historical(returns: np.ndarray, weights: np.ndarray, confidence: float) -> float:
    """Historical CVaR: mean of the k = ceil((1 - confidence) * T) largest losses of -(R @ w)."""
    return _cvar_clean(np.nan_to_num(np.asarray(returns, dtype=float)), weights, confidence)


def _cvar_clean(r: np.ndarray, weights: np.ndarray, confidence: float) -> float:
    """cvar_historical on returns already free of NaN (the gate cleans them once per session)."""
    t = r.shape[0]
    if t == 0:
        return 0.0
    losses = -(r @ np.asarray(weights, dtype=float))
    k = max(1, math.ceil(round((1.0 - confidence) * t, 9)))  # round: (1-0.95)*20 is 1.0000000000000009
    worst = np.sort(losses)[::-1][:k]
    return float(worst.mean())


def book_daily_std(returns: np.ndarray, weights: np.ndarray) -> float:
    """Sample standard deviation of the book's historical daily returns R @ w."""
    return _std_clean(np.nan_to_num(np.asarray(returns, dtype=float)), weights)


def _std_clean(r: np.ndarray, weights: np.ndarray) -> float:
    """book_daily_std on returns already free of NaN."""
    if r.shape[0] < 2:
        return 0.0
    return float(np.std(r @ weights, ddof=1))


def tail_probability(sigma_daily: float, threshold: float, dof: float) -> float:
    """P(one-day loss > threshold) for a mean-zero Student-t(dof) return with std sigma_daily."""
    if sigma_daily <= 0:
        return 0.0
    scale = sigma_daily * math.sqrt((dof - 2.0) / dof)
    x = threshold / scale
    if math.isfinite(x) and dof > 0:  # what stats.t.sf(x, dof) computes (loc 0, scale 1), without its overhead
        return float(special.stdtr(dof, -x))
    from scipy import stats

    return float(stats.t.sf(x, dof))


def standardized(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Z, ok): returns minus column mean over column sample std; ok = columns with variance."""
    z, ok, _ = _standardized_clean(np.nan_to_num(np.asarray(returns, dtype=float)))
    return z, ok


def _standardized_clean(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """standardized on returns already free of NaN, also returning the column sample std (None if T < 2)."""
    if r.shape[0] < 2:
        return np.zeros_like(r), np.zeros(r.shape[1], dtype=bool), None
    sd = r.std(axis=0, ddof=1)
    ok = sd > 0
    if ok.all():
        # the usual case, one copy instead of three: r[:, ok] (a boolean index on the columns) is a
        # column-major copy, whose column means (pairwise sums) can differ in the last bit from a
        # row-major r's; asfortranarray gives that same layout, hence the same numbers
        f = np.asfortranarray(r)
        return (f - f.mean(axis=0)) / sd, ok, sd
    z = np.zeros_like(r)
    z[:, ok] = (r[:, ok] - r[:, ok].mean(axis=0)) / sd[ok]
    return z, ok, sd


def portfolio_vol(weights: np.ndarray, vols: np.ndarray, z: np.ndarray, ok: np.ndarray) -> float:
    """Annual ex-ante volatility sqrt((D w)' C (D w)) = sqrt(||Z (D w)||^2 / (T - 1) + uncorrelated part)."""
    dw = np.nan_to_num(weights * vols)
    t = z.shape[0]
    if ok.all() and z.flags.f_contiguous:  # z[:, ok] would be this same column-major matrix, copied
        var = float(np.sum((z @ dw) ** 2) / (t - 1)) if t >= 2 and ok.size else 0.0
        return math.sqrt(max(var, 0.0))
    var = float(np.sum((z[:, ok] @ dw[ok]) ** 2) / (t - 1)) if t >= 2 and ok.any() else 0.0
    var += float(np.sum(dw[~ok] ** 2))
    return math.sqrt(max(var, 0.0))


# --- adjustments ---------------------------------------------------------------------------------
def vol_scale(sigma_p: float, vol_target: float) -> float:
    """min(1, vol_target / sigma_p); 1 for an empty book."""
    return 1.0 if sigma_p <= vol_target or sigma_p <= 0 else vol_target / sigma_p


def drawdown_factor(drawdown: float, k: float) -> float:
    """exp(-k * DD)."""
    return math.exp(-k * max(drawdown, 0.0))


def regime_factor(regime: str | None, risk_off_multiplier: float) -> float:
    """risk_off_multiplier when regime == 'risk_off', else 1."""
    return risk_off_multiplier if regime == "risk_off" else 1.0


def recovery_factor(phase: int, phases: tuple[float, ...]) -> float:
    """phases[phase - 1] while recovering (phase >= 1), else 1."""
    return phases[phase - 1] if phase >= 1 else 1.0


def next_trading_state(drawdown: float, prev_state: str, prev_phase: int, prev_sessions: int,
                       s: RiskSettings) -> tuple[str, int, int]:
    """(state, recovery_phase, sessions_in_phase) after the close of a session with this drawdown.

    Phase p lasts s.recovery_sessions_per_phase sessions (the entry session counts as the first).
    """
    if drawdown >= s.halt_drawdown:
        return HALTED, 0, 0
    if drawdown >= s.reducing_drawdown:
        return REDUCING, 0, 0
    if prev_state in (REDUCING, HALTED):  # first ACTIVE session after a breach: phase 1 starts
        return ACTIVE, 1, 1
    if prev_phase >= 1:
        if prev_sessions + 1 > s.recovery_sessions_per_phase:
            phase = prev_phase + 1
            if phase >= len(s.recovery_phases):  # the last phase (100%) ends the recovery
                return ACTIVE, 0, 0
            return ACTIVE, phase, 1
        return ACTIVE, prev_phase, prev_sessions + 1
    return ACTIVE, 0, 0


def limit_violations(decisions: list[str], approved: np.ndarray, current: np.ndarray, order: np.ndarray,
                     sectors: list[str], s: RiskSettings, tol: float = 1e-6) -> list[str]:
    """What the blocking check verifies on one session's final decisions (empty list = pass):
    every traded or held-by-choice name (EXECUTE_*/HOLD) within the single-name limit unless it is a
    sell that could not reach it; no BUY ends in a sector or a book above its limit; EXECUTE_BUY has
    order > 0, EXECUTE_SELL < 0, HOLD and REJECT 0; no negative position."""
    out = []
    secs: dict[str, float] = {}
    for sc, wv in zip(sectors, approved):
        secs[sc] = secs.get(sc, 0.0) + abs(float(wv))
    gross = float(np.abs(approved).sum())
    for i, d in enumerate(decisions):
        q = order[i]
        if d == rc.EXECUTE_BUY:
            if q <= 0:
                out.append(f"#{i} EXECUTE_BUY with order {q}")
            if approved[i] > s.max_single_name + tol:
                out.append(f"#{i} buy to {approved[i]:.4f} > single-name limit")
            if secs[sectors[i]] > s.max_sector + tol:
                out.append(f"#{i} buy into sector {sectors[i]} at {secs[sectors[i]]:.4f}")
            if gross > s.max_gross_leverage + tol:
                out.append(f"#{i} buy with gross {gross:.4f}")
        elif d == rc.EXECUTE_SELL:
            if q >= 0:
                out.append(f"#{i} EXECUTE_SELL with order {q}")
        elif q != 0:
            out.append(f"#{i} {d} with a non-zero order {q}")
        if d == rc.HOLD and approved[i] > s.max_single_name + tol and current[i] <= s.max_single_name + tol:
            out.append(f"#{i} HOLD above the single-name limit")
        if approved[i] < -tol:
            out.append(f"#{i} negative weight {approved[i]}")
    return out


# The gate itself (steps, ledger, decision rules) lives in domain/risk_gate.py; its names are
# reachable from here too (lazily: risk_gate imports this module's measures).
_GATE_NAMES = ("GATE_STEPS", "GateInput", "GateResult", "gate")


def __getattr__(name: str):
    if name in _GATE_NAMES:
        from trading_assets.domain import risk_gate

        return getattr(risk_gate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["ACTIVE", "REDUCING", "HALTED", "TRADING_STATES", "GATE_STEPS", "GateInput", "GateResult", "gate",
           "cvar_historical", "book_daily_std", "tail_probability", "standardized", "portfolio_vol", "vol_scale",
           "drawdown_factor", "regime_factor", "recovery_factor", "next_trading_state", "limit_violations"]
