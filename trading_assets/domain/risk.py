"""The risk gate: raw target weights -> approved weights, one FINAL decision and reasons per symbol.

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
- Ex-ante annual volatility for volatility scaling: sigma_p^2 = (D w)' C (D w) with D = diag(vol_20)
  (the features' annualized 20-session volatility; the name's trailing std * sqrt(252) when
  missing) and C the sample correlation of R; computed as ||Z (D w)||^2 / (T - 1) with Z the
  column-standardized R (names with no variance in R count as uncorrelated).

Adjustments (multiply the raw targets of the tradable names, in this order):
- volatility scaling  f_vol = min(1, vol_target / sigma_p(raw book))   (scales down only)
- drawdown            f_dd  = exp(-drawdown_k * DD), DD = 1 - NAV_t / peak NAV
- regime              f_reg = risk_off_multiplier (0.7) when the row's regime is 'risk_off', else 1
- recovery            f_rec = recovery_phases[phase - 1] while in recovery phase >= 1, else 1

Limits (hard, applied after the adjustments, to the tradable names; "fixed" names keep their
current weight: pre-risk REJECT, no price, no decision, HALTED):
1. single name  w_i <= max_single_name                            (SINGLE_NAME_LIMIT)
2. sector       sum_sector w <= max_sector: the sector's tradable names scaled pro rata
                by (max_sector - fixed_in_sector) / tradable_in_sector     (SECTOR_LIMIT)
3. gross        sum |w| <= max_gross_leverage, same pro-rata rule          (LEVERAGE_SCALED)
4. tail risk    P(loss > x) <= tail_prob_limit: tradable names scaled by the largest s in [0, 1]
                meeting it (bisection)                                     (TAIL_RISK)
5. CVaR         CVaR <= cvar_limit: same bisection (CVaR is convex in s)   (CVAR_SCALED)
6. whole shares target shares = floor(w * NAV / close) (so rounding never breaks a limit),
   order = target - current, then |order| <= floor(max_adv_fraction * ADV shares) (ADV_LIMIT).
7. |order| * close / NAV < min_trade_weight -> no order (BELOW_TRADE_THRESHOLD), unless the name,
   its sector or the book is above its limit now and the order is a sell.
8. trading state: HALTED rejects every order, REDUCING rejects every increase (RISK_OVERRIDE).
9. feasibility of the final book: if the gross book, a sector, the tail probability or CVaR is still
   above its limit (fixed names, ADV-capped sells), the buys that add to it are REJECTed
   (LEVERAGE_LIMIT, SECTOR_LIMIT, TAIL_RISK, CVAR_BREACH). When the fixed names alone break a limit,
   steps 2-5 do not scale the tradable names for it (scaling cannot help): step 9 rejects the buys,
   and the sells the targets ask for still go through.

Final decision rules: risk override (HALTED / REDUCING increase) -> REJECT; CVaR breach -> REJECT of
the buys; leverage limit -> REJECT of the buys; pre-risk REJECT -> REJECT (the position is held as
is: we do not trade a name on data we do not trust, and a bad bar must not force a sale);
order < 0 -> EXECUTE_SELL; order > 0 -> EXECUTE_BUY; else HOLD.

Trading states (after nautilus_trader's risk engine), from the drawdown at the close of t:
DD >= halt_drawdown -> HALTED; DD >= reducing_drawdown -> REDUCING; else ACTIVE. Recovery: the
first ACTIVE session after a REDUCING or HALTED one starts phase 1 (factor recovery_phases[0] =
20%); each phase lasts recovery_sessions_per_phase sessions; then the next phase (40%, 60%, 80%);
reaching the last phase (100%) ends the recovery (phase 0). A new breach resets it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special  # scipy.stats (~0.8 s to import) only in tail_probability's rare fallback

from trading_assets.domain import reasons as rc
from trading_assets.settings import RiskSettings

ACTIVE = "ACTIVE"
REDUCING = "REDUCING"
HALTED = "HALTED"
TRADING_STATES = (ACTIVE, REDUCING, HALTED)
_EPS = 1e-9
_ADJUSTMENTS_JSON = json.JSONEncoder(sort_keys=True).encode  # = json.dumps(a, sort_keys=True), built once


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


# --- the gate ------------------------------------------------------------------------------------
@dataclass
class GateInput:
    """One session's cross-section (arrays of length N, aligned with `symbols`)."""

    symbols: list[str]
    sectors: list[str]
    price: np.ndarray  # close of t used for sizing (NaN: no price)
    current_qty: np.ndarray  # shares held after t's fills
    nav: float
    target_raw: np.ndarray  # NaN: no target (hold)
    pre_reject: np.ndarray  # bool: pre-risk decision was REJECT (or no decision row)
    pre_codes: list[list[str]]
    regime: list[str | None]
    vol: np.ndarray  # annualized 20-session vol (NaN: unknown)
    adv: np.ndarray  # average daily volume in shares (NaN: unknown)
    returns: np.ndarray  # T x N trailing simple daily returns
    trading_state: str = ACTIVE
    drawdown: float = 0.0
    recovery_phase: int = 0
    annualization: int = 252
    price_ok: np.ndarray | None = None  # False: `price` is a stale mark (no close today): mark only, no trade


@dataclass
class GateResult:
    decision: list[str]
    order_qty: np.ndarray  # signed whole shares
    approved_weight: np.ndarray  # (current + order) * close / NAV
    current_weight: np.ndarray
    reason_codes: list[list[str]]
    adjustments: list[str]  # JSON per symbol
    cvar: float  # of the approved book
    tail_prob: float
    gross: float
    sector_exposure: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    factors: dict[str, float] = field(default_factory=dict)


def _largest_scale(metric, limit: float, iterations: int) -> tuple[float, bool]:
    """Largest s in [0, 1] with metric(s) <= limit (metric convex in s). (s, feasible)."""
    if metric(1.0) <= limit + _EPS:
        return 1.0, True
    if metric(0.0) > limit + _EPS:
        return 0.0, False
    lo, hi = 0.0, 1.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if metric(mid) <= limit + _EPS:
            lo = mid
        else:
            hi = mid
    return lo, True


def _sector_sums(w: np.ndarray, sector_idx: np.ndarray, n_sectors: int) -> np.ndarray:
    return np.bincount(sector_idx, weights=np.abs(w), minlength=n_sectors)


# Reason-code slots in the order the gate's steps add them. A row's codes are its pre-risk codes, then
# the codes of its set slots in this order, each code once (what appending "if not already there" step
# by step gives); the gate keeps one bit mask per row instead of growing a list per row.
_SLOTS = (rc.NO_PRICE, rc.TRADING_HALTED, rc.RISK_OVERRIDE, rc.VOL_SCALED, rc.DRAWDOWN_SCALED, rc.REGIME_RISK_OFF,
          rc.RECOVERY_PHASE, rc.SINGLE_NAME_LIMIT, rc.SECTOR_LIMIT, rc.LEVERAGE_SCALED, rc.TAIL_RISK, rc.CVAR_SCALED,
          rc.ADV_LIMIT, rc.BELOW_TRADE_THRESHOLD, rc.REDUCING_ONLY, rc.RISK_OVERRIDE, rc.LEVERAGE_LIMIT,
          rc.SECTOR_LIMIT, rc.TAIL_RISK, rc.CVAR_BREACH, rc.POSITION_REDUCTION, rc.POSITION_INCREASE)
(_B_NO_PRICE, _B_HALTED, _B_HALTED_OVERRIDE, _B_VOL, _B_DD, _B_REGIME, _B_RECOVERY, _B_SINGLE, _B_SECTOR,
 _B_LEV_SCALED, _B_TAIL, _B_CVAR_SCALED, _B_ADV, _B_SMALL, _B_REDUCING, _B_REDUCING_OVERRIDE, _B_LEV_LIMIT,
 _B_SECTOR_FINAL, _B_TAIL_FINAL, _B_CVAR_BREACH, _B_REDUCTION, _B_INCREASE) = (1 << k for k in range(len(_SLOTS)))
_GATE_CODES = frozenset(_SLOTS)
_SLOT_CODES: dict[int, list[str]] = {}  # bit mask -> its codes (few distinct masks: built once each)


def _slot_codes(mask: int) -> list[str]:
    codes = _SLOT_CODES.get(mask)
    if codes is None:
        codes = []
        for k, c in enumerate(_SLOTS):
            if mask >> k & 1 and c not in codes:
                codes.append(c)
        _SLOT_CODES[mask] = codes
    return codes


def _row_codes(pre_codes: list[list[str]], bits: np.ndarray) -> list[list[str]]:
    """Per row: its pre-risk codes, then the codes of its slots not already among them."""
    out = []
    for pre, b in zip(pre_codes, bits.tolist()):
        if not b:
            out.append(list(pre))
            continue
        gc = _slot_codes(b)
        if _GATE_CODES.isdisjoint(pre):
            out.append([*pre, *gc])
        else:
            out.append([*pre, *(c for c in gc if c not in pre)])
    return out


# Adjustment keys whose value is shared by many rows of a session (bit masks per row); the JSON of a
# row's adjustments is json.dumps(dict, sort_keys=True): the keys sorted before "notes" are written
# first, then the notes, then the keys after (adv_cap_shares, per row, sorts first of all).
_ADJ_BEFORE_NOTES = ("cvar_scale", "drawdown_scale", "leverage_scale")
_ADJ_AFTER_NOTES = ("recovery_scale", "regime_scale", "sector_scale", "single_name_cap", "tail_scale", "vol_scale")
_A_BIT = {k: 1 << j for j, k in enumerate(_ADJ_BEFORE_NOTES + _ADJ_AFTER_NOTES)}


def _adjustment_texts(akeys: np.ndarray, values: dict, sector_idx: np.ndarray, sector_values: list[float],
                      regime_values: np.ndarray, adv_rows: dict[int, float], notes: dict[int, list[str]]) -> list[str]:
    """Each row's adjustments as json.dumps(dict, sort_keys=True) ("{}" when empty), built once per
    distinct combination of shared values (keys present x sector) plus the rows with notes or an ADV cap."""
    n = len(akeys)
    if n == 0:
        return []
    sec_bit = _A_BIT["sector_scale"]
    pid = akeys * (len(sector_values) + 1) + np.where(akeys & sec_bit, sector_idx + 1, 0)
    _, first, inverse = np.unique(pid, return_index=True, return_inverse=True)
    parts = []  # per pattern: (inner text before "notes", inner text after "notes")
    for i in first.tolist():
        ak = int(akeys[i])
        vals = dict(values, sector_scale=sector_values[sector_idx[i]] if ak & sec_bit else None,
                    regime_scale=regime_values[i])
        before = {k: vals[k] for k in _ADJ_BEFORE_NOTES if ak & _A_BIT[k]}
        after = {k: vals[k] for k in _ADJ_AFTER_NOTES if ak & _A_BIT[k]}
        parts.append((_ADJUSTMENTS_JSON(before)[1:-1], _ADJUSTMENTS_JSON(after)[1:-1]))
    texts = ["{" + ", ".join(t for t in pa if t) + "}" for pa in parts]
    inverse = inverse.reshape(-1).tolist()
    out = [texts[k] for k in inverse]
    # rows with notes or an ADV cap: many share their text too (a sector's note, the same tiny order)
    cache: dict[tuple, str] = {}
    for i in adv_rows.keys() | notes.keys():
        key = (inverse[i], adv_rows.get(i), tuple(notes.get(i, ())))
        text = cache.get(key)
        if text is None:
            before, after = parts[key[0]]
            pieces = ('"adv_cap_shares": ' + _ADJUSTMENTS_JSON(key[1]) if key[1] is not None else "", before,
                      '"notes": ' + _ADJUSTMENTS_JSON(notes[i]) if i in notes else "", after)
            text = cache[key] = "{" + ", ".join(t for t in pieces if t) + "}"
        out[i] = text
    return out


def gate(x: GateInput, s: RiskSettings) -> GateResult:
    """Run the risk gate on one session (see the module docstring for every rule).

    Column-wise: each step flags its rows in bit masks (reason codes, adjustment keys) and only the
    rows with a note get a Python list; codes and the adjustments' JSON are built once at the end."""
    n = len(x.symbols)
    price = np.asarray(x.price, dtype=float)
    markable = np.isfinite(price) & (price > 0)
    safe_px = np.where(markable, price, 0.0)  # weights of held names use the (possibly stale) mark
    has_price = markable & (np.ones(n, dtype=bool) if x.price_ok is None else np.asarray(x.price_ok, dtype=bool))
    q0 = np.asarray(x.current_qty, dtype=float)
    nav = float(x.nav)
    w0 = q0 * safe_px / nav if nav > 0 else np.zeros(n)
    raw = np.asarray(x.target_raw, dtype=float)
    pre_reject = np.asarray(x.pre_reject, dtype=bool)
    bits = np.zeros(n, dtype=np.int64)  # reason-code slots per row (_SLOTS)
    akeys = np.zeros(n, dtype=np.int64)  # shared-value adjustment keys per row (_A_BIT)
    notes: dict[int, list[str]] = {}
    adv_rows: dict[int, float] = {}
    sectors_list = sorted(set(x.sectors))
    sec_pos = {sc: j for j, sc in enumerate(sectors_list)}
    sector_idx = np.array([sec_pos[sc] for sc in x.sectors], dtype=int) if n else np.zeros(0, int)
    n_sec = len(sectors_list)
    returns = np.asarray(x.returns, dtype=float)
    returns = (returns.copy(order="K") if np.isfinite(returns).all() else np.nan_to_num(returns)).reshape(-1, n)
    # one cleaned copy (the measures' own NaN cleaning is a no-op on it, so it is skipped below)
    z, ok, sd = _standardized_clean(returns)
    hist_vol = sd * math.sqrt(x.annualization) if sd is not None else np.zeros(n)
    vols = np.where(np.isfinite(x.vol) & (np.asarray(x.vol) > 0), x.vol, hist_vol)
    halted = x.trading_state == HALTED

    def note(rows, text) -> None:
        """Append a note (a string, a list aligned with `rows`, or a function of the row) to each of `rows`."""
        rows = rows.tolist() if isinstance(rows, np.ndarray) else rows
        texts = [text] * len(rows) if isinstance(text, str) else text if isinstance(text, list) else map(text, rows)
        for i, t in zip(rows, texts):
            if i in notes:
                notes[i].append(t)
            else:
                notes[i] = [t]

    # which names the gate may trade
    fixed = pre_reject | ~has_price | ~np.isfinite(raw) | halted
    no_px = np.flatnonzero(~has_price)
    bits[no_px] |= _B_NO_PRICE
    note(no_px, lambda i: f"no close for {x.symbols[i]}: cannot size or mark a trade; position held")
    note(np.flatnonzero(has_price & pre_reject & (q0 != 0)),
         lambda i: f"pre-risk REJECT ({', '.join(x.pre_codes[i]) or 'no reason'}): "
                   f"position of {q0[i]:g} shares held as is, no trade on untrusted data")
    if halted:
        bits |= _B_HALTED | _B_HALTED_OVERRIDE
        note(range(n), f"trading HALTED: drawdown {x.drawdown:.1%} >= {s.halt_drawdown:.0%}")
    free = ~fixed
    w = np.where(free, np.maximum(np.nan_to_num(raw), 0.0), w0)
    note(np.flatnonzero(free & (np.nan_to_num(raw) < 0)), lambda i: f"negative raw target {raw[i]:.4f} -> 0 (long-only book)")

    # adjustments (tradable names only)
    sigma_raw = portfolio_vol(w, vols, z, ok)
    f_vol = vol_scale(sigma_raw, s.vol_target)
    f_dd = drawdown_factor(x.drawdown, s.drawdown_k)
    f_rec = recovery_factor(x.recovery_phase, s.recovery_phases)
    f_reg = np.array([regime_factor(r, s.risk_off_multiplier) for r in x.regime]) if n else np.zeros(0)
    mult = f_vol * f_dd * f_rec * f_reg
    values = {"vol_scale": round(f_vol, 10), "drawdown_scale": round(f_dd, 10), "recovery_scale": f_rec,
              "single_name_cap": s.max_single_name}
    scaled = free & (w > 0)
    if f_vol < 1:
        bits[scaled] |= _B_VOL
        akeys[scaled] |= _A_BIT["vol_scale"]
    if f_dd < 1:
        bits[scaled] |= _B_DD
        akeys[scaled] |= _A_BIT["drawdown_scale"]
    reg = scaled & (f_reg < 1)
    bits[reg] |= _B_REGIME
    akeys[reg] |= _A_BIT["regime_scale"]
    if f_rec < 1:
        bits[scaled] |= _B_RECOVERY
        akeys[scaled] |= _A_BIT["recovery_scale"]
    w = np.where(free, w * mult, w)

    # 1. single name
    over = free & (w > s.max_single_name)
    bits[over] |= _B_SINGLE
    akeys[over] |= _A_BIT["single_name_cap"]
    note(np.flatnonzero(over), lambda i: f"target {w[i]:.2%} capped at the single-name limit {s.max_single_name:.0%}")
    w = np.where(over, s.max_single_name, w)

    # 2. sector, pro rata over the sector's tradable names
    fixed_sec = np.bincount(sector_idx, weights=np.where(fixed, np.abs(w), 0.0), minlength=n_sec)
    free_sec = np.bincount(sector_idx, weights=np.where(free, w, 0.0), minlength=n_sec)
    sec_scale = np.ones(n_sec)
    for j in range(n_sec):
        # fixed names alone above the limit: nothing to scale to; step 9 rejects the sector's buys
        if fixed_sec[j] + free_sec[j] > s.max_sector + _EPS and free_sec[j] > 0 and fixed_sec[j] < s.max_sector:
            sec_scale[j] = (s.max_sector - fixed_sec[j]) / free_sec[j]
    sec_scale_r = [round(float(v), 10) for v in sec_scale]
    sec_rows = free & (w > 0) & (sec_scale[sector_idx] < 1)
    if sec_rows.any():
        bits[sec_rows] |= _B_SECTOR
        akeys[sec_rows] |= _A_BIT["sector_scale"]
        sec_note = [f"sector {sectors_list[j]} at {fixed_sec[j] + free_sec[j]:.2%} > {s.max_sector:.0%}: "
                    f"its names scaled by {sec_scale[j]:.4f}" for j in range(n_sec)]
        rows = np.flatnonzero(sec_rows)
        note(rows, [sec_note[j] for j in sector_idx[rows].tolist()])
    w = np.where(free, w * sec_scale[sector_idx], w)

    # 3. gross leverage, pro rata
    fixed_gross = float(np.abs(np.where(fixed, w, 0.0)).sum())
    free_gross = float(np.where(free, w, 0.0).sum())
    if fixed_gross + free_gross > s.max_gross_leverage + _EPS and free_gross > 0 and fixed_gross < s.max_gross_leverage:
        g = (s.max_gross_leverage - fixed_gross) / free_gross
        values["leverage_scale"] = round(g, 10)
        lev = free & (w > 0)
        bits[lev] |= _B_LEV_SCALED
        akeys[lev] |= _A_BIT["leverage_scale"]
        note(np.flatnonzero(lev), f"gross {fixed_gross + free_gross:.2f}x > {s.max_gross_leverage:.2f}x: scaled by {g:.4f}")
        w = np.where(free, w * g, w)

    # 4-5. tail probability and CVaR: largest scale of the tradable part meeting the limit
    w_fixed = np.where(fixed, w, 0.0)
    w_free = np.where(free, w, 0.0)

    def tail_at(scale: float) -> float:
        return tail_probability(_std_clean(returns, w_fixed + scale * w_free), s.tail_loss_threshold, s.tail_dof)

    def cvar_at(scale: float) -> float:
        return _cvar_clean(returns, w_fixed + scale * w_free, s.cvar_confidence)

    for metric, limit, bit, key in ((tail_at, s.tail_prob_limit, _B_TAIL, "tail_scale"),
                                    (cvar_at, s.cvar_limit, _B_CVAR_SCALED, "cvar_scale")):
        if not w_free.any():
            break
        sc, feasible = _largest_scale(metric, limit, s.scale_search_iterations)
        if feasible and sc < 1.0:  # infeasible (fixed names alone breach): step 9 rejects the buys
            values[key] = round(sc, 10)
            rows = w_free > 0
            bits[rows] |= bit
            akeys[rows] |= _A_BIT[key]
            note(np.flatnonzero(rows), f"{key.split('_')[0]} of the proposed book above its limit {limit:g}: "
                                       f"tradable names scaled by {sc:.4f}")
            w_free = w_free * sc
    w = w_fixed + w_free

    # 6. whole shares, ADV
    target_qty = np.where(free, np.floor(np.where(has_price, w * nav / np.where(has_price, price, 1.0), 0.0) + 1e-6), q0)
    order = np.where(free, target_qty - q0, 0.0)
    adv = np.asarray(x.adv, dtype=float)
    adv_cap = np.where(np.isfinite(adv) & (adv > 0), np.floor(s.max_adv_fraction * np.nan_to_num(adv)), 0.0)
    for i in np.flatnonzero(free & (order != 0) & (np.abs(order) > adv_cap)).tolist():
        bits[i] |= _B_ADV
        if adv_cap[i] == 0 and not (np.isfinite(adv[i]) and adv[i] > 0):
            note((i,), f"no ADV for {x.symbols[i]}: liquidity unknown, no order")
        else:
            note((i,), f"order {order[i]:+g} shares capped at {s.max_adv_fraction:.0%} of ADV "
                       f"({adv[i]:.0f}) = {adv_cap[i]:g}")
        adv_rows[i] = float(adv_cap[i])
        order[i] = math.copysign(adv_cap[i], order[i])

    # 7. minimum trade size, unless a sell is needed because a limit is breached now
    cur_sec = _sector_sums(w0, sector_idx, n_sec)
    cur_breach = (w0 > s.max_single_name + _EPS) | (cur_sec[sector_idx] > s.max_sector + _EPS) | (
        float(np.abs(w0).sum()) > s.max_gross_leverage + _EPS)
    small = free & (order != 0) & (np.abs(order) * safe_px / nav < s.min_trade_weight) if nav > 0 else free & False
    small &= ~((order < 0) & cur_breach)
    bits[small] |= _B_SMALL
    rows = np.flatnonzero(small)
    note(rows, [f"order {q:+g} shares < {s.min_trade_weight:.2%} of NAV: not worth trading" for q in order[rows].tolist()])
    order = np.where(small, 0.0, order)

    # 8. trading state
    rejected = np.zeros(n, dtype=bool)
    if x.trading_state == REDUCING:
        buys = order > 0
        bits[buys] |= _B_REDUCING | _B_REDUCING_OVERRIDE
        note(np.flatnonzero(buys), f"trading REDUCING (drawdown {x.drawdown:.1%} >= {s.reducing_drawdown:.0%}): "
                                   "only risk-reducing orders allowed")
        rejected |= buys
        order = np.where(buys, 0.0, order)

    # 9. feasibility of the final book: buys that add to a breached aggregate are rejected
    def final_w(o: np.ndarray) -> np.ndarray:
        return (q0 + o) * safe_px / nav if nav > 0 else np.zeros(n)

    wf = final_w(order)
    gross_f = float(np.abs(wf).sum())
    if gross_f > s.max_gross_leverage + 1e-6 and (order > 0).any():
        buys = order > 0
        bits[buys] |= _B_LEV_LIMIT
        note(np.flatnonzero(buys), f"final gross {gross_f:.3f}x > {s.max_gross_leverage:.2f}x: buy rejected")
        rejected |= buys
        order = np.where(buys, 0.0, order)
        wf = final_w(order)
    sec_f = _sector_sums(wf, sector_idx, n_sec)
    sec_buys = (order > 0) & (sec_f[sector_idx] > s.max_sector + 1e-6)
    if sec_buys.any():
        bits[sec_buys] |= _B_SECTOR_FINAL
        note(np.flatnonzero(sec_buys), lambda i: f"sector {x.sectors[i]} would be {sec_f[sector_idx[i]]:.2%} > "
                                                 f"{s.max_sector:.0%}: buy rejected")
        rejected |= sec_buys
        order = np.where(sec_buys, 0.0, order)
    wf = final_w(order)
    for metric_final, limit, bit, label in (
        (lambda ww: tail_probability(_std_clean(returns, ww), s.tail_loss_threshold, s.tail_dof),
         s.tail_prob_limit, _B_TAIL_FINAL, "tail probability"),
        (lambda ww: _cvar_clean(returns, ww, s.cvar_confidence), s.cvar_limit, _B_CVAR_BREACH, "CVaR"),
    ):
        val = metric_final(wf)
        if val > limit + 1e-9 and (order > 0).any():
            buys = order > 0
            bits[buys] |= bit
            note(np.flatnonzero(buys), f"{label} of the final book {val:.4f} > limit {limit:g}: risk-adding buy rejected")
            rejected |= buys
            order = np.where(buys, 0.0, order)
            wf = final_w(order)

    # decisions
    rej = halted | pre_reject | ~has_price | rejected
    sell = ~rej & (order < 0)
    buy = ~rej & (order > 0)
    bits[sell] |= _B_REDUCTION
    bits[buy] |= _B_INCREASE
    decision = np.where(rej, rc.REJECT, np.where(sell, rc.EXECUTE_SELL, np.where(buy, rc.EXECUTE_BUY, rc.HOLD))).tolist()
    cvar_final = _cvar_clean(returns, wf, s.cvar_confidence)
    tail_final = tail_probability(_std_clean(returns, wf), s.tail_loss_threshold, s.tail_dof)
    sec_final = _sector_sums(wf, sector_idx, n_sec)
    warnings = []
    if float(np.abs(wf).sum()) > s.max_gross_leverage + 1e-6:
        warnings.append(f"gross {float(np.abs(wf).sum()):.3f}x above {s.max_gross_leverage:.2f}x (positions the gate could not trade)")
    for j in range(n_sec):
        if sec_final[j] > s.max_sector + 1e-6:
            warnings.append(f"sector {sectors_list[j]} at {sec_final[j]:.2%} above {s.max_sector:.0%} (positions the gate could not trade)")
    if cvar_final > s.cvar_limit + 1e-9:
        warnings.append(f"CVaR {cvar_final:.4f} above the limit {s.cvar_limit:g} (positions the gate could not trade)")
    if x.trading_state != ACTIVE:
        warnings.append(f"trading state {x.trading_state} (drawdown {x.drawdown:.2%})")
    return GateResult(
        decision=decision,
        order_qty=order,
        approved_weight=wf,
        current_weight=w0,
        reason_codes=_row_codes(x.pre_codes, bits),
        adjustments=_adjustment_texts(akeys, values, sector_idx, sec_scale_r, f_reg, adv_rows, notes),
        cvar=cvar_final,
        tail_prob=tail_final,
        gross=float(np.abs(wf).sum()),
        sector_exposure={sectors_list[j]: float(sec_final[j]) for j in range(n_sec) if sec_final[j] != 0},
        warnings=warnings,
        factors={"vol_scale": f_vol, "drawdown_scale": f_dd, "recovery_scale": f_rec, "sigma_raw": sigma_raw},
    )


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
