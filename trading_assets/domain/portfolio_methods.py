"""Portfolio construction methods: the target weights the risk gate receives (settings.portfolio.method).

Pure (numpy). `session_targets(...)` gives, per name, the method's target weight (NaN for the names
the gate keeps fixed) and the session's optimizer record.

- kelly_diagonal: the Meta-Brain's per-name fractional Kelly target gamma * mu / sigma^2 (meta_brain.py),
  unchanged: the seed's book.
- kelly_mv: the multi-asset Kelly optimizer (domain/optimizer.py): correlation, costs and the hard
  limits in one program; the cost of a trade is divided by portfolio.cost_horizon_sessions (H = 21: paid
  once, earned on every session held); a failed solve holds the current weights (reason OPTIMIZER_FAILED).
- topk_dropout: qlib's TopkDropoutStrategy (qlib/contrib/strategy/signal_strategy.py, method_sell =
  "bottom", method_buy = "top") on the score mu_hat: hold the top k; each session, among the held
  names ranked with the best n_drop + k - held unheld names, the held names in the bottom n_drop of
  that ranking are sold (all of it) and replaced by as many of the best unheld names (plus k - held to
  fill the book); the names kept keep their weight; each bought name gets (1 - kept weight) *
  risk_degree / number bought (qlib: cash * risk_degree / len(buy), cash after the sells). Names the
  gate cannot trade are never picked to buy or sell.
"""

from __future__ import annotations

import json
import math

import numpy as np

from trading_assets.domain import costs
from trading_assets.domain import optimizer as opt
from trading_assets.settings import Settings

KELLY_MV = "kelly_mv"
KELLY_DIAGONAL = "kelly_diagonal"
TOPK_DROPOUT = "topk_dropout"
METHODS = (KELLY_MV, KELLY_DIAGONAL, TOPK_DROPOUT)


def topk_dropout(score: np.ndarray, w0: np.ndarray, tradable: np.ndarray, topk: int, n_drop: int,
                 risk_degree: float) -> np.ndarray:
    """Target weights of TopkDropoutStrategy (module docstring); ties broken by position (stable sort)."""
    n = len(w0)
    s = np.where(np.isfinite(score), score, -np.inf)
    held = w0 > 0
    order = np.argsort(-s, kind="stable")  # best first
    last = [i for i in order if held[i]]
    n_new = max(n_drop + topk - len(last), 0)
    today = [i for i in order if not held[i] and tradable[i] and np.isfinite(score[i])][:n_new]
    comb = sorted(last + today, key=lambda i: (-s[i], i))
    bottom = set(comb[-n_drop:]) if n_drop > 0 else set()
    sell = [i for i in last if i in bottom and tradable[i]]
    buy = today[: len(sell) + topk - len(last)]
    target = w0.astype(float).copy()
    target[sell] = 0.0
    if buy:
        kept = float(target[held].sum())
        target[buy] = max(1.0 - kept, 0.0) * risk_degree / len(buy)
    return target


def session_targets(method: str, *, mu: np.ndarray, sigma_daily: np.ndarray, kelly_target: np.ndarray,
                    w0: np.ndarray, tradable: np.ndarray, sectors: list[str], close: np.ndarray, adv: np.ndarray,
                    vol_daily: np.ndarray, returns: np.ndarray, nav: float, settings: Settings) -> tuple[np.ndarray, dict]:
    """(target weights for the gate, the session's record for the portfolio table)."""
    if method == KELLY_DIAGONAL:
        return kelly_target, {"method": method}
    if method == TOPK_DROPOUT:
        p = settings.portfolio
        t = topk_dropout(mu, w0, tradable, p.topk, p.n_drop, p.risk_degree)
        return np.where(tradable, t, np.nan), {"method": method}
    if method != KELLY_MV:
        raise ValueError(f"portfolio.method must be one of {METHODS}, not {method!r}")
    r = settings.risk
    px_ok = np.isfinite(close) & (close > 0)
    adv_ok = np.isfinite(adv) & (adv > 0)
    max_trade = np.where(px_ok & adv_ok, r.max_adv_fraction * np.nan_to_num(adv) * np.where(px_ok, close, 0.0) / nav, 0.0)
    a, b = costs.weight_cost_coefficients(nav, close, adv, vol_daily, max_trade, settings.execution, settings.costs)
    h = settings.portfolio.cost_horizon_sessions  # the cost amortized over the expected holding period
    a, b = a / h, b / h
    names = sorted(set(sectors))
    pos = {s: j for j, s in enumerate(names)}
    x = opt.OptimizerInput(mu=mu, sigma=sigma_daily, w0=w0, tradable=tradable & adv_ok,
                           sector_idx=np.array([pos[s] for s in sectors], dtype=int), n_sectors=len(names),
                           max_trade=max_trade, cost_a=a, cost_b=b, returns=returns)
    res = opt.optimize(x, r, settings.portfolio, settings.meta.kelly_gamma)
    binding = dict(res.binding)
    if "sectors_at_cap" in binding:
        binding["sectors_at_cap"] = [names[j] for j in binding["sectors_at_cap"]]
    record = {
        "method": method, "optimizer_status": res.status, "expected_return": res.expected_return,
        "risk_penalty": res.risk_penalty, "cost_penalty": res.cost, "ex_ante_vol": res.ex_ante_vol,
        "optimizer": json.dumps({"objective": res.objective, "binding": binding, "names_in_program": res.n_active,
                                 "solves": res.rounds, "iterations": res.iterations, "ok": res.ok},
                                sort_keys=True, default=_finite),
        "ok": res.ok,
    }
    target = np.where(x.tradable, res.weights, np.where(tradable, w0, np.nan))
    return target, record


def _finite(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v
