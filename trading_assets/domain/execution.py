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
}


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
               sigma_daily: list[float] | None = None) -> list[tuple]:
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
                     _known(v), _known(sg)))
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
    """Simulated fills at the open: half spread and commission from ExecutionSettings, market impact
    from CostSettings (domain/costs.py)."""

    settings: ExecutionSettings
    costs: CostSettings = CostSettings()
    name: str = "paper"

    def fill(self, orders: pl.DataFrame, fill_date: date, opens: dict[str, float],
             split_ratios: dict[str, float]) -> pl.DataFrame:
        return pl.DataFrame(self.fill_rows(orders.select(list(ORDER_SCHEMA)).sort("symbol").rows(), fill_date, opens, split_ratios),
                            schema=FILL_SCHEMA, orient="row")

    def fill_rows(self, orders: list[tuple], fill_date: date, opens: dict[str, float],
                  split_ratios: dict[str, float]) -> list[tuple]:
        """`fill` on order rows (tuples in ORDER_SCHEMA column order, already sorted by symbol) ->
        fill rows (tuples in FILL_SCHEMA column order); the book's walk uses this, no frames."""
        rows = []
        for oid, odate, sym, side, qty, _ref, _mode, _cycle, adv, sigma in orders:
            ratio = split_ratios.get(sym, 1.0)
            if ratio != 1.0:  # the broker adjusts an open order for a split effective at this open
                qty = float(math.floor(qty * ratio))
                adv = adv * ratio if adv is not None else None  # ADV in shares: the same split applies
            op = opens.get(sym)
            if not valid_price(op) or qty <= 0:
                why = "no valid open price" if not valid_price(op) else "quantity rounds to 0 after split"
                rows.append((oid, fill_date, odate, sym, side, qty, None, 0.0, 0.0, CANCELLED,
                             f"{reasons.ORDER_CANCELLED}: {why} for {sym} on {fill_date}"))
                continue
            px = costs.fill_price(op, 1 if side == BUY else -1, qty, adv, sigma, self.settings, self.costs)
            rows.append((oid, fill_date, odate, sym, side, qty, px, commission(qty, self.settings),
                         abs(px - op) * qty, FILLED, None))
        return rows


BROKERS: dict[str, type] = {"paper": PaperBroker}


def get_broker(settings: Settings) -> Broker:
    """The broker for settings.execution.mode: paper -> PaperBroker; live -> the configured broker or
    BrokerNotConfigured (nothing is written before this is called)."""
    ex = settings.execution
    if ex.mode == "paper":
        return PaperBroker(ex, settings.costs)
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
