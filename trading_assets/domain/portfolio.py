"""The path-dependent book: one session step (fills -> marks -> trading state -> risk gate -> orders).

Pure (polars, numpy). `step(state_prev, inputs, settings)` is the whole of a session t:
1. corporate actions with ex-date t: a split of ratio r (provider prices raw, r = 1 / price_factor)
   multiplies the shares held by r and divides their average cost by r; a cash dividend d pays
   d * shares held at the close of t-1 into cash (ex-date = pay date, a simplification);
2. fill the orders of t-1 at open(t) through the broker (execution.py); no open -> CANCELLED;
3. mark every position at the RAW close of t (the traded price; the last known close when t has
   none, flagged in warnings): NAV_t = cash_t + sum_i q_i * close_i,
   daily_return_t = NAV_t / NAV_{t-1} - 1, peak_t = max(peak_{t-1}, NAV_t), DD_t = 1 - NAV_t / peak_t;
   avg_cost after a buy = (q * avg + q_fill * fill_price) / (q + q_fill) (commission excluded);
4. trading state and recovery phase from DD_t (risk.next_trading_state);
5. the risk gate on the session's targets vs the positions after step 2, sized at NAV_t and close(t);
6. orders (whole shares, hash ids) that fill at the open of t+1.
A HALTED session (a systemic data fault, domain/session_health.py; SessionInputs.halted): the paper
broker fills nothing at its open (t-1's orders CANCELLED, reason SYSTEMIC_DATA_FAULT), every name is
fixed in the gate (no orders), positions are held and marked as in step 3, and the portfolio's
warnings say so. Corporate actions of t still apply to the shares held.
The initial state is flat with settings.execution.initial_capital in cash (NAV = peak = capital).
"""

from __future__ import annotations

import gc
import json
import math
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import execution as ex
from trading_assets.domain import portfolio_methods as pm
from trading_assets.domain import reasons as rc
from trading_assets.domain import risk, tail_risk
from trading_assets.settings import Settings

RISK_DECISION_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "decision": pl.String,
    "reason_codes": pl.List(pl.String),
    "current_weight": pl.Float64,
    "target_weight_raw": pl.Float64,
    "approved_weight": pl.Float64,
    "order_quantity": pl.Float64,
    "adjustments": pl.String,
    "trading_state": pl.String,
    "cycle_id": pl.String,
    "pre_risk_decision": pl.String,
    "mu_hat": pl.Float64,
    "sigma_hat": pl.Float64,
    "close": pl.Float64,
    "sector": pl.String,
    "optimizer_weight": pl.Float64,  # the portfolio method's target (the gate's input); NaN/null: fixed name
}
POSITION_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "quantity": pl.Float64,
    "avg_cost": pl.Float64,
    "close": pl.Float64,
    "market_value": pl.Float64,
    "weight": pl.Float64,
    "unrealized_pnl": pl.Float64,
}
PORTFOLIO_SCHEMA = {
    "date": pl.Date,
    "nav": pl.Float64,
    "cash": pl.Float64,
    "gross_exposure": pl.Float64,
    "net_exposure": pl.Float64,
    "leverage": pl.Float64,
    "daily_return": pl.Float64,
    "drawdown": pl.Float64,
    "peak_nav": pl.Float64,
    "trading_state": pl.String,
    "recovery_phase": pl.Int32,
    "recovery_sessions": pl.Int32,
    "cvar_95": pl.Float64,
    "tail_prob": pl.Float64,
    "approved_gross": pl.Float64,
    "n_positions": pl.Int32,
    "sector_exposure": pl.String,
    "warnings": pl.String,
    "method": pl.String,  # settings.portfolio.method
    "optimizer_status": pl.String,  # kelly_mv: the solver's status (Solved, ..., NoTradableNames); else null
    "expected_return": pl.Float64,  # kelly_mv: mu' w of the optimizer's book (next session, fraction of NAV)
    "risk_penalty": pl.Float64,  # kelly_mv: (1 / (2 gamma)) w' Sigma w
    "cost_penalty": pl.Float64,  # kelly_mv: the cost term of the trades to the optimizer's book
    "ex_ante_vol": pl.Float64,  # kelly_mv: annualized sqrt(252 w' Sigma w) of the optimizer's book
    "optimizer": pl.String,  # kelly_mv: JSON objective, binding constraints, names in the program, solves
    # Why the approved book has its size and its tail figures (the gate's GateResult.factors): the exposure
    # scales the gate applied, and the tail model behind cvar_95 / tail_prob ("evt": the GPD fitted to the
    # book's trailing losses beyond tail_threshold; "historical": historical CVaR and Student-t probability)
    "vol_scale": pl.Float64,
    "drawdown_scale": pl.Float64,
    "recovery_scale": pl.Float64,
    "tail_method": pl.String,
    "tail_threshold": pl.Float64,
    "tail_xi": pl.Float64,
    "tail_beta": pl.Float64,
    "tail_exceedances": pl.Int32,
}
DECISION_INPUT_COLUMNS = ("symbol", "mu_hat", "sigma_hat", "target_weight_raw", "pre_risk_decision",
                          "reason_codes", "regime")


@dataclass(frozen=True)
class Position:
    quantity: float
    avg_cost: float
    last_price: float  # the last valid close (the mark)


@dataclass(frozen=True)
class BookState:
    """Everything session t+1 needs from session t."""

    date: date | None
    cash: float
    nav: float
    peak_nav: float
    positions: dict[str, Position] = field(default_factory=dict)
    trading_state: str = risk.ACTIVE
    recovery_phase: int = 0
    recovery_sessions: int = 0
    pending_orders: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ex.ORDER_SCHEMA))


def initial_state(settings: Settings) -> BookState:
    c = settings.execution.initial_capital
    return BookState(date=None, cash=c, nav=c, peak_nav=c)


@dataclass
class SessionInputs:
    """One session's inputs. decisions: DECISION_INPUT_COLUMNS (benchmark excluded); prices: symbol,
    open, close (raw); features: symbol, adv_shares_21d, vol_20; returns: T x M trailing simple daily
    returns up to t with columns return_symbols; sectors: symbol -> GICS sector; actions: symbol,
    action, value, price_factor with ex-date t; halted: the session is halted for a systemic data
    fault (domain/session_health.py)."""

    date: date
    cycle_id: str
    decisions: pl.DataFrame
    prices: pl.DataFrame
    features: pl.DataFrame
    returns: np.ndarray
    return_symbols: list[str]
    sectors: dict[str, str]
    actions: pl.DataFrame | None = None
    halted: bool = False


@dataclass
class StepResult:
    risk_decisions: pl.DataFrame
    orders: pl.DataFrame
    fills: pl.DataFrame
    positions: pl.DataFrame
    portfolio: dict
    split_ratios: dict[str, float]
    state: BookState


def _split_and_dividends(actions: pl.DataFrame | None) -> tuple[dict[str, float], dict[str, float]]:
    ratios: dict[str, float] = {}
    divs: dict[str, float] = {}
    if actions is None or actions.height == 0:
        return ratios, divs
    for a in actions.iter_rows(named=True):
        if a["action"] == "split":
            pf = a.get("price_factor")
            if pf is not None and math.isfinite(pf) and pf > 0 and pf != 1.0:
                ratios[a["symbol"]] = ratios.get(a["symbol"], 1.0) / pf
        elif a["action"] == "dividend" and a["value"] is not None and math.isfinite(a["value"]):
            divs[a["symbol"]] = divs.get(a["symbol"], 0.0) + a["value"]
    return ratios, divs


@dataclass
class _SessionRows:
    """One session's output as plain columns/rows (no frames): the walk accumulates these and builds
    each table once at the end (building small polars frames every session was the walk's hot spot)."""

    risk: dict  # column -> list, float array, Series (the decisions' own) or one value for every row
    orders: list[tuple]  # ORDER_SCHEMA rows, sorted by symbol
    fills: list[tuple]  # FILL_SCHEMA rows, sorted by symbol
    positions: dict  # column -> list, float array or one value for every row (POSITION_SCHEMA columns)
    portfolio: dict
    split_ratios: dict[str, float]
    executions: list[tuple] = field(default_factory=list)  # EXECUTION_SCHEMA rows (child orders)


def _fill_rows(broker: ex.Broker, pending: list[tuple], t: date, opens: dict[str, float],
               ratios: dict[str, float], bars: dict[str, tuple] | None = None) -> tuple[list[tuple], list[tuple]]:
    """The broker's fills of `pending` (ORDER_SCHEMA rows) as FILL_SCHEMA rows, and the child
    executions (EXECUTION_SCHEMA rows) when the broker reports them (the paper broker's `execute`)."""
    if not pending:
        return [], []
    pending = sorted(pending, key=lambda r: r[2])
    execute = getattr(broker, "execute", None)
    if execute is not None:
        return execute(pending, t, opens, ratios, bars)
    fast = getattr(broker, "fill_rows", None)
    if fast is not None:
        return fast(pending, t, opens, ratios), []
    frame = pl.DataFrame(pending, schema=ex.ORDER_SCHEMA, orient="row")
    return broker.fill(frame, t, opens, ratios).select(list(ex.FILL_SCHEMA)).rows(), []


def _bars(prices: pl.DataFrame, pending: list[tuple]) -> dict[str, tuple] | None:
    """symbol -> (open, high, low, close) of the session for the pending orders' symbols (None without
    high/low columns: the fill step then has the opens only, enough for market_on_open)."""
    if not pending or "high" not in prices.columns or "low" not in prices.columns:
        return None
    want = {r[2] for r in pending}
    cols = [prices[c].to_list() for c in ("symbol", "open", "high", "low", "close")]
    return {s: (o, h, lo, c) for s, o, h, lo, c in zip(*cols) if s in want}


def _advance(state: BookState, pending: list[tuple], x: SessionInputs, settings: Settings,
             broker: ex.Broker) -> tuple[_SessionRows, BookState]:
    """One session of the book on rows (see the module docstring); the returned state's
    pending_orders is left empty: the session's orders are `rows.orders`."""
    t = x.date
    rs = settings.risk
    warnings: list[str] = []
    positions = dict(state.positions)
    cash = state.cash

    # 1. corporate actions
    ratios, divs = _split_and_dividends(x.actions)
    for sym, d in divs.items():
        if sym in positions:
            cash += d * positions[sym].quantity
    for sym, r in ratios.items():
        if sym in positions:
            p = positions[sym]
            positions[sym] = Position(p.quantity * r, p.avg_cost / r, p.last_price / r)

    # 2. fills of t-1's orders at open(t)
    p_syms = x.prices["symbol"].to_list()
    px = {s: (o, c) for s, o, c in zip(p_syms, x.prices["open"].to_list(), x.prices["close"].to_list())}
    opens = {s: v[0] for s, v in px.items() if v[0] is not None}
    if x.halted and getattr(broker, "name", "") == "paper":
        # a halted session's data cannot price a simulated fill: t-1's orders are cancelled (a live
        # broker's fills happened at the exchange and are booked as it reports them)
        fills, children = _fill_rows(broker, pending, t, {}, ratios, None)
        fills = [f[:10] + (f"{rc.ORDER_CANCELLED}: {rc.SYSTEMIC_DATA_FAULT}: session {t} is halted (too much of the universe "
                           f"failed quality), no fill for {f[3]} at its open",) + f[11:] for f in fills]
    else:
        fills, children = _fill_rows(broker, pending, t, opens, ratios, _bars(x.prices, pending))
    for _oid, _fd, _od, sym, side, q, p, comm, _slip, status, reason, *_ in fills:
        if status != ex.FILLED:
            warnings.append(reason)
            continue
        old = positions.get(sym, Position(0.0, 0.0, p))
        if side == ex.BUY:
            new_q = old.quantity + q
            avg = (old.quantity * old.avg_cost + q * p) / new_q
            cash -= q * p + comm
        else:
            new_q = old.quantity - q
            avg = old.avg_cost
            cash += q * p - comm
        positions[sym] = Position(new_q, avg, old.last_price)

    # 3. marks at close(t)
    for sym, p in list(positions.items()):
        if p.quantity == 0:
            del positions[sym]
            continue
        c = px.get(sym, (None, None))[1]
        if ex.valid_price(c):
            positions[sym] = Position(p.quantity, p.avg_cost, float(c))
        else:
            warnings.append(f"{rc.NO_PRICE}: {sym} has no close on {t}; marked at its last close {p.last_price:g}")
    mv = {s: p.quantity * p.last_price for s, p in positions.items()}
    nav = cash + sum(mv.values())
    daily_return = nav / state.nav - 1.0 if state.nav else float("nan")
    peak = max(state.peak_nav, nav)
    dd = 1.0 - nav / peak if peak > 0 else 0.0
    if nav <= 0:
        raise ValueError(f"NAV {nav} <= 0 on {t}: the book is bankrupt, the risk gate cannot size anything")

    # 4. trading state
    tstate, phase, n_in_phase = risk.next_trading_state(dd, state.trading_state, state.recovery_phase,
                                                         state.recovery_sessions, rs)

    # 5. the risk gate, on the session's decisions plus the held names without one, sorted by symbol.
    # The usual session (decisions sorted by symbol, prices / features / return history on the same
    # symbols in the same order) takes its columns as arrays; any other is aligned by symbol.
    dec = x.decisions
    dec_syms = dec["symbol"].to_list()
    held_only = sorted(set(positions).difference(dec_syms))
    symbols = dec_syms + held_only
    n = len(symbols)
    order_ix = sorted(range(n), key=symbols.__getitem__) if symbols != sorted(symbols) else None
    if order_ix is not None:
        symbols = [symbols[i] for i in order_ix]

    def col(name, fill):
        vals = dec[name].to_list() + [fill] * len(held_only)
        return vals if order_ix is None else [vals[i] for i in order_ix]

    def num(name) -> np.ndarray:  # a Float64 column as floats, null -> NaN
        vals = dec[name].cast(pl.Float64).to_numpy()
        if held_only:
            vals = np.concatenate([vals, np.full(len(held_only), np.nan)])
        return vals if order_ix is None else vals[order_ix]

    target = num("target_weight_raw")
    pre_dec = col("pre_risk_decision", None)
    pre_codes = [c if c is not None else [] for c in col("reason_codes", None)]
    for i in range(n):
        if pre_dec[i] is None:
            pre_codes[i] = [rc.NO_DECISION]
    if p_syms == symbols:
        close_arr = x.prices["close"].cast(pl.Float64).to_numpy()
    else:
        close_arr = np.array([np.nan if c is None else c for c in (px.get(s, (None, None))[1] for s in symbols)],
                             dtype=float)
    close_ok = np.isfinite(close_arr) & (close_arr > 0)  # ex.valid_price, vectorized
    close_now = np.where(close_ok, close_arr, np.nan)
    mark = close_now.copy()
    for i in np.flatnonzero(~close_ok).tolist():  # no close today: the last known close of a held name
        mark[i] = positions[symbols[i]].last_price if symbols[i] in positions else np.nan
    if symbols == x.return_symbols:
        rets = x.returns
    else:
        ret_ix = {s: j for j, s in enumerate(x.return_symbols)}
        rets = np.zeros((x.returns.shape[0], n))
        have = [(i, ret_ix[s]) for i, s in enumerate(symbols) if s in ret_ix]
        if have:
            rets[:, [i for i, _ in have]] = x.returns[:, [j for _, j in have]]
    sectors = [x.sectors.get(s, "UNKNOWN") for s in symbols]
    if x.features["symbol"].to_list() == symbols:
        vol = x.features["vol_20"].cast(pl.Float64).to_numpy()
        adv = x.features["adv_shares_21d"].cast(pl.Float64).to_numpy()
    else:
        feats = {s: (a, v) for s, a, v in zip(x.features["symbol"].to_list(), x.features["adv_shares_21d"].to_list(),
                                               x.features["vol_20"].to_list())}
        fv = [feats.get(s, (None, None)) for s in symbols]
        vol = np.array([np.nan if v is None else v for _, v in fv], dtype=float)
        adv = np.array([np.nan if a is None else a for a, _ in fv], dtype=float)
    # 5a. the method's targets (domain/portfolio_methods.py): the optimizer, the Meta-Brain's Kelly or top-k
    current_qty = np.array([positions[s].quantity if s in positions else 0.0 for s in symbols])
    pre_reject = np.array([x.halted or d is None or d == rc.REJECT for d in pre_dec], dtype=bool)  # halted: #16
    ann = settings.features.annualization
    method_target, opt_record = pm.session_targets(
        settings.portfolio.method, mu=num("mu_hat"), sigma_daily=num("sigma_hat"), kelly_target=target,
        w0=np.where(np.isfinite(mark), current_qty * np.nan_to_num(mark) / nav, 0.0),
        tradable=close_ok & ~pre_reject & np.isfinite(target) & (tstate != risk.HALTED), sectors=sectors,
        close=close_now, adv=adv, vol_daily=vol / math.sqrt(ann), returns=rets, nav=nav, settings=settings)
    if not opt_record.get("ok", True):  # the optimizer failed: the tradable names hold (target = current)
        pre_codes = [c + [rc.OPTIMIZER_FAILED] if np.isfinite(t) else c for c, t in zip(pre_codes, method_target)]
        warnings.append(f"{rc.OPTIMIZER_FAILED}: {opt_record['optimizer_status']}; the current book is held")
    gi = risk.GateInput(
        symbols=symbols,
        sectors=sectors,
        price=mark,
        price_ok=close_ok,
        current_qty=current_qty,
        nav=nav,
        target_raw=method_target,
        pre_reject=pre_reject,
        pre_codes=pre_codes,
        regime=col("regime", None),
        vol=vol,
        adv=adv,
        returns=rets,
        trading_state=tstate,
        drawdown=dd,
        recovery_phase=phase,
        annualization=settings.features.annualization,
        tail_model=tail_risk.book_tail_model(rs),
    )
    g = risk.gate(gi, rs)
    warnings.extend(g.warnings)
    if x.halted:
        warnings.append(f"{rc.SYSTEMIC_DATA_FAULT}: session {t} halted: no fills at its open, no orders, positions held "
                        "(marked at the last valid close where the session has none)")

    aligned = order_ix is None and not held_only  # the decisions' own columns, in order
    risk_cols = {
        "date": t,  # one value for the session's rows
        "symbol": dec["symbol"] if aligned else symbols,
        "decision": g.decision,
        "reason_codes": g.reason_codes,
        "current_weight": g.current_weight,
        "target_weight_raw": target,
        "optimizer_weight": method_target,
        "approved_weight": g.approved_weight,
        "order_quantity": g.order_qty,
        "adjustments": g.adjustments,
        "trading_state": tstate,
        "cycle_id": x.cycle_id,
        "pre_risk_decision": dec["pre_risk_decision"] if aligned else pre_dec,
        "mu_hat": dec["mu_hat"] if aligned else col("mu_hat", None),
        "sigma_hat": dec["sigma_hat"] if aligned else col("sigma_hat", None),
        "close": close_now,
        "sector": sectors,
    }

    # 6. orders for the next open, with the run's execution algorithm and the ADV and daily volatility
    # known now (the cost model's and the schedule's inputs); a carried leftover joins them (execution_algos.py)
    es = settings.execution
    sigma_d = vol / math.sqrt(settings.features.annualization)
    orders = ex.order_rows(t, symbols, g.order_qty.tolist(), close_now.tolist(), x.cycle_id, es.mode,
                           adv.tolist(), sigma_d.tolist(), algo=es.algo)
    if es.leftover == "carry" and fills:
        orders, fills = _carry_leftovers(orders, fills, t, x.cycle_id, es, tstate, dict(zip(symbols, close_now.tolist())),
                                         dict(zip(symbols, adv.tolist())), dict(zip(symbols, sigma_d.tolist())))

    pos_syms = sorted(positions)
    pos_list = [positions[s] for s in pos_syms]
    qty = np.array([p.quantity for p in pos_list], dtype=float)
    avg_cost = np.array([p.avg_cost for p in pos_list], dtype=float)
    last = np.array([p.last_price for p in pos_list], dtype=float)
    mv_arr = np.array([mv[s] for s in pos_syms], dtype=float)
    positions_cols = {
        "date": t,
        "symbol": pos_syms,
        "quantity": qty,
        "avg_cost": avg_cost,
        "close": last,
        "market_value": mv_arr,
        "weight": mv_arr / nav,
        "unrealized_pnl": (last - avg_cost) * qty,
    }
    sector_now: dict[str, float] = {}
    for s in pos_syms:
        sc = x.sectors.get(s, "UNKNOWN")
        sector_now[sc] = sector_now.get(sc, 0.0) + mv[s] / nav
    gross = float(sum(abs(v) for v in mv.values()))
    portfolio_row = {
        "date": t,
        "nav": nav,
        "cash": cash,
        "gross_exposure": gross,
        "net_exposure": float(sum(mv.values())),
        "leverage": gross / nav,
        "daily_return": daily_return,
        "drawdown": dd,
        "peak_nav": peak,
        "trading_state": tstate,
        "recovery_phase": phase,
        "recovery_sessions": n_in_phase,
        "cvar_95": g.cvar,
        "tail_prob": g.tail_prob,
        "approved_gross": g.gross,
        "n_positions": len(pos_syms),
        "sector_exposure": json.dumps({k: sector_now[k] for k in sorted(sector_now)}),
        "warnings": json.dumps(warnings),
        "method": opt_record["method"],
        **{k: opt_record.get(k) for k in ("optimizer_status", "expected_return", "risk_penalty", "cost_penalty",
                                          "ex_ante_vol", "optimizer")},
        **_gate_factors(g.factors),
    }
    new_state = BookState(date=t, cash=cash, nav=nav, peak_nav=peak, positions=positions, trading_state=tstate,
                          recovery_phase=phase, recovery_sessions=n_in_phase, pending_orders=_NO_ORDERS)
    return _SessionRows(risk_cols, orders, fills, positions_cols, portfolio_row, ratios, children), new_state


def _gate_factors(f: dict[str, float]) -> dict:
    """The portfolio row's record of the gate's scaling and tail model (PORTFOLIO_SCHEMA's last columns);
    the fit's numbers only when the EVT estimate was the one used."""
    evt = f.get("tail_evt") == 1.0
    return {
        "vol_scale": f.get("vol_scale", 1.0),
        "drawdown_scale": f.get("drawdown_scale", 1.0),
        "recovery_scale": f.get("recovery_scale", 1.0),
        "tail_method": "evt" if evt else "historical",
        "tail_threshold": f.get("tail_threshold") if evt else None,
        "tail_xi": f.get("tail_xi") if evt else None,
        "tail_beta": f.get("tail_beta") if evt else None,
        "tail_exceedances": int(f["tail_exceedances"]) if "tail_exceedances" in f else None,
    }


def _carry_leftovers(orders: list[tuple], fills: list[tuple], t: date, cycle_id: str, es, trading_state: str,
                     closes: dict[str, float], advs: dict[str, float],
                     sigmas: dict[str, float]) -> tuple[list[tuple], list[tuple]]:
    """Leftover policy "carry": the undone part of a parent filled today becomes an order of today for the
    next session (id = order_id(t, symbol, side, leftover, cycle_id + "|carry:" + parent id), with today's
    ADV and volatility), unless today's gate sent a new order on the symbol (it decided knowing the
    position: the leftover is SUPERSEDED) or it would add to a position while the book is not ACTIVE
    (then CANCELLED)."""
    new_syms = {r[2] for r in orders}
    out_fills = []
    carried = []
    for f in fills:
        if f[19] != ex.LEFTOVER_CARRIED:
            out_fills.append(f)
            continue
        oid, sym, side, left = f[0], f[3], f[4], f[18]
        if sym in new_syms:
            f = f[:19] + (ex.LEFTOVER_SUPERSEDED,)
        elif side == ex.BUY and trading_state != risk.ACTIVE:
            f = f[:10] + (f"{f[10]}; not carried: the book is {trading_state}",) + f[11:19] + (ex.LEFTOVER_CANCELLED,)
        else:
            c = closes.get(sym)
            carried.append((ex.order_id(t, sym, side, left, f"{cycle_id}|carry:{oid}"), t, sym, side, float(left),
                            c if c is not None and math.isfinite(c) else None, es.mode, cycle_id,
                            ex._known(advs.get(sym)), ex._known(sigmas.get(sym)), f[12]))
        out_fills.append(f)
    if carried:
        orders = sorted(orders + carried, key=lambda r: r[2])
    return orders, out_fills


_NO_ORDERS = pl.DataFrame(schema=ex.ORDER_SCHEMA)
_FLUSH_SESSIONS = 64


def _list_column(values: list[list[str]], name: str) -> pl.Series:
    """A List(String) column from Python lists: each distinct list is built once and gathered (a
    session has a few dozen distinct reason-code lists; polars' constructor walks every list)."""
    index: dict[tuple, int] = {}
    rows = [index.setdefault(tuple(v), len(index)) for v in values]
    return pl.Series(name, [list(k) for k in index], dtype=pl.List(pl.String)).gather(rows)


def _column(name: str, dtype, values: list, counts: list[int]) -> pl.Series:
    """One column from the sessions' parts; a part's value is a Series, a float array, a list, or a
    single value for all of its `counts` rows (date, trading state, cycle id)."""
    if all(isinstance(v, np.ndarray) for v in values):
        return pl.Series(name, np.concatenate([np.asarray(v, dtype=float) for v in values]))
    if all(isinstance(v, list) for v in values):
        return pl.Series(name, [x for v in values for x in v], dtype=dtype, strict=False)
    if not any(isinstance(v, (list, np.ndarray, pl.Series)) for v in values):
        return pl.Series(name, values, dtype=dtype, strict=False).gather(np.repeat(np.arange(len(values)), counts))
    return pl.concat([v.cast(dtype).alias(name) if isinstance(v, pl.Series)
                      else pl.Series(name, [v] * k if not isinstance(v, (list, np.ndarray)) else v, dtype=dtype,
                                     strict=False) for v, k in zip(values, counts)])


def _risk_frame(parts: list[dict]) -> pl.DataFrame:
    """RISK_DECISION_SCHEMA frame from the sessions' columns (NaN target/close -> null, as before)."""
    if not parts:
        return pl.DataFrame(schema=RISK_DECISION_SCHEMA)
    counts = [len(p["symbol"]) for p in parts]
    cols: dict[str, pl.Series] = {}
    for name, dtype in RISK_DECISION_SCHEMA.items():
        if name == "reason_codes":
            cols[name] = _list_column([c for p in parts for c in p[name]], name)
        else:
            cols[name] = _column(name, dtype, [p[name] for p in parts], counts)
    return pl.DataFrame(cols).with_columns(pl.col("target_weight_raw").fill_nan(None),
                                           pl.col("close").fill_nan(None), pl.col("optimizer_weight").fill_nan(None))


def _columns_frame(parts: list[dict], schema: dict) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(schema=schema)
    counts = [len(p["symbol"]) for p in parts]
    return pl.DataFrame([_column(name, dtype, [p[name] for p in parts], counts) for name, dtype in schema.items()])


def step(state: BookState, x: SessionInputs, settings: Settings, broker: ex.Broker | None = None) -> StepResult:
    """One session of the book (see the module docstring)."""
    broker = broker or ex.PaperBroker(settings.execution)
    pending = state.pending_orders.select(list(ex.ORDER_SCHEMA)).rows() if state.pending_orders.height else []
    rows, new_state = _advance(state, pending, x, settings, broker)
    orders = pl.DataFrame(rows.orders, schema=ex.ORDER_SCHEMA, orient="row")
    return StepResult(
        risk_decisions=_risk_frame([rows.risk]),
        orders=orders,
        fills=pl.DataFrame(rows.fills, schema=ex.FILL_SCHEMA, orient="row"),
        positions=_columns_frame([rows.positions], POSITION_SCHEMA),
        portfolio=rows.portfolio,
        split_ratios=rows.split_ratios,
        state=replace(new_state, pending_orders=orders),
    )


@dataclass
class BookOutput:
    risk_decisions: pl.DataFrame
    orders: pl.DataFrame
    fills: pl.DataFrame
    positions: pl.DataFrame
    portfolio: pl.DataFrame
    split_ratios: dict[date, dict[str, float]]
    state: BookState
    executions: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ex.EXECUTION_SCHEMA))


def _by_date_symbol(frames: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    """The frames one after the other, sorted by (date, symbol). The walk writes them in that order
    already (sessions in order, each sorted by symbol), so the sort is skipped when a check finds them
    sorted: no second copy of a window's table (the concatenation itself copies nothing)."""
    df = pl.concat(frames, how="vertical", rechunk=False) if frames else pl.DataFrame(schema=schema)
    d, s = pl.col("date"), pl.col("symbol")
    in_order = df.select(((d > d.shift(1)) | ((d == d.shift(1)) & (s >= s.shift(1)))).fill_null(True).all()).item()
    return df if in_order else df.sort(["date", "symbol"])


def _executions_frame(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The child rows sorted by (date, symbol, order_id, slot)."""
    df = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=ex.EXECUTION_SCHEMA)
    return df.sort(["date", "symbol", "order_id", "slot"]) if df.height else df


def run_book(state: BookState, sessions, settings: Settings, broker: ex.Broker | None = None) -> BookOutput:
    """Walk the sessions in order from `state` (an iterable of SessionInputs); frames sorted by (date, symbol).

    Same numbers as chaining `step`; the sessions' rows are kept as Python lists/arrays and become
    frames every _FLUSH_SESSIONS sessions (bounded memory: Python floats and lists take ~4x a frame's
    bytes)."""
    broker = broker or ex.PaperBroker(settings.execution)
    rd, od, fd, pd_, xd, rows, splits = [], [], [], [], [], [], {}
    frames: dict[str, list[pl.DataFrame]] = {"risk": [], "orders": [], "fills": [], "positions": [], "executions": []}

    def flush() -> None:
        frames["risk"].append(_risk_frame(rd))
        frames["orders"].append(pl.DataFrame(od, schema=ex.ORDER_SCHEMA, orient="row"))
        frames["fills"].append(pl.DataFrame(fd, schema=ex.FILL_SCHEMA, orient="row"))
        frames["positions"].append(_columns_frame(pd_, POSITION_SCHEMA))
        frames["executions"].append(pl.DataFrame(xd, schema=ex.EXECUTION_SCHEMA, orient="row"))
        rd.clear(), od.clear(), fd.clear(), pd_.clear(), xd.clear()

    pending = state.pending_orders.select(list(ex.ORDER_SCHEMA)).rows() if state.pending_orders.height else []
    prev = None
    # The walk allocates millions of small lists and no reference cycles: the cyclic GC's repeated
    # scans of the growing output cost ~10% of the walk, so it is paused (and restored) around it.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for x in sessions:
            if prev is not None and x.date <= prev:
                raise ValueError(f"sessions out of order: {x.date} after {prev}")
            r, state = _advance(state, pending, x, settings, broker)
            pending = r.orders
            rd.append(r.risk)
            od.extend(r.orders)
            fd.extend(r.fills)
            xd.extend(r.executions)
            pd_.append(r.positions)
            rows.append(r.portfolio)
            splits[x.date] = r.split_ratios
            prev = x.date
            if len(rd) >= _FLUSH_SESSIONS:
                flush()
    finally:
        if gc_was_enabled:
            gc.enable()
    if prev is not None:
        state = replace(state, pending_orders=pl.DataFrame(pending, schema=ex.ORDER_SCHEMA, orient="row"))
    if rd or not frames["risk"]:
        flush()
    return BookOutput(
        risk_decisions=_by_date_symbol(frames.pop("risk"), RISK_DECISION_SCHEMA),
        orders=_by_date_symbol(frames.pop("orders"), ex.ORDER_SCHEMA),
        fills=_by_date_symbol(frames.pop("fills"), ex.FILL_SCHEMA),
        positions=_by_date_symbol(frames.pop("positions"), POSITION_SCHEMA),
        portfolio=pl.DataFrame(rows, schema=PORTFOLIO_SCHEMA, orient="row") if rows else pl.DataFrame(schema=PORTFOLIO_SCHEMA),
        split_ratios=splits,
        state=state,
        executions=_executions_frame(frames.pop("executions")),
    )


def state_from_rows(portfolio_row: dict | None, positions: pl.DataFrame, pending_orders: pl.DataFrame,
                    settings: Settings) -> BookState:
    """Rebuild the state after a stored session (its portfolio row, positions and orders)."""
    if portfolio_row is None:
        return replace(initial_state(settings), pending_orders=pending_orders)
    pos = {r["symbol"]: Position(r["quantity"], r["avg_cost"], r["close"]) for r in positions.iter_rows(named=True)}
    return BookState(
        date=portfolio_row["date"],
        cash=portfolio_row["cash"],
        nav=portfolio_row["nav"],
        peak_nav=portfolio_row["peak_nav"],
        positions=pos,
        trading_state=portfolio_row["trading_state"] or risk.ACTIVE,
        recovery_phase=int(portfolio_row["recovery_phase"] or 0),
        recovery_sessions=int(portfolio_row.get("recovery_sessions") or 0),
        pending_orders=pending_orders.select(list(ex.ORDER_SCHEMA)).cast(ex.ORDER_SCHEMA),
    )
