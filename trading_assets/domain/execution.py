"""Orders, paper fills and the broker interface (pure: polars, numpy).

Order id: ``order_id = sha256("date|symbol|side|quantity|cycle_id")[:20]`` (hex). The same decision
(same session, symbol, side, whole-share quantity and cycle inputs) always gets the same id, so a
rerun of a session replaces its orders with identical rows; any change of one input changes the id.

Paper fill of an order decided at session t, at the open O of session t+1 (domain/costs.py):
    BUY  price = O * (1 + slippage_bps / 1e4 + impact)
    SELL price = O * (1 - slippage_bps / 1e4 - impact)
    impact = costs.impact_fraction(quantity, expected_volume, sigma_daily): Almgren et al. (2005) market
             impact from the order's share of the ADV and the name's daily volatility, both known at t and
             carried on the order (0 when the order has neither: the half spread only)
    slippage_cost = |price - O| * quantity
    commission    = max(min_commission, commission_per_share * quantity)
    cash change   = -(price * quantity) - commission   (BUY)
                    +(price * quantity) - commission   (SELL)
An order whose fill session has no valid open (null, non-finite or <= 0) is CANCELLED: price NULL
(nothing was traded, so there is no price; never NaN, which SQL aggregates would propagate), no
cash or position change, reason ORDER_CANCELLED.

Split on the fill session's ex-date (the provider's prices are raw, price_factor = 1/r): a broker
adjusts open orders by the split ratio, so the order quantity becomes floor(quantity * r) shares.

Live mode: `Broker` is the interface, `PaperBroker` its one implementation; `get_broker(settings)`
refuses live mode unless `settings.execution.broker` names a registered broker.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import polars as pl

from trading_assets.domain import costs, reasons
from trading_assets.settings import CostSettings, ExecutionSettings, Settings

BUY = "BUY"
SELL = "SELL"
FILLED = "FILLED"
CANCELLED = "CANCELLED"

ORDER_SCHEMA = {
    "order_id": pl.String,
    "date": pl.Date,
    "symbol": pl.String,
    "side": pl.String,
    "quantity": pl.Float64,
    "reference_price": pl.Float64,
    "mode": pl.String,
    "cycle_id": pl.String,
    "expected_volume": pl.Float64,  # the name's ADV in shares at t (the cost model's and the scheduler's input)
    "sigma_daily": pl.Float64,  # the name's daily volatility at t (the cost model's input)
    "algo": pl.String,  # the execution algorithm the order was decided with (execution_algos.ALGOS)
}
FILL_SCHEMA = {
    "order_id": pl.String,
    "date": pl.Date,
    "order_date": pl.Date,
    "symbol": pl.String,
    "side": pl.String,
    "quantity": pl.Float64,
    "price": pl.Float64,
    "commission": pl.Float64,
    "slippage_cost": pl.Float64,
    "status": pl.String,
    "reason": pl.String,
    # one row per parent order; the children are in EXECUTION_SCHEMA (execution_algos.py has the formulas)
    "ordered_quantity": pl.Float64,  # shares asked (after a split at the fill open)
    "algo": pl.String,
    "arrival_price": pl.Float64,  # the fill session's open
    "vwap_proxy": pl.Float64,  # typical price (H + L + C) / 3 of the fill session
    "shortfall_arrival_bps": pl.Float64,
    "shortfall_vwap_bps": pl.Float64,
    "fill_ratio": pl.Float64,  # filled / ordered
    "leftover_quantity": pl.Float64,  # ordered - filled
    "leftover": pl.String,  # CANCELLED | CARRIED | SUPERSEDED (by a new order on the symbol); NULL when none
}
EXECUTION_SCHEMA = {  # child orders: one row per (parent order, slot) with shares executed
    "order_id": pl.String,
    "slot": pl.Int32,
    "date": pl.Date,  # fill session
    "symbol": pl.String,
    "side": pl.String,
    "start_minute": pl.Int32,  # minutes after the open at which the slot starts
    "planned_quantity": pl.Float64,  # the schedule before the participation cap
    "cap_quantity": pl.Float64,  # floor(cap x expected slot volume); NULL = no cap (market_on_open, no ADV)
    "quantity": pl.Float64,  # executed
    "slot_price": pl.Float64,  # the day path's price of the slot
    "price": pl.Float64,  # fill price after the cost model
    "cost": pl.Float64,  # slippage / impact cost of the child
    "commission": pl.Float64,  # the child's share of the parent's commission
}
LEFTOVER_CANCELLED = "CANCELLED"
LEFTOVER_CARRIED = "CARRIED"
LEFTOVER_SUPERSEDED = "SUPERSEDED"


class BrokerNotConfigured(RuntimeError):
    """Live mode was asked for but no live broker is configured."""


def order_id(day: date, symbol: str, side: str, quantity: int | float, cycle_id: str) -> str:
    """sha256 of "date|symbol|side|quantity|cycle_id" (quantity as whole shares), first 20 hex digits."""
    if side not in (BUY, SELL):
        raise ValueError(f"side must be BUY or SELL, not {side!r}")
    q = float(quantity)
    if not q.is_integer() or q <= 0:
        raise ValueError(f"order quantity must be a positive whole number of shares, got {quantity!r}")
    text = f"{day.isoformat()}|{symbol}|{side}|{int(q)}|{cycle_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def order_rows(day: date, symbols: list[str], quantities: list[float], reference_prices: list[float],
               cycle_id: str, mode: str, expected_volume: list[float] | None = None,
               sigma_daily: list[float] | None = None, algo: str = "market_on_open") -> list[tuple]:
    """The rows of `make_orders` (tuples in ORDER_SCHEMA column order), sorted by symbol.

    The book's walk keeps orders as rows and builds one frame for the whole window at the end.
    expected_volume / sigma_daily (per symbol, NaN or None = unknown) are the cost model's inputs at t."""
    rows = []
    none = [None] * len(symbols)
    for sym, q, px, v, sg in zip(symbols, quantities, reference_prices, expected_volume or none, sigma_daily or none):
        if q == 0:
            continue
        side = BUY if q > 0 else SELL
        rows.append((order_id(day, sym, side, abs(q), cycle_id), day, sym, side, float(abs(q)), px, mode, cycle_id,
                     _known(v), _known(sg), algo))
    if len({r[0] for r in rows}) != len(rows):  # two orders of one symbol in one session: a bug upstream
        raise ValueError(f"duplicate order ids on {day}")
    if any(rows[i][2] > rows[i + 1][2] for i in range(len(rows) - 1)):
        rows.sort(key=lambda r: r[2])
    return rows


def _known(x) -> float | None:
    """A finite positive number, else None (NULL in the table)."""
    return float(x) if x is not None and math.isfinite(x) and x > 0 else None


def make_orders(day: date, symbols: list[str], quantities: list[float], reference_prices: list[float],
                cycle_id: str, mode: str, expected_volume: list[float] | None = None,
                sigma_daily: list[float] | None = None) -> pl.DataFrame:
    """Orders for the non-zero signed share quantities (+ buy, - sell), sorted by (date, symbol)."""
    return pl.DataFrame(order_rows(day, symbols, quantities, reference_prices, cycle_id, mode, expected_volume,
                                   sigma_daily), schema=ORDER_SCHEMA, orient="row")


def fill_price(open_price: float, side: str, slippage_bps: float) -> float:
    """open * (1 + s) for a buy, open * (1 - s) for a sell, s = slippage_bps / 10,000."""
    s = slippage_bps / 1e4
    return open_price * (1.0 + s) if side == BUY else open_price * (1.0 - s)


def commission(quantity: float, settings: ExecutionSettings) -> float:
    """max(min_commission, commission_per_share * quantity)."""
    return max(settings.min_commission, settings.commission_per_share * quantity)


def valid_price(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x) and x > 0


class Broker(Protocol):
    """Executes the orders of one session at the next session's open and reports the fills."""

    name: str

    def fill(self, orders: pl.DataFrame, fill_date: date, opens: dict[str, float],
             split_ratios: dict[str, float]) -> pl.DataFrame:
        """orders (ORDER_SCHEMA) -> fills (FILL_SCHEMA), one row per order (FILLED or CANCELLED)."""
        ...


@dataclass(frozen=True)
class PaperBroker:
    """Simulated fills on the fill session with the order's algorithm (execution_algos.py): market_on_open
    at the open, twap / vwap as capped children on the seeded day path; half spread and commission from
    ExecutionSettings, market impact from CostSettings (domain/costs.py). `seed` is Settings.seed."""

    settings: ExecutionSettings
    costs: CostSettings = CostSettings()
    name: str = "paper"
    seed: int = 7

    def fill(self, orders: pl.DataFrame, fill_date: date, opens: dict[str, float],
             split_ratios: dict[str, float], bars: dict[str, tuple] | None = None) -> pl.DataFrame:
        rows = orders.select([c for c in ORDER_SCHEMA if c in orders.columns]).sort("symbol").rows()
        return pl.DataFrame(self.fill_rows(rows, fill_date, opens, split_ratios, bars), schema=FILL_SCHEMA, orient="row")

    def fill_rows(self, orders: list[tuple], fill_date: date, opens: dict[str, float],
                  split_ratios: dict[str, float], bars: dict[str, tuple] | None = None) -> list[tuple]:
        """`fill` on order rows (tuples in ORDER_SCHEMA column order, already sorted by symbol) ->
        fill rows (tuples in FILL_SCHEMA column order); the book's walk uses `execute`, no frames."""
        return self.execute(orders, fill_date, opens, split_ratios, bars)[0]

    def execute(self, orders: list[tuple], fill_date: date, opens: dict[str, float], split_ratios: dict[str, float],
                bars: dict[str, tuple] | None = None) -> tuple[list[tuple], list[tuple]]:
        """(fill rows, child rows in EXECUTION_SCHEMA order) of the orders on the fill session.
        bars: symbol -> (open, high, low, close) of the fill session (twap / vwap need them)."""
        from trading_assets.domain import execution_algos as ea  # the algorithms build on this module

        rows, children = [], []
        st = self.settings
        for row in orders:
            oid, odate, sym, side, qty = row[:5]
            algo = (row[10] if len(row) > 10 else None) or ea.MARKET_ON_OPEN
            vol = row[8] if len(row) > 8 else None
            sigma = row[9] if len(row) > 9 else None
            ratio = split_ratios.get(sym, 1.0)
            if ratio != 1.0:  # the broker adjusts an open order for a split effective at this open
                qty = float(math.floor(qty * ratio))
                vol = vol * ratio if vol is not None else None
            op = opens.get(sym)
            bar = (bars or {}).get(sym)
            tp = (bar[1] + bar[2] + bar[3]) / 3.0 if bar is not None and all(valid_price(v) for v in bar) else None
            if not valid_price(op) or qty <= 0:
                why = "no valid open price" if not valid_price(op) else "quantity rounds to 0 after split"
                rows.append((oid, fill_date, odate, sym, side, qty, None, 0.0, 0.0, CANCELLED,
                             f"{reasons.ORDER_CANCELLED}: {why} for {sym} on {fill_date}", qty, algo,
                             op if valid_price(op) else None, tp, None, None, 0.0, qty, LEFTOVER_CANCELLED))
                continue
            sign = 1 if side == BUY else -1
            notes = []
            if algo != ea.MARKET_ON_OPEN and tp is None:
                notes.append(f"{reasons.NO_INTRADAY_BAR}: no valid high/low/close for {sym} on {fill_date}; "
                             "filled at the open")
                algo_used = ea.MARKET_ON_OPEN
            else:
                algo_used = algo
            ohlc = (op, bar[1], bar[2], bar[3]) if tp is not None else (op, op, op, op)
            try:
                e = ea.execute_parent(int(qty), sign, ohlc, vol, st, ea.path_rng(self.seed, fill_date, sym), algo=algo_used,
                                     sigma_daily=sigma, costs=self.costs)
            except ValueError as exc:  # an inconsistent bar (open outside [low, high]): fill at the open, say why
                notes.append(f"{reasons.NO_INTRADAY_BAR}: {exc}; filled at the open")
                e = ea.execute_parent(int(qty), sign, (op, op, op, op), vol, st, None, algo=ea.MARKET_ON_OPEN,
                                     sigma_daily=sigma, costs=self.costs)
            sch = e.schedule
            if algo_used != ea.MARKET_ON_OPEN and not sch.cap_known:
                notes.append(f"{reasons.NO_VOLUME_ESTIMATE}: no ADV at the decision for {sym}; children not capped")
            leftover = float(sch.leftover)
            label = None
            if leftover:
                label = LEFTOVER_CARRIED if st.leftover == "carry" else LEFTOVER_CANCELLED
                notes.append(f"{reasons.PARTICIPATION_CAP}: {leftover:g} of {qty:g} {sym} shares over "
                             f"{st.participation_cap:.0%} of the expected slot volumes; {label.lower()}; "
                             f"opportunity cost {e.opportunity_cost:.2f}")
            filled = float(e.filled)
            status = FILLED if filled > 0 else CANCELLED
            if status == CANCELLED:
                notes.insert(0, f"{reasons.ORDER_CANCELLED}: nothing filled within the participation cap")
            nan = lambda v: None if v is None or not math.isfinite(v) else v  # noqa: E731
            rows.append((oid, fill_date, odate, sym, side, filled, nan(e.avg_price), e.commission_total,
                         e.cost_total, status, "; ".join(notes) or None, qty, algo, op, tp,
                         nan(e.shortfall_arrival_bps), nan(e.shortfall_vwap_bps), e.fill_ratio, leftover, label))
            for k in range(sch.executed.size):
                if sch.planned[k] == 0 and sch.executed[k] == 0:
                    continue
                cap = sch.cap[k]
                children.append((oid, k, fill_date, sym, side,
                                 ea.slot_start_minute(k, sch.executed.size, st.path_steps) if algo_used != ea.MARKET_ON_OPEN else 0,
                                 float(sch.planned[k]), float(cap) if math.isfinite(cap) else None, float(sch.executed[k]),
                                 float(e.slot_price[k]), nan(float(e.price[k])), float(e.cost[k]), float(e.commission[k])))
        return rows, children


BROKERS: dict[str, type] = {"paper": PaperBroker}


def get_broker(settings: Settings) -> Broker:
    """The broker for settings.execution.mode: paper -> PaperBroker; live -> the configured broker or
    BrokerNotConfigured (nothing is written before this is called)."""
    ex = settings.execution
    if ex.mode == "paper":
        return PaperBroker(ex, settings.costs, seed=settings.seed)
    if ex.mode == "live":
        if not ex.broker:
            raise BrokerNotConfigured(
                "live trading refused: no broker is configured (set TRADING_BROKER to one of "
                f"{sorted(BROKERS)}); run in paper mode (the default) instead"
            )
        if ex.broker not in BROKERS:
            raise BrokerNotConfigured(f"live trading refused: unknown broker {ex.broker!r}; known: {sorted(BROKERS)}")
        return BROKERS[ex.broker](ex)
    raise ValueError(f"execution mode must be 'paper' or 'live', not {ex.mode!r}")


def positions_consistency(prev_qty: dict[str, float], split_ratios: dict[str, float], fills: pl.DataFrame,
                          current_qty: dict[str, float], tol: float = 1e-9) -> list[dict]:
    """Violations of: previous * split_ratio + signed FILLED quantities = current, per symbol.

    Returns [] when consistent, else one {symbol, previous, fills, expected, current} per mismatch.
    """
    filled = fills.filter(pl.col("status") == FILLED) if fills.height else fills
    return positions_consistency_rows(prev_qty, split_ratios, zip(filled["symbol"].to_list(), filled["side"].to_list(),
                                                                  filled["quantity"].to_list()), current_qty, tol)


def positions_consistency_rows(prev_qty: dict[str, float], split_ratios: dict[str, float], filled, current_qty:
                               dict[str, float], tol: float = 1e-9) -> list[dict]:
    """positions_consistency on (symbol, side, quantity) of the FILLED fills, in order."""
    delta: dict[str, float] = {}
    for sym, side, q in filled:
        delta[sym] = delta.get(sym, 0.0) + (q if side == BUY else -q)
    out = []
    for sym in sorted(set(prev_qty) | set(delta) | set(current_qty)):
        exp = prev_qty.get(sym, 0.0) * split_ratios.get(sym, 1.0) + delta.get(sym, 0.0)
        cur = current_qty.get(sym, 0.0)
        if abs(exp - cur) > tol:
            out.append({"symbol": sym, "previous": prev_qty.get(sym, 0.0), "fills": delta.get(sym, 0.0),
                        "expected": exp, "current": cur})
    return out
