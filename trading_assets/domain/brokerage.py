"""What a real broker needs from the book, and what the book needs back (pure: polars, no I/O).

`LiveBroker` is the protocol a broker adapter implements (trading_assets/brokers/: Alpaca); it also
keeps `fill(...)` of execution.Broker, so the book's walk takes fills from it exactly as from the paper
broker, only they are the broker's reported fills (polled in the next session's run).

- submit(ticket): idempotent. client_order_id = the book's order_id (sha256 of the decision, so a
  rerun of the session makes the same id). A retried or repeated submission of an id the broker
  already has returns the broker's existing order: an order is never sent twice.
- cancel(client_order_id), poll(client_order_ids) -> BrokerOrder per id (None: the broker has none),
  positions() -> {symbol: signed shares}, cash() -> account cash.

Reconciliation (`reconcile`), before anything is sent: the book's positions after the session's fills
against the broker's, share for share (|book - broker| > 1e-9 is a difference), and the cash:
|book cash - broker cash| > cash_tolerance * book NAV is a difference (the paper commission model and
the broker's actual fees differ by a little). Any difference stops the live run; the message lists
every one.

Orders sent for the next open: market orders, time in force OPG (the opening auction, what the book's
paper fill assumes). Alpaca queues OPG orders sent after 19:00 New York time for the next open and
rejects them between 09:28 and 19:00 (`opg_window_open`).

Broker fills -> the book's fill rows (`fill_rows_from_broker`): filled_qty > 0 -> FILLED at the
broker's average price, commission 0 (Alpaca charges none on US equities), slippage_cost =
|avg price - open| * filled (measured against the session's open); nothing filled or no order at
the broker -> CANCELLED with the broker's status as reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

from trading_assets.domain import execution as ex
from trading_assets.domain import reasons

OPG = "opg"
NEW_YORK = ZoneInfo("America/New_York")
SUBMITTED = "submitted"
REJECTED = "rejected"
CANCELLED = "cancelled"
DRY_RUN = "dry_run"


@dataclass(frozen=True)
class Ticket:
    """One order as sent to a broker."""

    client_order_id: str
    symbol: str
    side: str  # BUY | SELL
    quantity: int
    time_in_force: str = OPG
    order_type: str = "market"

    def public(self) -> dict:
        return {"client_order_id": self.client_order_id, "symbol": self.symbol, "side": self.side,
                "quantity": self.quantity, "time_in_force": self.time_in_force, "order_type": self.order_type}


@dataclass(frozen=True)
class BrokerOrder:
    """The broker's view of one order."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: str
    quantity: float
    filled_quantity: float
    filled_avg_price: float | None
    status: str  # the broker's status text (new, accepted, filled, partially_filled, canceled, ...)


class BrokerRejected(RuntimeError):
    """The broker refused an order (insufficient buying power, invalid quantity, ...): status and message."""

    def __init__(self, ticket: Ticket, status_code: int | None, message: str):
        super().__init__(f"{ticket.side} {ticket.quantity} {ticket.symbol} ({ticket.client_order_id}) rejected "
                         f"by the broker: HTTP {status_code}: {message}")
        self.ticket, self.status_code, self.message = ticket, status_code, message


class BrokerUnavailable(RuntimeError):
    """The broker did not answer usefully after every retry (5xx, 429, connection errors)."""


class ReconciliationError(RuntimeError):
    """The book and the broker disagree: the run stops before sending anything."""

    def __init__(self, differences: list[dict]):
        lines = "; ".join(_difference_text(d) for d in differences)
        super().__init__(f"the book and the broker disagree, nothing was sent ({len(differences)} "
                         f"difference{'s' if len(differences) != 1 else ''}): {lines}")
        self.differences = differences


def _difference_text(d: dict) -> str:
    if d["what"] == "cash":
        return f"cash: book {d['book']:.2f} vs broker {d['broker']:.2f}"
    return f"{d['symbol']}: book {d['book']:g} vs broker {d['broker']:g} shares"


class LiveBroker(Protocol):
    name: str

    def submit(self, ticket: Ticket) -> BrokerOrder: ...

    def cancel(self, client_order_id: str) -> BrokerOrder | None: ...

    def poll(self, client_order_ids: list[str]) -> dict[str, BrokerOrder | None]: ...

    def positions(self) -> dict[str, float]: ...

    def cash(self) -> float: ...


def reconcile(book_positions: dict[str, float], broker_positions: dict[str, float], book_cash: float,
              broker_cash: float, book_nav: float, cash_tolerance: float) -> list[dict]:
    """Differences between the book and the broker (see the module docstring); [] when they agree."""
    out = []
    for sym in sorted(set(book_positions) | set(broker_positions)):
        b, k = float(book_positions.get(sym, 0.0)), float(broker_positions.get(sym, 0.0))
        if abs(b - k) > 1e-9:
            out.append({"what": "position", "symbol": sym, "book": b, "broker": k})
    if not math.isfinite(broker_cash) or abs(book_cash - broker_cash) > cash_tolerance * abs(book_nav):
        out.append({"what": "cash", "symbol": None, "book": float(book_cash), "broker": float(broker_cash)})
    return out


def tickets_from_orders(orders: list[tuple]) -> list[Ticket]:
    """ORDER_SCHEMA rows -> OPG market tickets, client_order_id = order_id, sorted by symbol."""
    out = []
    for row in sorted(orders, key=lambda r: r[2]):
        oid, _d, sym, side, qty = row[:5]
        q = float(qty)
        if not q.is_integer() or q <= 0:
            raise ValueError(f"order {oid}: quantity {qty!r} is not a positive whole number of shares")
        out.append(Ticket(oid, sym, side, int(q)))
    return out


def opg_window_open(now: datetime) -> bool:
    """True when an OPG order sent at `now` is queued for the next open (Alpaca: after 19:00 or before
    09:28 New York time); False between 09:28 and 19:00, when Alpaca rejects it."""
    t = now.astimezone(NEW_YORK).time()
    return not (time(9, 28) <= t < time(19, 0))


def fill_rows_from_broker(orders: list[tuple], polled: dict[str, BrokerOrder | None], fill_date: date,
                          opens: dict[str, float], split_ratios: dict[str, float]) -> list[tuple]:
    """The book's FILL_SCHEMA rows for `orders` (ORDER_SCHEMA rows) from the broker's report.

    The per-parent columns: ordered = the order's shares, algo = market_on_open (OPG), arrival = the
    session's open, shortfall_arrival_bps = e (avg - open) / open * 1e4; the VWAP proxy is not known
    here (NULL); an OPG order's unfilled part is cancelled by the exchange after the auction."""
    rows = []
    for row in sorted(orders, key=lambda r: r[2]):
        oid, odate, sym, side, qty = row[:5]
        ratio = split_ratios.get(sym, 1.0)
        q = float(math.floor(qty * ratio)) if ratio != 1.0 else float(qty)
        bo = polled.get(oid)
        op = opens.get(sym)
        arrival = op if ex.valid_price(op) else None
        if bo is None or not bo.filled_quantity or bo.filled_avg_price is None:
            why = "the broker has no such order" if bo is None else f"broker status {bo.status}, nothing filled"
            rows.append((oid, fill_date, odate, sym, side, q, None, 0.0, 0.0, ex.CANCELLED,
                         f"{reasons.ORDER_CANCELLED}: {why} ({oid}, {sym}, {fill_date})", q, "market_on_open",
                         arrival, None, None, None, 0.0, q, ex.LEFTOVER_CANCELLED))
            continue
        px = float(bo.filled_avg_price)
        filled = float(bo.filled_quantity)
        sign = 1 if side == ex.BUY else -1
        slip = abs(px - op) * filled if arrival else 0.0
        is_bps = sign * (px - op) / op * 1e4 if arrival else None
        left = max(0.0, q - filled)
        reason = None if bo.status == "filled" else f"broker status {bo.status}: {filled:g} of {bo.quantity:g} filled"
        rows.append((oid, fill_date, odate, sym, side, filled, px, 0.0, slip, ex.FILLED, reason, q, "market_on_open",
                     arrival, None, is_bps, None, filled / q if q else None, left,
                     ex.LEFTOVER_CANCELLED if left else None))
    return rows
