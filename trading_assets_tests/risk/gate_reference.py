"""The risk gate as it was before the column-wise rewrite (bit masks for codes, shared adjustment
texts), kept verbatim as the oracle of test_gate_equals_reference: the rewrite must give the same
GateResult, bit for bit, on any input."""

from __future__ import annotations

import math

import numpy as np

from trading_assets.domain import reasons as rc
from trading_assets.domain.risk import (_ADJUSTMENTS_JSON, _EPS, ACTIVE, HALTED, REDUCING, GateInput, GateResult,
                                        _cvar_clean, _largest_scale, _sector_sums, _std_clean, drawdown_factor,
                                        recovery_factor, regime_factor, tail_probability, vol_scale)
from trading_assets.settings import RiskSettings


def _standardized_clean(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """standardized on returns already free of NaN, also returning the column sample std (None if T < 2)."""
    if r.shape[0] < 2:
        return np.zeros_like(r), np.zeros(r.shape[1], dtype=bool), None
    sd = r.std(axis=0, ddof=1)
    ok = sd > 0
    z = np.zeros_like(r)
    z[:, ok] = (r[:, ok] - r[:, ok].mean(axis=0)) / sd[ok]
    return z, ok, sd


def portfolio_vol(weights: np.ndarray, vols: np.ndarray, z: np.ndarray, ok: np.ndarray) -> float:
    """Annual ex-ante volatility sqrt((D w)' C (D w)) = sqrt(||Z (D w)||^2 / (T - 1) + uncorrelated part)."""
    dw = np.nan_to_num(weights * vols)
    t = z.shape[0]
    var = float(np.sum((z[:, ok] @ dw[ok]) ** 2) / (t - 1)) if t >= 2 and ok.any() else 0.0
    var += float(np.sum(dw[~ok] ** 2))
    return math.sqrt(max(var, 0.0))


def gate(x: GateInput, s: RiskSettings) -> GateResult:
    """Run the risk gate on one session (see the module docstring for every rule)."""
    n = len(x.symbols)
    price = np.asarray(x.price, dtype=float)
    markable = np.isfinite(price) & (price > 0)
    safe_px = np.where(markable, price, 0.0)  # weights of held names use the (possibly stale) mark
    has_price = markable & (np.ones(n, dtype=bool) if x.price_ok is None else np.asarray(x.price_ok, dtype=bool))
    q0 = np.asarray(x.current_qty, dtype=float)
    nav = float(x.nav)
    w0 = q0 * safe_px / nav if nav > 0 else np.zeros(n)
    raw = np.asarray(x.target_raw, dtype=float)
    codes: list[list[str]] = [list(c) for c in x.pre_codes]
    notes: list[list[str]] = [[] for _ in range(n)]
    adj: list[dict] = [{} for _ in range(n)]
    sectors_list = sorted(set(x.sectors))
    sec_pos = {sc: j for j, sc in enumerate(sectors_list)}
    sector_idx = np.array([sec_pos[sc] for sc in x.sectors], dtype=int) if n else np.zeros(0, int)
    n_sec = len(sectors_list)
    returns = np.nan_to_num(np.asarray(x.returns, dtype=float)).reshape(-1, n)
    # one cleaned copy (the measures' own NaN cleaning is a no-op on it, so it is skipped below)
    z, ok, sd = _standardized_clean(np.nan_to_num(returns))
    hist_vol = sd * math.sqrt(x.annualization) if sd is not None else np.zeros(n)
    vols = np.where(np.isfinite(x.vol) & (np.asarray(x.vol) > 0), x.vol, hist_vol)
    halted = x.trading_state == HALTED

    def add(i: int, code: str, note: str | None = None) -> None:
        if code not in codes[i]:
            codes[i].append(code)
        if note:
            notes[i].append(note)

    # which names the gate may trade
    fixed = np.asarray(x.pre_reject, dtype=bool) | ~has_price | ~np.isfinite(raw) | halted
    for i in range(n):
        if not has_price[i]:
            add(i, rc.NO_PRICE, f"no close for {x.symbols[i]}: cannot size or mark a trade; position held")
        elif x.pre_reject[i] and q0[i] != 0:
            notes[i].append(f"pre-risk REJECT ({', '.join(x.pre_codes[i]) or 'no reason'}): "
                            f"position of {q0[i]:g} shares held as is, no trade on untrusted data")
        if halted:
            add(i, rc.TRADING_HALTED, f"trading HALTED: drawdown {x.drawdown:.1%} >= {s.halt_drawdown:.0%}")
            add(i, rc.RISK_OVERRIDE)
    free = ~fixed
    w = np.where(free, np.maximum(np.nan_to_num(raw), 0.0), w0)
    for i in np.flatnonzero(free & (np.nan_to_num(raw) < 0)):
        notes[i].append(f"negative raw target {raw[i]:.4f} -> 0 (long-only book)")

    # adjustments (tradable names only)
    sigma_raw = portfolio_vol(w, vols, z, ok)
    f_vol = vol_scale(sigma_raw, s.vol_target)
    f_dd = drawdown_factor(x.drawdown, s.drawdown_k)
    f_rec = recovery_factor(x.recovery_phase, s.recovery_phases)
    f_reg = np.array([regime_factor(r, s.risk_off_multiplier) for r in x.regime]) if n else np.zeros(0)
    mult = f_vol * f_dd * f_rec * f_reg
    f_vol_r, f_dd_r = round(f_vol, 10), round(f_dd, 10)
    for i in np.flatnonzero(free & (w > 0)):
        if f_vol < 1:
            add(i, rc.VOL_SCALED)
            adj[i]["vol_scale"] = f_vol_r
        if f_dd < 1:
            add(i, rc.DRAWDOWN_SCALED)
            adj[i]["drawdown_scale"] = f_dd_r
        if f_reg[i] < 1:
            add(i, rc.REGIME_RISK_OFF)
            adj[i]["regime_scale"] = f_reg[i]
        if f_rec < 1:
            add(i, rc.RECOVERY_PHASE)
            adj[i]["recovery_scale"] = f_rec
    w = np.where(free, w * mult, w)

    # 1. single name
    over = free & (w > s.max_single_name)
    for i in np.flatnonzero(over):
        add(i, rc.SINGLE_NAME_LIMIT, f"target {w[i]:.2%} capped at the single-name limit {s.max_single_name:.0%}")
        adj[i]["single_name_cap"] = s.max_single_name
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
    for i in np.flatnonzero(free & (w > 0) & (sec_scale[sector_idx] < 1)):
        j = sector_idx[i]
        add(i, rc.SECTOR_LIMIT, f"sector {sectors_list[j]} at {fixed_sec[j] + free_sec[j]:.2%} > "
                                f"{s.max_sector:.0%}: its names scaled by {sec_scale[j]:.4f}")
        adj[i]["sector_scale"] = sec_scale_r[j]
    w = np.where(free, w * sec_scale[sector_idx], w)

    # 3. gross leverage, pro rata
    fixed_gross = float(np.abs(np.where(fixed, w, 0.0)).sum())
    free_gross = float(np.where(free, w, 0.0).sum())
    if fixed_gross + free_gross > s.max_gross_leverage + _EPS and free_gross > 0 and fixed_gross < s.max_gross_leverage:
        g = (s.max_gross_leverage - fixed_gross) / free_gross
        g_r = round(g, 10)
        for i in np.flatnonzero(free & (w > 0)):
            add(i, rc.LEVERAGE_SCALED, f"gross {fixed_gross + free_gross:.2f}x > {s.max_gross_leverage:.2f}x: "
                                       f"scaled by {g:.4f}")
            adj[i]["leverage_scale"] = g_r
        w = np.where(free, w * g, w)

    # 4-5. tail probability and CVaR: largest scale of the tradable part meeting the limit
    w_fixed = np.where(fixed, w, 0.0)
    w_free = np.where(free, w, 0.0)

    def tail_at(scale: float) -> float:
        return tail_probability(_std_clean(returns, w_fixed + scale * w_free), s.tail_loss_threshold, s.tail_dof)

    def cvar_at(scale: float) -> float:
        return _cvar_clean(returns, w_fixed + scale * w_free, s.cvar_confidence)

    for metric, limit, code, key in ((tail_at, s.tail_prob_limit, rc.TAIL_RISK, "tail_scale"),
                                     (cvar_at, s.cvar_limit, rc.CVAR_SCALED, "cvar_scale")):
        if not w_free.any():
            break
        sc, feasible = _largest_scale(metric, limit, s.scale_search_iterations)
        if feasible and sc < 1.0:  # infeasible (fixed names alone breach): step 9 rejects the buys
            sc_r = round(sc, 10)
            for i in np.flatnonzero(w_free > 0):
                add(i, code, f"{key.split('_')[0]} of the proposed book above its limit {limit:g}: "
                             f"tradable names scaled by {sc:.4f}")
                adj[i][key] = sc_r
            w_free = w_free * sc
    w = w_fixed + w_free

    # 6. whole shares, ADV
    target_qty = np.where(free, np.floor(np.where(has_price, w * nav / np.where(has_price, price, 1.0), 0.0) + 1e-6), q0)
    order = np.where(free, target_qty - q0, 0.0)
    adv = np.asarray(x.adv, dtype=float)
    adv_cap = np.where(np.isfinite(adv) & (adv > 0), np.floor(s.max_adv_fraction * np.nan_to_num(adv)), 0.0)
    for i in np.flatnonzero(free & (order != 0) & (np.abs(order) > adv_cap)):
        if adv_cap[i] == 0 and not (np.isfinite(adv[i]) and adv[i] > 0):
            add(i, rc.ADV_LIMIT, f"no ADV for {x.symbols[i]}: liquidity unknown, no order")
        else:
            add(i, rc.ADV_LIMIT, f"order {order[i]:+g} shares capped at {s.max_adv_fraction:.0%} of ADV "
                                 f"({adv[i]:.0f}) = {adv_cap[i]:g}")
        adj[i]["adv_cap_shares"] = float(adv_cap[i])
        order[i] = math.copysign(adv_cap[i], order[i])

    # 7. minimum trade size, unless a sell is needed because a limit is breached now
    cur_sec = _sector_sums(w0, sector_idx, n_sec)
    cur_breach = (w0 > s.max_single_name + _EPS) | (cur_sec[sector_idx] > s.max_sector + _EPS) | (
        float(np.abs(w0).sum()) > s.max_gross_leverage + _EPS)
    small = free & (order != 0) & (np.abs(order) * safe_px / nav < s.min_trade_weight) if nav > 0 else free & False
    small &= ~((order < 0) & cur_breach)
    for i in np.flatnonzero(small):
        add(i, rc.BELOW_TRADE_THRESHOLD, f"order {order[i]:+g} shares < {s.min_trade_weight:.2%} of NAV: not worth trading")
    order = np.where(small, 0.0, order)

    # 8. trading state
    rejected: dict[int, str] = {}
    if x.trading_state == REDUCING:
        for i in np.flatnonzero(order > 0):
            add(i, rc.REDUCING_ONLY, f"trading REDUCING (drawdown {x.drawdown:.1%} >= {s.reducing_drawdown:.0%}): "
                                     "only risk-reducing orders allowed")
            add(i, rc.RISK_OVERRIDE)
            rejected[i] = rc.REDUCING_ONLY
        order = np.where(order > 0, 0.0, order)

    # 9. feasibility of the final book: buys that add to a breached aggregate are rejected
    def final_w(o: np.ndarray) -> np.ndarray:
        return (q0 + o) * safe_px / nav if nav > 0 else np.zeros(n)

    wf = final_w(order)
    gross_f = float(np.abs(wf).sum())
    if gross_f > s.max_gross_leverage + 1e-6 and (order > 0).any():
        for i in np.flatnonzero(order > 0):
            add(i, rc.LEVERAGE_LIMIT, f"final gross {gross_f:.3f}x > {s.max_gross_leverage:.2f}x: buy rejected")
            rejected[i] = rc.LEVERAGE_LIMIT
        order = np.where(order > 0, 0.0, order)
        wf = final_w(order)
    sec_f = _sector_sums(wf, sector_idx, n_sec)
    for i in np.flatnonzero((order > 0) & (sec_f[sector_idx] > s.max_sector + 1e-6)):
        add(i, rc.SECTOR_LIMIT, f"sector {x.sectors[i]} would be {sec_f[sector_idx[i]]:.2%} > {s.max_sector:.0%}: buy rejected")
        rejected[i] = rc.SECTOR_LIMIT
        order[i] = 0.0
    wf = final_w(order)
    for metric_final, limit, code, label in (
        (lambda ww: tail_probability(_std_clean(returns, ww), s.tail_loss_threshold, s.tail_dof),
         s.tail_prob_limit, rc.TAIL_RISK, "tail probability"),
        (lambda ww: _cvar_clean(returns, ww, s.cvar_confidence), s.cvar_limit, rc.CVAR_BREACH, "CVaR"),
    ):
        val = metric_final(wf)
        if val > limit + 1e-9 and (order > 0).any():
            for i in np.flatnonzero(order > 0):
                add(i, code, f"{label} of the final book {val:.4f} > limit {limit:g}: risk-adding buy rejected")
                rejected[i] = code
            order = np.where(order > 0, 0.0, order)
            wf = final_w(order)

    # decisions
    decision: list[str] = []
    pre_reject = np.asarray(x.pre_reject, dtype=bool)
    for i in range(n):
        if halted or pre_reject[i] or not has_price[i] or i in rejected:
            d = rc.REJECT
        elif order[i] < 0:
            d = rc.EXECUTE_SELL
            add(i, rc.POSITION_REDUCTION)
        elif order[i] > 0:
            d = rc.EXECUTE_BUY
            add(i, rc.POSITION_INCREASE)
        else:
            d = rc.HOLD
        decision.append(d)
        if notes[i]:
            adj[i]["notes"] = notes[i]
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
        reason_codes=codes,
        adjustments=[_ADJUSTMENTS_JSON(a) if a else "{}" for a in adj],
        cvar=cvar_final,
        tail_prob=tail_final,
        gross=float(np.abs(wf).sum()),
        sector_exposure={sectors_list[j]: float(sec_final[j]) for j in range(n_sec) if sec_final[j] != 0},
        warnings=warnings,
        factors={"vol_scale": f_vol, "drawdown_scale": f_dd, "recovery_scale": f_rec, "sigma_raw": sigma_raw},
    )
