"""AlpacaBroker: the book's live broker on alpaca-py's TradingClient (the edge: network I/O lives here).

- Endpoint: Alpaca's paper endpoint unless ExecutionSettings.broker_url names another (a local replay
  server in the tests); the live endpoint only when broker_url says so explicitly.
- Keys: APCA_API_KEY_ID and APCA_API_SECRET_KEY (Alpaca's own variable names) read from the
  environment here and nowhere else; they are never logged, never put in Settings (so never in a
  settings hash, an audit payload or a table), and `repr` of the broker does not show them.
- Retries are ours, not alpaca-py's (its RESTClient retries 429/504 with a fixed 3 s wait and cannot
  tell whether a POST that timed out created the order): a request answered 429, 5xx or not answered
  at all is retried up to retry_attempts times, waiting Retry-After when the 429 gives it, else
  retry_wait_s * 2^i. Before a submission is retried, the order is looked up by its client_order_id:
  if the first attempt reached the broker, that order is returned and nothing is sent again.
- Idempotent submission: client_order_id = the book's order_id. A duplicate (HTTP 422 "client_order_id
  must be unique") returns the broker's existing order. Any other 4xx (403 insufficient buying
  power, 422 invalid quantity, ...) raises BrokerRejected with the broker's message.
- Fills are polled in the next session's run; an order still open then (an OPG order the auction did not
  take) is cancelled first, so it cannot fill later behind the book's back.
- Every submission, rejection and cancellation is reported to `on_event(event_type, payload)` (the
  live cycle appends it to audit_log at once); payloads hold the ticket and the broker's answer only.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import date
from typing import Callable

import polars as pl
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from trading_assets.domain import brokerage as bk
from trading_assets.domain import execution as ex
from trading_assets.settings import ExecutionSettings

# Alpaca order states in which an order can still fill (docs.alpaca.markets, "Order Lifecycle")
OPEN_STATES = frozenset({"new", "accepted", "pending_new", "accepted_for_bidding", "held", "partially_filled",
                         "pending_replace", "calculated"})
KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
_DUPLICATE = "client_order_id must be unique"


def _status(e: APIError) -> int | None:
    try:
        return e.status_code
    except Exception:  # noqa: BLE001 - a malformed error body must not hide the status
        return None


def _message(e: APIError) -> str:
    try:
        return str(e.message)
    except Exception:  # noqa: BLE001 - not JSON: the raw text
        return str(e)[:300]


def _retryable(e: Exception) -> bool:
    if isinstance(e, (requests.ConnectionError, requests.Timeout)):
        return True
    code = _status(e) if isinstance(e, APIError) else None
    return code is not None and (code == 429 or code >= 500)


def _retry_after(e: Exception) -> float | None:
    resp = getattr(e, "response", None)
    value = resp.headers.get("Retry-After") if resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class AlpacaBroker:
    """See the module docstring."""

    name = "alpaca"

    def __init__(self, settings: ExecutionSettings, api_key: str, secret_key: str,
                 on_event: Callable[[str, dict], None] | None = None, sleep: Callable[[float], None] = time.sleep):
        if not api_key or not secret_key:
            raise ex.BrokerNotConfigured(f"live trading refused: the Alpaca keys are missing ({KEY_ENV}, {SECRET_ENV})")
        self.settings = settings
        self.on_event = on_event or (lambda event_type, payload: None)
        self._sleep = sleep
        self._client = TradingClient(api_key, secret_key, paper=True, url_override=settings.broker_url or None)
        self._client._retry = 0  # alpaca-py's own 429/504 retry off: ours below knows about idempotency
        self.endpoint = settings.broker_url or "paper"

    @classmethod
    def from_env(cls, settings: ExecutionSettings, env: dict[str, str] | None = None, **kw) -> "AlpacaBroker":
        env = os.environ if env is None else env
        return cls(settings, env.get(KEY_ENV, ""), env.get(SECRET_ENV, ""), **kw)

    def __repr__(self) -> str:  # never the keys
        return f"AlpacaBroker(endpoint={self.endpoint!r})"

    # --- requests with retries -------------------------------------------------------------------
    def _call(self, what: str, fn, before_retry: Callable[[], object] | None = None):
        """fn() with retries on 429 / 5xx / no answer; before_retry() may return a result that ends it."""
        attempts = max(0, int(self.settings.retry_attempts)) + 1
        last: Exception | None = None
        for i in range(attempts):
            if i and before_retry is not None:
                found = before_retry()
                if found is not None:
                    return found
            try:
                return fn()
            except (APIError, requests.ConnectionError, requests.Timeout) as e:
                if not _retryable(e):
                    raise
                last = e
                if i + 1 < attempts:
                    wait = _retry_after(e)
                    self._sleep(wait if wait is not None else self.settings.retry_wait_s * 2**i)
        code = _status(last) if isinstance(last, APIError) else type(last).__name__
        raise bk.BrokerUnavailable(f"{what}: the broker did not answer after {attempts} attempts (last: {code})")

    def _by_client_id(self, client_order_id: str) -> bk.BrokerOrder | None:
        def get():
            try:
                return self._client.get_order_by_client_id(client_order_id)
            except APIError as e:
                if _status(e) == 404:
                    return None
                raise
        o = self._call(f"look up {client_order_id}", get)
        return None if o is None else _broker_order(o)

    # --- the protocol ----------------------------------------------------------------------------
    def submit(self, ticket: bk.Ticket) -> bk.BrokerOrder:
        req = MarketOrderRequest(symbol=ticket.symbol, qty=ticket.quantity,
                                 side=OrderSide.BUY if ticket.side == ex.BUY else OrderSide.SELL,
                                 time_in_force=TimeInForce(ticket.time_in_force),
                                 client_order_id=ticket.client_order_id)
        try:
            o = self._call(f"submit {ticket.client_order_id}", lambda: _broker_order(self._client.submit_order(req)),
                           before_retry=lambda: self._by_client_id(ticket.client_order_id))
        except APIError as e:
            code, msg = _status(e), _message(e)
            if code == 422 and _DUPLICATE in msg:
                existing = self._by_client_id(ticket.client_order_id)
                if existing is not None:
                    self.on_event("order_submitted", {**ticket.public(), "broker": _public(existing),
                                                      "note": "already at the broker (duplicate client_order_id)"})
                    return existing
            self.on_event("order_rejected", {**ticket.public(), "http_status": code, "message": msg})
            raise bk.BrokerRejected(ticket, code, msg) from None
        self.on_event("order_submitted", {**ticket.public(), "broker": _public(o)})
        return o

    def cancel(self, client_order_id: str) -> bk.BrokerOrder | None:
        o = self._by_client_id(client_order_id)
        if o is None:
            return None
        self._call(f"cancel {client_order_id}", lambda: self._client.cancel_order_by_id(o.broker_order_id))
        after = self._by_client_id(client_order_id) or o
        self.on_event("order_cancelled", {"client_order_id": client_order_id, "symbol": o.symbol, "side": o.side,
                                          "quantity": o.quantity, "broker": _public(after)})
        return after

    def poll(self, client_order_ids: list[str]) -> dict[str, bk.BrokerOrder | None]:
        return {cid: self._by_client_id(cid) for cid in client_order_ids}

    def positions(self) -> dict[str, float]:
        return {p.symbol: float(p.qty) for p in self._call("read positions", self._client.get_all_positions)}

    def cash(self) -> float:
        return float(self._call("read the account", self._client.get_account).cash)

    # --- the book's fills: the broker's report of the previous session's orders --------------------
    def fill_rows(self, orders: list[tuple], fill_date: date, opens: dict[str, float],
                  split_ratios: dict[str, float]) -> list[tuple]:
        polled = self.poll([r[0] for r in orders])
        for cid, o in list(polled.items()):
            if o is not None and o.status in OPEN_STATES:  # still working after its open: it must not fill
                polled[cid] = self.cancel(cid) or o          # behind the book's back (audited as cancelled)
        return bk.fill_rows_from_broker(orders, polled, fill_date, opens, split_ratios)

    def fill(self, orders: pl.DataFrame, fill_date: date, opens: dict[str, float],
             split_ratios: dict[str, float]) -> pl.DataFrame:
        return pl.DataFrame(self.fill_rows(orders.select(list(ex.ORDER_SCHEMA)).rows(), fill_date, opens, split_ratios),
                            schema=ex.FILL_SCHEMA, orient="row")


def _broker_order(o) -> bk.BrokerOrder:
    side = str(getattr(o.side, "value", o.side)).upper() if o.side is not None else ""
    avg = float(o.filled_avg_price) if o.filled_avg_price not in (None, "") else None
    return bk.BrokerOrder(client_order_id=o.client_order_id, broker_order_id=str(o.id), symbol=o.symbol or "",
                          side=side, quantity=float(o.qty or 0), filled_quantity=float(o.filled_qty or 0),
                          filled_avg_price=avg if avg is None or math.isfinite(avg) else None,
                          status=str(getattr(o.status, "value", o.status)))


def _public(o: bk.BrokerOrder) -> dict:
    return json.loads(json.dumps(o.__dict__))
