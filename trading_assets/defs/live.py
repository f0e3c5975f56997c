"""The live (and dry-run) end of the book: reconcile with the broker, then send the session's orders.

Called by the book's body (book_walk.write_book) around its writes, in this order:
1. `reconcile(state)` after the walk, BEFORE anything is written: the book's positions and cash after
   the session's fills (the broker's own fills, polled by the walk) against the broker's
   (domain/brokerage.reconcile). Any difference: an audit event `reconciliation_failed` listing them,
   and ReconciliationError: the run fails, no table is written, nothing is sent.
2. `send(state)` after the tables are written: the last session's orders as OPG market tickets
   (client_order_id = order_id). Dry run: each ticket is an `order_dry_run` audit event and a log
   line, nothing goes to the broker. Live: refused outside Alpaca's OPG window (09:28-19:00 New York
   time they are rejected); each ticket is submitted (idempotent, see brokers/alpaca.py) and every
   submitted, rejected or cancelled order is an audit event (appended as it happens). A rejected
   order does not stop the others; a broker that stops answering stops the run (a rerun resends
   nothing that already reached it).
Live runs go one session at a time: the orders of a window's earlier sessions are history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Callable

from trading_assets.domain import brokerage as bk
from trading_assets.domain import portfolio as pf
from trading_assets.store.warehouse import Warehouse


def now() -> datetime:
    """The wall clock in New York (tests replace this function)."""
    return datetime.now(bk.NEW_YORK)


class LiveRefused(RuntimeError):
    """A live run that must not go ahead (a window of several sessions, outside the OPG window)."""


@dataclass
class LiveSession:
    wh: Warehouse
    broker: object  # a brokerage.LiveBroker (None for a paper dry run: nothing to reconcile with)
    run_id: str
    cycle_id: str
    session: date
    dry_run: bool
    cash_tolerance: float
    log: Callable[[str], None] = print
    sent: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def audit(self, event_type: str, payload: dict, symbol: str | None = None) -> None:
        self.wh.append_audit([{"event_type": event_type, "run_id": self.run_id, "cycle_id": self.cycle_id,
                               "date": self.session, "symbol": symbol, "payload": payload}])

    def on_event(self, event_type: str, payload: dict) -> None:
        """The broker adapter's callback: every submitted, rejected or cancelled order, at once."""
        self.audit(event_type, payload, payload.get("symbol"))

    def reconcile(self, state: pf.BookState) -> list[dict]:
        if self.broker is None:
            return []
        book_pos = {s: p.quantity for s, p in state.positions.items() if p.quantity}
        diffs = bk.reconcile(book_pos, self.broker.positions(), state.cash, self.broker.cash(), state.nav,
                             self.cash_tolerance)
        if diffs:
            self.audit("reconciliation_failed", {"differences": diffs, "session": str(self.session)})
            raise bk.ReconciliationError(diffs)
        return diffs

    def send(self, state: pf.BookState) -> list[bk.Ticket]:
        orders = state.pending_orders.rows() if state.pending_orders.height else []
        tickets = bk.tickets_from_orders(orders)
        if self.dry_run:
            for t in tickets:
                self.audit(bk.DRY_RUN, {**t.public(), "note": "dry run: not sent"}, t.symbol)
                self.log(f"dry run, not sent: {t.side} {t.quantity} {t.symbol} {t.order_type} {t.time_in_force} "
                         f"client_order_id={t.client_order_id}")
            return tickets
        if tickets and not bk.opg_window_open(now()):
            raise LiveRefused(f"{len(tickets)} orders not sent: Alpaca rejects OPG orders between 09:28 and 19:00 "
                              "New York time; rerun after 19:00 (the rerun makes the same orders, same ids)")
        for t in tickets:
            try:
                o = self.broker.submit(t)
                self.sent.append({**t.public(), "status": o.status})
            except bk.BrokerRejected as exc:  # audited by the adapter; the other orders still go
                self.rejected.append({**t.public(), "http_status": exc.status_code, "message": exc.message})
                self.log(str(exc))
        return tickets


def check_window(sessions: list[date], live: bool) -> None:
    if live and len(sessions) > 1:
        raise LiveRefused(f"live trading runs one session at a time, not {sessions[0]}..{sessions[-1]}: "
                          "backfill the history in paper mode, then run the live session")
