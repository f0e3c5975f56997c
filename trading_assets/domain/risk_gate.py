"""The risk gate as an ordered list of steps (after nautilus_trader's RiskEngine): targets -> orders -> decisions.

Pure (numpy, scipy). One session's cross-section goes through `GATE_STEPS` in order. Each step is one
function of a small mutable `GateState`: it owns one rule, the reason code it gives the rows it touches,
and the sentence it writes in their `adjustments`. Adding a rule = one function + one entry in
GATE_STEPS. The measures and factors (CVaR, tail probability, ex-ante vol, exp(-k DD), regime,
recovery) are in domain/risk.py, with the formulas.

Weights are fractions of NAV at the close of the decision session t; the book is long-only. "Fixed"
names keep their current weight and are never traded: no valid close today (NO_PRICE), pre-risk REJECT,
no target, or HALTED. The others are "free".

Steps, in order (each: rule -> reason code -> adjustments key):
 1. untradable          fixed names: NO_PRICE, TRADING_HALTED + RISK_OVERRIDE (HALTED); notes
 2. long_only           negative raw target -> 0 (note)
 3. volatility_scaling  f_vol = min(1, vol_target / sigma_p(raw book))          VOL_SCALED       vol_scale
 4. drawdown_scaling    f_dd = exp(-drawdown_k * DD)                            DRAWDOWN_SCALED  drawdown_scale
 5. regime_scaling      f_reg = risk_off_multiplier on rows in 'risk_off'       REGIME_RISK_OFF  regime_scale
 6. recovery_scaling    f_rec = recovery_phases[phase - 1] while recovering     RECOVERY_PHASE   recovery_scale
 7. single_name_limit   w_i <= max_single_name                                   SINGLE_NAME_LIMIT single_name_cap
 8. sector_limit        sector's free names pro rata to max_sector - fixed      SECTOR_LIMIT     sector_scale
 9. gross_limit         free names pro rata to max_gross_leverage - fixed       LEVERAGE_SCALED  leverage_scale
10. tail_scaling        largest s in [0,1] with P(loss > x) <= tail_prob_limit  TAIL_RISK        tail_scale
11. cvar_scaling        largest s in [0,1] with CVaR <= cvar_limit              CVAR_SCALED      cvar_scale
    (P(loss > x) and CVaR: the EVT estimates of GateInput.tail_model where it has enough exceedances,
     else Student-t and historical: GateState.tail_of / cvar_of, domain/risk.py and domain/tail_risk.py)
12. whole_shares        target shares floor(w NAV / close), order = target - current
13. adv_limit           |order| <= floor(max_adv_fraction * ADV); unknown ADV -> no order  ADV_LIMIT adv_cap_shares
14. minimum_trade       |order| close / NAV < min_trade_weight -> no order, unless a sell of a name,
                        sector or book above its limit now                      BELOW_TRADE_THRESHOLD
15. reducing_only       REDUCING: buys rejected                                  REDUCING_ONLY + RISK_OVERRIDE
16. final_gross         final gross above the limit: buys rejected               LEVERAGE_LIMIT
17. final_sector        buys into a sector above its limit rejected             SECTOR_LIMIT
18. final_tail          final tail probability above the limit: buys rejected   TAIL_RISK
19. final_cvar          final CVaR above the limit: buys rejected                CVAR_BREACH
Steps 15-19 only ever reject BUYS (`reject_buys`): a reduction is never rejected for adding risk. When
the fixed names alone break a limit, steps 8-11 leave the free names unscaled for it (scaling cannot
help) and 16-19 reject the buys; the sells the targets ask for still go through.

Final decision rules (the seed's, unchanged): HALTED, pre-risk REJECT, no price, or a rejected buy ->
REJECT (a pre-risk REJECT holds the position as is: no trade on untrusted data, and a bad bar must not
force a sale); order < 0 -> EXECUTE_SELL [POSITION_REDUCTION]; order > 0 -> EXECUTE_BUY
[POSITION_INCREASE]; else HOLD.

Recording (`Ledger`): a step calls `code(rows, CODE)`, `adjust(rows, key, value)` (one value, or one per
row) and `note(rows, text)`. A row's reason codes are its pre-risk codes then the steps' codes in step
order, each once; its adjustments are json.dumps({key: value, ..., "notes": [...]}, sort_keys=True)
("{}" when nothing changed it). Both are built once per distinct row pattern, not per row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from trading_assets.domain import reasons as rc
from trading_assets.domain.risk import (_EPS, ACTIVE, HALTED, REDUCING, _cvar_clean, _standardized_clean,
                                        _std_clean, drawdown_factor, portfolio_vol, recovery_factor,
                                        regime_factor, tail_probability, vol_scale)
from trading_assets.settings import RiskSettings

_JSON = json.JSONEncoder(sort_keys=True).encode  # = json.dumps(obj, sort_keys=True), built once
_FINAL_TOL = 1e-6  # a final aggregate counts as above its limit beyond this (whole-share rounding is below it)


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
    # tail_risk.BookTailModel: the book's tail probability and CVaR by EVT on the longer window of `returns`
    # (every other measure reads its last cvar_lookback rows); None: Student-t and historical only
    tail_model: object | None = None


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
    proposed_qty: np.ndarray | None = None  # the order before steps 15-19 rejected any buy


class Ledger:
    """What the steps did to each row: codes in step order, adjustment values, notes (module docstring)."""

    def __init__(self, n: int):
        self.n = n
        self._codes: list[tuple[np.ndarray, str]] = []
        self._adjust: list[tuple[np.ndarray, str, np.ndarray]] = []
        self._notes: dict[int, list[str]] = {}

    def _mask(self, rows) -> np.ndarray:
        if isinstance(rows, np.ndarray) and rows.dtype == bool:
            return rows
        m = np.zeros(self.n, dtype=bool)
        m[np.asarray(rows, dtype=int)] = True
        return m

    def code(self, rows, code: str) -> None:
        m = self._mask(rows)
        if m.any():
            self._codes.append((m, code))

    def adjust(self, rows, key: str, value) -> None:
        """Record `key: value` on rows (a value for all, or an array with one value per row of the session)."""
        m = self._mask(rows)
        if m.any():
            self._adjust.append((m, key, np.broadcast_to(np.asarray(value, dtype=float), (self.n,))))

    def note(self, rows, text, groups: np.ndarray | None = None) -> None:
        """A sentence on each of rows: a string, or a function of the row index (of the row's group when
        `groups` gives each row a group number: one sentence per group, e.g. per sector)."""
        idx = np.flatnonzero(self._mask(rows)).tolist()
        if not idx:
            return
        if isinstance(text, str):
            texts = [text] * len(idx)
        elif groups is not None:
            per_group: dict[int, str] = {}
            texts = [per_group[k] if k in per_group else per_group.setdefault(k, text(k))
                     for k in groups[idx].tolist()]
        else:
            texts = map(text, idx)
        notes = self._notes
        for i, t in zip(idx, texts):
            if i in notes:
                notes[i].append(t)
            else:
                notes[i] = [t]

    def reason_codes(self, pre_codes: list[list[str]]) -> list[list[str]]:
        """Per row: its pre-risk codes, then the steps' codes not already among them, in step order."""
        if not self._codes:
            return [list(p) for p in pre_codes]
        pattern = _row_patterns([m for m, _ in self._codes])
        uniq, inverse = np.unique(pattern, return_inverse=True)
        lists = []
        for p in uniq.tolist():
            codes: list[str] = []
            for k, (_, c) in enumerate(self._codes):
                if p >> k & 1 and c not in codes:
                    codes.append(c)
            lists.append(codes)
        step_codes = {c for _, c in self._codes}
        out = []
        for pre, k in zip(pre_codes, inverse.reshape(-1).tolist()):
            codes = lists[k]
            out.append([*pre, *codes] if step_codes.isdisjoint(pre) else [*pre, *(c for c in codes if c not in pre)])
        return out

    def adjustments(self) -> list[str]:
        """Per row: JSON of its adjustment values and notes (sorted keys)."""
        key = np.zeros(self.n, dtype=np.int64)  # the row's pattern: which events, which of their values
        for m, _, v in self._adjust:  # per event: 0 = absent, else 1 + the index of the row's value
            vals, vi = np.unique(np.where(m, v, np.nan), return_inverse=True)
            key = np.unique(key * (len(vals) + 2) + np.where(m, vi.reshape(-1) + 1, 0), return_inverse=True)[1]
            key = key.reshape(-1).astype(np.int64)  # renumbered 0..k-1: the product never overflows
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1).tolist()
        dicts = []
        for i in first.tolist():
            d = {}
            for m, key, v in self._adjust:
                if m[i]:
                    d[key] = float(v[i])
            dicts.append(d)
        texts = [_JSON(d) for d in dicts]
        out = [texts[k] for k in inverse]
        cache: dict[tuple, str] = {}
        for i, notes in self._notes.items():
            key = (inverse[i], tuple(notes))
            if key not in cache:
                cache[key] = _JSON({**dicts[inverse[i]], "notes": notes})
            out[i] = cache[key]
        return out


def _row_patterns(masks: list[np.ndarray]) -> np.ndarray:
    """One integer per row whose bit k says whether mask k holds the row (Python ints past 63 masks)."""
    if len(masks) <= 62:
        out = np.zeros(len(masks[0]), dtype=np.int64)
        for k, m in enumerate(masks):
            out |= m.astype(np.int64) << k
        return out
    return np.array([sum(1 << k for k, m in enumerate(masks) if m[i]) for i in range(len(masks[0]))], dtype=object)


@dataclass
class GateState:
    """One session in the gate: the inputs prepared once, the weights and orders the steps change, the ledger."""

    x: GateInput
    s: RiskSettings
    n: int
    price: np.ndarray
    safe_px: np.ndarray  # the (possibly stale) mark, 0 where none: weights of held names
    has_price: np.ndarray  # a valid close today: the name can be sized and traded
    q0: np.ndarray
    nav: float
    w0: np.ndarray  # current weights
    raw: np.ndarray
    pre_reject: np.ndarray
    sectors: list[str]  # distinct sectors, sorted
    sector_idx: np.ndarray
    returns: np.ndarray  # T x N, NaN -> 0 (the last cvar_lookback rows)
    tail_returns: np.ndarray  # the whole window given (the EVT model's)
    z: np.ndarray
    ok: np.ndarray
    vols: np.ndarray  # annualized vol per name (features, else the history's)
    ledger: Ledger
    fixed: np.ndarray = None
    w: np.ndarray = None  # the proposed weights (steps 1-11)
    order: np.ndarray = None  # signed whole shares (steps 12-19)
    rejected: np.ndarray = None
    proposed: np.ndarray = None  # the orders before the first rejected buy (None: nothing rejected)
    factors: dict = field(default_factory=dict)
    _tail_cache: dict = field(default_factory=dict)

    @property
    def free(self) -> np.ndarray:
        return ~self.fixed

    def sector_sums(self, w: np.ndarray) -> np.ndarray:
        return np.bincount(self.sector_idx, weights=np.abs(w), minlength=len(self.sectors))

    def final_weights(self) -> np.ndarray:
        """(current + order) * mark / NAV."""
        return (self.q0 + self.order) * self.safe_px / self.nav if self.nav > 0 else np.zeros(self.n)

    def tail_estimate(self, w: np.ndarray):
        """The tail model's estimate for the book w (memoized: the gate asks for the same book several times);
        None without a model."""
        model = self.x.tail_model
        if model is None:
            return None
        key = np.asarray(w, dtype=float).tobytes()
        if key not in self._tail_cache:
            self._tail_cache[key] = model.estimate(self.tail_returns, w, self.s.tail_loss_threshold, self.s.cvar_confidence)
        return self._tail_cache[key]

    def tail_of(self, w: np.ndarray) -> float:
        """P(one-day loss > tail_loss_threshold): EVT (POT) when the model has enough exceedances, else Student-t."""
        e = self.tail_estimate(w)
        if e is not None and e.method == "evt":
            return e.probability
        return tail_probability(_std_clean(self.returns, w), self.s.tail_loss_threshold, self.s.tail_dof)

    def cvar_of(self, w: np.ndarray) -> float:
        """CVaR at cvar_confidence: the EVT expected shortfall when the model has enough exceedances, else historical."""
        e = self.tail_estimate(w)
        if e is not None and e.method == "evt":
            return e.expected_shortfall
        return _cvar_clean(self.returns, w, self.s.cvar_confidence)

    def scale_free(self, factor, rows: np.ndarray | None = None) -> None:
        """Multiply the free names' weights (or those of `rows`) by factor (a number or an array)."""
        self.w = np.where(self.free if rows is None else rows, self.w * factor, self.w)

    def reject_buys(self, rows: np.ndarray, code: str, sentence) -> None:
        """The one way a step refuses risk: the rows' BUY orders become no order, REJECT, with code and sentence."""
        buys = rows & (self.order > 0)
        if buys.any():
            if self.proposed is None:  # what the orders were before the first rejection
                self.proposed = self.order.copy()
            self.ledger.code(buys, code)
            self.ledger.note(buys, sentence)
            self.rejected |= buys
            self.order = np.where(buys, 0.0, self.order)


def prepare(x: GateInput, s: RiskSettings) -> GateState:
    n = len(x.symbols)
    price = np.asarray(x.price, dtype=float)
    markable = np.isfinite(price) & (price > 0)
    safe_px = np.where(markable, price, 0.0)
    has_price = markable & (np.ones(n, dtype=bool) if x.price_ok is None else np.asarray(x.price_ok, dtype=bool))
    q0 = np.asarray(x.current_qty, dtype=float)
    nav = float(x.nav)
    sectors = sorted(set(x.sectors))
    pos = {sc: j for j, sc in enumerate(sectors)}
    returns = np.asarray(x.returns, dtype=float)
    returns = (returns.copy(order="K") if np.isfinite(returns).all() else np.nan_to_num(returns)).reshape(-1, n)
    tail_returns = returns
    if returns.shape[0] > s.cvar_lookback:  # a longer window is the EVT model's; the rest reads cvar_lookback rows
        returns = returns[-s.cvar_lookback:].copy()
    z, ok, sd = _standardized_clean(returns)
    hist_vol = sd * math.sqrt(x.annualization) if sd is not None else np.zeros(n)
    vol = np.asarray(x.vol, dtype=float)
    return GateState(
        x=x, s=s, n=n, price=price, safe_px=safe_px, has_price=has_price, q0=q0, nav=nav,
        w0=q0 * safe_px / nav if nav > 0 else np.zeros(n), raw=np.asarray(x.target_raw, dtype=float),
        pre_reject=np.asarray(x.pre_reject, dtype=bool), sectors=sectors,
        sector_idx=np.array([pos[sc] for sc in x.sectors], dtype=int) if n else np.zeros(0, int),
        returns=returns, tail_returns=tail_returns, z=z, ok=ok, vols=np.where(np.isfinite(vol) & (vol > 0), vol, hist_vol), ledger=Ledger(n),
    )


# --- steps on the proposed weights ------------------------------------------------------------------
def untradable(g: GateState) -> None:
    """Fixed names keep their current weight: no valid close, pre-risk REJECT, no target, HALTED."""
    x, s, led = g.x, g.s, g.ledger
    halted = x.trading_state == HALTED
    g.fixed = g.pre_reject | ~g.has_price | ~np.isfinite(g.raw) | halted
    led.code(~g.has_price, rc.NO_PRICE)
    led.note(~g.has_price, lambda i: f"no close for {x.symbols[i]}: cannot size or mark a trade; position held")
    led.note(g.has_price & g.pre_reject & (g.q0 != 0),
             lambda i: f"pre-risk REJECT ({', '.join(x.pre_codes[i]) or 'no reason'}): "
                       f"position of {g.q0[i]:g} shares held as is, no trade on untrusted data")
    if halted:
        every = np.ones(g.n, dtype=bool)
        led.code(every, rc.TRADING_HALTED)
        led.code(every, rc.RISK_OVERRIDE)
        led.note(every, f"trading HALTED: drawdown {x.drawdown:.1%} >= {s.halt_drawdown:.0%}")
    g.w = np.where(g.free, np.nan_to_num(g.raw), g.w0)


def long_only(g: GateState) -> None:
    """A negative raw target means: hold none."""
    neg = g.free & (g.w < 0)
    g.ledger.note(neg, lambda i: f"negative raw target {g.raw[i]:.4f} -> 0 (long-only book)")
    g.w = np.where(neg, 0.0, g.w)


def _scaled_rows(g: GateState) -> np.ndarray:
    return g.free & (g.w > 0)


def _scale_book(g: GateState, f: float, code: str, adjustment: str, recorded: float) -> None:
    """A book-wide factor f < 1: every scaled row gets the reason code and the adjustment (value `recorded`), w *= f."""
    if f < 1:
        rows = _scaled_rows(g)
        g.ledger.code(rows, code)
        g.ledger.adjust(rows, adjustment, recorded)
        g.scale_free(f)


def volatility_scaling(g: GateState) -> None:
    """f_vol = min(1, vol_target / sigma_p) on the book as proposed so far (risk.portfolio_vol)."""
    sigma = portfolio_vol(g.w, g.vols, g.z, g.ok)
    f = vol_scale(sigma, g.s.vol_target)
    g.factors.update(sigma_raw=sigma, vol_scale=f)
    _scale_book(g, f, rc.VOL_SCALED, "vol_scale", round(f, 10))


def drawdown_scaling(g: GateState) -> None:
    """f_dd = exp(-drawdown_k * DD)."""
    f = drawdown_factor(g.x.drawdown, g.s.drawdown_k)
    g.factors["drawdown_scale"] = f
    _scale_book(g, f, rc.DRAWDOWN_SCALED, "drawdown_scale", round(f, 10))


def regime_scaling(g: GateState) -> None:
    """f_reg = risk_off_multiplier on the rows whose regime is 'risk_off'."""
    f = np.array([regime_factor(r, g.s.risk_off_multiplier) for r in g.x.regime]) if g.n else np.zeros(0)
    rows = _scaled_rows(g) & (f < 1)
    g.ledger.code(rows, rc.REGIME_RISK_OFF)
    g.ledger.adjust(rows, "regime_scale", f)
    g.scale_free(f, rows)


def recovery_scaling(g: GateState) -> None:
    """f_rec = recovery_phases[phase - 1] while recovering."""
    f = recovery_factor(g.x.recovery_phase, g.s.recovery_phases)
    g.factors["recovery_scale"] = f
    _scale_book(g, f, rc.RECOVERY_PHASE, "recovery_scale", f)


def single_name_limit(g: GateState) -> None:
    """w_i <= max_single_name."""
    cap = g.s.max_single_name
    over = g.free & (g.w > cap)
    g.ledger.code(over, rc.SINGLE_NAME_LIMIT)
    g.ledger.adjust(over, "single_name_cap", cap)
    g.ledger.note(over, lambda i: f"target {g.w[i]:.2%} capped at the single-name limit {cap:.0%}")
    g.w = np.where(over, cap, g.w)


def sector_limit(g: GateState) -> None:
    """Each sector <= max_sector: its free names scaled pro rata by (max_sector - fixed) / free."""
    cap = g.s.max_sector
    fixed_sec = np.bincount(g.sector_idx, weights=np.where(g.fixed, np.abs(g.w), 0.0), minlength=len(g.sectors))
    free_sec = np.bincount(g.sector_idx, weights=np.where(g.free, g.w, 0.0), minlength=len(g.sectors))
    # fixed names alone at or above the limit: nothing to scale to (final_sector rejects the buys)
    breach = (fixed_sec + free_sec > cap + _EPS) & (free_sec > 0) & (fixed_sec < cap)
    scale = np.where(breach, (cap - fixed_sec) / np.where(free_sec > 0, free_sec, 1.0), 1.0)
    rows = _scaled_rows(g) & breach[g.sector_idx]
    if rows.any():
        g.ledger.code(rows, rc.SECTOR_LIMIT)
        g.ledger.adjust(rows, "sector_scale", np.array([round(float(v), 10) for v in scale])[g.sector_idx])
        g.ledger.note(rows, lambda j: (f"sector {g.sectors[j]} at {fixed_sec[j] + free_sec[j]:.2%} > {cap:.0%}: "
                                       f"its names scaled by {scale[j]:.4f}"), groups=g.sector_idx)
    g.scale_free(scale[g.sector_idx])


def gross_limit(g: GateState) -> None:
    """sum |w| <= max_gross_leverage: the free names scaled pro rata by (limit - fixed) / free."""
    cap = g.s.max_gross_leverage
    fixed_gross = float(np.abs(np.where(g.fixed, g.w, 0.0)).sum())
    free_gross = float(np.where(g.free, g.w, 0.0).sum())
    if fixed_gross + free_gross > cap + _EPS and free_gross > 0 and fixed_gross < cap:
        f = (cap - fixed_gross) / free_gross
        rows = _scaled_rows(g)
        g.ledger.code(rows, rc.LEVERAGE_SCALED)
        g.ledger.adjust(rows, "leverage_scale", round(f, 10))
        g.ledger.note(rows, f"gross {fixed_gross + free_gross:.2f}x > {cap:.2f}x: scaled by {f:.4f}")
        g.scale_free(f)


def _largest_scale(metric: Callable[[float], float], limit: float, iterations: int) -> tuple[float, bool]:
    """Largest s in [0, 1] with metric(s) <= limit (metric convex in s), by bisection. (s, feasible)."""
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


def _scale_to_limit(g: GateState, name: str, measure: Callable[[np.ndarray], float], limit: float, code: str) -> None:
    """Scale the free part of the book by the largest s in [0, 1] meeting measure <= limit; when the fixed
    names alone breach it (infeasible), leave it to the final step."""
    w_fixed = np.where(g.fixed, g.w, 0.0)
    w_free = np.where(g.free, g.w, 0.0)
    if not w_free.any():
        return
    sc, feasible = _largest_scale(lambda k: measure(w_fixed + k * w_free), limit, g.s.scale_search_iterations)
    if feasible and sc < 1.0:
        rows = w_free > 0
        g.ledger.code(rows, code)
        g.ledger.adjust(rows, f"{name}_scale", round(sc, 10))
        g.ledger.note(rows, f"{name} of the proposed book above its limit {limit:g}: tradable names scaled by {sc:.4f}")
        g.w = w_fixed + w_free * sc


def tail_scaling(g: GateState) -> None:
    """Largest s in [0, 1] with P(one-day loss > tail_loss_threshold) <= tail_prob_limit (Student-t)."""
    _scale_to_limit(g, "tail", g.tail_of, g.s.tail_prob_limit, rc.TAIL_RISK)


def cvar_scaling(g: GateState) -> None:
    """Largest s in [0, 1] with historical CVaR <= cvar_limit."""
    _scale_to_limit(g, "cvar", g.cvar_of, g.s.cvar_limit, rc.CVAR_SCALED)


# --- steps on the orders ----------------------------------------------------------------------------
def whole_shares(g: GateState) -> None:
    """target shares = floor(w NAV / close) (rounding down never breaks a limit); order = target - current."""
    px = np.where(g.has_price, g.price, 1.0)
    target = np.where(g.free, np.floor(np.where(g.has_price, g.w * g.nav / px, 0.0) + 1e-6), g.q0)
    g.order = np.where(g.free, target - g.q0, 0.0)
    g.rejected = np.zeros(g.n, dtype=bool)


def adv_limit(g: GateState) -> None:
    """|order| <= floor(max_adv_fraction * ADV shares); unknown ADV: no order."""
    adv = np.asarray(g.x.adv, dtype=float)
    known = np.isfinite(adv) & (adv > 0)
    cap = np.where(known, np.floor(g.s.max_adv_fraction * np.nan_to_num(adv)), 0.0)
    over = g.free & (g.order != 0) & (np.abs(g.order) > cap)
    if not over.any():
        return
    g.ledger.code(over, rc.ADV_LIMIT)
    g.ledger.adjust(over, "adv_cap_shares", cap)
    order = g.order
    g.ledger.note(over, lambda i: (f"no ADV for {g.x.symbols[i]}: liquidity unknown, no order" if not known[i] else
                                   f"order {order[i]:+g} shares capped at {g.s.max_adv_fraction:.0%} of ADV "
                                   f"({adv[i]:.0f}) = {cap[i]:g}"))
    g.order = np.where(over, np.copysign(cap, g.order), g.order)


def minimum_trade(g: GateState) -> None:
    """|order| close / NAV < min_trade_weight: not worth trading, unless it sells a name, sector or book
    that is above its limit now."""
    s = g.s
    if g.nav <= 0:
        return
    cur_sec = g.sector_sums(g.w0)
    breach_now = ((g.w0 > s.max_single_name + _EPS) | (cur_sec[g.sector_idx] > s.max_sector + _EPS)
                  | (float(np.abs(g.w0).sum()) > s.max_gross_leverage + _EPS))
    small = g.free & (g.order != 0) & (np.abs(g.order) * g.safe_px / g.nav < s.min_trade_weight)
    small &= ~((g.order < 0) & breach_now)
    g.ledger.code(small, rc.BELOW_TRADE_THRESHOLD)
    order = g.order
    g.ledger.note(small, lambda i: f"order {order[i]:+g} shares < {s.min_trade_weight:.2%} of NAV: not worth trading")
    g.order = np.where(small, 0.0, g.order)


def reducing_only(g: GateState) -> None:
    """REDUCING: only risk-reducing orders; every buy is rejected."""
    if g.x.trading_state != REDUCING:
        return
    buys = g.order > 0
    g.ledger.code(buys, rc.REDUCING_ONLY)
    g.reject_buys(buys, rc.RISK_OVERRIDE, f"trading REDUCING (drawdown {g.x.drawdown:.1%} >= "
                                          f"{g.s.reducing_drawdown:.0%}): only risk-reducing orders allowed")


def final_gross(g: GateState) -> None:
    """The final book's gross above the limit (fixed names, ADV-capped sells): its buys rejected."""
    gross = float(np.abs(g.final_weights()).sum())
    if gross > g.s.max_gross_leverage + _FINAL_TOL:
        g.reject_buys(g.order > 0, rc.LEVERAGE_LIMIT,
                      f"final gross {gross:.3f}x > {g.s.max_gross_leverage:.2f}x: buy rejected")


def final_sector(g: GateState) -> None:
    """Buys into a sector the final book holds above its limit are rejected."""
    sec = g.sector_sums(g.final_weights())
    rows = sec[g.sector_idx] > g.s.max_sector + _FINAL_TOL
    g.reject_buys(rows, rc.SECTOR_LIMIT, lambda i: f"sector {g.x.sectors[i]} would be {sec[g.sector_idx[i]]:.2%} > "
                                                   f"{g.s.max_sector:.0%}: buy rejected")


def final_tail(g: GateState) -> None:
    """The final book's tail probability above the limit: its buys rejected."""
    v = g.tail_of(g.final_weights())
    if v > g.s.tail_prob_limit + 1e-9:
        g.reject_buys(g.order > 0, rc.TAIL_RISK,
                      f"tail probability of the final book {v:.4f} > limit {g.s.tail_prob_limit:g}: risk-adding buy rejected")


def final_cvar(g: GateState) -> None:
    """The final book's CVaR above the limit: its buys rejected."""
    v = g.cvar_of(g.final_weights())
    if v > g.s.cvar_limit + 1e-9:
        g.reject_buys(g.order > 0, rc.CVAR_BREACH,
                      f"CVaR of the final book {v:.4f} > limit {g.s.cvar_limit:g}: risk-adding buy rejected")


GATE_STEPS: tuple[Callable[[GateState], None], ...] = (
    untradable, long_only, volatility_scaling, drawdown_scaling, regime_scaling, recovery_scaling,
    single_name_limit, sector_limit, gross_limit, tail_scaling, cvar_scaling,
    whole_shares, adv_limit, minimum_trade, reducing_only, final_gross, final_sector, final_tail, final_cvar,
)


def decide(g: GateState) -> GateResult:
    """The seed's final decision rules on the gated orders, the final book's measures and warnings."""
    s, x = g.s, g.x
    rej = (x.trading_state == HALTED) | g.pre_reject | ~g.has_price | g.rejected
    sell = ~rej & (g.order < 0)
    buy = ~rej & (g.order > 0)
    g.ledger.code(sell, rc.POSITION_REDUCTION)
    g.ledger.code(buy, rc.POSITION_INCREASE)
    decision = np.where(rej, rc.REJECT, np.where(sell, rc.EXECUTE_SELL, np.where(buy, rc.EXECUTE_BUY, rc.HOLD))).tolist()
    wf = g.final_weights()
    cvar, tail, sec = g.cvar_of(wf), g.tail_of(wf), g.sector_sums(wf)
    gross = float(np.abs(wf).sum())
    warnings = []
    if gross > s.max_gross_leverage + _FINAL_TOL:
        warnings.append(f"gross {gross:.3f}x above {s.max_gross_leverage:.2f}x (positions the gate could not trade)")
    for j, sc in enumerate(g.sectors):
        if sec[j] > s.max_sector + _FINAL_TOL:
            warnings.append(f"sector {sc} at {sec[j]:.2%} above {s.max_sector:.0%} (positions the gate could not trade)")
    if cvar > s.cvar_limit + 1e-9:
        warnings.append(f"CVaR {cvar:.4f} above the limit {s.cvar_limit:g} (positions the gate could not trade)")
    if x.trading_state != ACTIVE:
        warnings.append(f"trading state {x.trading_state} (drawdown {x.drawdown:.2%})")
    f = g.factors
    return GateResult(
        decision=decision, order_qty=g.order, approved_weight=wf, current_weight=g.w0,
        reason_codes=g.ledger.reason_codes(x.pre_codes), adjustments=g.ledger.adjustments(),
        cvar=cvar, tail_prob=tail, gross=gross,
        sector_exposure={sc: float(sec[j]) for j, sc in enumerate(g.sectors) if sec[j] != 0},
        warnings=warnings,
        factors={"vol_scale": f.get("vol_scale", 1.0), "drawdown_scale": f.get("drawdown_scale", 1.0),
                 "recovery_scale": f.get("recovery_scale", 1.0), "sigma_raw": f.get("sigma_raw", 0.0),
                 **_tail_factors(g.tail_estimate(wf))},
        proposed_qty=g.order if g.proposed is None else g.proposed,
    )


def _tail_factors(e) -> dict[str, float]:
    """The final book's tail estimate (evt 1.0 when the GPD was used, its threshold, shape, scale, exceedances)."""
    if e is None:
        return {}
    return {"tail_evt": float(e.method == "evt"), "tail_threshold": e.threshold, "tail_xi": e.xi, "tail_beta": e.beta,
            "tail_exceedances": float(e.n_exceed)}


def gate(x: GateInput, s: RiskSettings, steps: tuple[Callable[[GateState], None], ...] = GATE_STEPS) -> GateResult:
    """Run the gate's steps in order on one session, then the decision rules (module docstring)."""
    g = prepare(x, s)
    for step in steps:
        step(g)
    return decide(g)
